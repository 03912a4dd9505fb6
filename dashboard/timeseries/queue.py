"""The durable queue of time-series points in the store, and the writer's bookmarks beside it.

Points are queued in the transaction of what they describe (a press with its
event row, a health report with the gateway's), so a point exists exactly when
its fact does; the writer takes them oldest first and forgets them only once
the server has accepted them. One row holds all the points one transaction
queued (lines of line protocol): an ingest batch of 500 presses adds one row,
not 500, which keeps the time series off the alarm path's cost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..db import Connection, rows_in


def enqueue(conn: Connection, lines: Sequence[str]) -> None:
    """Queue points (line protocol) inside the caller's transaction, as one row."""
    if lines:
        conn.execute("INSERT INTO timeseries_points (line) VALUES (?)", ("\n".join(lines),))


def oldest(conn: Connection, points: int) -> tuple[list[int], list[str]]:
    """The oldest queued rows holding about ``points`` points (at least one row): their ids and their lines."""
    ids: list[int] = []
    lines: list[str] = []
    for row in conn.execute("SELECT id, line FROM timeseries_points ORDER BY id LIMIT ?", (points,)):
        ids.append(int(row[0]))
        lines += row[1].split("\n")
        if len(lines) >= points:
            break
    return ids, lines


def forget(conn: Connection, ids: Sequence[int]) -> None:
    """Drop the points ``ids`` (the server has them, or refused them for good): by id, not by range, so that
    a point queued meanwhile under a lower id is never dropped unwritten."""
    rows_in(conn, "DELETE FROM timeseries_points WHERE id IN ({}) RETURNING id", ids)


def batches_waiting(conn: Connection) -> int:
    """How many transactions' points wait: cheap to count (no row's text is read), for a trouble's detail."""
    return int(conn.execute("SELECT COUNT(*) FROM timeseries_points").fetchone()[0])


def depth(conn: Connection) -> int:
    """How many points wait (a row holds one transaction's points)."""
    row = conn.execute(
        "SELECT COALESCE(SUM(LENGTH(line) - LENGTH(REPLACE(line, ?, '')) + 1), 0) FROM timeseries_points", ("\n",)
    ).fetchone()
    return int(row[0])


def bookmark(conn: Connection, name: str, default: Any = None) -> Any:
    """A value the writer keeps between rounds and across restarts and failovers (JSON)."""
    row = conn.execute("SELECT value FROM timeseries_state WHERE name = ?", (name,)).fetchone()
    return default if row is None else json.loads(row[0])


def set_bookmark(conn: Connection, name: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO timeseries_state (name, value) VALUES (?, ?) "
        "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        (name, json.dumps(value)),
    )


def clear_bookmark(conn: Connection, name: str) -> None:
    conn.execute("DELETE FROM timeseries_state WHERE name = ?", (name,))
