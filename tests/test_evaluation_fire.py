"""The Fire Button section of the evaluation: every cell of a hand-seeded quarter, SAPA kept out, reproducible."""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from dashboard.alarms import store as alarm_store
from dashboard.commissioning.settings import CommissioningSettings
from dashboard.evaluation import fire
from dashboard.evaluation.build import Context
from dashboard.evaluation.model import Section, Table
from dashboard.evaluation.period import Period
from dashboard.evaluation.settings import EvaluationSettings
from dashboard.reports.categories import load_catalogue

WITA = ZoneInfo("Asia/Makassar")
MINUTE = 60.0
HOUR = 3600.0
#: Every identifying string of the SAPA buttons, gateway and kecamatan holds this: none may reach the section.
MARKER = "rahasia"
SAPA_BUTTON = f"sapa-{MARKER}-1"  # on a SAPA-only gateway
SAPA_MIXED = f"sapa-{MARKER}-2"  # on gw-A, next to fire buttons
SAPA_GATEWAY = f"gw-{MARKER}"
SAPA_KECAMATAN = f"Kecamatan {MARKER}"
#: 2026-Q3 in WITA: July 1st to October 1st, 92 days of 24 hours.
QUARTER_HOURS = 92 * 24  # 2208


def wita(month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(2026, month, day, hour, minute, tzinfo=WITA).timestamp()


class Seeder:
    """Rows written straight into a fresh store, as the dashboard would have written them."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.numbers = {"fire": 0, "sapa": 0}
        self.ids: dict[str, int] = {}

    def button(self, button: str, gw: str, transport: str, kecamatan: str | None, kind: str = "fire") -> None:
        self.conn.execute(
            "INSERT INTO buttons (id, gw, kind, transport, site_name, lat, lon, label, updated_at, kecamatan)"
            " VALUES (?, ?, ?, ?, ?, -4.35, 122.38, NULL, ?, ?)",
            (button, gw, kind, transport, f"site of {button}", wita(1, 1), kecamatan),
        )

    def alarm(
        self,
        name: str,
        button: str,
        opened: float,
        *,
        ack: float | None = None,
        dispatched: float | None = None,
        resolved: float | None = None,
        resolution: str | None = None,
        test: int = 0,
        escalated: float | None = None,
        kind: str = "fire",
    ) -> None:
        self.numbers[kind] += 1
        number = self.numbers[kind]
        alarm_id = 16 * number + (1 if kind == "fire" else 2)
        self.ids[name] = alarm_id
        state = "resolved" if resolved else "dispatched" if dispatched else "acknowledged" if ack else "unacknowledged"
        self.conn.execute(
            "INSERT INTO alarms (id, number, button, gw, kind, state, first_event_id, last_event_id, first_press_ts,"
            " opened_at, last_press_at, acknowledged_at, dispatched_at, resolved_at, resolution, test, escalation,"
            " escalated_at) VALUES (?, ?, ?, 'gw', ?, ?, ?, ?, '2026-01-01T00:00:00+08:00', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (alarm_id, number, button, kind, state, f"ev-{name}", f"ev-{name}", opened, opened, ack, dispatched,
             resolved, resolution, test, 1 if escalated else 0, escalated),
        )  # fmt: skip

    def trouble(
        self,
        trouble_type: str,
        began: float,
        cleared: float | None,
        *,
        gw: str | None = None,
        button: str | None = None,
        kind: str | None = None,
        subject: str | None = None,
        detected: float | None = None,
    ) -> None:
        """A trouble; ``detected`` (when it was recorded) is ``began`` unless it was back-dated."""
        key = f"{trouble_type}:{button or gw or subject}:{began}"
        self.conn.execute(
            "INSERT INTO troubles (key, type, gw, button, subject, kind, detail, began_at, detected_at, cleared_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 'seeded', ?, ?, ?)",
            (key, trouble_type, gw, button, subject, kind, began, began if detected is None else detected, cleared),
        )

    def notice(self, alarm: str, status: str, finished: float | None, kind: str = "fire") -> None:
        self.conn.execute(
            "INSERT INTO notifications (alarm_id, kind, event, step, webhook, payload, status, created_at, next_at,"
            " finished_at) VALUES (?, ?, 'alarm.escalated', 1, 'siren', '{}', ?, ?, ?, ?)",
            (self.ids[alarm], kind, status, (finished or 0) - 5, (finished or 0) - 5, finished),
        )

    def commissioning(
        self, gw: str, finished: float, verdict: str, presses: dict[str, tuple[str, float]], kinds: str = "fire"
    ) -> None:
        """A finished session with its report: ``presses`` is button -> (its result, when it was pressed)."""
        session = self.conn.execute(
            "INSERT INTO commissioning_sessions (gw, started_by, started_at, expires_at, state, finished_by,"
            " finished_at, verdict) VALUES (?, 'tek', ?, ?, 'finished', 'tek', ?, ?) RETURNING id",
            (gw, finished - HOUR, finished + HOUR, finished, verdict),
        ).fetchone()[0]
        for position, (button, (_, pressed)) in enumerate(presses.items()):
            kind = "sapa" if button.startswith("sapa") else "fire"
            self.conn.execute(
                "INSERT INTO commissioning_buttons (session_id, button, position, kind, transport, armed_at,"
                " pressed_at, updated_at) VALUES (?, ?, ?, ?, 'gpio', ?, ?, ?)",
                (session, button, position, kind, finished - HOUR, pressed, finished),
            )
        results = {"verdict": verdict, "buttons": [{"id": b, "result": r} for b, (r, _) in presses.items()]}
        self.conn.execute(
            "INSERT INTO commissioning_reports (session_id, gw, kinds, created_at, verdict, results, pdf)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (session, gw, kinds, finished, verdict, json.dumps(results), b"%PDF-1.4"),
        )


@pytest.fixture
def seeded(conn: sqlite3.Connection) -> Seeder:
    seed = Seeder(conn)
    # Fire buttons: gw-A carries two (and a SAPA one), gw-B two, gw-C one; the SAPA gateway only SAPA.
    seed.button("f-a1", "gw-A", "gpio", "Andoolo")
    seed.button("f-a2", "gw-A", "lora", "Andoolo")
    seed.button("f-b1", "gw-B", "lora", "Baito")
    seed.button("f-b2", "gw-B", "gpio", None)  # no kecamatan: "unknown"
    seed.button("f-c1", "gw-C", "gpio", "Konda")
    seed.button(SAPA_BUTTON, SAPA_GATEWAY, "gpio", SAPA_KECAMATAN, kind="sapa")
    seed.button(SAPA_MIXED, "gw-A", "lora", SAPA_KECAMATAN, kind="sapa")

    # -- alarms ------------------------------------------------------------------------------------------
    # A1: 2026-07-31 23:59 WITA is still July; acknowledged after 2 min, unit sent after 5, resolved real after 60.
    a1 = wita(7, 31, 23, 59)
    seed.alarm("A1", "f-a1", a1, ack=a1 + 2 * MINUTE, dispatched=a1 + 5 * MINUTE, resolved=a1 + HOUR,
               resolution="real")  # fmt: skip
    # A2: 2026-07-31 16:00 UTC is 2026-08-01 00:00 WITA: August. Acknowledged after 4 min, false alarm after 10.
    a2 = datetime(2026, 7, 31, 16, 0, tzinfo=UTC).timestamp()
    seed.alarm("A2", "f-a2", a2, ack=a2 + 4 * MINUTE, resolved=a2 + 10 * MINUTE, resolution="false_alarm")
    # A3: opened on the quarter's last evening, resolved after its end: open at the end, no resolve time.
    a3 = wita(9, 30, 20)
    seed.alarm("A3", "f-b1", a3, ack=a3 + 10 * MINUTE, dispatched=a3 + 20 * MINUTE, resolved=wita(10, 1, 2),
               resolution="real", escalated=a3 + 3 * MINUTE)  # fmt: skip
    # A4: opened before the quarter (2026-06-30), resolved in it: not counted anywhere.
    a4 = wita(6, 30, 23)
    seed.alarm("A4", "f-a1", a4, ack=a4 + MINUTE, resolved=a4 + 2 * HOUR, resolution="real")
    # T1: raised in test mode; T2: raised as a real alarm, resolved as a test before the cut-off.
    seed.alarm("T1", "f-a1", wita(7, 10, 10), resolved=wita(7, 10, 10, 1), resolution="test", test=1)
    t2 = wita(9, 20, 9)
    seed.alarm("T2", "f-b2", t2, ack=t2 + MINUTE, resolved=t2 + 2 * MINUTE, resolution="test")
    # A5 (kecamatan unknown): acknowledged after 6 min, unit after 12, resolved real after 90, escalated.
    a5 = wita(9, 5, 12)
    seed.alarm("A5", "f-b2", a5, ack=a5 + 6 * MINUTE, dispatched=a5 + 12 * MINUTE, resolved=a5 + 90 * MINUTE,
               resolution="real", escalated=a5 + 2 * MINUTE)  # fmt: skip
    # A6: escalated, but acknowledged and resolved (as a false alarm) only after the quarter: open at the end.
    a6 = wita(8, 20, 8)
    seed.alarm("A6", "f-a2", a6, ack=wita(10, 2), resolved=wita(10, 3), resolution="false_alarm",
               escalated=a6 + 2 * MINUTE)  # fmt: skip
    # A7: acknowledged after 8 min, false alarm after 30.
    a7 = wita(7, 15, 14)
    seed.alarm("A7", "f-b1", a7, ack=a7 + 8 * MINUTE, resolved=a7 + 30 * MINUTE, resolution="false_alarm")
    # A8: acknowledged after 20 min, unit after 30, resolved real after 45.
    a8 = wita(9, 10, 10)
    seed.alarm("A8", "f-b1", a8, ack=a8 + 20 * MINUTE, dispatched=a8 + 30 * MINUTE, resolved=a8 + 45 * MINUTE,
               resolution="real")  # fmt: skip
    # A9: never acknowledged; resolved as a test only after the quarter: at the cut-off a real alarm, still open.
    seed.alarm("A9", "f-c1", wita(9, 25, 10), resolved=wita(10, 2), resolution="test")
    # SAPA: an alarm in the quarter, acknowledged, resolved, escalated.
    sapa = wita(8, 10, 10)
    seed.alarm("S1", SAPA_BUTTON, sapa, ack=sapa + 3 * MINUTE, resolved=sapa + 20 * MINUTE, resolution="real",
               escalated=sapa + MINUTE, kind="sapa")  # fmt: skip

    # -- notices: one delivered in each month; none counted outside the quarter, failed, or SAPA --------------
    seed.notice("A1", "sent", datetime(2026, 7, 31, 15, 59, tzinfo=UTC).timestamp())  # 23:59 WITA: July
    seed.notice("A2", "sent", datetime(2026, 7, 31, 16, 0, tzinfo=UTC).timestamp())  # 00:00 WITA: August
    seed.notice("A6", "failed", wita(8, 20, 9))
    seed.notice("A5", "sent", a5 + 3 * MINUTE)  # September
    seed.notice("A3", "sent", wita(10, 1))  # the quarter's end: not in it
    seed.notice("A4", "sent", wita(6, 30, 23, 30))  # before it
    seed.notice("S1", "sent", sapa + 2 * MINUTE, kind="sapa")

    # -- troubles ----------------------------------------------------------------------------------------
    # gw-A: offline from before the quarter to 12:00 on its first day (12 h in it); silent 10 h and health
    # unreadable 15 h on Aug 10, overlapping (00:00-20:00: 20 h once); its radio out Sep 1 (24 h).
    seed.trouble("gateway_offline", wita(6, 30, 12), wita(7, 1, 12), gw="gw-A")
    seed.trouble("gateway_silent", wita(8, 10, 0), wita(8, 10, 10), gw="gw-A")
    seed.trouble("gateway_health_unreadable", wita(8, 10, 5), wita(8, 10, 20), gw="gw-A")
    seed.trouble("radio_missing", wita(9, 1), wita(9, 2), gw="gw-A")
    seed.trouble("gateway_clock", wita(7, 15, 0), wita(7, 15, 1, 30), gw="gw-A")  # 1.5 h, no outage
    seed.trouble("press_set_aside", wita(8, 2), wita(8, 3), gw="gw-A")  # caused by presses: not listed
    # f-a2 (LoRa): missing Sep 1 12:00 - Sep 3 00:00 (36 h), over its gateway's radio outage: 48 h together.
    seed.trouble("button_missing", wita(9, 1, 12), wita(9, 3), gw="gw-A", button="f-a2", kind="fire")
    # f-a1 (wired): wiring fault from 22:00 on the last day, never cleared; stuck from 23:00, cleared after the end.
    seed.trouble("button_wiring", wita(9, 30, 22), None, gw="gw-A", button="f-a1", kind="fire")
    seed.trouble("button_stuck", wita(9, 30, 23), wita(10, 1, 5), gw="gw-A", button="f-a1", kind="fire")
    # gw-B: offline 3 h on Aug 1, and from Sep 30 12:00 to after the end (12 h in the quarter); radio out Jul 5.
    seed.trouble("gateway_offline", wita(8, 1, 0), wita(8, 1, 3), gw="gw-B")
    seed.trouble("gateway_offline", wita(9, 30, 12), wita(10, 1, 6), gw="gw-B")
    seed.trouble("radio_missing", wita(7, 5), wita(7, 6), gw="gw-B")
    # f-b1 (LoRa): out of service Jul 5 12:00 - Jul 7 00:00 (36 h), over the radio outage: 48 h together.
    seed.trouble("button_out_of_service", wita(7, 5, 12), wita(7, 7), gw="gw-B", button="f-b1", kind="fire")
    seed.trouble("low_battery", wita(7, 20), wita(7, 22, 6), gw="gw-B", button="f-b2", kind="fire")  # 54 h
    seed.trouble("webhook_failing", wita(8, 5, 0), wita(8, 5, 2), subject="siren", kind="fire")  # 2 h
    # Not the fire section's: before the quarter, not about a gateway, a SAPA-only gateway, a SAPA button.
    seed.trouble("gateway_offline", wita(6, 1), wita(6, 2), gw="gw-C")
    seed.trouble("timeseries_failing", wita(8, 1), wita(8, 2), subject="influxdb")
    seed.trouble("gateway_offline", wita(8, 15), wita(8, 16), gw=SAPA_GATEWAY)
    seed.trouble("button_missing", wita(7, 20), wita(7, 25), gw="gw-A", button=SAPA_MIXED, kind="sapa")

    # -- commissioning -----------------------------------------------------------------------------------
    # gw-A passed on June 1st: f-a1 and f-a2 commissioned. On Sep 15 a session with the SAPA button failed,
    # but f-a2 passed in it: its press is a test within 30 days of the cut-off.
    seed.commissioning("gw-A", wita(6, 1, 12), "passed", {"f-a1": ("passed", wita(6, 1, 11)),
                                                          "f-a2": ("passed", wita(6, 1, 11))})  # fmt: skip
    seed.commissioning("gw-A", wita(9, 15, 12), "failed", {"f-a2": ("passed", wita(9, 15, 10)),
                                                           SAPA_MIXED: ("failed", wita(9, 15, 10))},
                       kinds="fire,sapa")  # fmt: skip
    # gw-B in May: f-b1 failed, f-b2 passed (commissioned, but its press is old: T2 is its recent test).
    seed.commissioning("gw-B", wita(5, 1, 12), "failed", {"f-b1": ("failed", None), "f-b2": ("passed", wita(5, 1, 11))})
    # gw-B again: f-b1 pressed before the end, but the report was made after it: not yet commissioned.
    seed.commissioning("gw-B", wita(10, 2, 9), "passed", {"f-b1": ("passed", wita(9, 30, 23))})
    seed.commissioning(SAPA_GATEWAY, wita(8, 1), "passed", {SAPA_BUTTON: ("passed", wita(8, 1))}, kinds="sapa")
    conn.commit()
    return seed


def build(conn: sqlite3.Connection, now: float, period: str = "2026-Q3") -> Section:
    the_period = Period.parse(period)
    context = Context(
        conn,
        the_period,
        min(now, the_period.end),
        EvaluationSettings(),
        CommissioningSettings(test_period_days=30),
        load_catalogue(),
    )
    return fire.section(context)


def table(section: Section, table_id: str) -> Table:
    [found] = [t for t in section.tables if t.id == table_id]
    return found


def keys(found: Table) -> list[str]:
    return [column.key for column in found.columns]


NOW = wita(11, 15)  # the quarter is over: the cut-off is its end, 2026-10-01 00:00 WITA


def test_the_section_has_its_tables_and_charts_with_their_texts(seeded: Seeder) -> None:
    section = build(seeded.conn, NOW)
    assert (section.id, section.title_key, section.intro_key) == ("fire", "evaluation_fire_title",
                                                                  "evaluation_fire_intro")  # fmt: skip
    ids = ["fire-alarms-by-kecamatan", "fire-response-times", "fire-outcomes", "fire-availability", "fire-troubles",
           "fire-commissioning"]  # fmt: skip
    assert [t.id for t in section.tables] == ids
    from dashboard.i18n import MESSAGES

    for found in section.tables:
        key = found.id.replace("-", "_")
        assert (found.title_key, found.definition_key) == (f"evaluation_table_{key}", f"evaluation_def_{key}")
        assert found.total is (found.id != "fire-response-times")
        for language in ("id", "en"):
            texts = MESSAGES[language]
            assert found.title_key in texts and found.definition_key in texts
            assert all(c.literal or c.label_key in texts for c in found.columns), found.id
    for language in ("id", "en"):
        assert {"evaluation_fire_title", "evaluation_fire_intro", "evaluation_series_alarms"} <= MESSAGES[
            language
        ].keys()
        assert all(f"evaluation_measure_{m}" in MESSAGES[language] for m in fire.MEASURES)
        assert all(chart.title_key in MESSAGES[language] for chart in section.charts)


def test_alarms_by_kecamatan_count_non_test_alarms_by_their_wita_month(seeded: Seeder) -> None:
    found = table(build(seeded.conn, NOW), "fire-alarms-by-kecamatan")
    assert keys(found) == ["kecamatan", "2026-07", "2026-08", "2026-09", "total"]
    assert [c.literal for c in found.columns] == [False, True, True, True, False]
    assert found.rows == [
        # Andoolo: A1 (Jul 31 23:59), A2 (Aug 1 00:00) and A6 (Aug); not A4 (June) nor T1 (a test).
        ("Andoolo", 1, 2, 0, 3),
        # Baito: A7 (Jul), A8 and A3 (Sep; A3 resolved after the end still counts as opened in September).
        ("Baito", 1, 0, 2, 3),
        # Konda: A9 (Sep), resolved as a test only after the cut-off: a real alarm at the cut-off.
        ("Konda", 0, 0, 1, 1),
        # f-b2 has no kecamatan: A5; T2 is a test.
        ("unknown", 0, 0, 1, 1),
        # 1+1 = 2, 2+0 = 2, 0+2+1+1 = 4; 3+3+1+1 = 8.
        ("total", 2, 2, 4, 8),
    ]
    names = found.columns[0].names
    assert names is not None and names["unknown"]["en"] == "Unknown" and names["total"]["id"] == "Jumlah"


def test_response_times_are_medians_and_p90s_of_the_steps_reached_before_the_cut_off(seeded: Seeder) -> None:
    found = table(build(seeded.conn, NOW), "fire-response-times")
    assert keys(found) == ["measure", "alarms", "reached", "median_min", "p90_min", "not_reached"]
    assert found.columns[0].code_prefix == "evaluation_measure_"
    # Non-test alarms: A1 A2 A3 A5 A6 A7 A8 A9 = 8.
    assert found.rows == [
        # Acknowledged: A1 2, A2 4, A5 6, A7 8, A3 10, A8 20 min (A6 only after the end, A9 never):
        # median (6 + 8) / 2 = 7; p90 rank ceil(0.9 * 6) = 6: 20.
        ("acknowledge", 8, 6, 7.0, 20.0, 2),
        # Unit sent: A1 5, A5 12, A3 20, A8 30: median (12 + 20) / 2 = 16; rank ceil(3.6) = 4: 30.
        ("dispatch", 8, 4, 16.0, 30.0, 4),
        # Resolved before the end: A2 10, A7 30, A8 45, A1 60, A5 90 (not A3, A6, A9): median 45; rank 5: 90.
        ("resolve", 8, 5, 45.0, 90.0, 3),
    ]


def test_outcomes_by_month_split_tests_real_false_and_open_at_the_cut_off(seeded: Seeder) -> None:
    found = table(build(seeded.conn, NOW), "fire-outcomes")
    assert keys(found) == ["month", "alarms", "tests", "real", "false_alarms", "open_at_end", "false_alarm_rate",
                           "test_rate", "escalated", "notices_sent"]  # fmt: skip
    assert found.rows == [
        # July: A1 (real), A7 (false), T1 (test): false rate 1/2 = 50 %, test rate 1/3 = 33.3 %; notice at 23:59.
        ("2026-07", 3, 1, 1, 1, 0, 50.0, 33.3, 0, 1),
        # August: A2 (false), A6 (open: its false-alarm resolution came after the end, its escalation before):
        # false rate 1/1 = 100 %, test rate 0/2 = 0 %; the notice at 00:00 WITA Aug 1 (failed one not counted).
        ("2026-08", 2, 0, 0, 1, 1, 100.0, 0.0, 1, 1),
        # September: A5 and A8 real, A3 and A9 open, T2 a test: false rate 0/2 = 0 %, test rate 1/5 = 20 %;
        # escalated A3 and A5; the notice of A5 (the one at Oct 1 00:00 is after the quarter).
        ("2026-09", 5, 1, 2, 0, 2, 0.0, 20.0, 2, 1),
        # 3+2+5 = 10 = 2 tests + 3 real + 2 false + 3 open; false rate 2/5 = 40 %, test rate 2/10 = 20 %.
        ("total", 10, 2, 3, 2, 3, 40.0, 20.0, 3, 3),
    ]


def test_availability_is_the_time_not_covered_by_outages_up_to_the_cut_off(seeded: Seeder) -> None:
    found = table(build(seeded.conn, NOW), "fire-availability")
    assert keys(found) == ["gateway", "kecamatan", "fire_buttons", "gateway_available", "buttons_available",
                           "worst_button_available"]  # fmt: skip
    # Gateway names are sites: the table is in the signed-in report only, never open data.
    assert found.open_data is False
    # The quarter has 2208 h. gw-A carries a SAPA button too: no row of its own (its name would point at a SAPA
    # site), but it counts in the total row with these figures:
    # gw-A: 12 h (offline into Jul 1) + 20 h (silent and unreadable overlapping) = 32 h: 2176/2208 = 98.55 %.
    # f-a1 (wired): + 2 h (wiring and stuck overlap, to the end) = 34 h: 2174/2208 = 98.46 %.
    # f-a2 (LoRa): + 48 h (radio and missing overlap) = 80 h: 2128/2208 = 96.38 %.
    # Mean (2174 + 2128) / 2 / 2208 = 97.42 %. The SAPA button's trouble counts for nothing.
    # So gw-A is (2 buttons, 98.6, 97.4, 96.4).
    assert found.rows == [
        # gw-B: 3 h + 12 h (offline until after the end, counted to it) = 15 h: 2193/2208 = 99.32 %.
        # f-b1 (LoRa): + 48 h (radio and out of service overlap) = 63 h: 2145/2208 = 97.15 %.
        # f-b2 (wired): the radio is none of its business, low battery no outage: 15 h: 99.32 %.
        # Mean (2145 + 2193) / 2 / 2208 = 98.23 %. Kecamatan: Baito (f-b2 has none).
        ("gw-B", "Baito", 2, 99.3, 98.2, 97.1),
        # gw-C: its only outage ended before the quarter.
        ("gw-C", "Konda", 1, 100.0, 100.0, 100.0),
        # Every gateway, gw-A included, weighs the same: 2 + 2 + 1 = 5 buttons; (98.6 + 99.3 + 100) / 3 = 99.3;
        # (97.4 + 98.2 + 100) / 3 = 98.53; the worst of all 96.4 (gw-A's f-a2).
        ("total", None, 5, 99.3, 98.5, 96.4),
    ]
    assert "gw-A" not in repr(found)


def test_troubles_begun_in_the_period_by_type_with_their_time_to_repair(seeded: Seeder) -> None:
    found = table(build(seeded.conn, NOW), "fire-troubles")
    assert keys(found) == ["type", "began", "repaired", "open_at_end", "median_repair_h", "p90_repair_h"]
    assert found.columns[0].code_prefix == "trouble_"
    assert found.rows == [
        ("gateway_offline", 2, 1, 1, 3.0, 3.0),  # gw-B 3 h, and one cleared after the end (gw-A's began in June)
        ("radio_missing", 2, 2, 0, 24.0, 24.0),  # gw-A and gw-B, 24 h each
        ("button_missing", 1, 1, 0, 36.0, 36.0),  # f-a2 (the SAPA button's is not listed)
        ("button_out_of_service", 1, 1, 0, 36.0, 36.0),
        ("button_stuck", 1, 0, 1, None, None),  # cleared after the end: open at it
        ("button_wiring", 1, 0, 1, None, None),
        ("gateway_clock", 1, 1, 0, 1.5, 1.5),
        ("gateway_health_unreadable", 1, 1, 0, 15.0, 15.0),
        ("gateway_silent", 1, 1, 0, 10.0, 10.0),
        ("low_battery", 1, 1, 0, 54.0, 54.0),
        ("webhook_failing", 1, 1, 0, 2.0, 2.0),
        # 2+2+9 = 13 begun, 10 repaired, 3 open. Sorted hours: 1.5 2 3 10 15 24 24 36 36 54:
        # median (15 + 24) / 2 = 19.5; p90 rank ceil(0.9 * 10) = 9: 36.
        ("total", 13, 10, 3, 19.5, 36.0),
    ]


def test_commissioning_and_periodic_tests_as_of_the_cut_off(seeded: Seeder) -> None:
    found = table(build(seeded.conn, NOW), "fire-commissioning")
    assert keys(found) == ["kecamatan", "fire_buttons", "commissioned", "commissioned_share",
                           "tested_in_period_share"]  # fmt: skip
    # Tested within 30 days of Oct 1: f-a2 (commissioning press Sep 15), f-b2 (test alarm T2 Sep 20). Not f-a1
    # (T1 on Jul 10), f-b1 (its session's report came after the end), f-c1 (A9 became a test after the end).
    assert found.rows == [
        ("Andoolo", 2, 2, 100.0, 50.0),  # both passed in June; f-a2 tested
        ("Baito", 1, 0, 0.0, 0.0),  # f-b1 failed in May, passed only after the end
        ("Konda", 1, 0, 0.0, 0.0),
        ("unknown", 1, 1, 100.0, 100.0),  # f-b2 passed in a failed session
        ("total", 5, 3, 60.0, 40.0),  # 3/5, 2/5
    ]


def test_last_tests_are_test_alarms_before_the_cut_off(seeded: Seeder) -> None:
    end = wita(10, 1)
    # T1 (test mode) and T2 (resolved as a test); A9 was resolved as a test only after the end.
    assert alarm_store.evaluation_last_tests(seeded.conn, "fire", end) == {"f-a1": wita(7, 10, 10),
                                                                           "f-b2": wita(9, 20, 9)}  # fmt: skip
    assert alarm_store.evaluation_last_tests(seeded.conn, "fire", end, since=wita(9, 1)) == {"f-b2": wita(9, 20, 9)}
    assert alarm_store.evaluation_last_tests(seeded.conn, "fire", wita(10, 3))["f-c1"] == wita(9, 25, 10)
    assert alarm_store.evaluation_last_tests(seeded.conn, "sapa", end) == {}


def test_charts_show_non_test_alarms_by_month_and_by_kecamatan(seeded: Seeder) -> None:
    by_month, by_kecamatan = build(seeded.conn, NOW).charts
    assert (by_month.id, by_month.table_id, by_month.horizontal) == ("fire-alarms-by-month", "fire-outcomes", False)
    assert by_month.labels == ("2026-07", "2026-08", "2026-09")
    [series] = by_month.series
    assert series.label_key == "evaluation_series_alarms" and series.values == (2.0, 2.0, 4.0)  # 3-1, 2, 5-1
    assert (by_kecamatan.id, by_kecamatan.table_id) == ("fire-alarms-by-kecamatan-chart", "fire-alarms-by-kecamatan")
    assert by_kecamatan.horizontal and by_kecamatan.labels == ("Andoolo", "Baito", "Konda", "unknown")
    assert by_kecamatan.series[0].values == (3.0, 3.0, 1.0, 1.0)


def test_no_sapa_button_gateway_or_kecamatan_reaches_the_section(seeded: Seeder) -> None:
    text = repr(build(seeded.conn, NOW))
    assert MARKER not in text
    assert "sapa" not in text.lower()


def test_a_provisional_report_counts_up_to_the_moment_it_is_made(seeded: Seeder) -> None:
    section = build(seeded.conn, wita(8, 1))  # exactly when A2 was opened: it is not in yet
    assert table(section, "fire-alarms-by-kecamatan").rows[-1] == ("total", 2, 0, 0, 2)  # A1 and A7
    # 31 days = 744 h; gw-A (no row: it carries a SAPA button) was offline 12 h of them: 732/744 = 98.39 %,
    # its buttons too (their own troubles come later). gw-B not at all yet (its Aug 1 outage begins at the
    # cut-off). f-b1: 48 h (radio and out of service): 696/744 = 93.55 %; (100 + 93.55) / 2 = 96.77 %.
    assert table(section, "fire-availability").rows == [
        ("gw-B", "Baito", 2, 100.0, 96.8, 93.5),
        ("gw-C", "Konda", 1, 100.0, 100.0, 100.0),
        # (98.4 + 100 + 100) / 3 = 99.47; (98.4 + 96.8 + 100) / 3 = 98.4; the worst 93.5 (f-b1).
        ("total", None, 5, 99.5, 98.4, 93.5),
    ]


def test_a_closed_quarter_gives_the_same_rows_whenever_it_is_made_again(seeded: Seeder) -> None:
    def snapshot(section: Section) -> list[object]:
        return [(t.id, t.rows) for t in section.tables] + [(c.id, c.labels, c.series) for c in section.charts]

    first = snapshot(build(seeded.conn, wita(10, 1, 0, 1)))
    # After the quarter: a new alarm, steps of an alarm still open at its end, a trouble, a notice, a test alarm,
    # a commissioning.
    seeded.alarm("A10", "f-a1", wita(10, 5), ack=wita(10, 5, 0, 1), resolved=wita(10, 5, 1), resolution="real")
    seeded.alarm("T3", "f-c1", wita(10, 6), resolved=wita(10, 6, 0, 1), resolution="test", test=1)
    seeded.conn.execute("UPDATE alarms SET dispatched_at = ? WHERE id = ?", (wita(10, 2, 1), seeded.ids["A6"]))
    seeded.trouble("gateway_offline", wita(10, 3), None, gw="gw-C")
    # A trouble back-dated into the quarter, but recorded after it: it must not change the closed quarter.
    seeded.trouble("gateway_offline", wita(9, 20), wita(9, 21), gw="gw-B", detected=wita(10, 1, 3))
    seeded.notice("A10", "sent", wita(10, 5, 0, 2))
    seeded.commissioning("gw-C", wita(10, 7), "passed", {"f-c1": ("passed", wita(10, 7))})
    seeded.conn.commit()
    assert snapshot(build(seeded.conn, wita(12, 31))) == first
    assert snapshot(build(seeded.conn, NOW)) == first


@pytest.mark.parametrize(("detected_hour", "counted"), [(23, True), (27, False)])
def test_a_trouble_counts_only_if_it_was_recorded_before_the_cut_off(
    seeded: Seeder, detected_hour: int, counted: bool
) -> None:
    """gw-C offline Sep 20 for 24 h, recorded Sep 30 23:00 (before the cut-off) or Oct 1 03:00 (after it)."""
    detected = wita(9, 30) + detected_hour * HOUR
    seeded.trouble("gateway_offline", wita(9, 20), wita(9, 21), gw="gw-C", detected=detected)
    seeded.conn.commit()
    section = build(seeded.conn, NOW)
    gw_c = [row for row in table(section, "fire-availability").rows if row[0] == "gw-C"]
    offline = [row for row in table(section, "fire-troubles").rows if row[0] == "gateway_offline"]
    if counted:
        # (2208 - 24) / 2208 = 98.91 %, for the gateway and its one wired button.
        assert gw_c == [("gw-C", "Konda", 1, 98.9, 98.9, 98.9)]
        # gw-B's 3 h, gw-C's 24 h, and gw-B's still open: median (3 + 24) / 2 = 13.5; p90 rank ceil(1.8) = 2: 24.
        assert offline == [("gateway_offline", 3, 2, 1, 13.5, 24.0)]
    else:
        assert gw_c == [("gw-C", "Konda", 1, 100.0, 100.0, 100.0)]
        assert offline == [("gateway_offline", 2, 1, 1, 3.0, 3.0)]


def test_negative_times_are_reached_or_repaired_but_left_out_of_the_times(
    seeded: Seeder, caplog: pytest.LogCaptureFixture
) -> None:
    # A11: acknowledged 2 min and resolved 1 min BEFORE it was opened (a clock set wrong): both steps were
    # reached, but their times would be negative. A gateway_clock trouble of gw-C cleared an hour before it began.
    a11 = wita(9, 26, 10)
    seeded.alarm("A11", "f-c1", a11, ack=a11 - 2 * MINUTE, resolved=a11 - MINUTE, resolution="real")
    seeded.trouble("gateway_clock", wita(9, 10, 12), wita(9, 10, 11), gw="gw-C")
    seeded.conn.commit()
    with caplog.at_level(logging.WARNING, logger="dashboard.evaluation.fire"):
        section = build(seeded.conn, NOW)
    # Non-test alarms: the 8 of before and A11 = 9. The times are those of before, A11's left out.
    assert table(section, "fire-response-times").rows == [
        ("acknowledge", 9, 7, 7.0, 20.0, 2),  # reached: 6 + A11; median and p90 as before (7, 20)
        ("dispatch", 9, 4, 16.0, 30.0, 5),  # A11 sent no unit
        ("resolve", 9, 6, 45.0, 90.0, 3),  # reached: 5 + A11; median and p90 as before (45, 90)
    ]
    troubles = {row[0]: row for row in table(section, "fire-troubles").rows}
    # gw-A's 1.5 h and gw-C's: both repaired, only the 1.5 h timed.
    assert troubles["gateway_clock"] == ("gateway_clock", 2, 2, 0, 1.5, 1.5)
    # 13 + 1 = 14 begun, 10 + 1 = 11 repaired, 3 open; the hours as before: median 19.5, p90 36.
    assert troubles["total"] == ("total", 14, 11, 3, 19.5, 36.0)
    [warning] = [r for r in caplog.records if r.name == "dashboard.evaluation.fire"]
    assert warning.levelno == logging.WARNING
    assert "2026-Q3" in warning.getMessage() and "2 alarm step(s)" in warning.getMessage()
    assert "1 trouble(s)" in warning.getMessage()
