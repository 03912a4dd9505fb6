"""Open boards never starve operators: live streams are served by the event loop, not by request threads.

A fire post runs several wall displays per account. With thread-per-request
serving they held every worker, and an operator could not acknowledge. Here
the dashboard has 4 request workers and 24 streams are open: acknowledging,
``/healthz`` and every stream's delivery of a press must still work, each
within a bounded time (the HTTP clients time out, so a hang fails the test).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from firmware_bridge.broker import BrokerSettings
from gateway.app import Gateway
from sim.servers import DashboardServer, dashboard_config
from sim.sse import SSEClient, SSEEvent
from sim.webclient import DashboardClient

from .conftest import ADMIN, OPERATOR, SAPA_DESK, press, signed_in

WORKERS = 4
STREAMS_PER_ACCOUNT = 8
#: Bounded answers: far above a healthy answer (milliseconds), far below a starved one (never).
ANSWER_S = 5.0


@pytest.fixture
def small_dashboard(tmp_path: Path, broker_settings: BrokerSettings) -> Iterator[DashboardServer]:
    config = dashboard_config(tmp_path / "dashboard", broker_settings, SIAGA_THREADS=WORKERS)
    server = DashboardServer(config).start()
    for account, role in ((OPERATOR, "fire_operator"), (SAPA_DESK, "sapa_desk"), (ADMIN, "admin")):
        server.create_user(*account, role)
    yield server
    server.stop()


def is_alarm(event: SSEEvent) -> bool:
    return event.event == "alarm" and event.json()["kind"] == "fire"


def test_more_open_boards_than_request_workers_leave_acknowledging_and_health_fast(
    small_dashboard: DashboardServer, gateway: Gateway, pin_factory: MockFactory
) -> None:
    accounts = [signed_in(small_dashboard, account) for account in (OPERATOR, SAPA_DESK, ADMIN)]
    with ExitStack() as stack:
        streams: list[tuple[str, SSEClient]] = []
        for client, name in zip(accounts, ("operator", "sapa", "admin"), strict=True):
            for _ in range(STREAMS_PER_ACCOUNT):
                stream = stack.enter_context(client.stream())
                assert stream.wait_for(lambda e: e.event == "snapshot", ANSWER_S).json()["alarms"] == []
                streams.append((name, stream))
        assert len(streams) == 3 * STREAMS_PER_ACCOUNT > WORKERS

        press(pin_factory, 17)  # the fire button
        fire_boards = [stream for name, stream in streams if name != "sapa"]
        alarms = [stream.wait_for(is_alarm, ANSWER_S).json() for stream in fire_boards]
        assert {alarm["id"] for alarm in alarms} == {alarms[0]["id"]}  # every fire board got the press

        operator = DashboardClient(small_dashboard.url, timeout=ANSWER_S)
        operator.login(*OPERATOR)
        started = time.monotonic()
        health = operator.get_json("/healthz")
        acknowledged = operator.post_json(f"/api/alarms/{alarms[0]['id']}/acknowledge", {"note": "berangkat"})
        assert health["ok"] is True
        assert acknowledged["alarm"]["state"] == "acknowledged"
        assert time.monotonic() - started < ANSWER_S
        for stream in fire_boards:  # and the boards hear the acknowledgement
            stream.wait_for(lambda e: is_alarm(e) and e.json()["state"] == "acknowledged", ANSWER_S)
        sapa_boards = [stream for name, stream in streams if name == "sapa"]
        assert all(not any(is_alarm(e) for e in drain(stream)) for stream in sapa_boards)  # SAPA saw nothing


def drain(stream: SSEClient) -> list[SSEEvent]:
    """What a stream has received so far, without waiting."""
    events = []
    while not stream.events.empty():
        event = stream.events.get_nowait()
        if event is not None:
            events.append(event)
    return events


def test_a_stream_ends_when_its_dashboard_stops_and_the_board_can_reconnect(
    small_dashboard: DashboardServer,
) -> None:
    operator = signed_in(small_dashboard, OPERATOR)
    stream = operator.stream()
    try:
        stream.wait_for(lambda e: e.event == "snapshot", ANSWER_S)
        small_dashboard.stop()
        assert stream.next(ANSWER_S) is None  # ended, not hung: EventSource reconnects on its own
    finally:
        stream.close()


@contextmanager
def limited(
    tmp_path: Path, broker: BrokerSettings, **limits: int
) -> Iterator[tuple[DashboardServer, DashboardClient, ExitStack]]:
    """A dashboard with ``limits``, its fire operator signed in, and a stack that closes the streams opened."""
    server = DashboardServer(dashboard_config(tmp_path / "dashboard", broker, **limits)).start()
    try:
        server.create_user(*OPERATOR, "fire_operator")
        with ExitStack() as streams:
            yield server, signed_in(server, OPERATOR), streams
    finally:
        server.stop()


def test_a_screen_over_its_accounts_limit_replaces_the_oldest_which_says_so_and_stays_closed(
    tmp_path: Path, broker_settings: BrokerSettings
) -> None:
    with limited(tmp_path, broker_settings, SIAGA_STREAMS_PER_ACCOUNT=2) as (server, operator, streams):
        oldest, second, newest = (streams.enter_context(operator.stream()) for _ in range(3))
        replaced = oldest.wait_for(lambda e: e.event == "replaced", ANSWER_S)
        assert replaced.json() == {"streams_per_account": 2}  # the board can say why, and how many
        assert oldest.next(ANSWER_S) is None  # then the stream ends
        for stream in (second, newest):
            assert stream.wait_for(lambda e: e.event == "snapshot", ANSWER_S).json()["alarms"] == []
        assert server.app.extensions["siaga"].hub.subscribers == 2


def test_a_dashboard_serving_its_most_streams_answers_503_at_once(
    tmp_path: Path, broker_settings: BrokerSettings
) -> None:
    with limited(tmp_path, broker_settings, SIAGA_MAX_STREAMS=2) as (_, operator, streams):
        for _ in range(2):
            streams.enter_context(operator.stream()).wait_for(lambda e: e.event == "snapshot", ANSWER_S)
        with pytest.raises(ConnectionError, match="503") as refused:
            operator.stream()
        assert "too_many_streams" in str(refused.value)
        assert operator.get_json("/healthz")["ok"] is True
