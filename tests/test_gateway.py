"""The gateway against a real Mosquitto: presence, inventory, events, indications, security."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from gpiozero.pins.mock import MockFactory

from firmware_bridge.broker import BrokerSettings
from firmware_bridge.ids import is_event_id
from firmware_bridge.payloads import (
    Indication,
    IndicationState,
    Receipt,
    decode_event,
    decode_inventory,
    decode_status,
)
from firmware_bridge.settings import read_toml
from firmware_bridge.timeutil import format_epoch
from firmware_bridge.topics import Channel, Topics
from gateway.app import Gateway
from gateway.config import GatewayConfig, parse_config
from gateway.indicator import BLINK_TIMES, Pattern
from sim.mosquitto import Mosquitto, TlsFiles

from .conftest import DEFAULT_BUTTONS, gateway_toml, press
from .mqttprobe import Probe
from .waiting import poll_until

TOPICS = Topics()


def status_of(message) -> dict:
    return json.loads(message.payload)


def test_the_gateway_announces_itself_online_with_its_inventory(gateway: Gateway, probe: Probe) -> None:
    probe.subscribe(TOPICS.status("gw-test"))
    status = decode_status(probe.wait_for(lambda m: m.topic.endswith("/status")).payload)
    assert status.state == "online" and status.version and status.started
    probe.subscribe(TOPICS.inventory("gw-test"))
    message = probe.wait_for(lambda m: m.topic.endswith("/inventory"))
    assert message.retain
    inventory = decode_inventory(message.payload)
    assert [(b.id, b.kind, b.site.name) for b in inventory.buttons] == [
        ("fire-1", "fire", "Pasar Andoolo"),
        ("sapa-1", "sapa", "Pasar Andoolo"),
    ]


def test_a_clean_shutdown_leaves_a_retained_offline(
    make_gateway_config: Callable[..., GatewayConfig], start_gateway: Callable[..., Gateway], probe: Probe
) -> None:
    gateway = start_gateway(make_gateway_config())
    probe.subscribe(TOPICS.status("gw-test"))
    probe.wait_for(lambda m: status_of(m)["state"] == "online")
    gateway.close()
    offline = probe.wait_for(lambda m: status_of(m)["state"] == "offline")
    assert status_of(offline)["reason"] == "shutdown"


def test_a_killed_gateway_is_announced_offline_by_its_last_will(
    tmp_path: Path, mosquitto: Mosquitto, probe: Probe
) -> None:
    config = gateway_toml(tmp_path / "gateway.toml", port=mosquitto.port, gw_id="gw-doomed")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(config)],
        env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"},
        stderr=subprocess.DEVNULL,
    )
    try:
        probe.subscribe(TOPICS.status("gw-doomed"))
        probe.wait_for(lambda m: status_of(m)["state"] == "online", timeout=20)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        will = probe.wait_for(lambda m: status_of(m)["state"] == "offline")
        assert status_of(will)["reason"] == "lost"
    finally:
        process.kill()
        process.wait()
    # A board that connects later still learns it: the will is retained.
    with Probe(BrokerSettings(port=mosquitto.port)) as late:
        late.subscribe(TOPICS.status("gw-doomed"))
        assert status_of(late.wait_for(lambda m: m.retain))["state"] == "offline"


def test_status_and_inventory_are_republished_after_the_broker_restarts(gateway: Gateway, mosquitto: Mosquitto) -> None:
    mosquitto.kill()
    mosquitto.start()
    with Probe(BrokerSettings(port=mosquitto.port)) as probe:
        probe.subscribe(TOPICS.status("gw-test"))
        # A live (not retained) "online" is a fresh publish after the reconnect.
        fresh = probe.wait_for(lambda m: not m.retain and status_of(m)["state"] == "online", timeout=15)
        assert status_of(fresh)["reason"] == "connected"
    assert gateway.counters.get("mqtt_connects") == 2


def test_a_press_becomes_one_event(gateway: Gateway, pin_factory: MockFactory, probe: Probe) -> None:
    probe.subscribe(TOPICS.event("gw-test"))
    press(pin_factory, 17)
    message = probe.wait_for(lambda m: m.topic.endswith("/event"))
    assert message.qos == 1
    event = decode_event(message.payload)
    assert (event.gw, event.button, event.kind, event.type, event.src) == ("gw-test", "fire-1", "fire", "press", "gpio")
    assert is_event_id(event.id)
    # The broker's PUBACK is not enough: the event stays until the dashboard's receipt.
    assert not gateway.pump.wait_drained(0.3)
    assert gateway.outbox.depth() == 1 and gateway.pump.awaiting_receipt == 1
    probe.publish(TOPICS.receipt("gw-test"), Receipt((event.id,), format_epoch(time.time())).encode())
    assert gateway.pump.wait_drained(5)
    assert gateway.outbox.depth() == 0
    assert gateway.counters.get("events_acknowledged") == 1 and gateway.counters.get("events_receipted") == 1


def test_a_bad_receipt_is_counted_and_changes_nothing(gateway: Gateway, pin_factory: MockFactory, probe: Probe) -> None:
    probe.subscribe(TOPICS.event("gw-test"))
    press(pin_factory, 17)
    event = decode_event(probe.wait_for(lambda m: m.topic.endswith("/event")).payload)
    for payload in (b"{not json", b'{"v": 1, "ids": [], "ts": "2026-11-28T00:00:00Z"}', b'{"v": 2}'):
        probe.publish(TOPICS.receipt("gw-test"), payload)
    # A good receipt after the bad ones: they were handled in order, and refused.
    probe.publish(TOPICS.receipt("gw-test"), Receipt((event.id,), format_epoch(time.time())).encode())
    assert gateway.pump.wait_drained(5)
    assert gateway.counters.get("receipts_rejected") == 3 and gateway.counters.get("receipts") == 1


def test_hold_to_confirm_ignores_a_brief_touch(
    make_gateway_config: Callable[..., GatewayConfig],
    start_gateway: Callable[..., Gateway],
    pin_factory: MockFactory,
    probe: Probe,
) -> None:
    buttons = DEFAULT_BUTTONS.replace("pin = 23\n", "pin = 23\nhold_s = 0.3\n")
    gateway = start_gateway(make_gateway_config(buttons=buttons))
    probe.subscribe(TOPICS.event("gw-test"))
    press(pin_factory, 23)  # a bump: released at once
    pin_factory.pin(23).drive_low()
    assert gateway.wait_for_pattern("sapa-1", Pattern.SENDING, 5)
    pin_factory.pin(23).drive_high()
    # Events are published in order, so the first one would be the bump's if it had counted.
    event = decode_event(probe.wait_for(lambda m: m.topic.endswith("/event")).payload)
    assert event.button == "sapa-1" and event.held_ms == 300
    assert gateway.counters.get("presses") == 1


def indicate(probe: Probe, button: str, state: IndicationState, alarm: int, rev: int) -> None:
    payload = Indication(button, state, alarm, rev, format_epoch(time.time())).encode()
    probe.publish(TOPICS.indicate("gw-test"), payload)


def pin_states(pin_factory: MockFactory, pin: int, since: int = 0) -> list[bool]:
    """What a mock pin was driven to, in order, from its ``since``-th recorded state on."""
    return [recorded.state for recorded in pin_factory.pin(pin).states[since:]]


def test_indications_drive_the_led(gateway: Gateway, pin_factory: MockFactory, probe: Probe) -> None:
    button = gateway.buttons["fire-1"]
    before = len(pin_factory.pin(27).states)
    indicate(probe, "fire-1", IndicationState.RECEIVED, alarm=7, rev=0)
    assert gateway.wait_for_pattern("fire-1", Pattern.RECEIVED, 5)
    assert button.led_blink == BLINK_TIMES[Pattern.RECEIVED]  # blinking: "received"
    poll_until(  # the LED's pin really goes on and off again (a mock pin has no event to wait on)
        lambda: pin_states(pin_factory, 27, before),
        lambda driven: driven.count(True) >= 1 and driven[-1] is False,
        what="the LED never blinked",
    )
    indicate(probe, "fire-1", IndicationState.ACKNOWLEDGED, alarm=7, rev=1)
    assert gateway.wait_for_pattern("fire-1", Pattern.HELP_COMING, 5)
    assert button.led_blink is None and pin_factory.pin(27).state is True  # solid: "help is coming"
    indicate(probe, "fire-1", IndicationState.RECEIVED, alarm=7, rev=0)  # stale, redelivered late
    indicate(probe, "fire-1", IndicationState.RESOLVED, alarm=7, rev=2)
    assert gateway.wait_for_pattern("fire-1", Pattern.OFF, 5)
    assert pin_factory.pin(27).state is False
    assert gateway.counters.get("indications_stale") == 1


def test_a_fire_button_chirps_on_received_and_a_sapa_button_stays_silent(
    gateway: Gateway, pin_factory: MockFactory, probe: Probe
) -> None:
    buzzer = pin_factory.pin(22)
    before = len(buzzer.states)
    indicate(probe, "sapa-1", IndicationState.RECEIVED, alarm=1, rev=0)
    assert gateway.wait_for_pattern("sapa-1", Pattern.RECEIVED, 5)
    assert gateway.buttons["sapa-1"].buzzer is None
    assert len(buzzer.states) == before  # the only buzzer did not stir for SAPA
    indicate(probe, "fire-1", IndicationState.RECEIVED, alarm=2, rev=0)
    assert gateway.wait_for_pattern("fire-1", Pattern.RECEIVED, 5)
    chirp = poll_until(  # a mock pin has no event to wait on
        lambda: pin_states(pin_factory, 22, before),
        lambda driven: driven.count(True) == 2 and driven[-1] is False,
        what="the chirp never ended",
    )
    assert chirp.count(True) == 2  # two short beeps


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'{"v":1}',
        b'{"v":9,"button":"fire-1"}',
        json.dumps(
            {"v": 1, "button": "nobody", "state": "received", "alarm": 1, "rev": 0, "ts": "2026-01-01T00:00:00.000Z"}
        ).encode(),
    ],
)
def test_bad_downlink_is_counted_and_survived(gateway: Gateway, probe: Probe, payload: bytes) -> None:
    probe.publish(TOPICS.indicate("gw-test"), payload)
    indicate(probe, "fire-1", IndicationState.ACKNOWLEDGED, alarm=3, rev=1)
    assert gateway.wait_for_pattern("fire-1", Pattern.HELP_COMING, 5)
    counters = gateway.counters.snapshot()
    assert counters.get("indications_rejected", 0) + counters.get("indications_unknown_button", 0) == 1


# -- security: credentials, ACL, TLS ----------------------------------------------------------

USERS = {"dashboard": "dashboard-secret-1", "gw-a": "gateway-a-secret", "gw-b": "gateway-b-secret"}


def loaded(path: Path, **toml: Any) -> GatewayConfig:
    """Write a gateway.toml at ``path`` (as ``conftest.gateway_toml`` does) and load it as the daemon does."""
    return parse_config(read_toml(gateway_toml(path, **toml)))


@pytest.fixture
def secured_broker(tmp_path: Path):
    with Mosquitto(tmp_path / "secured", users=USERS, acl=True) as broker:
        yield broker


def test_a_gateway_logs_in_and_a_wrong_password_is_refused(
    tmp_path: Path, secured_broker: Mosquitto, start_gateway: Callable[..., Gateway]
) -> None:
    secret = tmp_path / "gw-a.secret"
    secret.write_text("gateway-a-secret\n")
    good = loaded(
        tmp_path / "a.toml",
        port=secured_broker.port,
        gw_id="gw-a",
        mqtt_extra=f'username = "gw-a"\npassword_file = "{secret}"\n',
    )
    gateway = start_gateway(good)
    assert gateway.link.connected.is_set()

    bad = loaded(
        tmp_path / "b.toml",
        port=secured_broker.port,
        gw_id="gw-b",
        mqtt_extra='username = "gw-b"\npassword = "wrong-password"\n',
        buttons=DEFAULT_BUTTONS.replace("pin = 17", "pin = 5")
        .replace("pin = 23", "pin = 6")
        .replace("led_pin = 27", "led_pin = 12")
        .replace("led_pin = 24", "led_pin = 13")
        .replace("buzzer_pin = 22", "buzzer_pin = 16")
        .replace('"fire-1"', '"b-fire"')
        .replace('"sapa-1"', '"b-sapa"'),
    )
    refused = start_gateway(bad, wait_connected=False)
    poll_until(
        lambda: refused.counters.get("mqtt_connect_refused"),
        what="the broker refusing the connection",
        pause=refused.link.connected.wait,
    )
    assert refused.counters.get("mqtt_connect_refused") >= 1
    assert not refused.link.connected.is_set()


def test_the_acl_keeps_a_gateway_to_its_own_topics(secured_broker: Mosquitto) -> None:
    dashboard = Probe(BrokerSettings(port=secured_broker.port, username="dashboard", password=USERS["dashboard"]))
    gateway_a = Probe(BrokerSettings(port=secured_broker.port, username="gw-a", password=USERS["gw-a"]))
    with dashboard, gateway_a:
        dashboard.subscribe(TOPICS.subscription(Channel.EVENT))
        gateway_a.publish(TOPICS.event("gw-b"), b"forged in gw-b's name")
        gateway_a.publish(TOPICS.event("gw-a"), b"own topic")
        first = dashboard.wait_for(lambda m: True)
        assert (first.topic, first.payload) == (TOPICS.event("gw-a"), b"own topic")


def test_the_gateway_connects_over_tls(tmp_path: Path, start_gateway: Callable[..., Gateway]) -> None:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    server.cert_chain_pems[0].write_to_path(str(cert_file))
    server.private_key_pem.write_to_path(str(key_file))
    with Mosquitto(tmp_path / "tls", tls=TlsFiles(str(ca_file), str(cert_file), str(key_file))) as broker:
        config = loaded(
            tmp_path / "tls.toml",
            port=broker.port,
            mqtt_extra=f'[mqtt.tls]\nca_file = "{ca_file}"\n',
        )
        assert config.broker.tls is not None
        gateway = start_gateway(config)
        assert gateway.link.connected.is_set()


def test_the_gateway_proves_the_broker_accepts_what_it_publishes(gateway: Gateway) -> None:
    assert gateway.link.echo.wait(5)
    assert gateway.health().delivery_verified is True


def test_a_gateway_whose_username_is_not_its_id_is_refused_at_start(tmp_path: Path) -> None:
    from firmware_bridge import ConfigError

    path = gateway_toml(tmp_path / "g.toml", port=1883, gw_id="gw-pasar-andoolo", mqtt_extra='username = "gw-pasar"\n')
    with pytest.raises(ConfigError, match="must be the gateway id") as caught:
        parse_config(read_toml(path))
    assert caught.value.key == "mqtt.username"


def test_a_gateway_without_any_outbox_still_delivers_from_memory(
    tmp_path: Path, mosquitto: Mosquitto, start_gateway: Callable[..., Gateway], pin_factory: MockFactory, probe: Probe
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("x")
    config = loaded(tmp_path / "g.toml", port=mosquitto.port, data_dir=blocked)
    gateway = start_gateway(config)
    probe.subscribe(TOPICS.event("gw-test"))
    press(pin_factory, 17)
    event = decode_event(probe.wait_for(lambda m: m.topic.endswith("/event")).payload)
    assert event.button == "fire-1"
    assert gateway.counters.get("outbox_errors") == 1
    assert gateway.health().outbox_ok is False


def test_a_failed_delete_is_retried_not_forgotten(dashboard, gateway: Gateway, pin_factory: MockFactory) -> None:
    from firmware_bridge import OutboxError

    real_remove = gateway.outbox.remove_events
    failures = []

    def remove_failing_once(event_ids):  # fault injection: the SD card refuses one write
        if not failures:
            failures.append(list(event_ids))
            raise OutboxError("injected: disk I/O error")
        real_remove(event_ids)

    gateway.outbox.remove_events = remove_failing_once
    gateway.pump.retry_s = 0.05
    press(pin_factory, 17)
    assert gateway.pump.wait_drained(10)
    assert failures and gateway.outbox.depth() == 0
    assert gateway.counters.get("outbox_errors") == 1


def test_a_broker_that_drops_our_messages_is_noticed(
    tmp_path: Path, start_gateway: Callable[..., Gateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ACL only knows the root siaga/v1: a gateway on another root is acknowledged but dropped.
    from gateway import link

    monkeypatch.setattr(link, "ECHO_TIMEOUT_S", 0.5)
    with Mosquitto(tmp_path / "acl", users=USERS, acl=True) as broker:
        config = loaded(
            tmp_path / "g.toml",
            port=broker.port,
            gw_id="gw-a",
            mqtt_extra=f'username = "gw-a"\npassword = "{USERS["gw-a"]}"\nroot = "other/v1"\n',
        )
        gateway = start_gateway(config)
        poll_until(
            lambda: gateway.counters.get("status_echo_missing"),
            what="the missing status echo counted",
            pause=gateway.link.echo.wait,
        )
        assert gateway.counters.get("status_echo_missing") == 1
        assert gateway.health().delivery_verified is False


# -- systemd: readiness and the watchdog ------------------------------------------------------


def notify_socket(tmp_path: Path):
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(10)
    return sock, path


def test_the_gateway_tells_systemd_it_is_ready_and_feeds_the_watchdog(tmp_path: Path, mosquitto: Mosquitto) -> None:
    sock, path = notify_socket(tmp_path)
    config = gateway_toml(tmp_path / "gateway.toml", port=mosquitto.port)
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(config)],
        env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"},
        stderr=subprocess.DEVNULL,
    )
    try:
        messages = [sock.recv(256).decode() for _ in range(4)]
        assert messages[0] == "READY=1"
        assert messages[1:] == ["WATCHDOG=1"] * 3  # every 0.2 s: half of WATCHDOG_USEC
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        rest = []
        sock.settimeout(0.5)
        try:
            while True:
                rest.append(sock.recv(256).decode())
        except TimeoutError:
            pass
        assert rest[-1] == "STOPPING=1"
    finally:
        process.kill()
        process.wait()
        sock.close()


def test_a_hung_pump_stops_the_watchdog_pings_and_they_resume_when_it_turns_again(
    tmp_path: Path, gateway: Gateway, pin_factory: MockFactory
) -> None:
    from gateway.systemd import Watchdog

    sock, path = notify_socket(tmp_path)
    gateway.stale_after_s = 0.5
    watchdog = Watchdog(gateway.liveness, 0.05, {"NOTIFY_SOCKET": str(path)}).start()
    try:
        assert sock.recv(64) == b"WATCHDOG=1"
        with gateway.pump.held():  # the pump thread waits, as on a deadlock
            press(pin_factory, 17)  # the press still commits to the outbox
            poll_until(  # the watchdog thread's state has no event to wait on
                lambda: watchdog.trouble,
                lambda trouble: trouble is not None,
                what="the watchdog never noticed the hung pump",
            )
            assert "outbox pump has not turned" in watchdog.trouble
            pings = watchdog.pings
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                while True:  # drain what was sent before the trouble, then nothing more comes
                    sock.recv(64)
            assert watchdog.pings == pings
        sock.settimeout(10)
        assert sock.recv(64) == b"WATCHDOG=1"
        assert watchdog.trouble is None
        assert gateway.outbox.depth() == 1
    finally:
        watchdog.stop()
        sock.close()
