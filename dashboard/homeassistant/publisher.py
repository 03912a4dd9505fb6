"""Home Assistant discovery's I/O: its own MQTT session, retained configurations kept in line, events sent.

The messages themselves are made by :mod:`.discovery` (no I/O); this module
reads the facts from the store, publishes, and learns what the broker holds.

Never on the alarm path. The ingest hands each batch's stored events over
through :meth:`AlarmChanges.watch <dashboard.alarms.changes.AlarmChanges.watch>`
after the boards and the buttons have been told: :meth:`committed` only
appends to a bounded queue (a full queue drops and counts, it never waits)
and wakes this module's thread, ``siaga-homeassistant``, which publishes
through its own MQTT connection (client id ``<dashboard client id>-ha``), so
that a burst of retained configurations never queues in front of the
ingest's acknowledgements, receipts and indications. Every failure is
counted and logged; none reaches the ingest.

Who publishes what, with several dashboard processes on one store: an event
is stored once, by one process (the store decides, under its writer lock),
and only that process hears of it from its ingest, so each event reaches HA
once (at most once: a process that dies between its commit and the publish
loses that HA message, never the alarm). The retained configurations and
button states are the leader's job (``gate``, :class:`dashboard.peers.Leadership`);
they are idempotent, so a change of leader repeats nothing harmful.

Cleaning up across restarts: every process subscribes to Siaga's retained
topics for HA (:meth:`.Discovery.learn_filters`: the configurations under
its node id, and the button states) and keeps what the broker holds there;
each round publishes what differs from the store and empties (an empty
retained payload) what the store no longer names, such as a button that left
every inventory while the dashboard was stopped, or a SAPA button after
``include_sapa`` was turned off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from firmware_bridge import __version__
from firmware_bridge.broker import BrokerSettings, connect_with_failover, make_client
from firmware_bridge.counters import Counters
from firmware_bridge.payloads import Event, EventType
from firmware_bridge.periodic import Guard

from ..alarms.changes import AlarmChanges, Change
from ..db import Connection, connect, read_snapshot
from ..devices import registry
from ..devices.supervision import TroubleType
from ..i18n import translate_to
from .discovery import (
    QOS,
    ButtonFacts,
    Discovery,
    Facts,
    GatewayFacts,
    Happening,
    HomeAssistantSettings,
    Message,
    Models,
    plan,
)

log = logging.getLogger(__name__)

#: Events waiting for this thread at most; more are dropped and counted (``ha_events_dropped.<kind>``).
MAX_PENDING = 10_000
#: Messages paho keeps for this session at most while the broker is away.
MAX_QUEUED = 1_000
#: Retained messages published before the round waits for the broker and sends the events that came meanwhile.
CHUNK = 100
#: How long a round waits for the broker to take a chunk before it gives up until the next round.
CHUNK_WAIT_S = 10.0
#: After a (re)connect the broker delivers what it holds under the learn filters; the first round waits this long.
LEARN_S = 1.0
#: The registrations an event is checked against are read again at least this often (and whenever they change).
REGISTRATIONS_REFRESH_S = 60.0

_PATH_TROUBLES = (TroubleType.BUTTON_MISSING, TroubleType.RADIO_MISSING, TroubleType.GATEWAY_SILENT)


def models(language: str) -> Models:
    """The device models, from the catalogue, in the dashboard's language."""
    return Models(
        fire_button=translate_to(language, "ha_model_fire_button"),
        sapa_button=translate_to(language, "ha_model_sapa_button"),
        gateway=translate_to(language, "ha_model_gateway"),
    )


def read_facts(conn: Connection) -> Facts:
    """Gateways, registered buttons and the troubles that cut a button off, as one state of the store."""
    with read_snapshot(conn):
        gateway_rows = conn.execute("SELECT gw, state, version FROM gateways").fetchall()
        registration_rows = conn.execute("SELECT gw, button, kind FROM registrations").fetchall()
        button_rows = conn.execute(
            "SELECT id, gw, kind, transport, site_name, label FROM buttons b "
            "WHERE EXISTS (SELECT 1 FROM registrations r WHERE r.button = b.id)"
        ).fetchall()
        trouble_rows = conn.execute(
            "SELECT type, gw, button FROM troubles WHERE cleared_at IS NULL AND type IN (?, ?, ?)",
            tuple(str(trouble) for trouble in _PATH_TROUBLES),
        ).fetchall()
    silent = {row["gw"] for row in trouble_rows if row["type"] == TroubleType.GATEWAY_SILENT}
    radio_missing = {row["gw"] for row in trouble_rows if row["type"] == TroubleType.RADIO_MISSING}
    missing = {row["button"] for row in trouble_rows if row["type"] == TroubleType.BUTTON_MISSING}
    registrations: dict[str, list[tuple[str, str]]] = {}
    for row in registration_rows:
        registrations.setdefault(row["button"], []).append((row["gw"], row["kind"]))
    gateways = {
        row["gw"]: GatewayFacts(
            row["gw"],
            row["state"],
            row["version"],
            silent=row["gw"] in silent,
            radio_missing=row["gw"] in radio_missing,
        )
        for row in gateway_rows
    }
    buttons = [
        ButtonFacts(
            id=row["id"],
            kind=row["kind"],
            transport=row["transport"],
            site_name=row["site_name"],
            label=row["label"],
            gw=row["gw"],
            registrations=tuple(sorted(registrations.get(row["id"], ()))),
            missing=row["id"] in missing,
        )
        for row in button_rows
    ]
    return Facts(gateways, buttons)


def read_registrations(conn: Connection) -> dict[str, frozenset[str]]:
    """Button -> the kinds the inventories register it as now."""
    kinds: dict[str, set[str]] = {}
    for row in conn.execute("SELECT button, kind FROM registrations").fetchall():
        kinds.setdefault(row["button"], set()).add(row["kind"])
    return {button: frozenset(found) for button, found in kinds.items()}


class HomeAssistantPublisher:
    """This process's link to Home Assistant: one MQTT session and one thread."""

    def __init__(
        self,
        settings: HomeAssistantSettings,
        broker: BrokerSettings,
        database: str,
        *,
        client_id: str,
        counters: Counters | None = None,
        language: str = "id",
        version: str = __version__,
    ) -> None:
        self.settings = settings
        self.discovery = Discovery(settings, broker.root, version=version, models=models(language))
        self.counters = counters or Counters()
        #: Whether this process keeps the retained messages now (the leader); None: always.
        self.gate: Callable[[], bool] | None = None
        self.connected = threading.Event()
        # ``[mqtt] client_id`` names the ingest's session; this one must never take it over.
        self._broker = replace(broker, client_id=None)
        self.client = make_client(self._broker, f"{client_id}-ha", persistent=False)
        self.client.max_queued_messages_set(MAX_QUEUED)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._database = database
        self._pending: deque[Happening] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        #: What the broker holds under the learn filters (topic -> payload), as far as this process knows.
        self._believed: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._round_due = 0.0
        self._registrations: dict[str, frozenset[str]] = {}
        self._registrations_mark: tuple[Any, ...] | None = None
        self._registrations_at = 0.0
        self._guard = Guard("home assistant", on_error=lambda: self.counters.add("ha_round_errors"))
        self._thread = threading.Thread(target=self._run, name="siaga-homeassistant", daemon=True)

    # -- life cycle --------------------------------------------------------------

    def start(self) -> HomeAssistantPublisher:
        if self.settings.include_sapa:
            log.warning(
                "Home Assistant discovery includes SAPA buttons; stated purpose: %s", self.settings.sapa_purpose
            )
        connect_with_failover(self.client, self._broker)
        self.client.loop_start()
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.client.disconnect()
        self.client.loop_stop()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def failure(self) -> BaseException | None:
        return self._guard.failure

    @property
    def pending(self) -> int:
        """Events handed over and not yet sent (or dropped)."""
        return len(self._pending)

    def believed(self) -> dict[str, bytes]:
        """What this process believes the broker holds under the learn filters (for diagnostics and tests)."""
        with self._lock:
            return dict(self._believed)

    # -- the hand-over from the alarm path ----------------------------------------

    def committed(self, alarms: list[dict[str, Any]], change: Change, events: Sequence[tuple[Event, str]]) -> None:
        """Queue the events a commit stored (an :class:`AlarmChanges` watcher): never blocks, never raises."""
        if not events:
            return
        try:
            alarm_of = {(alarm["button"], str(alarm["kind"])): alarm for alarm in alarms}
            for event, kind in events:
                kind = str(kind)
                if not self.settings.shows(kind):
                    continue  # a desk HA may not hear of: not even queued
                alarm = alarm_of.get((event.button, kind)) if event.type is EventType.PRESS else None
                if len(self._pending) >= MAX_PENDING:
                    self.counters.add(f"ha_events_dropped.{kind}")
                    continue
                happening = Happening(event, kind, alarm["id"] if alarm else None, bool(alarm and alarm["test"]))
                self._pending.append(happening)
            self._wake.set()
        except Exception:  # whatever it is, it must not reach the ingest
            self.counters.add("ha_handover_errors")
            log.exception("Home Assistant: could not queue the events of a commit")

    # -- MQTT callbacks (paho's network thread) -------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags, reason_code: ReasonCode, properties: Any
    ) -> None:
        if reason_code.is_failure:
            self.counters.add("ha_mqtt_connect_refused")
            log.error("Home Assistant: the broker refused the connection: %s", reason_code)
            return
        self.counters.add("ha_mqtt_connects")
        with self._lock:
            # A new session: the broker delivers what it holds again on subscribing; what was
            # published before may not have reached it.
            self._believed.clear()
        for topic in self.discovery.learn_filters():
            client.subscribe(topic, QOS)
        self._round_due = time.monotonic() + LEARN_S
        self.connected.set()
        self._wake.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: Any, reason_code: ReasonCode, properties: Any
    ) -> None:
        self.connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            if message.payload:
                self._believed[message.topic] = bytes(message.payload)
            else:
                self._believed.pop(message.topic, None)

    # -- the thread -------------------------------------------------------------------

    def _run(self) -> None:
        with self._guard.lifetime():
            conn = connect(self._database)
            try:
                while not self._stopping.is_set():
                    self._wake.wait(max(0.0, self._round_due - time.monotonic()))
                    self._wake.clear()
                    if self._stopping.is_set():
                        return
                    with self._guard.round("could not send events"):
                        self._send_events(conn)
                    if time.monotonic() >= self._round_due:
                        self._round_due = time.monotonic() + self.settings.refresh_s
                        with self._guard.round("could not bring the retained messages in line"):
                            self._keep_retained(conn)
            finally:
                conn.close()

    def _send_events(self, conn: Connection) -> None:
        if not self._pending:
            return
        registered = self._registered(conn)
        while self._pending:
            happening = self._pending.popleft()
            message = self.discovery.event_message(happening, registered.get(happening.event.button))
            if message is None:
                continue
            if self._publish(message) is None:
                self.counters.add(f"ha_events_dropped.{happening.kind}")
            else:
                self.counters.add(f"ha_events_sent.{happening.kind}")

    def _registered(self, conn: Connection) -> dict[str, frozenset[str]]:
        """The registrations, read again when an inventory changed (or after a while)."""
        mark = registry.inventory_mark(conn)
        now = time.monotonic()
        if mark != self._registrations_mark or now - self._registrations_at >= REGISTRATIONS_REFRESH_S:
            self._registrations = read_registrations(conn)
            self._registrations_mark, self._registrations_at = mark, now
        return self._registrations

    def _keep_retained(self, conn: Connection) -> None:
        """One round: publish what differs from the store, empty what the store no longer names (leader only)."""
        if not self.connected.is_set() or (self.gate is not None and not self.gate()):
            return
        facts = read_facts(conn)
        messages = plan(self.discovery.retained(facts), self.believed())
        for start in range(0, len(messages), CHUNK):
            last = None
            for message in messages[start : start + CHUNK]:
                last = self._publish(message)
                if last is None:
                    self.counters.add("ha_retained_failed")
                    return  # the next round tries again
                with self._lock:
                    if message.payload:
                        self._believed[message.topic] = message.payload
                    else:
                        self._believed.pop(message.topic, None)
                self.counters.add("ha_retained_sent")
            if last is not None and not self._taken(last):
                self.counters.add("ha_retained_failed")
                return
            self._send_events(conn)  # presses never wait behind a large inventory

    def _taken(self, info: mqtt.MQTTMessageInfo) -> bool:
        """Whether the broker acknowledged ``info`` within :data:`CHUNK_WAIT_S`."""
        try:
            info.wait_for_publish(CHUNK_WAIT_S)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def _publish(self, message: Message) -> mqtt.MQTTMessageInfo | None:
        """Hand ``message`` to paho; None if it refused it (queue full, a bad topic)."""
        try:
            info = self.client.publish(message.topic, message.payload, qos=QOS, retain=message.retain)
        except (ValueError, RuntimeError, OSError) as exc:
            log.error("Home Assistant: cannot publish to %s: %r", message.topic, exc)
            return None
        # Not connected: paho keeps a QoS 1 message and sends it on the next connect.
        if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            return info
        log.warning("Home Assistant: %s not published: %s", message.topic, mqtt.error_string(info.rc))
        return None


def from_config(
    config: Mapping[str, Any], *, changes: AlarmChanges, counters: Counters, gate: Callable[[], bool] | None
) -> HomeAssistantPublisher | None:
    """The publisher ``[homeassistant]`` asks for, watching ``changes``; None when it is off (or no broker)."""
    settings: HomeAssistantSettings | None = config.get("SIAGA_HOMEASSISTANT")
    broker: BrokerSettings | None = config.get("SIAGA_BROKER")
    if settings is None or not settings.enabled or broker is None:
        return None
    publisher = HomeAssistantPublisher(
        settings,
        broker,
        config["DATABASE"],
        client_id=config["SIAGA_MQTT_CLIENT_ID"],
        counters=counters,
        language=config.get("SIAGA_LANGUAGE", "id"),
    )
    publisher.gate = gate
    changes.watch(publisher.committed)
    return publisher
