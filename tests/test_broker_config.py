"""The broker configuration: Mosquitto's shipped ``deploy/mosquitto/conf.d/siaga.conf`` and the ``[mqtt]`` table.

Events for a dashboard that is away (redeployed, crashed, its network down)
wait in its persistent session on the broker. Mosquitto's defaults would keep
only 1,000 of them and forget them all on a restart; the shipped settings
keep a day's worth across a clean broker restart (docs/reliability.md).

``[mqtt] brokers`` names the members of a clustered broker; a client moves
to the next one when the current one refuses or drops it (tested here on
Mosquitto, and on a nats-server cluster in test_broker_cluster.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from firmware_bridge.broker import (
    BrokerAddress,
    BrokerSettings,
    Subscriptions,
    connect_with_failover,
    make_client,
    read_broker_settings,
)
from firmware_bridge.counters import Counters
from firmware_bridge.errors import ConfigError
from firmware_bridge.settings import parse_toml
from sim.mosquitto import Mosquitto, free_port

from .waiting import poll_until

#: Three times Mosquitto's default max_queued_messages.
QUEUED = 3000
TOPIC = "siaga/v1/gw/gw-q/event"


def connect(client: mqtt.Client, settings: BrokerSettings) -> None:
    ready = threading.Event()
    client.on_connect = lambda *args: ready.set()
    client.connect(settings.host, settings.port)
    client.loop_start()
    assert ready.wait(10), "could not connect"


def test_events_queued_for_an_away_dashboard_survive_a_broker_restart(mosquitto: Mosquitto) -> None:
    settings = BrokerSettings(host=mosquitto.host, port=mosquitto.port)
    dashboard = make_client(settings, "dashboard-away", persistent=True)
    connect(dashboard, settings)
    subscribed = threading.Event()
    dashboard.on_subscribe = lambda *args: subscribed.set()
    dashboard.subscribe("siaga/v1/gw/+/event", qos=1)
    assert subscribed.wait(10)
    dashboard.disconnect()
    dashboard.loop_stop()

    gateway = make_client(settings, "gw-q", persistent=False)
    connect(gateway, settings)
    sent = [gateway.publish(TOPIC, f"event-{n}".encode(), qos=1) for n in range(QUEUED)]
    for info in sent:
        info.wait_for_publish(30)
    gateway.disconnect()
    gateway.loop_stop()

    mosquitto.restart()  # a clean restart: Mosquitto writes its persistence file first

    received: set[bytes] = set()
    everything = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        received.add(message.payload)
        if len(received) == QUEUED:
            everything.set()

    back = make_client(settings, "dashboard-away", persistent=True)
    back.on_message = on_message
    connect(back, settings)
    try:
        everything.wait(30)
        assert len(received) == QUEUED, f"{QUEUED - len(received)} queued event(s) lost"
        assert received == {f"event-{n}".encode() for n in range(QUEUED)}
    finally:
        back.disconnect()
        back.loop_stop()


def mqtt_table(text: str) -> BrokerSettings:
    return read_broker_settings(parse_toml("[mqtt]\n" + text, "test.toml").section("mqtt"))


def test_a_single_host_config_reads_as_before() -> None:
    settings = mqtt_table('host = "10.0.0.5"\nport = 1884\n')
    assert (settings.host, settings.port, settings.brokers) == ("10.0.0.5", 1884, ())
    assert settings.addresses() == (BrokerAddress("10.0.0.5", 1884),)


def test_brokers_name_every_member_in_order() -> None:
    settings = mqtt_table('brokers = ["mqtt://10.0.0.1:1883", "mqtt://broker-2", "mqtt://[fd00::3]:1884"]\n')
    assert settings.addresses() == (
        BrokerAddress("10.0.0.1", 1883),
        BrokerAddress("broker-2", 1883),
        BrokerAddress("fd00::3", 1884),
    )
    assert (settings.host, settings.port) == ("10.0.0.1", 1883)
    assert settings.tls is None
    assert "mqtt://[fd00::3]:1884" in settings.describe()


def test_mqtts_brokers_turn_tls_on_with_the_system_cas() -> None:
    settings = mqtt_table('brokers = ["mqtts://a.example", "mqtts://b.example:9883"]\n')
    assert settings.tls is not None and settings.tls.ca_file is None
    assert settings.addresses() == (BrokerAddress("a.example", 8883), BrokerAddress("b.example", 9883))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('brokers = "mqtt://a:1883"\n', "must be a list of URLs"),
        ("brokers = []\n", "1 to 16 brokers"),
        ('brokers = ["mqtt://a", "mqtts://b"]\n', "mixes mqtt:// and mqtts://"),
        ('brokers = ["tcp://a:1883"]\n', "scheme must be mqtt:// or mqtts://"),
        ('brokers = ["a:1883"]\n', "scheme must be mqtt:// or mqtts://"),
        ('brokers = ["mqtt://:1883"]\n', "names no host"),
        ('brokers = ["mqtt://a:99999"]\n', "not a broker URL"),
        ('brokers = ["mqtt://a:0"]\n', "1 to 65535"),
        ('brokers = ["mqtt://u:p@a"]\n', "credentials go in username"),
        ('brokers = ["mqtt://a/siaga"]\n', "no path"),
        ('brokers = ["mqtt://a", "mqtt://a:1883"]\n', "names a broker twice"),
        ('brokers = ["mqtt://a"]\nhost = "b"\n', "either brokers or host/port"),
        ('brokers = ["mqtt://a"]\nport = 1884\n', "either brokers or host/port"),
        ('brokers = ["mqtt://a"]\n[mqtt.tls]\nenabled = true\n', "write them as mqtts://"),
        ('brokers = ["mqtts://a"]\n[mqtt.tls]\nenabled = false\n', "enabled = false"),
    ],
)
def test_a_wrong_brokers_list_is_named(text: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        mqtt_table(text)
    assert "test.toml" in str(caught.value)
    assert caught.value.key.startswith("mqtt.")
    assert words in str(caught.value)


def test_a_client_moves_to_the_next_broker_when_one_refuses_and_when_one_drops(tmp_path: Path) -> None:
    """First a port where nothing listens (refused), then a broker that dies (dropped): each time one that answers."""
    first = Mosquitto(tmp_path / "first").start()
    second = Mosquitto(tmp_path / "second").start()
    settings = BrokerSettings(
        brokers=tuple(BrokerAddress("127.0.0.1", port) for port in (free_port(), first.port, free_port(), second.port)),
        reconnect_min_s=0.05,
        reconnect_max_s=0.2,
    )
    client = make_client(settings, "failover-probe", persistent=False)
    ports: list[int] = []
    failed: list[int] = []
    changed = threading.Condition()

    def on_connect(*args: object) -> None:
        with changed:
            ports.append(client.port)
            changed.notify_all()

    client.on_connect = on_connect
    client.on_connect_fail = lambda *args: failed.append(client.port)
    failover = connect_with_failover(client, settings)
    client.loop_start()
    try:
        with changed:
            assert changed.wait_for(lambda: len(ports) == 1, 10), "never connected"
        assert ports == [first.port] and failover.current.port == first.port
        assert failed == [settings.brokers[0].port]  # the first in the list, refused
        first.kill()
        with changed:
            assert changed.wait_for(lambda: len(ports) == 2, 10), "did not move on after its broker died"
        assert ports == [first.port, second.port]
        assert len(failed) == 1  # the silent member between them was skipped, not tried
    finally:
        client.disconnect()
        client.loop_stop()
        first.stop()
        second.stop()


def subscribed_client(
    settings: BrokerSettings,
    client_id: str,
    topics: list[tuple[str, int]],
    on_complete: Callable[[], None] | None = None,
) -> tuple:
    """A persistent client whose Subscriptions follow its connects, as the gateway's and the dashboard's do."""
    client = make_client(settings, client_id, persistent=True)
    counters = Counters()
    subscriptions = Subscriptions(client, topics, counters=counters, retry_s=0.2, on_complete=on_complete)
    messages: list[mqtt.MQTTMessage] = []
    arrived = threading.Condition()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with arrived:
            messages.append(message)
            arrived.notify_all()

    client.on_connect = lambda c, u, flags, *rest: subscriptions.connected(flags.session_present)
    client.on_message = on_message
    connect_with_failover(client, settings)
    client.loop_start()
    return client, subscriptions, counters, messages, arrived


def test_subscriptions_say_complete_only_when_the_broker_had_not_kept_the_session(mosquitto: Mosquitto) -> None:
    """What the dashboard's presence ``resync`` mark rests on: a first session, or a broker that came back
    without its state, may have missed messages; a new process whose session the broker kept has not."""
    settings = BrokerSettings(port=mosquitto.port, reconnect_min_s=0.05, reconnect_max_s=0.2)
    topics = [("siaga/v1/gw/+/event", 1)]
    said: list[str] = []

    def process(name: str) -> Any:
        client, subscriptions, *_ = subscribed_client(settings, "siaga-dashboard", topics, lambda: said.append(name))
        poll_until(lambda: subscriptions.held == {topics[0][0]}, what=f"{name}: subscribed")
        return client

    def stop(client: Any) -> None:
        client.disconnect()
        client.loop_stop()

    first = process("first")  # a session the broker never had
    poll_until(lambda: said == ["first"], what="the first session said complete")
    stop(first)
    second = process("second")  # a new process, the session kept: asks again, nothing was missed
    assert said == ["first"]
    mosquitto.kill()
    mosquitto.forget_state()
    mosquitto.start()  # back without the session
    poll_until(lambda: said == ["first", "second"], what="the remade session said complete")
    stop(second)


def test_a_reconnect_whose_session_the_broker_kept_does_not_subscribe_again(mosquitto: Mosquitto) -> None:
    """Re-subscribing would make the broker send the retained message again: it does not come."""
    settings = BrokerSettings(port=mosquitto.port, reconnect_min_s=0.05, reconnect_max_s=0.2)
    topic = "siaga/v1/gw/gw-a/status"
    writer = make_client(settings, "writer", persistent=False)
    connect(writer, settings)
    writer.publish(topic, b"online", qos=1, retain=True).wait_for_publish(10)
    client, subscriptions, _, messages, arrived = subscribed_client(settings, "siaga-dashboard", [(topic, 1)])
    try:
        with arrived:
            assert arrived.wait_for(lambda: len(messages) == 1, 10), "the retained status did not come"
        assert messages[0].retain
        mosquitto.restart()  # a clean restart keeps the session (persistence file)
        poll_until(lambda: client.is_connected(), what="reconnected")  # paho's own thread reconnects
        writer.loop_stop()
        connect(writer, settings)
        writer.publish(topic, b"changed", qos=1).wait_for_publish(10)
        with arrived:
            assert arrived.wait_for(lambda: messages[-1].payload == b"changed", 10), "the live message did not come"
        # A restart that came before the broker read our PUBACK redelivers the
        # first copy marked DUP (QoS 1 doing its job); a re-subscription would
        # instead send a fresh retained copy, not marked DUP.
        assert [m.payload for m in messages if not m.dup] == [b"online", b"changed"]
        assert subscriptions.held == {topic}
    finally:
        client.disconnect()
        client.loop_stop()
        writer.disconnect()
        writer.loop_stop()
