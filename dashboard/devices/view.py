"""The technicians' device view: gateways, buttons, when each was last heard, battery, radio quality.

Everything here comes from what the gateways report (status, inventory,
health) and the open troubles; nothing from alarms, so a technician who
maintains SAPA buttons learns nothing of SAPA cases. Health is read as
supervision reads it (:func:`dashboard.devices.health.read_health`): a
field of an odd shape or value is shown as unknown, never breaks the page.

Paged where a person reads it: gateways with a problem (an open trouble of
theirs or of one of their buttons, offline, or no recent health) come first,
then the others by name, ``PER_PAGE`` gateways and their buttons a page,
optionally filtered by a search of gateway, button, label or site. A page
reads the health of its own gateways only (and of the gateway that last heard
each of its radio buttons, from the supervisor's last round), so its cost does
not grow with the number of gateways beyond reading their names and states.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from firmware_bridge.payloads import Health

from ..accounts import audit
from ..accounts.auth import Role, current_role, login_required, trouble_kinds
from ..accounts.visibility import trouble_audience
from ..commissioning import store as commissioning
from ..db import database_file, get_db, rows_in, transaction
from ..i18n import translate
from ..live import live
from . import service
from .health import format_time, read_health, seconds
from .supervision import Audience, HealthMemo, SupervisionSettings, trouble_view

bp = Blueprint("devices", __name__)

#: Gateways a page shows (with all their buttons: 20 each is 1,000 rows).
PER_PAGE = 50
#: A search longer than this is cut: it is matched against ids, labels and site names.
MAX_QUERY = 100
#: Without health for this long a gateway is a problem (as supervision's gateway_silent).
STALE_S = SupervisionSettings().gateway_silent_s

#: Heard: radio button -> (when last heard, by which gateway), e.g. :attr:`.supervision.Supervisor.heard`.
Heard = Mapping[str, tuple[float, str]]

#: Per store, the health messages pages have read, each kept until a newer one arrives.
_memos: dict[str, HealthMemo] = {}
_memo_lock = threading.Lock()


#: An open trouble as a page chooses it: (id, gateway, button).
_Seen = tuple[int, str | None, str | None]


def _seen_troubles(conn: sqlite3.Connection, audience: Audience) -> list[_Seen]:
    """The open troubles ``audience`` sees, only as much of each as it takes to place it (plain tuples)."""
    cursor = conn.cursor()
    cursor.row_factory = None
    rows = cursor.execute("SELECT id, type, kind, gw, button FROM troubles WHERE cleared_at IS NULL")
    return [(id_, gw, button) for id_, type_, kind, gw, button in rows if audience.sees(type_, kind)]


def _problem_gateways(conn: sqlite3.Connection, troubles: list[_Seen], now: float, stale_s: float) -> set[str]:
    """Gateways with an open trouble (theirs, or one of their buttons'), offline, or without recent health."""
    problems = {gw for _, gw, _ in troubles if gw}
    buttons = {button for _, _, button in troubles if button}
    problems |= {row["gw"] for row in rows_in(conn, "SELECT gw FROM buttons WHERE id IN ({})", buttons)}
    unwell = conn.execute(
        "SELECT gw FROM gateways WHERE state != 'online' OR health_at IS NULL OR health_at < ?", (now - stale_s,)
    )
    return problems | {gw for (gw,) in unwell}


def _matching(conn: sqlite3.Connection, kinds: frozenset[str], query: str) -> tuple[set[str], set[str]]:
    """(gateways whose name holds ``query``, gateways with a button of ``kinds`` whose id, label or site does)."""
    needle = query.lower()
    # LIKE with the wildcards of the query escaped: both engines' way of finding a part of a text
    needle = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    named = {gw for (gw,) in conn.execute("SELECT gw FROM gateways WHERE lower(gw) LIKE ? ESCAPE '\\'", (needle,))}
    marks = ",".join("?" * len(kinds))
    holding = conn.execute(
        f"SELECT DISTINCT gw FROM buttons WHERE kind IN ({marks}) AND (lower(id) LIKE ? ESCAPE '\\' "  # noqa: S608
        "OR lower(site_name) LIKE ? ESCAPE '\\' OR lower(coalesce(label, '')) LIKE ? ESCAPE '\\')",
        [*sorted(kinds), needle, needle, needle],
    )
    return named, {gw for (gw,) in holding}


def _button_matches(row: sqlite3.Row, needle: str) -> bool:
    return any(needle in (row[column] or "").lower() for column in ("id", "site_name", "label"))


def _healths(conn: sqlite3.Connection, gateways: Iterable[str]) -> dict[str, tuple[sqlite3.Row, Health]]:
    """Each gateway's row and its health, read (tolerantly) once per message whoever asks."""
    rows = rows_in(conn, "SELECT gw, state, version, updated_at, health_at FROM gateways WHERE gw IN ({})", gateways)
    database = database_file(conn)
    with _memo_lock:
        memo = _memos.setdefault(database, HealthMemo())
        unknown = [row["gw"] for row in rows if not memo.knows(row["gw"], row["health_at"])]
        unread = rows_in(conn, "SELECT gw, health FROM gateways WHERE gw IN ({})", unknown)
        texts = {r["gw"]: r["health"] for r in unread}
        read = {}
        for row in rows:
            gw = row["gw"]
            health = memo.read(gw, row["health_at"], texts.get(gw)) if gw in texts else memo.get(gw)
            # A message even the tolerant reader failed on shows as a health that knows nothing.
            read[gw] = (row, health if isinstance(health, Health) else read_health(None))
    return read


def _age(row: sqlite3.Row, now: float) -> float | None:
    return seconds(max(0.0, now - row["health_at"])) if row["health_at"] else None


def _gateway_view(row: sqlite3.Row, health: Health, now: float, troubles: list[dict[str, Any]]) -> dict[str, Any]:
    age = _age(row, now)
    module = health.radio.module if health.radio is not None else None
    return {
        "gw": row["gw"],
        "state": row["state"],
        "version": row["version"],
        "health_at": format_time(row["health_at"]) if row["health_at"] else None,
        "health_age_s": round(age) if age is not None else None,
        "outbox_depth": health.outbox.depth,
        "radio": module.state if module is not None else None,
        "troubles": troubles,
    }


def _nodes(healths: dict[str, tuple[sqlite3.Row, Health]], now: float) -> dict[str, dict[str, Any]]:
    """Radio button -> what the gateway that heard it last says of it (heard, battery, RSSI, SNR, via)."""
    nodes: dict[str, dict[str, Any]] = {}
    for gw, (row, health) in sorted(healths.items()):
        age_base = _age(row, now)
        for node in health.radio.nodes.values() if health.radio is not None else ():
            heard_s = None if node.age_s is None or age_base is None else round(node.age_s + age_base)
            previous = nodes.get(node.button)
            if previous is None or (heard_s is not None and heard_s < (previous["heard_s"] or 1e12)):
                nodes[node.button] = {
                    "heard_s": heard_s, "battery_mv": node.battery_mv, "rssi": node.rssi, "snr": node.snr, "via": gw
                }  # fmt: skip
    return nodes


def _button_view(
    row: sqlite3.Row, radio: dict[str, Any], pressed: bool | None, troubles: list[dict[str, Any]], set_aside: Any
) -> dict[str, Any]:
    return {
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
        "pressed": pressed,
        "troubles": troubles,
        "service": set_aside.view() if set_aside is not None else None,
    }


def device_overview(
    conn: sqlite3.Connection,
    audience: Audience,
    now: float,
    page: int = 1,
    query: str = "",
    heard: Heard | None = None,
    per_page: int = PER_PAGE,
    stale_s: float = STALE_S,
) -> dict[str, Any]:
    """One page of gateways (problems first) with their buttons of ``audience.kinds`` and the troubles
    of both that ``audience`` sees. ``heard`` (the supervisor's last round) names the gateway that last
    heard each radio button, so that a button heard best by a gateway on another page shows it."""
    kinds = audience.kinds
    query = query.strip()[:MAX_QUERY]
    needle = query.lower()
    troubles = _seen_troubles(conn, audience)
    problems = _problem_gateways(conn, troubles, now, stale_s)
    everyone = [gw for (gw,) in conn.execute("SELECT gw FROM gateways ORDER BY gw")]
    all_gateways = set(everyone)
    named = all_gateways
    if query:
        named, holding = _matching(conn, kinds, query) if kinds else (set(), set())
        everyone = [gw for gw in everyone if gw in named or gw in holding]
    ordered = [gw for gw in everyone if gw in problems] + [gw for gw in everyone if gw not in problems]
    pages = max(1, math.ceil(len(ordered) / per_page))
    page = min(max(page, 1), pages)
    shown = ordered[(page - 1) * per_page : page * per_page]

    of_kinds = f"SELECT * FROM buttons WHERE kind IN ({','.join('?' * len(kinds))}) AND gw IN ({{}})"  # noqa: S608
    buttons = [
        row
        for row in rows_in(conn, of_kinds, shown, *sorted(kinds))
        if not query or row["gw"] in named or _button_matches(row, needle)
    ] if kinds else []  # fmt: skip
    listening = {heard[row["id"]][1] for row in buttons if heard is not None and row["id"] in heard}
    healths = _healths(conn, set(shown) | listening)
    nodes = _nodes(healths, now)

    # A page's troubles: of its gateways and buttons; the first page also lists those of no gateway
    # in the store (an escalation webhook, a gateway heard of only through its events).
    listed_buttons = {row["id"] for row in buttons}
    shown_gateways = set(shown)
    chosen = [
        id_
        for id_, gw, button in troubles
        if gw in shown_gateways or button in listed_buttons or (page == 1 and gw not in all_gateways)
    ]
    query_rows = "SELECT * FROM troubles WHERE id IN ({}) ORDER BY began_at, id"
    shown_troubles = [trouble_view(row) for row in rows_in(conn, query_rows, [str(i) for i in chosen])]
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for trouble in shown_troubles:
        by_subject.setdefault(trouble["subject"], []).append(trouble)

    gateways = [
        _gateway_view(healths[gw][0], healths[gw][1], now, by_subject.get(gw, [])) for gw in shown if gw in healths
    ]
    wired = {b.id: b.pressed for gw in shown if gw in healths for b in healths[gw][1].buttons}
    set_aside = service.active(conn, now)
    button_views = [
        _button_view(row, nodes.get(row["id"], {}), wired.get(row["id"]), by_subject.get(row["id"], []),
                     set_aside.get(row["id"]))
        for row in buttons
    ]  # fmt: skip
    # What needs a technician first; then by site and id, as the site list reads.
    button_views.sort(key=lambda b: (not (b["troubles"] or b["service"]), b["site"], b["id"]))
    return {
        "gateways": gateways,
        "buttons": button_views,
        "troubles": shown_troubles,
        "at": format_time(now),
        "page": page,
        "pages": pages,
        "per_page": per_page,
        "gateways_total": len(ordered),
        "problem_gateways": sum(1 for gw in ordered if gw in problems),
        "query": query,
    }


_MAINTAINERS = (Role.TECHNICIAN, Role.ADMIN)


def _asked() -> dict[str, Any]:
    """The page and search a request asks for; anything odd reads as the first page, no search."""
    source = request.form if request.method == "POST" else request.args
    page = source.get("page", 1, type=int) or 1
    return {"page": min(max(page, 1), 10**6), "query": (source.get("q") or "")[:MAX_QUERY]}


def _overview() -> dict[str, Any]:
    supervisor = live().supervisor
    heard = supervisor.heard if supervisor is not None else None
    return device_overview(get_db(), trouble_audience(), time.time(), heard=heard, **_asked())


@bp.get("/devices")
@login_required(Role.TECHNICIAN, Role.ADMIN, Role.FIRE_OPERATOR, Role.SAPA_DESK)
def index() -> str:
    view = _overview()
    can_service = current_role() in _MAINTAINERS
    commissioned = _commissioned(view, can_service)
    return render_template("devices.html", view=view, can_service=can_service, commissioned=commissioned)


def _commissioned(view: dict[str, Any], can_service: bool) -> dict[str, dict[str, Any]]:
    """The latest commissioning report of each gateway and button on the page (maintainers only)."""
    if not can_service:
        return {"gateways": {}, "buttons": {}}
    gateways, buttons = commissioning.latest_reports(
        get_db(), [gw["gw"] for gw in view["gateways"]], [b["id"] for b in view["buttons"]], trouble_kinds()
    )
    return {"gateways": gateways, "buttons": buttons}


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
    asked = _asked()  # back to the page the technician was on
    return redirect(url_for("devices.index", page=asked["page"], q=asked["query"] or None), 303)


@bp.get("/api/devices")
@login_required(Role.TECHNICIAN, Role.ADMIN, Role.FIRE_OPERATOR, Role.SAPA_DESK)
def api() -> Any:
    return jsonify(_overview())
