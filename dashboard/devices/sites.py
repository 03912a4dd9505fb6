"""Sites and their buttons with each one's state, for the board's map and site list.

A button's state is what an operator must see first: its open alarm (by
alarm state), else that it is set aside (out of service, test mode), else
that it has a trouble, else ``ok``. Only the buttons of the kinds a role may
see are listed, and only alarms the role may see are attached: a technician
sees every button but no alarm, so a SAPA button shows its device state only.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..alarms.lifecycle import OPEN_STATES
from . import service
from .supervision import Audience, open_troubles

#: Most urgent first: a site takes the state of its most urgent button.
URGENCY = ("unacknowledged", "acknowledged", "dispatched", "trouble", "out_of_service", "test", "ok")


def _open_alarms(conn: sqlite3.Connection, alarm_kinds: frozenset[str]) -> dict[str, sqlite3.Row]:
    """Button -> its most urgent open alarm among the kinds the role may see."""
    if not alarm_kinds:
        return {}
    states = [str(state) for state in OPEN_STATES]
    rows = conn.execute(
        f"SELECT id, number, button, state, test FROM alarms WHERE state IN ({','.join('?' * len(states))}) "  # noqa: S608
        f"AND kind IN ({','.join('?' * len(alarm_kinds))})",
        [*states, *sorted(alarm_kinds)],
    ).fetchall()
    found: dict[str, sqlite3.Row] = {}
    for row in sorted(rows, key=lambda r: (r["test"], URGENCY.index(r["state"]))):
        found.setdefault(row["button"], row)
    return found


def sites(
    conn: sqlite3.Connection, audience: Audience, alarm_kinds: frozenset[str], now: float
) -> list[dict[str, Any]]:
    """Sites with the buttons of ``audience.kinds``; alarms attached only of ``alarm_kinds``."""
    kinds = audience.kinds
    if not kinds:
        return []
    marks = ",".join("?" * len(kinds))
    open_alarms = _open_alarms(conn, alarm_kinds)
    troubled = {t["button"] for t in open_troubles(conn, audience) if t["button"]}
    set_aside = service.active(conn, now)
    grouped: dict[str, dict[str, Any]] = {}
    rows = conn.execute(
        f"SELECT * FROM buttons WHERE kind IN ({marks}) ORDER BY site_name, id",  # noqa: S608
        sorted(kinds),
    )
    for row in rows:
        alarm = open_alarms.get(row["id"])
        if alarm is not None and not alarm["test"]:
            state = alarm["state"]
        elif row["id"] in set_aside:
            state = str(set_aside[row["id"]].mode)
        elif row["id"] in troubled:
            state = "trouble"
        else:
            state = "ok"
        site = grouped.setdefault(row["site_name"], {"name": row["site_name"], "buttons": [], "lat": 0.0, "lon": 0.0})
        site["buttons"].append(
            {
                "id": row["id"],
                "kind": row["kind"],
                "label": row["label"],
                "transport": row["transport"],
                "gw": row["gw"],
                "lat": row["lat"],
                "lon": row["lon"],
                "state": state,
                "alarm": alarm["id"] if alarm is not None else None,
            }
        )
    result = []
    for site in grouped.values():
        buttons = site["buttons"]
        site["lat"] = round(sum(b["lat"] for b in buttons) / len(buttons), 6)
        site["lon"] = round(sum(b["lon"] for b in buttons) / len(buttons), 6)
        site["state"] = min((b["state"] for b in buttons), key=URGENCY.index)
        result.append(site)
    return sorted(result, key=lambda s: (URGENCY.index(s["state"]), s["name"]))
