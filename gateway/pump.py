"""Moves events from the outbox to the broker, oldest first.

The pump hands rows to paho-mqtt in ``seq`` order, at most ``window`` of them
unacknowledged at a time (paho keeps them in memory and resends them after a
reconnect), and deletes a row once paho reports the broker's PUBACK. A row
handed to paho is never handed again by this process; after a restart every
row still in the outbox is published again, and the dashboard's idempotent
store makes that redelivery harmless.

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
from collections.abc import Callable

from paho.mqtt.client import MQTTErrorCode, MQTTMessageInfo

from firmware_bridge.counters import Counters
from firmware_bridge.errors import OutboxError

from .outbox import Outbox, UnavailableOutbox

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], MQTTMessageInfo]

_ACCEPTED = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)


class Pump:
    def __init__(
        self,
        outbox: Outbox | UnavailableOutbox,
        publish: Publish,
        counters: Counters,
        *,
        window: int = 500,
        retry_s: float = 1.0,
    ) -> None:
        self._outbox = outbox
        self._publish = publish
        self._counters = counters
        self._window = window
        self._retry_s = retry_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        #: message id -> outbox seq (None for an event that is not in the outbox)
        self._inflight: dict[int, int | None] = {}
        #: ids paho reported acknowledged; appended by paho's thread, drained by the pump
        self._acks: deque[int] = deque()
        #: events that could not be stored, waiting to be handed to paho by the pump
        self._unstored: deque[tuple[str, bytes]] = deque()
        #: acknowledged rows whose delete has not succeeded yet (retried each loop)
        self._to_remove: list[int] = []
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

    def acknowledged(self, mid: int) -> None:
        """paho's ``on_publish``: the broker acknowledged message ``mid`` (any thread, no locks)."""
        self._acks.append(mid)
        if self._await_resend:
            with self._gate_lock:
                # paho handles acknowledgements after its resend on CONNACK: older events are out.
                self._await_resend = False
                self._gate.set()
        self._wake.set()

    def link_up(self) -> None:
        """The link is connected (paho's ``on_connect``, paho's thread)."""
        with self._gate_lock:
            if self._inflight or self._handing:
                # paho resends those first; open on the first acknowledgement. One always
                # comes: the link publishes its status (QoS 1) on every connection.
                self._await_resend = True
            else:
                self._gate.set()
        self._wake.set()

    def link_down(self) -> None:
        """The link is lost (paho's ``on_disconnect``): hold new events in the outbox until it is back."""
        with self._gate_lock:
            self._gate.clear()
            self._await_resend = False

    def _open_gate(self) -> bool:
        with self._gate_lock:
            if not self._gate.is_set():
                return False
            self._handing = True
            return True

    def _close_hand_over(self) -> None:
        with self._gate_lock:
            self._handing = False

    def publish_now(self, seq: int, previous: int, topic: str, payload: bytes) -> bool:
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
                if not self._hand_over(topic, payload, seq, f"event seq {seq}"):
                    return False
            finally:
                self._close_hand_over()
            self._cursor = seq
            return True
        finally:
            self._send_lock.release()

    def publish_unstored(self, topic: str, payload: bytes) -> None:
        """Publish an event that could not be stored (disk full, I/O error).

        It lives only in memory until the broker acknowledges it; a restart
        before that loses it. Health reports how many such events wait.
        """
        self._unstored.append((topic, payload))
        self._counters.add("events_unstored")
        self._wake.set()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def unstored_waiting(self) -> int:
        inflight = list(self._inflight.values())
        return len(self._unstored) + sum(1 for seq in inflight if seq is None)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def wait_drained(self, timeout: float) -> bool:
        """Block until the outbox is empty and nothing is in flight (tests, benchmarks, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._drained:
            while True:
                if not self._inflight and self._outbox.depth() == 0:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._drained.wait(min(remaining, 0.5))

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                try:
                    with self._send_lock:
                        self._collect_acknowledged()
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

    def _collect_acknowledged(self) -> None:
        acknowledged = 0
        while self._acks:
            mid = self._acks.popleft()
            if mid not in self._inflight:
                continue  # status, inventory or health: not an event
            seq = self._inflight.pop(mid)
            acknowledged += 1
            if seq is not None:
                self._to_remove.append(seq)
        if acknowledged:
            self._counters.add("events_acknowledged", acknowledged)
        if self._to_remove:
            self._outbox.remove(self._to_remove)  # raises: kept, and retried next loop
            self._to_remove = []
            with self._drained:
                self._drained.notify_all()

    def _send_more(self) -> bool:
        """Hand waiting events to paho; True if paho refused one (retry later)."""
        if not self._open_gate():
            return False  # link_up wakes the pump
        try:
            return self._send_waiting()
        finally:
            self._close_hand_over()

    def _send_waiting(self) -> bool:
        while self._unstored:
            topic, payload = self._unstored[0]
            if not self._hand_over(topic, payload, None, "unstored event"):
                return True
            self._unstored.popleft()
        room = self._window - len(self._inflight)
        if room <= 0:
            return False
        rows = self._outbox.pending(self._cursor, room)
        for row in rows:
            if not self._hand_over(row.topic, row.payload, row.seq, row.event_id):
                return True
            self._cursor = row.seq
        if len(rows) == room:
            self._wake.set()  # more may be waiting once acknowledgements free the window
        return False

    def _hand_over(self, topic: str, payload: bytes, seq: int | None, what: str) -> bool:
        info = self._publish(topic, payload)
        if info.rc not in _ACCEPTED:
            # paho refused to queue it (its queue is full): the pump tries again later.
            self._counters.add("publish_refused")
            log.warning("publish of %s refused by paho: %s", what, info.rc)
            return False
        # Recorded under _send_lock, before the next _collect_acknowledged
        # (same lock): an acknowledgement that arrives first waits in the deque.
        self._inflight[info.mid] = seq
        self._counters.add("events_published")
        return True
