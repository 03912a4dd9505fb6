"""Seeding a dashboard store at a chosen size (gateways, buttons, a year of events), for the cost benchmarks.

Rows are written directly with ``executemany`` in a few big transactions, as
the dashboard itself would have stored them: gateways with today's full health
message (``firmware_bridge.payloads.Health``), their inventories
(registrations and buttons, fire and SAPA, wired and LoRa), events spread over
a year before ``now`` (most joined to alarms), alarms (resolved, plus a few
open ones) with their actions, audit rows and troubles (a few open, many
cleared). One million events seed in well under a minute.

Use::

    conn = dashboard.db.connect(path); dashboard.db.init_schema(conn)
    summary = seed(conn, gateways=1000, buttons_per_gateway=20, events=1_000_000, seed=1)
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import dashboard.db
from firmware_bridge.timeutil import format_epoch

YEAR_S = 365 * 86400.0
#: Alarm ids are 16 * number + kind code (dashboard.alarms.lifecycle).
_KIND_CODE = {"fire": 1, "sapa": 2}
_ID_STRIDE = 16
_BATCH = 50_000


@dataclass(frozen=True)
class SeedSummary:
    """What was written, and how long it took."""

    gateways: int
    buttons: int
    events: int
    alarms: int
    open_alarms: int
    alarm_actions: int
    audit_rows: int
    troubles: int
    seconds: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class _Button:
    id: str
    gw: str
    kind: str
    transport: str
    site: str
    lat: float
    lon: float


def gateway_id(index: int) -> str:
    return f"gw-{index:04d}"


def _buttons(gateways: int, per_gateway: int) -> list[_Button]:
    """Every fourth button is SAPA; every other one is LoRa; two sites per gateway."""
    buttons = []
    for g in range(gateways):
        gw = gateway_id(g)
        for b in range(per_gateway):
            kind = "sapa" if b % 4 == 3 else "fire"
            site = f"site-{g:04d}-{b % 2}"
            lat = -4.0 - (g % 100) * 0.01 - b * 0.0001
            lon = 122.0 + (g // 100) * 0.01 + b * 0.0001
            buttons.append(_Button(f"{gw}-{kind}-{b:02d}", gw, kind, "lora" if b % 2 else "gpio", site, lat, lon))
    return buttons


def low_battery(button_id: str) -> bool:
    """The seeded LoRa buttons whose battery is low (an open trouble each): one button in forty."""
    return button_id.endswith(("-01", "-21"))


def health_message(gw: str, buttons: list[_Button], now: float) -> dict[str, object]:
    """Today's full health message (as tests/test_contract.py's TODAYS_HEALTH) for ``gw`` and its buttons."""
    nodes = {}
    for index, button in enumerate(b for b in buttons if b.transport == "lora"):
        nodes[str(1000 + index)] = {
            "button": button.id, "last_heard": format_epoch(now - 7), "age_s": 6.8,
            "low_battery": low_battery(button.id),
            "tamper": False, "rssi": -97, "snr": 7.25, "battery_mv": 3300, "frames": 12, "events": 2,
            "heartbeats": 9, "duplicates": 1, "rejected": {},
        }  # fmt: skip
    wired = [{"id": b.id, "pressed": False, "pressed_for_s": None} for b in buttons if b.transport == "gpio"]
    return {
        "v": 1, "gw": gw, "ts": format_epoch(now), "uptime_s": 3600.5,
        "outbox": {"depth": 0, "oldest_ts": None, "memory_only": 0, "inflight": 0, "awaiting_receipt": 0},
        "counters": {"presses": 3, "radio_rejected.bad_mac": 1}, "version": "0.1.0", "outbox_ok": True,
        "delivery_verified": True, "mqtt_connected": True, "pump_alive": True, "outbox_error": None,
        "dashboard_online": True, "buttons": wired,
        "radio": {
            "module": {"type": "rylr998", "port": "/dev/ttyUSB0", "state": "open", "since": format_epoch(now - 3600),
                       "last_error": None, "configured": True, "queued": 0},
            "nodes": nodes, "rejected": {},
        },
    }  # fmt: skip


def _chunks(rows: Iterator[tuple], size: int = _BATCH) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _insert(conn: sqlite3.Connection, sql: str, rows: Iterator[tuple]) -> int:
    count = 0
    for batch in _chunks(rows):
        conn.executemany(sql, batch)
        count += len(batch)
    return count


def seed(
    conn: sqlite3.Connection,
    *,
    gateways: int = 10,
    buttons_per_gateway: int = 20,
    events: int = 10_000,
    audit_rows: int | None = None,
    presses_per_alarm: int = 3,
    open_alarms: int | None = None,
    seed: int = 1,
    now: float | None = None,
) -> SeedSummary:
    """Fill an empty store (``connect`` + ``init_schema``) at the given size; returns what was written.

    ``events`` are spread over the year before ``now``; nine in ten are
    presses joined to alarms of ``presses_per_alarm`` presses each, the rest
    heartbeats. ``open_alarms`` (default: one per ten gateways, at least 3)
    are still open, a third of them unacknowledged. ``audit_rows`` defaults to
    half the events.
    """
    started = time.perf_counter()
    now = time.time() if now is None else now
    rng = random.Random(seed)
    buttons = _buttons(gateways, buttons_per_gateway)
    open_alarms = max(3, gateways // 10) if open_alarms is None else open_alarms
    audit_rows = events // 2 if audit_rows is None else audit_rows
    sqlite = dashboard.db.dialect(conn) == "sqlite"
    if sqlite:
        conn.execute("PRAGMA synchronous=OFF")  # a benchmark's store: speed over durability while seeding
    conn.execute("BEGIN")
    try:
        _seed_devices(conn, buttons, gateways, now)
        alarms, actions, opened = _seed_alarms_and_events(
            conn, rng, buttons, events, presses_per_alarm, open_alarms, now
        )
        audited = _seed_audit(conn, rng, buttons, audit_rows, now)
        troubles = _seed_troubles(conn, rng, buttons, now)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        if sqlite:
            conn.execute("PRAGMA synchronous=FULL")
    conn.execute("ANALYZE")
    seconds = round(time.perf_counter() - started, 2)
    return SeedSummary(
        gateways=gateways, buttons=len(buttons), events=events, alarms=alarms, open_alarms=opened,
        alarm_actions=actions, audit_rows=audited, troubles=troubles, seconds=seconds,
    )  # fmt: skip


def _seed_devices(conn: sqlite3.Connection, buttons: list[_Button], gateways: int, now: float) -> None:
    by_gw: dict[str, list[_Button]] = {}
    for button in buttons:
        by_gw.setdefault(button.gw, []).append(button)
    conn.executemany(
        "INSERT INTO gateways (gw, state, status_ts, version, started, updated_at, health, health_at) "
        "VALUES (?, 'online', ?, '0.1.0', ?, ?, ?, ?)",
        [
            (gw, format_epoch(now - 3600), format_epoch(now - 3600), now - 3600,
             json.dumps(health_message(gw, by_gw.get(gw, []), now), separators=(",", ":")), now - 5)
            for gw in (gateway_id(g) for g in range(gateways))
        ],
    )  # fmt: skip
    conn.executemany(
        "INSERT INTO registrations (gw, button, kind, updated_at) VALUES (?, ?, ?, ?)",
        [(b.gw, b.id, b.kind, now - 3600) for b in buttons],
    )
    conn.executemany(
        "INSERT INTO buttons (id, gw, kind, transport, site_name, lat, lon, label, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(b.id, b.gw, b.kind, b.transport, b.site, b.lat, b.lon, f"button {b.id}", now - 3600) for b in buttons],
    )


def _seed_alarms_and_events(
    conn: sqlite3.Connection,
    rng: random.Random,
    buttons: list[_Button],
    events: int,
    presses_per_alarm: int,
    open_count: int,
    now: float,
) -> tuple[int, int, int]:
    """Alarms (oldest first, numbered per kind), their presses and actions, then heartbeats. (alarms, actions, open)"""
    presses = events * 9 // 10
    alarm_count = max(open_count, presses // max(1, presses_per_alarm)) if buttons and events else 0
    numbers = {"fire": 0, "sapa": 0}
    alarms, actions, event_rows = [], [], []
    open_buttons: set[tuple[str, str]] = set()
    opened = 0
    starts = sorted(now - rng.random() * YEAR_S for _ in range(alarm_count))
    for index, opened_at in enumerate(starts):
        is_open = index >= alarm_count - open_count
        button = rng.choice(buttons)
        while is_open and (button.id, button.kind) in open_buttons:  # one open alarm per button and kind
            button = rng.choice(buttons)
        numbers[button.kind] += 1
        alarm_id = _ID_STRIDE * numbers[button.kind] + _KIND_CODE[button.kind]
        count = presses_per_alarm if index < alarm_count - 1 else max(1, presses - presses_per_alarm * index)
        count = max(1, min(count, presses - len(event_rows))) if presses > len(event_rows) else 0
        ids = [f"e-{alarm_id}-{n}" for n in range(max(count, 1))]
        for n, event_id in enumerate(ids[:count]):
            at = opened_at + n * 2.0
            ts = format_epoch(at - 0.3)
            payload = json.dumps(
                {"v": 1, "id": event_id, "gw": button.gw, "button": button.id, "kind": button.kind,
                 "type": "press", "ts": ts, "src": button.transport},
                separators=(",", ":"),
            )  # fmt: skip
            event_rows.append((event_id, button.gw, button.id, button.kind, "press", ts, button.transport, at,
                               alarm_id, payload))  # fmt: skip
        ack = opened_at + rng.uniform(5, 300)
        resolved = ack + rng.uniform(60, 3600)
        resolution = rng.choices(("real", "false_alarm", "test"), (70, 25, 5))[0]
        if is_open:
            opened += 1
            open_buttons.add((button.id, button.kind))
            state = "unacknowledged" if index % 3 == 0 else "acknowledged"
            ack = None if state == "unacknowledged" else ack
            resolved, resolution = None, None
        else:
            state = "resolved"
        alarms.append((alarm_id, numbers[button.kind], button.id, button.gw, button.kind, state, max(count, 1),
                       ids[0], ids[max(count, 1) - 1], format_epoch(opened_at), opened_at, opened_at,
                       ack, "operator" if ack else None, resolved, "operator" if resolved else None,
                       resolution))  # fmt: skip
        actions.append((alarm_id, "opened", f"gw:{button.gw}", opened_at, None, "unacknowledged", ids[0]))
        if ack is not None:
            actions.append((alarm_id, "acknowledged", "operator", ack, "unacknowledged", "acknowledged", None))
        if resolved is not None:
            actions.append((alarm_id, "resolved", "operator", resolved, "acknowledged", "resolved", None))
    conn.executemany(
        "INSERT INTO alarms (id, number, button, gw, kind, state, press_count, first_event_id, last_event_id, "
        "first_press_ts, opened_at, last_press_at, acknowledged_at, acknowledged_by, resolved_at, resolved_by, "
        "resolution) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        alarms,
    )
    conn.executemany(
        "INSERT INTO alarm_actions (alarm_id, action, actor, at, from_state, to_state, event_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        actions,
    )
    event_sql = (
        "INSERT INTO events (id, gw, button, kind, type, ts, src, received_at, alarm_id, payload) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    _insert(conn, event_sql, iter(event_rows))
    _insert(conn, event_sql, _heartbeats(rng, buttons, events - len(event_rows), now))
    return len(alarms), len(actions), opened


def _heartbeats(rng: random.Random, buttons: list[_Button], count: int, now: float) -> Iterator[tuple]:
    for n in range(count if buttons else 0):
        button = rng.choice(buttons)
        at = now - rng.random() * YEAR_S
        ts = format_epoch(at)
        payload = f'{{"v":1,"id":"h-{n}","gw":"{button.gw}","button":"{button.id}","kind":"{button.kind}",' \
                  f'"type":"heartbeat","ts":"{ts}","src":"{button.transport}"}}'  # fmt: skip
        yield (f"h-{n}", button.gw, button.id, button.kind, "heartbeat", ts, button.transport, at, None, payload)


_AUDIT_ACTIONS = (("alarm.acknowledged", "fire_operator"), ("alarm.resolved", "fire_operator"),
                  ("sapa.read", "sapa_desk"), ("alarm.escalated", None), ("user.created", "admin"))  # fmt: skip


def _seed_audit(conn: sqlite3.Connection, rng: random.Random, buttons: list[_Button], count: int, now: float) -> int:
    def rows() -> Iterator[tuple]:
        times = sorted(now - rng.random() * YEAR_S for _ in range(count))
        for at in times:
            action, role = rng.choice(_AUDIT_ACTIONS)
            kind = "sapa" if role == "sapa_desk" or (role is None and rng.random() < 0.3) else "fire"
            actor = role or "siaga"
            before = '{"state":"unacknowledged"}' if action.startswith("alarm.") else None
            after = '{"state":"acknowledged"}' if action.startswith("alarm.") else None
            subject = f"alarm:{rng.randrange(1, 10_000) * 16 + _KIND_CODE[kind]}"
            yield (at, actor, role, action, subject, kind if action != "user.created" else None, before, after,
                   "10.0.0.5" if role else None)  # fmt: skip

    return _insert(
        conn,
        "INSERT INTO audit_log (at, actor, role, action, subject, kind, before, after, ip) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows(),
    )


def _seed_troubles(conn: sqlite3.Connection, rng: random.Random, buttons: list[_Button], now: float) -> int:
    """Fifty cleared troubles per gateway over the year, and the open low batteries its health reports."""
    gateways = sorted({b.gw for b in buttons})
    rows = []
    for gw in gateways:
        for _ in range(50):
            began = now - rng.random() * YEAR_S
            rows.append((f"gateway_offline:{gw}", "gateway_offline", gw, None, None, "offline", began, began + 5,
                         began + rng.uniform(60, 7200)))  # fmt: skip
    for button in (b for b in buttons if b.transport == "lora" and low_battery(b.id)):
        rows.append((f"low_battery:{button.id}", "low_battery", button.gw, button.id, button.kind, "battery 3300 mV",
                     now - 86400, now - 86400, None))  # fmt: skip
    conn.executemany(
        "INSERT INTO troubles (key, type, gw, button, kind, detail, began_at, detected_at, cleared_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return len(rows)
