"""Fan-out of live updates to the boards' Server-Sent Event streams.

Each open board holds a :class:`Subscription` limited to the alarm kinds its
user may see. A board that cannot keep up is cut off (``overflowed``); its
browser reconnects and receives a fresh snapshot, so it never shows a
partial picture without knowing it.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..defaults import STREAMS_PER_ACCOUNT


@dataclass(frozen=True, slots=True)
class LiveMessage:
    event: str
    data: dict[str, Any]
    #: The alarm kind this message reveals; None for messages every board may see.
    kind: str | None = None
    #: The Server-Sent Event, encoded once however many boards it goes to.
    _encoded: list[bytes] = field(default_factory=list, compare=False, repr=False)

    def sse(self) -> bytes:
        if not self._encoded:
            body = json.dumps(self.data, separators=(",", ":"), ensure_ascii=False)
            self._encoded.append(f"event: {self.event}\ndata: {body}\n\n".encode())
        return self._encoded[0]


#: The last message of a stream that the server ends (shutdown, replaced, overflowed).
CLOSED = LiveMessage("closed", {})


class Subscription:
    """A stream read by its own thread (a plain WSGI server): ``get`` blocks."""

    def __init__(self, hub: Hub, kinds: Iterable[str], maxsize: int, owner: object = None) -> None:
        self._hub = hub
        self.owner = owner
        self.kinds = frozenset(kinds)
        self.overflowed = False
        self.closed = False
        self._make_queue(maxsize)

    def _make_queue(self, maxsize: int) -> None:
        self._queue: queue.Queue[LiveMessage] = queue.Queue(maxsize)

    def offer(self, message: LiveMessage) -> None:
        """In the publisher's thread: a message this stream's kinds may see is queued."""
        if message.kind is None or message.kind in self.kinds:
            self._enqueue(message)

    def _enqueue(self, message: LiveMessage) -> None:
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
        if message is CLOSED:
            self.closed = True
            raise EOFError
        return message

    def close(self) -> None:
        self._hub.unsubscribe(self)
        self.closed = True

    def _shutdown(self, last_word: LiveMessage | None = None) -> None:
        if last_word is not None:
            self._enqueue(last_word)
        self._enqueue(CLOSED)


#: At most this many deliveries per turn of the event loop: a broadcast to a
#: thousand boards is cut into slices, and the requests that arrive meanwhile
#: (an operator's acknowledge, a monitor's poll) are served between them.
#: Measured at 1,000 open boards (bench/streams.py, docs/benchmarks.md): 128
#: a turn gave acknowledge p99 52-66 ms and /healthz p99 40-42 ms, 32 gave
#: 36-45 and 21-25, 16 gives 32-34 and 15-17, for the same total work.
DELIVERIES_PER_TURN = 16


class LoopBridge:
    """Carries messages from the publishing threads into one asyncio loop, one wake-up per burst.

    The board streams served by the event loop (``dashboard/asgi.py``) are
    offered messages in whatever thread publishes; waking the loop once per
    message and stream would cost a system call each, so offers queue here
    and the loop drains them at its next turns, a slice per turn.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._pending: deque[tuple[AsyncSubscription, LiveMessage]] = deque()
        self._scheduled = False
        #: Set while nothing pushed waits for the loop (see :meth:`Hub.wait_delivered`).
        self.drained = threading.Event()
        self.drained.set()

    def push(self, subscription: AsyncSubscription, message: LiveMessage) -> None:
        with self._lock:
            self._pending.append((subscription, message))
            self.drained.clear()
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: the server is stopping, its streams with it
            with self._lock:
                self._pending.clear()
                self._scheduled = False
                self.drained.set()  # no one will drain it: a publisher must not wait for it

    def _drain(self) -> None:
        with self._lock:
            pending = self._pending
            batch = [pending.popleft() for _ in range(min(len(pending), DELIVERIES_PER_TURN))]
            more = bool(pending)
            self._scheduled = more
        for subscription, message in batch:
            subscription.deliver(message)
        if more:
            self.loop.call_soon(self._drain)  # after the I/O and callbacks that are ready now
            return
        with self._lock:
            if not self._pending:  # a push since the slice was taken has scheduled its own drain
                self.drained.set()


def _in_event_loop() -> bool:
    """True in a thread running an asyncio loop, which must never block."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class StreamWriter(Protocol):
    """What serves an :class:`AsyncSubscription` in the loop: it is handed each message in order."""

    def offer(self, message: LiveMessage) -> None: ...


class AsyncSubscription(Subscription):
    """A stream served by an asyncio loop: the same filtering and limits, each message handed to its writer.

    Until the writer is attached (the snapshot is still being written) the
    messages wait here, at most ``maxsize`` of them; more, and the stream is
    marked overflowed and its board will resync.
    """

    def __init__(self, hub: Hub, kinds: Iterable[str], maxsize: int, owner: object, bridge: LoopBridge) -> None:
        self._bridge = bridge
        super().__init__(hub, kinds, maxsize, owner)

    def _make_queue(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._early: deque[LiveMessage] = deque()
        self._writer: StreamWriter | None = None

    def _enqueue(self, message: LiveMessage) -> None:
        self._bridge.push(self, message)

    def deliver(self, message: LiveMessage) -> None:
        """In the loop's thread: to the writer, or kept until it comes."""
        if self._writer is not None:
            self._writer.offer(message)
        elif len(self._early) < self.maxsize:
            self._early.append(message)
        else:
            self.overflowed = True

    def attach(self, writer: StreamWriter) -> None:
        """In the loop's thread: ``writer`` serves this stream from now on, starting with what waited."""
        self._writer = writer
        if self.overflowed:  # the board fell behind before it was served: it resyncs at once
            self._early.clear()
            writer.offer(CLOSED)
        while self._early:
            writer.offer(self._early.popleft())


class Hub:
    def __init__(self, *, queue_size: int = 2000, streams_per_owner: int = STREAMS_PER_ACCOUNT) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        #: insertion-ordered, oldest first (a dict used as an ordered set)
        self._subscriptions: dict[Subscription, None] = {}
        self._queue_size = queue_size
        self._streams_per_owner = streams_per_owner
        #: The loops' bridges that streams were opened on (one per serving loop, in practice one).
        self._bridges: dict[LoopBridge, None] = {}
        #: Hands what is published here to the other dashboard processes on the store (:mod:`dashboard.peers`).
        self.relay: Callable[[LiveMessage], None] | None = None

    def subscribe(self, kinds: Iterable[str], owner: object = None, bridge: LoopBridge | None = None) -> Subscription:
        """A new stream for ``owner`` (an account); at most ``streams_per_owner`` each.

        A new stream is never refused for this: the account's oldest one is
        ended instead, with a last ``replaced`` message. A stream whose browser
        went away is noticed only at its next write, so refusing would lock a
        flaky fire post PC out of its own board after a few quick reconnects;
        a replaced board that was still open says so and stays closed until
        someone clicks (so two screens over the limit do not take turns).
        """
        subscription = (
            Subscription(self, kinds, self._queue_size, owner)
            if bridge is None
            else AsyncSubscription(self, kinds, self._queue_size, owner, bridge)
        )
        ended: list[Subscription] = []
        with self._lock:
            if owner is not None:
                held = [other for other in self._subscriptions if other.owner == owner]
                ended = held[: max(0, len(held) - self._streams_per_owner + 1)]
                for old in ended:
                    del self._subscriptions[old]
            self._subscriptions[subscription] = None
            if bridge is not None:
                self._bridges[bridge] = None
        replaced = LiveMessage("replaced", {"streams_per_account": self._streams_per_owner})
        for old in ended:
            old._shutdown(replaced)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.pop(subscription, None)

    def publish(self, message: LiveMessage, *, relay: bool = True) -> None:
        """Offer ``message`` to every stream here, then (unless it came from them) to the other processes."""
        with self._lock:
            self._generation += 1
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.offer(message)
        forward = self.relay
        if relay and forward is not None:
            forward(message)

    def resync(self) -> None:
        """End every stream, so that each board reconnects to a fresh snapshot: something may have been
        missed (a peer's message lost with the connection that carried it)."""
        with self._lock:
            self._generation += 1
            subscriptions = list(self._subscriptions)
            self._subscriptions.clear()
        for subscription in subscriptions:
            subscription._shutdown()

    def wait_delivered(self, timeout: float) -> bool:
        """Wait, at most ``timeout`` seconds in all, until the loops have handed on what was published.

        A publisher that has more to do after publishing (the ingest's
        PUBACKs, receipts and indications) calls this so that the event loop
        gets the interpreter to write the boards' bytes first, instead of
        waiting behind that work for the GIL. It never waits in a loop's own
        thread (that loop could not drain meanwhile) and never longer than
        ``timeout``: a thousand boards' broadcast is cut short, not waited
        out. True if everything was handed on in time.
        """
        if _in_event_loop():
            return False
        with self._lock:
            bridges = list(self._bridges)
        deadline = time.monotonic() + timeout
        delivered = True
        for bridge in bridges:
            if not bridge.drained.is_set():
                delivered = bridge.drained.wait(max(0.0, deadline - time.monotonic())) and delivered
        return delivered

    @property
    def generation(self) -> int:
        """How many messages were published so far: a snapshot read while it stayed the same misses none."""
        with self._lock:
            return self._generation

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscriptions)

    def close(self) -> None:
        """End every stream (shutdown)."""
        self.resync()
