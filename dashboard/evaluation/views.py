"""The evaluation pages: choose a period, read its report as HTML, download it as PDF (administrators, evaluators)."""

from __future__ import annotations

import time

from flask import Blueprint, Response, redirect, render_template, request, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response as BaseResponse

from ..accounts import audit
from ..accounts.auth import Role, login_required
from ..db import get_db, transaction
from ..i18n import get_language, translate
from . import build, charts, present
from .model import Report
from .period import FIRST_YEAR, BadPeriod, Granularity, Period

bp = Blueprint("evaluation", __name__)

_ROLES = (Role.ADMIN, Role.EVALUATOR)
#: How many recent periods of each kind the form offers (any other is reached by its address).
_CHOICES = {Granularity.QUARTER: 8, Granularity.MONTH: 12, Granularity.YEAR: 3}


class _NoReport(Exception):
    """A period that has no report: not a period at all, or one that has not begun."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def last_complete_quarter(now: float) -> Period:
    return Period.containing(now, Granularity.QUARTER).previous()


def recent(granularity: Granularity, now: float) -> list[Period]:
    """The periods of one kind a form offers, the one under way first (it is provisional)."""
    period = Period.containing(now, granularity)
    periods = []
    for _ in range(_CHOICES[granularity]):
        if period.year < FIRST_YEAR:
            break
        periods.append(period)
        period = period.previous()
    return periods


def _period(text: str, now: float) -> Period:
    try:
        period = Period.parse(text)
    except BadPeriod:
        raise _NoReport(translate("evaluation_ui_bad_period", text=text[:40])) from None
    if period.start > now:
        raise _NoReport(translate("evaluation_ui_not_begun", period=period.key))
    return period


def _index_page(now: float, problem: str | None = None, status: int = 200) -> tuple[str, int]:
    language = get_language()
    last = last_complete_quarter(now)
    groups = [
        (translate("evaluation_ui_quarters"), recent(Granularity.QUARTER, now)),
        (translate("evaluation_ui_months"), recent(Granularity.MONTH, now)),
        (translate("evaluation_ui_years"), recent(Granularity.YEAR, now)),
    ]
    choices = [
        (label, [(p.key, _choice_name(p, now, language)) for p in periods]) for label, periods in groups if periods
    ]
    page = render_template(
        "evaluation_index.html",
        last=last,
        last_name=present.period_name(last, language),
        choices=choices,
        chosen=last.key,
        problem=problem,
        open_data=_open_data_url(),
    )
    return page, status


def _choice_name(period: Period, now: float, language: str) -> str:
    name = present.period_name(period, language)
    return name if period.closed(now) else translate("evaluation_ui_running", period=name)


def _open_data_url() -> str:
    """The open data's page (its blueprint is registered with this one: evaluation.init_app)."""
    return url_for("opendata.index")


def _generated(report: Report, form: str, language: str) -> None:
    """Every report made is in the audit log: who made which period's, in which form and language."""
    with transaction(get_db()) as conn:
        audit.record(
            conn,
            audit.who(),
            "evaluation.generated",
            subject=f"period:{report.period.key}",
            after={"format": form, "language": language, "complete": report.complete},
            at=report.generated_at,
        )


@bp.get("/evaluation")
@login_required(*_ROLES)
def index() -> tuple[str, int] | BaseResponse:
    """The evaluator's home; with ``?period=`` (the form), the chosen period's report."""
    now = time.time()
    chosen = request.args.get("period")
    if chosen is None:
        return _index_page(now)
    try:
        period = _period(chosen, now)
    except _NoReport as error:
        return _index_page(now, error.message, 404)
    endpoint = "evaluation.pdf" if request.args.get("format") == "pdf" else "evaluation.report"
    return redirect(url_for(endpoint, period=period.key))


@bp.get("/evaluation/<period>.pdf")
@login_required(*_ROLES)
def pdf(period: str) -> Response | tuple[str, int]:
    from .pdf import render_pdf  # fpdf2 is loaded when a PDF is asked for, not at start

    now = time.time()
    try:
        chosen = _period(period, now)
    except _NoReport as error:
        return _index_page(now, error.message, 404)
    language = get_language()
    report = build.report_for(chosen, now=now)
    body = render_pdf(report, language)
    _generated(report, "pdf", language)
    name = f"siaga-evaluasi-{chosen.key}-{language}.pdf"
    return Response(
        body,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


@bp.get("/evaluation/<period>")
@login_required(*_ROLES)
def report(period: str) -> tuple[str, int]:
    now = time.time()
    try:
        chosen = _period(period, now)
    except _NoReport as error:
        return _index_page(now, error.message, 404)
    language = get_language()
    made = build.report_for(chosen, now=now)
    document = present.present(made, language)
    svgs: dict[str, Markup] = {
        chart.id: charts.svg_of(chart, language, made.suppression_threshold)
        for section in document.sections
        for chart in section.charts
    }
    page = render_template(
        "evaluation_report.html",
        doc=document,
        svgs=svgs,
        pdf_url=url_for("evaluation.pdf", period=chosen.key),
        open_data=_open_data_url(),
    )
    _generated(made, "html", language)
    return page, 200
