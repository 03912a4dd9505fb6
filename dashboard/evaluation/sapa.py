"""The SAPA Konsel section: counts of SAPA alarms by month and their time to acknowledge, small cells hidden."""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..alarms import store
from ..alarms.lifecycle import Resolution
from .figures import in_minutes, median, p90
from .model import SUPPRESSED, Chart, Column, ColumnType, Section, Series, Table, Unit, Value
from .suppression import suppress, suppress_part, suppressed_total

if TYPE_CHECKING:
    from .build import Context

log = logging.getLogger(__name__)

NOTE_SUPPRESSED = "evaluation_note_suppressed"
#: Shown under the SAPA tables of a report made before the period's end: its last months are left out.
NOTE_MONTHS_NOT_OVER = "evaluation_note_sapa_months_not_over"
#: What the SAPA tables say when no month of the period is over yet.
EMPTY_NO_MONTH_OVER = "evaluation_sapa_no_month_over"
#: The fewest times to acknowledge whose median and p90 may be published: with fewer, one case's own
#: time weighs too much in them (and the p90 of a few is one of the few).
MIN_TIMES = 10


@dataclass(slots=True)
class _Month:
    """One month's SAPA alarms as the report may know them: counts and times only, nothing of a case."""

    alarms: int = 0
    acknowledged: int = 0
    #: Seconds from opening to acknowledgement, of the acknowledged ones whose time is not negative.
    to_acknowledge: list[float] = field(default_factory=list)
    #: Acknowledged ones recorded before their opening (a bad clock): counted, but not timed.
    negative: int = 0


def section(ctx: Context) -> Section:
    """The months of the period that are over at the cut-off, each as of its own end (months are atoms)."""
    keys, months = _complete_months(ctx)
    threshold = ctx.settings.suppression_threshold
    notes = (NOTE_SUPPRESSED,) if len(keys) == ctx.period.months else (NOTE_SUPPRESSED, NOTE_MONTHS_NOT_OVER)
    by_month = _alarms_by_month(keys, months, threshold, notes)
    negative = sum(month.negative for month in months)
    if negative:
        # Once per build, and only a count: a time or a month would point at the case.
        log.warning(
            "evaluation %s: %d SAPA acknowledgement(s) recorded before the alarm's opening left out of the times",
            ctx.period.key,
            negative,
        )
    return Section(
        id="sapa",
        title_key="evaluation_sapa_title",
        intro_key="evaluation_sapa_intro",
        tables=[by_month, _time_to_acknowledge(keys, months, by_month, notes)],
        charts=[_alarms_chart(by_month)] if keys else [],
    )


def _complete_months(ctx: Context) -> tuple[list[str], list[_Month]]:
    """The period's months that ended at or before the cut-off, with their non-test SAPA alarms tallied.

    A month under way is left out whole: its cells would move as cases happen, and a report reloaded
    would be a live feed of SAPA alarms. Each month is tallied as of its own end, never the cut-off, so
    a month's cells are the same in the month, quarter and year reports. Only the times and the test
    marks are read from each alarm; its button, kecamatan and resolution go no further than this function.
    """
    starts = ctx.period.month_starts()
    over = max(bisect_right(starts, ctx.until) - 1, 0)  # months whose end (the next start) is <= the cut-off
    keys = ctx.period.month_keys()[:over]
    months = [_Month() for _ in keys]
    if not keys:
        return keys, months
    for alarm in store.evaluation_alarms(ctx.conn, "sapa", starts[0], starts[over]):
        opened_at, acknowledged_at = alarm[2], alarm[3]
        index = bisect_right(starts, opened_at) - 1
        month_end = starts[index + 1]
        if _is_test(alarm, month_end):
            continue
        month = months[index]
        month.alarms += 1
        if acknowledged_at is not None and acknowledged_at < month_end:
            month.acknowledged += 1
            if acknowledged_at >= opened_at:
                month.to_acknowledge.append(acknowledged_at - opened_at)
            else:
                month.negative += 1
    return keys, months


def _is_test(alarm: Sequence[Any], month_end: float) -> bool:
    """Raised in test mode, or resolved as a test before its month's end (a later resolution changes nothing)."""
    resolved_at, resolution, test = alarm[5], alarm[6], alarm[7]
    resolved_as_test = resolution == Resolution.TEST and resolved_at is not None and resolved_at < month_end
    return bool(test) or resolved_as_test


def _alarms_by_month(keys: list[str], months: list[_Month], threshold: int, notes: tuple[str, ...]) -> Table:
    table = Table(
        id="sapa-alarms-by-month",
        title_key="evaluation_table_sapa_alarms_by_month",
        definition_key="evaluation_def_sapa_alarms_by_month",
        columns=(
            Column("month", "evaluation_sapa_col_month", ColumnType.STRING),
            Column("alarms", "evaluation_sapa_col_alarms", unit=Unit.ALARMS),
            Column("acknowledged", "evaluation_sapa_col_acknowledged", unit=Unit.ALARMS),
        ),
        total=bool(keys),  # no month over: no rows, not even a total
        note_keys=notes,
        empty_key=EMPTY_NO_MONTH_OVER,
    )
    if not keys:
        return table
    for key, month in zip(keys, months, strict=True):
        table.add(
            key,
            suppress(month.alarms, threshold),
            suppress_part(month.acknowledged, month.alarms, threshold),
        )
    table.add(
        "total",
        suppressed_total(table.column("alarms"), sum(month.alarms for month in months), threshold),
        suppressed_total(table.column("acknowledged"), sum(month.acknowledged for month in months), threshold),
    )
    return table


def _time_to_acknowledge(keys: list[str], months: list[_Month], by_month: Table, notes: tuple[str, ...]) -> Table:
    """One row: the months it covers, how many were measured and their median and p90.

    The months are those of the by-month table, written as an ISO 8601 interval (``2026-07/2026-09``;
    one month alone as itself): a report made before its period's end covers fewer, and a row whose
    figures are all hidden is still a row.

    The count measured is the by-month table's total of acknowledged alarms, so it is published exactly
    when that total is: were it shown while a month's acknowledged count is hidden, subtraction would give
    that month away. The median and p90 are published only when that total is (every month of the set is
    published: a hidden month's case cannot sit in them) and over at least :data:`MIN_TIMES` times.
    """
    table = Table(
        id="sapa-time-to-acknowledge",
        title_key="evaluation_table_sapa_time_to_acknowledge",
        definition_key="evaluation_def_sapa_time_to_acknowledge",
        columns=(
            Column("months", "evaluation_sapa_col_months", ColumnType.STRING),
            Column("alarms_measured", "evaluation_sapa_col_alarms_measured", unit=Unit.ALARMS),
            Column("median_min", "evaluation_sapa_col_median_min", ColumnType.NUMBER, Unit.MINUTES),
            Column("p90_min", "evaluation_sapa_col_p90_min", ColumnType.NUMBER, Unit.MINUTES),
        ),
        note_keys=notes,
        empty_key=EMPTY_NO_MONTH_OVER,
    )
    if not months:
        return table
    times = [seconds for month in months for seconds in month.to_acknowledge]
    measured = by_month.column("acknowledged")[-1]
    figures: tuple[Value, Value] = (in_minutes(median(times)), in_minutes(p90(times)))
    if measured is SUPPRESSED or (times and len(times) < MIN_TIMES):
        # Even "no figure" would tell of a hidden total: that none of its alarms was acknowledged.
        figures = (SUPPRESSED, SUPPRESSED)
    covered = keys[0] if len(keys) == 1 else f"{keys[0]}/{keys[-1]}"
    table.add(covered, measured, *figures)
    return table


def _alarms_chart(by_month: Table) -> Chart:
    """The published monthly counts; a hidden month is a gap (None), never its value."""
    rows = by_month.rows[:-1]  # not the total
    return Chart(
        id="sapa-alarms-by-month-chart",
        title_key="evaluation_chart_sapa_alarms_by_month",
        labels=tuple(str(row[0]) for row in rows),
        series=(
            Series(
                "evaluation_sapa_col_alarms",
                tuple(_charted(row[1]) for row in rows),
            ),
        ),
        unit=Unit.ALARMS,
        table_id="sapa-alarms-by-month",
    )


def _charted(value: Value) -> float | None:
    return value if isinstance(value, int | float) else None
