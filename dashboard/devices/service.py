"""Buttons out of service or in test mode, each with a reason and an expiry.

Out of service (faulty, under maintenance): its presses are still stored, and
counted, but raise no alarm; the button stays a trouble on the board until it
is back. Test mode (a technician checking it): its presses raise a *test*
alarm, shown muted on the board, never sounded or escalated, and closed by
the dashboard itself after a minute, so the technician sees the LED confirm
the press and then go out. Both end by themselves at their expiry.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from firmware_bridge.errors import SiagaError
from firmware_bridge.timeutil import format_epoch

from ..accounts import audit
from ..db import InQuery

#: The longest a button may be set aside at once: it must come back to someone's attention.
MAX_DAYS = 30
MAX_REASON = 200


class ServiceMode(StrEnum):
    IN_SERVICE = "in_service"
    OUT_OF_SERVICE = "out_of_service"
    TEST = "test"


class ServiceError(SiagaError, ValueError):
    """A service change that cannot be made as asked."""


@dataclass(frozen=True)
class Service:
    button: str
    mode: ServiceMode
    reason: str
    until: float
    set_by: str
    set_at: float

    def view(self) -> dict[str, Any]:
        return {
            "mode": str(self.mode),
            "reason": self.reason,
            "until": format_epoch(self.until),
            "set_by": self.set_by,
            "set_at": format_epoch(self.set_at),
        }


def current(conn: sqlite3.Connection, button: str, now: float) -> Service | None:
    row = conn.execute("SELECT * FROM button_service WHERE button = ? AND until > ?", (button, now)).fetchone()
    return None if row is None else _service(row)


def settings_of(buttons: Iterable[str]) -> InQuery[dict[str, Service]]:
    """Every stored setting of ``buttons``, expired or not (:func:`current` for a batch: compare ``until``),
    read by :func:`db.read_all` with the batch's other lookups."""
    return InQuery(
        "SELECT * FROM button_service WHERE button IN ({})",
        set(buttons),
        lambda rows: {row["button"]: _service(row) for row in rows},
    )


def active(conn: sqlite3.Connection, now: float) -> dict[str, Service]:
    return {
        row["button"]: _service(row) for row in conn.execute("SELECT * FROM button_service WHERE until > ?", (now,))
    }


def _service(row: sqlite3.Row) -> Service:
    return Service(row["button"], ServiceMode(row["mode"]), row["reason"], row["until"], row["set_by"], row["set_at"])


def set_mode(
    conn: sqlite3.Connection, button: str, mode: object, reason: object, hours: object, by: audit.Who, now: float
) -> Service | None:
    """Put a button out of service or in test mode for ``hours``, or back in service (inside a transaction)."""
    try:
        mode = ServiceMode(mode)
    except ValueError:
        raise ServiceError(f"mode must be one of {', '.join(m.value for m in ServiceMode)}") from None
    row = conn.execute("SELECT kind FROM buttons WHERE id = ?", (button,)).fetchone()
    if row is None:
        raise ServiceError(f"no button {button!r}")
    before = current(conn, button, now)
    if mode is ServiceMode.IN_SERVICE:
        conn.execute("DELETE FROM button_service WHERE button = ?", (button,))
        after = None
    else:
        if not isinstance(reason, str) or not reason.strip():
            raise ServiceError("a reason is required")
        try:
            duration = float(hours)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ServiceError("hours must be a number") from None
        if not 0 < duration <= MAX_DAYS * 24:
            raise ServiceError(f"hours must be more than 0 and at most {MAX_DAYS * 24}")
        after = Service(button, mode, " ".join(reason.split())[:MAX_REASON], now + duration * 3600, by.actor, now)
        conn.execute(
            "INSERT INTO button_service (button, mode, reason, until, set_by, set_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(button) DO UPDATE SET mode = excluded.mode, reason = excluded.reason, "
            "until = excluded.until, set_by = excluded.set_by, set_at = excluded.set_at",
            (button, str(mode), after.reason, after.until, after.set_by, after.set_at),
        )
    audit.record(
        conn,
        by,
        "button.service",
        subject=f"button:{button}",
        before=before.view() if before else {"mode": "in_service"},
        after=after.view() if after else {"mode": "in_service"},
        at=now,
    )
    return after
