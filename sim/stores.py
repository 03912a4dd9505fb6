"""Where a test's or benchmark's dashboard store lives: an SQLite file, or a fresh schema on a PostgreSQL server.

With ``SIAGA_TEST_DATABASE`` unset (``make test``), ``store_at(path)`` is ``path``: an SQLite file. Set
to a PostgreSQL URL (``make test-postgresql``), every path names a schema of its own on that server,
made empty on first use, so that each test still gets a fresh store and the same suite runs on both.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

ENV = "SIAGA_TEST_DATABASE"
#: The server every development and CI machine runs (trust authentication): what tests of several
#: dashboard processes use whichever store the rest of the run is on.
LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/siaga_test"

_made: dict[str, str] = {}
#: Servers whose database this process made sure of.
_ensured: set[str] = set()


def server() -> str | None:
    """The PostgreSQL server the suite runs on, or None for SQLite."""
    return os.environ.get(ENV) or None


def store_at(path: str | Path) -> str:
    """The store for what would be the SQLite file ``path``: that file, or its own PostgreSQL schema."""
    if server() is None or str(path) == ":memory:":
        return str(path)
    return postgresql_store_at(path)


def postgresql_store_at(path: str | Path) -> str:
    """A fresh PostgreSQL schema for ``path`` on this run's server, or on the local one when the run is on SQLite."""
    url = server() or LOCAL_SERVER
    key = str(Path(path).resolve())
    if key not in _made:
        _ensure_database(url)
        schema = "t_" + hashlib.blake2b(key.encode(), digest_size=10).hexdigest()
        _make_schema(url, schema)
        _made[key] = with_schema(url, schema)
    return _made[key]


def _ensure_database(url: str) -> None:
    """Make the database ``url`` names if the server has none of that name (once per process)."""
    if url in _ensured:
        return
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres", query="")), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # another test worker was first
                conn.execute(f'CREATE DATABASE "{name}"')
    _ensured.add(url)


def with_schema(url: str, schema: str) -> str:
    """``url`` with ``schema`` first on its search path (where tables are made and looked for)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _make_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')


def drop_made() -> None:
    """Drop every schema this process made (the end of a test session)."""
    import psycopg

    for made in _made.values():
        query = dict(parse_qsl(urlsplit(made).query))
        schema = query["options"].split("=", 1)[1]
        with psycopg.connect(made.split("?", 1)[0], autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    _made.clear()


def recreate(url: str) -> None:
    """Drop the database ``url`` names (every test schema in it) and make it anew: a run's clean start."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres", query="")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "recreate":
        sys.exit("usage: python -m sim.stores recreate postgresql://...")
    recreate(sys.argv[2])
    print(f"{sys.argv[2]}: made anew")
