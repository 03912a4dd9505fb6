"""PostgreSQL connections that the store's code uses as it uses sqlite3's: ``?`` parameters, rows by name and position.

The store's SQL is written once, in the subset both engines run the same way (``ON CONFLICT``,
``RETURNING``, ``coalesce``, explicit casts); this module bridges what remains between the two
drivers rather than the two dialects:

- ``?`` placeholders become psycopg's ``%s`` (and a literal ``%`` is doubled), once per statement text;
- ``BEGIN IMMEDIATE``, SQLite's "one writer at a time", becomes ``BEGIN`` plus a transaction-scoped
  advisory lock of this store's own, so that every read-modify-write the code does under it stays
  as correct with two dashboard processes as with one (the constraints, such as one open alarm per
  button and kind, hold in the database either way);
- rows answer to ``row["name"]`` and ``row[0]`` like ``sqlite3.Row``;
- ``numeric`` (what ``sum`` of a bigint gives) comes back as ``int`` or ``float``, never ``Decimal``;
- a NUL in a text parameter, which PostgreSQL cannot store, becomes U+FFFD.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Loader
from psycopg.rows import tuple_row
from psycopg.types.numeric import IntDumper

#: How long a statement may wait for a lock (the writers' advisory lock among them) before it fails, as
#: SQLite's busy timeout does: a writer stuck behind a dead transaction must fail, not hang its thread.
LOCK_TIMEOUT_MS = 15_000

_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\?|%")


@functools.lru_cache(maxsize=8192)
def translate(sql: str) -> str:
    """``sql`` with sqlite3's ``?`` placeholders as psycopg's ``%s`` (a ``?`` in quoted text or a comment
    left alone) and every literal ``%`` doubled."""

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "?":
            return "%s"
        # psycopg reads % everywhere, quoted text included
        return text.replace("%", "%%")

    return _TOKENS.sub(replace, sql)


class Row(tuple):
    """A result row: by position like a tuple, by column name like ``sqlite3.Row``."""

    __slots__ = ()
    _index: dict[str, int] = {}
    _names: tuple[str, ...] = ()

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._index[key])
            except KeyError:
                raise IndexError(f"no such column: {key}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


@functools.lru_cache(maxsize=1024)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"__slots__": (), "_index": {n: i for i, n in enumerate(names)}, "_names": names})


def _row_factory(cursor: psycopg.Cursor[Any]) -> Any:
    description = cursor.description
    if description is None:
        return tuple
    cls = _row_class(tuple(column.name for column in description))
    return lambda values: tuple.__new__(cls, values)


class _NumberLoader(Loader):
    """``numeric`` as ``int`` when whole, else ``float``: what SQLite's ``sum`` gives."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode("ascii")
        if "." in text or "e" in text or "N" in text:
            return float(text)
        return int(text)


class _BoolDumper(IntDumper):
    """Python's booleans as the 0 and 1 that the store's flag columns hold (as SQLite stores them)."""

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


def _params(params: Sequence[Any]) -> tuple[Any, ...]:
    """Parameters as SQLite takes them, but for a NUL in text, which no PostgreSQL text can hold: it
    becomes U+FFFD, as a decoder marks what it could not read. Text with a NUL comes only from hostile or
    broken input (a search box, a report's description); an identifier, which must match exactly, never
    holds one. (Here rather than in a dumper of our own, which would replace psycopg's compiled one.)"""
    return tuple(
        value.replace("\x00", "\ufffd") if type(value) is str and "\x00" in value else value for value in params
    )


def _in_pipeline(conn: psycopg.Connection[Any]) -> bool:
    return conn.pgconn.pipeline_status != pq.PipelineStatus.OFF


class Cursor:
    """The part of ``sqlite3.Cursor`` the store uses."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    @property
    def row_factory(self) -> Any:
        return self._cursor.row_factory

    @row_factory.setter
    def row_factory(self, factory: Any) -> None:
        """``None`` as with sqlite3: plain tuples (the cheapest rows)."""
        self._cursor.row_factory = tuple_row if factory is None else factory

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        self._cursor.execute(translate(sql), _params(params))
        return self

    def fetchone(self) -> Any:
        return self._rows(self._cursor.fetchone, None)

    def fetchall(self) -> list[Any]:
        return self._rows(self._cursor.fetchall, [])

    def fetchmany(self, size: int = 1) -> list[Any]:
        return self._rows(lambda: self._cursor.fetchmany(size), [])

    def _rows(self, fetch: Any, none: Any) -> Any:
        """The statement's rows, or ``none`` when it returned no rows (an UPDATE without RETURNING), as
        with sqlite3. In a pipeline its result is not here until fetched: the fetch waits for it."""
        if self._cursor.description is not None:
            return fetch()
        if not _in_pipeline(self._cursor.connection):
            return none
        try:
            return fetch()
        except psycopg.ProgrammingError:  # "the last operation didn't produce a result"
            return none

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def description(self) -> Any:
        return self._cursor.description

    def close(self) -> None:
        self._cursor.close()


class _NoRows:
    """What a statement that needed no server returns (a rollback of a transaction its lost connection ended)."""

    rowcount = 0
    description = None

    def fetchone(self) -> None:
        return None

    def fetchall(self) -> list[Any]:
        return []


_NO_ROWS: Any = _NoRows()


def store_name(conn: psycopg.Connection[Any]) -> str:
    """Names the store ``conn`` reaches among others on the same server (a schema per store is allowed):
    advisory locks and notification channels are the server's, so each store's are keyed by it."""
    database, schema = conn.execute("SELECT current_database(), current_schema()").fetchone()
    return f"{database}.{schema}"


def store_key(name: str, purpose: str) -> int:
    """A 64-bit key for ``purpose`` in the store named ``name`` (an advisory lock, a channel)."""
    digest = hashlib.blake2b(f"{name}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Connection:
    """A psycopg connection in autocommit mode, used through the part of ``sqlite3.Connection`` the store uses."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._closed = False
        #: How many :meth:`pipeline` blocks are open: outside them the connection is never in pipeline mode.
        self._pipelines = 0
        self._conn = self._open()
        self.name = store_name(self._conn)
        self.write_lock = self.key("writers")

    def key(self, purpose: str) -> int:
        """This store's key for ``purpose`` (:func:`store_key`)."""
        return store_key(self.name, purpose)

    def _open(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.url, autocommit=True)
        conn.row_factory = _row_factory
        conn.adapters.register_loader("numeric", _NumberLoader)
        conn.adapters.register_dumper(bool, _BoolDumper)
        conn.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")
        return conn

    def _live(self) -> psycopg.Connection[Any]:
        """The server connection, opened again if the last one was lost (a server restart, a network cut):
        what was in flight failed with it and its caller retries, as after SQLite's "database is locked"."""
        if self._conn.broken or (self._conn.closed and not self._closed) or self._stuck_in_pipeline():
            try:
                self._conn.close()
            finally:
                self._conn = self._open()
        return self._conn

    def _lost(self) -> bool:
        """The server connection is gone, and with it any transaction it had open."""
        return self._conn.broken or self._stuck_in_pipeline()

    def _stuck_in_pipeline(self) -> bool:
        """Still in pipeline mode with no block open: a server lost while results were pending leaves libpq
        there ("cannot exit pipeline mode while busy"), not broken, and every later query failed with it
        (an ingest stored nothing until restarted). Such a connection is only good for closing."""
        return self._pipelines == 0 and not self._conn.closed and _in_pipeline(self._conn)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        head = sql.lstrip()[:16].upper()
        if head.startswith("ROLLBACK") and not head.startswith("ROLLBACK TO") and self._lost():
            return _NO_ROWS  # the transaction ended with its connection: the caller's error is the one to see
        conn = self._live()
        if head.startswith("BEGIN IMMEDIATE"):
            # One round trip for both (the simple query protocol; the key is this module's integer).
            conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({int(self.write_lock)})".encode(), prepare=False)
            return Cursor(conn.cursor())
        return Cursor(conn.cursor()).execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> Cursor:
        cursor = self._live().cursor()
        cursor.executemany(translate(sql), [_params(row) for row in rows])
        return Cursor(cursor)

    @property
    def in_pipeline(self) -> bool:
        """Whether statements are being sent without waiting for their results (:meth:`pipeline`)."""
        return _in_pipeline(self._conn)

    def copy_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """``rows`` into ``table`` by COPY: one statement, and the rows streamed in the driver's compiled
        code (500 events: about a fifth of the time of as many INSERTs, even pipelined)."""
        if not rows:
            return
        with self._live().cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(_params(row))

    @contextlib.contextmanager
    def pipeline(self) -> Iterator[Any]:
        """Statements sent without waiting for each one's result until one is fetched (or the block ends):
        a batch's writes cost one round trip to the server instead of one each. An error is raised at the
        next fetch or at the block's end, and ends the caller's transaction as it would have anyway."""
        conn = self._live()
        self._pipelines += 1
        try:
            with conn.pipeline() as pipeline:
                yield pipeline
        finally:
            self._pipelines -= 1

    def executescript(self, script: str) -> None:
        """Statements without parameters, sent as one (PostgreSQL's simple query protocol)."""
        self._live().execute(script.encode(), prepare=False)

    def cursor(self) -> Cursor:
        return Cursor(self._live().cursor())

    @property
    def in_transaction(self) -> bool:
        return self._conn.info.transaction_status != pq.TransactionStatus.IDLE

    def commit(self) -> None:
        if self.in_transaction:
            self._conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction and not self._lost():
            self._conn.execute("ROLLBACK")

    def close(self) -> None:
        self._closed = True
        self._conn.close()

    @property
    def closed(self) -> bool:
        return self._conn.closed

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_url(target: object) -> bool:
    """Whether a configured store names a PostgreSQL server rather than an SQLite file."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))
