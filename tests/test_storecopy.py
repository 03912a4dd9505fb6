"""An SQLite store's history copied into a new PostgreSQL store (``siaga-dashboard copy-store``): every row,
keys that go on after the copied ones, alarms read back the same, and a copy that would mix data refused."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from dashboard import db
from dashboard.accounts import audit
from dashboard.accounts.auth import authenticate, create_user, start_session
from dashboard.alarms import store
from dashboard.alarms.lifecycle import Action
from dashboard.cli import main
from dashboard.storecopy import CopyRefused, copy_store
from firmware_bridge.payloads import Kind
from sim.stores import postgresql_store_at

from .test_ingest import make_event


def _history(path: Path) -> str:
    """An SQLite store with what a regency's months leave: accounts, sessions, alarms of both desks, actions."""
    conn = db.connect(str(path))
    db.init_schema(conn)
    create_user(conn, "komandan", "a-long-password-1", "fire_operator")
    create_user(conn, "pendamping", "a-long-password-2", "sapa_desk")
    start_session(conn, 1)
    presses = [make_event(button=f"fire-{n % 3}") for n in range(7)] + [make_event(button="sapa-1", kind="sapa")]
    with db.transaction(conn):
        outcome = store.store_events(conn, [(event, 1_700_000_000.0 + n) for n, event in enumerate(presses)])
    first = min(outcome.alarms)
    store.act_on_alarm(conn, first, Action.ACKNOWLEDGED, actor="komandan", kinds=[Kind.FIRE], now=time.time())
    audit.sapa_read(conn, "stream", time.time())
    conn.close()
    return str(path)


def _counts(conn: db.Connection, tables: list[str]) -> dict[str, int]:
    return {table: conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0] for table in tables}  # noqa: S608


def test_every_row_is_copied_and_the_store_goes_on_from_them(tmp_path: Path) -> None:
    source = _history(tmp_path / "old.sqlite")
    target = postgresql_store_at(tmp_path / "new")
    report = copy_store(source, target)

    old, new = db.connect(source), db.connect(target)
    try:
        assert {"users", "sessions", "alarms", "events", "audit_log"} <= set(report.rows)
        assert report.rows["events"] == 8 and report.rows["alarms"] == 4 and report.rows["users"] == 2
        assert _counts(new, list(report.rows)) == _counts(old, list(report.rows)) == report.rows
        ids = sorted(row[0] for row in old.execute("SELECT id FROM alarms").fetchall())
        by_id = lambda alarms: sorted(alarms, key=lambda alarm: alarm["id"])  # noqa: E731
        assert by_id(store.get_alarms(new, ids)) == by_id(store.get_alarms(old, ids))
        assert authenticate(new, "komandan", "a-long-password-1") is not None
        # Keys go on after the copied ones, and the alarm rules hold on the copied rows.
        create_user(new, "operator-baru", "a-long-password-3", "fire_operator")
        audit.sapa_read(new, "stream", time.time())
        press = make_event(button="fire-0")
        with db.transaction(new):
            outcome = store.store_events(new, [(press, time.time())])
        (alarm,) = store.get_alarms(new, outcome.alarms)
        assert alarm["press_count"] == 4 and outcome.alarms[alarm["id"]] is Action.PRESSED
        assert store.stats_trusted(new)
    finally:
        old.close()
        new.close()

    with pytest.raises(CopyRefused, match="holds rows already"):
        copy_store(source, target)


def test_a_store_not_at_this_versions_schema_or_not_a_store_is_refused(tmp_path: Path) -> None:
    target = postgresql_store_at(tmp_path / "new")
    foreign = tmp_path / "foreign.sqlite"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(CopyRefused, match="not a Siaga store"):
        copy_store(str(foreign), target)
    behind = _history(tmp_path / "behind.sqlite")
    with sqlite3.connect(behind) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    with pytest.raises(CopyRefused, match="run `siaga-dashboard migrate`"):
        copy_store(behind, target)
    with pytest.raises(CopyRefused, match="must be a PostgreSQL store"):
        copy_store(behind, str(tmp_path / "other.sqlite"))


def test_the_command_copies_into_the_configured_store_and_says_what(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _history(tmp_path / "old.sqlite")
    target = postgresql_store_at(tmp_path / "new")
    config = tmp_path / "dashboard.toml"
    config.write_text(
        f'[dashboard]\ndata_dir = "{tmp_path}"\ndatabase = "{target}"\n'
        f'[reports]\nphotos_dir = "{tmp_path / "photos"}"\n[mqtt]\nhost = "127.0.0.1"\n',
        "utf-8",
    )
    assert main(["--config", str(config), "copy-store", source]) == 0
    said = capsys.readouterr().out
    assert "events: 8 row(s)" in said and "copied" in said
    assert main(["--config", str(config), "copy-store", source]) == 1
    assert "holds rows already" in capsys.readouterr().err
