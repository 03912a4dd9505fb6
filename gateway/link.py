"""The gateway's MQTT session: presence, inventory, events out, indications and receipts in.

- Persistent session (stable client id, ``clean_session=False``) so the
  broker queues indications while the gateway is away.
- Retained ``online`` status, with a retained last will ``offline``.
- Status and inventory are (re)published on every connect, so a broker that
  lost its retained messages, or a stale last will, is corrected at once; and
  once more 30 s later, for a clustered broker that dropped them while it
  elected leaders.
- Capped exponential reconnect is paho's, configured from the settings; with
  several brokers (a cluster's members) each reconnect tries the next one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.client import MQTTMessageInfo
from paho.mqtt.reasoncodes import ReasonCode

from firmware_bridge.broker import BrokerSettings, Subscriptions, connect_with_failover, make_client
from firmware_bridge.counters import Counters
from firmware_bridge.errors import BadPayload
from firmware_bridge.payloads import (
    GatewayState,
    Indication,
    Status,
    StatusReason,
    decode_indication,
    decode_presence,
    decode_receipt,
    decode_status,
)
from firmware_bridge.timeutil import format_epoch
from firmware_bridge.topics import Channel, Topics

log = logging.getLogger(__name__)

#: How long the broker may take to echo our own "online" before we say so.
ECHO_TIMEOUT_S = 10.0
#: Status and inventory are retained once more this long after each connect: a
#: clustered broker may acknowledge a retained publish made while it elects
#: leaders after losing a member and yet not keep it (docs/mqtt.md, "Clustered broker").
RETAIN_AGAIN_S = 30.0


class GatewayLink:
    """One gateway's MQTT client.

    Threads: paho's network loop runs every ``_on_*`` callback and alone
    writes ``dashboard_online``; the health thread only reads it (one
    reference, read whole). ``connected`` and ``echo`` are Events. What the
    callbacks learn goes on through the gateway's hooks, which run on paho's
    thread, sometimes with paho's locks held: they must not wait for a lock
    whose holder may be calling paho (see ``Pump``).
    """

    def __init__(
        self,
        settings: BrokerSettings,
        gw_id: str,
        *,
        version: str,
        inventory: Callable[[], bytes],
        on_indication: Callable[[Indication], None],
        on_publish: Callable[[int], None],
        counters: Counters,
        on_link: Callable[[bool], None] | None = None,
        on_receipt: Callable[[tuple[str, ...]], None] | None = None,
        on_dashboard: Callable[[bool, str | None], None] | None = None,
        started_at: float,
    ) -> None:
        self.settings = settings
        self.gw_id = gw_id
        self.topics = Topics(settings.root)
        self._indicate_topic = self.topics.indicate(gw_id)
        self._version = version
        self._inventory = inventory
        self._on_indication = on_indication
        self._on_publish_cb = on_publish
        self._on_link = on_link or (lambda up: None)
        self._on_receipt = on_receipt or (lambda ids: None)
        self._on_dashboard = on_dashboard or (lambda online, resync: None)
        self._receipt_topic = self.topics.receipt(gw_id)
        self._dashboard_topic = self.topics.dashboard_status()
        self._counters = counters
        self._started = format_epoch(started_at)
        self.connected = threading.Event()
        #: The dashboard's presence as last heard (None: not heard yet).
        self.dashboard_online: bool | None = None
        #: Set when the broker has delivered our own "online" back to us: proof
        #: that it accepts what we publish (an ACL that refuses a topic still
        #: answers PUBACK under MQTT 3.1.1, and drops the message).
        self.echo = threading.Event()
        self._presence_lock = threading.Lock()
        self._stopping = False
        self._status_topic = self.topics.status(gw_id)
        self.client = make_client(settings, client_id=f"siaga-gw-{gw_id}", persistent=True)
        self.client.will_set(
            self.topics.status(gw_id),
            self._status(GatewayState.OFFLINE, StatusReason.LOST),
            qos=1,
            retain=True,
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self._subscriptions = Subscriptions(
            self.client,
            [
                (self._indicate_topic, Channel.INDICATE.qos),
                (self._status_topic, 1),
                (self._receipt_topic, Channel.RECEIPT.qos),
                (self._dashboard_topic, 1),
            ],
            counters=counters,
        )

    def start(self) -> None:
        connect_with_failover(self.client, self.settings)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    @property
    def subscribed(self) -> bool:
        """Whether the broker granted every subscription in this session (commands sent before are not ours)."""
        return self._subscriptions.complete

    def loop_alive(self) -> bool:
        """paho's network thread is running (its own attribute: paho has no public accessor)."""
        thread = getattr(self.client, "_thread", None)
        return thread is not None and thread.is_alive()

    def publish_health(self, payload: bytes) -> None:
        if self.connected.is_set():
            self.client.publish(self.topics.health(self.gw_id), payload, qos=Channel.HEALTH.qos)

    def republish_inventory(self) -> None:
        self.client.publish(self.topics.inventory(self.gw_id), self._inventory(), qos=1, retain=True)

    def stop(self, timeout: float = 3.0) -> None:
        """Announce a deliberate shutdown (retained ``offline``) and disconnect."""
        with self._presence_lock:  # no late "online" (_retain_again) after the "offline"
            self._stopping = True
        if self.connected.is_set():
            info = self.client.publish(
                self.topics.status(self.gw_id),
                self._status(GatewayState.OFFLINE, StatusReason.SHUTDOWN),
                qos=1,
                retain=True,
            )
            try:
                info.wait_for_publish(timeout)
            except RuntimeError:
                pass  # lost the connection meanwhile; the last will says offline
        self.connected.clear()
        self.client.disconnect()
        self.client.loop_stop()

    def _status(self, state: GatewayState, reason: StatusReason) -> bytes:
        return Status(
            gw=self.gw_id,
            state=state,
            ts=format_epoch(time.time()),
            version=self._version,
            reason=reason,
            started=self._started,
        ).encode()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        if reason_code.is_failure:
            self._counters.add("mqtt_connect_refused")
            log.error("broker %s refused the connection: %s", self.settings.describe(), reason_code)
            return
        self._counters.add("mqtt_connects")
        log.info(
            "connected to %s:%s (root %s, session present: %s)",
            client.host,
            client.port,
            self.settings.root,
            flags.session_present,
        )
        self.echo.clear()
        self._subscriptions.connected(flags.session_present)  # and again after a refusal
        for delay, then in ((ECHO_TIMEOUT_S, self._check_echo), (RETAIN_AGAIN_S, self._retain_again)):
            timer = threading.Timer(delay, then, args=(self._connection_count(),))
            timer.daemon = True
            timer.start()
        self._publish_presence()
        self.connected.set()
        self._on_link(True)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        self._on_link(False)
        if was_connected:
            self._counters.add("mqtt_disconnects")
            log.warning("disconnected from broker (%s); reconnecting", reason_code)

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, reason_code: ReasonCode, properties: object
    ) -> None:
        self._on_publish_cb(mid)

    def _connection_count(self) -> int:
        return self._counters.get("mqtt_connects")

    def _publish_presence(self) -> None:
        """Our retained ``online`` status and inventory."""
        self.client.publish(
            self.topics.status(self.gw_id),
            self._status(GatewayState.ONLINE, StatusReason.CONNECTED),
            qos=1,
            retain=True,
        )
        self.republish_inventory()

    def _retain_again(self, connection: int) -> None:
        with self._presence_lock:
            if not self._stopping and connection == self._connection_count() and self.connected.is_set():
                self._publish_presence()

    def _check_echo(self, connection: int) -> None:
        if connection == self._connection_count() and self.connected.is_set() and not self.echo.is_set():
            self._counters.add("status_echo_missing")
            log.error(
                "the broker has not delivered our own status back within %.0f s: it may be dropping what we "
                "publish (MQTT username must be the gateway id %r for the ACL; topic root %r)",
                ECHO_TIMEOUT_S,
                self.gw_id,
                self.settings.root,
            )

    def _on_status_echo(self, payload: bytes) -> None:
        try:
            status = decode_status(payload)
        except BadPayload:
            return
        if status.gw == self.gw_id and status.state is GatewayState.ONLINE and status.started == self._started:
            self.echo.set()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.topic == self._status_topic:
            self._on_status_echo(message.payload)
            return
        if message.topic == self._receipt_topic:
            self._on_receipt_message(message.payload)
            return
        if message.topic == self._dashboard_topic:
            self._on_dashboard_message(message.payload)
            return
        if message.topic != self._indicate_topic:
            # Only a misbehaving broker sends topics we never subscribed to
            # (amqtt, the demo broker, replays retained messages to everyone).
            self._counters.add("downlink_foreign_topic")
            log.info("ignored message on unsubscribed topic %r", message.topic)
            return
        try:
            indication = decode_indication(message.payload)
        except BadPayload as exc:
            self._counters.add("indications_rejected")
            log.warning("rejected downlink on %s: %s", message.topic, exc)
            return
        try:
            self._on_indication(indication)
        except Exception:  # a bad indication must not stop the MQTT loop
            self._counters.add("indication_errors")
            log.exception("could not apply indication %s", indication)

    def _on_receipt_message(self, payload: bytes) -> None:
        try:
            receipt = decode_receipt(payload)
        except BadPayload as exc:
            self._counters.add("receipts_rejected")
            log.warning("rejected receipt on %s: %s", self._receipt_topic, exc)
            return
        self._counters.add("receipts")
        self._on_receipt(receipt.ids)

    def _on_dashboard_message(self, payload: bytes) -> None:
        if not payload:
            return  # the retained presence was cleared
        try:
            presence = decode_presence(payload)
        except BadPayload as exc:
            self._counters.add("presence_rejected")
            log.warning("rejected dashboard presence: %s", exc)
            return
        online = presence.state is GatewayState.ONLINE
        if online != self.dashboard_online:
            log.info("dashboard is %s", presence.state)
        self.dashboard_online = online
        self._on_dashboard(online, presence.resync)
