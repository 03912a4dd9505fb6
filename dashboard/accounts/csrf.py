"""CSRF protection for every state-changing request.

A random token lives in the (signed) session; forms send it as
``csrf_token`` and scripts as the ``X-CSRF-Token`` header. Any POST, PUT,
PATCH or DELETE without the right token is refused with 400.

The token is in the cookie, not in a process: every dashboard process with
the same SECRET_KEY checks a token another issued (docs/security.md,
"Several dashboard processes"; tests/test_shared_state.py).
"""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, abort, current_app, request, session

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def _presented_token() -> str:
    return request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""


def check_csrf() -> None:
    if request.method in SAFE_METHODS or request.routing_exception is not None:
        return  # a request that reaches no view (404, 405) changes nothing; let it fail as what it is
    endpoint = request.endpoint or ""
    if any(endpoint.startswith(prefix) for prefix in current_app.config.get("SIAGA_CSRF_EXEMPT", ())):
        return  # authenticated by an API key, not by a cookie: nothing for a forged page to ride on
    expected = session.get("csrf")
    if not expected or not hmac.compare_digest(expected, _presented_token()):
        abort(400, description="csrf")


def init_app(app: Flask) -> None:
    app.before_request(check_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
