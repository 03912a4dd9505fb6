"""The statistics' bookkeeping never costs an alarm: with its table dropped or broken while the dashboard
runs, a press still raises its alarm, and the statistics are still right (computed from the alarms)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dashboard.alarms import stats, store
from dashboard.alarms.lifecycle import Action
from dashboard.db import connect, init_schema, transaction
from sim.servers import DashboardServer
from sim.stores import store_at
from sim.webclient import DashboardClient

from .mqttprobe import Probe
from .test_ingest import make_event, send, wait_alarm
from .test_stats import rows_of
from .test_stats_summaries import BOTH, a_quarter, act, alarm, at, from_alarms, month_start, row, tables


def test_a_press_raises_its_alarm_with_the_bookkeeping_dropped_while_the_dashboard_runs(
    dashboard: DashboardServer, operator: DashboardClient, probe: Probe
) -> None:
    first = send(probe, make_event(button="fire-1"))
    wait_alarm(operator, lambda a: a["last_event_id"] == first.id)
    [before] = rows_of(operator, "/stats.csv?group=kind")  # this month summarised and stored
    assert before["alarms"] == "1"
    maintenance = connect(dashboard.config["DATABASE"])
    maintenance.execute("DROP TABLE stats_alarm_changes")
    maintenance.close()

    second = send(probe, make_event(button="fire-2"))
    pressed = wait_alarm(operator, lambda a: a["last_event_id"] == second.id)
    operator.post_json(f"/api/alarms/{pressed['id']}/acknowledge", {})
    [after] = rows_of(operator, "/stats.csv?group=kind")
    assert (after["alarms"], after["open"], after["ack_count"]) == ("2", "2", "1")
    assert operator.get_text("/stats")[0] == 200


def _keyless_copy(conn: sqlite3.Connection) -> None:
    """The bookkeeping table made again without its key (every count kept, the generation too): what it
    says still looks current, but no change can be counted in it any more."""
    with transaction(conn):
        conn.execute("CREATE TABLE stats_copy AS SELECT * FROM stats_alarm_changes")
        conn.execute("DROP TABLE stats_alarm_changes")
        conn.execute("ALTER TABLE stats_copy RENAME TO stats_alarm_changes")


def test_a_change_that_could_not_be_counted_is_not_hidden_by_a_stored_summary(conn: sqlite3.Connection) -> None:
    a_quarter(conn)
    late = alarm(conn, "fire-3", at(2, 20))
    stored = tables(conn, BOTH, None, None)  # every month stored
    failures = store.bookkeeping_failures
    _keyless_copy(conn)
    act(conn, late, Action.ACKNOWLEDGED, at(2, 20) + 7200)  # February's figures change
    alarm(conn, "fire-4", at(3, 5), 10, 10)  # and March's: a new alarm
    assert store.bookkeeping_failures == failures + 4  # an acknowledgement; an opening, its acknowledgement, resolution
    assert store.get_alarm(conn, late, kinds=BOTH)["acknowledged_by"] == "dina"  # type: ignore[index]
    now = tables(conn, BOTH, None, None)
    assert now == from_alarms(conn, BOTH, None, None) != stored
    assert row(now["month"], "2026-02")["ack"]["count"] == row(stored["month"], "2026-02")["ack"]["count"] + 1


def test_a_restart_makes_the_bookkeeping_anew_and_the_summaries_are_stored_again(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    a_quarter(conn)
    tables(conn, BOTH, None, None)
    conn.execute("DROP TABLE stats_alarm_changes")
    alarm(conn, "fire-4", at(1, 28), 5, 5)
    assert tables(conn, BOTH, None, None) == from_alarms(conn, BOTH, None, None)
    assert store.stats_summaries(conn, ["2026-01"]) == {}  # with no generation to delete, the summaries went
    again = connect(store_at(tmp_path / "dashboard.db"))
    init_schema(again)  # the dashboard started again: its bookkeeping whole, with a new generation
    assert store.stats_summaries(again, ["2026-01"]) == {}
    alarm(again, "fire-5", at(2, 3), 5, 5)
    for _ in range(2):
        assert tables(again, BOTH, None, None) == from_alarms(again, BOTH, None, None)
    assert store.stats_summaries(again, ["2026-01", "2026-02", "2026-03"]).keys() == {"2026-01", "2026-02", "2026-03"}
    again.close()


def test_summaries_stored_before_the_generation_went_are_never_current_again(conn: sqlite3.Connection) -> None:
    a_quarter(conn)
    stored = tables(conn, BOTH, month_start(2), month_start(3))
    conn.execute("DELETE FROM stats_alarm_changes WHERE day = -1")  # as a failed count does
    conn.execute("UPDATE alarms SET resolution = 'real' WHERE resolution = 'false_alarm'")  # changed by hand
    assert tables(conn, BOTH, month_start(2), month_start(3)) == from_alarms(conn, BOTH, month_start(2), month_start(3))
    assert tables(conn, BOTH, month_start(2), month_start(3)) != stored
    # A new generation was started by the view without one; the next views store and read summaries.
    generation, _counts = store.stats_bookkeeping(conn, 0, 0)
    assert generation is not None
    assert stats.period_parts(conn, BOTH, month_start(2), month_start(3))
    assert store.stats_summaries(conn, ["2026-02"])["2026-02"][0] == generation


@pytest.mark.sqlite_only
def test_a_start_removes_an_earlier_designs_triggers_so_no_alarm_write_depends_on_them(
    conn: sqlite3.Connection,
) -> None:
    conn.executescript(
        """
        CREATE TABLE stats_site_changes (id INTEGER PRIMARY KEY CHECK (id = 1), changes INTEGER NOT NULL);
        CREATE TRIGGER stats_alarm_inserted AFTER INSERT ON alarms BEGIN
            INSERT INTO stats_site_changes (id, changes) VALUES (1, 1) ON CONFLICT(id) DO UPDATE SET changes = 2;
        END;
        CREATE TRIGGER stats_button_added AFTER INSERT ON buttons BEGIN
            INSERT INTO stats_site_changes (id, changes) VALUES (1, 1) ON CONFLICT(id) DO UPDATE SET changes = 2;
        END;
        """
    )
    init_schema(conn)
    left = conn.execute("SELECT type, name FROM sqlite_master WHERE name LIKE 'stats%'").fetchall()
    assert {tuple(row) for row in left} == {
        ("table", "stats_alarm_changes"), ("table", "stats_summaries"), ("table", "stats_kinds")
    }  # fmt: skip
    conn.execute("DROP TABLE stats_alarm_changes")
    a_quarter(conn)  # inventories and alarms written all the same
    assert tables(conn, BOTH, None, None) == from_alarms(conn, BOTH, None, None)
