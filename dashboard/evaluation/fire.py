"""The evaluation report's Fire Button section: alarms, response times, outcomes, availability, troubles, tests."""

from __future__ import annotations

import json
import logging
import sqlite3
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from statistics import fmean
from typing import TYPE_CHECKING, Any

from firmware_bridge.payloads import Kind

from ..alarms import store as alarm_store
from ..alarms.lifecycle import Resolution
from ..devices.supervision import PRESS_TROUBLES, TroubleType
from ..i18n import LANGUAGES, translate_to
from . import figures
from .model import Chart, Column, ColumnType, Section, Series, Table, Unit, Value

if TYPE_CHECKING:
    from .build import Context

log = logging.getLogger(__name__)

KIND = "fire"
#: The code of a kecamatan no button names, and of the total row's first cell (both shown through ``names``).
UNKNOWN = "unknown"
TOTAL = "total"
#: The alarm steps whose times are measured, in the order of the table's rows.
MEASURES = ("acknowledge", "dispatch", "resolve")
#: Troubles during which a gateway forwards no press at all.
GATEWAY_OUTAGES = frozenset(
    {TroubleType.GATEWAY_OFFLINE, TroubleType.GATEWAY_SILENT, TroubleType.GATEWAY_HEALTH_UNREADABLE}
)
#: Troubles during which one button's press may not raise an alarm.
BUTTON_OUTAGES = frozenset(
    {
        TroubleType.BUTTON_MISSING,
        TroubleType.BUTTON_WIRING,
        TroubleType.BUTTON_STUCK,
        TroubleType.BUTTON_OUT_OF_SERVICE,
    }
)
#: The gateway's radio module: out, it hears none of its LoRa buttons (wired ones still work).
RADIO_OUTAGE = TroubleType.RADIO_MISSING
WIRED = "gpio"


def section(ctx: Context) -> Section:
    """The Fire Button section of ``ctx.period``'s report, as of the cut-off ``ctx.until``."""
    buttons = _fire_buttons(ctx.conn)
    negative: Counter[str] = Counter()
    alarms = _tally_alarms(ctx, alarm_store.evaluation_alarms(ctx.conn, KIND, ctx.period.start, ctx.until), negative)
    by_kecamatan = _alarms_by_kecamatan(ctx, alarms, buttons)
    outcomes = _outcomes(ctx, alarms, _notices_by_month(ctx))
    tables = [
        by_kecamatan,
        _response_times(alarms),
        outcomes,
        _availability(ctx, buttons),
        _troubles(ctx, {button.gw for button in buttons}, negative),
        _commissioning(ctx, buttons),
    ]
    if negative:
        # Once per build: a bad clock makes many such records, and each would say the same.
        log.warning(
            "evaluation %s: left out of the times, as negative: %d alarm step(s) recorded before the alarm's"
            " opening, %d trouble(s) cleared before they began",
            ctx.period.key,
            negative["alarm_steps"],
            negative["troubles"],
        )
    return Section(
        id="fire",
        title_key="evaluation_fire_title",
        intro_key="evaluation_fire_intro",
        tables=tables,
        charts=[_chart_by_month(ctx, alarms), _chart_by_kecamatan(by_kecamatan)],
    )


# -- reading ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FireButton:
    id: str
    gw: str
    transport: str
    kecamatan: str  # UNKNOWN when the button names none


def _fire_buttons(conn: sqlite3.Connection) -> list[FireButton]:
    """The fire buttons registered now (a button's history is not kept: the report says so)."""
    cursor = conn.cursor()
    cursor.row_factory = None
    rows = cursor.execute("SELECT id, gw, transport, kecamatan FROM buttons WHERE kind = ? ORDER BY id", (KIND,))
    return [FireButton(id_, gw, transport, kecamatan or UNKNOWN) for id_, gw, transport, kecamatan in rows]


@dataclass(slots=True)
class MonthTally:
    alarms: int = 0  # tests included
    tests: int = 0
    real: int = 0
    false_alarms: int = 0
    open_at_end: int = 0
    escalated: int = 0

    @property
    def not_tests(self) -> int:
        return self.alarms - self.tests


@dataclass
class AlarmTally:
    """The period's fire alarms reduced in one pass to what the tables need, each as of the cut-off."""

    months: list[MonthTally]
    #: kecamatan -> non-test alarms per month of the period
    by_kecamatan: dict[str, list[int]] = field(default_factory=dict)
    #: measure -> how many non-test alarms reached that step before the cut-off
    reached: Counter[str] = field(default_factory=Counter)
    #: measure -> seconds from the opening to that step, of those alarms, save negative ones (a bad clock)
    times: dict[str, list[float]] = field(default_factory=lambda: {measure: [] for measure in MEASURES})

    @property
    def not_tests(self) -> int:
        return sum(month.not_tests for month in self.months)


def _tally_alarms(ctx: Context, rows: Iterable[Sequence[Any]], negative: Counter[str]) -> AlarmTally:
    """One pass over ``evaluation_alarms`` tuples; a step at or after the cut-off has not happened yet.

    A step recorded before the alarm's opening (a clock set wrong) is reached, but its time is no figure:
    it is left out of the times and counted in ``negative``.
    """
    until = ctx.until
    starts = ctx.period.month_starts()
    months = len(starts) - 1
    tally = AlarmTally([MonthTally() for _ in range(months)])
    for _button, kecamatan, opened, acknowledged, dispatched, resolved, resolution, test, escalated in rows:
        index = bisect_right(starts, opened) - 1
        month = tally.months[index]
        month.alarms += 1
        resolved = resolved if resolved is not None and resolved < until else None
        resolution = resolution if resolved is not None else None
        if test or resolution == Resolution.TEST:
            month.tests += 1
            continue
        tally.by_kecamatan.setdefault(kecamatan or UNKNOWN, [0] * months)[index] += 1
        if resolution == Resolution.REAL:
            month.real += 1
        elif resolution == Resolution.FALSE_ALARM:
            month.false_alarms += 1
        elif resolved is None:
            month.open_at_end += 1
        if escalated is not None and escalated < until:
            month.escalated += 1
        for measure, step in zip(MEASURES, (acknowledged, dispatched, resolved), strict=True):
            if step is None or step >= until:
                continue
            tally.reached[measure] += 1
            if step < opened:
                negative["alarm_steps"] += 1
            else:
                tally.times[measure].append(step - opened)
    return tally


def _notices_by_month(ctx: Context) -> list[int]:
    """Fire alarms' notices delivered in each month of the period before the cut-off (by delivery time)."""
    starts = ctx.period.month_starts()
    counts = [0] * (len(starts) - 1)
    cursor = ctx.conn.cursor()
    cursor.row_factory = None
    rows = cursor.execute(
        "SELECT finished_at FROM notifications WHERE kind = ? AND status = 'sent'"
        " AND finished_at >= ? AND finished_at < ?",
        (KIND, ctx.period.start, ctx.until),
    )
    for (finished,) in rows:
        counts[bisect_right(starts, finished) - 1] += 1
    return counts


# -- the tables ------------------------------------------------------------------------------------------


#: The i18n keys of the codes a first column may hold besides real names.
ROW_NAMES = {UNKNOWN: "evaluation_fire_unknown", TOTAL: "evaluation_fire_total"}


def _names(*codes: str) -> dict[str, dict[str, str]]:
    """How ``unknown`` and ``total`` are shown in each language (a real kecamatan or gateway is shown as is)."""
    return {
        code: {language: translate_to(language, ROW_NAMES.get(code, code)) for language in LANGUAGES} for code in codes
    }


def _count(key: str, unit: Unit) -> Column:
    return Column(key, f"evaluation_fire_col_{key}", ColumnType.INTEGER, unit)


def _number(key: str, unit: Unit) -> Column:
    return Column(key, f"evaluation_fire_col_{key}", ColumnType.NUMBER, unit)


def _codes(key: str, *, code_prefix: str | None = None, names: Iterable[str] = ()) -> Column:
    shown = _names(*names)
    return Column(key, f"evaluation_fire_col_{key}", ColumnType.STRING, code_prefix=code_prefix, names=shown or None)


def _table(table_id: str, columns: Sequence[Column], *, total: bool, open_data: bool = True) -> Table:
    key = table_id.replace("-", "_")
    return Table(
        table_id, f"evaluation_table_{key}", f"evaluation_def_{key}", tuple(columns), total=total, open_data=open_data
    )


def _by_name(codes: Iterable[str]) -> list[str]:
    """Kecamatan names in alphabetical order, ``unknown`` last."""
    return sorted(set(codes), key=lambda code: (code == UNKNOWN, code.casefold(), code))


def _alarms_by_kecamatan(ctx: Context, alarms: AlarmTally, buttons: Sequence[FireButton]) -> Table:
    """Non-test alarms per kecamatan and month: every kecamatan with a fire button now or an alarm."""
    month_keys = ctx.period.month_keys()
    columns = [
        _codes("kecamatan", names=(UNKNOWN, TOTAL)),
        *(Column(month, month, ColumnType.INTEGER, Unit.ALARMS, literal=True) for month in month_keys),
        _count("total", Unit.ALARMS),
    ]
    table = _table("fire-alarms-by-kecamatan", columns, total=True)
    zero = [0] * len(month_keys)
    for kecamatan in _by_name([*alarms.by_kecamatan, *(button.kecamatan for button in buttons)]):
        counts = alarms.by_kecamatan.get(kecamatan, zero)
        table.add(kecamatan, *counts, sum(counts))
    sums = [sum(counts[index] for counts in alarms.by_kecamatan.values()) for index in range(len(month_keys))]
    table.add(TOTAL, *sums, sum(sums))
    return table


def _response_times(alarms: AlarmTally) -> Table:
    columns = [
        _codes("measure", code_prefix="evaluation_measure_"),
        _count("alarms", Unit.ALARMS),
        _count("reached", Unit.ALARMS),
        _number("median_min", Unit.MINUTES),
        _number("p90_min", Unit.MINUTES),
        _count("not_reached", Unit.ALARMS),
    ]
    table = _table("fire-response-times", columns, total=False)
    total = alarms.not_tests
    for measure in MEASURES:
        times, reached = alarms.times[measure], alarms.reached[measure]
        table.add(
            measure,
            total,
            reached,
            figures.in_minutes(figures.median(times)),
            figures.in_minutes(figures.p90(times)),
            total - reached,
        )
    return table


def _outcomes(ctx: Context, alarms: AlarmTally, notices: list[int]) -> Table:
    columns = [
        _codes("month", names=(TOTAL,)),
        _count("alarms", Unit.ALARMS),
        _count("tests", Unit.ALARMS),
        _count("real", Unit.ALARMS),
        _count("false_alarms", Unit.ALARMS),
        _count("open_at_end", Unit.ALARMS),
        _number("false_alarm_rate", Unit.PERCENT),
        _number("test_rate", Unit.PERCENT),
        _count("escalated", Unit.ALARMS),
        _count("notices_sent", Unit.NOTICES),
    ]
    table = _table("fire-outcomes", columns, total=True)
    for month_key, month, sent in zip(ctx.period.month_keys(), alarms.months, notices, strict=True):
        table.add(month_key, *_outcome_cells(month), sent)
    whole = MonthTally(**{f.name: sum(getattr(month, f.name) for month in alarms.months) for f in fields(MonthTally)})
    table.add(TOTAL, *_outcome_cells(whole), sum(notices))
    return table


def _outcome_cells(month: MonthTally) -> tuple[Value, ...]:
    return (
        month.alarms,
        month.tests,
        month.real,
        month.false_alarms,
        month.open_at_end,
        figures.share(month.false_alarms, month.real + month.false_alarms),
        figures.share(month.tests, month.alarms),
        month.escalated,
    )


# -- availability ----------------------------------------------------------------------------------------

Intervals = list[tuple[float, float | None]]


@dataclass
class Outages:
    """The outage troubles overlapping the measured time, by what they put out of service."""

    gateway: defaultdict[str, Intervals] = field(default_factory=lambda: defaultdict(list))
    radio: defaultdict[str, Intervals] = field(default_factory=lambda: defaultdict(list))
    button: defaultdict[str, Intervals] = field(default_factory=lambda: defaultdict(list))


def _outages(ctx: Context) -> Outages:
    """Troubles recorded before the cut-off that overlap [period start, cut-off); one cleared at or after the
    cut-off is still open. One recorded later is left out even if back-dated: a closed period never changes."""
    types = sorted(str(kind) for kind in (*GATEWAY_OUTAGES, *BUTTON_OUTAGES, RADIO_OUTAGE))
    cursor = ctx.conn.cursor()
    cursor.row_factory = None
    marks = ",".join("?" * len(types))
    rows = cursor.execute(
        f"SELECT type, gw, button, kind, began_at, cleared_at FROM troubles WHERE type IN ({marks})"  # noqa: S608
        " AND began_at < ? AND detected_at < ? AND (cleared_at IS NULL OR cleared_at > ?)",
        (*types, ctx.until, ctx.until, ctx.period.start),
    )
    found = Outages()
    for trouble_type, gw, button, kind, began, cleared in rows:
        interval = (began, cleared if cleared is not None and cleared < ctx.until else None)
        if kind is None and button is None and gw is not None:
            if trouble_type == RADIO_OUTAGE:
                found.radio[gw].append(interval)
            elif trouble_type in GATEWAY_OUTAGES:
                found.gateway[gw].append(interval)
        elif kind == KIND and button is not None and trouble_type in BUTTON_OUTAGES:
            found.button[button].append(interval)
    return found


def _most_common(kecamatans: Iterable[str]) -> str:
    """The kecamatan most of a gateway's fire buttons are in (ties: alphabetical); unknown only if all are."""
    counts = Counter(kecamatan for kecamatan in kecamatans if kecamatan != UNKNOWN)
    if not counts:
        return UNKNOWN
    return min(counts, key=lambda kecamatan: (-counts[kecamatan], kecamatan.casefold(), kecamatan))


def _sapa_gateways(conn: sqlite3.Connection) -> set[str]:
    """Gateways that carry a SAPA button now: their ids would point at a SAPA site."""
    cursor = conn.cursor()
    cursor.row_factory = None
    return {gw for (gw,) in cursor.execute("SELECT DISTINCT gw FROM buttons WHERE kind = ?", (str(Kind.SAPA),))}


def _availability(ctx: Context, buttons: Sequence[FireButton]) -> Table:
    """Each gateway's availability and its fire buttons'. A gateway that also carries a SAPA button has no
    row of its own (it still counts in the total row), and the table is not open data: gateway ids are
    sites, not published."""
    columns = [
        _codes("gateway", names=(TOTAL,)),
        _codes("kecamatan", names=(UNKNOWN,)),
        _count("fire_buttons", Unit.BUTTONS),
        _number("gateway_available", Unit.PERCENT),
        _number("buttons_available", Unit.PERCENT),
        _number("worst_button_available", Unit.PERCENT),
    ]
    table = _table("fire-availability", columns, total=True, open_data=False)
    start, end = ctx.period.start, ctx.until
    span = end - start
    by_gateway: defaultdict[str, list[FireButton]] = defaultdict(list)
    for button in buttons:
        by_gateway[button.gw].append(button)
    if span <= 0 or not by_gateway:
        table.total = False  # no gateway, no total row: the table says it has no rows
        return table

    def available(intervals: Intervals) -> float:
        return (span - figures.covered(intervals, start, end)) / span

    outages = _outages(ctx)
    hidden = _sapa_gateways(ctx.conn)
    per_gateway: list[tuple[int, float, float, float]] = []
    for gw in sorted(by_gateway):
        own = outages.gateway.get(gw, [])
        radio = outages.radio.get(gw, [])
        shares = [
            available([*own, *outages.button.get(button.id, []), *(radio if button.transport != WIRED else [])])
            for button in by_gateway[gw]
        ]
        figures_of_gateway = (len(shares), _percent(available(own)), _percent(fmean(shares)), _percent(min(shares)))
        per_gateway.append(figures_of_gateway)
        if gw not in hidden:
            table.add(gw, _most_common(button.kecamatan for button in by_gateway[gw]), *figures_of_gateway)
    # The total row is the mean of every gateway's rounded figures, those without a row included: with no
    # hidden gateway, a reader can check it from the rows above.
    table.add(
        TOTAL,
        None,
        sum(row[0] for row in per_gateway),
        round(fmean(row[1] for row in per_gateway), 1),
        round(fmean(row[2] for row in per_gateway), 1),
        min(row[3] for row in per_gateway),
    )
    return table


def _percent(fraction: float) -> float:
    return round(100.0 * fraction, 1)


# -- troubles --------------------------------------------------------------------------------------------


def _troubles(ctx: Context, fire_gateways: set[str], negative: Counter[str]) -> Table:
    """Troubles begun in the period and recorded before the cut-off (one recorded later is left out even if
    back-dated into the period: a closed period never changes): of gateways that carry fire buttons, and
    those filed under kind fire. One cleared before it began is repaired, but its time is left out."""
    columns = [
        _codes("type", code_prefix="trouble_", names=(TOTAL,)),
        _count("began", Unit.TROUBLES),
        _count("repaired", Unit.TROUBLES),
        _count("open_at_end", Unit.TROUBLES),
        _number("median_repair_h", Unit.HOURS),
        _number("p90_repair_h", Unit.HOURS),
    ]
    table = _table("fire-troubles", columns, total=True)
    cursor = ctx.conn.cursor()
    cursor.row_factory = None
    rows = cursor.execute(
        "SELECT type, gw, kind, began_at, cleared_at FROM troubles WHERE began_at >= ? AND began_at < ?"
        " AND detected_at < ? AND (kind = ? OR (kind IS NULL AND button IS NULL))",
        (ctx.period.start, ctx.until, ctx.until, KIND),
    )
    began: Counter[str] = Counter()
    repaired: Counter[str] = Counter()
    repairs: defaultdict[str, list[float]] = defaultdict(list)
    for trouble_type, gw, kind, began_at, cleared_at in rows:
        if kind is None and (gw not in fire_gateways or trouble_type in PRESS_TROUBLES):
            continue
        began[trouble_type] += 1
        if cleared_at is None or cleared_at >= ctx.until:
            continue
        repaired[trouble_type] += 1
        if cleared_at < began_at:
            negative["troubles"] += 1
        else:
            repairs[trouble_type].append(cleared_at - began_at)
    for trouble_type in sorted(began, key=lambda code: (-began[code], code)):
        table.add(trouble_type, *_trouble_cells(began[trouble_type], repaired[trouble_type], repairs[trouble_type]))
    every_repair = [seconds for times in repairs.values() for seconds in times]
    table.add(TOTAL, *_trouble_cells(sum(began.values()), sum(repaired.values()), every_repair))
    return table


def _trouble_cells(began: int, repaired: int, repairs: list[float]) -> tuple[Value, ...]:
    return (
        began,
        repaired,
        began - repaired,
        figures.in_hours(figures.median(repairs)),
        figures.in_hours(figures.p90(repairs)),
    )


# -- commissioning and periodic tests --------------------------------------------------------------------


def _passed_commissionings(ctx: Context, fire_buttons: set[str]) -> dict[str, float | None]:
    """Each fire button that passed a commissioning whose report was made before the cut-off -> its last
    such test press (before the cut-off; None if none).

    A button passes on its own result in the report (as ``button_tests`` records it), even in a session
    that failed for another button; a report whose results cannot be read counts by its session's verdict.
    """
    cursor = ctx.conn.cursor()
    cursor.row_factory = None
    reports = cursor.execute(
        "SELECT session_id, verdict, results FROM commissioning_reports WHERE created_at < ? AND kinds LIKE ?",
        (ctx.until, f"%{KIND}%"),
    ).fetchall()
    passed = {session: _passed_in(verdict, results) for session, verdict, results in reports}
    presses = cursor.execute(
        "SELECT b.session_id, b.button, b.pressed_at FROM commissioning_buttons b"
        " JOIN commissioning_reports r ON r.session_id = b.session_id WHERE r.created_at < ? AND b.kind = ?",
        (ctx.until, KIND),
    )
    commissioned: dict[str, float | None] = {}
    for session, button, pressed in presses:
        held = passed.get(session)
        if button not in fire_buttons or held is None or not (held is ALL or button in held):
            continue
        last = commissioned.get(button)
        if pressed is not None and pressed < ctx.until and (last is None or pressed > last):
            commissioned[button] = pressed
        else:
            commissioned.setdefault(button, None)
    return commissioned


#: A report whose per-button results cannot be read, but whose session passed: all its buttons passed.
ALL: frozenset[str] = frozenset({"*"})


def _passed_in(verdict: str | None, results: str | None) -> frozenset[str] | None:
    """The buttons a stored report says passed; :data:`ALL` or None by its verdict if its results are unreadable."""
    try:
        buttons = json.loads(results or "")["buttons"]
        return frozenset(b["id"] for b in buttons if b.get("result") == "passed")
    except (ValueError, TypeError, KeyError, AttributeError):
        return ALL if verdict == "passed" else None


def _commissioning(ctx: Context, buttons: Sequence[FireButton]) -> Table:
    columns = [
        _codes("kecamatan", names=(UNKNOWN, TOTAL)),
        _count("fire_buttons", Unit.BUTTONS),
        _count("commissioned", Unit.BUTTONS),
        _number("commissioned_share", Unit.PERCENT),
        _number("tested_in_period_share", Unit.PERCENT),
    ]
    table = _table("fire-commissioning", columns, total=True)
    commissioned = _passed_commissionings(ctx, {button.id for button in buttons})
    since = ctx.until - ctx.commissioning.test_period_s
    test_alarms = alarm_store.evaluation_last_tests(ctx.conn, KIND, ctx.until, since)
    tested = {button for button, pressed in commissioned.items() if pressed is not None and pressed >= since} | {
        button for button, opened in test_alarms.items() if opened >= since
    }
    by_kecamatan: defaultdict[str, list[str]] = defaultdict(list)
    for button in buttons:
        by_kecamatan[button.kecamatan].append(button.id)
    groups = [(kecamatan, by_kecamatan[kecamatan]) for kecamatan in _by_name(by_kecamatan)]
    for kecamatan, ids in [*groups, (TOTAL, [button.id for button in buttons])]:
        done = sum(1 for button in ids if button in commissioned)
        fresh = sum(1 for button in ids if button in tested)
        table.add(kecamatan, len(ids), done, figures.share(done, len(ids)), figures.share(fresh, len(ids)))
    return table


# -- charts ----------------------------------------------------------------------------------------------


def _chart_by_month(ctx: Context, alarms: AlarmTally) -> Chart:
    return Chart(
        id="fire-alarms-by-month",
        title_key="evaluation_chart_fire_alarms_by_month",
        labels=tuple(ctx.period.month_keys()),
        series=(Series("evaluation_series_alarms", tuple(float(month.not_tests) for month in alarms.months)),),
        unit=Unit.ALARMS,
        table_id="fire-outcomes",
    )


def _chart_by_kecamatan(table: Table) -> Chart:
    """The totals column of ``fire-alarms-by-kecamatan`` without its total row; labels are its codes."""
    rows = table.rows[:-1]
    totals = tuple(float(row[-1]) for row in rows if isinstance(row[-1], int))
    return Chart(
        id="fire-alarms-by-kecamatan-chart",
        title_key="evaluation_chart_fire_alarms_by_kecamatan_chart",
        labels=tuple(str(row[0]) for row in rows),
        series=(Series("evaluation_series_alarms", totals),),
        unit=Unit.ALARMS,
        horizontal=True,
        table_id="fire-alarms-by-kecamatan",
    )
