"""The board's JSON API and its live stream (Server-Sent Events)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from flask import Blueprint, Response, abort, current_app, g, jsonify, request, session

from firmware_bridge.payloads import Kind
from firmware_bridge.timeutil import format_epoch

from ..accounts import audit
from ..accounts.auth import Role, login_required, session_user, visible_kinds
from ..accounts.visibility import trouble_audience
from ..alarms import notify, store
from ..alarms.changes import Change
from ..alarms.lifecycle import Action, AlarmChanged, AlarmNotFound, InvalidAction, InvalidTransition
from ..db import get_db, give_back, kept
from ..devices import registry, sites
from ..devices.supervision import Audience, open_troubles
from ..ingest.hub import AsyncSubscription, LiveMessage, LoopBridge
from ..live import live

bp = Blueprint("api", __name__, url_prefix="/api")

_BOARD_ROLES = (Role.FIRE_OPERATOR, Role.SAPA_DESK, Role.ADMIN)
KEEPALIVE_S = 15.0
_KINDS = frozenset(kind.value for kind in Kind)
#: A board's snapshot lists alarms resolved this recently, so that a late copy
#: of their earlier state (published by another thread) is recognised as old.
CLOSED_MEMORY_S = 3600.0
#: Alarm ids in URLs: anything larger than SQLite's integers is simply not found.
_ALARM = "<int(max=4611686018427387903):alarm_id>"


@bp.get("/alarms")
@login_required(*_BOARD_ROLES)
def list_alarms() -> Any:
    open_only = request.args.get("state", "open") != "all"
    limit = min(max(request.args.get("limit", 200, type=int), 1), 1000)
    kinds = visible_kinds()
    alarms = store.list_alarms(get_db(), kinds=kinds, open_only=open_only, limit=limit)
    if Kind.SAPA in kinds:
        audit.sapa_read(get_db(), f"alarms?state={'open' if open_only else 'all'}", time.time())
    return jsonify(alarms=alarms)


@bp.get(f"/alarms/{_ALARM}")
@login_required(*_BOARD_ROLES)
def get_alarm(alarm_id: int) -> Any:
    alarm = store.get_alarm(get_db(), alarm_id, kinds=visible_kinds())
    if alarm is None:
        abort(404)
    conn = get_db()
    if alarm["kind"] == Kind.SAPA:
        audit.sapa_read(conn, f"alarm:{alarm_id}", time.time())
    return jsonify(
        alarm=alarm,
        actions=store.alarm_actions(conn, alarm_id),
        events=store.alarm_events(conn, alarm_id),
        notifications=notify.list_for_alarm(conn, alarm_id),
    )


def _act(alarm_id: int, action: Action) -> Any:
    # A JSON body must be an object; only a form-encoded body is read as a form.
    body = request.get_json() if request.is_json else request.form.to_dict()
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
            seen_rev=body.get("rev"),
            seen_presses=body.get("presses"),
            unit=body.get("unit"),
            by=audit.who(),
        )
    except AlarmNotFound:
        abort(404)
    except AlarmChanged as exc:
        return jsonify(error="changed", message=str(exc), alarm=exc.alarm), 409
    except InvalidTransition as exc:
        return jsonify(error="conflict", message=str(exc)), 409
    except InvalidAction as exc:
        return jsonify(error="invalid", message=str(exc)), 400
    live().changes.committed([alarm], Change.ACTED)
    return jsonify(alarm=alarm)


@bp.post(f"/alarms/{_ALARM}/acknowledge")
@login_required(*_BOARD_ROLES)
def acknowledge(alarm_id: int) -> Any:
    return _act(alarm_id, Action.ACKNOWLEDGED)


@bp.post(f"/alarms/{_ALARM}/dispatch")
@login_required(*_BOARD_ROLES)
def dispatch(alarm_id: int) -> Any:
    return _act(alarm_id, Action.DISPATCHED)


@bp.post(f"/alarms/{_ALARM}/resolve")
@login_required(*_BOARD_ROLES)
def resolve(alarm_id: int) -> Any:
    return _act(alarm_id, Action.RESOLVED)


@bp.get("/gateways")
# Every role that keeps or watches the devices, and Satpol PP as before: not the evaluator (aggregates only).
@login_required(*_BOARD_ROLES, Role.TECHNICIAN, Role.SATPOL)
def gateways() -> Any:
    return jsonify(gateways=registry.list_gateways(get_db()))


#: The last summary's encoded body per audience: every open board fetches it after a change, all at once.
_summary_bodies: dict[tuple[Any, ...], tuple[list[dict[str, Any]], bytes]] = {}


@bp.get("/sites")
@login_required(*_BOARD_ROLES, Role.TECHNICIAN)
def site_list() -> Any:
    conn, audience, kinds, now = get_db(), trouble_audience(), visible_kinds(), time.time()
    name = request.args.get("site")
    if name is not None:
        found = sites.site(conn, audience, kinds, now, name)
        if found is None:
            abort(404)
        return jsonify(site=found)
    if request.args.get("view") != "summary":
        return jsonify(sites=sites.sites(conn, audience, kinds, now))
    summary = sites.summary(conn, audience, kinds, now)
    key = (current_app.config["DATABASE"], audience, kinds)
    known = _summary_bodies.get(key)
    if known is None or known[0] is not summary:  # sites.summary returns the same list while nothing changed
        known = (summary, current_app.json.dumps({"sites": summary}).encode())
        _summary_bodies[key] = known
    return Response(known[1], mimetype="application/json")


@bp.get("/troubles")
@login_required(*_BOARD_ROLES, Role.TECHNICIAN)
def troubles() -> Any:
    return jsonify(troubles=open_troubles(get_db(), trouble_audience()))


#: A board's snapshot (less its server time) is shared by the boards of one audience while nothing
#: was published since it was read, for at most this long: after a dashboard restart during a mass
#: event a thousand boards reconnect at once, and each snapshot of 7,000 open alarms took 0.4-0.5 s.
SNAPSHOT_SHARE_S = 5.0


@dataclass(frozen=True)
class _SharedSnapshot:
    generation: int
    read_at: float
    body: bytes  # the snapshot's JSON object without server_time


#: Where an app keeps its shared snapshots: with the app, like its hub, whose generations they are of
#: (a dashboard started again in the same process has a new hub counting from 0).
_SNAPSHOTS = "siaga.snapshots"
_snapshots_lock = threading.Lock()


def _snapshot(kinds: frozenset[str]) -> LiveMessage:
    """What a board starts from; read after its subscription, so that nothing falls between them."""
    hub, audience, now = live().hub, trouble_audience(), time.monotonic()
    key = (kinds, audience)
    generation = hub.generation
    with _snapshots_lock:
        snapshots: dict[tuple[Any, ...], _SharedSnapshot] = current_app.extensions.setdefault(_SNAPSHOTS, {})
        shared = snapshots.get(key)
    if shared is None or shared.generation != generation or now - shared.read_at > SNAPSHOT_SHARE_S:
        # Every change is committed before it is published: with the generation unchanged since
        # before these reads, they hold every change any board was sent before subscribing.
        shared = _SharedSnapshot(generation, now, _snapshot_body(kinds, audience))
        live().counters.add("snapshots_read")
        if hub.generation == generation:
            with _snapshots_lock:
                snapshots[key] = shared
    server_time = json.dumps(format_epoch(time.time())).encode()
    body = b'{"server_time":' + server_time + b"," + shared.body[1:]
    return LiveMessage("snapshot", {}, _encoded=[b"event: snapshot\ndata: " + body + b"\n\n"])


def _snapshot_body(kinds: frozenset[str], audience: Audience) -> bytes:
    conn = get_db()
    data = {
        # Every open alarm, however many: a board that reconnects during a mass event must not
        # lose sight of the older ones (it showed the newest 200 only).
        "alarms": store.list_alarms(conn, kinds=kinds, open_only=True, limit=None),
        "closed": store.recently_closed(conn, kinds=kinds, since=time.time() - CLOSED_MEMORY_S),
        "gateways": registry.list_gateways(conn),
        "troubles": open_troubles(conn, audience),
    }
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


#: The live stream's path; ``dashboard/asgi.py`` serves its body from the event loop.
STREAM_PATH = "/api/stream"

#: The WSGI environ key under which the ASGI server offers to write a stream's body itself.
ASYNC_STREAM = "siaga.async_stream"


@dataclass
class LiveStream:
    """An opened stream whose body the event loop writes: what to send first and what to follow."""

    subscription: AsyncSubscription
    snapshot: LiveMessage
    still_signed_in: Callable[[], bool]
    keepalive_s: float


@dataclass
class StreamOffer:
    """The ASGI server's offer (in the environ) to serve a stream without holding a request thread."""

    bridge: LoopBridge
    stream: LiveStream | None = None


_HEADERS = {"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"}


@bp.get("/stream")
@login_required(*_BOARD_ROLES)
def stream() -> Response:
    kinds = visible_kinds()
    if live().hub.subscribers >= current_app.config["SIAGA_MAX_STREAMS"]:
        # A clear answer, not a hang: the board's browser tries again on its own.
        message = "this dashboard serves as many live boards as it may; try again shortly"
        return jsonify(error="too_many_streams", message=message), 503, {"Retry-After": "30"}
    offer = request.environ.get(ASYNC_STREAM)
    # Subscribe before reading the snapshot: an update in between is sent
    # twice rather than lost, and the board keeps the higher revision.
    subscription = live().hub.subscribe(  # may end the account's oldest stream
        kinds, owner=g.user["id"], bridge=offer.bridge if offer is not None else None
    )
    snapshot = _snapshot(kinds)
    if Kind.SAPA in kinds:
        audit.sapa_read(get_db(), "stream", time.time())
    database, session_id = current_app.config["DATABASE"], session.get("sid")
    keepalive_s = current_app.config.get("SIAGA_STREAM_KEEPALIVE_S", KEEPALIVE_S)

    def still_signed_in() -> bool:
        conn = kept(database)
        try:
            return session_user(conn, session_id) is not None
        finally:
            give_back(conn)

    if offer is not None:
        offer.stream = LiveStream(cast(AsyncSubscription, subscription), snapshot, still_signed_in, keepalive_s)
        return Response(b"", mimetype="text/event-stream", headers=_HEADERS)

    def generate() -> Iterator[bytes]:
        try:
            yield b"retry: 1000\n\n"
            yield snapshot.sse()
            while True:
                try:
                    message = subscription.get(keepalive_s)
                except EOFError:
                    return
                if message is not None:
                    yield message.sse()
                elif still_signed_in():  # a signed-out or disabled account stops receiving
                    yield b": keepalive\n\n"
                else:
                    return
        finally:
            subscription.close()

    # Served by a plain WSGI server (Flask's test client): the stream holds this thread.
    return Response(generate(), mimetype="text/event-stream", headers=_HEADERS)


#: Counters that tell nothing of any alarm kind's activity: the MQTT link,
#: the store, and messages refused before anyone could tell what they were
#: about. Every other counter must end in its kind (``events_stored.fire``)
#: and is shown only to roles that see that kind: a counter nobody classified
#: stays hidden (a total over every kind would reveal SAPA work by difference).
_KIND_FREE = frozenset(
    {
        "mqtt_connects",
        "mqtt_disconnects",
        "mqtt_connect_refused",
        "store_errors",
        "writer_errors",
        "set_aside.other",
        "presence_restored",
        "presence_resyncs",
        "health_unreadable",  # per gateway round, whatever its buttons' kinds
        "http_500",  # a bug: its count says nothing of which desk's request met it
        "rejected",
        # Home Assistant's session and retained configurations (inventory, not presses; events are per kind)
        "ha_mqtt_connects",
        "ha_mqtt_connect_refused",
        "ha_retained_sent",
        "ha_retained_failed",
        "ha_round_errors",
        "ha_handover_errors",
        # Time series: failures only (points queued and written move with presses, SAPA's too with sapa_detail)
        "timeseries_write_failures",
        "timeseries_points_refused",
        "timeseries_record_errors",
    }
)
_KIND_FREE_PREFIXES = ("rejected.",)


def counters_for(kinds: frozenset[str], counters: dict[str, int]) -> dict[str, int]:
    """The counters a role that sees alarms of ``kinds`` may read."""

    def visible(name: str) -> bool:
        if name in _KIND_FREE or name.startswith(_KIND_FREE_PREFIXES):
            return True
        suffix = name.rsplit(".", 1)[-1]
        return suffix in _KINDS and suffix in kinds

    return {name: value for name, value in counters.items() if visible(name)}


@bp.get("/diagnostics")
@login_required(Role.ADMIN, Role.TECHNICIAN)
def diagnostics() -> Any:
    state = live()
    ingest = state.ingest
    return jsonify(
        counters=counters_for(visible_kinds(), state.counters.snapshot()),
        mqtt_connected=bool(ingest and ingest.connected.is_set()),
        ingest_alive=bool(ingest and ingest.is_alive()),
        ingest_backlog=ingest.backlog if ingest else None,
        # The reason, not the message: a message may quote a payload's content.
        rejections=[
            {"at": r.at, "topic": r.topic, "reason": r.reason} for r in (list(ingest.rejections) if ingest else [])
        ],
        live_subscribers=state.hub.subscribers,
        reports=_report_counters(),
        enrolment=_enrolment_counters(),
        supervisor_round=state.supervisor.round_times() if state.supervisor else None,
        # Whether this process runs the supervisor, escalator and webhook senders (one process at a time).
        leader=bool(state.leadership and state.leadership.holds()),
    )


def _report_counters() -> dict[str, int]:
    reports = current_app.extensions.get("siaga.reports")
    return reports.counters.snapshot() if reports else {}


def _enrolment_counters() -> dict[str, int]:
    """Codes used, refused by reason, throttled, broker failures: gateways' enrolment, no alarm in it."""
    enrolment = current_app.extensions.get("siaga.enrolment")
    return enrolment.counters.snapshot() if enrolment else {}
