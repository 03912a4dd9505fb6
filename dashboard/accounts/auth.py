"""Accounts, roles and sign-in.

Roles decide which alarms a person sees: the fire post sees fire alarms;
only the SAPA desk sees SAPA alarms (children's data, UU PDP 27/2022).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.security import check_password_hash, generate_password_hash

from firmware_bridge.errors import SiagaError
from firmware_bridge.payloads import Kind

from ..db import IntegrityError, get_db, transaction
from ..i18n import translate
from . import audit
from .ratelimit import RateLimiter, batch

bp = Blueprint("auth", __name__)

F = TypeVar("F", bound=Callable[..., Any])


class Role(StrEnum):
    FIRE_OPERATOR = "fire_operator"
    SAPA_DESK = "sapa_desk"
    SATPOL = "satpol"
    TECHNICIAN = "technician"
    ADMIN = "admin"
    #: Reads the evaluation report and the open data: aggregates only, no alarm, report or device.
    EVALUATOR = "evaluator"


#: Which alarm kinds each role may see. SAPA is the SAPA desk's alone.
ALARM_KINDS: dict[Role, frozenset[str]] = {
    Role.FIRE_OPERATOR: frozenset({Kind.FIRE.value}),
    Role.SAPA_DESK: frozenset({Kind.SAPA.value}),
    Role.ADMIN: frozenset({Kind.FIRE.value}),
    Role.TECHNICIAN: frozenset(),
    Role.SATPOL: frozenset(),
    Role.EVALUATOR: frozenset(),
}

#: Whose device troubles (a missing button, a low battery, an open case) each
#: role sees; every board role also sees its gateways' troubles. Technicians
#: maintain SAPA buttons too, so they see their troubles, never their alarms.
TROUBLE_KINDS: dict[Role, frozenset[str]] = {
    **ALARM_KINDS,
    Role.TECHNICIAN: frozenset({Kind.FIRE.value, Kind.SAPA.value}),
}

#: The board each role lands on after signing in.
HOME: dict[Role, str] = {
    Role.FIRE_OPERATOR: "board.fire",
    Role.SAPA_DESK: "board.sapa",
    Role.ADMIN: "board.fire",
    Role.TECHNICIAN: "devices.index",
    Role.SATPOL: "workspace.queue",
    Role.EVALUATOR: "evaluation.index",
}

MIN_PASSWORD = 10


class AccountError(SiagaError, ValueError):
    """An account cannot be created as asked (name taken, weak password, unknown role)."""


def create_user(
    conn: sqlite3.Connection, username: str, password: str, role: str, display_name: str | None = None
) -> int:
    try:
        role = Role(role)
    except ValueError:
        raise AccountError(f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}") from None
    username = username.strip()
    if not username or len(username) > 64 or not username.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise AccountError("username: 1-64 letters, digits, '-', '_' or '.'")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password: at least {MIN_PASSWORD} characters")
    try:
        cursor = conn.execute(
            "INSERT INTO users (username, password_hash, role, display_name, created_at) VALUES (?, ?, ?, ?, ?) "
            "RETURNING id",
            (username, generate_password_hash(password), str(role), display_name, time.time()),
        )
        (user_id,) = cursor.fetchone()
    except IntegrityError:
        raise AccountError(f"username {username!r} is taken") from None
    return int(user_id)


_DUMMY_HASH = generate_password_hash("not a real password")


def authenticate(conn: sqlite3.Connection, username: str, password: str) -> sqlite3.Row | None:
    row = conn.execute("SELECT * FROM users WHERE username = ? AND active = 1", (username,)).fetchone()
    if row is None:
        check_password_hash(_DUMMY_HASH, password)  # same work whether or not the user exists
        return None
    return row if check_password_hash(row["password_hash"], password) else None


def current_role() -> Role | None:
    user = g.get("user")
    return Role(user["role"]) if user is not None else None


def visible_kinds() -> frozenset[str]:
    role = current_role()
    return ALARM_KINDS.get(role, frozenset()) if role else frozenset()


def trouble_kinds() -> frozenset[str]:
    role = current_role()
    return TROUBLE_KINDS.get(role, frozenset()) if role else frozenset()


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def login_required(*roles: Role) -> Callable[[F], F]:
    """Require a signed-in user, and one of ``roles`` if given."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if g.get("user") is None:
                if _wants_json():
                    return jsonify(error="login_required"), 401
                flash(translate("login_required"))
                return redirect(url_for("auth.login", next=request.path))
            if roles and current_role() not in roles:
                if _wants_json():
                    return jsonify(error="forbidden"), 403
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


_SESSION_USER = (
    "SELECT users.* FROM sessions JOIN users ON users.id = sessions.user_id "
    "WHERE sessions.id = ? AND sessions.revoked_at IS NULL AND users.active = 1"
)


def session_user(conn: sqlite3.Connection, session_id: object) -> sqlite3.Row | None:
    """The user of a live sign-in session; None once it is signed out or the account disabled."""
    if not isinstance(session_id, str):
        return None
    return conn.execute(_SESSION_USER, (session_id,)).fetchone()


#: A signed-out session's row is kept this long (seconds), then deleted at a later sign-in: long enough to
#: answer "was this cookie signed out?" in an inquiry, short enough that the table holds weeks, not years.
#: Sessions never signed out stay: a wall board's cookie is renewed by its requests and may be months old.
REVOKED_SESSIONS_KEPT_S = 30 * 86400


def start_session(conn: sqlite3.Connection, user_id: int) -> str:
    session_id = secrets.token_urlsafe(32)
    now = time.time()
    conn.execute("DELETE FROM sessions WHERE revoked_at < ?", (now - REVOKED_SESSIONS_KEPT_S,))
    conn.execute("INSERT INTO sessions (id, user_id, created_at) VALUES (?, ?, ?)", (session_id, user_id, now))
    return session_id


def end_session(conn: sqlite3.Connection, session_id: object) -> None:
    if isinstance(session_id, str):
        conn.execute(
            "UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (time.time(), session_id)
        )


@bp.before_app_request
def load_user() -> None:
    g.user = None
    session_id = session.get("sid")
    if session_id is not None:
        g.user = session_user(get_db(), session_id)


#: Sign-in throttling. Guessing is limited per (account, address) pair and per
#: address; a stranger cannot lock an operator out, because an address with no
#: recent failures for an account always gets its try (see LoginLimits.wait),
#: at worst within a minute while the account is under attack. An "address" is
#: an IPv4 address or an IPv6 /64 (see address_key).
LOGIN_FAILURES_PER_PAIR = 5
LOGIN_FAILURES_PER_ADDRESS = 20
#: Failures of one account from every address together after which it is under
#: attack: an address that already failed for it then waits (a clean one does not).
#: Failures are counted after the password check, so requests in flight together
#: (at most the threads of every process) can pass this threshold at once; the attack
#: budget below is counted on admission and has no such overshoot.
LOGIN_FAILURES_PER_ACCOUNT = 50
LOGIN_WINDOW_S = 900.0
#: While an account is under attack, tries at it from clean addresses (one try
#: each, from as many addresses as an attacker has) are admitted at most
#: ATTACK_TRIES_PER_WINDOW per ATTACK_WINDOW_S, counted when admitted (before the
#: password is checked, so that parallel requests cannot overshoot); beyond that
#: the answer is 429 with a Retry-After of seconds. Why 10 a minute: the people
#: who sign in to one account (a post's shift, an administrator) make a handful
#: of tries a minute even at a shift change, so 10 leaves them room, while an
#: attacker with any number of addresses is held to about 10 guesses a minute
#: (about 150 in LOGIN_WINDOW_S, 14,400 a day) instead of one per address; the
#: audit log shows every one of them. The trade-off: an attacker who keeps the
#: budget spent also spends it for a real operator at a new address, who then
#: gets 429 and retries when a slot frees (at most ATTACK_WINDOW_S later, though
#: a bot that keeps taking every freed slot can win that race again). Addresses
#: that signed in to the account within KNOWN_ADDRESS_S (the fire post's desk)
#: are outside the budget: an attacker cannot make an address known without the
#: password, so this adds no guesses.
ATTACK_TRIES_PER_WINDOW = 10
ATTACK_WINDOW_S = 60.0
#: How long a successful sign-in keeps its address known for that account. Every
#: limit here, the known addresses among them, is counted in the store
#: (ratelimit.py), so every dashboard process on it decides alike and a restart
#: forgets nothing: a guesser whose tries a load balancer spreads over processes
#: meets the same limits as on one.
KNOWN_ADDRESS_S = 30 * 86400.0
#: Wrong current passwords on /account/password per account in LOGIN_WINDOW_S.
PASSWORD_CHANGE_FAILURES = 5
#: The IPv6 prefix one subscriber gets at the least (RFC 6177, RFC 7421): all of it is one address.
IPV6_SUBSCRIBER_PREFIX = 64


def address_key(address: str) -> str:
    """The client ``address`` as the sign-in limits count it.

    IPv4 is counted per address. IPv6 is counted per /64, which any subscriber
    has to themselves (2^64 addresses, one limit); an IPv4-mapped IPv6 address
    (``::ffff:a.b.c.d``, from a dual-stack socket) is its IPv4 address. Anything
    that is no IP address (a missing address, a unix socket) counts as itself.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        prefix = int(ip) >> (128 - IPV6_SUBSCRIBER_PREFIX) << (128 - IPV6_SUBSCRIBER_PREFIX)
        return str(ipaddress.IPv6Network((prefix, IPV6_SUBSCRIBER_PREFIX)))
    return str(ip)


@dataclass
class LoginLimits:
    pair: RateLimiter
    address: RateLimiter
    account: RateLimiter
    password_change: RateLimiter
    #: Tries admitted from clean addresses per account while it is under attack.
    attack: RateLimiter
    #: (account, address) pairs that signed in lately; outside the attack budget.
    known: RateLimiter

    @classmethod
    def create(cls, clock: Callable[[], float] = time.time, secret: str | bytes = b"") -> LoginLimits:
        """The sign-in limits, kept in the store under names every process gives them alike
        (``secret``: the app's SECRET_KEY, under which their keys are stored as digests)."""

        def limiter(name: str, limit: int, window_s: float) -> RateLimiter:
            return RateLimiter(f"login.{name}", limit, window_s, clock=clock, secret=secret)

        return cls(
            pair=limiter("pair", LOGIN_FAILURES_PER_PAIR, LOGIN_WINDOW_S),
            address=limiter("address", LOGIN_FAILURES_PER_ADDRESS, LOGIN_WINDOW_S),
            account=limiter("account", LOGIN_FAILURES_PER_ACCOUNT, LOGIN_WINDOW_S),
            password_change=limiter("password_change", PASSWORD_CHANGE_FAILURES, LOGIN_WINDOW_S),
            attack=limiter("attack", ATTACK_TRIES_PER_WINDOW, ATTACK_WINDOW_S),
            known=limiter("known", 1, KNOWN_ADDRESS_S),
        )

    @staticmethod
    def pair_key(account: str, address: str) -> str:
        return f"{account}\x00{address_key(address)}"

    def wait(self, account: str, address: str) -> tuple[float, str]:
        """(seconds this address must wait before trying ``account``, why); (0, "") to go ahead.

        Going ahead from a clean address while ``account`` is under attack spends one
        of its tries in the attack budget: call this once per sign-in attempt.
        """
        pair = self.pair_key(account, address)
        wait = self.pair.retry_after(pair)
        if wait > 0:
            return wait, "pair"
        network = address_key(address)
        wait = self.address.retry_after(network)
        if wait > 0:
            return wait, "address"
        under_attack = self.account.retry_after(account)
        if under_attack > 0:
            if self.pair.count(pair) > 0:
                # Under attack from many addresses: one that already guessed wrong for this
                # account waits until its failures age out or the attack dies down.
                return min(self.pair.clear_after(pair), under_attack), "account"
            if self.known.count(pair) == 0:
                # A clean address still gets its try, but only ATTACK_TRIES_PER_WINDOW such
                # tries a minute go through for this account, however many addresses ask.
                admitted, wait = self.attack.allow(account)
                if not admitted:
                    return wait, "account_rate"
        return 0.0, ""

    def failed(self, account: str, address: str) -> None:
        with batch(self.pair.connection()):
            self.pair.hit(self.pair_key(account, address))
            self.address.hit(address_key(address))
            self.account.hit(account)

    def succeeded(self, account: str, address: str) -> None:
        pair = self.pair_key(account, address)
        with batch(self.pair.connection()):
            self.pair.forget(pair)
            self.known.forget(pair)  # one entry per pair, however often it signs in
            self.known.hit(pair)


def _login_limits() -> LoginLimits:
    return current_app.extensions["siaga.login_limits"]


_NOT_IN_A_PATH = re.compile(r"[^\x21-\x7e]|\\")


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None.

    Browsers drop tabs and newlines anywhere in a URL and read a backslash as a
    slash, so ``/%09/evil.example`` and ``/%5Cevil.example`` both lead to
    ``//evil.example``: another site. A target with any whitespace, control
    character, backslash or non-ASCII character is refused rather than cleaned,
    as is anything with a scheme or a host.
    """
    if not target or _NOT_IN_A_PATH.search(target):
        return None
    if not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _throttled(page: str, message_key: str, wait: float) -> Any:
    response = render_template(page, error=translate(message_key, minutes=int(wait // 60) + 1))
    return response, 429, {"Retry-After": str(int(wait) + 1)}


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip()[:64]
        account = username.lower()
        address = request.remote_addr or "?"
        limits = _login_limits()
        wait, reason = limits.wait(account, address)
        if wait > 0:
            # Checked before the password: a guesser learns nothing more, and spends nothing of ours.
            _audit_login(username, "login.throttled", after={"reason": reason})
            return _throttled("login.html", "login_throttled", wait)
        user = authenticate(get_db(), username, request.form.get("password", ""))
        if user is None:
            limits.failed(account, address)
            _audit_login(username, "login.failed")
            error = translate("login_failed")
        else:
            limits.succeeded(account, address)
            _audit_login(username, "login", role=user["role"])
            language = session.get("lang")
            session.clear()  # a fresh session: no fixation
            session.permanent = True
            session["sid"] = start_session(get_db(), user["id"])
            if language:
                session["lang"] = language
            target = safe_next(request.args.get("next")) or url_for(HOME[Role(user["role"])])
            return redirect(target)
    return render_template("login.html", error=error), (401 if error else 200)


def _audit_login(username: str, action: str, role: str | None = None, after: dict[str, Any] | None = None) -> None:
    conn = get_db()
    with transaction(conn):
        audit.record(
            conn,
            audit.Who(username or "-", role, request.remote_addr),
            action,
            subject=f"user:{username}",
            after=after,
            at=time.time(),
        )


def _audit_own_account(action: str) -> None:
    conn = get_db()
    with transaction(conn):
        audit.record(conn, audit.who(), action, subject=f"user:{g.user['username']}", at=time.time())


@bp.route("/account/password", methods=["GET", "POST"])
@login_required()
def change_password() -> Any:
    """Anyone signed in changes their own password; every other session of theirs ends."""
    error = None
    if request.method == "POST":
        form = request.form
        conn = get_db()
        limiter = _login_limits().password_change
        account = f"user:{g.user['id']}"
        wait = limiter.retry_after(account)
        if wait > 0:
            # Someone with this session is guessing the password: no more tries for a while.
            _audit_own_account("user.current_password_throttled")
            return _throttled("password.html", "password_change_throttled", wait)
        if not check_password_hash(g.user["password_hash"], form.get("current", "")):
            limiter.hit(account)
            _audit_own_account("user.current_password_wrong")  # that it happened, never what was typed
            error = translate("password_current_wrong")
        elif len(form.get("new", "")) < MIN_PASSWORD:
            error = translate("password_too_short", n=MIN_PASSWORD)
        elif form.get("new") != form.get("again"):
            error = translate("password_mismatch")
        else:
            with transaction(conn):
                conn.execute(
                    "UPDATE users SET password_hash = ? WHERE id = ?",
                    (generate_password_hash(form["new"]), g.user["id"]),
                )
                conn.execute(
                    "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND id != ? AND revoked_at IS NULL",
                    (time.time(), g.user["id"], session.get("sid")),
                )
                audit.record(
                    conn, audit.who(), "user.password_changed", subject=f"user:{g.user['username']}", at=time.time()
                )
            limiter.forget(account)
            flash(translate("password_changed"))
            return redirect(url_for("board.index"), 303)
    return render_template("password.html", error=error), (400 if error else 200)


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    language = session.get("lang")
    end_session(get_db(), session.get("sid"))
    session.clear()
    if language:
        session["lang"] = language
    return redirect(url_for("auth.login"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.extensions["siaga.login_limits"] = LoginLimits.create(secret=app.config.get("SECRET_KEY") or b"")
