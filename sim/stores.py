"""Where a test's or benchmark's dashboard store lives: an SQLite file, or a fresh schema on a PostgreSQL server.

With ``SIAGA_TEST_DATABASE`` unset (``make test``), ``store_at(path)`` is ``path``: an SQLite file. Set
to a PostgreSQL URL (``make test-postgresql``), every path names a schema of its own on that server,
made empty on first use, so that each test still gets a fresh store and the same suite runs on both.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

ENV = "SIAGA_TEST_DATABASE"

_made: dict[str, str] = {}


def server() -> str | None:
    """The PostgreSQL server the suite runs on, or None for SQLite."""
    return os.environ.get(ENV) or None


def store_at(path: str | Path) -> str:
    """The store for what would be the SQLite file ``path``: that file, or its own PostgreSQL schema."""
    url = server()
    if url is None or str(path) == ":memory:":
        return str(path)
    key = str(Path(path).resolve())
    if key not in _made:
        schema = "t_" + hashlib.blake2b(key.encode(), digest_size=10).hexdigest()
        _make_schema(url, schema)
        _made[key] = with_schema(url, schema)
    return _made[key]


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
    url = server()
    if url is None or not _made:
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for made in _made.values():
            schema = dict(parse_qsl(urlsplit(made).query))["options"].split("=", 1)[1]
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    _made.clear()
