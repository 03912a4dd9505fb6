"""The audit log: who did what, when, from where, with the state before and after.

Operator actions are recorded in the same transaction as the action itself, so
the log cannot miss one. Reads of SAPA data are recorded too (UU PDP 27/2022:
access to children's data must be accountable). Administrators read and
export the log; rows about SAPA alarms are shown to them without their
content, which only the SAPA desk may see.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Response, g, has_request_context, request

from firmware_bridge.payloads import Kind
from firmware_bridge.timeutil import format_epoch

from ..db import transaction

#: What an administrator sees instead of a SAPA row's before/after.
REDACTED = "[SAPA: hanya untuk meja SAPA]"


@dataclass(frozen=True)
class Who:
    actor: str
    role: str | None = None
    ip: str | None = None


def who() -> Who:
    """The signed-in user of the current request (or the dashboard itself outside one)."""
    if has_request_context() and g.get("user") is not None:
        return Who(g.user["username"], g.user["role"], request.remote_addr)
    if has_request_context():
        return Who("anonymous", None, request.remote_addr)
    return Who("siaga")


def record(
    conn: sqlite3.Connection,
    by: Who,
    action: str,
    *,
    subject: str | None = None,
    kind: str | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    at: float,
) -> None:
    conn.execute(
        "INSERT INTO audit_log (at, actor, role, action, subject, kind, before, after, ip) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            at,
            by.actor,
            by.role,
            action,
            subject,
            kind,
            _json(before),
            _json(after),
            by.ip,
        ),
    )


def _json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def entries(
    conn: sqlite3.Connection,
    *,
    kinds: Iterable[str],
    since: float | None = None,
    until: float | None = None,
    actor: str | None = None,
    action: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Newest first. Rows of a kind outside ``kinds`` keep who/what/when but lose their content.

    Such rows are shown only when a person made them (a desk read or acted:
    accountability for access to sensitive data). What the dashboard itself
    did to an alarm of a hidden kind (escalating it, closing a test) is left
    out: that row would tell of the alarm, and of nobody's conduct. Row ids are
    not shown either, since their gaps would count the rows left out.
    """
    query, params = _select(kinds, since, until, actor, action, None)
    rows = conn.execute(query + " LIMIT ?", [*params, limit])
    return [_view(row, set(kinds)) for row in rows]


#: Rows on one page of the audit log.
PAGE_SIZE = 100


@dataclass(frozen=True)
class Page:
    """One page of the audit log, newest first; ``next`` is the cursor of the page after it (None: the last)."""

    rows: list[dict[str, Any]]
    next: str | None


def page(
    conn: sqlite3.Connection,
    *,
    kinds: Iterable[str],
    before: str | None = None,
    since: float | None = None,
    until: float | None = None,
    actor: str | None = None,
    action: str | None = None,
    size: int = PAGE_SIZE,
) -> Page:
    """A page of :func:`entries` (same rows, same order), read from the index however long the log is.

    The cursor (``before``) names the last row shown by its time and how many
    rows of that very time were shown, never by its id: an id would let a
    reader count the rows left out between two pages.
    """
    at, shown = _cursor(before)
    query, params = _select(kinds, since, until, actor, action, at)
    rows = conn.execute(query + " LIMIT ? OFFSET ?", [*params, size + 1, shown]).fetchall()
    more = len(rows) > size
    rows = rows[:size]
    following = None
    if more and rows:
        last = rows[-1]["at"]
        same = sum(1 for row in rows if row["at"] == last)
        following = f"{last!r}~{same + (shown if at == last else 0)}"
    return Page([_view(row, set(kinds)) for row in rows], following)


def _cursor(before: str | None) -> tuple[float | None, int]:
    """``<time>~<rows of that time already shown>``; anything else is the first page."""
    try:
        at, shown = (before or "").split("~")
        return float(at), max(0, int(shown))
    except ValueError:
        return None, 0


def _select(
    kinds: Iterable[str],
    since: float | None,
    until: float | None,
    actor: str | None,
    action: str | None,
    at_most: float | None,
) -> tuple[str, list[Any]]:
    """The audit log's rows for a reader of ``kinds``, newest first (the order the index on ``at`` keeps)."""
    visible = sorted(set(kinds))
    marks = ",".join("?" * len(visible)) or "NULL"
    query = f"SELECT * FROM audit_log WHERE NOT (kind IS NOT NULL AND kind NOT IN ({marks}) AND role IS NULL)"  # noqa: S608
    params: list[Any] = list(visible)
    for column, op, value in (("at", ">=", since), ("at", "<", until), ("actor", "=", actor), ("at", "<=", at_most)):
        if value is not None:
            query += f" AND {column} {op} ?"
            params.append(value)
    if action:
        query += " AND action LIKE ?"
        params.append(action.replace("%", "") + "%")
    return query + " ORDER BY at DESC, id DESC", params


def _view(row: sqlite3.Row, visible: set[str]) -> dict[str, Any]:
    hidden = row["kind"] is not None and row["kind"] not in visible
    return {
        "at": format_epoch(row["at"]),
        "actor": row["actor"],
        "role": row["role"],
        "action": row["action"],
        "subject": "alarm (SAPA)" if hidden and (row["subject"] or "").startswith("alarm:") else row["subject"],
        "kind": row["kind"],
        "before": REDACTED if hidden and row["before"] else row["before"],
        "after": REDACTED if hidden and row["after"] else row["after"],
        "ip": row["ip"],
    }


CSV_COLUMNS = ("at", "actor", "role", "action", "subject", "kind", "before", "after", "ip")


def csv_download(header: Sequence[str], rows: Iterable[Sequence[Any]], filename: str) -> Response:
    """A CSV attachment (the audit log, the statistics): every cell made safe to open in a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_csv_safe(value) for value in row])
    return Response(
        out.getvalue(), mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


def _csv_safe(value: Any) -> Any:
    """A spreadsheet runs a cell that starts with = + - @ as a formula: a note must not."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def sapa_read(conn: sqlite3.Connection, subject: str, at: float) -> None:
    """Log a read of SAPA data by the signed-in user (its own short transaction)."""
    with transaction(conn):
        record(conn, who(), "sapa.read", subject=subject, kind=Kind.SAPA, at=at)
