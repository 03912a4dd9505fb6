"""Escalation: an alarm nobody acknowledges gets louder on the board and reaches its webhooks.

Real parts throughout: Mosquitto, a gateway on mock pins, the dashboard under
uvicorn, and a real HTTP receiver (``sim.webhook``) that checks signatures and
answers what each test tells it to, so retries, refusals and a receiver that
is down are the genuine article.
"""

from __future__ import annotations

import socketserver
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from dashboard.alarms.escalation import EscalationSettings, due_steps
from dashboard.alarms.notify import NotificationEvent, Notifier, RetryPolicy, Webhook, enqueue, post
from dashboard.config import parse_config
from dashboard.db import SCHEMA_VERSION, connect, init_schema, transaction
from dashboard.devices.supervision import SupervisionSettings, webhook_troubles
from dashboard.live import EXTENSION
from firmware_bridge.broker import BrokerSettings
from firmware_bridge.errors import ConfigError
from firmware_bridge.settings import parse_toml
from gateway.app import Gateway
from sim.mosquitto import free_port
from sim.servers import DashboardServer, dashboard_config
from sim.sse import SSEEvent
from sim.stores import store_at
from sim.webclient import DashboardClient
from sim.webhook import WebhookReceiver

from .conftest import OPERATOR, SAPA_DESK, press, signed_in
from .test_ingest import wait_alarm
from .waiting import poll_until

SECRET = b"a-webhook-secret-of-some-length"
WAIT_S = 15
FAST_SUPERVISION = SupervisionSettings(check_interval_s=0.1)


def settings(*webhooks: Webhook, fire: tuple[float, ...] = (0.3, 3600.0)) -> EscalationSettings:
    return EscalationSettings(
        after_s={"fire": fire, "sapa": (0.3,)},
        webhooks=webhooks,
        retry=RetryPolicy(base_s=0.05, max_s=0.2),
        check_interval_s=0.05,
        board_url="https://siaga.example/board",
    )


def hook(name: str, url: str, kinds: str = "fire", **extra: object) -> Webhook:
    return Webhook(name=name, url=url, kinds=frozenset(kinds.split(",")), secret=SECRET, timeout_s=2.0, **extra)  # type: ignore[arg-type]


def start_dashboard(
    tmp_path: Path, broker: BrokerSettings, escalation: EscalationSettings, *, first: bool = True
) -> DashboardServer:
    config = dashboard_config(
        tmp_path / "dashboard", broker, SIAGA_ESCALATION=escalation, SIAGA_SUPERVISION=FAST_SUPERVISION
    )
    server = DashboardServer(config).start()
    if first:
        server.create_user(*OPERATOR, "fire_operator")
        server.create_user(*SAPA_DESK, "sapa_desk")
    return server


@pytest.fixture
def fire_post() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET, answers=[500]) as receiver:  # fails once, then takes them
        yield receiver


@pytest.fixture
def sapa_receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as receiver:
        yield receiver


# -- the rule ------------------------------------------------------------------------------------


def test_steps_fall_due_in_order_and_once() -> None:
    steps = (60.0, 180.0, 600.0)
    assert due_steps(59.9, 0, steps) == []
    assert due_steps(60.0, 0, steps) == [1]
    assert due_steps(200.0, 1, steps) == [2]
    assert due_steps(200.0, 2, steps) == []
    assert due_steps(10_000.0, 0, steps) == [1, 2, 3]  # a dashboard down across all of them
    assert due_steps(10_000.0, 3, steps) == []
    assert due_steps(10_000.0, 0, ()) == []


# -- end to end ----------------------------------------------------------------------------------


@pytest.fixture
def both_desks(
    tmp_path: Path, broker_settings: BrokerSettings, fire_post: WebhookReceiver, sapa_receiver: WebhookReceiver
) -> Iterator[DashboardServer]:
    """A dashboard escalating fire alarms to the fire post's receiver and SAPA alarms to the SAPA desk's."""
    escalation = settings(hook("pos-damkar", fire_post.url), hook("meja-sapa", sapa_receiver.url, "sapa"))
    dashboard = start_dashboard(tmp_path, broker_settings, escalation)
    yield dashboard
    dashboard.stop()


def test_an_unacknowledged_fire_alarm_escalates_to_its_webhook_and_acknowledging_stops_it(
    both_desks: DashboardServer,
    gateway: Gateway,
    pin_factory: MockFactory,
    fire_post: WebhookReceiver,
    sapa_receiver: WebhookReceiver,
) -> None:
    dashboard = both_desks
    operator = signed_in(dashboard, OPERATOR)
    with operator.stream() as board:
        press(pin_factory, 17)

        def escalated(event: SSEEvent) -> bool:
            return event.event == "alarm" and event.json()["escalation"] == 1

        alarm = board.wait_for(escalated, WAIT_S).json()  # the board hears of it without a reload
    assert alarm["state"] == "unacknowledged" and alarm["kind"] == "fire"
    assert alarm["notified"] == 1  # the fire post's receiver; the SAPA desk's is not told

    first, second = fire_post.wait(2)  # refused once with a 500, then retried
    assert first.status == 500 and second.status == 200
    assert first.delivery == second.delivery  # the same delivery id: a receiver can drop a copy
    assert first.signed is True and second.signed is True
    body = second.body
    assert body["event"] == "alarm.escalated" and body["step"] == 1
    assert body["alarm"]["id"] == alarm["id"] and body["alarm"]["site"]["name"] == "Pasar Andoolo"
    assert body["board_url"] == "https://siaga.example/board"
    assert "belum ditanggapi" in body["text"]["id"] and "not acknowledged" in body["text"]["en"]

    detail = operator.get_json(f"/api/alarms/{alarm['id']}")
    steps = [action for action in detail["actions"] if action["action"] == "escalated"]
    assert len(steps) == 1 and "step 1" in steps[0]["note"] and "pos-damkar" in steps[0]["note"]
    assert "meja-sapa" not in steps[0]["note"]  # a fire alarm is not the SAPA desk's
    assert [notice["webhook"] for notice in detail["notifications"]] == ["pos-damkar"]
    notice = wait_notice(operator, alarm["id"], lambda n: n["status"] == "sent")  # once the 200 is read
    assert notice["attempts"] == 2

    operator.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {"note": "unit berangkat"})
    follow = fire_post.wait(2, delivered=True)[-1]
    assert follow.body["event"] == "alarm.acknowledged" and follow.body["alarm"]["acknowledged_by"] == OPERATOR[0]

    # Acknowledged: however long it now stays open, no further step is taken.
    escalator = dashboard.app.extensions[EXTENSION].escalator
    conn = connect(dashboard.config["DATABASE"])
    try:
        assert escalator.check(conn, now=10**10) == []
        row = conn.execute("SELECT escalation FROM alarms WHERE id = ?", (alarm["id"],)).fetchone()
        assert row["escalation"] == 1
        assert conn.execute("SELECT COUNT(*) FROM notifications").fetchone()[0] == 2
    finally:
        conn.close()
    assert sapa_receiver.received == []


def test_a_sapa_alarm_escalates_only_to_the_sapa_desks_webhook(
    both_desks: DashboardServer,
    gateway: Gateway,
    pin_factory: MockFactory,
    fire_post: WebhookReceiver,
    sapa_receiver: WebhookReceiver,
) -> None:
    dashboard = both_desks
    press(pin_factory, 23)
    [notice] = sapa_receiver.wait(1, delivered=True)
    assert notice.body["alarm"]["kind"] == "sapa" and notice.body["event"] == "alarm.escalated"
    desk = signed_in(dashboard, SAPA_DESK)
    alarm = wait_alarm(desk, lambda a: a["escalation"] == 1)
    operator = signed_in(dashboard, OPERATOR)
    assert operator.get_json("/api/troubles")["troubles"] == []
    assert all(a["kind"] == "fire" for a in operator.get_json("/api/alarms?state=all")["alarms"])
    desk.post_json(f"/api/alarms/{alarm['id']}/resolve", {"resolution": "real", "rev": alarm["rev"]})
    follow = sapa_receiver.wait(2, delivered=True)[-1]
    assert follow.body["event"] == "alarm.resolved" and follow.body["alarm"]["resolution"] == "real"
    assert fire_post.received == []


def test_queued_notifications_survive_a_dashboard_restart_while_the_receiver_is_down(
    tmp_path: Path, broker_settings: BrokerSettings, gateway: Gateway, pin_factory: MockFactory
) -> None:
    port = free_port()  # nothing listens here yet: the receiver is down
    escalation = settings(hook("pos-damkar", f"http://127.0.0.1:{port}/siaga"))
    dashboard = start_dashboard(tmp_path, broker_settings, escalation)
    try:
        operator = signed_in(dashboard, OPERATOR)
        press(pin_factory)
        alarm = wait_alarm(operator, lambda a: a["escalation"] == 1, timeout=WAIT_S)
        wait_notice(operator, alarm["id"], lambda n: n["attempts"] >= 2 and n["status"] == "pending")
    finally:
        dashboard.stop()
    with WebhookReceiver(port=port, secret=SECRET) as receiver:
        dashboard = start_dashboard(tmp_path, broker_settings, escalation, first=False)
        try:
            [notice] = receiver.wait(1, delivered=True)
            assert notice.body["alarm"]["id"] == alarm["id"] and notice.signed is True
            operator = signed_in(dashboard, OPERATOR)
            wait_notice(operator, alarm["id"], lambda n: n["status"] == "sent")
        finally:
            dashboard.stop()
        assert len(receiver.received) == 1  # delivered once, not once per dashboard


def test_a_receiver_that_refuses_becomes_a_trouble_on_the_board(
    tmp_path: Path, broker_settings: BrokerSettings, gateway: Gateway, pin_factory: MockFactory
) -> None:
    with WebhookReceiver(secret=b"another-secret-entirely") as receiver:  # signatures will not match: 401
        dashboard = start_dashboard(tmp_path, broker_settings, settings(hook("pos-damkar", receiver.url)))
        try:
            operator = signed_in(dashboard, OPERATOR)
            with operator.stream() as board:
                press(pin_factory)

                def failing(event: SSEEvent) -> bool:
                    return event.event == "trouble" and event.json()["type"] == "webhook_failing"

                trouble = board.wait_for(failing, WAIT_S).json()
            assert trouble["subject"] == "pos-damkar" and "HTTP 401" in trouble["detail"]
            [only] = receiver.received
            assert only.status == 401  # a refusal is not retried: it would be refused again
        finally:
            dashboard.stop()


def wait_notice(client: DashboardClient, alarm_id: int, predicate: Callable[[dict], bool]) -> dict:
    # polling an HTTP API; there is no event to wait on from outside
    return poll_until(
        lambda: next((n for n in client.get_json(f"/api/alarms/{alarm_id}")["notifications"] if predicate(n)), None),
        lambda notice: notice is not None,
        timeout=WAIT_S,
        interval=0.02,
        what="no matching notification",
    )


# -- configuration and schema -------------------------------------------------------------------

BASE = """
[dashboard]
data_dir = "{data}"
[mqtt]
host = "127.0.0.1"
"""


def load(tmp_path: Path, text: str) -> dict:
    return parse_config(parse_toml(BASE.format(data=tmp_path) + text, "dashboard.toml"))


def test_escalation_settings_are_read_and_checked(tmp_path: Path) -> None:
    secret = tmp_path / "hook.secret"
    secret.write_text("s" * 32 + "\n")
    config = load(
        tmp_path,
        f"""
[escalation]
fire_after_s = [30, 90]
board_url = "https://siaga.example/board"
[[escalation.webhook]]
name = "pos-damkar"
url = "https://wa.example/hook"
kinds = ["fire"]
steps = [2]
secret_file = "{secret}"
""",
    )
    escalation = config["SIAGA_ESCALATION"]
    assert escalation.after_s == {"fire": (30.0, 90.0), "sapa": (120.0, 600.0)}
    [webhook] = escalation.webhooks
    assert webhook.secret == b"s" * 32 and webhook.receives("fire", 2) and not webhook.receives("fire", 1)
    assert not webhook.receives("sapa", 2)
    assert load(tmp_path, "")["SIAGA_ESCALATION"].webhooks == ()


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[escalation]\nfire_after_s = [90, 30]", "escalation.fire_after_s", "rise"),
        ("[escalation]\nsapa_after_s = 60", "escalation.sapa_after_s", "list of seconds"),
        ("[escalation]\nfire_after_s = [0]", "escalation.fire_after_s", "between"),
        ('[[escalation.webhook]]\nname = "x"\nurl = "https://a.example/"', "escalation.webhook[1].kinds", "missing"),
        (
            '[[escalation.webhook]]\nname = "x"\nurl = "https://a.example/"\nkinds = ["police"]',
            "escalation.webhook[1].kinds",
            "fire, sapa",
        ),
        (
            '[[escalation.webhook]]\nname = "x"\nurl = "ftp://a.example/"\nkinds = ["fire"]',
            "escalation.webhook[1].url",
            "",
        ),
        (
            '[[escalation.webhook]]\nname = "x"\nurl = "https://a.example/"\nkinds = ["fire"]\nsecret_file = "/nope"',
            "escalation.webhook[1].secret_file",
            "cannot read",
        ),
        (
            '[[escalation.webhook]]\nname = "x"\nurl = "https://a/"\nkinds = ["fire"]\n'
            '[[escalation.webhook]]\nname = "x"\nurl = "https://b/"\nkinds = ["fire"]',
            "escalation.webhook[2].name",
            "twice",
        ),
        ("[escalation]\nfire_after = [60]", "escalation.fire_after", "unknown key"),
    ],
)
def test_a_wrong_escalation_setting_names_its_key(tmp_path: Path, text: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert caught.value.key == key and reason in str(caught.value)


def test_a_schema_2_database_is_upgraded_in_place(tmp_path: Path) -> None:
    """A database made by the last released dashboard (its schema kept in tests/data) keeps its data."""
    path = tmp_path / "old.sqlite"
    conn = connect(path)
    conn.executescript((Path(__file__).parent / "data" / "schema-v2.sql").read_text())
    conn.executescript(
        "INSERT INTO alarms (id, number, button, gw, kind, state, first_event_id, last_event_id, first_press_ts, "
        "opened_at, last_press_at) VALUES (17, 1, 'b', 'g', 'fire', 'unacknowledged', 'e', 'e', 't', 1, 1);"
        "INSERT INTO events (id, gw, button, kind, type, ts, src, received_at, alarm_id, payload) "
        "VALUES ('e', 'g', 'b', 'fire', 'press', 't', 'gpio', 1, 17, '{}');"
        "PRAGMA user_version=2;"
    )
    init_schema(conn)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    row = conn.execute("SELECT id, escalation, escalated_at, test, dispatch_unit FROM alarms").fetchone()
    assert tuple(row) == (17, 0, None, 0, None)  # the old alarm kept, with the new columns
    assert tuple(conn.execute("SELECT id, alarm_id, suppressed FROM events").fetchone()) == ("e", 17, None)
    for table in ("troubles", "notifications", "audit_log", "button_service"):
        assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0  # noqa: S608 - fixed names
    init_schema(conn)  # and again: nothing happens twice
    conn.close()


def queued_notice(database: str, state: str, webhooks: list[str], *, now: float) -> sqlite3.Connection:
    """A fresh store holding fire alarm 17 (in ``state``) and its step-1 notice queued for ``webhooks``."""
    conn = connect(database)
    init_schema(conn)
    with transaction(conn):
        conn.execute(
            "INSERT INTO alarms (id, number, button, gw, kind, state, first_event_id, last_event_id, "
            "first_press_ts, opened_at, last_press_at) VALUES (17, 1, 'b', 'g', 'fire', ?, 'e', 'e', 't', 1, 1)",
            (state,),
        )
        body = {"event": "alarm.escalated"}
        enqueue(conn, alarm_id=17, kind="fire", event=NotificationEvent.ESCALATED, step=1, body=body,
                webhooks=webhooks, now=now)  # fmt: skip
    return conn


def test_notices_for_a_receiver_removed_from_the_configuration_fail_visibly(tmp_path: Path) -> None:
    database = store_at(tmp_path / "store.sqlite")
    conn = queued_notice(database, "acknowledged", ["old-receiver", "kept"], now=1.0)
    notifier = Notifier(database, [hook("kept", "http://127.0.0.1:9/")], RetryPolicy()).start()
    notifier.stop()
    rows = dict(conn.execute("SELECT webhook, status FROM notifications").fetchall())
    assert rows["old-receiver"] == "failed"
    [trouble] = webhook_troubles(conn, now=time.time())
    assert trouble.subject == "old-receiver" and "no longer configured" in trouble.detail
    conn.close()


@pytest.fixture
def not_http_receiver() -> Iterator[str]:
    """A receiver that answers every POST with bytes that are not HTTP (a misconfigured port, a captive portal)."""

    class Garbage(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(65536)
            self.request.sendall(b"THIS IS NOT HTTP\r\n\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Garbage)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_a_receiver_that_does_not_speak_http_is_a_failed_attempt_counted_and_retried_later(
    tmp_path: Path, not_http_receiver: str
) -> None:
    """Not an endless repost of one notice: each answer is a counted attempt, the next waits its turn."""
    outcome = post(hook("broken", not_http_receiver), 1, b"{}")
    assert outcome.delivered is False and outcome.permanent is False
    assert "BadStatusLine" in outcome.detail

    database = store_at(tmp_path / "store.sqlite")
    conn = queued_notice(database, "unacknowledged", ["broken"], now=time.time())
    notifier = Notifier(database, [hook("broken", not_http_receiver)], RetryPolicy(base_s=0.2, max_s=0.2)).start()
    try:
        row = poll_until(
            lambda: conn.execute("SELECT attempts, status, last_error FROM notifications").fetchone(),
            lambda row: row["attempts"] >= 2,
            what="two counted attempts",
        )
        assert row["status"] == "pending" and "BadStatusLine" in row["last_error"]
        assert notifier.is_alive() and notifier.failure is None
    finally:
        notifier.stop()
        conn.close()
