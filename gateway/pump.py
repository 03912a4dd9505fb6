"""Moves events from the outbox to the broker, oldest first.

The pump hands rows to paho-mqtt in ``seq`` order, at most ``window`` of them
unacknowledged at a time (paho keeps them in memory and resends them after a
reconnect), and deletes a row once paho reports the broker's PUBACK. A row
handed to paho is never handed again by this process; after a restart every
row still in the outbox is published again, and the dashboard's idempotent
store makes that redelivery harmless.

paho calls ``on_publish`` while holding its own lock, so the pump never holds
a lock of its own while publishing; it polls ``MQTTMessageInfo.is_published``.
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

from .outbox import Outbox

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], MQTTMessageInfo]

_ACCEPTED = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)


class Pump:
    def __init__(
        self,
        outbox: Outbox,
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
        self._inflight: deque[tuple[int, MQTTMessageInfo]] = deque()
        self._unstored: deque[MQTTMessageInfo] = deque()
        self._unstored_lock = threading.Lock()
        self._cursor = 0
        self._thread = threading.Thread(target=self._run, name="siaga-pump", daemon=True)
        self._drained = threading.Condition()
        #: The exception that stopped the pump, if any (reported by health).
        self.failure: BaseException | None = None
        #: Monotonic time of the last completed loop (for liveness checks).
        self.last_loop = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Tell the pump there is work: a new row, or an acknowledgement."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def publish_unstored(self, topic: str, payload: bytes) -> None:
        """Publish an event that could not be stored (disk full, I/O error).

        It lives only in paho's memory until the broker acknowledges it; a
        restart before that loses it. Health reports how many such events wait.
        """
        info = self._publish(topic, payload)
        with self._unstored_lock:
            self._unstored.append(info)
        self._counters.add("events_unstored")

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def unstored_waiting(self) -> int:
        with self._unstored_lock:
            return sum(1 for info in self._unstored if not info.is_published())

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
                    self._collect_acknowledged()
                    self._send_more()
                except OutboxError as exc:
                    self._counters.add("outbox_errors")
                    log.error("outbox: %s; retrying in %.1f s", exc, self._retry_s)
                    self._stopping.wait(self._retry_s)
                self.last_loop = time.monotonic()
        except BaseException as exc:  # report, never vanish silently
            self.failure = exc
            log.critical("outbox pump stopped: %r", exc, exc_info=True)
            raise

    def _collect_acknowledged(self) -> None:
        done = [seq for seq, info in self._inflight if info.is_published()]
        with self._unstored_lock:
            while self._unstored and self._unstored[0].is_published():
                self._unstored.popleft()
        if not done:
            return
        self._outbox.remove(done)
        finished = set(done)
        self._inflight = deque(item for item in self._inflight if item[0] not in finished)
        self._counters.add("events_acknowledged", len(done))
        with self._drained:
            self._drained.notify_all()

    def _send_more(self) -> None:
        room = self._window - len(self._inflight)
        if room <= 0:
            return
        rows = self._outbox.pending(self._cursor, room)
        for row in rows:
            info = self._publish(row.topic, row.payload)
            if info.rc not in _ACCEPTED:
                # paho refused to queue it (its queue is full): try again later.
                self._counters.add("publish_refused")
                log.warning("publish of event %s refused by paho: %s", row.event_id, info.rc)
                self._stopping.wait(self._retry_s)
                self._wake.set()
                return
            self._inflight.append((row.seq, info))
            self._cursor = row.seq
            self._counters.add("events_published")
        if len(rows) == room:
            self._wake.set()  # more may be waiting once acknowledgements free the window
