"""Two dashboard processes on one PostgreSQL store: both boards live, one leader for the jobs, no notice sent twice."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.alarms.notify import Notifier, RetryPolicy, Webhook
from dashboard.db import connect, transaction
from dashboard.ingest.hub import Hub, LiveMessage
from dashboard.peers import MAX_PAYLOAD, Leadership, Relay
from firmware_bridge.broker import BrokerSettings
from sim.servers import DashboardServer, dashboard_config
from sim.sse import SSEEvent
from sim.stores import postgresql_store_at
from sim.webhook import WebhookReceiver

from .conftest import ADMIN, OPERATOR, signed_in
from .mqttprobe import Probe
from .test_ingest import make_event, send, wait_alarm
from .waiting import poll_until


def _pair(tmp_path: Path, broker: BrokerSettings, database: str) -> Iterator[tuple[DashboardServer, DashboardServer]]:
    servers = []
    try:
        for name in ("a", "b"):
            config = dashboard_config(tmp_path / name, broker, client_id=f"siaga-dashboard-{name}")
            config["DATABASE"] = database
            servers.append(DashboardServer(config).start())
        servers[0].create_user(*OPERATOR, "fire_operator")
        servers[0].create_user(*ADMIN, "admin")
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def pair(tmp_path: Path, broker_settings: BrokerSettings) -> Iterator[tuple[DashboardServer, DashboardServer]]:
    yield from _pair(tmp_path, broker_settings, postgresql_store_at(tmp_path / "shared.db"))


def _alarm_event(expected_id: int, state: str):
    def matches(event: SSEEvent) -> bool:
        if event.event != "alarm":
            return False
        alarm = event.json()
        return alarm["id"] == expected_id and alarm["state"] == state

    return matches


def test_a_change_through_one_process_reaches_the_boards_of_the_other_at_once(
    pair: tuple[DashboardServer, DashboardServer], probe: Probe
) -> None:
    a, b = pair
    on_a, on_b = signed_in(a, OPERATOR), signed_in(b, OPERATOR)
    with on_a.stream() as board_a, on_b.stream() as board_b:
        for board in (board_a, board_b):
            board.wait_for(lambda e: e.event == "snapshot", 10)
        event = send(probe, make_event(button="fire-1"))
        alarm = wait_alarm(on_a, lambda x: x["last_event_id"] == event.id)
        for board in (board_a, board_b):  # both processes ingest; one stores, the other's boards hear it from it
            board.wait_for(_alarm_event(alarm["id"], "unacknowledged"), 10)
        on_a.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {})
        started = time.perf_counter()
        seen = board_b.wait_for(_alarm_event(alarm["id"], "acknowledged"), 10)
        assert seen.arrived - started < 2.0  # at once, not at a board's next poll
        on_b.post_json(f"/api/alarms/{alarm['id']}/resolve", {"resolution": "real", "rev": seen.json()["rev"]})
        board_a.wait_for(_alarm_event(alarm["id"], "resolved"), 10)
    with connect(a.config["DATABASE"]) as conn:
        assert conn.execute("SELECT COUNT(*) FROM alarms").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM events WHERE id = ?", (event.id,)).fetchone()[0] == 1


def test_one_process_leads_and_another_takes_over_within_seconds_when_it_stops(
    pair: tuple[DashboardServer, DashboardServer],
) -> None:
    a, b = pair
    leaders = [server for server in (a, b) if _leadership(server).holds()]
    assert len(leaders) == 1
    [follower] = [server for server in (a, b) if server is not leaders[0]]
    assert signed_in(follower, ADMIN).get_json("/api/diagnostics")["leader"] is False
    stopped = time.monotonic()
    leaders[0].stop()
    assert _leadership(follower).wait_elected(10), "no new leader within 10 s"
    assert time.monotonic() - stopped < 10
    assert signed_in(follower, ADMIN).get_json("/api/diagnostics")["leader"] is True


def _leadership(server: DashboardServer) -> Leadership:
    from dashboard.live import EXTENSION

    leadership = server.app.extensions[EXTENSION].leadership
    assert leadership is not None
    return leadership


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_only_one_holder_of_the_leader_lock_at_a_time_and_it_passes_on(tmp_path: Path, engine: str) -> None:
    database = str(tmp_path / "lead.db") if engine == "sqlite" else postgresql_store_at(tmp_path / "lead.db")
    first, second = Leadership(database, check_s=0.05).start(), Leadership(database, check_s=0.05).start()
    try:
        assert first.holds() and not second.holds()
        first.stop()
        assert second.wait_elected(5)
        assert second.counters.get("leader_elected") == 1
    finally:
        first.stop()
        second.stop()


@pytest.fixture
def relays(tmp_path: Path) -> Iterator[tuple[str, Hub, Hub, Relay, Relay]]:
    """Two processes' hubs on one store, each with its relay: (store, sender's hub, receiver's, their relays)."""
    database = postgresql_store_at(tmp_path / "relay.db")
    connect(database).close()
    sender_hub, receiver_hub = Hub(), Hub()
    sender, receiver = Relay(database, sender_hub).start(), Relay(database, receiver_hub).start()
    try:
        yield database, sender_hub, receiver_hub, sender, receiver
    finally:
        sender.stop()
        receiver.stop()


def test_a_message_too_long_to_notify_makes_the_other_processes_boards_start_again(relays) -> None:
    _database, sender_hub, receiver_hub, sender, receiver = relays
    board = receiver_hub.subscribe(["fire"])
    sender_hub.publish(LiveMessage("trouble", {"detail": "x"}, kind="fire"))
    small = board.get(10)
    assert small is not None and small.event == "trouble" and small.data == {"detail": "x"}
    sender_hub.publish(LiveMessage("trouble", {"detail": "y" * MAX_PAYLOAD}, kind="fire"))
    with pytest.raises(EOFError):  # the stream ends: the board reconnects to a fresh snapshot
        board.get(10)
    assert sender.counters.get("relay_resyncs_sent") == 1 and receiver.counters.get("relay_resyncs") == 1


def test_a_burst_reaches_the_other_process_in_order_in_a_few_notifications(relays) -> None:
    _database, sender_hub, receiver_hub, sender, _receiver = relays
    board = receiver_hub.subscribe(["fire"])
    burst = [LiveMessage("alarm", {"id": number, "note": "x" * 100}, kind="fire") for number in range(300)]
    for message in burst:
        sender_hub.publish(message)
    heard = [board.get(10) for _ in burst]
    assert [message.data["id"] for message in heard if message is not None] == list(range(300))
    payloads = sender.pack(burst)
    assert all(len(payload.encode()) <= MAX_PAYLOAD for payload in payloads)
    assert 300 * 130 / MAX_PAYLOAD <= len(payloads) <= 300 * 130 / MAX_PAYLOAD + 2
    assert [item["d"]["id"] for payload in payloads for item in json.loads(payload)["m"]] == list(range(300))


def test_two_senders_on_one_store_post_each_notice_once(tmp_path: Path) -> None:
    """The leader's last round and its successor's first may overlap: a notice is claimed before it is posted."""
    database = postgresql_store_at(tmp_path / "notices.db")
    with WebhookReceiver() as receiver:
        webhook = Webhook(name="pos", url=receiver.url, kinds=frozenset({"fire"}))
        conn = connect(database)
        _queue_notices(conn, webhook.name, 40)
        notifiers = [Notifier(database, [webhook], RetryPolicy()) for _ in range(2)]
        conns = [connect(database) for _ in notifiers]
        start = threading.Barrier(2)

        def deliver(notifier: Notifier, own) -> None:
            start.wait(5)
            while notifier.deliver_due(own, webhook):
                pass

        threads = [threading.Thread(target=deliver, args=pair) for pair in zip(notifiers, conns, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        poll_until(lambda: len(receiver.received), lambda n: n >= 40, timeout=10, what="every notice posted")
        ids = [request.delivery for request in receiver.received]
        assert sorted(ids, key=int) == sorted(set(ids), key=int) and len(ids) == 40
        assert conn.execute("SELECT COUNT(*) FROM notifications WHERE status = 'sent'").fetchone()[0] == 40
        for own in (*conns, conn):
            own.close()


def _queue_notices(conn, webhook: str, count: int) -> None:
    from dashboard.db import init_schema

    init_schema(conn)
    now = time.time()
    with transaction(conn):
        for number in range(1, count + 1):
            alarm_id = 16 * number + 1
            conn.execute(
                "INSERT INTO alarms (id, number, button, gw, kind, state, first_event_id, last_event_id, "
                "first_press_ts, opened_at, last_press_at) VALUES (?, ?, ?, 'gw-a', 'fire', 'unacknowledged', "
                "?, ?, '2026-11-30T00:00:00Z', ?, ?)",
                (alarm_id, number, f"fire-{number}", f"e{number}", f"e{number}", now, now),
            )
            conn.execute(
                "INSERT INTO notifications (alarm_id, kind, event, step, webhook, payload, created_at, next_at) "
                "VALUES (?, 'fire', 'alarm.escalated', 1, ?, '{}', ?, ?)",
                (alarm_id, webhook, now, now),
            )


def test_a_process_that_lost_its_listening_connection_resyncs_its_boards_and_hears_again(relays) -> None:
    database, sender_hub, receiver_hub, _sender, receiver = relays
    board = receiver_hub.subscribe(["fire"])
    with connect(database) as admin:  # what a server restart or a network cut does to it
        (ended,) = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = ?",
            (f"siaga-relay-{receiver.origin}",),
        ).fetchone()
    assert ended == 1
    with pytest.raises(EOFError):  # its board may have missed something: it starts again from the store
        board.get(10)
    again = receiver_hub.subscribe(["fire"])
    poll_until(receiver.counters.snapshot, lambda c: c.get("relay_resyncs", 0) == 1, timeout=10, what="resync")
    sender_hub.publish(LiveMessage("trouble", {"detail": "after"}, kind="fire"))
    heard = again.get(10)
    assert heard is not None and heard.data == {"detail": "after"}


def test_one_open_alarm_per_button_is_the_databases_rule_not_only_the_codes(tmp_path: Path) -> None:
    """Two writers storing presses of the same buttons at once (two dashboard processes): each event once,
    one open alarm per button; and a second open alarm written past the code is refused by the store."""
    from dashboard.alarms import store
    from dashboard.db import IntegrityError, init_schema

    database = postgresql_store_at(tmp_path / "concurrent.db")
    with connect(database) as conn:
        init_schema(conn)
    events = [make_event(button=f"fire-{n % 5}") for n in range(200)]
    start = threading.Barrier(2)

    def ingest(batch) -> None:
        own = connect(database)
        start.wait(5)
        for n in range(0, len(batch), 10):
            with transaction(own):
                store.store_events(own, [(event, time.time()) for event in batch[n : n + 10]])
        own.close()

    # Each writer gets every event (both processes receive each message), in its own order.
    writers = [threading.Thread(target=ingest, args=(order,)) for order in (events, events[::-1])]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
    with connect(database) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 200
        rows = conn.execute("SELECT button, COUNT(*), SUM(press_count) FROM alarms GROUP BY button").fetchall()
        assert sorted((row[0], row[1], row[2]) for row in rows) == [(f"fire-{n}", 1, 40) for n in range(5)]
        with pytest.raises(IntegrityError, match="alarms_open_button_kind"), transaction(conn):
            conn.execute(
                "INSERT INTO alarms (id, number, button, gw, kind, state, first_event_id, last_event_id, "
                "first_press_ts, opened_at, last_press_at) SELECT id + 160, number + 10, button, gw, kind, "
                "'unacknowledged', 'x', 'x', first_press_ts, opened_at, last_press_at FROM alarms "
                "WHERE button = 'fire-0'"
            )
