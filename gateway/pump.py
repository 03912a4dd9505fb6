"""Moves events from the outbox to the broker, oldest first, until the dashboard has them.

The pump hands rows to paho-mqtt in ``seq`` order, at most ``window`` of them
unacknowledged by the broker at a time (paho keeps them in memory and resends
them after a reconnect). The broker's PUBACK only frees the window: a row
leaves the outbox when the **dashboard's receipt** names its event id
(``cmd/receipt``, sent after the dashboard committed it). Until then the event
is resent, with a growing interval, whenever its receipt is overdue while the
dashboard is online, and again after every reconnect of the gateway: a broker
that dies before it saved or delivered what it acknowledged loses nothing.
The same id may reach the dashboard more than once; its store keeps one.

paho calls ``on_publish`` while holding its own lock, so that callback only
appends the message id to a deque; the pump thread, the only publisher of
events, matches ids to rows. (``MQTTMessageInfo.is_published`` is no help:
it raises for a message first handed over while disconnected, even after
paho has delivered it.)

Order across reconnects: paho resends what it holds (handed over while
disconnected, or unacknowledged when the connection dropped) only when it
handles the broker's CONNACK, but a message published after the socket is
open and before that moment goes out at once, ahead of them. So nothing is
handed over while the link is down (``link_down``), and after ``link_up`` the
pump waits, if paho holds older events, for the first acknowledgement: paho
reads it only after its resend, so everything older is then on the wire first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from paho.mqtt.client import MQTTErrorCode, MQTTMessageInfo

from firmware_bridge.counters import Counters
from firmware_bridge.errors import OutboxError

from .outbox import Outbox, UnavailableOutbox

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], MQTTMessageInfo]

_ACCEPTED = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)

#: The longest wait between two resends of an event whose receipt does not come.
MAX_RESEND_INTERVAL_S = 600.0


@dataclass(slots=True)
class _Sent:
    """An event handed to paho (``mid`` set until the broker's PUBACK) and not yet receipted."""

    event_id: str
    topic: str
    payload: bytes
    seq: int | None  # None: not in the outbox (the disk failed), it lives only here
    mid: int | None = None
    due: float = 0.0  # monotonic time to resend if no receipt came
    resends: int = 0


class Pump:
    def __init__(
        self,
        outbox: Outbox | UnavailableOutbox,
        publish: Publish,
        counters: Counters,
        *,
        window: int = 500,
        retry_s: float = 1.0,
        receipt_timeout_s: float = 15.0,
        max_unreceipted: int = 5000,
    ) -> None:
        self._outbox = outbox
        self._publish = publish
        self._counters = counters
        self._window = window
        self._retry_s = retry_s
        self._receipt_timeout_s = receipt_timeout_s
        #: Events out but not receipted, at most: while the dashboard is away the
        #: rest wait in the outbox rather than in the broker's queue and in memory.
        self._max_unreceipted = max_unreceipted
        self._wake = threading.Event()
        self._stopping = threading.Event()
        #: message id -> the event paho has not had acknowledged by the broker yet
        self._inflight: dict[int, _Sent] = {}
        #: event id -> every event handed over and not yet receipted (in flight or waiting)
        self._sent: dict[str, _Sent] = {}
        #: ids paho reported acknowledged; appended by paho's thread, drained by the pump
        self._acks: deque[int] = deque()
        #: event ids the dashboard receipted; appended by paho's thread, drained by the pump
        self._receipts: deque[str] = deque()
        #: events that could not be stored, waiting to be handed to paho by the pump
        self._unstored: deque[_Sent] = deque()
        #: receipted event ids whose delete has not succeeded yet (retried each loop)
        self._to_remove: list[str] = []
        self._cursor = 0
        #: Held while handing events to paho, so the pump and the fast path
        #: (publish_now, from a press handler) keep seq order. paho's
        #: on_publish never takes it, so it cannot deadlock with paho's locks.
        self._send_lock = threading.Lock()
        #: Set while paho sends what it is handed after everything handed before
        #: (see the module's docstring). Closed until the first connection.
        self._gate = threading.Event()
        #: Guards the gate and _handing; never held while calling paho, so the
        #: link's callbacks (paho's thread, paho's locks held) may take it.
        self._gate_lock = threading.Lock()
        self._handing = False
        self._await_resend = False
        #: The dashboard's presence: True, False, or None while unknown (resend, with backoff).
        self._dashboard_online: bool | None = None
        self._thread = threading.Thread(target=self._run, name="siaga-pump", daemon=True)
        self._drained = threading.Condition()
        #: The exception that stopped the pump, if any (reported by health).
        self.failure: BaseException | None = None
        #: Monotonic time of the last completed loop (for liveness checks).
        self.last_loop = time.monotonic()

    def start(self) -> None:
        self._thread.start()
        self._wake.set()  # a backlog from before goes out at once

    def wake(self) -> None:
        """Tell the pump there is work: a new row, or an acknowledgement."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- from paho's thread (no paho calls, no _send_lock) ---------------------------------

    def acknowledged(self, mid: int) -> None:
        """paho's ``on_publish``: the broker acknowledged message ``mid``."""
        self._acks.append(mid)
        if self._await_resend:
            with self._gate_lock:
                # paho handles acknowledgements after its resend on CONNACK: older events are out.
                self._await_resend = False
                self._gate.set()
        self._wake.set()

    def receipted(self, event_ids: Iterable[str]) -> None:
        """The dashboard has committed these events: they may leave the outbox."""
        self._receipts.extend(event_ids)
        self._wake.set()

    def dashboard_presence(self, online: bool) -> None:
        """The dashboard's retained presence changed (or was first heard)."""
        came_back = online and self._dashboard_online is not True
        self._dashboard_online = online
        if came_back:
            self._postpone_resends()  # its queue is being delivered: give the receipts time to come
        self._wake.set()

    def link_up(self) -> None:
        """The link is connected (paho's ``on_connect``)."""
        with self._gate_lock:
            if self._inflight or self._handing:
                # paho resends those first; open on the first acknowledgement. One always
                # comes: the link publishes its status (QoS 1) on every connection.
                self._await_resend = True
            else:
                self._gate.set()
        # Receipts sent while we were away arrive first; what is still missing then goes again.
        self._postpone_resends()
        self._wake.set()

    def link_down(self) -> None:
        """The link is lost (paho's ``on_disconnect``): hold new events in the outbox until it is back."""
        with self._gate_lock:
            self._gate.clear()
            self._await_resend = False

    # -- from the press handlers ------------------------------------------------------

    def publish_now(self, seq: int, previous: int, event_id: str, topic: str, payload: bytes) -> bool:
        """Fast path for a row just committed by the caller: hand it to paho at once.

        Saves waking the pump thread (a press reaches the broker sooner). Only
        when every older row has already been handed over and there is room;
        otherwise returns False and the pump sends it in order.
        """
        if not self._send_lock.acquire(blocking=False):
            return False
        try:
            if self._cursor != previous or self._unstored or len(self._inflight) >= self._window:
                return False
            if not self._open_gate():
                return False
            try:
                if not self._hand_over(_Sent(event_id, topic, payload, seq)):
                    return False
            finally:
                self._close_gate()
            self._cursor = seq
            return True
        finally:
            self._send_lock.release()

    def publish_unstored(self, event_id: str, topic: str, payload: bytes) -> None:
        """Publish an event that could not be stored (disk full, I/O error).

        It lives only in memory until the dashboard's receipt; a restart
        before that loses it. Health reports how many such events wait.
        """
        self._unstored.append(_Sent(event_id, topic, payload, None))
        self._counters.add("events_unstored")
        self._wake.set()

    # -- state ---------------------------------------------------------------------------------

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def awaiting_receipt(self) -> int:
        return len(self._sent)

    @property
    def unstored_waiting(self) -> int:
        return len(self._unstored) + sum(1 for sent in list(self._sent.values()) if sent.seq is None)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def wait_drained(self, timeout: float) -> bool:
        """Block until the outbox is empty and the dashboard has receipted everything (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._drained:
            while True:
                if not self._sent and not self._unstored and self._outbox.depth() == 0:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._drained.wait(min(remaining, 0.5))

    # -- the pump thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._wake.wait(timeout=self._next_wait())
                self._wake.clear()
                try:
                    with self._send_lock:
                        self._collect_acknowledged()
                        self._collect_receipts()
                        refused = self._send_more()
                    if refused:
                        self._stopping.wait(self._retry_s)
                        self._wake.set()
                except OutboxError as exc:
                    self._counters.add("outbox_errors")
                    log.error("outbox: %s; retrying in %.1f s", exc, self._retry_s)
                    self._stopping.wait(self._retry_s)
                    self._wake.set()
                except Exception:
                    # The pump must outlive any one failure: events keep waiting in the outbox.
                    self._counters.add("pump_errors")
                    log.exception("outbox pump: unexpected error; retrying in %.1f s", self._retry_s)
                    self._stopping.wait(self._retry_s)
                    self._wake.set()
                self.last_loop = time.monotonic()
        except BaseException as exc:  # report, never vanish silently
            self.failure = exc
            log.critical("outbox pump stopped: %r", exc, exc_info=True)
            raise

    def _next_wait(self) -> float:
        """At most 1 s (liveness), less when a resend falls due sooner."""
        if not self._sent:
            return 1.0
        soonest = min((sent.due for sent in list(self._sent.values()) if sent.mid is None), default=None)
        if soonest is None:
            return 1.0
        return max(0.0, min(1.0, soonest - time.monotonic()))

    def _collect_acknowledged(self) -> None:
        acknowledged = 0
        now = time.monotonic()
        while self._acks:
            mid = self._acks.popleft()
            sent = self._inflight.pop(mid, None)
            if sent is None:
                continue  # status, inventory or health: not an event
            acknowledged += 1
            sent.mid = None
            sent.due = now + self._interval(sent.resends)
        if acknowledged:
            self._counters.add("events_acknowledged", acknowledged)

    def _collect_receipts(self) -> None:
        receipted = 0
        while self._receipts:
            event_id = self._receipts.popleft()
            sent = self._sent.pop(event_id, None)
            if sent is None:
                # Not ours now (already receipted, or from before a restart): the outbox
                # may still hold it, and deleting a row that is not there is harmless.
                self._to_remove.append(event_id)
                continue
            receipted += 1
            if sent.mid is not None:
                self._inflight.pop(sent.mid, None)  # its PUBACK is no longer of interest
            if sent.seq is not None:
                self._to_remove.append(event_id)
        if receipted:
            self._counters.add("events_receipted", receipted)
        if self._to_remove:
            self._outbox.remove_events(self._to_remove)  # raises: kept, and retried next loop
            self._to_remove = []
        if receipted:
            with self._drained:
                self._drained.notify_all()

    def _send_more(self) -> bool:
        """Hand waiting events to paho; True if paho refused one (retry later)."""
        if not self._open_gate():
            return False  # link_up wakes the pump
        try:
            return self._send_waiting()
        finally:
            self._close_gate()

    def _send_waiting(self) -> bool:
        while self._unstored:
            if not self._hand_over(self._unstored[0]):
                return True
            self._unstored.popleft()
        if self._resend_due():
            return True
        room = min(self._window - len(self._inflight), self._max_unreceipted - len(self._sent))
        if room <= 0:
            return False
        rows = self._outbox.pending(self._cursor, room)
        for row in rows:
            if row.event_id in self._sent:
                self._cursor = row.seq  # already out (a resend or the fast path): not twice
                continue
            if not self._hand_over(_Sent(row.event_id, row.topic, row.payload, row.seq)):
                return True
            self._cursor = row.seq
        if len(rows) == room:
            self._wake.set()  # more may be waiting once acknowledgements free the window
        return False

    def _resend_due(self) -> bool:
        """Send again what the dashboard has not receipted in time; True if paho refused."""
        if self._dashboard_online is False:
            return False  # the broker queues for it; resending would only double its queue
        now = time.monotonic()
        due = [sent for sent in self._sent.values() if sent.mid is None and sent.due <= now]
        due.sort(key=lambda sent: (sent.seq is None, sent.seq or 0))
        for sent in due:
            if len(self._inflight) >= self._window:
                self._wake.set()
                return False
            sent.resends += 1
            if not self._hand_over(sent):
                return True
            self._counters.add("events_resent")
        return False

    def _postpone_resends(self) -> None:
        """Give receipts a full timeout from now (after a reconnect, or the dashboard's return)."""
        later = time.monotonic() + self._receipt_timeout_s
        for sent in list(self._sent.values()):
            sent.due = max(sent.due, later)

    def _interval(self, resends: int) -> float:
        return min(self._receipt_timeout_s * (2**resends), MAX_RESEND_INTERVAL_S)

    def _open_gate(self) -> bool:
        with self._gate_lock:
            if not self._gate.is_set():
                return False
            self._handing = True
            return True

    def _close_gate(self) -> None:
        with self._gate_lock:
            self._handing = False

    def _hand_over(self, sent: _Sent) -> bool:
        info = self._publish(sent.topic, sent.payload)
        if info.rc not in _ACCEPTED:
            # paho refused to queue it (its queue is full): the pump tries again later.
            self._counters.add("publish_refused")
            log.warning("publish of event %s refused by paho: %s", sent.event_id, info.rc)
            return False
        # Recorded under _send_lock, before the next _collect_acknowledged
        # (same lock): an acknowledgement that arrives first waits in the deque.
        sent.mid = info.mid
        self._inflight[info.mid] = sent
        self._sent[sent.event_id] = sent
        self._counters.add("events_published")
        return True
