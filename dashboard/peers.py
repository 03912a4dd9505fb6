"""Dashboard processes sharing one store: every board hears every process's changes, and one process runs the jobs.

Two or more dashboards may serve one store (PostgreSQL; or an SQLite file on one machine), each
ingesting and each serving boards, behind any load balancer:

- :class:`Relay` hands what this process's hub publishes (alarms, troubles, gateways) to the other
  processes through PostgreSQL's LISTEN/NOTIFY, and theirs to this hub, so that a board connected to
  one process shows a change made through another at once. A board that may have missed something
  (the listening connection was lost, a message too long for a notification) is ended and reconnects
  to a fresh snapshot, rather than showing a stale board as live.
- :class:`Leadership` lets one process at a time run the jobs that must not run twice (the supervisor,
  the escalator, the webhook senders): the holder of the store's leader lock, a session advisory lock
  on PostgreSQL (released by the server the moment the holder's connection dies) or an exclusive lock
  on a file beside an SQLite store (released by the kernel when the holder dies). The others try again
  every second, so a new leader takes over within seconds of the last one's death.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware_bridge.counters import Counters
from firmware_bridge.periodic import Guard

from . import pg
from .ingest.hub import Hub, LiveMessage

log = logging.getLogger(__name__)

#: PostgreSQL refuses a notification's payload from 8,000 bytes on; what is longer becomes a resync.
MAX_PAYLOAD = 7_900
#: Messages waiting for the server (it is away) beyond this many are dropped, and the other processes'
#: boards told to resync once it is back: memory stays bounded however long the server is away.
MAX_WAITING = 10_000
#: A notification's item that tells the other processes' boards to start again from a snapshot.
_RESYNC_ITEM = '{"resync":true}'
#: The most messages taken from the queue at once, to be packed into notifications.
_TAKE_AT_MOST = 1_000
#: How often a follower asks for the leader lock, and the leader checks that it still holds it (seconds).
LEADER_CHECK_S = 1.0
#: A lost server connection is tried again after this long, doubling up to the maximum (seconds).
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.2, 5.0
#: How quickly a server notices that a leader's connection died without a word (a cut cable, a
#: frozen machine): TCP keepalives, so that its lock is released within about ten seconds.
_KEEPALIVE = "keepalives=1 keepalives_idle=3 keepalives_interval=1 keepalives_count=3"
_SERVER_KEEPALIVE = (
    "SET tcp_keepalives_idle = 3",
    "SET tcp_keepalives_interval = 1",
    "SET tcp_keepalives_count = 3",
    "SET tcp_user_timeout = 6000",
)


def _store_name(url: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as probe:
        return pg.store_name(probe)


class Relay:
    """This hub's messages to the other processes on the store, and theirs to this hub (LISTEN/NOTIFY)."""

    def __init__(self, url: str, hub: Hub, counters: Counters | None = None) -> None:
        self._url = url
        self._hub = hub
        self.counters = counters if counters is not None else Counters()
        #: Names this process's notifications, so that it does not publish its own twice.
        self.origin = secrets.token_hex(8)
        self.channel = ""
        self._outgoing: queue.Queue[LiveMessage | None] = queue.Queue(MAX_WAITING)
        #: Messages were dropped while the server was away: the others must resync.
        self._dropped = threading.Event()
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._threads = [
            threading.Thread(target=self._listen, name="siaga-relay-listen", daemon=True),
            threading.Thread(target=self._send, name="siaga-relay-send", daemon=True),
        ]
        #: What ended either thread, if one ended (the sender's and the listener's).
        self._guards = (Guard("relay: the listening thread"), Guard("relay: the sending thread"))

    @property
    def failure(self) -> BaseException | None:
        return next((guard.failure for guard in self._guards if guard.failure is not None), None)

    def start(self, wait_s: float = 10.0) -> Relay:
        """Start listening, and return once this process hears the others (or ``wait_s`` passed)."""
        self.channel = f"siaga_live_{pg.store_key(_store_name(self._url), 'live') & 0xFFFF_FFFF_FFFF:012x}"
        for thread in self._threads:
            thread.start()
        if not self._listening.wait(wait_s):
            log.error("relay: not listening on %s after %.0f s; boards hear only this process", self.channel, wait_s)
        self._hub.relay = self.send
        return self

    def stop(self) -> None:
        self._hub.relay = None
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._outgoing.put_nowait(None)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(5)

    def is_alive(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    def send(self, message: LiveMessage) -> None:
        """Queue ``message`` for the other processes (never blocks a publisher)."""
        try:
            self._outgoing.put_nowait(message)
        except queue.Full:
            if not self._dropped.is_set():
                log.error("relay: %d messages wait for the server; dropping, the boards resync later", MAX_WAITING)
            self._dropped.set()
            self.counters.add("relay_dropped")

    def pack(self, messages: list[LiveMessage]) -> list[str]:
        """``messages`` as the few notifications that hold them, in order, each under :data:`MAX_PAYLOAD`: a
        busy batch's hundred alarm changes cost the server a handful of notifications, not a hundred."""
        envelope = len(self._notification([]).encode())
        payloads: list[str] = []
        items: list[str] = []
        size = envelope
        for message in messages:
            item = json.dumps(
                {"e": message.event, "k": message.kind, "d": message.data}, separators=(",", ":"), ensure_ascii=False
            )
            if envelope + len(item.encode()) > MAX_PAYLOAD:
                log.warning("relay: a %s message too long to notify; the other processes' boards resync", message.event)
                self.counters.add("relay_resyncs_sent")
                item = _RESYNC_ITEM
            length = len(item.encode())
            if items and size + 1 + length > MAX_PAYLOAD:
                payloads.append(self._notification(items))
                items, size = [], envelope
            size += length + (1 if items else 0)  # and a comma after the one before
            items.append(item)
        if items:
            payloads.append(self._notification(items))
        return payloads

    def _notification(self, items: list[str]) -> str:
        """One notification's payload: this process's origin and ``items``, each a JSON object."""
        return f'{{"o":{json.dumps(self.origin)},"m":[{",".join(items)}]}}'

    def _take(self) -> tuple[list[LiveMessage], bool]:
        """What waits to be sent (waiting for the first), and whether :meth:`stop` was asked among them."""
        first = self._outgoing.get()
        if first is None:
            return [], True
        messages = [first]
        while len(messages) < _TAKE_AT_MOST:
            try:
                message = self._outgoing.get_nowait()
            except queue.Empty:
                break
            if message is None:
                return messages, True
            messages.append(message)
        return messages, False

    def _resync(self) -> str:
        self.counters.add("relay_resyncs_sent")
        return self._notification([_RESYNC_ITEM])

    def _connect(self) -> Any:
        import psycopg

        # Named, so that an operator looking at pg_stat_activity sees whose connection it is.
        return psycopg.connect(self._url, autocommit=True, application_name=f"siaga-relay-{self.origin}")

    def _send(self) -> None:
        conn = None
        delay = RECONNECT_MIN_S
        pending: list[str] = []
        taken = 0  # messages in ``pending``
        stopping = False
        with self._guards[1].lifetime():
            try:
                while True:
                    if not pending:
                        if stopping:
                            return
                        messages, stopping = self._take()
                        pending, taken = self.pack(messages), len(messages)
                        continue
                    try:
                        if conn is None or conn.closed or conn.broken:
                            conn = self._connect()
                        if self._dropped.is_set() and self._outgoing.empty():
                            conn.execute("SELECT pg_notify(%s, %s)", (self.channel, self._resync()))
                            self._dropped.clear()
                        while pending:
                            conn.execute("SELECT pg_notify(%s, %s)", (self.channel, pending[0]))
                            pending.pop(0)
                        self.counters.add("relay_sent", taken)
                        delay = RECONNECT_MIN_S
                    except Exception as exc:  # noqa: BLE001 - the server away: keep the messages, try again
                        self.counters.add("relay_send_errors")
                        log.warning("relay: cannot notify the other processes (%s); retrying in %.1f s", exc, delay)
                        if self._stop.wait(delay):
                            return
                        delay = min(delay * 2, RECONNECT_MAX_S)
            finally:
                if conn is not None:
                    conn.close()

    def _listen(self) -> None:
        delay = RECONNECT_MIN_S
        first = True
        with self._guards[0].lifetime():
            while not self._stop.is_set():
                try:
                    with self._connect() as conn:
                        conn.execute(f"LISTEN {self.channel}")
                        if not first:
                            # Whatever the others sent while this process was not listening is lost: its
                            # boards start again from the store.
                            self.counters.add("relay_resyncs")
                            self._hub.resync()
                        first, delay = False, RECONNECT_MIN_S
                        self._listening.set()
                        while not self._stop.is_set():
                            for notice in conn.notifies(timeout=0.5):
                                self._receive(notice.payload)
                except Exception as exc:  # noqa: BLE001 - the server away: listen again
                    if self._stop.is_set():
                        return
                    self.counters.add("relay_listen_errors")
                    log.warning("relay: stopped hearing the other processes (%s); again in %.1f s", exc, delay)
                    self._stop.wait(delay)
                    delay = min(delay * 2, RECONNECT_MAX_S)

    def _receive(self, payload: str) -> None:
        try:
            notification = json.loads(payload)
            if notification.get("o") == self.origin:
                return
            items = notification["m"]
            messages = [
                None if item.get("resync") else LiveMessage(str(item["e"]), dict(item["d"]), kind=item.get("k"))
                for item in items
            ]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.counters.add("relay_bad_messages")
            log.error("relay: a notification that is not a list of live messages (%s): %r", exc, payload[:200])
            return
        for message in messages:
            if message is None:
                self.counters.add("relay_resyncs")
                self._hub.resync()
                continue
            self.counters.add("relay_received")
            self._hub.publish(message, relay=False)


class Leadership:
    """Whether this process runs the jobs that must run once at a time; :meth:`holds` is their gate."""

    def __init__(self, database: str, counters: Counters | None = None, check_s: float = LEADER_CHECK_S) -> None:
        self._database = database
        self.counters = counters if counters is not None else Counters()
        self._check_s = check_s
        self._leader = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="siaga-leadership", daemon=True)
        self._lock: _LeaderLock = _ServerLock(database) if pg.is_url(database) else _FileLock(database)
        #: When this process last became the leader (wall clock), or None.
        self.since: float | None = None
        self._guard = Guard("leadership: the thread; this process runs no jobs")

    @property
    def failure(self) -> BaseException | None:
        return self._guard.failure

    def start(self) -> Leadership:
        self._try()  # a lone dashboard leads from its first round, not a second later
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._step_down("stopped")
        self._lock.close()

    def holds(self) -> bool:
        """Whether this process is the leader now."""
        return self._leader.is_set()

    def wait_elected(self, timeout: float) -> bool:
        return self._leader.wait(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        with self._guard.lifetime():
            try:
                while not self._stop.wait(self._check_s):
                    self._try()
            finally:
                if not self._stop.is_set():  # ended by a bug: nobody may count on this process leading
                    self._step_down("the leadership thread ended")

    def _try(self) -> None:
        try:
            held = self._lock.confirm() if self.holds() else self._lock.acquire()
        except Exception as exc:  # noqa: BLE001 - the store away: nobody may count on holding it
            self.counters.add("leader_check_errors")
            self._lock.reset()
            if self.holds():
                self._step_down(f"cannot confirm the lock: {exc}")
            return
        if held and not self.holds():
            self.since = time.time()
            self._leader.set()
            self.counters.add("leader_elected")
            log.warning("leadership: this process now runs the supervisor, escalator and webhook senders")
        elif not held and self.holds():
            self._step_down("the lock was lost")

    def _step_down(self, why: str) -> None:
        if self.holds():
            self._leader.clear()
            self.since = None
            self.counters.add("leader_lost")
            log.error("leadership: this process stops running the jobs (%s)", why)


class _LeaderLock:
    def acquire(self) -> bool:
        raise NotImplementedError

    def confirm(self) -> bool:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget a connection that failed (the next acquire opens another)."""

    def close(self) -> None:
        raise NotImplementedError


class _ServerLock(_LeaderLock):
    """A PostgreSQL session advisory lock, held on a connection of its own."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: Any = None
        self._key: int | None = None

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(f"{self._url}", autocommit=True, **_keepalive_args())
            for statement in _SERVER_KEEPALIVE:
                self._conn.execute(statement)
            if self._key is None:
                self._key = pg.store_key(pg.store_name(self._conn), "leader")
        return self._conn

    def acquire(self) -> bool:
        conn = self._connection()
        return bool(conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()[0])

    def confirm(self) -> bool:
        if self._conn is None or self._conn.closed or self._conn.broken:
            return False
        # A session's advisory lock lasts as long as the session: the connection still answering is the lock held.
        self._conn.execute("SELECT 1")
        return True

    def reset(self) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


def _keepalive_args() -> dict[str, str]:
    return dict(part.split("=", 1) for part in _KEEPALIVE.split())


class _FileLock(_LeaderLock):
    """An exclusive lock on ``<store>.leader``: the processes on one machine sharing an SQLite file."""

    def __init__(self, database: str) -> None:
        self._path = None if database == ":memory:" else Path(f"{database}.leader")
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._path is None:
            return True
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def confirm(self) -> bool:
        return self._path is None or self._fd is not None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None


#: A job's gate: whether it may act now.
Gate = Callable[[], bool]
