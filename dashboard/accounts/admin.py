"""Administrators: accounts (create, change role, deactivate, reset password) and the audit log."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from werkzeug.security import generate_password_hash

from ..db import get_db, transaction
from ..i18n import translate
from . import audit
from .auth import MIN_PASSWORD, AccountError, Role, create_user, login_required, visible_kinds

bp = Blueprint("admin", __name__, url_prefix="/admin")

_ACCOUNT = "SELECT id, username, role, display_name, active, created_at FROM users"


def _accounts(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(_ACCOUNT + " ORDER BY username")]


def _account(conn: sqlite3.Connection, user_id: int) -> dict[str, Any] | None:
    row = conn.execute(_ACCOUNT + " WHERE id = ?", (user_id,)).fetchone()
    return None if row is None else dict(row)


@bp.get("/users")
@login_required(Role.ADMIN)
def users() -> Any:
    return render_template("admin_users.html", accounts=_accounts(get_db()), roles=list(Role))


@bp.post("/users")
@login_required(Role.ADMIN)
def create() -> Any:
    conn = get_db()
    form = request.form
    try:
        with transaction(conn):
            user_id = create_user(
                conn,
                form.get("username", ""),
                form.get("password", ""),
                form.get("role", ""),
                form.get("display_name", "").strip()[:80] or None,
            )
            created = _account(conn, user_id)
            assert created is not None
            audit.record(
                conn,
                audit.who(),
                "user.created",
                subject=f"user:{created['username']}",
                after={"role": created["role"], "display_name": created["display_name"]},
                at=time.time(),
            )
    except AccountError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.users"), 303)
    flash(translate("account_created", who=created["username"]))
    return redirect(url_for("admin.users"), 303)


@bp.post("/users/<int:user_id>")
@login_required(Role.ADMIN)
def update(user_id: int) -> Any:
    """Change an account's role, activate or deactivate it, or set a new password."""
    conn = get_db()
    before = _account(conn, user_id)
    if before is None:
        abort(404)
    try:
        wanted = _wanted(before, request.form)
    except AccountError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.users"), 303)
    if not wanted:
        return redirect(url_for("admin.users"), 303)
    with transaction(conn):
        for column, value in wanted.items():
            conn.execute(f"UPDATE users SET {column} = ? WHERE id = ?", (value, user_id))  # noqa: S608 - fixed names
        # A new role, a deactivation or a new password ends the account's sessions everywhere.
        conn.execute(
            "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL", (time.time(), user_id)
        )
        after = _account(conn, user_id)
        assert after is not None
        shown = [key for key in wanted if key != "password_hash"]
        audit.record(
            conn,
            audit.who(),
            "user.updated",
            subject=f"user:{before['username']}",
            before={key: before[key] for key in shown} | ({"password": "…"} if "password_hash" in wanted else {}),
            after={key: after[key] for key in shown} | ({"password": "new"} if "password_hash" in wanted else {}),
            at=time.time(),
        )
    flash(translate("account_updated", who=before["username"]))
    return redirect(url_for("admin.users"), 303)


def _wanted(before: dict[str, Any], form: Any) -> dict[str, Any]:
    """The columns to change, checked; raises AccountError for a change that may not be made."""
    wanted: dict[str, Any] = {}
    own = before["id"] == g.user["id"]
    role = form.get("role")
    if role and role != before["role"]:
        if role not in {r.value for r in Role}:
            raise AccountError(f"unknown role {role!r}")
        if own:
            raise AccountError(translate("no_self_demotion"))  # the last administrator stays one
        wanted["role"] = role
    active = form.get("active")
    if active in ("0", "1") and int(active) != before["active"]:
        if own:
            raise AccountError(translate("no_self_deactivation"))
        wanted["active"] = int(active)
    password = form.get("password", "")
    if password:
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"password: at least {MIN_PASSWORD} characters")
        wanted["password_hash"] = generate_password_hash(password)
    return wanted


# -- the audit log ---------------------------------------------------------------------------------


def _audit_filters() -> dict[str, Any]:
    def day(name: str, end: bool = False) -> float | None:
        value = request.args.get(name, "")
        try:
            parsed = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            return None
        return parsed.timestamp() + (86400 if end else 0)

    return {
        "since": day("from"),
        "until": day("to", end=True),
        "actor": request.args.get("actor", "").strip() or None,
        "action": request.args.get("action", "").strip() or None,
    }


@bp.get("/audit")
@login_required(Role.ADMIN)
def audit_log() -> Any:
    shown = audit.page(get_db(), kinds=visible_kinds(), before=request.args.get("before"), **_audit_filters())
    filters = {key: value for key, value in request.args.items() if key != "before"}
    return render_template("admin_audit.html", rows=shown.rows, args=filters, next_page=shown.next)


@bp.get("/audit.csv")
@login_required(Role.ADMIN)
def audit_csv() -> Response:
    rows = audit.entries(get_db(), kinds=visible_kinds(), limit=1_000_000, **_audit_filters())
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    table = ([row[column] for column in audit.CSV_COLUMNS] for row in rows)
    return audit.csv_download(audit.CSV_COLUMNS, table, f"siaga-audit-{stamp}.csv")
