"""What the gateway takes on trust from the broker, and which thread may touch what.

Anyone who can publish on the broker (a misconfigured ACL, a stolen account)
could send receipts, indications and the dashboard's presence. The gateway
acts on a receipt only for an event it has out, lets the latest indication
win over a forged one once the reorder window has passed, and keeps
resending whatever the dashboard is said to be. Real parts throughout:
Mosquitto, paho, SQLite outboxes, gpiozero's mock pins, ptys, the node
firmware; clocks are moved by hand where a window must pass.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from gpiozero.pins.mock import MockFactory
from paho.mqtt.client import MQTTMessageInfo

from firmware_bridge import radio
from firmware_bridge.broker import BrokerSettings
from firmware_bridge.counters import Counters
from firmware_bridge.payloads import (
    Event,
    EventType,
    GatewayState,
    Indication,
    IndicationState,
    Kind,
    Presence,
    Receipt,
    Source,
    decode_event,
)
from firmware_bridge.settings import read_toml
from firmware_bridge.timeutil import format_epoch
from firmware_bridge.topics import Topics
from gateway.app import Gateway, new_event_id
from gateway.config import GatewayConfig, parse_config
from gateway.indicator import REORDER_WINDOW_S, IndicatorState, Pattern
from gateway.outbox import Outbox
from gateway.pump import Pump
from sim.firmware import load_firmware
from sim.gatewayconf import write_gateway_config
from sim.mosquitto import Mosquitto
from sim.radio import Air, Impairments, NodeSpec, VirtualNode, VirtualPin
from sim.servers import DashboardServer

from .conftest import FIRE_1, SAPA_1, press, wait_online
from .mqttprobe import Probe
from .test_ingest import drained
from .test_lora import FAST, KEYS, lora_parts, make_config, plugged_rylr
from .waiting import poll_until

TOPICS = Topics()
GW = "gw-test"
EVENT_TOPIC = TOPICS.event(GW)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    # counters and another thread's state have no event to wait on
    poll_until(condition, timeout=timeout, interval=0.01, what=what)


class ManualClock:
    """A monotonic clock the test moves, so a window passes without waiting for it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def event_payload(event_id: str, button: str = "fire-1") -> bytes:
    return Event(
        id=event_id,
        gw=GW,
        button=button,
        kind=Kind.FIRE,
        type=EventType.PRESS,
        ts=format_epoch(time.time()),
        src=Source.GPIO,
    ).encode()


def receipt(*event_ids: str) -> bytes:
    return Receipt(tuple(event_ids), format_epoch(time.time())).encode()


def indication(button: str, state: IndicationState, alarm: int, rev: int) -> Indication:
    return Indication(button, state, alarm, rev, format_epoch(time.time()))


def indicate(probe: Probe, button: str, state: IndicationState, alarm: int, rev: int) -> None:
    probe.publish(TOPICS.indicate(GW), indication(button, state, alarm, rev).encode())


def trust_config(tmp_path: Path, mosquitto: Mosquitto, *, receipt_timeout_s: float = 15.0) -> GatewayConfig:
    path = write_gateway_config(
        tmp_path / f"{GW}.toml",
        GW,
        data_dir=tmp_path / GW,
        health_interval_s=60,
        receipt_timeout_s=receipt_timeout_s,
        mqtt={"host": "127.0.0.1", "port": mosquitto.port},
        buttons=[FIRE_1, SAPA_1],
    )
    return parse_config(read_toml(path))


@pytest.fixture
def open_gateway(pin_factory: MockFactory) -> Iterator[Callable[..., Gateway]]:
    """Start a Gateway with the test's own knobs (clock, resend pace), connected; closed after the test."""
    started: list[Gateway] = []

    def start(config: GatewayConfig, **knobs: object) -> Gateway:
        gateway = Gateway(config, pin_factory=pin_factory, **knobs).start()  # type: ignore[arg-type]
        started.append(gateway)
        wait_online(gateway)
        return gateway

    yield start
    for gateway in reversed(started):
        gateway.close()


# -- receipts: only for events out now -----------------------------------------------------------------


@dataclass
class PumpRig:
    """A pump between a real outbox and a real paho client on the test's broker.

    The probe's client stands in for the gateway's link: it publishes what the
    pump hands over and reports the broker's PUBACKs; the probe also receives
    the events back, which is proof they reached the broker.
    """

    outbox: Outbox
    probe: Probe
    counters: Counters = field(default_factory=Counters)
    receipt_timeout_s: float = 15.0
    #: Called with each event's payload just before the pump's hand-over reaches paho.
    before_publish: Callable[[bytes], None] = lambda payload: None
    pump: Pump = field(init=False)

    def __post_init__(self) -> None:
        self.pump = Pump(self.outbox, self._publish, self.counters, receipt_timeout_s=self.receipt_timeout_s)
        self.probe.client.on_publish = lambda client, userdata, mid, reason, properties: self.pump.acknowledged(mid)

    def _publish(self, topic: str, payload: bytes) -> MQTTMessageInfo:
        self.before_publish(payload)
        return self.probe.client.publish(topic, payload, qos=1)

    def put(self, event_id: str) -> None:
        self.outbox.put(event_id, EVENT_TOPIC, event_payload(event_id))

    def seen(self, count: int) -> list[str]:
        """The ids of the next ``count`` events the broker delivered back."""
        return [decode_event(self.probe.wait_for(lambda m: m.topic == EVENT_TOPIC).payload).id for _ in range(count)]


@pytest.fixture
def pump_rig(tmp_path: Path, probe: Probe) -> Iterator[PumpRig]:
    probe.subscribe(EVENT_TOPIC)
    rig = PumpRig(Outbox(tmp_path / "outbox.db"), probe)
    yield rig
    rig.pump.stop()
    rig.outbox.close()


def test_a_receipt_for_an_event_not_sent_yet_or_never_known_deletes_nothing(pump_rig: PumpRig) -> None:
    """A row left from before a restart: a receipt before it is sent again is ignored, the one after deletes it."""
    rig = pump_rig
    left = new_event_id()
    rig.put(left)
    rig.pump.start()  # the gate stays closed until the link is up: nothing goes out yet
    rig.pump.receipted([left, new_event_id()])  # forged: a row not handed over, and an id never known
    wait_for(lambda: rig.counters.get("receipts_ignored") == 2, "both receipts ignored")
    assert rig.outbox.depth() == 1  # the old code deleted the row here, before it ever reached the broker
    rig.pump.link_up()
    assert rig.seen(1) == [left]  # sent again first...
    rig.pump.receipted([left])  # ...and the dashboard's receipt for that copy deletes it
    assert rig.pump.wait_drained(5)
    assert rig.counters.get("events_receipted") == 1 and rig.counters.get("receipts_ignored") == 2


def test_a_receipt_that_came_before_its_event_was_handed_over_is_ignored(pump_rig: PumpRig) -> None:
    """Being in flight when the receipt is *read* is not enough: it must have been out when it *arrived*."""
    rig = pump_rig
    first, second = new_event_id(), new_event_id()
    rig.put(first)
    rig.put(second)
    forged: list[str] = []

    def forge_a_receipt_for_the_second(payload: bytes) -> None:
        if not forged:  # while the first is being handed over, before the second is
            forged.append(second)
            rig.pump.receipted([second])

    rig.before_publish = forge_a_receipt_for_the_second
    rig.pump.start()
    rig.pump.link_up()
    assert rig.seen(2) == [first, second]
    # The pump reads that receipt on its next turn, when the second is already out: still ignored.
    wait_for(lambda: rig.counters.get("receipts_ignored") == 1, "the early receipt ignored")
    assert rig.outbox.depth() == 2
    rig.pump.receipted([first, second])
    assert rig.pump.wait_drained(5)
    assert rig.counters.get("events_receipted") == 2


def test_after_a_restart_the_dashboards_receipt_still_deletes_what_was_left(
    dashboard: DashboardServer, make_gateway_config: Callable[..., GatewayConfig], start_gateway: Callable[..., Gateway]
) -> None:
    config = make_gateway_config()
    left = Outbox(config.outbox_path)  # what a gateway that died before any receipt leaves behind
    ids = [new_event_id(), new_event_id()]
    for event_id in ids:
        left.put(event_id, EVENT_TOPIC, event_payload(event_id))
    left.close()
    gateway = start_gateway(config)
    assert gateway.pump.wait_drained(20)  # re-sent first, then receipted by the real dashboard
    drained(dashboard, 2)
    assert gateway.counters.get("events_receipted") == 2
    assert gateway.counters.get("receipts_ignored") == 0


# -- the dashboard's presence: a pace, never a stop --------------------------------------------------------


def _gateway_told_the_dashboard_is_offline(
    tmp_path: Path, mosquitto: Mosquitto, probe: Probe, open_gateway: Callable[..., Gateway], longest: float
) -> Gateway:
    """A gateway (receipt timeout 0.2 s, absent pace ``longest``) that heard a retained ``offline``, which
    anyone on the broker may have left there."""
    offline = Presence(GatewayState.OFFLINE, format_epoch(time.time())).encode()
    probe.publish(TOPICS.dashboard_status(), offline, retain=True)
    probe.subscribe(EVENT_TOPIC)
    gateway = open_gateway(trust_config(tmp_path, mosquitto, receipt_timeout_s=0.2), max_resend_interval_s=longest)
    wait_for(lambda: gateway.link.dashboard_online is False, "the offline presence heard")
    return gateway


def test_a_forged_dashboard_offline_slows_resends_but_never_stops_them(
    tmp_path: Path,
    mosquitto: Mosquitto,
    probe: Probe,
    pin_factory: MockFactory,
    open_gateway: Callable[..., Gateway],
) -> None:
    longest = 1.0  # MAX_RESEND_INTERVAL_S, shortened for the test
    gateway = _gateway_told_the_dashboard_is_offline(tmp_path, mosquitto, probe, open_gateway, longest)
    press(pin_factory, 17)
    first = decode_event(probe.wait_for(lambda m: m.topic == EVENT_TOPIC).payload)
    first_at = time.monotonic()
    # No receipt comes: the old code never sent it again while the dashboard was "offline".
    again = decode_event(probe.wait_for(lambda m: m.topic == EVENT_TOPIC, timeout=10).payload)
    assert again.id == first.id
    assert time.monotonic() - first_at >= longest * 0.8  # at the longest interval, not the 0.2 s timeout
    # counted once paho took the resend, which the probe may hear first
    poll_until(lambda: gateway.counters.get("events_resent"), lambda n: n >= 1, timeout=5, what="the resend counted")
    probe.publish(TOPICS.receipt(GW), receipt(first.id))  # the dashboard has it at last
    assert gateway.pump.wait_drained(5)
    assert gateway.outbox.depth() == 0


def test_a_receipt_overrules_a_stale_dashboard_offline(
    tmp_path: Path,
    mosquitto: Mosquitto,
    probe: Probe,
    pin_factory: MockFactory,
    open_gateway: Callable[..., Gateway],
) -> None:
    """Two dashboard processes share the retained presence: one's last will may say offline while the
    other works. Its receipts prove it: resends go back to the receipt timeout, not the absent pace."""
    longest = 5.0  # the pace for an absent dashboard, shortened for the test
    gateway = _gateway_told_the_dashboard_is_offline(tmp_path, mosquitto, probe, open_gateway, longest)
    press(pin_factory, 17)
    first = decode_event(probe.wait_for(lambda m: m.topic == EVENT_TOPIC).payload)
    probe.publish(TOPICS.receipt(GW), receipt(first.id))
    assert gateway.pump.wait_drained(5)
    assert gateway.counters.get("presence_inferred") == 1
    press(pin_factory, 17)
    second = decode_event(
        probe.wait_for(lambda m: m.topic == EVENT_TOPIC and decode_event(m.payload).id != first.id).payload
    )
    sent_at = time.monotonic()
    again = decode_event(
        probe.wait_for(
            lambda m: m.topic == EVENT_TOPIC and m.payload and decode_event(m.payload).id == second.id, timeout=10
        ).payload
    )
    assert again.id == second.id
    assert time.monotonic() - sent_at < longest * 0.5  # at the receipt timeout's pace, not the absent one


# -- indications: the latest wins once the reorder window has passed ----------------------------------------


def test_a_forged_indication_is_overwritten_by_the_next_genuine_one_after_the_window() -> None:
    clock = ManualClock()
    state = IndicatorState(clock=clock, reorder_window_s=2.0)
    forged = indication("fire-1", IndicationState.ACKNOWLEDGED, alarm=10**12, rev=10**9)
    assert state.indicate(forged) is Pattern.HELP_COMING
    clock.advance(1.0)
    genuine = indication("fire-1", IndicationState.RECEIVED, alarm=7, rev=0)
    assert state.indicate(genuine) is None  # so soon after, it may be a reorder: ignored
    clock.advance(1.5)
    assert state.indicate(genuine) is Pattern.RECEIVED  # the dashboard's re-sync wins
    assert state.last == genuine


def test_a_stale_reorder_within_the_window_is_still_ignored() -> None:
    clock = ManualClock()
    state = IndicatorState(clock=clock, reorder_window_s=2.0)
    acknowledged = indication("fire-1", IndicationState.ACKNOWLEDGED, alarm=7, rev=1)
    assert state.indicate(acknowledged) is Pattern.HELP_COMING
    clock.advance(1.9)
    assert state.indicate(indication("fire-1", IndicationState.RECEIVED, alarm=7, rev=0)) is None
    assert state.pattern is Pattern.HELP_COMING
    assert state.indicate(acknowledged) is Pattern.HELP_COMING  # the same again is applied (ends a flicker)
    clock.advance(1.9)  # measured from the last one applied, the repeat
    assert state.indicate(indication("fire-1", IndicationState.RECEIVED, alarm=6, rev=4)) is None


def test_a_forged_indication_does_not_pin_a_wired_buttons_led(
    tmp_path: Path, mosquitto: Mosquitto, probe: Probe, open_gateway: Callable[..., Gateway]
) -> None:
    clock = ManualClock()
    gateway = open_gateway(trust_config(tmp_path, mosquitto), monotonic=clock)
    indicate(probe, "fire-1", IndicationState.ACKNOWLEDGED, alarm=10**12, rev=10**9)  # forged
    assert gateway.wait_for_pattern("fire-1", Pattern.HELP_COMING, 5)
    clock.advance(0.5)
    indicate(probe, "fire-1", IndicationState.RECEIVED, alarm=7, rev=0)  # within the window
    indicate(probe, "sapa-1", IndicationState.RECEIVED, alarm=8, rev=0)  # handled after it (one topic, in order)
    assert gateway.wait_for_pattern("sapa-1", Pattern.RECEIVED, 5)
    assert gateway.pattern("fire-1") is Pattern.HELP_COMING
    assert gateway.counters.get("indications_stale") == 1
    clock.advance(REORDER_WINDOW_S)
    indicate(probe, "fire-1", IndicationState.RECEIVED, alarm=7, rev=0)  # the dashboard's next re-sync
    assert gateway.wait_for_pattern("fire-1", Pattern.RECEIVED, 5)


class Downlinks:
    """The node firmware's radio driver as ``Node`` uses it (``poll``, ``send``): the frames a module would pass."""

    def __init__(self) -> None:
        self.inbox: list[bytes] = []
        self.sent: list[bytes] = []

    def poll(self) -> list[bytes]:
        frames, self.inbox = self.inbox, []
        return frames

    def send(self, frame: bytes) -> None:
        self.sent.append(frame)


class NodeClock:
    def __init__(self) -> None:
        self.now = 0

    def ms(self) -> int:
        return self.now


def test_the_node_lets_the_latest_indication_win_after_its_reorder_window(tmp_path: Path) -> None:
    fw = load_firmware()
    key, node_id = KEYS[1001], 1001
    clock, downlinks = NodeClock(), Downlinks()
    config = SimpleNamespace(NODE_ID=node_id, KEY=key.hex(), KIND="fire", REORDER_WINDOW_MS=2000, HEARTBEAT_S=3600)
    counter = fw.siaga_node.file_counter(str(tmp_path / "counter"))
    node = fw.siaga_node.Node(config, downlinks, VirtualPin(1), VirtualPin(0), clock, counter)
    node.press()
    event = node.pending["event"]

    def hear(state: IndicationState, alarm: int, rev: int, after_ms: int) -> str:
        clock.now += after_ms
        frame = radio.Indicate(node_id, event, alarm, rev, state)
        downlinks.inbox.append(radio.encode_indicate(frame, key))
        node.poll()
        return node.pattern

    # A forged indication through the gateway (it signs whatever the broker hands it).
    assert hear(IndicationState.ACKNOWLEDGED, 4_000_000_000, 65_000, after_ms=10) == "help_coming"
    assert hear(IndicationState.RECEIVED, 7, 0, after_ms=500) == "help_coming"  # within the window: ignored
    assert hear(IndicationState.RECEIVED, 7, 0, after_ms=2000) == "received"  # the genuine re-sync wins
    assert hear(IndicationState.ACKNOWLEDGED, 7, 1, after_ms=100) == "help_coming"
    assert hear(IndicationState.RECEIVED, 7, 0, after_ms=100) == "help_coming"  # a reorder: still ignored
    applied = node.stats["indications"]
    assert hear(IndicationState.ACKNOWLEDGED, 7, 1, after_ms=5000) == "help_coming"
    assert node.stats["indications"] == applied  # the same news again (after every poll) is not news


@dataclass
class LoraRig:
    gateway: Gateway
    clock: ManualClock
    node: VirtualNode


@pytest.fixture
def lora_rig(tmp_path: Path, mosquitto: Mosquitto, open_gateway: Callable[..., Gateway]) -> Iterator[LoraRig]:
    air = Air(Impairments(time_scale=0.1), seed=11)
    host = plugged_rylr(air, tmp_path / "ttyLORA0")
    clock = ManualClock()
    gateway = open_gateway(
        make_config(tmp_path, mosquitto, lora_parts(tmp_path, host.path, nodes=(1001,))), monotonic=clock
    )
    assert gateway.radio is not None and gateway.radio.link.connected.wait(10)
    # The node's own window is tested above; here it must not hold up what the gateway sends.
    spec = NodeSpec(1001, KEYS[1001], kind="fire", settings={**FAST, "REORDER_WINDOW_MS": 0})
    node = VirtualNode(air, spec, tmp_path / "nodes", seed=1001)
    yield LoraRig(gateway, clock, node)
    node.close()
    host.close()
    air.close()
    assert node.failure is None, node.failure


def test_a_forged_indication_does_not_pin_a_lora_nodes_led(lora_rig: LoraRig, probe: Probe) -> None:
    gateway, clock, node = lora_rig.gateway, lora_rig.clock, lora_rig.node
    node.press()
    wait_for(lambda: gateway.counters.get("radio_events") == 1, "the press stored")
    indicate(probe, "lora-1001", IndicationState.ACKNOWLEDGED, alarm=4_000_000_000, rev=65_000)  # forged
    assert node.wait_for_pattern("help_coming", 10)
    clock.advance(0.5)
    indicate(probe, "lora-1001", IndicationState.RECEIVED, alarm=7, rev=0)  # within the window: ignored
    wait_for(lambda: gateway.counters.get("indications_stale") == 1, "the reorder ignored")
    clock.advance(REORDER_WINDOW_S)
    indicate(probe, "lora-1001", IndicationState.RECEIVED, alarm=7, rev=0)  # the dashboard's next re-sync
    assert node.wait_for_pattern("received", 10)
    # Too wide for the radio frame: refused, rather than kept and failing at every poll.
    clock.advance(REORDER_WINDOW_S + 1)
    indicate(probe, "lora-1001", IndicationState.RESOLVED, alarm=5_000_000_000, rev=70_000)
    wait_for(lambda: gateway.counters.get("indications_unsendable") == 1, "the unsendable one refused")
    assert gateway.radio is not None
    kept = gateway.radio.kept_indication(1001)
    assert kept is not None and (kept.alarm, kept.rev) == (7, 0)
    assert gateway.counters.get("radio_frame_errors") == 0


def cpu_seconds(native_id: int | None) -> float:
    """CPU time a thread of this process has used (Linux: /proc/self/task/<tid>/stat, utime + stime)."""
    assert native_id is not None
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("cause", ["link down", "dashboard said offline"])
def test_an_overdue_event_that_cannot_go_yet_does_not_spin_the_pump(tmp_path: Path, probe: Probe, cause: str) -> None:
    """The pump used to wait 0 s for an overdue resend it would not make: ~100,000 empty turns a second."""
    probe.subscribe(EVENT_TOPIC)
    rig = PumpRig(Outbox(tmp_path / "outbox.db"), probe, receipt_timeout_s=0.1)
    try:
        rig.put(new_event_id())
        rig.pump.start()
        rig.pump.link_up()
        rig.seen(1)
        wait_for(lambda: rig.counters.get("events_acknowledged") == 1, "the PUBACK collected")
        if cause == "link down":
            rig.pump.link_down()
        else:
            rig.pump.dashboard_presence(False)
        time.sleep(0.3)  # past the receipt timeout (0.1 s, and 0.1 s from link_up): the event is overdue
        before = cpu_seconds(rig.pump.native_id)
        time.sleep(0.5)  # the span measured
        assert cpu_seconds(rig.pump.native_id) - before < 0.05
        assert rig.counters.get("events_resent") == 0
    finally:
        rig.pump.stop()
        rig.outbox.close()


# -- which thread owns what ----------------------------------------------------------------------------------


def test_paho_s_thread_only_posts_facts_the_pump_applies(pump_rig: PumpRig) -> None:
    """Presence and reconnects used to rewrite every event's resend time from paho's thread, racing the pump."""
    rig = pump_rig
    rig.put(new_event_id())
    rig.pump.start()
    rig.pump.link_up()
    rig.seen(1)
    wait_for(lambda: rig.counters.get("events_acknowledged") == 1, "the PUBACK collected")
    with rig.pump.held() as resend_times:  # the pump (or a press handler) is in the middle of a turn
        ((event_id, due),) = resend_times().items()

        def as_paho_would() -> None:
            rig.pump.dashboard_presence(False)
            rig.pump.dashboard_presence(True)  # came back: resends are to be postponed
            rig.pump.link_up()

        paho = threading.Thread(target=as_paho_would)
        paho.start()
        paho.join(5)
        assert not paho.is_alive()  # paho's thread is never held up by the pump...
        assert resend_times() == {event_id: due}  # ...and wrote nothing the pump owns
    wait_for(lambda: rig.pump.resend_times()[event_id] > due, "the postponement applied by the pump")


def test_only_a_dashboard_session_not_heard_of_before_makes_unreceipted_events_go_again_at_once(
    pump_rig: PumpRig,
) -> None:
    """A new ``resync`` mark: the broker may have dropped what it acknowledged. The first mark is only noted,
    and marks of dashboard processes taking turns on the retained topic are not new."""
    rig = pump_rig
    rig.put(new_event_id())
    rig.pump.start()
    rig.pump.link_up()
    rig.seen(1)
    wait_for(lambda: rig.counters.get("events_acknowledged") == 1, "the PUBACK collected")
    rig.pump.dashboard_presence(True, "2026-12-01T00:00:00Z")  # the first heard: only noted
    rig.pump.dashboard_presence(True, "2026-12-01T00:00:00Z")
    rig.pump.wake()
    wait_for(lambda: rig.pump.last_loop > time.monotonic() - 0.05, "a turn of the pump")
    assert rig.counters.get("dashboard_resyncs") == 0
    assert rig.counters.get("events_resent") == 0
    rig.pump.dashboard_presence(True, "2026-12-01T00:05:00Z")  # a session the broker had not kept
    wait_for(lambda: rig.counters.get("events_resent") == 1, "the event sent again at once")
    rig.seen(1)  # the copy (the receipt timeout, 15 s, is far off)
    assert rig.counters.get("dashboard_resyncs") == 1
    wait_for(lambda: rig.counters.get("events_acknowledged") == 2, "the copy's PUBACK collected")
    for mark in ("2026-12-01T00:00:00Z", "2026-12-01T00:05:00Z"):  # two processes taking turns
        rig.pump.dashboard_presence(True, mark)
    rig.pump.wake()
    wait_for(lambda: rig.pump.last_loop > time.monotonic() - 0.05, "a turn of the pump")
    assert rig.counters.get("dashboard_resyncs") == 1
    assert rig.counters.get("events_resent") == 1


def test_the_first_dashboard_session_heard_brings_again_what_was_sent_before_it_was_made(pump_rig: PumpRig) -> None:
    """The gateway restarted while the broker was away and published before the dashboard was back on a
    broker without its state: the first mark this process hears is then later than the event's sending."""
    rig = pump_rig
    rig.put(new_event_id())
    rig.pump.start()
    rig.pump.link_up()
    rig.seen(1)
    wait_for(lambda: rig.counters.get("events_acknowledged") == 1, "the PUBACK collected")
    rig.pump.dashboard_presence(True, format_epoch(time.time() + 1))  # made after the event went out
    wait_for(lambda: rig.counters.get("events_resent") == 1, "the event sent again at once")
    rig.seen(1)  # the copy (the receipt timeout, 15 s, is far off)
    assert rig.counters.get("dashboard_resyncs") == 1


def test_lora_indications_are_kept_under_the_services_lock(lora_rig: LoraRig) -> None:
    service = lora_rig.gateway.radio
    assert service is not None
    with service.held() as kept_indications:  # the serial reader is, say, popping the node's indication after a press
        paho = threading.Thread(
            target=service.indicate, args=(indication("lora-1001", IndicationState.RECEIVED, 7, 0),)
        )
        paho.start()
        paho.join(0.2)  # bounded: long enough for an unguarded write to have happened
        assert paho.is_alive() and 1001 not in kept_indications()
    paho.join(5)
    assert not paho.is_alive()
    kept = service.kept_indication(1001)
    assert kept is not None and (kept.alarm, kept.rev) == (7, 0)


def test_presence_flips_and_receipts_while_pressing_lose_and_double_nothing(
    tmp_path: Path,
    mosquitto: Mosquitto,
    broker_settings: BrokerSettings,
    probe: Probe,
    pin_factory: MockFactory,
    open_gateway: Callable[..., Gateway],
) -> None:
    """Hammer the paths paho's thread takes into the pump while events go out.

    Why nothing can be lost or doubled: paho's thread only appends to deques
    and sets facts under ``_facts_lock``; every change to ``_sent`` and its
    entries happens under ``_send_lock``, in one place per kind of fact. A
    receipt is applied at most once (it pops the entry), and only for an
    event handed over before it arrived. Resends (every 0.2 s here) may make
    the broker deliver an id twice; this test receipts each id once, so
    ``events_receipted`` must equal the presses and ``receipts_ignored`` the
    forged receipts, exactly.
    """
    gateway = open_gateway(trust_config(tmp_path, mosquitto, receipt_timeout_s=0.2), max_resend_interval_s=0.5)
    recorded: list[str] = []
    gateway.add_record_listener(lambda event: recorded.append(event.id))
    probe.subscribe(EVENT_TOPIC)
    stop = threading.Event()
    seen: set[str] = set()
    forged = 0

    def flap_the_dashboards_presence() -> None:
        online = False
        while not stop.is_set():
            gateway.pump.dashboard_presence(online)
            online = not online

    def receipt_each_event_once_and_forge_some() -> None:
        nonlocal forged
        with Probe(broker_settings) as dashboard:
            while not stop.is_set():
                try:
                    message = probe.messages.get(timeout=0.05)
                except queue.Empty:
                    continue
                event_id = decode_event(message.payload).id
                if event_id in seen:
                    continue  # a resend: receipted already
                seen.add(event_id)
                dashboard.publish(TOPICS.receipt(GW), receipt(event_id, new_event_id()))
                forged += 1

    threads = [
        threading.Thread(target=flap_the_dashboards_presence),
        threading.Thread(target=receipt_each_event_once_and_forge_some),
    ]
    for thread in threads:
        thread.start()
    try:
        for number in range(60):
            press(pin_factory, 17 if number % 2 else 23)
        wait_for(lambda: len(recorded) == 60 and seen >= set(recorded), "every press at the broker", timeout=20)
        assert gateway.pump.wait_drained(20)
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
    assert seen == set(recorded)  # nothing lost, nothing unknown
    assert gateway.counters.get("events_receipted") == 60  # each deleted once
    assert gateway.counters.get("receipts_ignored") == forged
    assert (gateway.outbox.depth(), gateway.pump.awaiting_receipt, gateway.pump.inflight) == (0, 0, 0)
    assert gateway.pump.unstored_waiting == 0
