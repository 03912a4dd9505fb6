"""The technicians' device view: gateways, buttons, when each was last heard, battery, radio quality.

Everything here comes from what the gateways report (status, inventory,
health) and the open troubles; nothing from alarms, so a technician who
maintains SAPA buttons learns nothing of SAPA cases.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from firmware_bridge.timeutil import format_epoch

from . import audit, service
from .auth import Role, current_role, login_required
from .db import get_db, transaction
from .i18n import translate
from .supervision import Audience, open_troubles
from .visibility import trouble_audience

bp = Blueprint("devices", __name__)


def device_overview(conn: sqlite3.Connection, audience: Audience, now: float) -> dict[str, Any]:
    kinds = audience.kinds
    troubles = open_troubles(conn, audience)
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for trouble in troubles:
        by_subject.setdefault(trouble["subject"], []).append(trouble)
    gateways, nodes, wired = [], {}, {}
    for row in conn.execute("SELECT * FROM gateways ORDER BY gw"):
        health = _health(row["health"])
        gateways.append(
            {
                "gw": row["gw"],
                "state": row["state"],
                "version": row["version"],
                "health_at": format_epoch(row["health_at"]) if row["health_at"] else None,
                "health_age_s": round(now - row["health_at"]) if row["health_at"] else None,
                "outbox_depth": (health.get("outbox") or {}).get("depth"),
                "radio": ((health.get("radio") or {}).get("module") or {}).get("state"),
                "troubles": by_subject.get(row["gw"], []),
            }
        )
        age_base = now - row["health_at"] if row["health_at"] else None
        for node in ((health.get("radio") or {}).get("nodes") or {}).values():
            if isinstance(node, dict) and isinstance(node.get("button"), str):
                heard = node.get("age_s")
                node = {**node, "heard_s": None if heard is None or age_base is None else round(heard + age_base)}
                previous = nodes.get(node["button"])
                if previous is None or (
                    node["heard_s"] is not None and node["heard_s"] < (previous["heard_s"] or 1e12)
                ):
                    nodes[node["button"]] = {**node, "via": row["gw"]}
        for button in health.get("buttons") or []:
            if isinstance(button, dict) and isinstance(button.get("id"), str):
                wired[button["id"]] = button
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
    return {"gateways": gateways, "buttons": buttons, "troubles": troubles, "at": format_epoch(now)}


def _health(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


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
