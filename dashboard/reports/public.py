"""The citizens' pages: report a violation from a phone, then follow it by its ticket number."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, send_file, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from ..bodylimit import limit_body
from ..db import get_db
from ..i18n import get_language, translate
from . import store
from .intake import IntakeError, attribute_values, validate_report
from .metrics import count
from .photos import PhotoRefused, clean_photo

log = logging.getLogger(__name__)

bp = Blueprint("public", __name__)

MAX_PHOTOS = 3
#: The whole form with its photos; anything larger is refused before it is read.
MAX_FORM_BYTES = MAX_PHOTOS * 8 * 1024 * 1024 + 512 * 1024


def _catalogue():
    return current_app.config["SIAGA_CATALOGUE"]


def _client() -> str:
    return request.remote_addr or "unknown"


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc: RequestEntityTooLarge) -> Any:
    """A citizen whose photos are too large together gets the form back, in their language."""
    count("form.refused.too_large")
    return _form_page(413, error=translate("error_form_too_large", mb=MAX_FORM_BYTES // (1024 * 1024)))


def _form_page(status: int = 200, **context: Any) -> tuple[str, int]:
    form = context.get("form") or {}
    context["picked"] = lambda name: form.getlist(name) if hasattr(form, "getlist") else []
    return render_template(
        "report_form.html",
        catalogue=_catalogue(),
        language=get_language(),
        map_tiles=current_app.config.get("SIAGA_MAP_TILES"),
        map_attribution=current_app.config.get("SIAGA_MAP_ATTRIBUTION", ""),
        max_photos=MAX_PHOTOS,
        form=context.pop("form", {}),
        **context,
    ), status


@bp.get("/lapor")
def form() -> Any:
    return _form_page()


@bp.post("/lapor")
@limit_body(MAX_FORM_BYTES)
def submit() -> Any:
    limiter = current_app.extensions["siaga.reports"].form_limiter
    allowed, retry = limiter.allow(f"form:{_client()}")
    if not allowed:
        count("form.rate_limited")
        return _form_page(429, error=translate("error_rate", s=int(retry) + 1), form=request.form)
    fields = request.form
    try:
        report = validate_report(fields, _catalogue(), source="web", attributes=_chosen_attributes(fields))
    except IntakeError as exc:
        count(f"form.refused.{exc.key.removeprefix('error_')}")
        return _form_page(400, error=translate(exc.key), error_field=exc.field, form=fields)
    uploads = [f for f in request.files.getlist("photos") if f and f.filename]
    if len(uploads) > MAX_PHOTOS:
        count("form.refused.photo_count")
        return _form_page(400, error=translate("error_photo_count", n=MAX_PHOTOS), error_field="photos", form=fields)
    for upload in uploads:
        try:
            report.photos.append(clean_photo(upload.read(8 * 1024 * 1024 + 1)))
        except PhotoRefused as exc:
            count(f"form.refused.{exc.reason}")
            message = translate(f"error_{exc.reason}", name=upload.filename or "")
            return _form_page(400, error=message, error_field="photos", form=fields)
    ticket, _ = store.create_report(
        get_db(),
        report,
        photos_dir=current_app.config["SIAGA_PHOTOS_DIR"],
        prefix=current_app.config["SIAGA_TICKET_PREFIX"],
    )
    count("form.received")
    log.info("report %s received (%s, %d photo(s))", ticket, report.service_code, len(report.photos))
    # Stored and committed: only now does the citizen see the ticket.
    return redirect(url_for("public.track", ticket=ticket, new=1), 303)


def _chosen_attributes(fields: Any) -> dict[str, list[str]]:
    """Answers to the chosen category's questions only.

    Without JavaScript every category's questions are on the page, and a citizen
    who first picked another category may have answered some of them; those
    answers are not an error of theirs, so they are dropped rather than refused.
    """
    category = _catalogue().get(fields.get("service_code", ""))
    given = attribute_values(fields)
    if category is None:
        return given
    codes = {attribute.code for attribute in category.attributes}
    return {code: values for code, values in given.items() if code in codes}


@bp.get("/lacak")
def lookup() -> Any:
    ticket = request.args.get("ticket", "").strip().upper()
    if ticket:
        return redirect(url_for("public.track", ticket=ticket))
    return render_template("report_lookup.html")


@bp.get("/lapor/<ticket>")
def track(ticket: str) -> Any:
    """What happened to a report: never who sent it or how to reach them."""
    conn = get_db()
    try:
        row = store.get_report(conn, ticket)
    except store.ReportNotFound:
        return render_template("report_lookup.html", not_found=ticket), 404
    category = _catalogue().get(row["service_code"])
    return render_template(
        "report_track.html",
        report=row,
        category=category,
        history=store.history(conn, row["id"], public_only=True),
        photos=store.photos(conn, row["id"]) if current_app.config.get("SIAGA_PUBLIC_PHOTOS") else [],
        new=request.args.get("new") == "1",
        language=get_language(),
        when=store.w3c,
    )


@bp.get("/lapor/foto/<int:photo_id>")
def public_photo(photo_id: int) -> Any:
    """Photos are shown publicly only where the regency chose so (``public_photos``)."""
    if not current_app.config.get("SIAGA_PUBLIC_PHOTOS"):
        abort(404)
    return send_photo(photo_id)


def send_photo(photo_id: int) -> Any:
    row = get_db().execute("SELECT path FROM report_photos WHERE id = ?", (photo_id,)).fetchone()
    if row is None:
        abort(404)
    path = current_app.config["SIAGA_PHOTOS_DIR"] / row["path"]
    return send_file(path, mimetype="image/jpeg", max_age=3600)
