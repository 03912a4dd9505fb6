"""Commissioning's blueprint: the technicians' pages and ``/api/commissioning/`` for ``siaga-gateway commission``.

Technicians and administrators only (an administrator sees sessions and
reports of fire buttons alone, see ``store``). Every write carries the CSRF
token (a form field, or the ``X-CSRF-Token`` header for the API) and is
audited in its own transaction. The page of a session polls the same JSON the
CLI polls and reloads itself when a button's record moves.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from ..accounts import audit
from ..accounts.auth import Role, login_required, trouble_kinds
from ..db import get_db, transaction
from ..devices.supervision import SupervisionSettings
from ..i18n import get_language, translate
from . import report, store
from .settings import CommissioningSettings

bp = Blueprint("commissioning", __name__)

_MAINTAINERS = (Role.TECHNICIAN, Role.ADMIN)
#: Tries to store a report when a button's record changed while it was being made.
FINISH_TRIES = 3


def init_app(app: Flask) -> None:
    """``[commissioning]`` into supervision's rules (before ``live`` builds the supervisor), and the blueprint.

    A configuration without ``SIAGA_COMMISSIONING`` (one built in code) gets the defaults: required,
    as on a real site; ``dashboard.toml`` and the tests' ``dashboard_config`` say it explicitly.
    """
    settings = app.config.get("SIAGA_COMMISSIONING") or CommissioningSettings()
    app.config["SIAGA_COMMISSIONING"] = settings
    supervision = app.config.get("SIAGA_SUPERVISION") or SupervisionSettings()
    app.config["SIAGA_SUPERVISION"] = replace(supervision, commissioning=settings)
    app.register_blueprint(bp)


def _settings() -> CommissioningSettings:
    return current_app.config["SIAGA_COMMISSIONING"]


def _session(session_id: int) -> store.Session:
    return store.get_session(get_db(), session_id, trouble_kinds())


def _api_error(exc: store.CommissioningError) -> tuple[Response, int]:
    return jsonify(error=exc.code, message=str(exc)), exc.status


def _page_error(exc: store.CommissioningError) -> None:
    if exc.status == 404:
        abort(404)
    flash(str(exc), "error")


# -- actions shared by the pages and the API ------------------------------------------------------


def _start(gw: object, buttons: object) -> int:
    conn = get_db()
    with transaction(conn):
        return store.start_session(conn, gw, buttons, audit.who(), time.time(), _settings(), trouble_kinds())


def _view(session_id: int) -> dict[str, Any]:
    conn = get_db()
    session = _session(session_id)
    now = time.time()
    store.observe(conn, session, now)
    return store.session_view(conn, session, _settings(), now)


def _arm(session_id: int, button: str) -> None:
    conn = get_db()
    with transaction(conn):
        store.arm(conn, _session(session_id), button, audit.who(), time.time())


def _answer(session_id: int, button: str, body: object) -> None:
    conn = get_db()
    session = _session(session_id)
    store.observe(conn, session, time.time())  # the press first: an answer is about it
    with transaction(conn):
        store.record_answers(conn, session, button, body, time.time())


def _finish(session_id: int) -> dict[str, Any]:
    """Judge every button, make the PDF outside the store's lock, then store both unless a record moved."""
    conn = get_db()
    who = audit.who()
    language = get_language()
    for _ in range(FINISH_TRIES):
        session = _session(session_id)
        if session.state != store.OPEN:
            raise store.CommissioningError(f"session {session.id} is {session.state}", "session_closed", 409)
        now = time.time()
        store.observe(conn, session, now)
        made_from = store.marker(conn, session.id)
        results = store.results_of(conn, session, _settings(), now, who.actor)
        pdf = report.render_pdf(results, language)
        if store.store_report(conn, session, results, pdf, who, now, made_from):
            return results
    raise store.CommissioningError("the session changed while its report was made: finish it again", "busy", 409)


def _abandon(session_id: int) -> None:
    conn = get_db()
    with transaction(conn):
        store.abandon(conn, _session(session_id), audit.who(), time.time())


def _links(session_id: int) -> dict[str, str]:
    return {
        "report_url": url_for("commissioning.report_page", session_id=session_id, _external=True),
        "pdf_url": url_for("commissioning.report_pdf", session_id=session_id, _external=True),
        "page_url": url_for("commissioning.session_page", session_id=session_id, _external=True),
    }


# -- JSON API -----------------------------------------------------------------------------------------


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise store.CommissioningError("a JSON object is required")
    return body


@bp.post("/api/commissioning/sessions")
@login_required(*_MAINTAINERS)
def api_start() -> Any:
    try:
        body = _json_body()
        session_id = _start(body.get("gw"), body.get("buttons"))
        return jsonify({**_view(session_id), **_links(session_id)}), 201
    except store.CommissioningError as exc:
        return _api_error(exc)


@bp.get("/api/commissioning/sessions/<int:session_id>")
@login_required(*_MAINTAINERS)
def api_session(session_id: int) -> Any:
    try:
        return jsonify({**_view(session_id), **_links(session_id)})
    except store.CommissioningError as exc:
        return _api_error(exc)


@bp.post("/api/commissioning/sessions/<int:session_id>/buttons/<button>/arm")
@login_required(*_MAINTAINERS)
def api_arm(session_id: int, button: str) -> Any:
    try:
        _arm(session_id, button)
        return jsonify(_view(session_id))
    except store.CommissioningError as exc:
        return _api_error(exc)


@bp.post("/api/commissioning/sessions/<int:session_id>/buttons/<button>")
@login_required(*_MAINTAINERS)
def api_answer(session_id: int, button: str) -> Any:
    try:
        _answer(session_id, button, _json_body())
        return jsonify(_view(session_id))
    except store.CommissioningError as exc:
        return _api_error(exc)


@bp.post("/api/commissioning/sessions/<int:session_id>/finish")
@login_required(*_MAINTAINERS)
def api_finish(session_id: int) -> Any:
    try:
        results = _finish(session_id)
        return jsonify({**results, **_links(session_id)})
    except store.CommissioningError as exc:
        return _api_error(exc)


@bp.post("/api/commissioning/sessions/<int:session_id>/abandon")
@login_required(*_MAINTAINERS)
def api_abandon(session_id: int) -> Any:
    try:
        _abandon(session_id)
        return jsonify(_view(session_id))
    except store.CommissioningError as exc:
        return _api_error(exc)


# -- pages --------------------------------------------------------------------------------------------


@bp.get("/commissioning")
@login_required(*_MAINTAINERS)
def index() -> str:
    conn = get_db()
    kinds = trouble_kinds()
    gw = (request.args.get("gw") or "")[:200] or None
    return render_template(
        "commissioning.html",
        sessions=store.open_sessions(conn, kinds, time.time()),
        reports=store.list_reports(conn, kinds, gw),
        gw=gw,
        language=get_language(),
        result_text=report.result_text,
    )


@bp.post("/commissioning/sessions")
@login_required(*_MAINTAINERS)
def start_page() -> Any:
    buttons = request.form.getlist("button") or None
    try:
        session_id = _start(request.form.get("gw"), buttons)
    except store.CommissioningError as exc:
        _page_error(exc)
        return redirect(url_for("devices.index"), 303)
    flash(translate("commissioning_started_flash", id=session_id, gw=request.form.get("gw")))
    return redirect(url_for("commissioning.session_page", session_id=session_id), 303)


@bp.get("/commissioning/sessions/<int:session_id>")
@login_required(*_MAINTAINERS)
def session_page(session_id: int) -> Any:
    try:
        view = _view(session_id)
    except store.CommissioningError:
        abort(404)
    language = get_language()
    return render_template(
        "commissioning_session.html",
        session=view,
        language=language,
        texts=report,
        open=view["state"] == store.OPEN,
        has_report=view["state"] == store.FINISHED,
    )


@bp.post("/commissioning/sessions/<int:session_id>/buttons/<button>")
@login_required(*_MAINTAINERS)
def answer_page(session_id: int, button: str) -> Any:
    form = request.form
    try:
        if form.get("action") == "arm":
            _arm(session_id, button)
        else:
            body: dict[str, Any] = {}
            for name in ("led_seen", "buzzer_heard"):
                if form.get(name):
                    body[name] = form[name]
            if form.get("action") == "gave_up":
                body["gave_up"] = True
            _answer(session_id, button, body)
    except store.CommissioningError as exc:
        _page_error(exc)
    return redirect(url_for("commissioning.session_page", session_id=session_id), 303)


@bp.post("/commissioning/sessions/<int:session_id>/finish")
@login_required(*_MAINTAINERS)
def finish_page(session_id: int) -> Any:
    try:
        _finish(session_id)
    except store.CommissioningError as exc:
        _page_error(exc)
        return redirect(url_for("commissioning.session_page", session_id=session_id), 303)
    return redirect(url_for("commissioning.report_page", session_id=session_id), 303)


@bp.post("/commissioning/sessions/<int:session_id>/abandon")
@login_required(*_MAINTAINERS)
def abandon_page(session_id: int) -> Any:
    try:
        _abandon(session_id)
    except store.CommissioningError as exc:
        _page_error(exc)
    else:
        flash(translate("commissioning_abandoned_flash", id=session_id))
    return redirect(url_for("commissioning.index"), 303)


@bp.get("/commissioning/reports/<int:session_id>")
@login_required(*_MAINTAINERS)
def report_page(session_id: int) -> Any:
    try:
        results = store.get_report(get_db(), session_id, trouble_kinds())
    except store.CommissioningError:
        abort(404)
    language = get_language()
    return render_template(
        "commissioning_report.html",
        results=results,
        summary=report.summary_rows(results, language),
        rows=report.button_rows(results, language),
        verdict=report.result_text(language, results["verdict"]),
    )


@bp.get("/commissioning/reports/<int:session_id>.pdf")
@login_required(*_MAINTAINERS)
def report_pdf(session_id: int) -> Any:
    try:
        pdf, gw = store.get_report_pdf(get_db(), session_id, trouble_kinds())
    except store.CommissioningError:
        abort(404)
    name = f"siaga-commissioning-{session_id}-{gw}.pdf"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return Response(pdf, mimetype="application/pdf", headers={"Content-Disposition": f'attachment; filename="{safe}"'})
