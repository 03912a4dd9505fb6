"""Costs that grow with the work, not the store (issue 11): indexes used, pages bounded, cursors that work.

Size-independent checks: SQLite's query plan names the index each hot query
needs (a full scan would only show as time at a size no test can afford),
and a page of the audit log holds at most a page of rows with a cursor that
walks the whole log once.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.seed import seed
from dashboard.accounts import audit
from dashboard.alarms import escalation, stats
from dashboard.alarms import store as alarm_store
from dashboard.db import connect, init_schema
from dashboard.devices import registry
from dashboard.devices.supervision import (
    Audience,
    SupervisionSettings,
    Supervisor,
    anomaly_troubles,
    conflict_troubles,
)
from dashboard.devices.view import device_overview
from dashboard.ingest.hub import Hub
from sim.servers import DashboardServer
from sim.stores import store_at

from .conftest import ADMIN, signed_in

NOW = 1_790_000_000.0


@pytest.fixture
def seeded(tmp_path: Path) -> sqlite3.Connection:
    conn = connect(store_at(tmp_path / "dashboard.db"))
    init_schema(conn)
    seed(conn, gateways=5, buttons_per_gateway=20, events=3_000, now=NOW)
    return conn


def plans(conn: sqlite3.Connection, work: Callable[[], object]) -> list[str]:
    """The query plan of every statement ``work`` runs (as SQLite would run it, values bound)."""
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        work()
    finally:
        conn.set_trace_callback(None)
    found = []
    for statement in statements:
        if statement.lstrip().upper().startswith("SELECT") or statement.lstrip().upper().startswith("WITH"):
            rows = conn.execute("EXPLAIN QUERY PLAN " + statement).fetchall()
            found.append(" / ".join(row[3] for row in rows))
    return found


def full_scans(plan: str, table: str) -> bool:
    """Whether ``plan`` reads every row of ``table`` (not through an index)."""
    return re.search(rf"\bSCAN {table}\b(?! USING)", plan) is not None


@pytest.mark.sqlite_only
def test_the_escalators_check_reads_only_unacknowledged_alarms_through_an_index(seeded: sqlite3.Connection) -> None:
    def check() -> object:
        alarm_store.expired_test_alarms(seeded, opened_before=NOW)
        return escalation.any_due(seeded, escalation.EscalationSettings(), NOW)

    found = plans(seeded, check)
    assert found and not any(full_scans(plan, "alarms") for plan in found), found


@pytest.mark.sqlite_only
def test_the_boards_recently_closed_alarms_are_found_by_when_they_were_resolved(seeded: sqlite3.Connection) -> None:
    found = plans(seeded, lambda: alarm_store.recently_closed(seeded, kinds={"fire", "sapa"}, since=NOW - 3600))
    assert len(found) == 1 and "alarms_kind_resolved" in found[0] and "resolved_at>?" in found[0], found


@pytest.mark.sqlite_only
def test_a_periods_statistics_read_the_alarms_opened_in_it_through_an_index(seeded: sqlite3.Connection) -> None:
    found = plans(seeded, lambda: stats.load(seeded, {"fire", "sapa"}, NOW - 30 * 86400, NOW))
    statistics_query = [plan for plan in found if "alarms" in plan]
    assert statistics_query and "alarms_kind_opened" in statistics_query[0], found
    assert "opened_at>? AND opened_at<?" in statistics_query[0], "only the period's alarms are read"


@pytest.mark.sqlite_only
def test_conflicting_registrations_are_found_from_the_index_alone(seeded: sqlite3.Connection) -> None:
    found = plans(seeded, lambda: conflict_troubles(seeded, NOW))
    assert any("COVERING INDEX registrations_button_kind" in plan for plan in found), found


@pytest.mark.sqlite_only
def test_the_supervisor_reads_a_gateways_health_again_only_when_a_new_one_arrived(
    seeded: sqlite3.Connection, tmp_path: Path
) -> None:
    supervisor = Supervisor(store_at(tmp_path / "dashboard.db"), Hub(), SupervisionSettings())
    supervisor.check(seeded, NOW + 10)
    statements: list[str] = []
    seeded.set_trace_callback(statements.append)
    supervisor.check(seeded, NOW + 15)
    seeded.set_trace_callback(None)
    assert not any("health FROM gateways WHERE" in s for s in statements), "no health was read again"
    seeded.execute("UPDATE gateways SET health_at = ? WHERE gw = 'gw-0000'", (NOW + 16,))
    seeded.set_trace_callback(statements.append)
    supervisor.check(seeded, NOW + 20)
    seeded.set_trace_callback(None)
    assert any("health FROM gateways WHERE gw IN ('gw-0000')" in s for s in statements), statements


def test_the_gateway_list_reads_only_the_outbox_depth_of_each_health_and_bounds_it(
    seeded: sqlite3.Connection,
) -> None:
    seeded.execute("UPDATE gateways SET health = '{\"outbox\": {\"depth\": 7}}' WHERE gw = 'gw-0000'")
    seeded.execute("UPDATE gateways SET health = '{\"outbox\": {\"depth\": true}}' WHERE gw = 'gw-0001'")
    seeded.execute("UPDATE gateways SET health = '{\"outbox\": {\"depth\": -3}}' WHERE gw = 'gw-0002'")
    seeded.execute("UPDATE gateways SET health = 'not json' WHERE gw = 'gw-0003'")
    depths = {view["gw"]: view["outbox_depth"] for view in registry.list_gateways(seeded)}
    assert depths == {"gw-0000": 7, "gw-0001": None, "gw-0002": None, "gw-0003": None, "gw-0004": 0}
    assert registry.get_gateway(seeded, "gw-0000")["outbox_depth"] == 7  # type: ignore[index]


def test_a_store_made_before_the_indexes_gains_them_in_place(tmp_path: Path) -> None:
    conn = connect(tmp_path / "old.db")
    init_schema(conn)
    added = ("alarms_state_kind", "alarms_kind_resolved", "alarms_kind_opened", "audit_log_actor", "buttons_gw",
             "gateways_state_health")  # fmt: skip
    for name in added:
        conn.execute(f"DROP INDEX {name}")
    init_schema(conn)
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert set(added) <= names


@pytest.mark.sqlite_only
def test_a_device_page_reads_its_gateways_buttons_and_the_problem_gateways_from_indexes(
    seeded: sqlite3.Connection,
) -> None:
    technician = Audience(frozenset({"fire", "sapa"}), frozenset({"fire"}))
    for query in ("", "gw-0002"):
        found = plans(seeded, lambda q=query: device_overview(seeded, technician, NOW, query=q, per_page=2))
        assert not any(full_scans(plan, "buttons") or full_scans(plan, "gateways") for plan in found), found
        assert any("SEARCH buttons USING INDEX buttons_gw (gw=?)" in plan for plan in found), found
        assert any("COVERING INDEX gateways_state_health" in plan for plan in found), found


# -- the audit log, a page at a time --------------------------------------------------------------


@pytest.mark.sqlite_only
def test_the_audit_log_is_read_newest_first_from_the_index_without_sorting(seeded: sqlite3.Connection) -> None:
    for filters in ({}, {"actor": "admin"}, {"since": NOW - 86400, "until": NOW}):
        found = plans(seeded, lambda f=filters: audit.page(seeded, kinds={"fire"}, **f))
        assert len(found) == 1 and "TEMP B-TREE" not in found[0] and not full_scans(found[0], "audit_log"), found


def _walk(conn: sqlite3.Connection, size: int, **filters: object) -> tuple[list[list[dict[str, object]]], int]:
    pages, cursor = [], None
    while True:
        page = audit.page(conn, kinds={"fire"}, before=cursor, size=size, **filters)  # type: ignore[arg-type]
        pages.append(page.rows)
        if page.next is None:
            return pages, len(pages)
        assert str(page.next).count("~") == 1
        cursor = page.next


def test_audit_pages_hold_at_most_a_page_and_walk_the_whole_log_once_even_across_equal_times(
    seeded: sqlite3.Connection,
) -> None:
    same = [(NOW, "dina", "admin", "user.created", f"user:u{n}", None, None, None, None) for n in range(7)]
    seeded.executemany(
        "INSERT INTO audit_log (at, actor, role, action, subject, kind, before, after, ip) VALUES (?,?,?,?,?,?,?,?,?)",
        same,
    )
    everything = audit.entries(seeded, kinds={"fire"}, limit=10**9)
    pages, count = _walk(seeded, size=5)
    assert all(len(rows) <= 5 for rows in pages) and count > 2
    assert [row for rows in pages for row in rows] == everything
    only_dina, _ = _walk(seeded, size=3, actor="dina")
    assert [row["subject"] for rows in only_dina for row in rows] == [f"user:u{n}" for n in reversed(range(7))]


def test_the_audit_cursor_names_no_row_id_and_a_broken_one_is_the_first_page(seeded: sqlite3.Connection) -> None:
    first = audit.page(seeded, kinds={"fire"}, size=10)
    assert first.next is not None
    at, shown = first.next.split("~")
    # The last row's time (as stored), and how many rows of that time were shown: one.
    assert seeded.execute("SELECT COUNT(*) FROM audit_log WHERE at = ?", (float(at),)).fetchone()[0] == 1
    assert int(shown) == 1
    assert audit.page(seeded, kinds={"fire"}, before="1~x", size=10).rows == first.rows


def test_the_audit_page_shows_a_page_of_rows_and_a_next_page_link_that_works(dashboard: DashboardServer) -> None:
    conn = connect(dashboard.config["DATABASE"])
    rows = [(NOW + n, "dina", "admin", "user.created", f"user:p{n:03d}", None, None, None, None) for n in range(150)]
    conn.executemany(
        "INSERT INTO audit_log (at, actor, role, action, subject, kind, before, after, ip) VALUES (?,?,?,?,?,?,?,?,?)",
        rows,
    )
    conn.close()
    admin = signed_in(dashboard, ADMIN)
    _, first = admin.get_text("/admin/audit?actor=dina")
    subjects = re.findall(r"user:p(\d{3})", first)
    assert len(subjects) == audit.PAGE_SIZE and subjects[0] == "149"
    link = re.search(r'id="audit-next" href="([^"]+)"|href="([^"]+)" id="audit-next"', first)
    assert link is not None
    _, second = admin.get_text((link.group(1) or link.group(2)).replace("&amp;", "&"))
    rest = re.findall(r"user:p(\d{3})", second)
    assert rest == [f"{n:03d}" for n in reversed(range(150 - audit.PAGE_SIZE))]
    assert 'id="audit-next"' not in second


@pytest.mark.sqlite_only
def test_anomalous_events_are_found_from_their_partial_index_not_among_every_event(
    seeded: sqlite3.Connection,
) -> None:
    found = plans(seeded, lambda: anomaly_troubles(seeded, NOW, 86400.0))
    assert found and "events_anomaly" in found[0] and not full_scans(found[0], "events"), found
