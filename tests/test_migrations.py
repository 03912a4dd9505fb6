"""The store's schema as Alembic revisions: HEAD names the newest, every store reaches it, and a store
made before the revisions is stamped and upgraded with its rows kept."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from dashboard import db, migrations
from dashboard.accounts.auth import authenticate, create_user
from dashboard.accounts.ratelimit import RateLimiter
from sim.stores import postgresql_store_at

SCRIPTS = Path(migrations.__file__).resolve().parent


def revision_of(conn: db.Connection) -> str:
    return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])


@pytest.fixture(params=["sqlite", "postgresql"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store nobody made yet, on each engine (PostgreSQL: the run's server, else the local one)."""
    if request.param == "sqlite":
        yield str(tmp_path / "new.sqlite")
    else:
        yield postgresql_store_at(tmp_path / "new.sqlite")


def test_head_names_the_newest_revision() -> None:
    scripts = ScriptDirectory(str(SCRIPTS))
    assert scripts.get_heads() == [migrations.HEAD]  # one line of revisions, and HEAD is its end
    assert migrations.head() == migrations.HEAD
    # Every revision follows the one before it, from the baseline.
    chain = [script.revision for script in scripts.walk_revisions()]
    assert chain[-1] == migrations.BASELINE and chain[0] == migrations.HEAD


def test_a_new_store_reaches_head(new_store: str) -> None:
    conn = db.connect(new_store)
    try:
        db.init_schema(conn)
        assert revision_of(conn) == migrations.HEAD
        assert conn.execute("SELECT count(*) FROM rate_limit_events").fetchone()[0] == 0
        db.init_schema(conn)  # a second start changes nothing
        assert revision_of(conn) == migrations.HEAD
    finally:
        conn.close()


def test_a_store_at_the_baseline_is_upgraded_with_its_rows_kept(new_store: str) -> None:
    """A store the previous dashboard made (revision 0001): the next start brings it to HEAD."""
    migrations.upgrade(new_store, migrations.BASELINE)
    conn = db.connect(new_store)
    try:
        assert revision_of(conn) == migrations.BASELINE
        create_user(conn, "operator", "operator-password-1", "fire_operator")
        db.init_schema(conn)
        assert revision_of(conn) == migrations.HEAD
        assert authenticate(conn, "operator", "operator-password-1") is not None
        limiter = RateLimiter("test.after_upgrade", 1, 60.0, connection=lambda: conn)
        assert limiter.allow("10.0.0.1", now=1000.0) == (True, 0.0)
        assert limiter.allow("10.0.0.1", now=1001.0) == (False, 59.0)
    finally:
        conn.close()


def test_an_sqlite_store_of_schema_4_before_the_revisions_is_stamped_and_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "schema4.sqlite"
    old = sqlite3.connect(path, isolation_level=None)
    old.row_factory = sqlite3.Row
    db._upgrade_to_schema_4(old)  # what a dashboard before the revisions made of an empty file
    assert old.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
    create_user(old, "operator", "operator-password-1", "fire_operator")
    old.execute(
        "INSERT INTO sessions (id, user_id, created_at) SELECT 'a-session', id, 1.0 FROM users WHERE username = ?",
        ("operator",),
    )
    old.close()

    conn = db.connect(str(path))
    try:
        db.init_schema(conn)
        assert revision_of(conn) == migrations.HEAD
        assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION  # older readers still read it
        user = authenticate(conn, "operator", "operator-password-1")
        assert user is not None and user["role"] == "fire_operator"
        assert conn.execute("SELECT user_id FROM sessions WHERE id = 'a-session'").fetchone()[0] == user["id"]
        assert conn.execute("SELECT count(*) FROM rate_limit_events").fetchone()[0] == 0
    finally:
        conn.close()
