"""The technicians' device view: gateways, buttons, when each was last heard, battery, radio quality.

Everything here comes from what the gateways report (status, inventory,
health) and the open troubles; nothing from alarms, so a technician who
maintains SAPA buttons learns nothing of SAPA cases. Health is read as
supervision reads it (:func:`dashboard.devices.health.read_health`): a
field of an odd shape or value is shown as unknown, never breaks the page.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from ..accounts import audit
from ..accounts.auth import Role, current_role, login_required
from ..accounts.visibility import trouble_audience
from ..db import get_db, transaction
from ..i18n import translate
from . import service
from .health import format_time, read_health, seconds
from .supervision import Audience, open_troubles

bp = Blueprint("devices", __name__)


def device_overview(conn: sqlite3.Connection, audience: Audience, now: float) -> dict[str, Any]:
    kinds = audience.kinds
    troubles = open_troubles(conn, audience)
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for trouble in troubles:
        by_subject.setdefault(trouble["subject"], []).append(trouble)
    gateways, nodes, wired = [], {}, {}
    for row in conn.execute("SELECT * FROM gateways ORDER BY gw"):
        health = read_health(row["health"])
        age_base = seconds(max(0.0, now - row["health_at"])) if row["health_at"] else None
        radio = health.radio
        module = radio.module if radio is not None else None
        gateways.append(
            {
                "gw": row["gw"],
                "state": row["state"],
                "version": row["version"],
                "health_at": format_time(row["health_at"]) if row["health_at"] else None,
                "health_age_s": round(age_base) if age_base is not None else None,
                "outbox_depth": health.outbox.depth,
                "radio": module.state if module is not None else None,
                "troubles": by_subject.get(row["gw"], []),
            }
        )
        for node in radio.nodes.values() if radio is not None else ():
            heard_s = None if node.age_s is None or age_base is None else round(node.age_s + age_base)
            previous = nodes.get(node.button)
            if previous is None or (heard_s is not None and heard_s < (previous["heard_s"] or 1e12)):
                nodes[node.button] = {
                    "heard_s": heard_s,
                    "battery_mv": node.battery_mv,
                    "rssi": node.rssi,
                    "snr": node.snr,
                    "via": row["gw"],
                }
        for button in health.buttons:
            wired[button.id] = {"pressed": button.pressed}
    set_aside = service.active(conn, now)
    buttons = []
    for row in conn.execute("SELECT * FROM buttons ORDER BY site_name, id"):
        if row["kind"] not in kinds:
            continue
        radio = nodes.get(row["id"], {})
        buttons.append(
            {
                "id": row["id"],
                "gw": row["gw"],
                "kind": row["kind"],
                "transport": row["transport"],
                "site": row["site_name"],
                "label": row["label"],
                "heard_s": radio.get("heard_s"),
                "battery_mv": radio.get("battery_mv"),
                "rssi": radio.get("rssi"),
                "snr": radio.get("snr"),
                "via": radio.get("via"),
                "pressed": (wired.get(row["id"]) or {}).get("pressed"),
                "troubles": by_subject.get(row["id"], []),
                "service": set_aside[row["id"]].view() if row["id"] in set_aside else None,
            }
        )
    return {"gateways": gateways, "buttons": buttons, "troubles": troubles, "at": format_time(now)}


_MAINTAINERS = (Role.TECHNICIAN, Role.ADMIN)


@bp.get("/devices")
@login_required(Role.TECHNICIAN, Role.ADMIN, Role.FIRE_OPERATOR, Role.SAPA_DESK)
def index() -> str:
    view = device_overview(get_db(), trouble_audience(), time.time())
    return render_template("devices.html", view=view, can_service=current_role() in _MAINTAINERS)


@bp.post("/devices/buttons/<button>/service")
@login_required(*_MAINTAINERS)
def set_service(button: str) -> Any:
    conn = get_db()
    form = request.form
    try:
        with transaction(conn):
            service.set_mode(
                conn, button, form.get("mode"), form.get("reason"), form.get("hours"), audit.who(), time.time()
            )
    except service.ServiceError as exc:
        flash(str(exc), "error")
    else:
        flash(translate(f"service_set_{form.get('mode')}", button=button))
    return redirect(url_for("devices.index"), 303)


@bp.get("/api/devices")
@login_required(Role.TECHNICIAN, Role.ADMIN, Role.FIRE_OPERATOR, Role.SAPA_DESK)
def api() -> Any:
    return jsonify(device_overview(get_db(), trouble_audience(), time.time()))
