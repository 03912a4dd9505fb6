"""The gateway registry: each gateway's status, inventory (its registrations and buttons) and health.

Functions take an open connection; writers run inside the caller's transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from firmware_bridge.payloads import Health, Inventory, Status
from firmware_bridge.timeutil import format_epoch

from ..db import InQuery, spelled
from .health import field_count

#: Each write of a button or a registration stamps ``updated_at`` with its inventory's time (no code
#: deletes a button), so a count and a sum of the stamps move with any change; SQLite sums them
#: without building a row per button.
_BUTTONS_MARK = "(SELECT COUNT(*) FROM buttons), (SELECT coalesce(SUM(updated_at), 0.0) FROM buttons)"
_REGISTRATIONS_MARK = "(SELECT COUNT(*) FROM registrations), (SELECT coalesce(SUM(updated_at), 0.0) FROM registrations)"
#: What is read once per inventory mark is read again at least this often, whatever the mark says
#: (a write this module does not make cannot hide for long).
INVENTORY_REFRESH_S = 60.0


def inventory_mark(conn: sqlite3.Connection, *, registrations: bool = True) -> tuple[Any, ...]:
    """What moves whenever a button (and, unless told otherwise, a registration) is written."""
    marks = f"{_BUTTONS_MARK}, {_REGISTRATIONS_MARK}" if registrations else _BUTTONS_MARK
    return tuple(conn.execute(f"SELECT {marks}").fetchone())


def _iso(value: float | None) -> str | None:
    return None if value is None else format_epoch(value)


def registered_kind(conn: sqlite3.Connection, gw: str, button: str) -> str | None:
    """The kind ``gw``'s inventory registered for ``button``; None if it names no such button.

    Only the event's own gateway counts: another gateway's inventory naming
    the same id (a copied configuration, a stolen gateway) cannot reroute it.
    """
    row = conn.execute("SELECT kind FROM registrations WHERE gw = ? AND button = ?", (gw, button)).fetchone()
    return None if row is None else row["kind"]


def registered_kinds(buttons: Iterable[str]) -> InQuery[dict[tuple[str, str], str]]:
    """(gateway, button) -> the kind that gateway registered it as, for every registration of ``buttons``:
    :func:`registered_kind` for a batch of events, read by :func:`db.read_all` with the batch's other lookups."""
    return InQuery(
        "SELECT gw, button, kind FROM registrations WHERE button IN ({})",
        set(buttons),
        lambda rows: {(gw, button): kind for gw, button, kind in rows},
    )


def store_status(conn: sqlite3.Connection, status: Status, now: float) -> None:
    conn.execute(
        "INSERT INTO gateways (gw, state, status_ts, reason, version, started, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(gw) DO UPDATE SET state = excluded.state, "
        "status_ts = excluded.status_ts, reason = excluded.reason, "
        "version = COALESCE(excluded.version, gateways.version), "
        "started = COALESCE(excluded.started, gateways.started), updated_at = excluded.updated_at",
        (
            status.gw,
            str(status.state),
            status.ts,
            str(status.reason) if status.reason else None,
            status.version,
            status.started,
            now,
        ),
    )


def store_inventory(conn: sqlite3.Connection, inventory: Inventory, now: float) -> None:
    """A gateway's whole list of buttons: its registrations, and each button's place for display.

    A button another gateway already shows under another kind keeps that
    row (first come): the disagreement is a ``button_conflict`` trouble, and
    each gateway's presses are routed by its own registration.
    """
    gw = inventory.gw
    conn.execute("DELETE FROM registrations WHERE gw = ?", (gw,))
    for button in inventory.buttons:
        conn.execute(
            "INSERT INTO registrations (gw, button, kind, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(gw, button) DO UPDATE SET kind = excluded.kind, updated_at = excluded.updated_at",
            (gw, button.id, str(button.kind), now),
        )
        conn.execute(
            "INSERT INTO buttons (id, gw, kind, transport, site_name, lat, lon, label, updated_at, kecamatan) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET gw = excluded.gw, "
            "kind = excluded.kind, transport = excluded.transport, site_name = excluded.site_name, "
            "lat = excluded.lat, lon = excluded.lon, label = excluded.label, updated_at = excluded.updated_at, "
            "kecamatan = excluded.kecamatan "
            "WHERE buttons.gw = excluded.gw OR buttons.kind = excluded.kind "
            "OR NOT EXISTS (SELECT 1 FROM registrations r WHERE r.gw = buttons.gw AND r.button = buttons.id)",
            (
                button.id,
                gw,
                str(button.kind),
                str(button.transport),
                button.site.name,
                button.site.lat,
                button.site.lon,
                button.label,
                now,
                button.site.kecamatan,
            ),
        )
    if not conn.execute("SELECT 1 FROM gateways WHERE gw = ?", (gw,)).fetchone():
        # Inventory can arrive before status; the gateway is known, state not yet.
        conn.execute("INSERT INTO gateways (gw, state, updated_at) VALUES (?, 'unknown', ?)", (gw, now))


def store_health(conn: sqlite3.Connection, health: Health, now: float) -> None:
    conn.execute(
        "UPDATE gateways SET health = ?, health_at = ? WHERE gw = ?",
        (json.dumps(health.to_dict(), separators=(",", ":")), now, health.gw),
    )


#: The columns of a gateway's view. Of its health message only the outbox depth, taken out by SQLite
#: (a number, or nothing): the board's snapshot lists every gateway, and reading each whole message
#: would cost far more than the list itself. :func:`.health.field_count` then bounds it as any reader would.
_GATEWAY_COLUMNS = (
    "SELECT gw, state, status_ts, reason, version, started, updated_at, health_at, "
    "CASE WHEN json_valid(health) AND json_type(health, '$.outbox.depth') IN ('integer', 'real') "
    "THEN json_extract(health, '$.outbox.depth') END AS outbox_depth FROM gateways"
)
_GATEWAY_COLUMNS_POSTGRESQL = (
    "SELECT gw, state, status_ts, reason, version, started, updated_at, health_at, "
    "CASE WHEN jsonb_typeof(siaga_json(health) #> '{outbox,depth}') = 'number' "
    "THEN (siaga_json(health) #>> '{outbox,depth}')::numeric END AS outbox_depth FROM gateways"
)


def _gateway_columns(conn: sqlite3.Connection) -> str:
    return spelled(conn, sqlite=_GATEWAY_COLUMNS, postgresql=_GATEWAY_COLUMNS_POSTGRESQL)


def gateway_view(row: sqlite3.Row) -> dict[str, Any]:
    """A gateway as the board lists it; ``row`` has the columns of :data:`_GATEWAY_COLUMNS`."""
    view = {name: row[name] for name in ("gw", "state", "status_ts", "reason", "version", "started")}
    view["updated_at"] = _iso(row["updated_at"])
    view["health_at"] = _iso(row["health_at"])
    view["outbox_depth"] = field_count(row["outbox_depth"])
    return view


def list_gateways(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [gateway_view(row) for row in conn.execute(_gateway_columns(conn) + " ORDER BY gw").fetchall()]


def get_gateway(conn: sqlite3.Connection, gw: str) -> dict[str, Any] | None:
    row = conn.execute(_gateway_columns(conn) + " WHERE gw = ?", (gw,)).fetchone()
    return None if row is None else gateway_view(row)
