"""Nothing silent: silent buttons, hung and dead gateways, wrong clocks and the rest become troubles.

The rules (``dashboard.supervision.evaluate``) are tested on their own first;
then the real parts: LoRa nodes running the firmware over the virtual air, a
gateway process stopped (SIGSTOP: hung) and killed (SIGKILL: dead), wired
buttons on mock pins, and the troubles arriving on a signed-in board's stream.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from dashboard.supervision import GatewayFacts, SupervisionSettings, TroubleType, evaluate
from firmware_bridge.broker import BrokerSettings
from firmware_bridge.timeutil import format_epoch
from gateway.app import Gateway
from gateway.config import GatewayConfig
from sim.mosquitto import Mosquitto
from sim.radio import Air, VirtualNode
from sim.servers import DashboardServer, dashboard_config
from sim.sse import SSEClient, SSEEvent
from sim.stack import SmallDisk
from sim.webclient import DashboardClient, HTTPStatusError

from .conftest import OPERATOR, SAPA_DESK, gateway_toml, press, signed_in
from .test_ingest import wait_alarm
from .test_lora import make_config, plugged_rylr

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


def lora_body(tmp_path: Path, port: Path) -> str:
    keys = tmp_path / "lora-keys.toml"
    keys.write_text("[keys]\n" + "".join(f'"{n}" = "{k.hex()}"\n' for n, k in KEYS.items()))
    keys.chmod(0o600)
    body = f'[lora]\nport = "{port}"\nmodule = "rylr998"\nkeys_file = "{keys}"\nreopen_s = 0.2\n'
    for number, kind in ((1001, "fire"), (1002, "sapa")):
        body += (
            f'[[lora_button]]\nid = "lora-{number}"\nnode = {number}\nkind = "{kind}"\n'
            '[lora_button.site]\nname = "Pasar Andoolo"\nlat = -4.35\nlon = 122.378\n'
        )
    return body


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
        deadline = time.monotonic() + WAIT_S
        while ("button_missing", "lora-1002") not in open_troubles(sapa_desk):
            assert time.monotonic() < deadline, "the SAPA desk never saw its button go missing"
            time.sleep(0.1)  # another thread records troubles; the API has no event to wait on
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
        deadline = time.monotonic() + WAIT_S
        while True:
            view = technician.get_json("/api/devices")
            buttons = {b["id"]: b for b in view["buttons"]}
            if all(buttons.get(b, {}).get("battery_mv") for b in ("lora-1001", "lora-1002")):
                break
            assert time.monotonic() < deadline, f"no radio facts in the device view: {view}"
            time.sleep(0.1)  # the gateway's next health message: nothing to wait on from here
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
    deadline = time.monotonic() + WAIT_S
    while "fire-1" not in {b["id"] for b in client.get_json("/api/devices")["buttons"]}:
        assert time.monotonic() < deadline, "the gateway's inventory never arrived"
        time.sleep(0.05)  # another process's message: the API is what we can watch


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
    deadline = time.monotonic() + WAIT_S
    while "1 press(es) without alarm" not in str(operator.get_json("/api/troubles")):
        assert time.monotonic() < deadline, "the suppressed press was never counted"
        time.sleep(0.1)  # the supervisor's next round; nothing to wait on from outside
    assert operator.get_json("/api/alarms?state=all")["alarms"] == []  # stored, but no alarm
    assert gateway.pump.wait_drained(WAIT_S)  # and receipted like any event: nothing is left waiting

    set_service(technician, "fire-1", "in_service")
    trouble_event(board, "button_out_of_service", "fire-1", cleared=True)
    press(pin_factory, 17)
    assert wait_alarm(operator, lambda a: a["button"] == "fire-1")["test"] is False
    with pytest.raises(HTTPStatusError) as caught:  # operators do not set buttons aside
        operator.post_json("/devices/buttons/fire-1/service", {"mode": "out_of_service"})
    assert caught.value.status in (400, 403)
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
