"""The dashboard's administrator session with Mosquitto's dynamic security plugin: commands out, their answers back.

One short MQTT session per use (enrolment is rare): subscribe to the plugin's
response topic, publish the commands, wait for an answer to each (matched by
``correlationData``) within a timeout, disconnect. Which accounts and ACLs to
make is ``accounts.py``'s; the commands themselves are ``dynsec.py``'s.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt

from firmware_bridge.broker import BrokerSettings, make_client

from . import dynsec
from .dynsec import Answer, DynsecError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0


class BrokerAdmin:
    """Runs dynsec commands as the plugin's administrator (``settings`` carry its username and password)."""

    def __init__(self, settings: BrokerSettings, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.settings = settings
        self.timeout_s = timeout_s

    def run(self, commands: Sequence[dict[str, Any]]) -> dict[str, Answer]:
        """Each command's answer by its correlation id; raises DynsecError if the broker is unreachable,
        refuses the administrator, or does not answer every command within the timeout."""
        if not commands:
            return {}
        session = _Session(self.settings, self.timeout_s)
        try:
            return session.exchange(commands)
        finally:
            session.close()


class _Session:
    def __init__(self, settings: BrokerSettings, timeout_s: float) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self.client = make_client(settings, f"siaga-dynsec-{secrets.token_hex(4)}", persistent=False)
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.refusal: str | None = None
        self.answers: dict[str, Answer] = {}
        self.done = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def exchange(self, commands: Sequence[dict[str, Any]]) -> dict[str, Answer]:
        address = self.settings.addresses()[0]
        where = f"{address} as {self.settings.username!r}"
        try:
            self.client.connect(address.host, address.port, keepalive=max(5, int(self.timeout_s) + 5))
        except OSError as exc:
            raise DynsecError(f"cannot reach the broker at {where}: {exc}") from None
        self.client.loop_start()
        if not self.connected.wait(self.timeout_s):
            raise DynsecError(f"the broker at {where} did not accept the session within {self.timeout_s:g} s")
        if self.refusal:
            raise DynsecError(f"the broker at {where} refused the dynsec administrator: {self.refusal}")
        if not self.subscribed.wait(self.timeout_s):
            raise DynsecError(f"the broker at {where} did not confirm the subscription to {dynsec.RESPONSE_TOPIC}")
        if self.refusal:
            raise DynsecError(f"the broker at {where} refused {dynsec.RESPONSE_TOPIC}: {self.refusal}")
        wanted = {item["correlationData"] for item in commands}
        self.client.publish(dynsec.CONTROL_TOPIC, dynsec.payload(commands), qos=1)
        with self.done:
            if not self.done.wait_for(lambda: wanted <= self.answers.keys(), self.timeout_s):
                missing = sorted(item["command"] for item in commands if item["correlationData"] not in self.answers)
                raise DynsecError(
                    f"the broker at {where} did not answer {', '.join(missing)} within {self.timeout_s:g} s "
                    "(is the dynamic security plugin loaded, and is this account its administrator?)"
                )
            return {key: self.answers[key] for key in wanted}

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.refusal = str(reason)
        else:
            client.subscribe(dynsec.RESPONSE_TOPIC, qos=1)
        self.connected.set()

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        if any(reason.is_failure for reason in reasons):
            self.refusal = "subscription refused"
        self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            answers = dynsec.parse_answers(message.payload)
        except DynsecError as exc:
            log.warning("%s", exc)
            return
        with self.done:
            for answer in answers:
                if answer.correlation:
                    self.answers[answer.correlation] = answer
            self.done.notify_all()
