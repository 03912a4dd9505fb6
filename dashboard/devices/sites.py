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

from ..alarms import store
from ..alarms.lifecycle import AlarmState
from . import service
from .service import ServiceMode
from .supervision import Audience, open_troubles

TROUBLE = "trouble"  # a button with an open trouble
OK = "ok"

#: Most urgent first: a site takes the state of its most urgent button.
URGENCY: tuple[str, ...] = (
    AlarmState.UNACKNOWLEDGED,
    AlarmState.ACKNOWLEDGED,
    AlarmState.DISPATCHED,
    TROUBLE,
    ServiceMode.OUT_OF_SERVICE,
    ServiceMode.TEST,
    OK,
)


def _open_alarms(conn: sqlite3.Connection, alarm_kinds: frozenset[str]) -> dict[str, sqlite3.Row]:
    """Button -> its most urgent open alarm among the kinds the role may see (a real one before a test)."""
    return {
        button: min(alarms, key=lambda alarm: (alarm["test"], URGENCY.index(alarm["state"])))
        for button, alarms in store.open_alarms_by_button(conn, alarm_kinds).items()
    }


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
            state = TROUBLE
        else:
            state = OK
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
