"""Per-client limits on public POSTs (the report form, Open311 submissions, sign-in)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """At most ``limit`` events per ``window_s`` seconds for each key (a client address, an API key).

    Times come from ``clock`` (monotonic seconds) unless a call passes ``now``; tests
    inject a clock they move by hand instead of sleeping.
    """

    def __init__(
        self, limit: int, window_s: float, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._max_keys = max_keys
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> tuple[bool, float]:
        """(allowed, seconds until the next event would be allowed)."""
        now = self.clock() if now is None else now
        with self._lock:
            events = self._events.get(key)
            if events is None:
                if len(self._events) >= self._max_keys:
                    self._forget_idle(now)
                events = self._events.setdefault(key, deque())
            while events and now - events[0] >= self.window_s:
                events.popleft()
            if len(events) >= self.limit:
                return False, self.window_s - (now - events[0])
            events.append(now)
            return True, 0.0

    def retry_after(self, key: str, now: float | None = None) -> float:
        """Seconds until ``key`` may act again (0: now), without counting anything."""
        now = self.clock() if now is None else now
        with self._lock:
            events = self._events.get(key)
            while events and now - events[0] >= self.window_s:
                events.popleft()
            if events is None or len(events) < self.limit:
                return 0.0
            return self.window_s - (now - events[0])

    def count(self, key: str, now: float | None = None) -> int:
        """How many events ``key`` has in the window (0: none lately)."""
        now = self.clock() if now is None else now
        with self._lock:
            events = self._events.get(key)
            while events and now - events[0] >= self.window_s:
                events.popleft()
            return len(events) if events else 0

    def clear_after(self, key: str, now: float | None = None) -> float:
        """Seconds until every event of ``key`` has left the window (0: none in it)."""
        now = self.clock() if now is None else now
        with self._lock:
            events = self._events.get(key)
            if not events:
                return 0.0
            return max(0.0, self.window_s - (now - events[-1]))

    def hit(self, key: str, now: float | None = None) -> None:
        """Count one event for ``key`` (e.g. a failed sign-in) whether or not it was allowed."""
        now = self.clock() if now is None else now
        with self._lock:
            if key not in self._events and len(self._events) >= self._max_keys:
                self._forget_idle(now)
            self._events.setdefault(key, deque()).append(now)

    def forget(self, key: str) -> None:
        with self._lock:
            self._events.pop(key, None)

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, v in self._events.items() if not v or now - v[-1] >= self.window_s]:
            del self._events[key]
