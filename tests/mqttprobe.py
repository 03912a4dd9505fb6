"""A real MQTT client for tests: publishes raw payloads and records what arrives."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from firmware_bridge.broker import BrokerSettings, make_client


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int


class Probe:
    def __init__(self, settings: BrokerSettings, client_id: str | None = None) -> None:
        self.client = make_client(settings, client_id or f"probe-{uuid.uuid4().hex[:8]}", persistent=False)
        self.settings = settings
        self.messages: queue.Queue[Received] = queue.Queue()
        self.seen: list[Received] = []
        self._connected = threading.Event()
        self.client.on_connect = lambda *a: self._connected.set()
        self.client.on_message = self._on_message

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self.messages.put(Received(message.topic, message.payload, bool(message.retain), message.qos))

    def __enter__(self) -> Probe:
        self.client.connect(self.settings.host, self.settings.port)
        self.client.loop_start()
        assert self._connected.wait(10), "probe could not connect"
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def subscribe(self, topic: str, qos: int = 1) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe(topic, qos)
        assert done.wait(10), "subscription not acknowledged"

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(10)

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float = 10.0) -> Received:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching message within {timeout} s; saw {[m.topic for m in self.seen]}")
            try:
                message = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(message)
            if predicate(message):
                return message
