"""The Perda/Perkada section: reports received in the period and their handling as of the cut-off."""

from __future__ import annotations

import logging
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..reports.categories import Catalogue
from ..reports.workflow import Enforcement, Rejection, Status
from .figures import median, p90, share
from .model import Chart, Column, ColumnType, Section, Series, Table, Unit, Value

if TYPE_CHECKING:
    from .build import Context

log = logging.getLogger(__name__)

DAY = 86400.0
#: The service-level target of a category no longer in the catalogue: the one Open311 promised for it
#: (``expected_datetime`` in ``reports.store.open311_view``).
DEFAULT_TARGET_DAYS = 7.0
UNKNOWN = "unknown"
TOTAL = "total"
WEB = "web"
OPEN311 = "open311"
DONE_NO_ACTION = "done_no_action"
OPEN_AT_END = "open_at_end"
#: Every outcome, in the order the outcomes table lists them: each report of the period has exactly one.
#: ``unknown``: a history the workflow never writes (a status it does not know, a rejection without a
#: reason); such a report is counted and logged rather than failing the whole period's report.
OUTCOMES = (
    *(action.value for action in Enforcement),
    DONE_NO_ACTION,
    *(f"rejected_{reason.value}" for reason in Rejection),
    OPEN_AT_END,
    UNKNOWN,
)
_REJECTIONS = frozenset(reason.value for reason in Rejection)
_ACTIONS = frozenset(action.value for action in Enforcement)


@dataclass(slots=True)
class _Report:
    """One report received in the period, with its handling as of the cut-off; nothing about its reporter."""

    category: str
    kecamatan: str
    channel: str | None
    requested_at: float
    status: Status = Status.RECEIVED
    first_decision_at: float | None = None
    closed_at: float | None = None
    rejection: str | None = None
    #: The last enforcement action taken (a warning, then a written warning: the written warning).
    enforcement: str | None = None
    #: A history step the workflow never writes (an unknown status, a rejection without a known reason,
    #: an unknown action): the report's outcome is ``unknown``; its status is the last one known.
    unreadable: bool = False

    @property
    def done(self) -> bool:
        return self.status is Status.DONE

    @property
    def rejected(self) -> bool:
        return self.status is Status.REJECTED

    @property
    def outcome(self) -> str:
        if self.unreadable:
            return UNKNOWN
        if self.rejected:
            return f"rejected_{self.rejection}"
        if self.done:
            return self.enforcement or DONE_NO_ACTION
        return OPEN_AT_END


def section(ctx: Context) -> Section:
    reports = _reports(ctx.conn, ctx.period.start, ctx.until)
    _log_odd_histories(reports)
    categories = _category_order(ctx.catalogue, reports)
    by_category = _reports_by_category(ctx.catalogue, categories, reports)
    service_level = _service_level(ctx.catalogue, categories, reports, ctx.until)
    return Section(
        id="perda",
        title_key="evaluation_perda_title",
        intro_key="evaluation_perda_intro",
        tables=[
            by_category,
            _reports_by_kecamatan(ctx.catalogue, reports),
            service_level,
            _handling_times(ctx.catalogue, categories, reports),
            _outcomes(reports),
        ],
        charts=[_received_chart(by_category), _service_level_chart(service_level)],
    )


# -- reading ----------------------------------------------------------------------------------


def _reports(conn: sqlite3.Connection, since: float, until: float) -> list[_Report]:
    """The reports received in [``since``, ``until``) with their history up to ``until``: two queries in all."""
    cursor = conn.cursor()
    cursor.row_factory = None  # plain tuples: a year is tens of thousands of rows
    rows = cursor.execute(
        "SELECT id, service_code, area, source, requested_at FROM reports"
        " WHERE requested_at >= ? AND requested_at < ? ORDER BY id",
        (since, until),
    ).fetchall()
    reports = {
        report_id: _Report(code, area or UNKNOWN, _channel(source), requested_at)
        for report_id, code, area, source, requested_at in rows
    }
    steps = cursor.execute(
        "SELECT report_id, at, to_status, resolution FROM report_history"
        " WHERE report_id IN (SELECT id FROM reports WHERE requested_at >= ? AND requested_at < ?) AND at < ?"
        " ORDER BY report_id, id",
        (since, until, until),
    ).fetchall()
    statuses = {status.value: status for status in Status}  # a dict, not Status(): a year is 100k steps
    for report_id, at, to_status, resolution in steps:
        status = statuses.get(to_status)
        if status is None:  # one odd row must not fail the period: the report's outcome becomes unknown
            reports[report_id].unreadable = True
            continue
        _step(reports[report_id], at, status, resolution)
    return list(reports.values())


def _log_odd_histories(reports: list[_Report]) -> None:
    """One warning per build for the histories the evaluation cannot read and the times it leaves out."""
    odd = sum(1 for report in reports if report.unreadable)
    if odd:
        log.warning(
            "evaluation: %d Perda report(s) with a history step to an unknown status, a rejection without a"
            " known reason or an unknown action, counted as outcome 'unknown'",
            odd,
        )
    negative = sum(1 for report in reports if _before_receipt(report))
    if negative:
        log.warning(
            "evaluation: %d Perda report(s) decided or done before they were received, their times left out",
            negative,
        )


def _before_receipt(report: _Report) -> bool:
    """A decision or completion stamped before the report was received: a clock or data error."""
    return any(at is not None and at < report.requested_at for at in (report.first_decision_at, report.closed_at))


def _channel(source: str) -> str | None:
    """``web`` for the public form, ``open311`` for any app's key (whose name is never published)."""
    if source == WEB:
        return WEB
    if source.startswith("open311:"):
        return OPEN311
    return None  # no other channel exists; were one added, its reports count as received only


def _step(report: _Report, at: float, status: Status, resolution: str | None) -> None:
    """Apply one history step (taken before the cut-off, in the order they were taken)."""
    report.status = status
    if status in (Status.VERIFIED, Status.REJECTED) and report.first_decision_at is None:
        report.first_decision_at = at
    if status in (Status.DONE, Status.REJECTED):
        report.closed_at = at
    if status is Status.REJECTED:
        report.rejection = resolution
        report.unreadable |= resolution not in _REJECTIONS
    if status is Status.IN_ACTION:
        report.enforcement = resolution
        report.unreadable |= resolution not in _ACTIONS


# -- the tables ---------------------------------------------------------------------------------


def _category_order(catalogue: Catalogue, reports: list[_Report]) -> list[str]:
    """The catalogue's categories in its order, then any other code a report carries, sorted."""
    known = [category.code for category in catalogue.categories]
    others = sorted({report.category for report in reports} - set(known))
    return known + others


def _category_column(catalogue: Catalogue) -> Column:
    """Codes in the data, names on the page: the renderer shows a category's name in the reader's language."""
    names = {category.code: {"id": category.name, "en": category.name_en} for category in catalogue.categories}
    return Column("category", "evaluation_perda_col_category", ColumnType.STRING, names=names)


def _count(key: str) -> Column:
    return Column(key, f"evaluation_perda_col_{key}", unit=Unit.REPORTS)


def _grouped(reports: Iterable[_Report], key: Callable[[_Report], str]) -> dict[str, list[_Report]]:
    groups: dict[str, list[_Report]] = defaultdict(list)
    for report in reports:
        groups[key(report)].append(report)
    return groups


def _tally(reports: list[_Report]) -> tuple[int, int, int, int]:
    """Received, done, rejected and still open at the cut-off."""
    done = sum(1 for report in reports if report.done)
    rejected = sum(1 for report in reports if report.rejected)
    return len(reports), done, rejected, len(reports) - done - rejected


def _reports_by_category(catalogue: Catalogue, categories: list[str], reports: list[_Report]) -> Table:
    table = Table(
        id="perda-reports-by-category",
        title_key="evaluation_table_perda_reports_by_category",
        definition_key="evaluation_def_perda_reports_by_category",
        columns=(
            _category_column(catalogue),
            *(_count(key) for key in ("received", "web", "open311", "rejected", "done", OPEN_AT_END)),
        ),
        total=True,
    )
    groups = _grouped(reports, lambda report: report.category)
    for code, group in [*((code, groups.get(code, [])) for code in categories), (TOTAL, reports)]:
        received, done, rejected, still_open = _tally(group)
        web = sum(1 for report in group if report.channel == WEB)
        open311 = sum(1 for report in group if report.channel == OPEN311)
        table.add(code, received, web, open311, rejected, done, still_open)
    return table


def _reports_by_kecamatan(catalogue: Catalogue, reports: list[_Report]) -> Table:
    """Every kecamatan of the catalogue and any other a report names, sorted; reports without one last."""
    table = Table(
        id="perda-reports-by-kecamatan",
        title_key="evaluation_table_perda_reports_by_kecamatan",
        definition_key="evaluation_def_perda_reports_by_kecamatan",
        columns=(
            Column("kecamatan", "evaluation_perda_col_kecamatan", ColumnType.STRING),
            *(_count(key) for key in ("received", "done", "rejected", OPEN_AT_END)),
        ),
        total=True,
    )
    groups = _grouped(reports, lambda report: report.kecamatan)
    named = sorted((set(catalogue.areas) | groups.keys()) - {UNKNOWN})
    unknown = [UNKNOWN] if UNKNOWN in groups else []
    for kecamatan, group in [*((name, groups.get(name, [])) for name in named + unknown), (TOTAL, reports)]:
        received, done, rejected, still_open = _tally(group)
        table.add(kecamatan, received, done, rejected, still_open)
    return table


def _target_days(catalogue: Catalogue, code: str) -> float:
    category = catalogue.get(code)
    return DEFAULT_TARGET_DAYS if category is None else category.target_days


def _within_target(report: _Report, target_days: float, until: float) -> bool:
    """Closed (done or rejected) before the cut-off, at most ``target_days`` after it was received."""
    closed_at = report.closed_at
    return closed_at is not None and closed_at < until and closed_at - report.requested_at <= target_days * DAY


def _not_yet_due(report: _Report, target_days: float, until: float) -> bool:
    """Not closed before the cut-off, its target still ahead: neither within target nor late yet."""
    return report.closed_at is None and report.requested_at + target_days * DAY > until


def _service_level(catalogue: Catalogue, categories: list[str], reports: list[_Report], until: float) -> Table:
    """Within target, not yet due and late by category; the share is of the reports whose target has come."""
    table = Table(
        id="perda-service-level",
        title_key="evaluation_table_perda_service_level",
        definition_key="evaluation_def_perda_service_level",
        columns=(
            _category_column(catalogue),
            Column("target_days", "evaluation_perda_col_target_days", ColumnType.NUMBER, Unit.DAYS),
            _count("received"),
            _count("within_target"),
            _count("not_yet_due"),
            _count("late"),
            Column("within_target_share", "evaluation_perda_col_within_target_share", ColumnType.NUMBER, Unit.PERCENT),
        ),
        total=True,
    )
    groups = _grouped(reports, lambda report: report.category)
    all_within = all_pending = 0
    for code in categories:
        group = groups.get(code, [])
        target = _target_days(catalogue, code)
        within = sum(1 for report in group if _within_target(report, target, until))
        pending = sum(1 for report in group if _not_yet_due(report, target, until))
        all_within += within
        all_pending += pending
        table.add(code, target, *_service_counts(len(group), within, pending))
    table.add(TOTAL, None, *_service_counts(len(reports), all_within, all_pending))
    return table


def _service_counts(received: int, within: int, pending: int) -> tuple[Value, ...]:
    """Received, within target, not yet due, late, and the share within target of those due (None if none)."""
    due = received - pending
    return received, within, pending, due - within, share(within, due)


def _in_days(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / DAY, 1)


def _handling_times(catalogue: Catalogue, categories: list[str], reports: list[_Report]) -> Table:
    table = Table(
        id="perda-handling-times",
        title_key="evaluation_table_perda_handling_times",
        definition_key="evaluation_def_perda_handling_times",
        columns=(
            _category_column(catalogue),
            _count("verified"),
            Column("verify_median_days", "evaluation_perda_col_verify_median_days", ColumnType.NUMBER, Unit.DAYS),
            Column("verify_p90_days", "evaluation_perda_col_verify_p90_days", ColumnType.NUMBER, Unit.DAYS),
            _count("finished"),
            Column("finish_median_days", "evaluation_perda_col_finish_median_days", ColumnType.NUMBER, Unit.DAYS),
            Column("finish_p90_days", "evaluation_perda_col_finish_p90_days", ColumnType.NUMBER, Unit.DAYS),
        ),
        total=True,
    )
    groups = _grouped(reports, lambda report: report.category)
    for code, group in [*((code, groups.get(code, [])) for code in categories), (TOTAL, reports)]:
        table.add(code, *_times(group))
    return table


def _times(reports: list[_Report]) -> tuple[Value, ...]:
    """Verified, its median and p90 in days, finished, its median and p90 in days (pooled, not averaged)."""
    to_decision = _durations((r.first_decision_at, r.requested_at) for r in reports)
    to_done = _durations((r.closed_at if r.done else None, r.requested_at) for r in reports)
    return (
        len(to_decision),
        _in_days(median(to_decision)),
        _in_days(p90(to_decision)),
        len(to_done),
        _in_days(median(to_done)),
        _in_days(p90(to_done)),
    )


def _durations(pairs: Iterable[tuple[float | None, float]]) -> list[float]:
    """``at - requested_at`` of each step taken; one before receipt is a data error, left out (and logged)."""
    return [at - requested_at for at, requested_at in pairs if at is not None and at >= requested_at]


def _outcomes(reports: list[_Report]) -> Table:
    table = Table(
        id="perda-outcomes",
        title_key="evaluation_table_perda_outcomes",
        definition_key="evaluation_def_perda_outcomes",
        columns=(
            Column("outcome", "evaluation_perda_col_outcome", ColumnType.STRING, code_prefix="evaluation_outcome_"),
            _count("reports"),
            Column("share", "evaluation_perda_col_share", ColumnType.NUMBER, Unit.PERCENT),
        ),
        total=True,
    )
    counts = _grouped(reports, lambda report: report.outcome)
    for outcome in OUTCOMES:
        count = len(counts.get(outcome, []))
        table.add(outcome, count, share(count, len(reports)))
    table.add(TOTAL, len(reports), share(len(reports), len(reports)))
    return table


# -- the charts --------------------------------------------------------------------------------------


def _received_chart(by_category: Table) -> Chart:
    rows = by_category.rows[:-1]  # not the total
    return Chart(
        id="perda-reports-by-category-chart",
        title_key="evaluation_chart_perda_reports_by_category",
        labels=tuple(str(row[0]) for row in rows),  # codes: the renderer names them from the table's column
        series=(Series("evaluation_perda_col_received", tuple(_number(row[1]) for row in rows)),),
        unit=Unit.REPORTS,
        horizontal=True,
        table_id=by_category.id,
    )


def _service_level_chart(service_level: Table) -> Chart:
    """The share within target of each category with reports due (a category without any has none)."""
    codes, shares = service_level.column("category")[:-1], service_level.column("within_target_share")[:-1]
    rows = [(code, value) for code, value in zip(codes, shares, strict=True) if value is not None]
    return Chart(
        id="perda-service-level-chart",
        title_key="evaluation_chart_perda_service_level",
        labels=tuple(str(code) for code, _ in rows),
        series=(Series("evaluation_perda_col_within_target_share", tuple(_number(value) for _, value in rows)),),
        unit=Unit.PERCENT,
        horizontal=True,
        table_id=service_level.id,
    )


def _number(value: Value) -> float | None:
    return value if isinstance(value, int | float) else None
