"""The store's connections (SQLite file or PostgreSQL server): one per request, one per writer; the schema at start."""

from __future__ import annotations

import math
import secrets
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Generic, TypeVar

from flask import Flask, current_app, g

from firmware_bridge.periodic import Periodic

from . import migrations, pg

#: The last schema version counted by ``PRAGMA user_version``, before the store's changes became
#: Alembic revisions (``dashboard/migrations``): a store made earlier is brought to it by the frozen
#: upgrade code below, then stamped with the first revision.
SCHEMA_VERSION = 4

T = TypeVar("T")

#: What the drivers raise, for code that must tell a store's refusal from a bug of its own.
Error = (sqlite3.Error, pg.psycopg.Error)
IntegrityError = (sqlite3.IntegrityError, pg.psycopg.IntegrityError)

#: Store errors that retrying will not cure: the message written, not the store, is at fault. (A
#: connection lost, a server restarting, a lock timeout: the store's, retried.)
MESSAGE_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    pg.psycopg.IntegrityError,
    pg.psycopg.DataError,
)


def store_failure(exc: BaseException) -> bool:
    """The store itself failed (locked, disk full, I/O, server gone): retry. Anything else is the message's
    fault or a bug."""
    return isinstance(exc, Error) and not isinstance(exc, MESSAGE_ERRORS)


#: A connection to either store: the store's code uses the part of sqlite3's interface both offer.
Connection = sqlite3.Connection | pg.Connection

#: Indexes on columns that later schema versions added: created after the
#: columns exist, since an older database runs schema.sql before it gains them.
_LATE_INDEXES = (
    "CREATE INDEX IF NOT EXISTS events_anomaly ON events(button, received_at) WHERE anomaly IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS rejected_messages_at ON rejected_messages(at)",
)


#: Indexes that change no data (issue 11: costs that grow with the work, not the store). Created
#: on every start, so that a store of this schema version made before them gains them in place;
#: an older dashboard of the same version reads such a store unchanged, so the version stays.
_COST_INDEXES = (
    "CREATE INDEX IF NOT EXISTS alarms_state_kind ON alarms(state, kind)",
    "CREATE INDEX IF NOT EXISTS alarms_kind_resolved ON alarms(kind, state, resolved_at)",
    "CREATE INDEX IF NOT EXISTS alarms_kind_opened ON alarms(kind, opened_at)",
    "CREATE INDEX IF NOT EXISTS registrations_button_kind ON registrations(button, kind)",
    "CREATE INDEX IF NOT EXISTS audit_log_actor ON audit_log(actor, at)",
    # The device view: a page's buttons by gateway, and the gateways offline or without recent health.
    "CREATE INDEX IF NOT EXISTS buttons_gw ON buttons(gw)",
    # (gw last: the problems query, state != online OR stale health, is an OR, so it scans; the index alone)
    "CREATE INDEX IF NOT EXISTS gateways_state_health ON gateways(state, health_at, gw)",
)


#: Where schema.sql's derived data begins (tables and triggers kept for the statistics): run on every start.
_DERIVED_MARK = "-- Derived data (issue 11)."


def _schema_parts() -> tuple[str, str]:
    """schema.sql split in two: the stored data's schema, and the derived data's (run on every start)."""
    text = resources.files("dashboard").joinpath("schema.sql").read_text("utf-8")
    base, mark, derived = text.partition(_DERIVED_MARK)
    if not mark:
        raise RuntimeError(f"schema.sql lost its mark {_DERIVED_MARK!r}")
    return base, mark + derived


def database_file(conn: Connection) -> str:
    """The file (or PostgreSQL database and schema) ``conn`` opened: what per-store memos are keyed by."""
    if isinstance(conn, pg.Connection):
        return conn.url
    return str(conn.execute("PRAGMA database_list").fetchone()[2])


def dialect(conn: Connection) -> str:
    """``sqlite`` or ``postgresql``: for the few statements the two engines spell differently."""
    return "postgresql" if isinstance(conn, pg.Connection) else "sqlite"


def spelled(conn: Connection, *, sqlite: str, postgresql: str) -> str:
    """The statement as ``conn``'s engine spells it, for the few the two spell differently."""
    return postgresql if isinstance(conn, pg.Connection) else sqlite


def connect(path: str | Path) -> Connection:
    """Open the store: a PostgreSQL URL, else an SQLite file. For SQLite, WAL lets the board read while
    ingest writes; FULL sync makes a commit durable before the broker is told the event was taken (a
    PostgreSQL server's commits are durable by its own configuration: keep ``synchronous_commit`` on)."""
    if pg.is_url(path):
        return pg.Connection(str(path))
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=15)
    conn.row_factory = sqlite3.Row
    _add_missing_functions(conn)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _add_missing_functions(conn: sqlite3.Connection) -> None:
    """PostgreSQL's ``floor``, which the store's SQL uses, where SQLite was built without its math functions."""
    try:
        conn.execute("SELECT floor(1.5)")
    except sqlite3.OperationalError:
        conn.create_function("floor", 1, lambda x: None if x is None else float(math.floor(x)), deterministic=True)


def _revision(conn: Connection) -> str | None:
    """The Alembic revision the store is at, or None (a new store, or one older than the revisions)."""
    try:
        with savepoint(conn, "siaga_revision"):
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except Error:
        return None
    return str(row[0]) if row else None


def init_schema(conn: Connection) -> None:
    """Bring the store to this dashboard's schema (idempotent; cheap when it is there already)."""
    revision = _revision(conn)
    if revision != migrations.HEAD:
        if revision is None and dialect(conn) == "sqlite" and conn.execute("PRAGMA user_version").fetchone()[0]:
            _upgrade_to_schema_4(conn)
            migrations.stamp(database_file(conn), migrations.BASELINE)
        migrations.upgrade(database_file(conn))
    if dialect(conn) == "sqlite":
        for statement in _COST_INDEXES:
            conn.execute(statement)
        _derive(conn, _schema_parts()[1])
    else:
        _derive_postgresql(conn, _schema_parts()[1])


def _upgrade_to_schema_4(conn: sqlite3.Connection) -> None:
    """The frozen upgrade of a store made before the revisions (schema 1 to 3, or 4 itself) to schema 4."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"database schema {version} is newer than this dashboard ({SCHEMA_VERSION})")
    base, _derived = _schema_parts()
    if version < SCHEMA_VERSION:
        conn.executescript(base)
        _add_columns(
            conn,
            "alarms",
            {
                "escalation": "INTEGER NOT NULL DEFAULT 0",
                "escalated_at": "REAL",
                "dispatched_at": "REAL",
                "dispatched_by": "TEXT",
                "dispatch_unit": "TEXT",
                "test": "INTEGER NOT NULL DEFAULT 0",
            },
        )
        _add_columns(conn, "events", {"suppressed": "TEXT", "anomaly": "TEXT"})
        _add_columns(conn, "alarms", {"anomaly": "TEXT"})
        _add_columns(
            conn,
            "rejected_messages",
            {
                "gw": "TEXT",
                "button": "TEXT",
                "kind": "TEXT",
                "press": "INTEGER NOT NULL DEFAULT 0",
                "alarm_id": "INTEGER",
            },
        )
        # Schema 4: one open alarm per button *and kind* (see schema.sql).
        conn.execute("DROP INDEX IF EXISTS alarms_open_button")
        # Each known button was registered by the gateway that last named it.
        conn.execute(
            "INSERT OR IGNORE INTO registrations (gw, button, kind, updated_at) "
            "SELECT gw, id, kind, updated_at FROM buttons"
        )
        for statement in _LATE_INDEXES:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _derived_objects(conn: sqlite3.Connection) -> set[tuple[str, str, str]]:
    """The statistics' tables, indexes and triggers as the store holds them: (type, name, sql)."""
    rows = conn.execute(
        "SELECT type, name, coalesce(sql, '') FROM sqlite_master WHERE name LIKE 'stats\\_%' ESCAPE '\\' "
        "OR name LIKE 'sqlite\\_autoindex\\_stats\\_%' ESCAPE '\\'"
    )
    return {(kind, name, sql) for kind, name, sql in rows}


def _derive(conn: sqlite3.Connection, derived: str) -> None:
    """schema.sql's derived part, made anew unless the store holds exactly it (then it is kept, summaries
    and all): a bookkeeping table dropped or altered while a dashboard ran, or an earlier design's
    tables and triggers, would otherwise be trusted, or fail every write of an alarm."""
    expected = sqlite3.connect(":memory:")
    try:
        expected.executescript(derived)
        wanted = _derived_objects(expected)
    finally:
        expected.close()
    found = _derived_objects(conn)
    if found != wanted:
        for kind, name, _sql in sorted(found, key=lambda o: o[0] != "trigger"):  # triggers first
            if kind in ("table", "trigger", "view", "index") and not name.startswith("sqlite_"):
                conn.execute(f'DROP {kind.upper()} IF EXISTS "{name}"')
        conn.executescript(derived)
    _new_generation(conn)


def _derive_postgresql(conn: pg.Connection, derived: str) -> None:
    """schema.sql's derived part on PostgreSQL: made where missing (its tables are the server's to
    guard: nobody drops them under a running dashboard as a file's can be edited)."""
    for statement in migrations.statements(migrations.for_dialect(derived, "postgresql")):
        conn.execute(statement)
    _new_generation(conn)


def _new_generation(conn: Connection) -> None:
    """A generation for the summaries to be computed at (a store made anew, or one whose bookkeeping failed)."""
    conn.execute(
        "INSERT INTO stats_alarm_changes (day, changes) VALUES (-1, ?) ON CONFLICT DO NOTHING",
        (secrets.randbits(62),),
    )


def _add_columns(conn: sqlite3.Connection, table: str, columns: dict[str, str]) -> None:
    """Columns added by a later schema version, on a database made by an earlier one."""
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    for name, declaration in columns.items():
        if name not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")


#: Values of one ``IN (...)`` list at most: SQLite allows 32,766 parameters, and a query this long plans fast.
IN_LIST_MAX = 500


def _with_array(query: str) -> str:
    """``query``'s ``IN`` list as one array parameter (PostgreSQL); the template read as on SQLite."""
    return query.replace("IN ({})", "= ANY({})").format("?")


def rows_in(conn: Connection, query: str, values: Iterable[Any], *before: Any) -> list[Any]:
    """``query`` (with one ``{}`` for the marks of an ``IN`` list) for ``values``, a few hundred at a time,
    after the parameters ``before``: a batch's lookup in one query instead of one per value."""
    values = list(values)
    if isinstance(conn, pg.Connection):
        # One array parameter: the query's text stays the same whatever the count, so the driver parses
        # it once (a list of 500 marks took it 5 ms to parse, each time) and the server plans it once.
        return conn.execute(_with_array(query), [*before, values]).fetchall()
    rows: list[Any] = []
    for start in range(0, len(values), IN_LIST_MAX):
        chunk = values[start : start + IN_LIST_MAX]
        rows += conn.execute(query.format(",".join("?" * len(chunk))), [*before, *chunk]).fetchall()
    return rows


@dataclass(frozen=True)
class InQuery(Generic[T]):
    """A lookup over an ``IN`` list (``sql`` as for :func:`rows_in`) and how its rows are read: several
    are sent together by :func:`read_all`."""

    sql: str
    values: Collection[Any]
    read: Callable[[list[Any]], T]


def read_all(conn: Connection, *queries: InQuery[Any]) -> list[Any]:
    """What each of ``queries`` reads, in order. On PostgreSQL they go to the server together (a pipeline:
    one round trip, not one each, for the lookups before a press is stored); on SQLite one by one."""
    if not isinstance(conn, pg.Connection):
        return [query.read(rows_in(conn, query.sql, query.values)) for query in queries]
    with conn.pipeline():
        cursors = [conn.execute(_with_array(query.sql), [list(query.values)]) for query in queries]
    return [query.read(cursor.fetchall()) for query, cursor in zip(queries, cursors, strict=True)]


@contextmanager
def savepoint(conn: Connection, name: str) -> Iterator[Connection]:
    """Statements that may fail without failing the transaction around them (PostgreSQL aborts a whole
    transaction at its first error; SQLite only the statement): released, or rolled back to on error."""
    if not conn.in_transaction:
        yield conn
        return
    conn.execute(f"SAVEPOINT {name}")
    # In a pipeline an error is raised when results are next awaited, maybe after the block: a nested
    # pipeline block awaits them at its end, so that the block's error is raised, and rolled back, here.
    awaited = conn.pipeline() if isinstance(conn, pg.Connection) and conn.in_pipeline else nullcontext()
    try:
        with awaited:
            yield conn
    except BaseException:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")


#: From this many rows COPY beats INSERTs sent together; below, its extra round trip (the server's
#: go-ahead before the rows) costs a single press more than it saves.
COPY_FROM_ROWS = 20


def insert_rows(conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """New rows of ``table`` at once: many by COPY on PostgreSQL, else one INSERT run for each. ``table`` and
    ``columns`` are the caller's code, never input. No row may exist already (COPY has no ON CONFLICT)."""
    if isinstance(conn, pg.Connection) and len(rows) >= COPY_FROM_ROWS:
        conn.copy_rows(table, columns, rows)
        return
    marks = ", ".join("?" * len(columns))
    conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)  # noqa: S608


@contextmanager
def pipelined(conn: Connection) -> Iterator[Connection]:
    """Writes whose results nobody reads sent one after another without waiting for each (PostgreSQL's
    pipeline mode; SQLite has no server to wait for): a reply is awaited only when a row is fetched."""
    if isinstance(conn, pg.Connection):
        with conn.pipeline():
            yield conn
    else:
        yield conn


@contextmanager
def read_snapshot(conn: Connection) -> Iterator[Connection]:
    """Reads that must see one state of the store (WAL: a deferred transaction's snapshot; PostgreSQL:
    a repeatable-read one), unless the caller's transaction already gives them one."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN" if dialect(conn) == "sqlite" else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


@contextmanager
def transaction(conn: Connection, *, writers_lock: bool = True) -> Iterator[Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception: one writer at a time, on
    PostgreSQL too (``dashboard/pg.py``). ``writers_lock=False``: writes that need not wait for the
    store's other writers on PostgreSQL (rows of their own, such as rate-limit counts); SQLite's
    writes take its one lock whatever is asked."""
    conn.execute("BEGIN IMMEDIATE" if writers_lock or dialect(conn) == "sqlite" else "BEGIN")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


_held = threading.local()


def kept(target: str) -> Connection:
    """A connection to ``target`` for this thread's next piece of work: on PostgreSQL the one this thread
    kept from its last (a server connection costs milliseconds to open, an SQLite file's microseconds, so
    SQLite's is opened anew). Give it back with :func:`give_back`."""
    if not pg.is_url(target):
        return connect(target)
    held = getattr(_held, "conn", None)
    if held is not None and held.url == target and not held.closed:
        return held
    if held is not None:
        held.close()  # a thread serves one store; a test's next store replaces its last
    _held.conn = connect(target)
    return _held.conn


def give_back(conn: Connection) -> None:
    """The end of a piece of work on a :func:`kept` connection: closed, or on PostgreSQL kept for the
    thread's next, with any transaction left open rolled back."""
    if isinstance(conn, pg.Connection) and conn is getattr(_held, "conn", None):
        try:
            conn.rollback()
        except Error:
            conn.close()
        return
    conn.close()


def get_db() -> Connection:
    """The request's connection, taken on first use."""
    if "db" not in g:
        g.db = kept(current_app.config["DATABASE"])
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        give_back(db)


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
    conn = connect(app.config["DATABASE"])
    try:
        init_schema(conn)
    finally:
        conn.close()


class PeriodicCheck(Periodic):
    """A periodic job over the store, with its own connection: ``check(conn)`` every interval."""

    def __init__(self, name: str, interval: float, database: str) -> None:
        super().__init__(name, interval)
        self._database = database
        self._conn: Connection | None = None
        #: Whether this process may run the check now (:class:`dashboard.peers.Leadership`); None: always.
        self.gate: Callable[[], bool] | None = None

    def check(self, conn: Connection) -> object:
        raise NotImplementedError

    def setup(self) -> None:
        self._conn = connect(self._database)

    def turn(self) -> None:
        assert self._conn is not None
        if self.gate is not None and not self.gate():
            return
        self.check(self._conn)

    def teardown(self) -> None:
        if self._conn is not None:
            self._conn.close()
