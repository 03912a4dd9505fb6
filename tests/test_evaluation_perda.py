"""The Perda/Perkada section of the evaluation: reports received in a quarter and their handling as of the cut-off."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dashboard.commissioning.settings import CommissioningSettings
from dashboard.evaluation import perda
from dashboard.evaluation.build import Context
from dashboard.evaluation.model import Section, Table
from dashboard.evaluation.period import Period
from dashboard.evaluation.settings import EvaluationSettings
from dashboard.reports import store
from dashboard.reports.categories import load_catalogue

WITA = ZoneInfo("Asia/Makassar")
CATALOGUE = load_catalogue()
BUILDING = "bangunan-tanpa-izin"  # first in the catalogue, target 14 days
TRADING = "pedagang-area-terlarang"  # second, target 3 days
GONE = "parkir-liar"  # a category no longer in the catalogue: Open311's 7 days
APP = "LaporKonselApp"  # an Open311 app's key name: never published
REPORTER = ("Reporter Name qzx", "qzx@example.org", "+62 812 0000 qzx")


def wita(month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(2026, month, day, hour, minute, tzinfo=WITA).timestamp()


@dataclass
class Desk:
    """Reports made and moved through the store's own functions, at the times a test names."""

    conn: sqlite3.Connection
    photos: Path

    def receive(self, code: str, at: float, area: str | None, source: str = "web") -> str:
        report = store.NewReport(
            service_code=code,
            description="Ada pelanggaran di sini",
            lat=-4.35,
            lon=122.38,
            address="Jl. Poros qzx",
            area=area,
            source=source,
            reporter_name=REPORTER[0],
            reporter_email=REPORTER[1],
            reporter_phone=REPORTER[2],
        )
        ticket, _ = store.create_report(self.conn, report, photos_dir=self.photos, now=at)
        return ticket

    def move(self, ticket: str, *steps: tuple[str, str | None, float]) -> None:
        for target, resolution, at in steps:
            store.move_report(
                self.conn, ticket, target, resolution=resolution, actor="petugas", note=None, public=False, now=at
            )


@pytest.fixture
def seeded(conn: sqlite3.Connection, tmp_path: Path) -> sqlite3.Connection:
    """Q3 2026 (2026-07-01 00:00 to 2026-10-01 00:00 WITA): seven reports received, two outside it."""
    desk = Desk(conn, tmp_path / "photos")
    # R1 trading, web, Andoolo: verified after 4 h (0.2 d), a warning, done after exactly 3.0 d (its target).
    r1 = desk.receive(TRADING, wita(7, 1, 8), "Andoolo")
    desk.move(
        r1, ("verified", None, wita(7, 1, 12)), ("in_action", "warning", wita(7, 2, 8)), ("done", None, wita(7, 4, 8))
    )
    # R2 trading, Open311, Konda: verified after 1.0 d, a warning then a written one, done after 6.0 d (late).
    r2 = desk.receive(TRADING, wita(7, 10, 8), "Konda", f"open311:{APP}")
    desk.move(
        r2,
        ("verified", None, wita(7, 11, 8)),
        ("in_action", "warning", wita(7, 12, 8)),
        ("in_action", "written_warning", wita(7, 14, 8)),
        ("done", None, wita(7, 16, 8)),
    )
    # R3 building, web, Andoolo: received 2026-07-31 16:00 UTC = 2026-08-01 00:00 WITA, rejected as a
    # duplicate after 2.0 d (within 14).
    r3 = desk.receive(BUILDING, datetime(2026, 7, 31, 16, 0, tzinfo=UTC).timestamp(), "Andoolo")
    desk.move(r3, ("rejected", "duplicate", wita(8, 3)))
    # R4 building, Open311, no kecamatan: verified after 1.0 d, done on 2026-10-05, after the quarter: open at end.
    r4 = desk.receive(BUILDING, wita(9, 20, 8), None, f"open311:{APP}")
    desk.move(r4, ("verified", None, wita(9, 21, 8)), ("done", None, wita(10, 5, 8)))
    # R5 a category since removed, web, Moramo: verified after 0.5 d, done after 3.0 d, no action needed.
    r5 = desk.receive(GONE, wita(7, 5, 8), "Moramo")
    desk.move(r5, ("verified", None, wita(7, 5, 20)), ("done", None, wita(7, 8, 8)))
    # R6 trading, web, Konda: rejected as not a violation after 10.0 d (target 3: late).
    r6 = desk.receive(TRADING, wita(8, 10, 8), "Konda")
    desk.move(r6, ("rejected", "not_a_violation", wita(8, 20, 8)))
    # R7 building, web, Andoolo: received an hour before the end, untouched.
    desk.receive(BUILDING, wita(9, 30, 23), "Andoolo")
    # Outside: received 2026-06-30 23:59 WITA and finished in July; received 2026-10-01 00:00 WITA.
    before = desk.receive(TRADING, wita(6, 30, 23, 59), "Andoolo")
    desk.move(before, ("verified", None, wita(7, 1, 10)), ("done", None, wita(7, 2, 10)))
    desk.receive(TRADING, wita(10, 1), "Andoolo")
    return conn


def build(conn: sqlite3.Connection, period: str = "2026-Q3", now: float = wita(12, 1)) -> Section:
    the_period = Period.parse(period)
    context = Context(
        conn, the_period, min(now, the_period.end), EvaluationSettings(), CommissioningSettings(), CATALOGUE
    )
    return perda.section(context)


def table(section: Section, table_id: str) -> Table:
    [found] = [table for table in section.tables if table.id == table_id]
    return found


def keys(found: Table) -> list[str]:
    return [column.key for column in found.columns]


def by_first(found: Table) -> dict[object, tuple[object, ...]]:
    return {row[0]: row[1:] for row in found.rows}


OTHER_CATEGORIES = [c.code for c in CATALOGUE.categories if c.code not in (BUILDING, TRADING)]


def test_reports_by_category_and_channel(seeded: sqlite3.Connection) -> None:
    found = table(build(seeded), "perda-reports-by-category")
    assert keys(found) == ["category", "received", "web", "open311", "rejected", "done", "open_at_end"]
    assert found.total and found.title_key == "evaluation_table_perda_reports_by_category"
    assert found.definition_key == "evaluation_def_perda_reports_by_category"
    # The catalogue's order, every category, then the code no longer in it.
    assert found.column("category") == [c.code for c in CATALOGUE.categories] + [GONE, "total"]
    rows = by_first(found)
    assert rows[BUILDING] == (3, 2, 1, 1, 0, 2)  # R3 R4 R7; web R3 R7; R4 Open311; R3 rejected; R4 R7 open
    assert rows[TRADING] == (3, 2, 1, 1, 2, 0)  # R1 R2 R6; web R1 R6; R2 Open311; R6 rejected; R1 R2 done
    assert rows[GONE] == (1, 1, 0, 0, 1, 0)  # R5
    assert all(rows[code] == (0, 0, 0, 0, 0, 0) for code in OTHER_CATEGORIES)
    assert found.rows[-1] == ("total", 7, 5, 2, 2, 3, 2)
    # The renderer names a code from the column; one no longer in the catalogue stays its code.
    names = found.columns[0].names
    assert names is not None and names[TRADING] == {
        "id": "Berjualan di area terlarang",
        "en": "Trading in a prohibited area",
    }
    assert GONE not in names


def test_reports_by_kecamatan(seeded: sqlite3.Connection) -> None:
    found = table(build(seeded), "perda-reports-by-kecamatan")
    assert keys(found) == ["kecamatan", "received", "done", "rejected", "open_at_end"]
    # Every kecamatan of the catalogue, sorted; the report without one last, then the total.
    assert found.column("kecamatan") == [*sorted(CATALOGUE.areas), "unknown", "total"]
    rows = by_first(found)
    assert rows["Andoolo"] == (3, 1, 1, 1)  # R1 done, R3 rejected, R7 open
    assert rows["Konda"] == (2, 1, 1, 0)  # R2 done, R6 rejected
    assert rows["Moramo"] == (1, 1, 0, 0)  # R5
    assert rows["unknown"] == (1, 0, 0, 1)  # R4, done only after the quarter
    assert all(rows[area] == (0, 0, 0, 0) for area in CATALOGUE.areas if area not in ("Andoolo", "Konda", "Moramo"))
    assert rows["total"] == (7, 3, 2, 2)


def test_service_level(seeded: sqlite3.Connection) -> None:
    found = table(build(seeded), "perda-service-level")
    assert keys(found) == [
        "category",
        "target_days",
        "received",
        "within_target",
        "not_yet_due",
        "late",
        "within_target_share",
    ]
    rows = by_first(found)
    # Building, 14 d, cut-off 2026-10-01 00:00: R3 rejected after 2 d is within; R4 (received 09-20 08:00, due
    # 10-04 08:00, done only on 10-05) and R7 (due 10-14) are open but not due yet. 1 / (3 - 2) = 100 %.
    assert rows[BUILDING] == (14.0, 3, 1, 2, 0, 100.0)
    # Trading, 3 d: R1 done after exactly 3.0 d is within; R2 (6 d) and R6 (10 d) late. 1 / (3 - 0) = 33.3 %.
    assert rows[TRADING] == (3.0, 3, 1, 0, 2, 33.3)
    # The removed category gets Open311's 7 days: R5 done after 3 d is within. 1/1 = 100 %.
    assert rows[GONE] == (7.0, 1, 1, 0, 0, 100.0)
    assert all(rows[c.code] == (c.target_days, 0, 0, 0, 0, None) for c in CATALOGUE.categories[2:])
    assert rows["total"] == (None, 7, 3, 2, 2, 60.0)  # 3 / (7 - 2) = 60 %


def test_a_report_inside_its_target_is_not_yet_due_not_late(conn: sqlite3.Connection, tmp_path: Path) -> None:
    """September 2026, cut-off 2026-10-01 00:00 WITA: trading's target is 3 days, building's 14."""
    desk = Desk(conn, tmp_path / "photos")
    desk.receive(TRADING, wita(9, 27, 8), "Konda")  # A: due 09-30 08:00, before the cut-off, open: late
    desk.receive(TRADING, wita(9, 28), "Konda")  # B: due 10-01 00:00, the cut-off itself: late
    desk.receive(TRADING, wita(9, 28, 0, 1), "Konda")  # C: due 10-01 00:01, after the cut-off: not yet due
    d = desk.receive(TRADING, wita(9, 29, 8), "Konda")  # D: verified is not closed, due 10-02 08:00: not yet due
    desk.move(d, ("verified", None, wita(9, 30, 8)))
    e = desk.receive(TRADING, wita(9, 29, 8), "Konda")  # E: done after 1.0 d: within
    desk.move(e, ("verified", None, wita(9, 29, 10)), ("done", None, wita(9, 30, 8)))
    f = desk.receive(TRADING, wita(9, 29, 9), "Konda")  # F: done on 10-02, after the cut-off: not yet due
    desk.move(f, ("verified", None, wita(9, 29, 10)), ("done", None, wita(10, 2, 8)))
    desk.receive(BUILDING, wita(9, 25, 8), "Andoolo")  # G: due 10-09 08:00: not yet due
    section = build(conn, "2026-09")
    rows = by_first(table(section, "perda-service-level"))
    # Trading: 6 received, E within, C D F not yet due, A B late: 1 / (6 - 3) = 33.3 %.
    assert rows[TRADING] == (3.0, 6, 1, 3, 2, 33.3)
    # Building: its only report is not due yet, so there is no share to give (not 0 %).
    assert rows[BUILDING] == (14.0, 1, 0, 1, 0, None)
    assert rows["total"] == (None, 7, 1, 4, 2, 33.3)  # 1 / (7 - 4)
    chart = section.charts[1]
    assert (chart.labels, chart.series[0].values) == ((TRADING,), (33.3,))
    # Made on 2026-09-30 12:00, before the month is over: A (due 08:00) is late, B is not due yet;
    # E (done at 08:00) is within. Trading: 1 / (6 - 4) = 50 %.
    early = by_first(table(build(conn, "2026-09", now=wita(9, 30, 12)), "perda-service-level"))
    assert early[TRADING] == (3.0, 6, 1, 4, 1, 50.0)


def test_handling_times(seeded: sqlite3.Connection) -> None:
    found = table(build(seeded), "perda-handling-times")
    assert keys(found) == [
        "category",
        "verified",
        "verify_median_days",
        "verify_p90_days",
        "finished",
        "finish_median_days",
        "finish_p90_days",
    ]
    rows = by_first(found)
    # Building: first decisions R3 (rejected, 2.0 d) and R4 (1.0 d): median 1.5, p90 rank ceil(1.8) = 2 -> 2.0.
    # Nothing done before the cut-off.
    assert rows[BUILDING] == (2, 1.5, 2.0, 0, None, None)
    # Trading: decisions 0.167 (R1), 1.0 (R2), 10.0 (R6) d: median 1.0, p90 rank ceil(2.7) = 3 -> 10.0;
    # done R1 3.0 and R2 6.0 d: median 4.5, p90 rank ceil(1.8) = 2 -> 6.0.
    assert rows[TRADING] == (3, 1.0, 10.0, 2, 4.5, 6.0)
    assert rows[GONE] == (1, 0.5, 0.5, 1, 3.0, 3.0)
    assert all(rows[code] == (0, None, None, 0, None, None) for code in OTHER_CATEGORIES)
    # All: decisions 0.167, 0.5, 1.0, 1.0, 2.0, 10.0: median (1.0 + 1.0) / 2, p90 rank ceil(5.4) = 6 -> 10.0;
    # done 3.0, 3.0, 6.0: median 3.0, p90 rank ceil(2.7) = 3 -> 6.0. Pooled, not averaged.
    assert rows["total"] == (6, 1.0, 10.0, 3, 3.0, 6.0)


def test_outcomes(seeded: sqlite3.Connection) -> None:
    found = table(build(seeded), "perda-outcomes")
    assert keys(found) == ["outcome", "reports", "share"]
    assert found.columns[0].code_prefix == "evaluation_outcome_"
    # Of 7: one is 14.3 % (14.286), two 28.6 % (28.571). Each report has one outcome: they add up to 7.
    assert found.rows == [
        ("warning", 1, 14.3),  # R1
        ("written_warning", 1, 14.3),  # R2: the last action taken
        ("closure", 0, 0.0),
        ("referral", 0, 0.0),
        ("done_no_action", 1, 14.3),  # R5
        ("rejected_not_a_violation", 1, 14.3),  # R6
        ("rejected_outside_authority", 0, 0.0),
        ("rejected_duplicate", 1, 14.3),  # R3
        ("open_at_end", 2, 28.6),  # R4 (done after the end), R7
        ("unknown", 0, 0.0),
        ("total", 7, 100.0),
    ]


def test_charts(seeded: sqlite3.Connection) -> None:
    received, service = build(seeded).charts
    assert (received.id, received.table_id, received.horizontal) == (
        "perda-reports-by-category-chart",
        "perda-reports-by-category",
        True,
    )
    assert received.label_prefix is None
    assert received.labels == (*(c.code for c in CATALOGUE.categories), GONE)
    assert received.series[0].values == (3, 3, *([0] * len(OTHER_CATEGORIES)), 1)
    # Only the categories that received reports have a share to draw.
    assert (service.id, service.table_id, service.unit.value) == (
        "perda-service-level-chart",
        "perda-service-level",
        "percent",
    )
    assert service.labels == (BUILDING, TRADING, GONE)
    assert service.series[0].values == (100.0, 33.3, 100.0)


def test_the_status_is_the_one_at_the_cut_off(seeded: sqlite3.Connection) -> None:
    # Made on 2026-07-04 00:00 WITA: only R1 was received (R5 came on the 5th), verified, and warned: open.
    early = build(seeded, now=wita(7, 4))
    assert table(early, "perda-reports-by-category").rows[-1] == ("total", 1, 1, 0, 0, 0, 1)
    # R1 (received 07-01 08:00) is due on 07-04 08:00, after this cut-off: not yet due, so no share yet.
    assert table(early, "perda-service-level").rows[-1] == ("total", None, 1, 0, 1, 0, None)
    assert table(early, "perda-handling-times").rows[-1] == ("total", 1, 0.2, 0.2, 0, None, None)  # 4 h = 0.167 d
    assert by_first(table(early, "perda-outcomes"))["open_at_end"] == (1, 100.0)
    # A closed quarter's tables are the same whenever they are made, whatever happened since.
    first = build(seeded, now=wita(10, 2)).tables
    [(r7,)] = seeded.execute("SELECT ticket FROM reports WHERE requested_at = ?", (wita(9, 30, 23),)).fetchall()
    store.move_report(seeded, r7, "verified", resolution=None, actor="x", note=None, public=False, now=wita(10, 9))
    assert build(seeded, now=wita(12, 31)).tables == first


def test_no_reporter_and_no_app_name_reach_the_section(seeded: sqlite3.Connection) -> None:
    text = repr(build(seeded))
    for secret in (*REPORTER, "qzx", APP, "LAP-2026", "petugas"):
        assert secret not in text, secret


def test_an_empty_quarter_has_rows_of_zeros(conn: sqlite3.Connection) -> None:
    section = build(conn, "2026-Q1")
    assert table(section, "perda-reports-by-category").rows[-1] == ("total", 0, 0, 0, 0, 0, 0)
    assert table(section, "perda-reports-by-kecamatan").column("kecamatan") == [*sorted(CATALOGUE.areas), "total"]
    assert table(section, "perda-service-level").rows[-1] == ("total", None, 0, 0, 0, 0, None)
    assert table(section, "perda-handling-times").rows[-1] == ("total", 0, None, None, 0, None, None)
    assert table(section, "perda-outcomes").rows[-1] == ("total", 0, None)
    assert section.charts[1].labels == ()


def add_step(conn: sqlite3.Connection, ticket: str, to_status: str, resolution: str | None, at: float) -> None:
    """A history row the workflow would never write (left by an old version, a manual fix, an import)."""
    [(report_id,)] = conn.execute("SELECT id FROM reports WHERE ticket = ?", (ticket,)).fetchall()
    conn.execute(
        "INSERT INTO report_history (report_id, at, actor, to_status, resolution, public) VALUES (?, ?, ?, ?, ?, 0)",
        (report_id, at, "import", to_status, resolution),
    )
    conn.commit()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == perda.__name__ and r.levelno == logging.WARNING]


def test_an_odd_history_is_an_unknown_outcome_not_a_failed_report(
    conn: sqlite3.Connection, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    desk = Desk(conn, tmp_path / "photos")
    u1 = desk.receive(TRADING, wita(7, 1, 8), "Konda")  # verified, then a step to a status nobody knows
    desk.move(u1, ("verified", None, wita(7, 1, 12)))
    add_step(conn, u1, "archived", None, wita(7, 2, 8))
    u2 = desk.receive(TRADING, wita(7, 2, 8), "Konda")  # rejected without a reason
    add_step(conn, u2, "rejected", None, wita(7, 3, 8))
    u3 = desk.receive(BUILDING, wita(7, 3, 8), "Andoolo")  # rejected for a reason the workflow does not have
    add_step(conn, u3, "rejected", "spam", wita(7, 4, 8))
    ok = desk.receive(BUILDING, wita(7, 5, 8), "Andoolo")
    desk.move(ok, ("rejected", "duplicate", wita(7, 6, 8)))
    with caplog.at_level(logging.WARNING, logger=perda.__name__):
        section = build(conn)
    outcomes = by_first(table(section, "perda-outcomes"))
    assert outcomes["unknown"] == (3, 75.0)  # U1 U2 U3 of 4
    assert outcomes["rejected_duplicate"] == (1, 25.0)
    assert outcomes["total"] == (4, 100.0)
    assert sum(count for name, (count, _) in outcomes.items() if name != "total") == 4
    # The other tables count each report by its last known status: U1 verified (open), U2 and U3 rejected.
    by_category = by_first(table(section, "perda-reports-by-category"))
    assert by_category[TRADING] == (2, 2, 0, 1, 0, 1)
    assert by_category[BUILDING] == (2, 2, 0, 2, 0, 0)
    [message] = warnings(caplog)  # one warning for the build, with the count
    assert message.startswith("evaluation: 3 Perda report(s)")
    assert "spam" not in message and "archived" not in message


def test_a_time_before_receipt_is_left_out(
    conn: sqlite3.Connection, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    desk = Desk(conn, tmp_path / "photos")
    v1 = desk.receive(TRADING, wita(7, 10, 8), "Konda")  # verified a day before receipt, done 1.0 d after it
    desk.move(v1, ("verified", None, wita(7, 9, 8)), ("done", None, wita(7, 11, 8)))
    v2 = desk.receive(TRADING, wita(7, 10, 8), "Konda")  # rejected two hours before receipt
    desk.move(v2, ("rejected", "duplicate", wita(7, 10, 6)))
    v3 = desk.receive(TRADING, wita(7, 12, 8), "Konda")  # verified after 0.5 d, done after 2.0 d
    desk.move(v3, ("verified", None, wita(7, 12, 20)), ("done", None, wita(7, 14, 8)))
    v4 = desk.receive(BUILDING, wita(7, 12, 8), "Andoolo")  # verified and done before receipt
    desk.move(v4, ("verified", None, wita(7, 11, 8)), ("done", None, wita(7, 11, 20)))
    with caplog.at_level(logging.WARNING, logger=perda.__name__):
        section = build(conn)
    rows = by_first(table(section, "perda-handling-times"))
    # Trading: decisions V1 -1.0 d and V2 -0.083 d left out, V3 0.5 d: 1, median 0.5, p90 0.5;
    # done V1 1.0 and V3 2.0 d: 2, median 1.5, p90 rank ceil(1.8) = 2 -> 2.0.
    assert rows[TRADING] == (1, 0.5, 0.5, 2, 1.5, 2.0)
    assert rows[BUILDING] == (0, None, None, 0, None, None)  # V4: both times before receipt
    assert rows["total"] == (1, 0.5, 0.5, 2, 1.5, 2.0)
    [message] = warnings(caplog)  # V1, V2 and V4, once for the build
    assert message.startswith("evaluation: 3 Perda report(s) decided or done before they were received")
