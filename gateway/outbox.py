"""The gateway's durable outbox: events survive power cuts and broker outages.

An event is committed here (SQLite, WAL, ``synchronous=FULL``: the commit is
on disk when :meth:`Outbox.put` returns) before it is published, and leaves
only when the dashboard's receipt says it is in the dashboard's store. Rows are published in ``seq``
order, so after a restart the oldest event goes out first.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from firmware_bridge.errors import OutboxError

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT    NOT NULL UNIQUE,
    topic      TEXT    NOT NULL,
    payload    BLOB    NOT NULL,
    created_at REAL    NOT NULL
);
-- What each radio node last sent, for replay and duplicate checks. Kept in the
-- outbox's database so that an accepted event and its counter are committed
-- together: a power cut cannot keep one without the other.
CREATE TABLE IF NOT EXISTS radio_nodes (
    node             INTEGER PRIMARY KEY,
    key_id           TEXT    NOT NULL,   -- counters belong to a key: a new key starts afresh
    last_counter     INTEGER NOT NULL,
    last_event       INTEGER NOT NULL,
    last_press_event INTEGER NOT NULL DEFAULT 0,
    updated_at       REAL    NOT NULL
);
"""


#: The synchronous setting a receipt's delete commits with, by the outbox's own (see ``remove_events``).
_LAZY = {"FULL": "NORMAL", "EXTRA": "NORMAL"}


class Verdict(StrEnum):
    """What became of a radio uplink."""

    NEW = "new"  # a new event, now in the outbox (or a heartbeat, recorded)
    DUPLICATE = "duplicate"  # a retransmission of an event already taken: acknowledge again
    REPLAYED = "replayed"  # counter not above the last accepted: refuse, do not acknowledge


@dataclass(frozen=True, slots=True)
class RadioAcceptance:
    verdict: Verdict
    #: where the event was stored (NEW with an event only)
    stored: Stored | None = None
    last_press_event: int = 0


@dataclass(frozen=True, slots=True)
class Stored:
    """Where :meth:`Outbox.put` stored an event."""

    seq: int
    #: The seq of the row stored just before this one (0 if none ever was),
    #: or None if the event id was already in the outbox (nothing new stored).
    previous: int | None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    seq: int
    event_id: str
    topic: str
    payload: bytes
    created_at: float


class Outbox:
    """A durable FIFO of events waiting for the dashboard's receipt (a broker's acknowledgement is not enough)."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._synchronous = synchronous.upper()
            self._lazy = False
            self._db.executescript(_SCHEMA)
            check = self._db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
            self._last_seq = int(row[0]) if row else 0
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc
        # One connection shared by the input callbacks and the pump; SQLite
        # serialises writers anyway, and the lock keeps seq order == commit order.
        self._lock = threading.Lock()
        #: Why the last write of an event failed (disk full, I/O error); None once one succeeds.
        self.write_error: str | None = None
        #: Called when ``write_error`` appears or clears (the gateway reports it at once).
        self.on_write_state: Callable[[], None] | None = None

    def _wrote(self, error: str | None) -> None:
        changed = (error is None) != (self.write_error is None)
        self.write_error = error
        if changed and self.on_write_state is not None:
            self.on_write_state()

    def put(self, event_id: str, topic: str, payload: bytes, *, now: float | None = None) -> Stored:
        """Store an event durably (on disk when this returns) and say where.

        Storing the same event id twice keeps the first row (a retry is harmless).
        """
        created = time.time() if now is None else now
        with self._lock:
            try:
                if self._lazy:  # a receipt's delete could not set it back: never store an event lazily
                    self._restore_synchronous()
                stored = self._insert(event_id, topic, payload, created)  # autocommit: durable on return
            except sqlite3.Error as exc:
                self._wrote(str(exc))
                raise OutboxError(f"cannot store event {event_id} in {self.path}: {exc}") from exc
            self._wrote(None)
            if stored.previous is not None:
                self._last_seq = stored.seq
            return stored

    def accept_uplink(
        self,
        node: int,
        key_id: str,
        counter: int,
        event_counter: int,
        *,
        is_press: bool,
        event: tuple[str, str, bytes] | None,
        now: float | None = None,
    ) -> RadioAcceptance:
        """Check a radio uplink's counters and, if new, store its event, in one transaction.

        ``event`` is ``(event_id, topic, payload)``, or None for a frame that
        is not forwarded (a heartbeat). A node has at most one event in flight
        (it sends nothing else until that one is acknowledged), so an event
        counter not above the last one accepted is a retransmission.
        """
        created = time.time() if now is None else now
        with self._lock:
            try:
                if self._lazy:
                    self._restore_synchronous()
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute(
                    "SELECT key_id, last_counter, last_event, last_press_event FROM radio_nodes WHERE node = ?",
                    (node,),
                ).fetchone()
                if row is not None and row[0] != key_id:
                    row = None  # re-provisioned: its counters start afresh
                last_counter, last_event, last_press = row[1:] if row else (0, 0, 0)
                if counter <= last_counter:
                    self._db.execute("ROLLBACK")
                    return RadioAcceptance(Verdict.REPLAYED, last_press_event=last_press)
                verdict, stored = Verdict.DUPLICATE, None
                if event_counter > last_event:
                    verdict, last_event = Verdict.NEW, event_counter
                    if is_press:
                        last_press = event_counter
                    if event is not None:
                        stored = self._insert(*event, created)
                self._db.execute(
                    "INSERT INTO radio_nodes (node, key_id, last_counter, last_event, last_press_event, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(node) DO UPDATE SET key_id = excluded.key_id, "
                    "last_counter = excluded.last_counter, last_event = excluded.last_event, "
                    "last_press_event = excluded.last_press_event, updated_at = excluded.updated_at",
                    (node, key_id, counter, last_event, last_press, created),
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._wrote(str(exc))
                raise OutboxError(f"cannot record radio frame of node {node} in {self.path}: {exc}") from exc
            self._wrote(None)
            if stored is not None and stored.previous is not None:
                self._last_seq = stored.seq
            return RadioAcceptance(verdict, stored, last_press)

    def restore_radio_nodes(self, nodes: list[tuple]) -> None:
        with self._lock:
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO radio_nodes (node, key_id, last_counter, last_event, last_press_event, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                    nodes,
                )
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot restore radio counters in {self.path}: {exc}") from exc

    def last_press_event(self, node: int) -> int:
        with self._lock:
            row = self._db.execute("SELECT last_press_event FROM radio_nodes WHERE node = ?", (node,)).fetchone()
        return int(row[0]) if row else 0

    def _insert(self, event_id: str, topic: str, payload: bytes, created: float) -> Stored:
        cursor = self._db.execute(
            "INSERT INTO outbox (event_id, topic, payload, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(event_id) DO NOTHING",
            (event_id, topic, payload, created),
        )
        if cursor.rowcount == 1:
            seq = int(cursor.lastrowid or 0)
            return Stored(seq, self._last_seq)
        row = self._db.execute("SELECT seq FROM outbox WHERE event_id = ?", (event_id,)).fetchone()
        return Stored(int(row[0]), None)

    def _restore_synchronous(self) -> None:
        """Caller holds _lock: events are committed durably again (retried by the next put if this fails)."""
        self._db.execute(f"PRAGMA synchronous={self._synchronous}")
        self._lazy = False

    def pending(self, after_seq: int, limit: int) -> list[OutboxRow]:
        """Rows with ``seq > after_seq``, oldest first."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT seq, event_id, topic, payload, created_at FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after_seq, limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot read outbox {self.path}: {exc}") from exc
        return [
            OutboxRow(seq, event_id, topic, bytes(payload), created) for seq, event_id, topic, payload, created in rows
        ]

    def remove_events(self, event_ids: Iterable[str]) -> None:
        """Forget events the dashboard has receipted.

        The delete is committed without waiting for the disk: a power cut
        that loses it only brings the event back, to be sent again and
        ignored by the dashboard as the duplicate it is. So a press never
        waits behind a receipt's fsync for the outbox lock, and an SD card
        takes one sync per event, not two. The next event's commit (FULL)
        syncs the WAL with this delete in it, in order.
        """
        batch = [(event_id,) for event_id in event_ids]
        if not batch:
            return
        with self._lock:
            try:
                self._lazy = True
                self._db.execute(f"PRAGMA synchronous={_LAZY.get(self._synchronous, self._synchronous)}")
                try:
                    self._db.execute("BEGIN")
                    self._db.executemany("DELETE FROM outbox WHERE event_id = ?", batch)
                    self._db.execute("COMMIT")
                finally:
                    self._restore_synchronous()
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise OutboxError(f"cannot remove receipted events from {self.path}: {exc}") from exc

    def depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def oldest_created_at(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(created_at) FROM outbox").fetchone()
        return None if row[0] is None else float(row[0])

    @property
    def durability(self) -> tuple[str, int]:
        """This connection's (journal_mode, synchronous), e.g. ("wal", 2) for WAL with FULL."""
        with self._lock:
            journal = self._db.execute("PRAGMA journal_mode").fetchone()[0]
            synchronous = self._db.execute("PRAGMA synchronous").fetchone()[0]
        return str(journal), int(synchronous)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class UnavailableOutbox:
    """Stands in when no outbox can be opened at all: every put fails, so the
    gateway sends each event from memory and reports the trouble."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        self.write_error: str | None = f"no outbox ({reason})"
        self.on_write_state: Callable[[], None] | None = None

    def put(self, event_id: str, topic: str, payload: bytes, *, now: float | None = None) -> Stored:
        raise OutboxError(f"no outbox ({self.reason})")

    def accept_uplink(self, *uplink: object, **details: object) -> RadioAcceptance:
        """Refuses every uplink, whatever it is: see :meth:`Outbox.accept_uplink`."""
        raise OutboxError(f"no outbox ({self.reason}): radio counters cannot be kept")

    def last_press_event(self, node: int) -> int:
        return 0

    def pending(self, after_seq: int, limit: int) -> list[OutboxRow]:
        return []

    def remove_events(self, event_ids: Iterable[str]) -> None:
        pass

    def depth(self) -> int:
        return 0

    def oldest_created_at(self) -> float | None:
        return None

    def close(self) -> None:
        pass


def _is_corrupt(exc: OutboxError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, sqlite3.DatabaseError) and not isinstance(cause, sqlite3.OperationalError)


def _salvage(path: Path) -> tuple[list[OutboxRow], list[tuple]]:
    """Whatever rows of a damaged outbox can still be read: events (oldest first) and radio counters."""
    rows: list[OutboxRow] = []
    nodes: list[tuple] = []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            for seq, event_id, topic, payload, created in db.execute(
                "SELECT seq, event_id, topic, payload, created_at FROM outbox ORDER BY seq"
            ):
                rows.append(OutboxRow(seq, event_id, topic, bytes(payload), created))
            nodes = db.execute(
                "SELECT node, key_id, last_counter, last_event, last_press_event, updated_at FROM radio_nodes"
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        log.error("could read only %d event(s) of the damaged outbox: %s", len(rows), exc)
    return rows, nodes


def open_outbox(path: str | Path) -> Outbox | UnavailableOutbox:
    """Open the outbox, recovering from what a power cut can do to an SD card.

    A damaged file is moved aside (kept for inspection, with its WAL), a fresh
    outbox is started and every row that could still be read is carried over
    in order. If no outbox can be opened at all, the gateway still runs:
    events go out from memory, and health reports it.
    """
    path = Path(path)
    try:
        return Outbox(path)
    except OutboxError as exc:
        if not _is_corrupt(exc):
            log.critical("outbox unavailable, events will be sent from memory only: %s", exc)
            return UnavailableOutbox(path, str(exc))
        damage = exc
    rows, nodes = _salvage(path)
    aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
    for suffix in ("", "-wal", "-shm"):
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.rename(aside.with_name(aside.name + suffix))
    log.critical("outbox %s was damaged (%s); kept as %s, starting a fresh one", path, damage, aside)
    try:
        outbox = Outbox(path)
        for row in rows:
            outbox.put(row.event_id, row.topic, row.payload, now=row.created_at)
        outbox.restore_radio_nodes(nodes)  # else old captures could be replayed once more
    except OutboxError as exc:
        log.critical("no outbox can be opened, events will be sent from memory only: %s", exc)
        return UnavailableOutbox(path, str(exc))
    if rows:
        log.warning("carried %d event(s) over from the damaged outbox", len(rows))
    return outbox
