"""The board's JSON API and its live stream (Server-Sent Events)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, abort, g, jsonify, request

from firmware_bridge.timeutil import format_epoch

from . import store
from .alarms import Action, AlarmNotFound, InvalidTransition
from .auth import Role, login_required, visible_kinds
from .db import get_db
from .hub import LiveMessage
from .live import live

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")

_BOARD_ROLES = (Role.FIRE_OPERATOR, Role.SAPA_DESK, Role.ADMIN)
KEEPALIVE_S = 15.0


@bp.get("/alarms")
@login_required(*_BOARD_ROLES)
def list_alarms() -> Any:
    open_only = request.args.get("state", "open") != "all"
    limit = min(max(request.args.get("limit", 200, type=int), 1), 1000)
    alarms = store.list_alarms(get_db(), kinds=visible_kinds(), open_only=open_only, limit=limit)
    return jsonify(alarms=alarms)


@bp.get("/alarms/<int:alarm_id>")
@login_required(*_BOARD_ROLES)
def get_alarm(alarm_id: int) -> Any:
    alarm = store.get_alarm(get_db(), alarm_id, kinds=visible_kinds())
    if alarm is None:
        abort(404)
    conn = get_db()
    return jsonify(alarm=alarm, actions=store.alarm_actions(conn, alarm_id), events=store.alarm_events(conn, alarm_id))


def _act(alarm_id: int, action: Action) -> Any:
    body = request.get_json(silent=True)
    if body is None:
        body = request.form.to_dict()
    if not isinstance(body, dict):
        return jsonify(error="bad_request", message="expected a JSON object"), 400
    try:
        alarm = store.act_on_alarm(
            get_db(),
            alarm_id,
            action,
            actor=g.user["username"],
            kinds=visible_kinds(),
            now=time.time(),
            note=body.get("note"),
            resolution=body.get("resolution"),
        )
    except AlarmNotFound:
        abort(404)
    except InvalidTransition as exc:
        return jsonify(error="invalid", message=str(exc)), 409 if "cannot" in str(exc) else 400
    state = live()
    state.hub.publish(LiveMessage("alarm", alarm, kind=alarm["kind"]))
    if state.ingest is not None:
        state.ingest.indicate(alarm)
    else:
        log.warning("no MQTT link: button %s not told about alarm %s", alarm["button"], alarm["id"])
    return jsonify(alarm=alarm)


@bp.post("/alarms/<int:alarm_id>/acknowledge")
@login_required(*_BOARD_ROLES)
def acknowledge(alarm_id: int) -> Any:
    return _act(alarm_id, Action.ACKNOWLEDGED)


@bp.post("/alarms/<int:alarm_id>/resolve")
@login_required(*_BOARD_ROLES)
def resolve(alarm_id: int) -> Any:
    return _act(alarm_id, Action.RESOLVED)


@bp.get("/gateways")
@login_required()
def gateways() -> Any:
    return jsonify(gateways=store.list_gateways(get_db()))


def _snapshot(kinds: frozenset[str]) -> LiveMessage:
    conn = get_db()
    return LiveMessage(
        "snapshot",
        {
            "alarms": store.list_alarms(conn, kinds=kinds, open_only=True),
            "gateways": store.list_gateways(conn),
            "server_time": format_epoch(time.time()),
        },
    )


@bp.get("/stream")
@login_required(*_BOARD_ROLES)
def stream() -> Response:
    kinds = visible_kinds()
    # Subscribe before reading the snapshot: an update in between is sent
    # twice rather than lost, and the board keeps the higher revision.
    subscription = live().hub.subscribe(kinds)
    snapshot = _snapshot(kinds)

    def generate() -> Iterator[bytes]:
        try:
            yield b"retry: 1000\n\n"
            yield snapshot.sse()
            while True:
                try:
                    message = subscription.get(KEEPALIVE_S)
                except EOFError:
                    return
                yield message.sse() if message is not None else b": keepalive\n\n"
        finally:
            subscription.close()

    return Response(
        generate(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"},
    )


@bp.get("/diagnostics")
@login_required(Role.ADMIN, Role.TECHNICIAN)
def diagnostics() -> Any:
    state = live()
    ingest = state.ingest
    return jsonify(
        counters=state.counters.snapshot(),
        mqtt_connected=bool(ingest and ingest.connected.is_set()),
        ingest_alive=bool(ingest and ingest.is_alive()),
        ingest_backlog=ingest.backlog if ingest else None,
        rejections=[
            {"at": r.at, "topic": r.topic, "reason": r.reason, "message": r.message}
            for r in (list(ingest.rejections) if ingest else [])
        ],
        live_subscribers=state.hub.subscribers,
    )
