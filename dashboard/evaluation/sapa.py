"""The SAPA Konsel section: counts of SAPA alarms by month and their time to acknowledge, small cells hidden."""

from __future__ import annotations

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

NOTE_SUPPRESSED = "evaluation_note_suppressed"


@dataclass(slots=True)
class _Month:
    """One month's SAPA alarms as the report may know them: counts and times only, nothing of a case."""

    alarms: int = 0
    acknowledged: int = 0
    #: Seconds from opening to acknowledgement, of the acknowledged ones.
    to_acknowledge: list[float] = field(default_factory=list)


def section(ctx: Context) -> Section:
    months = _months(ctx)
    threshold = ctx.settings.suppression_threshold
    by_month = _alarms_by_month(ctx.period.month_keys(), months, threshold)
    return Section(
        id="sapa",
        title_key="evaluation_sapa_title",
        intro_key="evaluation_sapa_intro",
        tables=[by_month, _time_to_acknowledge(months, by_month, threshold)],
        charts=[_alarms_chart(by_month)],
    )


def _months(ctx: Context) -> list[_Month]:
    """The period's non-test SAPA alarms tallied by local month, as of the cut-off.

    Only the times and the test marks are read from each alarm; its button, kecamatan and resolution go
    no further than this function.
    """
    starts = ctx.period.month_starts()
    months = [_Month() for _ in starts[:-1]]
    for alarm in store.evaluation_alarms(ctx.conn, "sapa", ctx.period.start, ctx.period.end):
        opened_at, acknowledged_at = alarm[2], alarm[3]
        if opened_at >= ctx.until or _is_test(alarm, ctx.until):
            continue
        month = months[bisect_right(starts, opened_at) - 1]
        month.alarms += 1
        if acknowledged_at is not None and acknowledged_at < ctx.until:
            month.acknowledged += 1
            month.to_acknowledge.append(acknowledged_at - opened_at)
    return months


def _is_test(alarm: Sequence[Any], until: float) -> bool:
    """Raised in test mode, or resolved as a test before the cut-off (a later resolution is not known yet)."""
    resolved_at, resolution, test = alarm[5], alarm[6], alarm[7]
    resolved_as_test = resolution == Resolution.TEST and resolved_at is not None and resolved_at < until
    return bool(test) or resolved_as_test


def _alarms_by_month(keys: list[str], months: list[_Month], threshold: int) -> Table:
    table = Table(
        id="sapa-alarms-by-month",
        title_key="evaluation_table_sapa_alarms_by_month",
        definition_key="evaluation_def_sapa_alarms_by_month",
        columns=(
            Column("month", "evaluation_sapa_col_month", ColumnType.STRING),
            Column("alarms", "evaluation_sapa_col_alarms", unit=Unit.ALARMS),
            Column("acknowledged", "evaluation_sapa_col_acknowledged", unit=Unit.ALARMS),
        ),
        total=True,
        note_keys=(NOTE_SUPPRESSED,),
    )
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


def _time_to_acknowledge(months: list[_Month], by_month: Table, threshold: int) -> Table:
    """One row: how many were measured and their median and p90; hidden for fewer than ``threshold`` alarms.

    The count measured is the by-month table's total of acknowledged alarms, so it is published exactly
    when that total is: were it shown while a month's acknowledged count is hidden, subtraction would give
    that month away.
    """
    times = [seconds for month in months for seconds in month.to_acknowledge]
    measured = by_month.column("acknowledged")[-1]
    figures: tuple[Value, Value] = (in_minutes(median(times)), in_minutes(p90(times)))
    if 0 < len(times) < threshold:
        figures = (SUPPRESSED, SUPPRESSED)  # the median of one to four alarms is a case's own time
    return Table(
        id="sapa-time-to-acknowledge",
        title_key="evaluation_table_sapa_time_to_acknowledge",
        definition_key="evaluation_def_sapa_time_to_acknowledge",
        columns=(
            Column("alarms_measured", "evaluation_sapa_col_alarms_measured", unit=Unit.ALARMS),
            Column("median_min", "evaluation_sapa_col_median_min", ColumnType.NUMBER, Unit.MINUTES),
            Column("p90_min", "evaluation_sapa_col_p90_min", ColumnType.NUMBER, Unit.MINUTES),
        ),
        rows=[(measured, *figures)],
        note_keys=(NOTE_SUPPRESSED,),
    )


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
