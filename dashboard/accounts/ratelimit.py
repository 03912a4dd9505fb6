"""Per-client limits on public POSTs (the report form, Open311 submissions, sign-in), counted in the store.

Every dashboard process on one store counts the same events (issue 12): a guesser or a flood that a
load balancer spreads over several processes meets one limit, not one per process, and a restart
forgets nothing. Each counted event is a row of ``rate_limit_events`` (migration 0002); a limit is the
number of a key's rows within the limiter's window, a sliding log exactly as the in-memory limiter
before it kept, so its semantics (and its tests) are unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .. import db, pg

#: At most this often one limiter in one process deletes the events that left its window (on a write).
SWEEP_S = 60.0
#: Events are deleted only this long after they left the window: a process whose clock is behind
#: this one's by less than this still sees every event it should count.
CLOCK_SKEW_S = 60.0

_EVENTS = "SELECT at FROM rate_limit_events WHERE limiter = ? AND key = ? AND ? - at < ? ORDER BY at"


@dataclass
class RateLimiter:
    """At most ``limit`` events per ``window_s`` seconds for each key (a client address, an API key).

    ``name`` tells this limiter's events from others' in the store: every process must give the same
    limiter the same name (and the same ``secret``, the app's SECRET_KEY, under which keys are stored
    as digests). Times are wall-clock seconds from ``clock`` unless a call passes ``now``, because
    processes on different hosts share them (a monotonic clock is per host); tests inject a clock they
    move by hand instead of sleeping. The store is reached through ``connection`` (the request's, by
    default); call a limiter outside a transaction of the caller's.
    """

    name: str
    limit: int
    window_s: float
    clock: Callable[[], float] = time.time
    secret: str | bytes = b""
    connection: Callable[[], db.Connection] = db.get_db
    #: When this process last swept this limiter's old events (the clock's time; -inf: never).
    _swept_at: float = field(default=float("-inf"), init=False, repr=False, compare=False)

    def allow(self, key: str, now: float | None = None) -> tuple[bool, float]:
        """(allowed, seconds until the next event would be allowed); an allowed event is counted."""
        now = self._now(now)
        conn = self.connection()
        digest = self._digest(key)
        with self._exclusive(conn, digest):
            events = self._events(conn, digest, now)
            if len(events) >= self.limit:
                return False, self.window_s - (now - events[0])
            self._insert(conn, digest, now)
        return True, 0.0

    def retry_after(self, key: str, now: float | None = None) -> float:
        """Seconds until ``key`` may act again (0: now), without counting anything."""
        now = self._now(now)
        events = self._events(self.connection(), self._digest(key), now)
        if len(events) < self.limit:
            return 0.0
        return self.window_s - (now - events[0])

    def count(self, key: str, now: float | None = None) -> int:
        """How many events ``key`` has in the window (0: none lately)."""
        now = self._now(now)
        return len(self._events(self.connection(), self._digest(key), now))

    def clear_after(self, key: str, now: float | None = None) -> float:
        """Seconds until every event of ``key`` has left the window (0: none in it)."""
        now = self._now(now)
        events = self._events(self.connection(), self._digest(key), now)
        if not events:
            return 0.0
        return max(0.0, self.window_s - (now - events[-1]))

    def hit(self, key: str, now: float | None = None) -> None:
        """Count one event for ``key`` (e.g. a failed sign-in) whether or not it was allowed."""
        now = self._now(now)
        self._insert(self.connection(), self._digest(key), now)

    def forget(self, key: str) -> None:
        self.connection().execute(
            "DELETE FROM rate_limit_events WHERE limiter = ? AND key = ?", (self.name, self._digest(key))
        )

    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else now

    def _digest(self, key: str) -> str:
        """What the store keeps of ``key``: enough to tell keys apart, nothing of an address or a name."""
        secret = self.secret.encode() if isinstance(self.secret, str) else self.secret
        return hmac.new(secret, key.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]

    def _events(self, conn: db.Connection, digest: str, now: float) -> list[float]:
        """The times of ``digest``'s events in the window, oldest first (as the in-memory deque held them)."""
        rows = conn.execute(_EVENTS, (self.name, digest, now, self.window_s)).fetchall()
        return [row[0] for row in rows]

    def _insert(self, conn: db.Connection, digest: str, now: float) -> None:
        conn.execute("INSERT INTO rate_limit_events (limiter, key, at) VALUES (?, ?, ?)", (self.name, digest, now))
        self._sweep(conn, now)

    def _sweep(self, conn: db.Connection, now: float) -> None:
        """Delete this limiter's events that left its window (any key's), at most every SWEEP_S: the table
        stays as small as the traffic of one window, whatever keys never come back."""
        if abs(now - self._swept_at) < SWEEP_S:  # abs: a clock set back sweeps too
            return
        self._swept_at = now  # threads racing here at worst sweep twice
        conn.execute(
            "DELETE FROM rate_limit_events WHERE limiter = ? AND at < ?",
            (self.name, now - self.window_s - CLOCK_SKEW_S),
        )

    @contextmanager
    def _exclusive(self, conn: db.Connection, digest: str) -> Iterator[None]:
        """One check-and-count of ``digest`` at a time, in every process: SQLite's one writer; on
        PostgreSQL a transaction-scoped advisory lock of this key alone, not the store's writers' lock
        (a sign-in never waits for the ingest of alarms, nor the ingest for it)."""
        with batch(conn):
            if isinstance(conn, pg.Connection):  # its lock key names this store, this limiter and this key
                conn.execute("SELECT pg_advisory_xact_lock(?)", (conn.key(f"rate\x00{self.name}\x00{digest}"),))
            yield


@contextmanager
def batch(conn: db.Connection) -> Iterator[db.Connection]:
    """Several limiters' counts in one transaction (one commit, not one each), unless the caller's
    transaction holds them already; without the store's writers' lock on PostgreSQL, which counting
    a sign-in has no need of."""
    if conn.in_transaction:
        yield conn
        return
    with db.transaction(conn, writers_lock=False):
        yield conn
