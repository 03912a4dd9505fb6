"""Moves events from the outbox to the broker, oldest first, until the dashboard has them.

The pump hands rows to paho-mqtt in ``seq`` order, at most ``window`` of them
unacknowledged by the broker at a time (paho keeps them in memory and resends
them after a reconnect). The broker's PUBACK only frees the window: a row
leaves the outbox when the **dashboard's receipt** names its event id
(``cmd/receipt``, sent after the dashboard committed it). Until then the event
is resent, with a growing interval, whenever its receipt is overdue, and
again after every reconnect of the gateway: a broker that dies before it
saved or delivered what it acknowledged loses nothing.
The same id may reach the dashboard more than once; its store keeps one.

Receipts are taken only for events out now: in ``_sent`` and handed to paho
before the receipt arrived. Anyone who can publish on ``cmd/receipt`` could
otherwise delete events that were never sent; such receipts (and repeats of
one already applied) are counted (``receipts_ignored``) and change nothing.
A row left from before a restart is handed over again first, so the
dashboard's receipt for that new copy deletes it.

The dashboard's presence only sets the pace of resends: while it is said to
be offline (anyone who can publish could say so, retained) overdue events go
again at the longest interval instead of the growing one, never not at all.

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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from paho.mqtt.client import MQTTErrorCode, MQTTMessageInfo

from firmware_bridge.counters import Counters
from firmware_bridge.errors import BadPayload, OutboxError
from firmware_bridge.periodic import Guard
from firmware_bridge.timeutil import parse_ts

from .outbox import Outbox, UnavailableOutbox

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], MQTTMessageInfo]

_ACCEPTED = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)

#: The longest wait between two resends of an event whose receipt does not come.
MAX_RESEND_INTERVAL_S = 600.0
#: How many dashboard ``resync`` marks are remembered: more than there are dashboard processes, whose
#: presences alternate on the one retained topic and must not each look new every time.
RESYNC_MARKS_KEPT = 16


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
    #: Monotonic time it was first handed to paho (who took it): a receipt that arrived before is not about it.
    published_at: float | None = None
    #: Monotonic time of the latest hand-over (paces resends while the dashboard is said to be away).
    last_sent_at: float = 0.0
    #: Wall-clock time of the latest hand-over, to compare with a dashboard's resync mark (its clock).
    last_sent_wall: float = 0.0
    #: Resend as soon as the broker acknowledges this copy: it went out before the dashboard's
    #: session was remade (a resync), so the broker may have had no one to give it to.
    again_on_ack: bool = False


def _epoch_of(mark: str) -> float | None:
    """A resync mark's instant, or None if it cannot be read (then nothing is resent for it)."""
    try:
        return parse_ts(mark, field="resync").timestamp()
    except BadPayload:
        return None


class Pump:
    """Hands outbox rows to paho and deletes them on the dashboard's receipt.

    Which thread owns what:

    - Whoever holds ``_send_lock`` (the pump thread, a press handler on the
      fast path, ``publish_now``, or a caller of ``held``) alone writes ``_sent``, ``_inflight``,
      every ``_Sent``'s fields, ``_cursor``, ``_to_remove`` and
      ``_memory_only_out``, and alone reads their contents.
    - paho's network thread (``acknowledged``, ``receipted``,
      ``dashboard_presence``, ``link_up``, ``link_down``) never takes
      ``_send_lock``: paho calls us holding its own locks, and the holder of
      ``_send_lock`` calls paho, so taking it there could deadlock. It only
      posts facts: message ids and receipts on deques (append and popleft are
      atomic), and under ``_facts_lock`` the dashboard's presence and a
      request to postpone resends. The pump applies them under ``_send_lock``
      at the start of its next turn.
    - ``_gate_lock`` guards the gate, ``_handing`` and ``_await_resend``; it is
      never held while calling paho, so paho's callbacks may take it.
    - Other threads read sizes only (health, ``wait_drained``, and
      ``link_up``'s "does paho hold events?"): ``len`` of a dict or deque, or
      an int, each one atomic step; a figure one turn old is fine for them.
    """

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
        max_resend_interval_s: float = MAX_RESEND_INTERVAL_S,
    ) -> None:
        self._outbox = outbox
        self._publish = publish
        self._counters = counters
        self._window = window
        #: Seconds before a turn that failed, or that paho refused, is tried again.
        self.retry_s = retry_s
        self._receipt_timeout_s = receipt_timeout_s
        self._max_resend_interval_s = max_resend_interval_s
        #: Events out but not receipted, at most: while the dashboard is away the
        #: rest wait in the outbox rather than in the broker's queue and in memory.
        self._max_unreceipted = max_unreceipted
        self._wake = threading.Event()
        self._stopping = threading.Event()
        # -- owned by the holder of _send_lock --
        #: message id -> the event paho has not had acknowledged by the broker yet
        self._inflight: dict[int, _Sent] = {}
        #: event id -> every event handed over and not yet receipted (in flight or waiting)
        self._sent: dict[str, _Sent] = {}
        #: how many of _sent are not in the outbox (the disk failed): health's memory_only
        self._memory_only_out = 0
        #: receipted event ids whose delete has not succeeded yet (retried each loop)
        self._to_remove: list[str] = []
        self._cursor = 0
        #: receipts ignored since the start (to log the first few, then every 100th)
        self._ignored_total = 0
        #: Held while handing events to paho, so the pump and the fast path
        #: (publish_now, from a press handler) keep seq order. paho's
        #: on_publish never takes it, so it cannot deadlock with paho's locks.
        self._send_lock = threading.Lock()
        # -- facts posted by other threads, drained by the pump --
        #: ids paho reported acknowledged; appended by paho's thread
        self._acks: deque[int] = deque()
        #: (monotonic arrival time, event id) the dashboard receipted; appended by paho's thread
        self._receipts: deque[tuple[float, str]] = deque()
        #: events that could not be stored, appended by press handlers, handed to paho by the pump
        self._unstored: deque[_Sent] = deque()
        #: Guards _dashboard_online and _postpone_from; never held while calling paho or the outbox.
        self._facts_lock = threading.Lock()
        #: The dashboard's presence: True, False, or None while unknown (resend, with backoff).
        self._dashboard_online: bool | None = None
        #: Monotonic time from which overdue resends get a full receipt timeout (None: no request).
        self._postpone_from: float | None = None
        #: The dashboards' ``resync`` marks heard (several dashboard processes take turns on one retained
        #: topic, each with its own), and the monotonic time a new one came (None: none to apply).
        self._resync_marks: deque[str] = deque(maxlen=RESYNC_MARKS_KEPT)
        self._resync_at: float | None = None
        #: The first mark heard, as an instant of the dashboard's clock (None: none to apply).
        self._resync_before_wall: float | None = None
        # -- the gate (see the module's docstring), under _gate_lock --
        #: Set while paho sends what it is handed after everything handed before.
        #: Closed until the first connection.
        self._gate = threading.Event()
        #: Guards the gate, _handing and _await_resend; never held while calling paho,
        #: so the link's callbacks (paho's thread, paho's locks held) may take it.
        self._gate_lock = threading.Lock()
        self._handing = False
        self._await_resend = False
        self._thread = threading.Thread(target=self._run, name="siaga-pump", daemon=True)
        self._drained = threading.Condition()
        self._guard = Guard("outbox pump", on_error=lambda: self._counters.add("pump_errors"))
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

    # -- from paho's thread: post facts only (no paho calls, no _send_lock) ----------------------

    def acknowledged(self, mid: int) -> None:
        """paho's ``on_publish``: the broker acknowledged message ``mid``."""
        self._acks.append(mid)
        with self._gate_lock:
            if self._await_resend:
                # paho handles acknowledgements after its resend on CONNACK: older events are out.
                self._await_resend = False
                self._gate.set()
        self._wake.set()

    def receipted(self, event_ids: Iterable[str]) -> None:
        """The dashboard says it has committed these events: the pump checks they are out, then deletes them."""
        arrived_at = time.monotonic()
        self._receipts.extend((arrived_at, event_id) for event_id in event_ids)
        if self._dashboard_online is False:
            # A receipt is a dashboard at work: the retained "offline" it contradicts is stale (several
            # dashboard processes share that topic, and one's last will may outlive the others' "online").
            self._counters.add("presence_inferred")
            self.dashboard_presence(True)
        self._wake.set()

    def dashboard_presence(self, online: bool, resync: str | None = None) -> None:
        """The dashboard's retained presence changed (or was first heard).

        ``resync`` changes when the broker granted the dashboard's
        subscriptions in a session it had not kept: what went out before may
        have been dropped, acknowledged all the same, so every unreceipted event
        sent before now goes again at once rather than a receipt timeout after
        its acknowledgement. A mark heard before is not new (dashboard processes
        sharing the topic take turns). The first one this process hears may
        name a session made before its events went out, or after (this gateway
        restarted while the broker was away, and published before the dashboard
        was back): events sent before the mark's time, by the clocks, go again.
        """
        with self._facts_lock:
            came_back = online and self._dashboard_online is not True
            self._dashboard_online = online
            if came_back:
                self._ask_postpone()  # its queue is being delivered: give the receipts time to come
            if online and resync is not None and resync not in self._resync_marks:
                if self._resync_marks:
                    self._resync_at = time.monotonic()
                else:
                    self._resync_before_wall = _epoch_of(resync)
                self._resync_marks.append(resync)
        self._wake.set()

    def link_up(self) -> None:
        """The link is connected (paho's ``on_connect``)."""
        with self._gate_lock:
            if self._inflight or self._handing:
                # paho resends those first; open on the first acknowledgement. One always
                # comes: the link publishes its status (QoS 1) on every connection.
                # (_inflight is the sender's, read here for its size only: a sender
                # that adds to it holds _handing, which this lock makes visible.)
                self._await_resend = True
            else:
                self._gate.set()
        with self._facts_lock:
            # Receipts sent while we were away arrive first; what is still missing then goes again.
            self._ask_postpone()
        self._wake.set()

    def link_down(self) -> None:
        """The link is lost (paho's ``on_disconnect``): hold new events in the outbox until it is back."""
        with self._gate_lock:
            self._gate.clear()
            self._await_resend = False

    def _ask_postpone(self) -> None:
        """Caller holds _facts_lock: the pump will give every unreceipted event a full timeout from now."""
        self._postpone_from = time.monotonic()

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

    # -- state (any thread: sizes only) ------------------------------------------------------

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def awaiting_receipt(self) -> int:
        return len(self._sent)

    @property
    def unstored_waiting(self) -> int:
        return len(self._unstored) + self._memory_only_out

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def failure(self) -> BaseException | None:
        """The exception that stopped the pump, if any (reported by health)."""
        return self._guard.failure

    @property
    def native_id(self) -> int | None:
        """The pump thread's id in the operating system (``top -H``, ``/proc/<pid>/task``); None before start."""
        return self._thread.native_id

    @contextmanager
    def held(self) -> Iterator[Callable[[], dict[str, float]]]:
        """Hold the pump between two turns, as a long turn (or a press's fast path) does.

        Yields ``resend_times`` for use inside the block: the thread holding
        the pump is the one that may read what it owns.
        """
        with self._send_lock:
            yield self._resend_times

    def resend_times(self) -> dict[str, float]:
        """Event id -> monotonic time it goes again, for every event out and not receipted yet."""
        with self._send_lock:
            return self._resend_times()

    def _resend_times(self) -> dict[str, float]:
        return {event_id: sent.due for event_id, sent in self._sent.items()}

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
        # The pump must outlive any one failure (events keep waiting in the outbox);
        # what ends it anyway is kept in ``failure`` for health.
        wait_s = 0.0
        with self._guard.lifetime():
            while not self._stopping.is_set():
                self._wake.wait(timeout=wait_s)
                self._wake.clear()
                retry = True
                with self._guard.round(f"unexpected error; retrying in {self.retry_s:.1f} s"):
                    retry, wait_s = self._guarded_turn(wait_s)
                if retry:
                    self._stopping.wait(self.retry_s)
                    self._wake.set()
                self.last_loop = time.monotonic()

    def _guarded_turn(self, wait_s: float) -> tuple[bool, float]:
        """One turn; whether to retry after ``retry_s`` (paho refused, or the outbox failed), and the next wait."""
        try:
            with self._send_lock:
                return self._turn()
        except OutboxError as exc:  # the SD card, not a bug: counted apart, and no traceback
            self._counters.add("outbox_errors")
            log.error("outbox: %s; retrying in %.1f s", exc, self.retry_s)
            return True, wait_s

    def _turn(self) -> tuple[bool, float]:
        """One round under _send_lock: apply posted facts, then send.

        Returns whether paho refused an event, and how long the pump may wait before the next round.
        """
        dashboard_online, postpone_from, resync_at, resync_before_wall = self._take_facts()
        if postpone_from is not None:
            self._postpone_resends(postpone_from)
        if resync_at is not None:
            self._resend_sent_before(lambda sent: sent.last_sent_at < resync_at)
        if resync_before_wall is not None:
            self._resend_sent_before(lambda sent: sent.last_sent_wall < resync_before_wall)
        self._collect_acknowledged()
        self._collect_receipts()
        refused = self._send_more(dashboard_online)
        return refused, self._next_wait(dashboard_online)

    def _take_facts(self) -> tuple[bool | None, float | None, float | None, float | None]:
        with self._facts_lock:
            postpone_from, self._postpone_from = self._postpone_from, None
            resync_at, self._resync_at = self._resync_at, None
            before_wall, self._resync_before_wall = self._resync_before_wall, None
            return self._dashboard_online, postpone_from, resync_at, before_wall

    def _next_wait(self, dashboard_online: bool | None) -> float:
        """At most 1 s (liveness), less when a resend falls due sooner.

        Not less while nothing could be resent anyway (the link is down, or the
        window is full): link_up and acknowledgements wake the pump, and waiting
        0 s for an overdue event would spin.
        """
        if not self._gate.is_set() or len(self._inflight) >= self._window:
            return 1.0
        waiting = [self._resend_at(sent, dashboard_online) for sent in self._sent.values() if sent.mid is None]
        if not waiting:
            return 1.0
        return max(0.0, min(1.0, min(waiting) - time.monotonic()))

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
            sent.due = now if sent.again_on_ack else now + self._interval(sent.resends)
            sent.again_on_ack = False
        if acknowledged:
            self._counters.add("events_acknowledged", acknowledged)

    def _collect_receipts(self) -> None:
        receipted = ignored = 0
        while self._receipts:
            arrived_at, event_id = self._receipts.popleft()
            sent = self._sent.get(event_id)
            if sent is None or sent.published_at is None or arrived_at < sent.published_at:
                ignored += 1  # not out when the receipt came: never sent, not yet sent, or receipted already
                continue
            del self._sent[event_id]
            receipted += 1
            if sent.mid is not None:
                self._inflight.pop(sent.mid, None)  # its PUBACK is no longer of interest
            if sent.seq is None:
                self._memory_only_out -= 1
            else:
                self._to_remove.append(event_id)
        if ignored:
            self._note_ignored(ignored)
        if receipted:
            self._counters.add("events_receipted", receipted)
        if self._to_remove:
            self._outbox.remove_events(self._to_remove)  # raises: kept, and retried next loop
            self._to_remove = []
        if receipted:
            with self._drained:
                self._drained.notify_all()

    def _note_ignored(self, count: int) -> None:
        """Count receipts that named no event out now; log the first few and then every 100th."""
        self._counters.add("receipts_ignored", count)
        before, self._ignored_total = self._ignored_total, self._ignored_total + count
        if before < 10 or before // 100 != self._ignored_total // 100:
            log.warning(
                "ignored %d receipt id(s) for events not out (a repeat, or not from the dashboard); %d so far",
                count,
                self._ignored_total,
            )

    def _send_more(self, dashboard_online: bool | None) -> bool:
        """Hand waiting events to paho; True if paho refused one (retry later)."""
        if not self._open_gate():
            return False  # link_up wakes the pump
        try:
            return self._send_waiting(dashboard_online)
        finally:
            self._close_gate()

    def _send_waiting(self, dashboard_online: bool | None) -> bool:
        while self._unstored:
            if not self._hand_over(self._unstored[0]):
                return True
            self._unstored.popleft()
        if self._resend_due(dashboard_online):
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

    def _resend_due(self, dashboard_online: bool | None) -> bool:
        """Send again what the dashboard has not receipted in time; True if paho refused."""
        now = time.monotonic()
        due = [
            sent for sent in self._sent.values() if sent.mid is None and self._resend_at(sent, dashboard_online) <= now
        ]
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

    def _resend_at(self, sent: _Sent, dashboard_online: bool | None) -> float:
        """When ``sent`` (acknowledged by the broker, not receipted) goes again.

        While the dashboard is said to be offline the broker queues the
        originals for its session, so resending at the usual pace would only
        double that queue. But anyone who can publish could say so (and
        retain it), so that word only slows resends to the longest interval.
        """
        if dashboard_online is False:
            return max(sent.due, sent.last_sent_at + self._max_resend_interval_s)
        return sent.due

    def _resend_sent_before(self, sent_before: Callable[[_Sent], bool]) -> None:
        """The dashboard's session was remade: what was sent before (``sent_before``) goes again now."""
        now = time.monotonic()
        again = 0
        for sent in self._sent.values():
            if not sent_before(sent):
                continue
            again += 1
            if sent.mid is None:
                sent.due = now
            else:
                sent.again_on_ack = True  # paho holds it; the broker's PUBACK frees it for a resend
        if again:
            self._counters.add("dashboard_resyncs")

    def _postpone_resends(self, since: float) -> None:
        """Give receipts a full timeout from ``since`` (after a reconnect, or the dashboard's return)."""
        later = since + self._receipt_timeout_s
        for sent in self._sent.values():
            sent.due = max(sent.due, later)

    def _interval(self, resends: int) -> float:
        return min(self._receipt_timeout_s * (2**resends), self._max_resend_interval_s)

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
        # Stamped before paho has it: the dashboard's receipt for this copy can only come later,
        # and however fast it is, it is never mistaken for one that came before.
        started = time.monotonic()
        info = self._publish(sent.topic, sent.payload)
        if info.rc not in _ACCEPTED:
            # paho refused to queue it (its queue is full): the pump tries again later.
            self._counters.add("publish_refused")
            log.warning("publish of event %s refused by paho: %s", sent.event_id, info.rc)
            return False
        # Recorded under _send_lock, before the next _collect_acknowledged
        # (same lock): an acknowledgement that arrives first waits in the deque.
        sent.last_sent_at = started
        sent.last_sent_wall = time.time()
        if sent.published_at is None:
            sent.published_at = started
        sent.mid = info.mid
        self._inflight[info.mid] = sent
        if sent.event_id not in self._sent:
            self._sent[sent.event_id] = sent
            if sent.seq is None:
                self._memory_only_out += 1
        self._counters.add("events_published")
        return True
