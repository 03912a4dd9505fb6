"""Reports in the dashboard's database: intake, the workflow's changes, and reads."""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from firmware_bridge.errors import SiagaError

from ..db import IntegrityError, transaction
from ..defaults import LOCAL_TIME, TICKET_PREFIX
from .categories import Catalogue
from .photos import CleanPhoto, write_photos
from .text import xml_safe
from .workflow import Status, WorkflowError, check_move, open311_status


class ApiKeyError(SiagaError, ValueError):
    """An API key that cannot be made as asked; ``key`` is the administrator's message."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


class ReportNotFound(SiagaError, LookupError):
    pass


@dataclass
class NewReport:
    service_code: str
    description: str | None
    lat: float | None
    lon: float | None
    address: str | None
    address_id: str | None = None
    area: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    media_url: str | None = None
    source: str = "web"
    reporter_name: str | None = None
    reporter_email: str | None = None
    reporter_phone: str | None = None
    device_id: str | None = None
    account_id: str | None = None
    photos: list[CleanPhoto] = field(default_factory=list)


def w3c(timestamp: float | None) -> str | None:
    """An Open311 datetime: ISO 8601 with the regency's offset, always with a timezone."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, LOCAL_TIME).isoformat(timespec="seconds")


def _next_ticket(conn: sqlite3.Connection, prefix: str, now: float) -> str:
    year = datetime.fromtimestamp(now, LOCAL_TIME).year
    pattern = f"{prefix}-{year}-%"
    # The highest number, not a count: numbers are never reused, even if a report were removed.
    last = conn.execute(
        "SELECT ticket FROM reports WHERE ticket LIKE ? ORDER BY length(ticket) DESC, ticket DESC LIMIT 1", (pattern,)
    ).fetchone()
    last = last[0] if last else None
    number = int(last.rsplit("-", 1)[1]) if last else 0
    return f"{prefix}-{year}-{number + 1:06d}"


def create_report(
    conn: sqlite3.Connection,
    report: NewReport,
    *,
    photos_dir: Path,
    prefix: str = TICKET_PREFIX,
    now: float | None = None,
) -> tuple[str, str]:
    """Store a report durably: photos on disk (fsync) first, then one committed transaction.

    Returns (ticket, token); the citizen sees the ticket only after this returns.
    """
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(16)
    # Photos first, outside the transaction: their fsyncs must not hold the
    # database's write lock, which the alarm ingest needs.
    folder = Path(str(datetime.fromtimestamp(now, LOCAL_TIME).year)) / secrets.token_hex(8)
    written = write_photos(photos_dir, folder, [photo.data for photo in report.photos])
    try:
        with transaction(conn):
            ticket = _next_ticket(conn, prefix, now)
            cursor = conn.execute(
                "INSERT INTO reports (ticket, token, service_code, description, lat, lon, address, address_id, area, "
                "attributes, media_url, status, requested_at, updated_at, source, reporter_name, reporter_email, "
                "reporter_phone, device_id, account_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    ticket,
                    token,
                    report.service_code,
                    report.description,
                    report.lat,
                    report.lon,
                    report.address,
                    report.address_id,
                    report.area,
                    json.dumps(report.attributes, ensure_ascii=False),
                    report.media_url,
                    Status.RECEIVED,
                    now,
                    now,
                    report.source,
                    report.reporter_name,
                    report.reporter_email,
                    report.reporter_phone,
                    report.device_id,
                    report.account_id,
                ),
            )
            report_id = int(cursor.fetchone()[0])
            for position, (photo, path) in enumerate(zip(report.photos, written, strict=True), start=1):
                relative = path.relative_to(photos_dir)
                conn.execute(
                    "INSERT INTO report_photos (report_id, position, path, sha256, width, height, bytes) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (report_id, position, str(relative), photo.sha256, photo.width, photo.height, len(photo.data)),
                )
            conn.execute(
                "INSERT INTO report_history (report_id, at, actor, from_status, to_status, note, public) "
                "VALUES (?, ?, ?, NULL, ?, NULL, 1)",
                (report_id, now, report.source, Status.RECEIVED),
            )
    except BaseException:
        for path in written:  # the report was not stored: neither are its photos
            path.unlink(missing_ok=True)
        if written:
            written[0].parent.rmdir()
        raise
    return ticket, token


def move_report(
    conn: sqlite3.Connection,
    ticket: str,
    target: str,
    *,
    resolution: str | None,
    actor: str,
    note: str | None,
    public: bool,
    expected_step: int | None = None,
    now: float | None = None,
) -> None:
    """One step of the workflow, recorded with who, when and why.

    ``expected_step`` is the last history step the officer saw: if another
    officer moved the report meanwhile, the move is refused rather than applied
    to a state nobody looked at.
    """
    now = time.time() if now is None else now
    note = xml_safe(note or "").strip() or None  # shown in Open311's XML when public
    if note is not None and len(note) > 2000:
        raise WorkflowError("the note is longer than 2000 characters", "error_note_too_long")
    if public and note is None:
        raise WorkflowError("a note shown to the reporter cannot be empty", "error_note_empty")
    with transaction(conn):
        row = conn.execute("SELECT id, status FROM reports WHERE ticket = ?", (ticket,)).fetchone()
        if row is None:
            raise ReportNotFound(ticket)
        if expected_step is not None and expected_step != last_step(conn, row["id"]):
            raise WorkflowError(f"{ticket} was changed by someone else meanwhile", "error_report_changed")
        current = Status(row["status"])
        new, resolution = check_move(current, target, resolution)
        conn.execute(
            "UPDATE reports SET status = ?, resolution = COALESCE(?, resolution), updated_at = ? WHERE id = ?",
            (new, resolution, now, row["id"]),
        )
        conn.execute(
            "INSERT INTO report_history (report_id, at, actor, from_status, to_status, resolution, note, public) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (row["id"], now, actor, current, new, resolution, note, 1 if public else 0),
        )


# -- reads ------------------------------------------------------------------------------------


def get_report(conn: sqlite3.Connection, ticket: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM reports WHERE ticket = ?", (ticket,)).fetchone()
    if row is None:
        raise ReportNotFound(ticket)
    return row


def ticket_for_token(conn: sqlite3.Connection, token: str) -> str | None:
    row = conn.execute("SELECT ticket FROM reports WHERE token = ?", (token,)).fetchone()
    return None if row is None else row["ticket"]


def history(conn: sqlite3.Connection, report_id: int, *, public_only: bool) -> list[sqlite3.Row]:
    """Every step of a report. ``public_only``: as the reporter sees it, every status
    change but only the notes meant for them, and not which officer acted."""
    if public_only:
        query = (
            "SELECT id, at, from_status, to_status, resolution, CASE WHEN public = 1 THEN note END AS note "
            "FROM report_history WHERE report_id = ?"
        )
    else:
        query = "SELECT * FROM report_history WHERE report_id = ?"
    return conn.execute(query + " ORDER BY id", (report_id,)).fetchall()


def last_step(conn: sqlite3.Connection, report_id: int) -> int:
    row = conn.execute("SELECT MAX(id) AS step FROM report_history WHERE report_id = ?", (report_id,)).fetchone()
    return int(row["step"] or 0)


def photos(conn: sqlite3.Connection, report_id: int) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM report_photos WHERE report_id = ? ORDER BY position", (report_id,)).fetchall()


def latest_public_note(conn: sqlite3.Connection, report_id: int) -> str | None:
    row = conn.execute(
        "SELECT note FROM report_history WHERE report_id = ? AND public = 1 AND note IS NOT NULL ORDER BY id DESC "
        "LIMIT 1",
        (report_id,),
    ).fetchone()
    return None if row is None else row["note"]


def open311_view(conn: sqlite3.Connection, row: sqlite3.Row, catalogue: Catalogue, media_base: str | None) -> dict:
    """A report as GeoReport v2 shows it: no reporter identity, ever."""
    category = catalogue.get(row["service_code"])
    target_days = category.target_days if category else 7
    media = None
    if media_base:
        first = conn.execute(
            "SELECT id FROM report_photos WHERE report_id = ? ORDER BY position LIMIT 1", (row["id"],)
        ).fetchone()
        media = f"{media_base}/{first['id']}" if first else None
    return {
        "service_request_id": row["ticket"],
        "status": open311_status(Status(row["status"])),
        "status_notes": latest_public_note(conn, row["id"]),
        "service_name": category.name if category else row["service_code"],
        "service_code": row["service_code"],
        "description": row["description"],
        "agency_responsible": category.agency if category else catalogue.default_agency,
        "service_notice": None,
        "requested_datetime": w3c(row["requested_at"]),
        "updated_datetime": w3c(row["updated_at"]),
        "expected_datetime": w3c(row["requested_at"] + target_days * 86400),
        "address": row["address"],
        "address_id": row["address_id"],
        "zipcode": None,
        "lat": row["lat"],
        "long": row["lon"],
        "media_url": media or row["media_url"],
    }


def search(
    conn: sqlite3.Connection,
    *,
    tickets: list[str] | None = None,
    service_codes: list[str] | None = None,
    statuses: list[str] | None = None,
    start: float | None = None,
    end: float | None = None,
    limit: int = 1000,
) -> list[sqlite3.Row]:
    """Reports matching Open311 filters, newest first."""
    query = "SELECT * FROM reports WHERE 1 = 1"
    params: list[Any] = []
    if tickets:
        query += f" AND ticket IN ({','.join('?' * len(tickets))})"
        params += tickets
    if service_codes:
        query += f" AND service_code IN ({','.join('?' * len(service_codes))})"
        params += service_codes
    if statuses:
        query += f" AND status IN ({','.join('?' * len(statuses))})"
        params += statuses
    if start is not None:
        query += " AND requested_at >= ?"
        params.append(start)
    if end is not None:
        query += " AND requested_at <= ?"
        params.append(end)
    query += " ORDER BY requested_at DESC, id DESC LIMIT ?"
    params.append(limit)
    return conn.execute(query, params).fetchall()


# -- API keys ------------------------------------------------------------------------------------


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(conn: sqlite3.Connection, name: str, created_by: str) -> str:
    """A new key for an app; returned once, only its hash is kept."""
    name = name.strip()
    if not name or len(name) > 80:
        raise ApiKeyError("a key needs a name of 1 to 80 characters", "error_key_name")
    key = "siaga_" + secrets.token_urlsafe(24)
    try:
        conn.execute(
            "INSERT INTO api_keys (name, prefix, key_hash, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
            (name, key[:12], _hash(key), time.time(), created_by),
        )
    except IntegrityError:
        raise ApiKeyError(f"there is already a key named {name!r}", "error_key_taken") from None
    return key


def check_api_key(conn: sqlite3.Connection, key: str | None) -> str | None:
    """The name of the app a valid key belongs to, or None."""
    if not key:
        return None
    row = conn.execute(
        "SELECT id, name FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", (_hash(key),)
    ).fetchone()
    if row is None:
        return None
    conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (time.time(), row["id"]))
    return str(row["name"])


def revoke_api_key(conn: sqlite3.Connection, key_id: int) -> None:
    conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (time.time(), key_id))


def list_api_keys(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT id, name, prefix, created_at, created_by, revoked_at, last_used_at FROM api_keys ORDER BY id"
    ).fetchall()
