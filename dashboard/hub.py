"""Fan-out of live updates to the boards' Server-Sent Event streams.

Each open board holds a :class:`Subscription` limited to the alarm kinds its
user may see. A board that cannot keep up is cut off (``overflowed``); its
browser reconnects and receives a fresh snapshot, so it never shows a
partial picture without knowing it.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from firmware_bridge.errors import SiagaError


@dataclass(frozen=True, slots=True)
class LiveMessage:
    event: str
    data: dict[str, Any]
    #: The alarm kind this message reveals; None for messages every board may see.
    kind: str | None = None

    def sse(self) -> bytes:
        body = json.dumps(self.data, separators=(",", ":"), ensure_ascii=False)
        return f"event: {self.event}\ndata: {body}\n\n".encode()


_CLOSED = LiveMessage("closed", {})


class TooManyStreams(SiagaError, RuntimeError):
    """One account holds as many live streams as it may (each holds a server thread)."""


class Subscription:
    def __init__(self, hub: Hub, kinds: Iterable[str], maxsize: int, owner: object = None) -> None:
        self._hub = hub
        self.owner = owner
        self.kinds = frozenset(kinds)
        self._queue: queue.Queue[LiveMessage] = queue.Queue(maxsize)
        self.overflowed = False
        self.closed = False

    def offer(self, message: LiveMessage) -> None:
        if message.kind is not None and message.kind not in self.kinds:
            return
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self.overflowed = True

    def get(self, timeout: float) -> LiveMessage | None:
        """The next message, ``None`` on timeout; raises EOFError when closed or overflowed."""
        if self.overflowed or self.closed:
            raise EOFError
        try:
            message = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if message is _CLOSED:
            self.closed = True
            raise EOFError
        return message

    def close(self) -> None:
        self._hub.unsubscribe(self)
        self.closed = True

    def _shutdown(self) -> None:
        try:
            self._queue.put_nowait(_CLOSED)
        except queue.Full:
            self.overflowed = True


class Hub:
    def __init__(self, *, queue_size: int = 2000, streams_per_owner: int = 8) -> None:
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()
        self._queue_size = queue_size
        self._streams_per_owner = streams_per_owner

    def subscribe(self, kinds: Iterable[str], owner: object = None) -> Subscription:
        """A new stream for ``owner`` (an account); at most ``streams_per_owner`` each."""
        subscription = Subscription(self, kinds, self._queue_size, owner)
        with self._lock:
            if owner is not None:
                held = sum(1 for other in self._subscriptions if other.owner == owner)
                if held >= self._streams_per_owner:
                    raise TooManyStreams(f"this account already has {held} live boards open")
            self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    def publish(self, message: LiveMessage) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.offer(message)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscriptions)

    def close(self) -> None:
        """End every stream (shutdown)."""
        with self._lock:
            subscriptions = list(self._subscriptions)
            self._subscriptions.clear()
        for subscription in subscriptions:
            subscription._shutdown()
