"""Nothing silent: silent buttons, hung and dead gateways, wrong clocks and the rest become troubles.

The rules (``dashboard.devices.supervision.evaluate``) are tested on their own first;
then the real parts: LoRa nodes running the firmware over the virtual air, a
gateway process stopped (SIGSTOP: hung) and killed (SIGKILL: dead), wired
buttons on mock pins, and the troubles arriving on a signed-in board's stream.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from dashboard.devices.supervision import GatewayFacts, SupervisionSettings, TroubleType, evaluate
from firmware_bridge.broker import BrokerSettings
from firmware_bridge.timeutil import format_epoch
from gateway.app import Gateway
from gateway.config import GatewayConfig
from sim.mosquitto import Mosquitto
from sim.radio import Air, VirtualNode
from sim.servers import DashboardServer, dashboard_config
from sim.sse import SSEClient, SSEEvent
from sim.stack import SmallDisk
from sim.stores import server as stores_server
from sim.stores import store_at
from sim.webclient import DashboardClient, HTTPStatusError

from .conftest import OPERATOR, SAPA_DESK, gateway_toml, press, signed_in
from .mqttprobe import Probe
from .test_ingest import wait_alarm
from .test_lora import make_config, plugged_rylr
from .waiting import poll_until

FAST = SupervisionSettings(
    gateway_silent_s=2.5,
    radio_button_silent_s=2.5,
    button_stuck_s=1.0,
    clock_skew_s=60.0,
    backlog_events=100,
    backlog_age_s=60.0,
    check_interval_s=0.2,
)
NOW = 1_800_000_000.0
WAIT_S = 15


# -- the rules ---------------------------------------------------------------------------------


def health(at: float = NOW, **extra: object) -> dict:
    return {
        "v": 1,
        "gw": "gw-a",
        "ts": format_epoch(at),
        "uptime_s": 10,
        "outbox": {"depth": 0, "oldest_ts": None, "memory_only": 0},
        "counters": {},
        **extra,
    }


def facts(state: str = "online", health_payload: dict | None = None, health_at: float | None = NOW) -> GatewayFacts:
    return GatewayFacts("gw-a", state, NOW - 1000, health_payload if health_payload else health(), health_at)


BUTTONS = {"wired-1": ("gw-a", "fire", "gpio"), "lora-1": ("gw-a", "sapa", "lora")}


def node(age: float | None, **flags: object) -> dict:
    return {
        "radio": {
            "module": {"type": "rylr998", "port": "/dev/x", "state": "open"},
            "nodes": {"1": {"button": "lora-1", "age_s": age, "battery_mv": 3300, **flags}},
        }
    }


def types(troubles) -> dict[str, TroubleType]:
    return {trouble.key: trouble.type for trouble in troubles}


def test_a_healthy_gateway_and_its_buttons_have_no_trouble() -> None:
    assert evaluate(NOW, [facts(health_payload=health(**node(1.0)))], BUTTONS, FAST) == []


def test_an_offline_gateway_is_one_trouble_not_one_per_button() -> None:
    (trouble,) = evaluate(NOW, [facts(state="offline")], BUTTONS, FAST)
    assert trouble.type is TroubleType.GATEWAY_OFFLINE and trouble.began_at == NOW - 1000


def test_a_gateway_whose_health_stopped_is_silent_since_its_last_health() -> None:
    (trouble,) = evaluate(NOW + 10, [facts(health_payload=health(**node(1.0)))], BUTTONS, FAST)
    assert trouble.type is TroubleType.GATEWAY_SILENT and trouble.began_at == NOW


def test_a_radio_button_not_heard_within_its_window_is_missing_since_it_was_last_heard() -> None:
    (trouble,) = evaluate(NOW, [facts(health_payload=health(**node(30.0)))], BUTTONS, FAST)
    assert (trouble.type, trouble.button, trouble.kind) == (TroubleType.BUTTON_MISSING, "lora-1", "sapa")
    assert trouble.began_at == NOW - 30.0
    never = evaluate(NOW, [facts(health_payload=health())], BUTTONS, FAST)
    assert types(never) == {"button_missing:lora-1": TroubleType.BUTTON_MISSING}


def test_a_radio_button_heard_by_another_gateway_is_not_missing() -> None:
    other = GatewayFacts("gw-b", "online", NOW, {**health(**node(1.0)), "gw": "gw-b"}, NOW)
    assert evaluate(NOW, [facts(health_payload=health(**node(30.0))), other], BUTTONS, FAST) == []


def test_battery_tamper_stuck_clock_backlog_disk_and_radio_module() -> None:
    payload = health(
        at=NOW + 600,  # the gateway's clock: ten minutes ahead
        outbox={"depth": 3, "oldest_ts": format_epoch(NOW + 600 - 120), "memory_only": 2},
        buttons=[{"id": "wired-1", "pressed": True, "pressed_for_s": 30.0}],
        **node(1.0, low_battery=True, tamper=True),
    )
    payload["radio"]["module"]["state"] = "missing"
    found = types(evaluate(NOW, [facts(health_payload=payload)], BUTTONS, FAST))
    assert found == {
        "gateway_clock:gw-a": TroubleType.GATEWAY_CLOCK,
        "gateway_backlog:gw-a": TroubleType.GATEWAY_BACKLOG,
        "gateway_disk:gw-a": TroubleType.GATEWAY_DISK,
        "radio_missing:gw-a": TroubleType.RADIO_MISSING,
        "low_battery:lora-1": TroubleType.LOW_BATTERY,
        "tamper:lora-1": TroubleType.TAMPER,
        "button_stuck:wired-1": TroubleType.BUTTON_STUCK,
    }


def test_a_wrong_gateway_clock_cannot_hide_a_silent_button() -> None:
    # Ages are measured on the gateway's own clock: an hour of skew changes nothing.
    payload = health(at=NOW - 3600, **node(30.0))
    found = types(evaluate(NOW, [facts(health_payload=payload)], BUTTONS, FAST))
    assert found["button_missing:lora-1"] is TroubleType.BUTTON_MISSING
    assert found["gateway_clock:gw-a"] is TroubleType.GATEWAY_CLOCK


# -- a gateway's odd health: ignored, bounded, isolated (issue 9, the MQTT fuzzer) -------------------


def raw_health(gw: str = "gw-a", fragment: str = "", at: float = NOW) -> dict:
    """A health message with ``fragment`` (JSON members, as sent) spliced in: last one wins.

    Its core is schema-valid; the fragment may not be (the schema now types every field, but what an
    older dashboard stored was checked only for the core).
    """
    base = {"v": 1, "gw": gw, "ts": format_epoch(at), "uptime_s": 1.0, "outbox": {"depth": 0}, "counters": {}}
    return json.loads(json.dumps(base)[:-1] + ("," + fragment if fragment else "") + "}")


BIG = "1" + "0" * 400  # a 401-digit integer: float() of it raises OverflowError
#: What the fuzzer found (tests/test_fuzz_mqtt.py ``FOUND``), and more of each class.
ODD_HEALTH = {
    # 1: absurd times, committed as a trouble whose began_at no timestamp can show
    "buttons[].pressed_for_s 1e308": '"buttons":[{"id":"b","pressed_for_s":1e308}]',
    "ts year 9999, outbox.oldest_ts year 1": (
        '"ts":"9999-12-31T23:59:59.999Z","outbox":{"depth":5,"oldest_ts":"0001-01-01T00:00:00.000Z"}'
    ),
    "ts 9999 -23:59, oldest_ts year 1 +23:59": (
        '"ts":"9999-12-31T23:59:59.999-23:59","outbox":{"depth":5,"oldest_ts":"0001-01-01T00:00:00.000+23:59"}'
    ),
    "buttons[].pressed_for_s Infinity": '"buttons":[{"id":"b","pressed_for_s":Infinity}]',
    "buttons[].pressed_for_s NaN": '"buttons":[{"id":"b","pressed_for_s":NaN}]',
    "radio.nodes.*.age_s -1e308": '"radio":{"nodes":{"1":{"button":"lora-1","age_s":-1e308}}}',
    # 2: shapes that stopped every gateway's supervision
    "radio.module a string": '"radio":{"module":"x"}',
    "radio.nodes a list": '"radio":{"nodes":[1]}',
    "radio.nodes.* null": '"radio":{"nodes":{"1":null}}',
    "buttons an int": '"buttons":5',
    "buttons [null]": '"buttons":[null]',
    "buttons[].id a list": '"buttons":[{"id":[1],"pressed_for_s":100}]',
    "buttons[].pressed_for_s 10**400": f'"buttons":[{{"id":"b","pressed_for_s":{BIG}}}]',
    "radio.nodes.*.age_s 10**400": f'"radio":{{"nodes":{{"1":{{"button":"lora-1","age_s":{BIG}}}}}}}',
    "outbox.depth 1e308, memory_only 10**400": f'"outbox":{{"depth":1e308,"memory_only":{BIG}}}',
    "radio.module.type a lone surrogate, outbox_error 100 kB": (
        '"radio":{"module":{"state":"missing","type":"\\ud800","port":[1]}},"outbox_error":"' + "x" * 100_000 + '"'
    ),
    "radio.nodes.*.battery_mv a string, low": '"radio":{"nodes":{"1":{"button":"lora-1","low_battery":true,'
    '"battery_mv":"x","rssi":1e308,"snr":null,"age_s":1}}}',
    # 3: shapes that broke the device view
    "radio true": '"radio":true',
    "radio [1]": '"radio":[1]',
    "radio.nodes.*.age_s a string": '"radio":{"nodes":{"1":{"button":"b","age_s":"x"}}}',
    "buttons[].pressed a string": '"buttons":[{"id":"wired-1","pressed":"yes","pressed_for_s":"long"}]',
}
#: gw-b is in order but for a stuck button: its trouble must be found whatever gw-a sends.
GW_B = GatewayFacts(
    "gw-b", "online", NOW - 1000, raw_health("gw-b", '"buttons":[{"id":"fire-b","pressed_for_s":30}]'), NOW
)
BUTTONS_AB = {**BUTTONS, "fire-b": ("gw-b", "fire", "gpio")}


def test_no_odd_health_field_stops_supervision_or_yields_an_unbounded_trouble() -> None:
    from dashboard.devices.health import MAX_SPAN_S

    for name, fragment in ODD_HEALTH.items():
        unreadable: list[tuple[str, Exception]] = []
        bad = GatewayFacts("gw-a", "online", NOW - 1000, raw_health(fragment=fragment), NOW)
        troubles = evaluate(NOW, [bad, GW_B], BUTTONS_AB, FAST, lambda gw, exc, seen=unreadable: seen.append((gw, exc)))
        found = types(troubles)
        assert unreadable == [], name  # read, not merely survived
        assert found["button_stuck:fire-b"] is TroubleType.BUTTON_STUCK, name
        for trouble in troubles:
            assert NOW - MAX_SPAN_S <= trouble.began_at <= NOW, (name, trouble)
            assert len(trouble.detail) < 400 and trouble.detail.encode("utf-8"), (name, trouble)
            format_epoch(trouble.began_at)


def test_absurd_spans_in_health_are_believed_as_ten_years_at_most() -> None:
    from dashboard.devices.health import MAX_SPAN_S

    def found(fragment: str) -> dict[str, object]:
        bad = GatewayFacts("gw-a", "online", NOW - 1000, raw_health(fragment=fragment), NOW)
        return {t.key: t for t in evaluate(NOW, [bad], BUTTONS, FAST)}

    stuck = found(ODD_HEALTH["buttons[].pressed_for_s 1e308"])["button_stuck:b"]
    assert stuck.began_at == NOW - MAX_SPAN_S and stuck.detail == f"held down for {MAX_SPAN_S:.0f} s"
    assert found(ODD_HEALTH["buttons[].pressed_for_s 10**400"])["button_stuck:b"].began_at == NOW - MAX_SPAN_S
    assert "button_stuck:b" not in found(ODD_HEALTH["buttons[].pressed_for_s NaN"])
    backlog = found(ODD_HEALTH["ts year 9999, outbox.oldest_ts year 1"])
    assert backlog["gateway_backlog:gw-a"].began_at == NOW - MAX_SPAN_S
    assert backlog["gateway_clock:gw-a"].began_at == NOW
    missing = found(ODD_HEALTH["radio.nodes.*.age_s 10**400"])["button_missing:lora-1"]
    assert missing.began_at == NOW - MAX_SPAN_S
    # A node whose age is no number was not heard: its button is missing, not hidden.
    assert "button_missing:lora-1" in found('"radio":{"nodes":{"1":{"button":"lora-1","age_s":"x"}}}')
    assert found(ODD_HEALTH["outbox.depth 1e308, memory_only 10**400"])["gateway_disk:gw-a"].detail.endswith(
        f"{10**12} event(s) only in memory"
    )
    radio = found(ODD_HEALTH["radio.module.type a lone surrogate, outbox_error 100 kB"])
    assert radio["radio_missing:gw-a"].detail == "LoRa module ? missing on None"  # no module type: unknown
    assert len(radio["gateway_disk:gw-a"].detail) < 300


def test_health_is_read_in_one_place_from_stored_text_a_decoded_object_or_a_payload() -> None:
    from dashboard.devices.health import MAX_SPAN_S, read_health
    from firmware_bridge.payloads import ButtonHealth, ModuleState, NodeHealth, OutboxHealth, decode_health

    # An older gateway's: no memory_only, no pressed, no module, a node with only its button.
    old = raw_health(
        fragment='"buttons":[{"id":"wired-1","pressed_for_s":2}],"radio":{"nodes":{"1":{"button":"lora-1"}}}'
    )
    for stored in (old, json.dumps(old), json.dumps(old).encode(), decode_health(json.dumps(old))):
        health = read_health(stored)
        assert (health.gw, health.ts, health.uptime_s) == ("gw-a", format_epoch(NOW), 1.0)
        assert health.outbox == OutboxHealth(depth=0) and health.version is None and health.outbox_ok is None
        assert health.buttons == (ButtonHealth("wired-1", pressed=None, pressed_for_s=2.0),)
        assert health.radio is not None and health.radio.module is None
        assert health.radio.nodes == {"1": NodeHealth("lora-1")}
    # A row an older dashboard stored with a fractional battery reading keeps its (rounded) value.
    fractional = raw_health(fragment='"radio":{"nodes":{"1":{"button":"lora-1","battery_mv":3712.6}}}')
    assert read_health(json.dumps(fractional)).radio.nodes["1"].battery_mv == 3713
    # Nothing to read: a health that knows nothing, not an error.
    for nothing in (None, "", "{not json", "[1]", 5):
        empty = read_health(nothing)
        assert (empty.ts, empty.outbox.depth, empty.buttons, empty.radio) == (None, None, (), None)
    # A valid payload is bounded as well: a span of 1e308 s is believed as ten years.
    sent = decode_health(json.dumps(raw_health(fragment=ODD_HEALTH["buttons[].pressed_for_s 1e308"])))
    assert read_health(sent).buttons[0].pressed_for_s == MAX_SPAN_S
    # Codes from a newer gateway are unknown here, not an error.
    newer = read_health(raw_health(fragment='"radio":{"module":{"type":"sx1262","state":"resetting"}}'))
    assert newer.radio is not None and newer.radio.module is not None
    assert (newer.radio.module.type, newer.radio.module.state) == (None, None)
    assert read_health(raw_health(fragment='"radio":{"module":{"state":"missing"}}')).radio.module.state is (
        ModuleState.MISSING
    )


def test_a_gateway_whose_health_cannot_be_read_is_a_trouble_and_the_others_are_still_supervised() -> None:
    class Exploding(dict):
        """A health message that breaks whatever reads it: a bug the tolerant reader did not foresee."""

        def get(self, *args: object) -> object:
            raise RuntimeError("boom")

    for broken in (
        GatewayFacts("gw-a", "online", NOW - 1000, Exploding(health(**node(1.0))), NOW),
        GatewayFacts("gw-a", "online", NOW - 1000, health(**node(1.0)), "x"),  # type: ignore[arg-type]
    ):
        told: list[str] = []
        troubles = evaluate(NOW, [broken, GW_B], BUTTONS_AB, FAST, lambda gw, exc, seen=told: seen.append(gw))
        assert types(troubles) == {
            "gateway_health_unreadable:gw-a": TroubleType.GATEWAY_HEALTH_UNREADABLE,
            "button_stuck:fire-b": TroubleType.BUTTON_STUCK,  # the round went on
        }
        (unreadable,) = [t for t in troubles if t.gw == "gw-a"]
        assert unreadable.kind is None and unreadable.began_at <= NOW  # every role's board shows it
        assert told == ["gw-a"]


def _store(tmp_path: Path):
    from dashboard.db import connect, init_schema

    conn = connect(store_at(tmp_path / "store.db"))
    init_schema(conn)
    return conn


EVERYONE = frozenset({"fire", "sapa"})


def test_stored_troubles_with_absurd_times_are_shown_bounded_and_never_break_a_view(tmp_path: Path) -> None:
    from dashboard.devices.health import MAX_SPAN_S
    from dashboard.devices.supervision import Audience, Trouble, open_troubles, record

    conn = _store(tmp_path)
    # Rows a dashboard before the bound stored (or anything else wrote): they must not break the board.
    rows = {
        "gw-0": (-1e308, NOW),
        "gw-1": (1e308, NOW),
        "gw-2": (-4 * 62e9, NOW),
        "gw-3": (NOW, 1e308),
    }
    if stores_server() is None:
        rows["gw-4"] = ("x", NOW)  # SQLite keeps text in a REAL column; PostgreSQL refuses it
    for gw, (began, detected) in rows.items():
        conn.execute(
            "INSERT INTO troubles (key, type, gw, detail, began_at, detected_at) VALUES (?, ?, ?, ?, ?, ?)",
            (f"gateway_backlog:{gw}", "gateway_backlog", gw, "x", began, detected),
        )
    views = {view["gw"]: view for view in open_troubles(conn, Audience(EVERYONE, EVERYONE))}
    assert set(views) == set(rows)
    for view in views.values():
        assert view["began"] <= view["detected"] and view["cleared"] is None
    assert views["gw-0"]["began"] == views["gw-2"]["began"] == format_epoch(NOW - MAX_SPAN_S)  # ten years before
    assert {views[gw]["began"] for gw in rows if gw in ("gw-1", "gw-4")} == {format_epoch(NOW)}  # never after found
    assert views["gw-3"]["detected"] == "9999-12-30T23:59:59.000Z"  # the last a timestamp writes, a day spare
    # What is recorded now is bounded before it is stored.
    changed = record(conn, [Trouble(TroubleType.BUTTON_STUCK, "gw-x", "b", None, "held", -1e308)], NOW)
    assert [view["began"] for view in changed if view["button"] == "b"] == [format_epoch(NOW - MAX_SPAN_S)]
    assert conn.execute("SELECT began_at FROM troubles WHERE key = 'button_stuck:b'").fetchone()[0] == (
        NOW - MAX_SPAN_S
    )


@pytest.mark.sqlite_only  # a time stored as text: SQLite's typeless columns
def test_the_supervisor_counts_and_logs_a_gateway_it_cannot_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from dashboard.devices.supervision import Supervisor
    from dashboard.ingest.hub import Hub

    conn = _store(tmp_path)
    rows = [("gw-a", "x"), ("gw-b", NOW)]  # gw-a's health_at is text: reading it raises
    for gw, at in rows:
        payload = raw_health(gw, '"buttons":[{"id":"fire-b","pressed_for_s":30}]' if gw == "gw-b" else "")
        conn.execute(
            "INSERT INTO gateways (gw, state, updated_at, health, health_at) VALUES (?, 'online', ?, ?, ?)",
            (gw, NOW, json.dumps(payload), at),
        )
    supervisor = Supervisor(store_at(tmp_path / "store.db"), Hub(), FAST)
    with caplog.at_level("ERROR", logger="dashboard.devices.supervision"):
        first = supervisor.check(conn, now=NOW)
        supervisor.check(conn, now=NOW + 1)
    assert {(view["type"], view["subject"]) for view in first} == {
        ("gateway_health_unreadable", "gw-a"),
        ("button_stuck", "fire-b"),
    }
    assert supervisor.counters.get("health_unreadable") == 2  # every round it fails
    logged = [r for r in caplog.records if "gw-a" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info  # once, with its traceback


def test_the_device_view_shows_odd_health_fields_as_unknown(tmp_path: Path) -> None:
    from dashboard.devices.supervision import Audience
    from dashboard.devices.view import device_overview

    conn = _store(tmp_path)
    gateways = {f"gw-{n}": fragment for n, fragment in enumerate(ODD_HEALTH.values())}
    for gw, fragment in gateways.items():
        conn.execute(
            "INSERT INTO gateways (gw, state, updated_at, health, health_at) VALUES (?, 'online', ?, ?, ?)",
            (gw, NOW, json.dumps(raw_health(gw, fragment)), NOW - 5),
        )
    for button, transport in (("lora-1", "lora"), ("b", "lora"), ("wired-1", "gpio")):
        conn.execute(
            "INSERT INTO buttons (id, gw, kind, transport, site_name, lat, lon, updated_at) "
            "VALUES (?, 'gw-0', 'fire', ?, 'Pasar', -4.3, 122.3, ?)",
            (button, transport, NOW),
        )
    view = device_overview(conn, Audience(EVERYONE, EVERYONE), NOW)
    assert len(view["gateways"]) == len(gateways)
    for gateway in view["gateways"]:
        assert gateway["health_age_s"] == 5
        assert gateway["outbox_depth"] is None or 0 <= gateway["outbox_depth"] <= 10**12
        assert gateway["radio"] in (None, "missing")
    buttons = {b["id"]: b for b in view["buttons"]}
    assert buttons["lora-1"]["battery_mv"] is None and buttons["lora-1"]["rssi"] is None  # a string, 1e308
    assert buttons["lora-1"]["heard_s"] == 6  # the node that said age_s 1
    assert buttons["b"]["heard_s"] is None and buttons["wired-1"]["pressed"] is None
    json.dumps(view, allow_nan=False)


# -- the real parts ------------------------------------------------------------------------------


@pytest.fixture
def dashboard(tmp_path: Path, broker_settings: BrokerSettings) -> Iterator[DashboardServer]:
    config = dashboard_config(tmp_path / "dashboard", broker_settings, SIAGA_SUPERVISION=FAST)
    server = DashboardServer(config).start()
    server.create_user(*OPERATOR, "fire_operator")
    server.create_user(*SAPA_DESK, "sapa_desk")
    yield server
    server.stop()


@pytest.fixture
def board(dashboard: DashboardServer) -> Iterator[SSEClient]:
    with signed_in(dashboard, OPERATOR).stream() as stream:
        yield stream


def trouble_event(stream: SSEClient, kind: str, subject: str, *, cleared: bool = False) -> dict:
    """Wait for a trouble of ``kind`` about ``subject`` to open (or clear), as the board sees it."""

    def matches(event: SSEEvent) -> bool:
        if event.event != "trouble":
            return False
        data = event.json()
        return (
            data["type"] == kind
            and subject in (data["button"], data["gw"])
            and (data["cleared"] is not None) == cleared
        )

    return stream.wait_for(matches, WAIT_S).json()


def open_troubles(client: DashboardClient) -> set[tuple[str, str]]:
    return {(t["type"], t["button"] or t["gw"]) for t in client.get_json("/api/troubles")["troubles"]}


KEYS = {1001: bytes(range(16)), 1002: bytes(range(16, 32))}


def lora_body(tmp_path: Path, port: Path) -> dict[str, Any]:
    """A LoRa module on ``port`` with buttons lora-1001 (fire) and lora-1002 (SAPA): ``make_config``'s parts."""
    from sim.gatewayconf import site, toml_text

    keys = tmp_path / "lora-keys.toml"
    keys.write_text(toml_text({"keys": {str(node): key.hex() for node, key in KEYS.items()}}))
    keys.chmod(0o600)
    buttons = [
        {"id": f"lora-{node}", "node": node, "kind": kind, "site": site("Pasar Andoolo", -4.35, 122.378)}
        for node, kind in ((1001, "fire"), (1002, "sapa"))
    ]
    return {
        "lora": {"port": port, "module": "rylr998", "keys_file": keys, "reopen_s": 0.2},
        "lora_buttons": buttons,
    }


def radio_node(air: Air, tmp_path: Path, number: int, kind: str, battery_mv: int = 3900) -> VirtualNode:
    from sim.radio import NodeSpec

    settings = {"RETRY_BASE_MS": 300, "RETRY_MAX_MS": 1500, "HEARTBEAT_S": 0.5, "BATTERY_CHECK_S": 0.5}
    spec = NodeSpec(number, KEYS[number], kind=kind, battery_mv=battery_mv, settings=settings)
    return VirtualNode(air, spec, tmp_path / "nodes", seed=number)


def test_a_silent_lora_button_becomes_a_trouble_and_clears_when_heard_again(
    tmp_path: Path,
    mosquitto: Mosquitto,
    dashboard: DashboardServer,
    board: SSEClient,
    start_gateway: Callable[..., Gateway],
) -> None:
    from sim.radio import Impairments

    air = Air(Impairments(time_scale=0.1), seed=3)
    host = plugged_rylr(air, tmp_path / "ttyLORA0")
    nodes = [radio_node(air, tmp_path, 1001, "fire"), radio_node(air, tmp_path, 1002, "sapa")]
    try:
        config = _with_health_interval(make_config(tmp_path, mosquitto, lora_body(tmp_path, host.path)), 1.0)
        start_gateway(config)
        nodes[0].close()  # its battery dies
        missing = trouble_event(board, "button_missing", "lora-1001")
        assert missing["gw"] == "gw-test" and missing["kind"] == "fire"
        assert ("button_missing", "lora-1001") in open_troubles(signed_in(dashboard, OPERATOR))

        # A new battery, but low; and someone opens the case.
        back = radio_node(air, tmp_path, 1001, "fire", battery_mv=3300)
        nodes.append(back)
        trouble_event(board, "button_missing", "lora-1001", cleared=True)
        trouble_event(board, "low_battery", "lora-1001")
        back.open_case()
        trouble_event(board, "tamper", "lora-1001")
        back.open_case(False)
        trouble_event(board, "tamper", "lora-1001", cleared=True)

        # The SAPA node's troubles are the SAPA desk's: the fire post never sees them.
        nodes[1].close()
        sapa_desk = signed_in(dashboard, SAPA_DESK)
        poll_until(  # another thread records troubles; the API has no event to wait on
            lambda: open_troubles(sapa_desk),
            lambda troubles: ("button_missing", "lora-1002") in troubles,
            timeout=WAIT_S,
            interval=0.1,
            what="the SAPA desk never saw its button go missing",
        )
        assert ("button_missing", "lora-1002") not in open_troubles(signed_in(dashboard, OPERATOR))
    finally:
        for node_ in nodes:
            node_.close()
        host.close()
        air.close()


def _with_health_interval(config: GatewayConfig, seconds: float) -> GatewayConfig:
    from dataclasses import replace

    return replace(config, health_interval_s=seconds)


def test_a_stuck_wired_button_becomes_a_trouble(
    make_gateway_config: Callable[..., GatewayConfig],
    start_gateway: Callable[..., Gateway],
    pin_factory: MockFactory,
    board: SSEClient,
) -> None:
    start_gateway(_with_health_interval(make_gateway_config(), 1.0))
    pin_factory.pin(17).drive_low()  # jammed in
    trouble_event(board, "button_stuck", "fire-1")
    pin_factory.pin(17).drive_high()
    trouble_event(board, "button_stuck", "fire-1", cleared=True)


def gateway_process(tmp_path: Path, mosquitto: Mosquitto) -> subprocess.Popen[bytes]:
    config = gateway_toml(tmp_path / "gateway.toml", port=mosquitto.port, gw_id="gw-proc")
    text = config.read_text().replace("health_interval_s = 60", "health_interval_s = 1")
    config.write_text(text)
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(config)],
        env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"},
        stderr=subprocess.DEVNULL,
    )


def test_a_hung_gateway_becomes_silent_and_a_dead_one_offline(
    tmp_path: Path, mosquitto: Mosquitto, board: SSEClient
) -> None:
    process = gateway_process(tmp_path, mosquitto)
    try:
        board.wait_for(lambda e: e.event == "gateway" and e.json()["gw"] == "gw-proc", WAIT_S)
        process.send_signal(signal.SIGSTOP)  # hung: its connection stays open, its health stops
        silent = trouble_event(board, "gateway_silent", "gw-proc")
        assert "no health" in silent["detail"]
        process.send_signal(signal.SIGCONT)
        trouble_event(board, "gateway_silent", "gw-proc", cleared=True)
        process.send_signal(signal.SIGKILL)  # dead: the broker publishes its last will
        trouble_event(board, "gateway_offline", "gw-proc")
    finally:
        process.kill()
        process.wait()
    again = gateway_process(tmp_path, mosquitto)
    try:
        trouble_event(board, "gateway_offline", "gw-proc", cleared=True)
    finally:
        again.terminate()
        again.wait(10)


def test_a_gateway_clock_far_off_is_flagged_and_does_not_reorder_the_board(
    make_gateway_config: Callable[..., GatewayConfig],
    pin_factory: MockFactory,
    dashboard: DashboardServer,
    board: SSEClient,
) -> None:
    operator = signed_in(dashboard, OPERATOR)
    config = _with_health_interval(make_gateway_config(), 1.0)
    gateway = Gateway(config, pin_factory=pin_factory, clock=lambda: time.time() - 7200).start()
    try:
        clock = trouble_event(board, "gateway_clock", "gw-test")
        assert re.fullmatch(r"clock 7[12]\d\d s behind", clock["detail"]), clock["detail"]
        press(pin_factory, 17)
        alarm = wait_alarm(operator, lambda a: a["button"] == "fire-1")
        # The board orders by when the dashboard received the press, not by the gateway's stamp.
        assert alarm["opened_at"] > format_epoch(time.time() - 60)
        assert alarm["first_press_ts"] < format_epoch(time.time() - 7000)
    finally:
        gateway.close()


@pytest.mark.skipif(SmallDisk.available() is not None, reason=str(SmallDisk.available()))
def test_a_full_disk_is_reported_at_once_and_the_press_still_arrives(
    tmp_path: Path,
    make_gateway_config: Callable[..., GatewayConfig],
    start_gateway: Callable[..., Gateway],
    pin_factory: MockFactory,
    dashboard: DashboardServer,
    board: SSEClient,
) -> None:
    disk = SmallDisk(tmp_path / "small-disk").mount()
    try:
        # health_interval_s is 60 here: the trouble can only come from the gateway's immediate report.
        start_gateway(make_gateway_config(data_dir=disk.path))
        operator = signed_in(dashboard, OPERATOR)
        disk.fill()
        press(pin_factory, 17)
        trouble = trouble_event(board, "gateway_disk", "gw-test")
        assert "full" in trouble["detail"], trouble["detail"]  # SQLite's "database or disk is full"
        alarm = wait_alarm(operator, lambda a: a["button"] == "fire-1")  # kept in memory, delivered
        assert alarm["press_count"] == 1
        disk.free()
        press(pin_factory, 17)  # stored on disk again: the trouble clears
        trouble_event(board, "gateway_disk", "gw-test", cleared=True)
        assert wait_alarm(operator, lambda a: a["press_count"] == 2)["id"] == alarm["id"]
    finally:
        disk.unmount()


def test_the_device_view_shows_last_heard_battery_and_radio_quality_by_role(
    tmp_path: Path,
    mosquitto: Mosquitto,
    dashboard: DashboardServer,
    start_gateway: Callable[..., Gateway],
) -> None:
    from sim.radio import Impairments

    dashboard.create_user("teknisi", "teknisi-password-1", "technician")
    air = Air(Impairments(time_scale=0.1), seed=5)
    host = plugged_rylr(air, tmp_path / "ttyLORA0")
    nodes = [radio_node(air, tmp_path, 1001, "fire", battery_mv=3300), radio_node(air, tmp_path, 1002, "sapa")]
    try:
        config = _with_health_interval(make_config(tmp_path, mosquitto, lora_body(tmp_path, host.path)), 1.0)
        start_gateway(config)
        technician = signed_in(dashboard, ("teknisi", "teknisi-password-1"))
        status, page = technician.get_page("/")  # a technician lands on the device view
        assert status == 200 and 'id="buttons"' in page
        view = poll_until(  # the gateway's next health message: nothing to wait on from here
            lambda: technician.get_json("/api/devices"),
            lambda view: all(
                {b["id"]: b for b in view["buttons"]}.get(b, {}).get("battery_mv") for b in ("lora-1001", "lora-1002")
            ),
            timeout=WAIT_S,
            interval=0.1,
            what="no radio facts in the device view",
        )
        buttons = {b["id"]: b for b in view["buttons"]}
        fire = buttons["lora-1001"]
        assert fire["battery_mv"] == 3300 and fire["via"] == "gw-test" and fire["heard_s"] is not None
        assert isinstance(fire["rssi"], int) and fire["heard_s"] < 30
        assert [g["gw"] for g in view["gateways"]] == ["gw-test"] and view["gateways"][0]["state"] == "online"
        assert set(buttons) == {"lora-1001", "lora-1002"}  # technicians maintain SAPA buttons too
        operator_view = signed_in(dashboard, OPERATOR).get_json("/api/devices")
        assert {b["kind"] for b in operator_view["buttons"]} == {"fire"}
        _, page = technician.get_page("/devices")
        assert 'data-button="lora-1001"' in page and "3.30 V" in page
    finally:
        for node_ in nodes:
            node_.close()
        host.close()
        air.close()


def wait_inventory(client: DashboardClient) -> None:
    poll_until(  # another process's message: the API is what we can watch
        lambda: {b["id"] for b in client.get_json("/api/devices")["buttons"]},
        lambda ids: "fire-1" in ids,
        timeout=WAIT_S,
        what="the gateway's inventory never arrived",
    )


def set_service(client: DashboardClient, button: str, mode: str, reason: str = "", hours: str = "4") -> str:
    _, page = client.post_form(f"/devices/buttons/{button}/service", {"mode": mode, "reason": reason, "hours": hours})
    return page


def test_a_button_out_of_service_raises_no_alarm_stays_a_trouble_and_comes_back(
    dashboard: DashboardServer, gateway: Gateway, pin_factory: MockFactory, board: SSEClient
) -> None:
    dashboard.create_user("teknisi", "teknisi-password-1", "technician")
    technician = signed_in(dashboard, ("teknisi", "teknisi-password-1"))
    operator = signed_in(dashboard, OPERATOR)
    wait_inventory(technician)
    page = set_service(technician, "fire-1", "out_of_service", "Tombol retak, menunggu suku cadang")
    assert "dinyatakan tidak beroperasi" in page and 'data-mode="out_of_service"' in page
    press(pin_factory, 17)
    trouble = trouble_event(board, "button_out_of_service", "fire-1")
    assert "Tombol retak" in trouble["detail"]
    poll_until(  # the supervisor's next round; nothing to wait on from outside
        lambda: str(operator.get_json("/api/troubles")),
        lambda troubles: "1 press(es) without alarm" in troubles,
        timeout=WAIT_S,
        interval=0.1,
        what="the suppressed press was never counted",
    )
    assert operator.get_json("/api/alarms?state=all")["alarms"] == []  # stored, but no alarm
    assert gateway.pump.wait_drained(WAIT_S)  # and receipted like any event: nothing is left waiting

    set_service(technician, "fire-1", "in_service")
    trouble_event(board, "button_out_of_service", "fire-1", cleared=True)
    press(pin_factory, 17)
    assert wait_alarm(operator, lambda a: a["button"] == "fire-1")["test"] is False
    with pytest.raises(HTTPStatusError) as caught:  # operators do not set buttons aside
        # a complete request with this session's CSRF token: only the role check can refuse it
        operator.post_json("/devices/buttons/fire-1/service", {"mode": "out_of_service", "reason": "x"})
    assert caught.value.status == 403
    assert operator.post_form("/devices/buttons/fire-1/service", {"mode": "out_of_service", "reason": "x"})[0] == 403
    for mode, reason, hours, message in (
        ("broken", "x", "4", "mode must be one of"),
        ("out_of_service", "", "4", "a reason is required"),
        ("out_of_service", "x", "0", "hours must be more than 0"),
        ("out_of_service", "x", "9999", "at most 720"),
        ("out_of_service", "x", "soon", "hours must be a number"),
    ):
        assert message in set_service(technician, "fire-1", mode, reason, hours)
    assert "no button" in set_service(technician, "no-such-button", "test", "x")


def test_a_button_in_test_mode_raises_a_silent_test_alarm_that_closes_itself(
    dashboard: DashboardServer, gateway: Gateway, pin_factory: MockFactory, board: SSEClient
) -> None:
    from dashboard.db import connect
    from dashboard.live import EXTENSION

    dashboard.create_user("teknisi", "teknisi-password-1", "technician")
    technician = signed_in(dashboard, ("teknisi", "teknisi-password-1"))
    wait_inventory(technician)
    set_service(technician, "fire-1", "test", "Uji bulanan")
    press(pin_factory, 17)
    alarm = board.wait_for(lambda e: e.event == "alarm" and e.json()["button"] == "fire-1", WAIT_S).json()
    assert alarm["test"] is True and alarm["state"] == "unacknowledged"
    assert gateway.wait_for_indication("fire-1", "received", WAIT_S)  # the technician sees it got through
    escalator = dashboard.app.extensions[EXTENSION].escalator
    conn = connect(dashboard.config["DATABASE"])
    try:
        assert escalator.check(conn, now=time.time() + 30) == []  # a test is never escalated
        escalator.check(conn, now=time.time() + 120)  # a minute on: the dashboard closes it
    finally:
        conn.close()
    closed = board.wait_for(
        lambda e: e.event == "alarm" and e.json()["id"] == alarm["id"] and not e.json()["open"], WAIT_S
    )
    assert closed.json()["resolution"] == "test" and closed.json()["resolved_by"] == "siaga"
    assert gateway.wait_for_indication("fire-1", "resolved", WAIT_S)  # and the LED goes out
    assert closed.json()["escalation"] == 0


def test_odd_health_on_the_wire_leaves_the_board_the_views_and_other_gateways_supervised(
    dashboard: DashboardServer, probe: Probe, operator: DashboardClient
) -> None:
    from firmware_bridge.payloads import ButtonInfo, GatewayState, Inventory, Kind, Site, Source, Status

    topics = dashboard.ingest.topics
    now = format_epoch(time.time())
    # Each gateway sends the worst of one class (tests/test_fuzz_mqtt.py ``FOUND``): absurd times,
    # shapes that stopped every gateway's supervision, shapes that broke the device view.
    worst = {
        "gw-a": ODD_HEALTH["buttons[].pressed_for_s 1e308"],
        "gw-c": ODD_HEALTH["ts year 9999, outbox.oldest_ts year 1"],
        "gw-d": '"radio":{"module":"x","nodes":{"1":null,"2":[1]}},"buttons":[null,{"id":[1],"pressed_for_s":100}]',
        "gw-e": '"buttons":5,"radio":{"nodes":[1]}',
        "gw-f": '"radio":true',
        "gw-g": ODD_HEALTH["radio.nodes.*.age_s a string"],
    }
    with operator.stream() as board:
        board.wait_for(lambda e: e.event == "snapshot", WAIT_S)
        for gw in [*worst, "gw-b"]:
            probe.publish(topics.status(gw), Status(gw=gw, state=GatewayState.ONLINE, ts=now).encode(), retain=True)
            board.wait_for(lambda e, gw=gw: e.event == "gateway" and e.json()["gw"] == gw, WAIT_S)
        site = Site("Pasar Andoolo", -4.3497, 122.3786)
        inventory = Inventory(gw="gw-b", ts=now, buttons=(ButtonInfo("fire-b", Kind.FIRE, Source.GPIO, site, "B"),))
        probe.publish(topics.inventory("gw-b"), inventory.encode(), retain=True)
        for gw, fragment in worst.items():
            probe.publish(topics.health(gw), json.dumps(raw_health(gw, fragment, time.time())).encode())
        stuck = '"buttons":[{"id":"fire-b","pressed":true,"pressed_for_s":30}]'
        probe.publish(topics.health("gw-b"), json.dumps(raw_health("gw-b", stuck, time.time())).encode())

        # gw-b is still supervised, and gw-a's and gw-c's absurd troubles are on the board, bounded.
        wanted = {("button_stuck", "fire-b"), ("button_stuck", "b"), ("gateway_backlog", "gw-c")}
        seen: dict[tuple[str, str], dict] = {}

        def all_open(event: SSEEvent) -> bool:
            if event.event == "trouble" and not event.json()["cleared"]:
                data = event.json()
                seen[(data["type"], data["subject"])] = data
            return wanted <= set(seen)

        board.wait_for(all_open, WAIT_S)
        assert seen[("button_stuck", "fire-b")]["kind"] == "fire"
        held, backlog = seen[("button_stuck", "b")], seen[("gateway_backlog", "gw-c")]
        ten_years_ago = format_epoch(time.time() - 10 * 365.25 * 86400 - 60)
        assert ten_years_ago < held["began"] <= held["detected"]
        assert ten_years_ago < backlog["began"] <= backlog["detected"]

    # While they are open, every view that shows troubles or devices answers, for each role.
    for client in (operator, signed_in(dashboard, SAPA_DESK)):
        for path in ("/", "/api/troubles", "/api/devices", "/devices", "/api/sites", "/api/gateways"):
            status, _ = client.get_text(path)
            assert status == 200, path
        with client.stream() as board:
            snapshot = board.wait_for(lambda e: e.event == "snapshot", WAIT_S).json()
        assert ("gateway_backlog", "gw-c") in {(t["type"], t["gw"]) for t in snapshot["troubles"]}
    opened = open_troubles(operator)
    assert {("button_stuck", "fire-b"), ("button_stuck", "b"), ("gateway_clock", "gw-c")} <= opened
    assert not {gw for kind, gw in opened if kind == "gateway_health_unreadable"}  # read, not merely survived
    devices = {g["gw"]: g for g in operator.get_json("/api/devices")["gateways"]}
    assert devices["gw-f"]["radio"] is None and devices["gw-c"]["outbox_depth"] == 5
