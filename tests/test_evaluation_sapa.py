"""The SAPA section of the evaluation: counts by WITA month, time to acknowledge, small cells hidden."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from dashboard.commissioning.settings import CommissioningSettings
from dashboard.evaluation import sapa
from dashboard.evaluation.build import Context
from dashboard.evaluation.model import SUPPRESSED, Section
from dashboard.evaluation.period import Period
from dashboard.evaluation.settings import EvaluationSettings
from dashboard.evaluation.suppression import suppress, suppress_part, suppressed_total
from dashboard.reports.categories import load_catalogue

WITA = ZoneInfo("Asia/Makassar")
MINUTE = 60.0
#: Every identifying string of the seeded SAPA buttons contains this: none may reach the report.
MARKER = "qzx"
BUTTON = f"sapa-{MARKER}-button"
GATEWAY = f"gw-{MARKER}-gateway"
SITE = f"Rumah Aman {MARKER} Site"
KECAMATAN = f"Kecamatan {MARKER}"


def wita(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(2026, month, day, hour, minute, second, tzinfo=WITA).timestamp()


class Seeder:
    """SAPA and fire alarms written straight into a fresh store, each on a button of its own."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.numbers = {"sapa": 0, "fire": 0}

    def alarm(
        self,
        opened_at: float,
        acknowledged_at: float | None = None,
        *,
        resolved_at: float | None = None,
        resolution: str | None = None,
        test: int = 0,
        kind: str = "sapa",
    ) -> None:
        self.numbers[kind] += 1
        number = self.numbers[kind]
        button = f"{BUTTON}-{kind}-{number}"
        self.conn.execute(
            "INSERT INTO buttons (id, gw, kind, transport, site_name, lat, lon, label, updated_at, kecamatan)"
            " VALUES (?, ?, ?, 'gpio', ?, -4.35, 122.38, ?, ?, ?)",
            (button, GATEWAY, kind, SITE, f"label {MARKER}", opened_at, KECAMATAN),
        )
        state = "resolved" if resolved_at else "acknowledged" if acknowledged_at else "unacknowledged"
        self.conn.execute(
            "INSERT INTO alarms (id, number, button, gw, kind, state, first_event_id, last_event_id,"
            " first_press_ts, opened_at, last_press_at, acknowledged_at, acknowledged_by, resolved_at,"
            " resolution, note, test) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                16 * number + (2 if kind == "sapa" else 1),
                number,
                button,
                GATEWAY,
                kind,
                state,
                f"ev-{MARKER}-{kind}-{number}",
                f"ev-{MARKER}-{kind}-{number}",
                "2026-01-01T00:00:00+08:00",
                opened_at,
                opened_at,
                acknowledged_at,
                "sapadesk" if acknowledged_at else None,
                resolved_at,
                resolution,
                f"note {MARKER}",
                test,
            ),
        )
        self.conn.commit()


@pytest.fixture
def seeded(conn: sqlite3.Connection) -> sqlite3.Connection:
    """Q3 2026: July 8 alarms, August 3, September 0, plus tests, fire alarms and alarms out of the quarter."""
    seed = Seeder(conn)
    # July: seven alarms acknowledged after 1, 2, 3, 4, 5, 6 and 30 minutes.
    for day, minutes in zip((2, 5, 9, 14, 18, 22, 27), (1, 2, 3, 4, 5, 6, 30), strict=True):
        seed.alarm(wita(7, day, 9), wita(7, day, 9) + minutes * MINUTE, resolved_at=wita(7, day, 11), resolution="real")
    # The eighth: 2026-07-31 15:59:59 UTC is 23:59:59 WITA, still July; acknowledged 10 minutes later, in August.
    last_of_july = datetime(2026, 7, 31, 15, 59, 59, tzinfo=UTC).timestamp()
    seed.alarm(last_of_july, last_of_july + 10 * MINUTE, resolved_at=last_of_july + 3600, resolution="real")
    # August: 2026-07-31 16:00 UTC is 2026-08-01 00:00 WITA; acknowledged after 10 and 20 minutes, one never.
    first_of_august = datetime(2026, 7, 31, 16, 0, tzinfo=UTC).timestamp()
    seed.alarm(first_of_august, first_of_august + 10 * MINUTE, resolved_at=first_of_august + 3600, resolution="real")
    seed.alarm(wita(8, 12, 20), wita(8, 12, 20, 20), resolved_at=wita(8, 12, 22), resolution="false_alarm")
    seed.alarm(wita(8, 25, 3))  # still open, never acknowledged
    # Tests are no alarms: one raised in test mode, one resolved as a test.
    seed.alarm(wita(7, 3, 10), wita(7, 3, 10, 1), resolved_at=wita(7, 3, 10, 2), resolution="test", test=1)
    seed.alarm(wita(7, 4, 10), wita(7, 4, 10, 1), resolved_at=wita(7, 4, 10, 2), resolution="test")
    # September: one alarm, resolved as a test on the 20th: a test for any cut-off after that.
    seed.alarm(wita(9, 10, 8), resolved_at=wita(9, 20, 8), resolution="test")
    # Outside the quarter: 2026-06-30 23:59 WITA and 2026-10-01 00:00 WITA.
    seed.alarm(wita(6, 30, 23, 59), wita(7, 1, 0, 5), resolved_at=wita(7, 1, 1), resolution="real")
    seed.alarm(wita(10, 1), wita(10, 1, 0, 3))
    # Fire alarms are another section's: six in September would make it a shown month.
    for day in range(1, 7):
        seed.alarm(wita(9, day, 12), wita(9, day, 12, 1), kind="fire")
    return conn


def build(conn: sqlite3.Connection, period: str, now: float = wita(12, 1), threshold: int = 5) -> Section:
    the_period = Period.parse(period)
    context = Context(
        conn,
        the_period,
        min(now, the_period.end),
        EvaluationSettings(suppression_threshold=threshold),
        CommissioningSettings(),
        load_catalogue(),
    )
    return sapa.section(context)


def rows(section: Section, table_id: str) -> list[tuple[object, ...]]:
    [table] = [table for table in section.tables if table.id == table_id]
    return table.rows


def test_suppression_hides_one_to_four_and_totals_over_them() -> None:
    assert [suppress(count, 5) for count in (0, 1, 4, 5, 12)] == [0, SUPPRESSED, SUPPRESSED, 5, 12]
    assert suppress(2, 3) is SUPPRESSED and suppress(3, 3) == 3
    assert suppressed_total([5, 0, 7], 12, 5) == 12
    assert suppressed_total([5, SUPPRESSED, 7], 15, 5) is SUPPRESSED
    # The acknowledged of a month: hidden when they, or the rest, are 1 to 4.
    # Of 10: 0 (rest 10), 3, 5 (rest 5), 7 (rest 3), 10 (rest 0).
    assert [suppress_part(part, 10, 5) for part in (0, 3, 5, 7, 10)] == [0, SUPPRESSED, 5, SUPPRESSED, 10]
    assert suppress_part(0, 0, 5) == 0
    for bad in ((-1, 5), (1.5, 5), (True, 5), (3, 1)):
        with pytest.raises(ValueError):
            suppress(*bad)
    with pytest.raises(ValueError):
        suppress_part(6, 5, 5)


def test_the_quarter_counts_by_wita_month_and_hides_the_small_month_and_the_totals(
    seeded: sqlite3.Connection,
) -> None:
    section = build(seeded, "2026-Q3")
    assert (section.id, section.title_key, section.intro_key) == (
        "sapa",
        "evaluation_sapa_title",
        "evaluation_sapa_intro",
    )
    [by_month, times] = section.tables
    assert by_month.id == "sapa-alarms-by-month" and by_month.total
    assert [column.key for column in by_month.columns] == ["month", "alarms", "acknowledged"]
    assert by_month.title_key == "evaluation_table_sapa_alarms_by_month"
    assert by_month.definition_key == "evaluation_def_sapa_alarms_by_month"
    assert by_month.note_keys == times.note_keys == ("evaluation_note_suppressed",)  # every month is over
    # Each month as of its own end. July: 7 + the 23:59:59 one = 8; that one was acknowledged in August,
    # so 7 acknowledged and 1 left: the 1 is small, so the 7 are hidden (8 - 7 would give it away).
    # August: 3 (from 00:00 WITA on the 1st), 2 acknowledged: both 1..4, hidden.
    # September: the one alarm was resolved as a test on the 20th, before September's end: 0.
    # Total: 11 and 9, but they include hidden cells: hidden too.
    assert by_month.rows == [
        ("2026-07", 8, SUPPRESSED),
        ("2026-08", SUPPRESSED, SUPPRESSED),
        ("2026-09", 0, 0),
        ("total", SUPPRESSED, SUPPRESSED),
    ]
    # The count measured is the hidden total, so the times are hidden too: a hidden month's case is in them.
    assert times.id == "sapa-time-to-acknowledge"
    assert [column.key for column in times.columns] == ["months", "alarms_measured", "median_min", "p90_min"]
    assert times.rows == [("2026-07/2026-09", SUPPRESSED, SUPPRESSED, SUPPRESSED)]
    [chart] = section.charts
    assert chart.id == "sapa-alarms-by-month-chart" and chart.table_id == "sapa-alarms-by-month"
    assert chart.labels == ("2026-07", "2026-08", "2026-09")
    assert [series.values for series in chart.series] == [(8, None, 0)]  # the hidden month is a gap


def test_a_month_hides_the_acknowledged_when_the_unacknowledged_are_few(seeded: sqlite3.Connection) -> None:
    # July alone: 8 alarms, 7 acknowledged before July's end: the 1 left is small, so the 7 are hidden.
    july = build(seeded, "2026-07")
    assert rows(july, "sapa-alarms-by-month") == [("2026-07", 8, SUPPRESSED), ("total", 8, SUPPRESSED)]
    assert rows(july, "sapa-time-to-acknowledge") == [("2026-07", SUPPRESSED, SUPPRESSED, SUPPRESSED)]


def test_fewer_than_five_measured_hide_the_times_and_zero_shows(seeded: sqlite3.Connection) -> None:
    # August alone: 3 alarms, 2 acknowledged (10 and 20 minutes): the median of 2 is a case's time.
    august = build(seeded, "2026-08")
    assert rows(august, "sapa-alarms-by-month") == [
        ("2026-08", SUPPRESSED, SUPPRESSED),
        ("total", SUPPRESSED, SUPPRESSED),
    ]
    assert rows(august, "sapa-time-to-acknowledge") == [("2026-08", SUPPRESSED, SUPPRESSED, SUPPRESSED)]
    # September alone: nothing, shown as 0 with no time.
    september = build(seeded, "2026-09")
    assert rows(september, "sapa-alarms-by-month") == [("2026-09", 0, 0), ("total", 0, 0)]
    assert rows(september, "sapa-time-to-acknowledge") == [("2026-09", 0, None, None)]


def test_a_larger_threshold_hides_more_and_a_total_of_shown_months_is_shown(seeded: sqlite3.Connection) -> None:
    # Threshold 3: August's 3 shows, its 2 acknowledged (and its 1 never acknowledged) do not;
    # July's 7 acknowledged neither (its 1 left).
    assert rows(build(seeded, "2026-Q3", threshold=3), "sapa-alarms-by-month") == [
        ("2026-07", 8, SUPPRESSED),
        ("2026-08", 3, SUPPRESSED),
        ("2026-09", 0, 0),
        ("total", 11, SUPPRESSED),  # 8 + 3 + 0
    ]


def test_a_report_made_before_the_period_ends_shows_only_the_months_that_are_over(
    seeded: sqlite3.Connection,
) -> None:
    # Made on 2026-09-15 00:00 WITA: July and August are over, September is not and is left out whole
    # (its alarm, not yet resolved as a test, would be a live count). The total is over July and August.
    provisional = build(seeded, "2026-Q3", now=wita(9, 15))
    assert rows(provisional, "sapa-alarms-by-month") == [
        ("2026-07", 8, SUPPRESSED),
        ("2026-08", SUPPRESSED, SUPPRESSED),
        ("total", SUPPRESSED, SUPPRESSED),
    ]
    notes = ("evaluation_note_suppressed", "evaluation_note_sapa_months_not_over")
    assert [table.note_keys for table in provisional.tables] == [notes, notes]
    assert [chart.labels for chart in provisional.charts] == [("2026-07", "2026-08")]
    assert rows(provisional, "sapa-time-to-acknowledge") == [("2026-07/2026-08", SUPPRESSED, SUPPRESSED, SUPPRESSED)]
    # At the very end of August (the cut-off is then August's end): August is over, and counted.
    assert rows(build(seeded, "2026-Q3", now=wita(9, 1)), "sapa-alarms-by-month")[1][0] == "2026-08"
    # September under way, alone: no month is over, so no row, no total and no chart, only the notes.
    under_way = build(seeded, "2026-09", now=wita(9, 30, 23, 59))
    for table in under_way.tables:
        assert (table.rows, table.total, table.empty_key) == ([], False, "evaluation_sapa_no_month_over")
        assert table.note_keys == notes
    assert under_way.charts == []
    # The same closed quarter made twice, later, gives the same rows.
    assert build(seeded, "2026-Q3", now=wita(10, 2)).tables == build(seeded, "2026-Q3", now=wita(12, 31)).tables


def test_reloading_a_report_under_way_does_not_follow_the_cases(conn: sqlite3.Connection) -> None:
    # The reviewer's scenario: October's report made at 10:00 and again at 10:10, a SAPA alarm opened between.
    seed = Seeder(conn)
    for day in range(1, 8):  # September: 7 alarms, acknowledged after a minute
        seed.alarm(wita(9, day, 9), wita(9, day, 9, 1))
    before = build(conn, "2026-Q4", now=wita(10, 20, 10))
    seed.alarm(wita(10, 20, 10, 7))
    after = build(conn, "2026-Q4", now=wita(10, 20, 10, 10))
    assert before.tables == after.tables and [table.rows for table in after.tables] == [[], []]
    # The quarter under way shows nothing of October either; Q3 (over) shows September's 7.
    assert rows(build(conn, "2026-Q3", now=wita(10, 20, 10, 10)), "sapa-alarms-by-month")[-2:] == [
        ("2026-09", 7, 7),
        ("total", 7, 7),
    ]


def test_a_month_is_counted_as_of_its_own_end_in_the_month_quarter_and_year_reports(
    conn: sqlite3.Connection,
) -> None:
    seed = Seeder(conn)
    for day in range(1, 6):  # July: 5 acknowledged within July, after 1 to 5 minutes
        seed.alarm(wita(7, day, 9), wita(7, day, 9, day))
    for day in range(6, 11):  # 5 never acknowledged
        seed.alarm(wita(7, day, 9))
    seed.alarm(wita(7, 31, 23, 50), wita(8, 1, 0, 30))  # acknowledged in August
    seed.alarm(wita(7, 20, 9), resolved_at=wita(8, 3, 9), resolution="test")  # resolved as a test in August
    # As of July's end: 12 alarms (the one resolved as a test later is still an alarm for July), 5
    # acknowledged, 7 not. As of a later cut-off, July would read 11 and 6.
    made_after_the_year = datetime(2027, 1, 5, tzinfo=WITA).timestamp()
    for period in ("2026-07", "2026-Q3", "2026"):
        by_month = rows(build(conn, period, now=made_after_the_year), "sapa-alarms-by-month")
        [july] = [row for row in by_month if row[0] == "2026-07"]
        assert july == ("2026-07", 12, 5), period
        others = [row for row in by_month[:-1] if row[0] != "2026-07"]
        assert all(row[1:] == (0, 0) for row in others), period  # no other month has an alarm
        assert by_month[-1] == ("total", 12, 5), period  # 12 + 0 + ... and 5 + 0 + ...


def test_times_show_only_over_ten_and_when_every_month_is_shown(
    conn: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    seed = Seeder(conn)
    # The reviewer's scenario: August, 2 alarms (a hidden month), one acknowledged after 317 minutes, and
    # September, 5 acknowledged after 1 to 5 minutes. Q3's p90 would be August's 317: hidden with its count.
    seed.alarm(wita(8, 5, 1), wita(8, 5, 1) + 317 * MINUTE)
    seed.alarm(wita(8, 9, 1), wita(8, 9, 1) + 3 * MINUTE)
    for day in range(1, 6):
        seed.alarm(wita(9, day, 9), wita(9, day, 9, day))
    hidden = [("2026-07/2026-09", SUPPRESSED, SUPPRESSED, SUPPRESSED)]
    assert rows(build(conn, "2026-Q3"), "sapa-time-to-acknowledge") == hidden
    # September alone: every month shown, but 5 times are fewer than 10.
    assert rows(build(conn, "2026-09"), "sapa-time-to-acknowledge") == [("2026-09", 5, SUPPRESSED, SUPPRESSED)]
    # Five more in September, after 6, 7, 8, 9 and 30 minutes, and one recorded as acknowledged 2 minutes
    # before its opening (a bad clock): acknowledged, but not timed.
    for day, minutes in zip((6, 7, 8, 9, 10), (6, 7, 8, 9, 30), strict=True):
        seed.alarm(wita(9, day, 9), wita(9, day, 9, minutes))
    seed.alarm(wita(9, 11, 9), wita(9, 11, 8, 58))
    with caplog.at_level(logging.WARNING, logger="dashboard.evaluation.sapa"):
        september = build(conn, "2026-09")
    # 11 acknowledged; the 10 times 1..9 and 30 minutes: median (5 + 6) / 2 = 5.5, p90 rank ceil(9) = 9 -> 9.
    assert rows(september, "sapa-alarms-by-month") == [("2026-09", 11, 11), ("total", 11, 11)]
    assert rows(september, "sapa-time-to-acknowledge") == [("2026-09", 11, 5.5, 9.0)]
    [warning] = [record for record in caplog.records if "before the alarm's opening" in record.getMessage()]
    assert "1 SAPA" in warning.getMessage() and MARKER not in warning.getMessage()
    # Q3 still holds the hidden August: its times stay hidden, though September's show.
    assert rows(build(conn, "2026-Q3"), "sapa-time-to-acknowledge") == hidden


def test_nothing_of_a_case_reaches_the_section(seeded: sqlite3.Connection) -> None:
    for period in ("2026-Q3", "2026-07", "2026-08", "2026"):
        section = build(seeded, period)
        text = repr(section)
        for secret in (MARKER, BUTTON, GATEWAY, SITE, KECAMATAN, "sapadesk", "false_alarm"):
            assert secret not in text, (period, secret)
        cells = [value for table in section.tables for row in table.rows for value in row[1:]]
        # Q3's hidden counts are August's 3 alarms and 2 acknowledged, and its 1 never acknowledged.
        assert not {3, 2, 1} & {value for value in cells if isinstance(value, int | float)}, period
        assert {column.key for table in section.tables for column in table.columns} == {
            "month",
            "months",
            "alarms",
            "acknowledged",
            "alarms_measured",
            "median_min",
            "p90_min",
        }
