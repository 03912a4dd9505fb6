"""The live board pages: the fire post's and the SAPA desk's."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, jsonify, redirect, render_template, request, url_for

from firmware_bridge.payloads import Kind

from ..accounts.auth import HOME, Role, current_role, login_required
from ..live import live

bp = Blueprint("board", __name__)


@bp.get("/")
def index() -> Any:
    role = current_role()
    if role is None:
        return redirect(url_for("auth.login"))
    return redirect(url_for(HOME[role]))


def _render(desk: Kind) -> str:
    from ..config import DEFAULT_UNITS

    units = (current_app.config.get("SIAGA_UNITS") or DEFAULT_UNITS)[str(desk)]
    return render_template(
        "board.html",
        desk=str(desk),
        units=units,
        wall=request.args.get("wall") == "1",
        map_tiles=current_app.config.get("SIAGA_MAP_TILES"),
        map_attribution=current_app.config.get("SIAGA_MAP_ATTRIBUTION", ""),
        user=g.user,
        demo_panel_url=current_app.config.get("SIAGA_DEMO_PANEL_URL"),
    )


@bp.get("/board")
@login_required(Role.FIRE_OPERATOR, Role.ADMIN)
def fire() -> str:
    return _render(Kind.FIRE)


@bp.get("/sapa")
@login_required(Role.SAPA_DESK)
def sapa() -> str:
    return _render(Kind.SAPA)


@bp.get("/healthz")
def healthz() -> Any:
    """Liveness for systemd, load balancers and monitoring; reveals no data."""
    state = live()
    ingest = state.ingest
    ok = ingest is None or (ingest.is_alive() and ingest.failure is None)
    if state.started:
        ok = ok and all(part.is_alive() for part in state.background())
    body = {"ok": ok, "mqtt_connected": bool(ingest and ingest.connected.is_set())}
    return jsonify(body), (200 if ok else 503)
