"""What goes into the time-series queue: a batch's presses and health reports (in the ingest's transaction),
and, each round of the writer, alarms' steps, troubles opened and cleared, and SAPA's daily counts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from firmware_bridge.payloads import Event, Health

from ..alarms import store
from ..db import Connection, rows_in
from . import points, queue
from .points import PRIVATE_KIND, ButtonFacts, SeriesPolicy

#: Alarm steps turned into points per round at most (the next round goes on from the bookmark).
STEPS_PER_ROUND = 5000
#: How many finished days of SAPA counts are written when the time series are first turned on.
SAPA_DAYS_BACK = 31


def record_ingest(
    conn: Connection, events: Sequence[tuple[Event, str]], healths: Sequence[tuple[Health, float]], policy: SeriesPolicy
) -> int:
    """Queue the points of an ingest batch's stored events and health reports; returns how many."""
    if not events and not healths:
        return 0
    facts = _buttons(conn, {event.button for event, _kind in events}, {health.gw for health, _at in healths})
    lines = [points.press(event, kind, facts.get(event.button), policy) for event, kind in events]
    for health, at in healths:
        lines += points.gateway(health, at, [b for b in facts.values() if b.gw == health.gw], policy)
    kept = [line for line in lines if line is not None]
    queue.enqueue(conn, kept)
    return len(kept)


def _buttons(conn: Connection, ids: set[str], gateways: set[str]) -> dict[str, ButtonFacts]:
    query = "SELECT id, gw, kind, transport, site_name, kecamatan FROM buttons WHERE {} IN ({{}})"
    rows = rows_in(conn, query.format("id"), sorted(ids)) if ids else []
    rows += rows_in(conn, query.format("gw"), sorted(gateways)) if gateways else []
    return {row["id"]: ButtonFacts.from_row(row) for row in rows}


def collect(conn: Connection, policy: SeriesPolicy, now: float, zone: ZoneInfo) -> int:
    """Queue what the store learned since the last round (inside the caller's transaction); returns how many."""
    lines = _alarm_steps(conn, policy) + _troubles(conn, policy) + _sapa_days(conn, now, zone)
    queue.enqueue(conn, lines)
    return len(lines)


def _alarm_steps(conn: Connection, policy: SeriesPolicy) -> list[str]:
    after = queue.bookmark(conn, "alarm_action")
    if after is None:  # first round ever: from now on, not the store's whole history
        after = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM alarm_actions").fetchone()[0])
        queue.set_bookmark(conn, "alarm_action", after)
    steps = store.alarm_steps_since(conn, after, STEPS_PER_ROUND)
    if steps:
        # Only when it moves: a round with nothing new writes nothing (no commit to the disk each second).
        queue.set_bookmark(conn, "alarm_action", int(steps[-1]["action_id"]))
    return [line for line in (points.alarm_step(step, policy) for step in steps) if line is not None]


def _troubles(conn: Connection, policy: SeriesPolicy) -> list[str]:
    """Troubles opened since the last round (``open`` 1) and those of the last round now cleared (0)."""
    known = set(queue.bookmark(conn, "troubles_open", []))
    columns = "id, type, gw, button, kind, began_at, cleared_at"
    open_now = conn.execute(f"SELECT {columns} FROM troubles WHERE cleared_at IS NULL").fetchall()  # noqa: S608
    gone = known - {row["id"] for row in open_now}
    ended = rows_in(conn, f"SELECT {columns} FROM troubles WHERE id IN ({{}})", sorted(gone)) if gone else []  # noqa: S608
    private = set() if policy.sapa_detail else _sapa_only_gateways(conn)
    lines = [
        points.trouble(row, cleared=False, policy=policy)
        for row in open_now
        if row["id"] not in known and row["gw"] not in private
    ]
    lines += [
        points.trouble(row, cleared=True, policy=policy)
        for row in ended
        if row["cleared_at"] is not None and row["gw"] not in private
    ]
    still_open = sorted(row["id"] for row in open_now)
    if still_open != sorted(known):
        queue.set_bookmark(conn, "troubles_open", still_open)
    return [line for line in lines if line is not None]


def _sapa_only_gateways(conn: Connection) -> set[str]:
    """Gateways whose every registered button is SAPA: even their device troubles (offline, silent) tell
    where a SAPA button is, so, like their health, they are not written."""
    rows = conn.execute(
        "SELECT gw FROM registrations GROUP BY gw HAVING MIN(kind) = ? AND MAX(kind) = ?", (PRIVATE_KIND,) * 2
    ).fetchall()
    return {row[0] for row in rows}


def _sapa_days(conn: Connection, now: float, zone: ZoneInfo) -> list[str]:
    """SAPA's counts of each local day that ended since the last one written (never of the day still running)."""
    today = dt.datetime.fromtimestamp(now, zone).date()
    done = queue.bookmark(conn, "sapa_day")
    day = today - dt.timedelta(days=SAPA_DAYS_BACK) if done is None else dt.date.fromisoformat(done) + dt.timedelta(1)
    lines = []
    while day < today:
        start = dt.datetime.combine(day, dt.time(), zone).timestamp()
        end = dt.datetime.combine(day + dt.timedelta(1), dt.time(), zone).timestamp()
        for row in store.sapa_days(conn, start, end):
            lines.append(points.sapa_day(start, row["kecamatan"], int(row["presses"] or 0), int(row["alarms"])))
        queue.set_bookmark(conn, "sapa_day", day.isoformat())
        day += dt.timedelta(1)
    return lines
