"""LoRa buttons end to end: node firmware -> virtual module -> air -> virtual module -> pty -> gateway
-> Mosquitto -> dashboard, and the operator's answer back to the node's LED.

The gateway opens a real tty (a pty through a stable symlink) exactly as on a
Pi; the nodes run the reference MicroPython firmware under CPython.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from firmware_bridge import radio
from firmware_bridge.payloads import ModuleState, RadioHealth, RadioModule
from firmware_bridge.settings import read_toml
from gateway.app import Gateway
from gateway.config import GatewayConfig, parse_config
from gateway.radio.modules import RylrParser
from sim.gatewayconf import site, toml_text, write_gateway_config
from sim.mosquitto import Mosquitto
from sim.radio import Air, Impairments, NodeSpec, PtyHost, VirtualE32, VirtualNode, VirtualRylr
from sim.servers import DashboardServer
from sim.webclient import DashboardClient

from .conftest import FIRE_1, SAPA_1, SAPA_DESK, press, signed_in
from .test_ingest import drained, wait_alarm
from .waiting import poll_until

KEYS = {1001: bytes(range(16)), 1002: bytes(range(16, 32)), 1003: bytes(range(32, 48)), 1004: bytes(range(48, 64))}
KINDS = {1001: "fire", 1002: "sapa", 1003: "fire", 1004: "fire"}
NodeMaker = Callable[..., VirtualNode]
GatewayStarter = Callable[..., Gateway]
#: The ``lora_gateway`` fixture: a started gateway and the virtual module on its tty.
LoraGateway = tuple[Gateway, PtyHost]
#: Fast retries for tests; the air runs at a tenth of real airtime.
FAST = {"RETRY_BASE_MS": 300, "RETRY_MAX_MS": 1500, "ALARM_POLL_S": 2, "HEARTBEAT_S": 3600}


def lora_parts(
    tmp_path: Path,
    port: Path | str,
    *,
    module: str = "rylr998",
    extra: dict[str, Any] | None = None,
    nodes: tuple[int, ...] = (1001, 1002, 1003, 1004),
    buttons: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A LoRa module on ``port`` with a button per node, beside the wired buttons: :func:`make_config`'s parts."""
    keys = tmp_path / "lora-keys.toml"
    keys.write_text(toml_text({"keys": {str(node): key.hex() for node, key in KEYS.items()}}))
    keys.chmod(0o600)
    lora_buttons = [
        {
            "id": f"lora-{node}",
            "node": node,
            "kind": KINDS[node],
            "label": f"Los {node}",
            "site": site("Pasar Andoolo", -4.35, 122.378),
        }
        for node in nodes
    ]
    return {
        "lora": {"port": port, "module": module, "keys_file": keys, "reopen_s": 0.2, **(extra or {})},
        "lora_buttons": lora_buttons,
        "buttons": [FIRE_1, SAPA_1] if buttons is None else buttons,
    }


@pytest.fixture
def air() -> Iterator[Air]:
    medium = Air(Impairments(time_scale=0.1), seed=7)
    yield medium
    medium.close()


@pytest.fixture
def lora_gateway(
    tmp_path: Path, air: Air, mosquitto: Mosquitto, start_gateway: GatewayStarter
) -> Iterator[LoraGateway]:
    host = plugged_rylr(air, tmp_path / "ttyLORA0")
    gateway = start_gateway(make_config(tmp_path, mosquitto, lora_parts(tmp_path, host.path)))
    assert gateway.radio is not None and gateway.radio.link.connected.wait(10)
    yield gateway, host
    host.close()


def plugged_rylr(air: Air, path: Path, address: int = 1) -> PtyHost:
    """A virtual RYLR998 on the far end of a pty at ``path``, plugged in."""
    host = PtyHost(path)
    VirtualRylr(air, host, address=address)
    host.plug()
    return host


def make_config(
    tmp_path: Path, mosquitto: Mosquitto, parts: dict[str, Any], gw_id: str = "gw-test", data_dir: Path | None = None
) -> GatewayConfig:
    path = write_gateway_config(
        tmp_path / f"{gw_id}.toml",
        gw_id,
        data_dir=data_dir or tmp_path / gw_id,
        mqtt={"port": mosquitto.port},
        **parts,
    )
    return parse_config(read_toml(path))


@dataclass
class LoraRig:
    """The radio side of a test: the air, the broker, and how to start gateways and nodes on them."""

    tmp_path: Path
    air: Air
    mosquitto: Mosquitto
    start_gateway: GatewayStarter
    make_node: NodeMaker

    def rylr(self, tty: str, address: int = 1) -> PtyHost:
        return plugged_rylr(self.air, self.tmp_path / tty, address)

    def parts(self, port: Path | str, **kwargs: Any) -> dict[str, Any]:
        return lora_parts(self.tmp_path, port, **kwargs)

    def config(self, parts: dict[str, Any], gw_id: str = "gw-test", data_dir: Path | None = None) -> GatewayConfig:
        return make_config(self.tmp_path, self.mosquitto, parts, gw_id, data_dir)

    def gateway(self, parts: dict[str, Any], *, factory: MockFactory | None = None, **where: Any) -> Gateway:
        """A gateway with these LoRa parts, started, its module set up."""
        gateway = self.start_gateway(self.config(parts, **where), factory=factory)
        assert gateway.radio is not None and gateway.radio.link.connected.wait(10)
        return gateway


@pytest.fixture
def lora(
    tmp_path: Path, air: Air, mosquitto: Mosquitto, start_gateway: GatewayStarter, make_node: NodeMaker
) -> LoraRig:
    return LoraRig(tmp_path, air, mosquitto, start_gateway, make_node)


@pytest.fixture
def make_node(tmp_path: Path, air: Air) -> Iterator[NodeMaker]:
    nodes: list[VirtualNode] = []

    def make(node_id: int = 1001, **spec: object) -> VirtualNode:
        settings = {**FAST, **spec.pop("settings", {})}  # type: ignore[dict-item]
        node = VirtualNode(
            air,
            NodeSpec(node_id, KEYS[node_id], kind=KINDS[node_id], settings=settings, **spec),  # type: ignore[arg-type]
            tmp_path / "nodes",
            seed=node_id,
        )
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.close()
        assert node.failure is None, node.failure


def uplinks(air: Air) -> list[bytes]:
    frames = []
    for packet in air.captured:
        try:
            frame = radio.from_text(packet.data)
        except radio.RadioError:
            continue
        if frame and frame[0] & 0x0F == radio.FrameClass.UPLINK:
            frames.append(frame)
    return frames


def rylr_network() -> tuple:
    return ("rylr", 18, 923_000_000)


def radio_health(gateway: Gateway) -> RadioHealth:
    """The LoRa side of the gateway's health report."""
    radio_side = gateway.health().radio
    assert radio_side is not None, "a LoRa gateway reports its radio"
    return radio_side


def module_health(gateway: Gateway) -> RadioModule:
    module = radio_health(gateway).module
    assert module is not None, "a LoRa gateway reports its module"
    return module


def captured_press(make_node: NodeMaker, air: Air) -> bytes:
    """Node 1001 pressed until its gateway answered; the one uplink frame the air carried."""
    node = make_node(1001)
    node.press()
    assert node.wait_for_pattern("received", 10)
    (capture,) = uplinks(air)
    return capture


def replay(air: Air, capture: bytes) -> None:
    """Send a captured frame again, from a stranger's address."""
    air.inject(radio.to_text(capture).encode(), rylr_network(), source=666, destination=1)


def wait_counted(gateway: Gateway, counter: str, what: str) -> None:
    """Until the gateway counts ``counter``: it counts as frames arrive, nothing else to wait on."""
    poll_until(
        lambda: gateway.counters.get(counter),
        interval=0.02,
        what=what,
        pause=gateway.radio.link.connected.wait,
    )


# -- the path -----------------------------------------------------------------------------------------


def wait_acknowledged(node: VirtualNode, timeout: float = 30) -> None:
    """Until the node holds no unacknowledged press and its button is released."""
    poll_until(
        # The level first: once it is up, the (confirmed) press was the firmware's, so no pending means acknowledged.
        lambda: (node.button.level, node.node.pending),
        lambda state: state[0] != 0 and state[1] is None,
        timeout=timeout,
        what="a press was never acknowledged",
        pause=lambda s: node.wait_for_pattern("never", s),
    )


def test_a_lora_press_becomes_one_alarm_and_the_operator_lights_the_node(
    dashboard: DashboardServer, operator: DashboardClient, lora_gateway: LoraGateway, make_node: NodeMaker
) -> None:
    node = make_node(1001)
    node.press()
    assert node.wait_for_pattern("received", 10)  # the fire post has it
    alarm = wait_alarm(operator, lambda a: a["button"] == "lora-1001")
    assert (alarm["transport"], alarm["kind"], alarm["press_count"]) == ("lora", "fire", 1)
    (event,) = operator.get_json(f"/api/alarms/{alarm['id']}")["events"]
    assert event["src"] == "lora"
    acked = operator.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {})["alarm"]
    assert node.wait_for_pattern("help_coming", 10)
    assert node.led.value() == 1  # steady
    operator.post_json(f"/api/alarms/{alarm['id']}/resolve", {"resolution": "real", "rev": acked["rev"]})
    assert node.wait_for_pattern("off", 10)
    gateway, _ = lora_gateway
    stats = radio_health(gateway).nodes["1001"]
    assert stats.events == 1 and stats.rssi is not None and stats.battery_mv == 3900


def test_a_sapa_node_reaches_only_the_sapa_desk(
    dashboard: DashboardServer, operator: DashboardClient, lora_gateway: LoraGateway, make_node: NodeMaker
) -> None:
    node = make_node(1002)
    node.press()
    assert node.wait_for_pattern("received", 10)
    desk = signed_in(dashboard, SAPA_DESK)
    assert wait_alarm(desk, lambda a: a["button"] == "lora-1002")["kind"] == "sapa"
    assert operator.get_json("/api/alarms")["alarms"] == []


def test_a_replayed_capture_and_forged_frames_are_refused_and_counted(
    dashboard: DashboardServer, operator: DashboardClient, lora_gateway: LoraGateway, make_node: NodeMaker, air: Air
) -> None:
    gateway, _ = lora_gateway
    capture = captured_press(make_node, air)
    forged = capture[:-1] + bytes([capture[-1] ^ 0x40])
    stranger = radio.encode_uplink(radio.Uplink(4242, 1, 1, radio.FrameType.PRESS, radio.Kind.FIRE), bytes(16))
    attacks = {
        "replayed": radio.to_text(capture).encode(),
        "bad_mac": radio.to_text(forged).encode(),
        "unknown_node": radio.to_text(stranger).encode(),
        "truncated": radio.to_text(capture[:10]).encode(),
        "bad_encoding": b"not*base64!",
    }
    for data in attacks.values():
        air.inject(data, rylr_network(), source=666, destination=1)
    poll_until(  # the gateway counts as frames arrive; nothing else to wait on
        lambda: sum(gateway.radio.rejected.values()),
        lambda rejected: rejected >= len(attacks),
        interval=0.02,
        what="every attack refused",
    )
    for reason in attacks:
        assert gateway.counters.get(f"radio_rejected.{reason}") == 1, reason
    assert gateway.radio.stats[1001].rejected == {"replayed": 1, "bad_mac": 1, "truncated": 1}
    (alarm,) = operator.get_json("/api/alarms")["alarms"]
    assert alarm["press_count"] == 1  # none became an alarm or a press
    assert gateway.pump.wait_drained(10)
    assert gateway.outbox.depth() == 0 and gateway.counters.get("radio_events") == 1


def test_every_press_gets_through_twenty_percent_loss(
    dashboard: DashboardServer, operator: DashboardClient, lora_gateway: LoraGateway, make_node: NodeMaker, air: Air
) -> None:
    air.impairments.loss = 0.2
    air.impairments.duplicate = 0.05
    nodes = [make_node(node_id) for node_id in (1001, 1003, 1004)]
    presses = 4
    for _ in range(presses):
        for node in nodes:
            node.press()
        for node in nodes:
            wait_acknowledged(node)
    assert [node.node.stats["presses"] for node in nodes] == [presses] * len(nodes)  # each press was a press
    expected = presses * len(nodes)
    gateway, _ = lora_gateway
    radio_side = gateway.radio
    assert radio_side is not None
    drained(  # with the gateway's and every node's figures, so that a miss says where the event stopped
        dashboard,
        expected,
        timeout=30,
        beside=lambda: (
            gateway.counters.snapshot(),
            {node.spec.node_id: (dict(node.node.stats), radio_side.stats[node.spec.node_id].events) for node in nodes},
        ),
    )
    assert [radio_side.stats[node.spec.node_id].events for node in nodes] == [presses] * len(nodes)  # none merged
    alarms = {a["button"]: a for a in operator.get_json("/api/alarms")["alarms"]}
    assert {button: alarm["press_count"] for button, alarm in alarms.items()} == {
        "lora-1001": presses,
        "lora-1003": presses,
        "lora-1004": presses,
    }
    assert dashboard.ingest.counters.get("events_stored") == expected
    assert air.lost > 0  # the loss really happened
    assert sum(node.node.stats["retries"] for node in nodes) > 0


def test_two_gateways_hearing_one_press_make_one_alarm(
    lora: LoraRig, dashboard: DashboardServer, operator: DashboardClient
) -> None:
    gateways = []
    for number, gw_id in ((1, "gw-north"), (2, "gw-south")):
        host = lora.rylr(f"tty-{gw_id}", address=number)
        buttons = [{**FIRE_1, "id": f"{gw_id}-fire"}, {**SAPA_1, "id": f"{gw_id}-sapa"}]
        body = lora.parts(host.path, buttons=buttons, nodes=(1001,))
        gateway = lora.gateway(body, gw_id=gw_id, factory=MockFactory())
        gateways.append(gateway)
    node = lora.make_node(1001, gateway_address=0)  # broadcast: every gateway in range hears it
    node.press()
    assert node.wait_for_pattern("received", 10)
    drained(dashboard, 2)  # both gateways delivered it...
    (alarm,) = operator.get_json("/api/alarms")["alarms"]
    assert alarm["press_count"] == 1  # ...and it is one event, one alarm
    assert dashboard.ingest.counters.get("events_duplicate") == 1
    assert all(gateway.counters.get("radio_events") == 1 for gateway in gateways)


def test_the_gateway_survives_its_module_being_unplugged(
    dashboard: DashboardServer,
    operator: DashboardClient,
    lora_gateway: LoraGateway,
    make_node: NodeMaker,
    pin_factory: MockFactory,
) -> None:
    gateway, host = lora_gateway
    host.unplug()
    poll_until(
        lambda: module_health(gateway).state,
        lambda state: state is ModuleState.MISSING,
        what="the loss of the module was not noticed",
        pause=gateway.radio.link.connected.wait,
    )
    assert gateway.counters.get("lora_lost") == 1
    press(pin_factory, 17)  # the wired buttons keep working meanwhile
    wait_alarm(operator, lambda a: a["button"] == "fire-1")
    host.plug()  # plugged back in (the same /dev/serial/by-id path)
    assert gateway.radio.link.connected.wait(10)
    poll_until(
        lambda: gateway.radio.driver.configured,
        what="the module was not set up again",
        pause=gateway.radio.link.connected.wait,
    )
    node = make_node(1001)
    node.press()
    assert node.wait_for_pattern("received", 10)
    wait_alarm(operator, lambda a: a["button"] == "lora-1001")


def test_counters_are_remembered_across_a_gateway_restart(
    lora: LoraRig, dashboard: DashboardServer, operator: DashboardClient
) -> None:
    host = lora.rylr("ttyLORA0")
    config = lora.config(lora.parts(host.path))
    first = lora.start_gateway(config)
    capture = captured_press(lora.make_node, lora.air)
    first.close()
    second = lora.start_gateway(config, factory=MockFactory())
    assert second.radio.link.connected.wait(10)
    replay(lora.air, capture)
    wait_counted(second, "radio_rejected.replayed", "the replay after a restart was not refused")
    host.close()


def test_heartbeats_are_kept_by_the_gateway_not_sent_as_events(
    dashboard: DashboardServer, lora_gateway: LoraGateway, make_node: NodeMaker
) -> None:
    gateway, _ = lora_gateway
    make_node(1003, settings={"HEARTBEAT_S": 0.2})
    poll_until(
        lambda: gateway.radio.stats[1003].heartbeats,
        lambda heartbeats: heartbeats >= 3,
        what="no heartbeats",
        pause=gateway.radio.link.connected.wait,
    )
    assert radio_health(gateway).nodes["1003"].last_heard is not None
    assert dashboard.ingest.counters.get("events_stored") == 0


@pytest.mark.parametrize("mode", ["transparent", "fixed"])
def test_e32_modules_carry_the_same_frames(
    lora: LoraRig, dashboard: DashboardServer, operator: DashboardClient, mode: str
) -> None:
    host = PtyHost(lora.tmp_path / "ttyE32")
    VirtualE32(lora.air, host, address=0x0001, channel=23, mode=mode)
    host.plug()
    body = lora.parts(host.path, module="e32", extra={"mode": mode, "channel": 23})
    lora.gateway(body)
    target = (0x00, 0x01, 23) if mode == "fixed" else None
    node = lora.make_node(1003, module="e32", address=0x0203, e32_mode=mode, gateway_e32_target=target)
    node.press()
    assert node.wait_for_pattern("received", 10)
    alarm = wait_alarm(operator, lambda a: a["button"] == "lora-1003")
    operator.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {})
    assert node.wait_for_pattern("help_coming", 10)
    # Garbage on the line between frames costs nothing but itself.
    lora.air.inject(b"\x00\xa5\xffnoise", ("e32", 23))
    node.press()
    wait_alarm(operator, lambda a: a["button"] == "lora-1003" and a["press_count"] == 2)
    host.close()


def test_the_rylr_parser_reads_data_by_its_length() -> None:
    (message,) = RylrParser().feed(b"+RCV=7,5,a,b,c,-42,9\r\n")
    assert (message.address, message.data, message.rssi, message.snr) == (7, "a,b,c", -42, 9.0)
    parser = RylrParser()
    assert parser.feed(b"+RCV=7,99,short,-4") == []
    (broken,) = parser.feed(b"2,9\r\n")
    assert type(broken).__name__ == "Unparsed"


def test_provisioning_writes_a_private_key_and_the_node_config(tmp_path: Path) -> None:
    from gateway.cli import main

    keys = tmp_path / "keys.toml"
    config = tmp_path / "gw.toml"
    write_gateway_config(
        config,
        "gw-a",
        data_dir=tmp_path,
        mqtt={},
        lora={"port": "/dev/null", "module": "rylr998", "keys_file": keys},
        buttons=[FIRE_1, SAPA_1],
    )
    out = tmp_path / "node_config.py"
    assert main(["--config", str(config), "provision-node", "2001", "--kind", "sapa", "--output", str(out)]) == 0
    assert keys.stat().st_mode & 0o077 == 0
    text = out.read_text()
    namespace: dict = {}
    exec(compile(text, "node_config.py", "exec"), namespace)  # noqa: S102 - the file we just wrote
    assert namespace["NODE_ID"] == 2001 and namespace["KIND"] == "sapa" and len(namespace["KEY"]) == 32
    assert f'"2001" = "{namespace["KEY"]}"' in keys.read_text()
    assert os.stat(out).st_mode & 0o077 == 0


def test_corrupted_frames_are_refused_and_every_press_still_arrives(
    dashboard: DashboardServer, operator: DashboardClient, lora_gateway: LoraGateway, make_node: NodeMaker, air: Air
) -> None:
    gateway, _ = lora_gateway
    air.impairments.corrupt = 0.3
    node = make_node(1003)
    for _ in range(5):
        node.press()
        wait_acknowledged(node)
    wait_alarm(operator, lambda a: a["button"] == "lora-1003" and a["press_count"] == 5, timeout=20)
    # Damage was seen, counted and survived: by the gateway (uplinks) and by the node (downlinks).
    assert sum(gateway.radio.rejected.values()) + node.node.stats["rejected"] > 0


def test_ports_are_opened_by_url(lora: LoraRig, dashboard: DashboardServer, operator: DashboardClient) -> None:
    # spy:// wraps the real tty and logs every byte, as a technician would use it to look at the line.
    host = PtyHost(lora.tmp_path / "ttyE32")
    VirtualE32(lora.air, host, address=1, channel=23)
    host.plug()
    log = lora.tmp_path / "line.log"
    body = lora.parts(f"spy://{host.path}?file={log}", module="e32")
    lora.gateway(body)
    node = lora.make_node(1003, module="e32", address=0x0203)
    node.press()
    wait_alarm(operator, lambda a: a["button"] == "lora-1003")
    assert "a5 5a" in log.read_text().lower().replace("  ", " ")  # the stream frame went through the spy
    host.close()


def test_a_loop_port_hears_what_the_gateway_sends(
    tmp_path: Path, mosquitto: Mosquitto, start_gateway: GatewayStarter, pin_factory: MockFactory
) -> None:
    # loop:// echoes every byte: the gateway's own downlinks come back, and are refused as not uplinks.
    gateway = start_gateway(make_config(tmp_path, mosquitto, lora_parts(tmp_path, "loop://", module="e32")))
    assert gateway.radio.link.connected.wait(10)
    frame = radio.encode_uplink(radio.Uplink(1001, 1, 1, radio.FrameType.PRESS, radio.Kind.FIRE), KEYS[1001])
    gateway.radio.link.write(radio.to_stream(frame))  # what a module would hand over
    wait_counted(gateway, "radio_rejected.bad_class", "the looped-back ack was not seen")
    assert gateway.counters.get("radio_events") == 1  # the uplink became an event...
    assert gateway.counters.get("radio_acks_sent") == 1  # ...and its ack, looped back, was refused


def test_a_replay_from_elsewhere_does_not_refresh_the_node_or_steer_replies(
    dashboard: DashboardServer, lora_gateway: LoraGateway, make_node: NodeMaker, air: Air
) -> None:
    gateway, _ = lora_gateway
    capture = captured_press(make_node, air)
    before = gateway.radio.stats[1001].view()
    replay(air, capture)
    wait_counted(gateway, "radio_rejected.replayed", "radio_rejected.replayed counted")
    after = gateway.radio.stats[1001]
    assert after.source != 666  # replies still go to the real node
    assert after.view()["last_heard"] == before["last_heard"]


def test_a_new_alarm_is_never_shown_the_last_ones_news(
    dashboard: DashboardServer, operator: DashboardClient, lora_gateway: LoraGateway, make_node: NodeMaker
) -> None:
    node = make_node(1001)
    node.press()
    first = wait_alarm(operator, lambda a: a["button"] == "lora-1001")
    operator.post_json(f"/api/alarms/{first['id']}/resolve", {"resolution": "test", "rev": first["rev"]})
    assert node.wait_for_pattern("off", 10)
    node.press()  # a new alarm: it must show "received", not the old alarm's "resolved"
    assert node.wait_for_pattern("received", 10)
    second = wait_alarm(operator, lambda a: a["button"] == "lora-1001" and a["id"] != first["id"])
    operator.post_json(f"/api/alarms/{second['id']}/acknowledge", {})
    assert node.wait_for_pattern("help_coming", 10)


def test_a_kind_disagreement_is_resolved_in_favour_of_privacy(
    lora: LoraRig, dashboard: DashboardServer, operator: DashboardClient
) -> None:
    host = lora.rylr("ttyLORA0")
    KINDS[1003], original = "sapa", KINDS[1003]  # the gateway's config says SAPA...
    try:
        gateway = lora.gateway(lora.parts(host.path, nodes=(1003,)))
    finally:
        KINDS[1003] = original
    node = lora.make_node(1003)  # ...the node was provisioned as fire
    node.press()
    desk = signed_in(dashboard, SAPA_DESK)
    assert wait_alarm(desk, lambda a: a["button"] == "lora-1003")["kind"] == "sapa"
    assert operator.get_json("/api/alarms")["alarms"] == []
    assert gateway.counters.get("radio_kind_mismatch") >= 1
    host.close()


def test_without_a_disk_a_lora_press_still_goes_out_from_memory(
    lora: LoraRig, dashboard: DashboardServer, operator: DashboardClient
) -> None:
    host = lora.rylr("ttyLORA0")
    body = lora.parts(host.path, nodes=(1001,))
    blocked = lora.tmp_path / "blocked"
    blocked.write_text("not a folder")
    gateway = lora.gateway(body, data_dir=blocked)
    node = lora.make_node(1001)
    node.press()
    alarm = wait_alarm(operator, lambda a: a["button"] == "lora-1001")
    assert alarm["press_count"] == 1  # retries carry the same event id: one press
    assert gateway.counters.get("events_unstored") >= 1
    assert node.node.pending is not None or node.pattern == "received"  # never acknowledged without the disk
    host.close()


def test_provisioning_a_node_keeps_the_keys_files_owner_group_and_mode(tmp_path: Path) -> None:
    """Enrolment makes the keys file 0640 root:siaga for the service (run as siaga) to read; a later
    `sudo siaga-gateway provision-node` must not turn it into a file only root can read."""
    from gateway.provision import write_keys

    keys_file = tmp_path / "lora-keys.toml"
    keys_file.write_text("[keys]\n")
    group = os.getgid() if os.geteuid() != 0 else 1  # as root: another group, as the siaga group would be
    os.chown(keys_file, -1, group)
    keys_file.chmod(0o640)
    write_keys(keys_file, {1101: bytes(16)})
    after = keys_file.stat()
    assert (stat.S_IMODE(after.st_mode), after.st_gid) == (0o640, group)
    assert "1101" in keys_file.read_text()
    fresh = tmp_path / "new-keys.toml"
    write_keys(fresh, {1102: bytes(16)})
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600  # a new file: its owner's alone
