"""The statistics' stored monthly summaries: the same figures as computed from the alarms, never stale."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from dashboard import migrations
from dashboard.alarms import stats, store
from dashboard.alarms.lifecycle import Action
from dashboard.db import connect, init_schema, transaction
from dashboard.defaults import LOCAL_TIME
from dashboard.devices import registry
from firmware_bridge.payloads import ButtonInfo, Inventory, Kind, Site, Source
from firmware_bridge.timeutil import format_epoch
from sim.stores import store_at

from .test_costs import full_scans, plans
from .test_ingest import make_event

BOTH = ("fire", "sapa")
FIRE = ("fire",)


def at(month: int, day: int = 10, hour: int = 9, minute: int = 0) -> float:
    """A moment of 2026, local time (WITA)."""
    return datetime(2026, month, day, hour, minute, tzinfo=LOCAL_TIME).timestamp()


def month_start(month: int) -> float:
    return at(month, 1, 0)


def register(conn: sqlite3.Connection, sites: dict[str, str], kind: Kind = Kind.FIRE, gw: str = "gw-a") -> None:
    """``gw``'s inventory: button id -> its site's name."""
    buttons = tuple(ButtonInfo(b, kind, Source.GPIO, Site(name, -4.0, 122.0), None) for b, name in sites.items())
    with transaction(conn):
        registry.store_inventory(conn, Inventory(gw=gw, ts=format_epoch(at(1)), buttons=buttons), at(1))


def alarm(
    conn: sqlite3.Connection,
    button: str,
    opened: float,
    ack_s: float | None = None,
    resolve_s: float | None = None,
    resolution: str = "real",
    kind: str = "fire",
) -> int:
    """A press of ``button`` at ``opened``, acknowledged ``ack_s`` later and resolved ``resolve_s`` after that."""
    with transaction(conn):
        outcome = store.store_events(conn, [(make_event(button=button, kind=kind), opened)])
    [alarm_id] = outcome.alarms
    if ack_s is not None:
        act(conn, alarm_id, Action.ACKNOWLEDGED, opened + ack_s)
    if resolve_s is not None:
        act(conn, alarm_id, Action.RESOLVED, opened + (ack_s or 0) + resolve_s, resolution)
    return alarm_id


def act(conn: sqlite3.Connection, alarm_id: int, action: Action, now: float, resolution: str | None = None) -> None:
    current = store.get_alarm(conn, alarm_id, kinds=BOTH)
    assert current is not None
    store.act_on_alarm(
        conn, alarm_id, action, actor="dina", kinds=[Kind.FIRE, Kind.SAPA], now=now,
        resolution=resolution, seen_rev=current["rev"],
    )  # fmt: skip


def tables(conn: sqlite3.Connection, kinds: tuple[str, ...], since: float | None, until: float | None) -> Any:
    """What the page shows: the three tables, from the stored summaries where they are current."""
    found = stats.tables(stats.period_parts(conn, kinds, since, until))
    for group in ("month", "kind"):  # as the CSV of one table reads it
        assert stats.rows(stats.period_parts(conn, kinds, since, until, by_site=False), group) == found[group]
    return found


def from_alarms(conn: sqlite3.Connection, kinds: tuple[str, ...], since: float | None, until: float | None) -> Any:
    """The same tables computed from every alarm of the period, as the page did before the summaries."""
    alarms = stats.load(conn, kinds, since, until)
    return {group: stats.summarise(alarms, group) for group in stats.GROUPS}


def same_as_from_alarms(conn: sqlite3.Connection, kinds=BOTH, since=None, until=None) -> Any:
    """The page's tables, asserted equal to the fresh computation (asked twice: computed, then stored)."""
    expected = from_alarms(conn, kinds, since, until)
    assert tables(conn, kinds, since, until) == expected
    assert tables(conn, kinds, since, until) == expected
    return expected


def row(table: list[dict[str, Any]], key: str) -> dict[str, Any]:
    [found] = [r for r in table if key in r.values()]
    return found


def a_quarter(conn: sqlite3.Connection) -> None:
    """Alarms in January, February and March 2026, fire and SAPA, on two sites and one unregistered button."""
    register(conn, {"fire-1": "Pasar", "fire-2": "Sekolah"})
    register(conn, {"sapa-1": "Pasar"}, kind=Kind.SAPA, gw="gw-s")
    alarm(conn, "fire-1", at(1, 5), 30, 600)
    alarm(conn, "fire-2", at(1, 20), 90, 300, "false_alarm")
    alarm(conn, "fire-1", month_start(2) - 1800, 45, 100)  # 31 January 23:30 WITA, 15:30 UTC
    alarm(conn, "fire-2", month_start(2), 12, 50, "test")  # the first instant of February
    alarm(conn, "fire-1", at(2, 14), 61.5, 1200, "false_alarm")
    alarm(conn, "fire-9", at(2, 15), 20, 40)  # in no inventory: its own site
    alarm(conn, "sapa-1", at(2, 16), 300, 900, kind="sapa")
    alarm(conn, "fire-1", at(3, 2), 15)  # acknowledged, still open
    alarm(conn, "fire-2", at(3, 3))  # still open, unacknowledged
    alarm(conn, "sapa-1", at(3, 4), kind="sapa")


def test_stored_summaries_give_the_figures_computed_from_the_alarms(conn: sqlite3.Connection) -> None:
    a_quarter(conn)
    whole = same_as_from_alarms(conn)
    assert [r["month"] for r in whole["month"]] == ["2026-01", "2026-02", "2026-03"]
    assert row(whole["month"], "2026-01")["alarms"] == 3 and row(whole["month"], "2026-02")["alarms"] == 4
    assert {r["site"] for r in whole["site"]} == {"Pasar", "Sekolah", "fire-9"}
    assert store.stats_summaries(conn, ["2026-01", "2026-02", "2026-03"]).keys() == {"2026-01", "2026-02", "2026-03"}
    for kinds in (BOTH, FIRE, ("sapa",)):
        same_as_from_alarms(conn, kinds, month_start(2), month_start(3))  # February, as the page asks for it
        same_as_from_alarms(conn, kinds, month_start(2), None)
        same_as_from_alarms(conn, kinds, None, month_start(3))
    # A period that cuts months (the page asks for whole ones; a cut month is read from its alarms).
    same_as_from_alarms(conn, BOTH, at(1, 20), at(3, 3))
    same_as_from_alarms(conn, BOTH, month_start(2) - 1800, month_start(2) + 1)
    assert tables(conn, BOTH, month_start(4), None) == {"month": [], "site": [], "kind": []}
    assert tables(conn, BOTH, None, month_start(1)) == {"month": [], "site": [], "kind": []}
    assert tables(conn, (), None, None) == {"month": [], "site": [], "kind": []}


def test_summaries_stored_for_every_kind_are_read_only_for_the_kinds_asked(conn: sqlite3.Connection) -> None:
    a_quarter(conn)
    same_as_from_alarms(conn, BOTH)  # every month stored, SAPA groups included
    fire_only = tables(conn, FIRE, None, None)
    assert [r["kind"] for r in fire_only["kind"]] == ["fire"]
    assert sum(r["alarms"] for r in fire_only["month"]) == 8
    assert fire_only == from_alarms(conn, FIRE, None, None)


def test_acknowledging_and_resolving_an_alarm_of_a_stored_month_changes_its_figures(conn: sqlite3.Connection) -> None:
    a_quarter(conn)
    late = alarm(conn, "fire-3", at(2, 20))
    before = same_as_from_alarms(conn)
    february = row(before["month"], "2026-02")
    act(conn, late, Action.ACKNOWLEDGED, at(2, 20) + 7200)
    acknowledged = row(same_as_from_alarms(conn)["month"], "2026-02")
    assert acknowledged["ack"]["count"] == february["ack"]["count"] + 1
    assert acknowledged["ack"]["p90_s"] == 7200.0 and acknowledged["open"] == february["open"]
    act(conn, late, Action.RESOLVED, at(2, 21), "false_alarm")
    resolved = row(same_as_from_alarms(conn)["month"], "2026-02")
    assert resolved["open"] == february["open"] - 1 and resolved["false_alarm"] == february["false_alarm"] + 1
    assert resolved["resolve"]["count"] == february["resolve"]["count"] + 1


def test_a_new_alarm_in_an_old_month_changes_its_figures(conn: sqlite3.Connection) -> None:
    a_quarter(conn)
    january = row(same_as_from_alarms(conn)["month"], "2026-01")
    alarm(conn, "fire-4", month_start(2) - 1, 10, 10)  # the last second of January, late to the store
    after = row(same_as_from_alarms(conn)["month"], "2026-01")
    assert after["alarms"] == january["alarms"] + 1 and after["real"] == january["real"] + 1


def test_a_button_moved_to_another_site_moves_its_alarms_in_every_month(conn: sqlite3.Connection) -> None:
    a_quarter(conn)
    before = same_as_from_alarms(conn)
    sent_again = store.stats_sites_mark(conn)
    register(conn, {"fire-1": "Pasar", "fire-2": "Sekolah"})  # the same inventory again: nothing moved
    assert store.stats_sites_mark(conn) == sent_again
    register(conn, {"fire-1": "Pasar Baru", "fire-2": "Sekolah"})
    after = same_as_from_alarms(conn)
    assert {r["site"] for r in after["site"]} == {"Pasar Baru", "Pasar", "Sekolah", "fire-9"}
    assert row(after["site"], "Pasar Baru")["alarms"] == row(before["site"], "Pasar")["alarms"] - 2  # SAPA stays
    assert after["month"] == before["month"]


def test_a_button_registered_after_its_alarms_gives_them_its_site(conn: sqlite3.Connection) -> None:
    a_quarter(conn)
    assert row(same_as_from_alarms(conn)["site"], "fire-9")["alarms"] == 1
    register(conn, {"fire-9": "Puskesmas"}, gw="gw-b")
    sites = same_as_from_alarms(conn)["site"]
    assert "fire-9" not in {r["site"] for r in sites} and row(sites, "Puskesmas")["alarms"] == 1


@pytest.mark.sqlite_only
def test_a_summary_read_before_a_change_is_not_taken_for_current(conn: sqlite3.Connection, tmp_path: Path) -> None:
    """A page computes February from its snapshot while an alarm of February is being stored: the summary
    it stores afterwards must not be taken for the one after the change."""
    a_quarter(conn)
    page = connect(store_at(tmp_path / "dashboard.db"))
    writing = threading.Event()
    page.set_trace_callback(lambda sql: writing.set() if sql.startswith("BEGIN IMMEDIATE") else None)
    with transaction(conn):  # the ingest's transaction, holding the write lock until the page has read
        store.store_events(conn, [(make_event(button="fire-5"), at(2, 25))])
        computing = threading.Thread(
            target=stats.period_parts, args=(page, BOTH, month_start(2), month_start(3)), daemon=True
        )
        computing.start()
        assert writing.wait(10), "the page never came to store its summary"
    computing.join(20)
    assert not computing.is_alive()
    page.close()
    february = row(same_as_from_alarms(conn, BOTH, month_start(2), month_start(3))["month"], "2026-02")
    assert february["alarms"] == 5 and february["open"] == 1


def test_a_store_made_before_the_summaries_gains_them_in_place(conn: sqlite3.Connection, tmp_path: Path) -> None:
    a_quarter(conn)
    for table in ("stats_kinds", "stats_summaries", "stats_alarm_changes"):
        conn.execute(f"DROP TABLE {table}")
    again = connect(store_at(tmp_path / "dashboard.db"))
    init_schema(again)
    assert again.execute("SELECT version_num FROM alembic_version").fetchone()[0] == migrations.HEAD
    before = same_as_from_alarms(again)
    alarm(again, "fire-4", at(1, 28), 5, 5)
    assert (
        row(same_as_from_alarms(again)["month"], "2026-01")["alarms"] == row(before["month"], "2026-01")["alarms"] + 1
    )
    init_schema(again)  # and again: nothing changes
    assert same_as_from_alarms(again)["month"] == tables(conn, BOTH, None, None)["month"]
    again.close()


@pytest.mark.sqlite_only
def test_a_month_is_read_from_its_alarms_through_an_index_and_then_from_its_summary(
    conn: sqlite3.Connection,
) -> None:
    a_quarter(conn)
    first = plans(conn, lambda: tables(conn, BOTH, month_start(2), month_start(3)))
    alarm_reads = [plan for plan in first if "alarms" in plan.replace("stats_alarm_changes", "")]
    assert alarm_reads and not any(full_scans(plan, "alarms") for plan in first), first
    assert any("alarms_kind_opened" in plan and "opened_at>? AND opened_at<?" in plan for plan in alarm_reads)
    again = plans(conn, lambda: tables(conn, BOTH, month_start(2), month_start(3)))
    alarm_reads = [plan for plan in again if "alarms" in plan.replace("stats_alarm_changes", "")]
    assert all("COVERING INDEX alarms_kind_opened (kind=?)" in plan for plan in alarm_reads), again  # first, last
    assert not any(full_scans(plan, "stats_groups") for plan in again), again
