"""The Satpol PP workspace: a queue of reports, each report's details, and the workflow.

Reporter identity and contacts appear only here, to the ``satpol`` role.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for

from ..accounts.auth import Role, login_required
from ..db import get_db
from ..i18n import translate
from . import store
from .public import send_photo
from .workflow import MOVES, Enforcement, Rejection, Status, WorkflowError

log = logging.getLogger(__name__)

bp = Blueprint("workspace", __name__, url_prefix="/satpol")

DAY = 86400.0


def _catalogue():
    return current_app.config["SIAGA_CATALOGUE"]


def _age_days(row: Any, now: float) -> float:
    return (now - row["requested_at"]) / DAY


@bp.get("/")
@login_required(Role.SATPOL)
def queue() -> Any:
    catalogue = _catalogue()
    statuses = [s for s in request.args.getlist("status") if s in Status.__members__.values()] or [
        Status.RECEIVED,
        Status.VERIFIED,
        Status.IN_ACTION,
    ]
    category = request.args.get("category") or None
    area = request.args.get("area") or None
    min_age = request.args.get("min_age_days", type=float)
    overdue_only = request.args.get("overdue") == "1"
    query = f"SELECT * FROM reports WHERE status IN ({','.join('?' * len(statuses))})"  # noqa: S608
    params: list[Any] = list(statuses)
    if category:
        query += " AND service_code = ?"
        params.append(category)
    if area:
        query += " AND area = ?"
        params.append(area)
    rows = get_db().execute(query + " ORDER BY requested_at LIMIT 2000", params).fetchall()
    now = time.time()
    items = []
    for row in rows:
        age = _age_days(row, now)
        target = getattr(catalogue.get(row["service_code"]), "target_days", 7.0)
        overdue = row["status"] not in (Status.DONE, Status.REJECTED) and age > target
        if (min_age is not None and age < min_age) or (overdue_only and not overdue):
            continue
        items.append(
            {
                "row": row,
                "age": age,
                "target": target,
                "overdue": overdue,
                "category": catalogue.get(row["service_code"]),
            }
        )
    items.sort(key=lambda item: (not item["overdue"], -(item["age"] / item["target"])))
    return render_template(
        "satpol_queue.html",
        items=items,
        catalogue=catalogue,
        statuses=list(Status),
        chosen=statuses,
        category=category,
        area=area,
        min_age=min_age,
        overdue_only=overdue_only,
    )


@bp.get("/laporan/<ticket>")
@login_required(Role.SATPOL)
def report(ticket: str) -> Any:
    conn = get_db()
    try:
        row = store.get_report(conn, ticket)
    except store.ReportNotFound:
        abort(404)
    catalogue = _catalogue()
    category = catalogue.get(row["service_code"])
    now = time.time()
    return render_template(
        "satpol_report.html",
        report=row,
        category=category,
        attributes=json.loads(row["attributes"] or "{}"),
        photos=store.photos(conn, row["id"]),
        history=store.history(conn, row["id"], public_only=False),
        step=store.last_step(conn, row["id"]),
        moves=MOVES[Status(row["status"])],
        rejections=list(Rejection),
        enforcements=list(Enforcement),
        age=_age_days(row, now),
        target=getattr(category, "target_days", 7.0),
        when=store.w3c,
        map_tiles=current_app.config.get("SIAGA_MAP_TILES"),
        map_attribution=current_app.config.get("SIAGA_MAP_ATTRIBUTION", ""),
    )


@bp.post("/laporan/<ticket>")
@login_required(Role.SATPOL)
def move(ticket: str) -> Any:
    target = request.form.get("to_status", "")
    resolution = request.form.get("rejection") if target == Status.REJECTED else request.form.get("action")
    try:
        store.move_report(
            get_db(),
            ticket,
            target,
            resolution=resolution or None,
            actor=g.user["username"],
            note=request.form.get("note"),
            public=request.form.get("public") == "1",
            expected_step=request.form.get("step", type=int),
        )
    except store.ReportNotFound:
        abort(404)
    except WorkflowError as exc:
        log.info("move of %s by %s refused: %s", ticket, g.user["username"], exc)
        flash(translate(exc.key), "error")
        return redirect(url_for("workspace.report", ticket=ticket), 303)
    flash(translate("report_updated"))
    return redirect(url_for("workspace.report", ticket=ticket), 303)


@bp.get("/foto/<int:photo_id>")
@login_required(Role.SATPOL)
def photo(photo_id: int) -> Any:
    return send_photo(photo_id)
