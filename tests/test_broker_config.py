"""The broker configuration shipped in ``deploy/mosquitto/conf.d/siaga.conf``, tested on Mosquitto itself.

Events for a dashboard that is away (redeployed, crashed, its network down)
wait in its persistent session on the broker. Mosquitto's defaults would keep
only 1,000 of them and forget them all on a restart; the shipped settings
keep a day's worth across a clean broker restart (docs/reliability.md).
"""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt

from firmware_bridge.broker import BrokerSettings, make_client
from sim.mosquitto import Mosquitto

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
