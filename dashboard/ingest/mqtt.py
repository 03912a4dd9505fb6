"""MQTT ingest: validate, store idempotently, acknowledge, then tell the boards and the buttons.

Messages are stored in arrival order, in batches (one transaction, one fsync
per batch), and the MQTT PUBACK is sent only after the commit
(``manual_ack``), so an event the broker considers delivered is already on
disk. When the store is idle, paho's network thread stores a message itself
(one thread wake-up less on the alarm's path); when it is busy, messages
queue up for the writer thread, which takes them in batches. A store failure
leaves messages unacknowledged; the writer retries, and the broker keeps
them meanwhile.

After each commit the writer hands the changed alarms to
:class:`~dashboard.alarms.changes.AlarmChanges`: the live stream hears of
them first; then the writer acknowledges to the broker and sends each gateway
a receipt naming the events it may now forget (end-to-end: a broker that
loses what it had acknowledged cannot lose an event); then each affected
button gets its indication (received / acknowledged / resolved), sent by
:meth:`Ingest.indicate`.

The dashboard's presence is retained on ``{root}/dashboard/status`` with a
last will ``offline``: while it is offline gateways resend unreceipted events
only at their longest interval (the broker queues the originals meanwhile).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from firmware_bridge.broker import BrokerSettings, Subscriptions, connect_with_failover, make_client
from firmware_bridge.counters import Counters
from firmware_bridge.errors import BadPayload, BadTopic
from firmware_bridge.ids import is_event_id
from firmware_bridge.payloads import (
    Event,
    GatewayState,
    Health,
    Indication,
    Inventory,
    Presence,
    Receipt,
    Status,
    decode_event,
    decode_health,
    decode_inventory,
    decode_status,
)
from firmware_bridge.periodic import Guard
from firmware_bridge.timeutil import format_epoch
from firmware_bridge.topics import Channel, Topics

from ..alarms import store
from ..alarms.changes import AlarmChanges, Change
from ..alarms.lifecycle import AlarmState, indication_for, opens_alarm
from ..db import Error as StoreError
from ..db import connect, init_schema, savepoint, store_failure, transaction
from ..defaults import MQTT_CLIENT_ID
from ..devices import registry
from ..timeseries.collect import record_ingest
from ..timeseries.points import SeriesPolicy
from .hub import Hub, LiveMessage

log = logging.getLogger(__name__)

#: The channels the dashboard subscribes to (the fuzzer checks it covers each).
SUBSCRIBED = (Channel.STATUS, Channel.INVENTORY, Channel.EVENT, Channel.HEALTH)


#: Alarms resolved this recently are indicated again too (LED off), not only open ones.
RESYNC_CLOSED_S = 3600.0

#: Messages closer together than this are a burst: batch them in the writer.
FAST_PATH_QUIET_S = 0.001


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: float
    generation: int


@dataclass(frozen=True, slots=True)
class Rejection:
    at: str
    topic: str
    reason: str
    message: str


class Ingest:
    """The dashboard's MQTT session and its single store writer."""

    def __init__(
        self,
        settings: BrokerSettings,
        database: str | Path,
        hub: Hub,
        *,
        changes: AlarmChanges | None = None,
        client_id: str = MQTT_CLIENT_ID,
        counters: Counters | None = None,
        batch_max: int = 500,
        retry_s: float = 1.0,
        indication_resync_s: float = 60.0,
        series: SeriesPolicy | None = None,
    ) -> None:
        self.settings = settings
        #: With time series on: what their points may say; their points go in each batch's transaction.
        self.series = series
        self.topics = Topics(settings.root)
        self.hub = hub
        self.counters = counters or Counters()
        #: Changed alarms go out through here; this link is its way to the buttons.
        self.changes = changes if changes is not None else AlarmChanges(hub)
        self.changes.link_buttons(self.indicate)
        self._database = database
        self._batch_max = batch_max
        self._retry_s = retry_s
        self._indication_resync_s = indication_resync_s
        self._next_resync = time.monotonic() + indication_resync_s
        # Arrival order is kept by one rule: a message is stored by the network
        # thread only when nothing is queued and nobody is storing (_busy).
        self._pending: deque[Inbound] = deque()
        #: (generation, packet id) of each QoS 1 message in ``_pending``: see :meth:`_queue`.
        self._pending_ids: set[tuple[int, int]] = set()
        self._busy = False
        self._closing = False
        self._last_arrival = 0.0
        self._changed = threading.Condition()
        self._generation = 0
        self._stopping = threading.Event()
        self.connected = threading.Event()
        self.rejections: deque[Rejection] = deque(maxlen=50)
        self._guard = Guard("ingest writer", on_error=lambda: self.counters.add("writer_errors"))
        self.last_loop = time.monotonic()
        self.client = make_client(settings, client_id, persistent=True, manual_ack=True)
        self._started = format_epoch(time.time())
        #: When the broker last granted our subscriptions in a session it had not kept (see _resubscribed).
        self._resync: str | None = None
        self.client.will_set(self.topics.dashboard_status(), self._presence(GatewayState.OFFLINE), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._subscriptions = Subscriptions(
            self.client,
            [(self.topics.subscription(channel), channel.qos) for channel in SUBSCRIBED]
            + [(self.topics.dashboard_status(), 1)],
            counters=self.counters,
            on_complete=self._resubscribed,
        )
        self._writer = threading.Thread(target=self._run, name="siaga-ingest", daemon=True)
        self._conn: sqlite3.Connection | None = None

    # -- life cycle ---------------------------------------------------------

    def start(self) -> None:
        self._conn = connect(self._database)
        init_schema(self._conn)
        self._writer.start()
        connect_with_failover(self.client, self.settings)  # several brokers: the next one on each reconnect
        self.client.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self.connected.is_set():
            info = self.client.publish(
                self.topics.dashboard_status(), self._presence(GatewayState.OFFLINE), qos=1, retain=True
            )
            try:
                info.wait_for_publish(min(timeout, 2.0))
            except (RuntimeError, ValueError):
                pass  # the connection went meanwhile: the last will says offline
        self.connected.clear()
        self.client.disconnect()
        self.client.loop_stop()
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        if self._writer.is_alive():
            self._writer.join(timeout)
        if self._conn is not None:
            self._conn.close()

    def is_alive(self) -> bool:
        return self._writer.is_alive()

    @property
    def failure(self) -> BaseException | None:
        """What ended the writer thread, if it ended (the health check reports it)."""
        return self._guard.failure

    @property
    def subscribed(self) -> bool:
        """Whether the broker granted every subscription in this session (messages published before are
        not this session's to receive)."""
        return self._subscriptions.complete

    @property
    def backlog(self) -> int:
        return len(self._pending)

    # -- MQTT callbacks (paho's network thread) --------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags, reason_code: ReasonCode, properties: Any
    ) -> None:
        if reason_code.is_failure:
            self.counters.add("mqtt_connect_refused")
            log.error("broker %s refused the connection: %s", self.settings.describe(), reason_code)
            return
        self._generation += 1
        self.counters.add("mqtt_connects")
        # Online first: the broker takes them in order, so the retained presence
        # our subscription gets back is this one, not the last run's offline.
        self._publish_online()
        self._subscriptions.connected(flags.session_present)  # the ones the session lacks; refused ones again
        self.connected.set()
        log.info("connected to %s:%s (session present: %s)", client.host, client.port, flags.session_present)
        self._enqueue(Inbound("", b"resync", 0, 0, time.time(), self._generation))

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: Any, reason_code: ReasonCode, properties: Any
    ) -> None:
        if self.connected.is_set():
            self.counters.add("mqtt_disconnects")
            log.warning("disconnected from broker (%s)", reason_code)
        self.connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.topics.dashboard_status():
            self._check_presence(message)
            return
        item = Inbound(message.topic, message.payload, message.mid, message.qos, time.time(), self._generation)
        now = time.monotonic()
        # A message after a quiet spell is stored right here; in a burst the
        # writer takes them in batches (one fsync per batch, not per message).
        quiet = now - self._last_arrival >= FAST_PATH_QUIET_S
        self._last_arrival = now
        with self._changed:
            fast = quiet and not self._pending and not self._busy and not self._closing
            if fast:
                self._busy = True
            else:
                self._queue(item)
        if not fast:
            return
        try:
            self._process([item])
        except Exception as exc:  # noqa: BLE001 - never into paho's loop; the writer retries and reports
            # Leave it (unacknowledged) to the writer, which retries a store
            # failure and sets aside (and reports) a message it fails on.
            if store_failure(exc):
                self.counters.add("store_errors")
            log.error("cannot store a message now (%r); handing it to the writer", exc)
            with self._changed:
                self._queue(item, first=True)
        finally:
            # Quiet is measured from here: what arrived while this message was
            # being stored is a burst, and goes to the writer's batches. (Measured
            # from the arrival, a commit longer than the quiet spell made every
            # message of a storm look quiet: one fsync each, in paho's thread.)
            self._last_arrival = time.monotonic()
            with self._changed:
                self._busy = False
                self._changed.notify_all()

    def _check_presence(self, message: mqtt.MQTTMessage) -> None:
        """Our own retained presence came back: if it says offline while we are here, say online again.

        Gateways resend unreceipted events more slowly while the dashboard is
        away; a stale or forged ``offline`` must not hold them back.
        """
        if message.qos > 0:
            self.client.ack(message.mid, message.qos)
        if self._stopping.is_set() or not self.connected.is_set():
            return
        try:
            state = json.loads(message.payload).get("state")
        except (ValueError, AttributeError, RecursionError):
            state = None
        if state != GatewayState.ONLINE:
            self.counters.add("presence_restored")
            log.warning("our presence on %s said %r while connected: publishing online", message.topic, state)
            self._publish_online()

    def _resubscribed(self) -> None:
        """Every subscription granted in a session the broker had not kept (or after a refusal): say so.

        A broker restarted without its saved state (SIGKILLed before its
        autosave, or a new machine) has dropped what gateways published to it
        before these subscriptions existed, acknowledged all the same. A
        gateway resends an unreceipted event only a receipt timeout (15 s and
        more) after the broker's PUBACK; a new ``resync`` in our presence makes
        it resend them at once, so an alarm pressed while the broker was away
        is not late by that timeout when the gateway reconnected first.
        """
        self._resync = format_epoch(time.time())
        self.counters.add("presence_resyncs")
        if self.connected.is_set() and not self._stopping.is_set():
            self._publish_online()

    def _say_online(self) -> None:
        """Our presence again, retained, now and then: another dashboard process on the same topic may have
        left its last will there, and a gateway that missed this process's correction must not pace its
        resends for an absent dashboard for long."""
        if self.connected.is_set() and not self._stopping.is_set():
            self._publish_online()

    def _publish_online(self) -> None:
        self.client.publish(self.topics.dashboard_status(), self._presence(GatewayState.ONLINE), qos=1, retain=True)

    def _presence(self, state: GatewayState) -> bytes:
        resync = self._resync if state is GatewayState.ONLINE else None
        return Presence(state=state, ts=format_epoch(time.time()), started=self._started, resync=resync).encode()

    def _enqueue(self, item: Inbound) -> None:
        with self._changed:
            self._queue(item)

    def _queue(self, item: Inbound, *, first: bool = False) -> None:
        """Queue ``item`` for the writer (holding ``_changed``), unless it is a copy of a message still queued.

        A broker sends a message again, with the same packet id, when it was not acknowledged in time
        (nats-server: ``ack_wait``, 60 s) while this process waits for its store: without this, a long
        outage would queue every unacknowledged message again each minute. The packet id is the session's
        until its PUBACK (MQTT 3.1.1, 2.3.1), and acknowledging the copy queued first acknowledges both.
        """
        key = (item.generation, item.mid)
        if item.qos > 0:
            if key in self._pending_ids:
                self.counters.add("redeliveries_queued_already")
                return
            self._pending_ids.add(key)
        if first:
            self._pending.appendleft(item)
        else:
            self._pending.append(item)
        self._changed.notify_all()

    # -- the writer ---------------------------------------------------------------

    def _take_batch(self) -> list[Inbound] | None:
        with self._changed:
            while not self._closing and (self._busy or not self._pending):
                wait = self._next_resync - time.monotonic()
                if wait <= 0 and not self._busy:
                    # Every open alarm's button is told again what to show: an
                    # indication lost, or forged by a neighbour on the broker,
                    # does not stay on a LED for longer than this.
                    self._next_resync = time.monotonic() + self._indication_resync_s
                    self._queue(Inbound("", b"resync", 0, 0, time.time(), self._generation))
                    self._say_online()
                    break
                self._changed.wait(max(wait, 0.05))
            if self._closing:
                return None
            self._busy = True
            count = min(len(self._pending), self._batch_max)
            batch = [self._pending.popleft() for _ in range(count)]
            self._pending_ids.difference_update((item.generation, item.mid) for item in batch if item.qos > 0)
            return batch

    def _run(self) -> None:
        with self._guard.lifetime():
            while True:
                batch = self._take_batch()
                if batch is None:
                    return
                try:
                    with self._guard.round("unexpected error; going on") as attempt:
                        self._process_with_retry(batch)
                    if attempt.failed is not None:
                        self._stopping.wait(self._retry_s)
                finally:
                    with self._changed:
                        self._busy = False
                        self._changed.notify_all()
                self.last_loop = time.monotonic()

    def _process_with_retry(self, batch: list[Inbound]) -> None:
        """Store a batch; retry while the store is unavailable; never give up on the others.

        A failure of the store itself (locked, disk full, I/O error) is
        retried with the messages unacknowledged, so the broker keeps them.
        Any other failure is particular to a message: the batch is split, and
        a message that still fails on its own is set aside (see
        :meth:`_set_aside`: a press among them still raises its alarm) so
        that it cannot block every later alarm.
        """
        while True:
            try:
                self._process(batch)
                return
            except Exception as exc:  # noqa: BLE001 - a bug of any type must not drop the batch
                if store_failure(exc):
                    self._wait_for_store(len(batch), exc)
                    if self._stopping.is_set():
                        return
                    continue
                failure: BaseException = exc
            if len(batch) > 1:
                for item in batch:
                    self._process_with_retry([item])
                return
            try:
                self._set_aside(batch[0], failure)
                return
            except StoreError as exc:  # the store itself: keep the message unacknowledged and retry it all
                self._wait_for_store(1, exc)
                if self._stopping.is_set():
                    return

    def _wait_for_store(self, count: int, exc: BaseException) -> None:
        self.counters.add("store_errors")
        log.error("cannot store %d message(s): %s; retrying in %.1f s", count, exc, self._retry_s)
        self._stopping.wait(self._retry_s)

    def _set_aside(self, item: Inbound, exc: BaseException) -> None:
        """Keep a message the normal path cannot process, and fail open if it is a press.

        The raw message goes to ``rejected_messages``, which the supervisor
        turns into a trouble (shown to whoever may know of that button). A
        press still raises an alarm for its button's desk by a minimal path
        (``degraded``); only then is it receipted. If even that fails, the
        gateway gets no receipt and keeps the event in its outbox, resending
        it until a dashboard can take it.
        """
        event = self._event_of(item)
        press = event is not None and opens_alarm(event.type)
        kind = None if event is None else self._kind_of(event)
        log.error(
            "could not process a message on %r, set aside in rejected_messages: %r; payload %r",
            item.topic,
            exc,
            item.payload[:500],
            exc_info=exc,
        )
        conn = self._conn
        assert conn is not None
        alarm_id, stored = None, True
        with transaction(conn):
            if press:
                assert event is not None
                assert kind is not None
                stored, alarm_id = self._raise_degraded(conn, event, kind, item.received_at)
            conn.execute(
                "INSERT INTO rejected_messages (at, topic, reason, error, payload, gw, button, kind, press, alarm_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(),
                    item.topic,
                    "internal_error",
                    repr(exc)[:1000],
                    item.payload,
                    event.gw if event else None,
                    event.button if event else None,
                    kind,
                    int(press),
                    alarm_id,
                ),
            )
        # Counted once it is kept: a store failure above retries the whole message.
        self.counters.add(f"set_aside.{kind or 'other'}")
        self.rejections.append(Rejection(format_epoch(time.time()), item.topic, "internal_error", type(exc).__name__))
        alarms = store.get_alarms(conn, [alarm_id]) if alarm_id is not None else []

        def acknowledge_and_receipt() -> None:
            self._acknowledge([item])
            receipts: dict[str, list[str]] = {}
            if stored:
                self._receipt_refused(item, receipts)
            self._send_receipts(receipts)

        # A press kept by this path was stored here: its watchers hear of it as of any stored event.
        kept = [(event, kind)] if event is not None and kind is not None and press and alarm_id is not None else []
        self.changes.committed(alarms, Change.PRESSED, before_buttons=acknowledge_and_receipt, events=kept)

    def _raise_degraded(
        self, conn: sqlite3.Connection, event: Event, kind: str, received_at: float
    ) -> tuple[bool, int | None]:
        """(stored, alarm id) for a press the normal path failed on; stored is False if even this failed."""
        conn.execute("SAVEPOINT degraded")
        try:
            alarm_id = store.raise_degraded_alarm(conn, event, received_at)
        except Exception as exc:  # whatever the bug, the press stays in its gateway's outbox
            if store_failure(exc):
                raise  # the store, not the press: the caller retries it all
            conn.execute("ROLLBACK TO degraded")
            conn.execute("RELEASE degraded")
            self.counters.add(f"press_not_stored.{kind}")
            log.critical(
                "a press of button %s (event %s) could not be stored at all (%r): its gateway keeps it and resends it",
                event.button,
                event.id,
                exc,
            )
            return False, None
        conn.execute("RELEASE degraded")
        self.counters.add(f"degraded_alarms.{kind}")
        log.error("raised degraded alarm %s for event %s of button %s", alarm_id, event.id, event.button)
        return True, alarm_id

    def _event_of(self, item: Inbound) -> Event | None:
        """The event a set-aside message carries, if it is one that decodes."""
        try:
            decoded = self._decode(item)
        except (BadTopic, BadPayload):
            return None
        return decoded if isinstance(decoded, Event) else None

    def _kind_of(self, event: Event) -> str:
        """The desk an event belongs to: its button's registered kind (see :func:`dashboard.alarms.lifecycle.route`)."""
        assert self._conn is not None
        try:
            return str(store.route_event(self._conn, event).kind)
        except Exception:  # noqa: BLE001 - a bug here must not cost the press: the event's own word will do
            return str(event.kind)

    def _process(self, batch: list[Inbound]) -> None:
        events: list[tuple[Event, float]] = []
        statuses: list[tuple[Status, float]] = []
        inventories: list[tuple[Inventory, float]] = []
        healths: list[tuple[Health, float]] = []
        resync = False
        receipts: dict[str, list[str]] = {}
        for item in batch:
            if not item.topic:
                resync = True
                continue
            try:
                decoded = self._decode(item)
            except (BadTopic, BadPayload) as exc:
                self._reject(item, exc)
                self._receipt_refused(item, receipts)
                continue
            if isinstance(decoded, Event):
                events.append((decoded, item.received_at))
                receipts.setdefault(decoded.gw, []).append(decoded.id)
            elif isinstance(decoded, Status):
                statuses.append((decoded, item.received_at))
            elif isinstance(decoded, Inventory):
                inventories.append((decoded, item.received_at))
            else:
                healths.append((decoded, item.received_at))

        conn = self._conn
        assert conn is not None
        outcome = store.IngestOutcome()
        if events or statuses or inventories or healths:
            self.counters.add("ingest_commits")
            with transaction(conn):
                for inventory, at in inventories:
                    registry.store_inventory(conn, inventory, at)
                for status, at in statuses:
                    registry.store_status(conn, status, at)
                for health, at in healths:
                    registry.store_health(conn, health, at)
                outcome = store.store_events(conn, events)
                if self.series is not None:
                    self._record_series(conn, outcome.events, healths)

        def acknowledge_and_count() -> None:
            self._acknowledge(batch)
            self._send_receipts(receipts)
            self._count(outcome)

        # Committed: the boards first (the alarm's path), then the broker's
        # PUBACKs, then the buttons' indications.
        alarms = store.get_alarms(conn, outcome.alarms)
        self.changes.committed(alarms, Change.PRESSED, before_buttons=acknowledge_and_count, events=outcome.events)
        self._announce_gateways(conn, statuses, inventories)
        if resync and self.connected.is_set():
            self._resync_indications(store.alarms_to_indicate(conn, closed_since=time.time() - RESYNC_CLOSED_S))

    def _record_series(
        self, conn: sqlite3.Connection, events: list[tuple[Event, str]], healths: list[tuple[Health, float]]
    ) -> None:
        """Queue the batch's time-series points with it; a failure here costs those points (counted and
        logged), never the batch: time series are not on the alarm path."""
        assert self.series is not None
        try:
            with savepoint(conn, "series"):
                self.counters.add("timeseries_points_queued", record_ingest(conn, events, healths, self.series))
        except Exception as exc:
            if store_failure(exc):
                raise  # the store itself failed: the whole batch is retried, points and all
            self.counters.add("timeseries_record_errors")
            log.exception("time series: could not queue the points of a batch (the batch is stored)")

    def _count(self, outcome: store.IngestOutcome) -> None:
        self.counters.add("events_stored", outcome.stored)
        self.counters.add("events_duplicate", outcome.duplicates)
        for name, count in outcome.by_kind.items():
            self.counters.add(f"events_{name}", count)

    def _decode(self, item: Inbound) -> Event | Status | Inventory | Health:
        gw, channel = self.topics.parse(item.topic)
        if channel is Channel.EVENT:
            decoded: Event | Status | Inventory | Health = decode_event(item.payload)
        elif channel is Channel.STATUS:
            decoded = decode_status(item.payload)
        elif channel is Channel.INVENTORY:
            decoded = decode_inventory(item.payload)
        elif channel is Channel.HEALTH:
            decoded = decode_health(item.payload)
        else:
            raise BadTopic(f"not an ingest topic: {item.topic!r}")
        if decoded.gw != gw:
            # The broker's ACL ties a gateway to its own topics; a payload that
            # claims another gateway is forged or misconfigured.
            raise BadPayload(
                f"field 'gw': {decoded.gw!r} does not match the topic's gateway {gw!r}",
                field="gw",
                reason="gw_mismatch",
            )
        return decoded

    def _reject(self, item: Inbound, exc: BadTopic | BadPayload) -> None:
        reason = exc.reason if isinstance(exc, BadPayload) else "bad_topic"
        self.counters.add("rejected")
        self.counters.add(f"rejected.{reason}")
        count = self.counters.get(f"rejected.{reason}")
        self.rejections.append(Rejection(format_epoch(time.time()), item.topic, reason, str(exc)))
        if count <= 10 or count % 100 == 0:
            log.warning("rejected message on %r (%s, #%d): %s", item.topic, reason, count, exc)

    def _acknowledge(self, batch: list[Inbound]) -> None:
        generation = self._generation
        for item in batch:
            # A message id belongs to one connection; after a reconnect the
            # broker redelivers what was not acknowledged, and the store
            # ignores the duplicate.
            if item.qos > 0 and item.generation == generation:
                self.client.ack(item.mid, item.qos)

    def _receipt_refused(self, item: Inbound, receipts: dict[str, list[str]]) -> None:
        """An event refused for good is receipted too: resending it cannot cure it, and it is kept here."""
        try:
            gw, channel = self.topics.parse(item.topic)
            if channel is not Channel.EVENT:
                return
            data = json.loads(item.payload)
        except (BadTopic, ValueError, RecursionError):
            return
        event_id = data.get("id") if isinstance(data, dict) else None
        if is_event_id(event_id):
            receipts.setdefault(gw, []).append(event_id)

    def _send_receipts(self, receipts: dict[str, list[str]]) -> None:
        """Tell each gateway which of its events are now safe here (after the commit)."""
        now = format_epoch(time.time())
        for gw, ids in receipts.items():
            for start in range(0, len(ids), Receipt.MAX_IDS):
                chunk = tuple(dict.fromkeys(ids[start : start + Receipt.MAX_IDS]))
                self.client.publish(self.topics.receipt(gw), Receipt(chunk, now).encode(), qos=Channel.RECEIPT.qos)

    def _announce_gateways(
        self,
        conn: sqlite3.Connection,
        statuses: list[tuple[Status, float]],
        inventories: list[tuple[Inventory, float]],
    ) -> None:
        changed_gateways = {status.gw for status, _ in statuses} | {inv.gw for inv, _ in inventories}
        for gw in sorted(changed_gateways):
            view = registry.get_gateway(conn, gw)
            if view is not None:
                self.hub.publish(LiveMessage("gateway", view))
        for status, _ in statuses:
            if status.state is GatewayState.ONLINE:
                # A gateway that (re)connects learns the state of its open alarms again.
                since = time.time() - RESYNC_CLOSED_S
                self._resync_indications(store.alarms_to_indicate(conn, closed_since=since, gw=status.gw))

    def _resync_indications(self, alarms: list[dict[str, Any]]) -> None:
        for alarm in alarms:
            self.indicate(alarm)

    def indicate(self, alarm: dict[str, Any]) -> None:
        """Send the button of ``alarm`` what it should show (QoS 1, via the alarm's gateway)."""
        indication = Indication(
            button=alarm["button"],
            state=indication_for(AlarmState(alarm["state"])),
            alarm=alarm["id"],
            rev=alarm["rev"],
            ts=format_epoch(time.time()),
        )
        self.client.publish(self.topics.indicate(alarm["gw"]), indication.encode(), qos=Channel.INDICATE.qos)
        self.counters.add(f"indications_sent.{alarm['kind']}")
