"""The alarm path end to end, and delivery across broker and gateway restarts.

Real Mosquitto (project config), real gateway on gpiozero mock pins, real
dashboard behind uvicorn, the board's live stream read over HTTP.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

from gpiozero.pins.mock import MockFactory

from firmware_bridge.payloads import decode_event
from firmware_bridge.topics import Topics
from gateway.app import Gateway
from gateway.config import GatewayConfig
from gateway.indicator import Pattern
from gateway.outbox import Outbox
from sim.mosquitto import Mosquitto
from sim.relay import DOWN, UP, TcpRelay
from sim.servers import DashboardServer
from sim.webclient import DashboardClient

from .conftest import press
from .mqttprobe import Probe
from .test_ingest import drained, wait_alarm
from .waiting import poll_until


def test_a_press_reaches_the_board_and_the_acknowledgement_lights_the_button(
    dashboard: DashboardServer, operator: DashboardClient, gateway: Gateway, pin_factory: MockFactory
) -> None:
    led = pin_factory.pin(27)
    with operator.stream() as stream:
        stream.wait_for(lambda e: e.event == "snapshot", 5)
        pin_factory.pin(17).drive_low()  # the wall button closes to ground
        pin_factory.pin(17).drive_high()
        live = stream.wait_for(lambda e: e.event == "alarm", 5).json()
    assert (live["button"], live["kind"], live["state"], live["press_count"]) == (
        "fire-1",
        "fire",
        "unacknowledged",
        1,
    )
    assert live["site"]["name"] == "Pasar Andoolo" and live["gw"] == "gw-test"

    (listed,) = operator.get_json("/api/alarms")["alarms"]
    assert listed["id"] == live["id"]

    # The button shows "received" (slow blink) once the dashboard has stored the alarm.
    assert gateway.wait_for_pattern("fire-1", Pattern.RECEIVED, 5)
    acked = operator.post_json(f"/api/alarms/{live['id']}/acknowledge", {"note": "Regu 2 menuju lokasi"})["alarm"]
    assert gateway.wait_for_pattern("fire-1", Pattern.HELP_COMING, 5)
    assert gateway.buttons["fire-1"].led_blink is None
    assert led.state is True  # solid: help is coming

    operator.post_json(f"/api/alarms/{live['id']}/resolve", {"resolution": "real", "rev": acked["rev"]})
    assert gateway.wait_for_pattern("fire-1", Pattern.OFF, 5)
    assert led.state is False


def test_a_sapa_press_reaches_only_the_sapa_desk_and_stays_silent_at_the_button(
    dashboard: DashboardServer, gateway: Gateway, pin_factory: MockFactory
) -> None:
    from .conftest import SAPA_DESK, signed_in

    desk = signed_in(dashboard, SAPA_DESK)
    press(pin_factory, 23)
    alarm = wait_alarm(desk, lambda a: a["button"] == "sapa-1")
    assert alarm["kind"] == "sapa"
    assert gateway.wait_for_pattern("sapa-1", Pattern.RECEIVED, 5)
    assert gateway.buttons["sapa-1"].buzzer is None


def test_a_press_while_the_broker_is_down_waits_in_the_outbox(
    dashboard: DashboardServer,
    operator: DashboardClient,
    gateway: Gateway,
    pin_factory: MockFactory,
    mosquitto: Mosquitto,
) -> None:
    mosquitto.stop()
    press(pin_factory, 17)
    # The press callback has committed the event before returning.
    assert gateway.outbox.depth() == 1
    assert gateway.pattern("fire-1") is Pattern.SENDING
    mosquitto.start()
    alarm = wait_alarm(operator, lambda a: a["button"] == "fire-1", timeout=20)
    assert alarm["press_count"] == 1
    assert gateway.pump.wait_drained(10)
    assert gateway.wait_for_pattern("fire-1", Pattern.RECEIVED, 10)


def test_events_left_in_the_outbox_go_out_first_in_order_and_once(
    dashboard: DashboardServer,
    operator: DashboardClient,
    make_gateway_config: Callable[..., GatewayConfig],
    start_gateway: Callable[..., Gateway],
    mosquitto: Mosquitto,
) -> None:
    config = make_gateway_config()
    mosquitto.stop()
    first_factory = MockFactory()
    first = Gateway(config, pin_factory=first_factory).start()
    for _ in range(3):
        press(first_factory, 17)
    press(first_factory, 23)
    backlog = [row.event_id for row in first.outbox.pending(0, 100)]
    assert len(backlog) == 4
    first.close()  # the gateway restarts (or the Pi reboots) before the broker is back
    first_factory.reset()

    mosquitto.start()
    second_factory = MockFactory()
    second = start_gateway(config, factory=second_factory, wait_connected=False)
    press(second_factory, 17)  # a new press while the backlog drains must not overtake it
    assert second.pump.wait_drained(20)
    drained(dashboard, 5)
    fire = wait_alarm(operator, lambda a: a["button"] == "fire-1")
    assert fire["press_count"] == 4
    events = [e["id"] for e in operator.get_json(f"/api/alarms/{fire['id']}")["events"]]
    assert events[:3] == backlog[:3]  # in the order they were pressed, the new press last
    assert events[3] not in backlog
    assert dashboard.ingest.counters.get("events_stored") == 5
    assert dashboard.ingest.counters.get("events_duplicate") == 0


def _publish_size(topic: str, payload: bytes) -> int:
    """Bytes of an MQTT 3.1.1 QoS 1 PUBLISH packet."""
    remaining = 2 + len(topic.encode()) + 2 + len(payload)
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16384 else 3
    return 1 + length_bytes + remaining


def test_a_press_during_a_reconnect_does_not_overtake_events_lost_with_the_old_connection(
    dashboard: DashboardServer,
    operator: DashboardClient,
    make_gateway_config: Callable[..., GatewayConfig],
    start_gateway: Callable[..., Gateway],
    pin_factory: MockFactory,
    mosquitto: Mosquitto,
) -> None:
    """paho resends what the old connection lost only once it reads the CONNACK;
    a press in between must wait for them rather than reach the broker first."""
    with TcpRelay(mosquitto.host, mosquitto.port) as relay:
        gateway = start_gateway(make_gateway_config(port=relay.port))
        relay.hold(UP)  # the link dies with these presses on it
        for _ in range(3):
            press(pin_factory, 17)
        lost = gateway.outbox.pending(0, 100)
        assert len(lost) == 3
        assert relay.wait_kept(UP, sum(_publish_size(row.topic, row.payload) for row in lost), 10)
        relay.hold(DOWN)
        relay.cut()  # nothing of the three reached the broker
        relay.release(UP)
        assert relay.wait_kept(DOWN, 4, 10)  # reconnected; the CONNACK waits in the relay
        press(pin_factory, 17)  # between the new socket and the CONNACK
        relay.release(DOWN)
        assert gateway.pump.wait_drained(10)
        drained(dashboard, 4)
    assert relay.failure is None
    fire = wait_alarm(operator, lambda a: a["button"] == "fire-1" and a["press_count"] == 4)
    events = [e["id"] for e in operator.get_json(f"/api/alarms/{fire['id']}")["events"]]
    assert events[:3] == [row.event_id for row in lost]


def test_an_event_sent_twice_after_a_crash_is_stored_once(
    dashboard: DashboardServer,
    operator: DashboardClient,
    make_gateway_config: Callable[..., GatewayConfig],
    start_gateway: Callable[..., Gateway],
    pin_factory: MockFactory,
    probe: Probe,
) -> None:
    config = make_gateway_config()
    probe.subscribe(Topics().event("gw-test"))
    gateway = start_gateway(config)
    press(pin_factory, 17)
    published = probe.wait_for(lambda m: m.topic.endswith("/event"))
    alarm = wait_alarm(operator, lambda a: a["button"] == "fire-1")
    assert gateway.pump.wait_drained(5)
    gateway.close()
    # A crash between the broker's PUBACK and the outbox delete leaves the row behind:
    event = decode_event(published.payload)
    with Outbox(config.outbox_path) as outbox:
        outbox.put(event.id, published.topic, published.payload)
    restarted = start_gateway(config, factory=MockFactory())
    assert restarted.pump.wait_drained(10)
    drained(dashboard, 2)
    assert dashboard.ingest.counters.get("events_duplicate") == 1
    again = operator.get_json(f"/api/alarms/{alarm['id']}")["alarm"]
    assert (again["press_count"], again["rev"]) == (1, 0)
    assert json.loads(published.payload)["id"] == again["last_event_id"]


def test_every_press_ends_in_received_never_stuck_in_sending(
    dashboard: DashboardServer, operator: DashboardClient, gateway: Gateway, pin_factory: MockFactory
) -> None:
    # Presses in quick succession: the dashboard may answer before the press handler
    # returns, and coalesces indications per batch; the LED must end in "received"
    # for the alarm's latest revision.
    for _ in range(20):
        press(pin_factory, 17)
    presses = gateway.counters.get("presses")
    alarm = wait_alarm(operator, lambda a: a["press_count"] == presses)
    last = poll_until(
        lambda: gateway.last_indication("fire-1"),
        lambda last: last is not None and (last.alarm, last.rev) == (alarm["id"], alarm["rev"]),
        what="the node showing the alarm's latest revision",
        pause=lambda s: gateway.wait_for_pattern("fire-1", Pattern.RECEIVED, s),
    )
    assert (last.alarm, last.rev) == (alarm["id"], alarm["rev"])
    assert gateway.pattern("fire-1") is Pattern.RECEIVED


def test_an_event_the_broker_lost_after_acknowledging_it_is_sent_again(
    dashboard: DashboardServer,
    operator: DashboardClient,
    make_gateway_config: Callable[..., GatewayConfig],
    start_gateway: Callable[..., Gateway],
    pin_factory: MockFactory,
    mosquitto: Mosquitto,
) -> None:
    """The broker acknowledges, then dies (SIGKILL) before it saved or delivered the event."""
    # The config's receipt_timeout_s, short for the test.
    gateway = start_gateway(dataclasses.replace(make_gateway_config(), receipt_timeout_s=1.0), wait_connected=True)
    dashboard.stop()  # the dashboard is being redeployed: the broker queues for it
    press(pin_factory, 17)
    (row,) = gateway.outbox.pending(0, 10)
    poll_until(  # counters have no event to wait on
        lambda: gateway.counters.get("events_acknowledged"),
        lambda acknowledged: acknowledged >= 1,
        interval=0.01,
        what="the broker never acknowledged the event",
    )
    mosquitto.kill()  # its queue for the dashboard was never saved (autosave every 30 s)
    mosquitto.start()
    again = DashboardServer(dashboard.config).start()
    try:
        assert gateway.pump.wait_drained(20)  # resent once its receipt was overdue, then receipted
        alarm = wait_alarm(operator, lambda a: a["button"] == "fire-1")
        events = [e["id"] for e in operator.get_json(f"/api/alarms/{alarm['id']}")["events"]]
        assert events == [row.event_id]
        assert gateway.counters.get("events_resent") >= 1
    finally:
        again.stop()
