"""``POST /api/enrol``: a gateway redeems its one-time code for its configuration, broker password and CAs.

No session and no CSRF token: the code is the credential, and a forged page
cannot hold one. Wrong codes are counted per client address (an IPv6
address as its /64) and throttled; every use and failed use is audited.
The broker account is made after the code is taken and before the answer;
if the broker cannot make it, the code is given back so it can be tried again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from firmware_bridge.counters import Counters

from .. import db
from ..accounts import audit
from ..accounts.auth import address_key
from ..accounts.ratelimit import RateLimiter, batch
from . import accounts, codes, plans, store
from .brokeradmin import BrokerAdmin
from .dynsec import DynsecError
from .settings import EnrolmentSettings

log = logging.getLogger(__name__)

bp = Blueprint("enrol_api", __name__, url_prefix="/api")

EXTENSION = "siaga.enrolment"
#: Wrong codes one address may send in a window before it waits: a typo or two, never a search.
WRONG_CODES_PER_WINDOW = 10
WRONG_CODES_WINDOW_S = 600.0
#: The longest code field read (a code is 19 characters; spaces and dashes are forgiven).
MAX_CODE_FIELD = 64


@dataclass
class Enrolment:
    settings: EnrolmentSettings
    wrong_codes: RateLimiter
    counters: Counters


def init_state(app: Any, settings: EnrolmentSettings) -> Enrolment:
    secret = app.config.get("SECRET_KEY") or b""
    limiter = RateLimiter("enrolment.wrong_code", WRONG_CODES_PER_WINDOW, WRONG_CODES_WINDOW_S, secret=secret)
    state = Enrolment(settings, limiter, Counters())
    app.extensions[EXTENSION] = state
    return state


def state() -> Enrolment:
    return current_app.extensions[EXTENSION]


def _refuse(status: int, error: str, message: str, **extra: Any) -> Any:
    response = jsonify({"error": error, "message": message, **extra})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/enrol")
def enrol() -> Any:
    enrolment = state()
    if not enrolment.settings.enabled:
        return _refuse(404, "enrolment_disabled", "enrolment is not enabled on this dashboard")
    address = address_key(request.remote_addr or "")
    wait = enrolment.wrong_codes.retry_after(address)
    if wait > 0:
        enrolment.counters.add("enrol_throttled")
        response = _refuse(429, "too_many_wrong_codes", f"too many wrong codes from this address; wait {wait:.0f} s")
        response.headers["Retry-After"] = str(max(1, round(wait)))
        return response
    body = request.get_json(silent=True)
    typed = body.get("code") if isinstance(body, dict) else None
    if not isinstance(typed, str) or len(typed) > MAX_CODE_FIELD:
        enrolment.counters.add("enrol_bad_requests")
        return _refuse(400, "bad_request", 'send JSON {"code": "XXXX-XXXX-XXXX-XXXX"}')
    code = codes.normalise(typed)
    conn = db.get_db()
    now = time.time()
    taken = None
    if code is not None:
        with db.transaction(conn):
            taken = store.claim(conn, codes.digest(code), at=now, source=request.remote_addr or "")
    if taken is None:
        return _wrong_code(enrolment, conn, code, address, now)
    return _redeem(enrolment, conn, taken)


def _wrong_code(enrolment: Enrolment, conn: db.Connection, code: str | None, address: str, now: float) -> Any:
    reason, gw_id = ("unknown", None) if code is None else store.why_refused(conn, codes.digest(code), at=now)
    enrolment.counters.add("enrol_codes_refused")
    enrolment.counters.add(f"enrol_codes_refused_{reason}")
    with batch(conn):  # counted in its own transaction, as sign-in failures are
        enrolment.wrong_codes.hit(address)
    with db.transaction(conn):
        audit.record(
            conn,
            audit.who(),
            "enrolment.code_refused",
            subject=f"gateway:{gw_id}" if gw_id else None,
            after={"reason": reason},
            at=now,
        )
    said = {
        "unknown": "this code is not known: check it, or ask the administrator for a new one",
        "used": "this code has been used already: ask the administrator for a new one",
        "revoked": "this code was revoked: ask the administrator for a new one",
        "expired": "this code has expired: ask the administrator for a new one",
    }[reason]
    return _refuse(403, "code_refused", said, reason=reason)


def _redeem(enrolment: Enrolment, conn: db.Connection, taken: store.Claim) -> Any:
    settings = enrolment.settings
    plan = store.plan(conn, taken.gateway_id)
    assert plan is not None  # codes go with their plan (ON DELETE CASCADE)
    try:
        config_text = plans.gateway_toml(
            plan.gateway_id, plan.site, plan.buttons, settings, lora=plan.lora, lora_buttons=plan.lora_buttons
        )
        broker_ca = _read(settings.broker_ca_file)
        dashboard_ca = _read(settings.dashboard_ca_file)
        if settings.admin is None:
            raise DynsecError("[enrolment] names no dynamic security administrator")
        admin = BrokerAdmin(settings.admin, timeout_s=settings.broker_timeout_s)
        account = accounts.gateway_account(admin, settings.admin.root, plan.gateway_id)
    except Exception as exc:  # whatever failed, the code is given back: never burnt by our fault
        log.error("enrolment of %s failed: %s", plan.gateway_id, exc, exc_info=not isinstance(exc, DynsecError))
        enrolment.counters.add("enrol_broker_failures" if isinstance(exc, (DynsecError, OSError)) else "enrol_errors")
        with db.transaction(conn):
            store.release(conn, taken)
            audit.record(
                conn,
                audit.who(),
                "enrolment.failed",
                subject=f"gateway:{plan.gateway_id}",
                after={"reason": "broker", "detail": str(exc)[:300]},
                at=time.time(),
            )
        return _refuse(503, "broker_unavailable", f"the broker account could not be made ({exc}); try again")
    done = time.time()
    with db.transaction(conn):
        store.enrolled(conn, plan.gateway_id, at=done)
        audit.record(
            conn,
            audit.who(),
            "enrolment.code_used",
            subject=f"gateway:{plan.gateway_id}",
            after={"account": account.username, "replaced": account.replaced},
            at=done,
        )
    enrolment.counters.add("enrol_codes_used")
    response = jsonify(
        {
            "gateway_id": plan.gateway_id,
            "config": config_text,
            "mqtt_username": account.username,
            "mqtt_password": account.password,
            "broker_ca": broker_ca,
            "dashboard_ca": dashboard_ca,
            "replaced_account": account.replaced,
        }
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _read(path: Any) -> str | None:
    return None if path is None else path.read_text("utf-8")  # a CA bundle's comments may not be ASCII
