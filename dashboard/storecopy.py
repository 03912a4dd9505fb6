"""Copy an SQLite store's rows into a new PostgreSQL store: a regency moving to PostgreSQL keeps its history.

``siaga-dashboard copy-store FILE`` copies every stored table of the SQLite file ``FILE`` into the store
the configuration names, which must be PostgreSQL and hold no rows yet. The copy is one transaction: it
is all there or none of it is. Identity keys continue after the highest copied one, and the statistics'
summaries, which are derived data, are computed anew from the copied alarms.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from firmware_bridge.errors import SiagaError

from . import migrations, pg
from .alarms import store
from .db import connect, init_schema, insert_rows, transaction

#: Rows read from the SQLite file and written by one COPY at a time.
CHUNK_ROWS = 5_000
#: Tables whose rows are derived from the others (schema.sql's derived part), rebuilt rather than copied.
DERIVED_PREFIX = "stats_"


class CopyRefused(SiagaError, ValueError):
    """The copy would lose or mix data: it was not started."""


@dataclass
class CopyReport:
    """Rows copied per table, in the order copied."""

    rows: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [f"{table}: {count} row(s)" for table, count in self.rows.items()]


def copy_store(source: str, target: str) -> CopyReport:
    """Copy the SQLite store ``source`` (a file at this version's schema) into the empty PostgreSQL store
    ``target`` (made or brought to this version's schema first)."""
    if not pg.is_url(target):
        raise CopyRefused(f"the target must be a PostgreSQL store (got {target!r})")
    if pg.is_url(source):
        raise CopyRefused(f"the source must be an SQLite file (got {source!r})")
    origin = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        revision = _revision_of(origin)
        if revision != migrations.HEAD:
            raise CopyRefused(
                f"{source} is at schema revision {revision!r}, this version's is {migrations.HEAD!r}: "
                "run `siaga-dashboard migrate` on it first (with a configuration naming the file)"
            )
        conn = connect(target)
        try:
            init_schema(conn)
            return _copy(origin, conn)
        finally:
            conn.close()
    finally:
        origin.close()


def _revision_of(origin: sqlite3.Connection) -> str | None:
    try:
        row = origin.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise CopyRefused(f"not a Siaga store at any revision ({exc})") from None
    return None if row is None else str(row[0])


def _copy(origin: sqlite3.Connection, conn: pg.Connection) -> CopyReport:
    tables = _stored_tables(conn)
    report = CopyReport()
    with transaction(conn):
        # Table names from the server's catalogue, never from input.
        filled = [table for table in tables if conn.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone()]  # noqa: S608
        if filled:
            raise CopyRefused(f"the target store holds rows already (in {', '.join(filled)}): copy into a new one")
        for table in tables:
            report.rows[table] = _copy_table(origin, conn, table)
        _continue_identities(conn, tables)
        # The summaries are derived from the alarms: computed anew, at a new generation.
        conn.execute("DELETE FROM stats_alarm_changes")
        store.start_stats_generation(conn)
    return report


def _stored_tables(conn: pg.Connection) -> list[str]:
    """The target's tables of stored data, parents before the tables whose rows name them."""
    names = [
        row[0]
        for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE' ORDER BY table_name"
        ).fetchall()
        if row[0] != "alembic_version" and not row[0].startswith(DERIVED_PREFIX)
    ]
    parents: dict[str, set[str]] = {name: set() for name in names}
    for child, parent in conn.execute(
        "SELECT tc.table_name, ccu.table_name FROM information_schema.table_constraints tc "
        "JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = tc.constraint_name "
        "AND ccu.table_schema = tc.table_schema "
        "WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema()"
    ).fetchall():
        if child in parents and parent in parents and parent != child:
            parents[child].add(parent)
    ordered: list[str] = []
    while parents:
        ready = sorted(name for name, needs in parents.items() if needs <= set(ordered))
        if not ready:  # a cycle: the schema has none; copy the rest in name order rather than stop
            ready = sorted(parents)
        ordered += ready
        for name in ready:
            del parents[name]
    return ordered


def _copy_table(origin: sqlite3.Connection, conn: pg.Connection, table: str) -> int:
    wanted = [row[0] for row in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = ? ORDER BY ordinal_position", (table,)
    ).fetchall()]  # fmt: skip
    present = {row[1] for row in origin.execute(f'PRAGMA table_info("{table}")')}
    if not present:
        return 0  # a table the file never had (none at the same revision): nothing to copy
    columns = [name for name in wanted if name in present]
    quoted = ", ".join(f'"{name}"' for name in columns)
    cursor = origin.execute(f'SELECT {quoted} FROM "{table}"')  # noqa: S608 - names from the schemas
    copied = 0
    while rows := cursor.fetchmany(CHUNK_ROWS):
        insert_rows(conn, table, [f'"{name}"' for name in columns], rows)
        copied += len(rows)
    return copied


def _continue_identities(conn: pg.Connection, tables: list[str]) -> None:
    """Each identity key's next value after the highest copied (COPY writes the keys it is given)."""
    for table, column in conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND is_identity = 'YES'"
    ).fetchall():
        if table in tables:
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', '{column}'), "  # noqa: S608
                f'COALESCE((SELECT MAX("{column}") FROM "{table}"), 0) + 1, false)'
            )
