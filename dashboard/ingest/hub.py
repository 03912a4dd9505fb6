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
        #: insertion-ordered, oldest first (a dict used as an ordered set)
        self._subscriptions: dict[Subscription, None] = {}
        self._queue_size = queue_size
        self._streams_per_owner = streams_per_owner

    def subscribe(self, kinds: Iterable[str], owner: object = None) -> Subscription:
        """A new stream for ``owner`` (an account); at most ``streams_per_owner`` each.

        Each stream holds a server thread, so one account may not hold them
        all. But a new stream is never refused: the account's oldest one is
        ended instead. A stream whose browser went away is noticed only at its
        next write, so refusing would lock a flaky fire post PC out of its own
        board after a few quick reconnects; an ended stream that was still
        alive reconnects and gets a fresh snapshot.
        """
        subscription = Subscription(self, kinds, self._queue_size, owner)
        ended: list[Subscription] = []
        with self._lock:
            if owner is not None:
                held = [other for other in self._subscriptions if other.owner == owner]
                ended = held[: max(0, len(held) - self._streams_per_owner + 1)]
                for old in ended:
                    del self._subscriptions[old]
            self._subscriptions[subscription] = None
        for old in ended:
            old._shutdown()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.pop(subscription, None)

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
