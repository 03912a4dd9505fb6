"""The Siaga dashboard: MQTT ingest, alarm store, live board (Flask)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Flask, Request, Response, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import Map
from werkzeug.routing.converters import IntegerConverter

from . import bodylimit, cap, db, defaults, enrolment, evaluation, i18n, live, metrics, openapi, reports
from .accounts import admin, auth, csrf
from .alarms import stats
from .board import api
from .board import pages as board
from .commissioning import view as commissioning
from .devices import view as devices
from .reports import open311

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "SIAGA_LANGUAGE": "id",
    "SIAGA_BROKER": None,
    "SIAGA_MQTT_CLIENT_ID": defaults.MQTT_CLIENT_ID,
    "SIAGA_STREAMS_PER_ACCOUNT": defaults.STREAMS_PER_ACCOUNT,
    "SIAGA_MAX_STREAMS": defaults.MAX_STREAMS,
    "SIAGA_DEMO_PANEL_URL": None,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_NAME": "siaga_session",
    "PERMANENT_SESSION_LIFETIME": timedelta(hours=14),  # a night shift and the handover
    "MAX_CONTENT_LENGTH": 1 * 1024 * 1024,
}


#: The largest integer SQLite stores; a larger id in a URL is not found rather than an OverflowError.
SQLITE_MAX_INT = 2**63 - 1


class SQLiteIntConverter(IntegerConverter):
    """``<int:...>`` for every route: values SQLite cannot hold do not match (404)."""

    def __init__(
        self, map: Map, fixed_digits: int = 0, min: int | None = None, max: int | None = None, signed: bool = False
    ) -> None:
        low = -SQLITE_MAX_INT - 1 if min is None and signed else min
        high = SQLITE_MAX_INT if max is None else max
        super().__init__(map, fixed_digits, low, high if high <= SQLITE_MAX_INT else SQLITE_MAX_INT, signed)


class SafeJSONProvider(DefaultJSONProvider):
    """JSON whose parsing never fails with anything but ValueError (a body of ``[[[[...`` is just bad JSON)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


class SafeRequest(Request):
    """A body that says it is JSON and is not is a 400, also for a caller that asked for silence:
    its fields must never be read as absent (an action taken with none of what was sent)."""

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if force or self.is_json:
            silent = False
        return super().get_json(force=force, silent=silent, cache=cache)

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:
            return super().on_json_loading_failed(e)  # not JSON at all: 415
        raise BadRequest("the body is not valid JSON")


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. Without ``test_config`` the TOML named by ``SIAGA_DASHBOARD_CONFIG`` is read."""
    app = Flask(__name__)
    app.request_class = SafeRequest
    app.json = SafeJSONProvider(app)
    app.url_map.converters["int"] = SQLiteIntConverter  # before any route is registered
    app.config.from_mapping(DEFAULTS)
    if test_config is None:
        from .config import load_config

        app.config.from_mapping(load_config(os.environ["SIAGA_DASHBOARD_CONFIG"]))
    else:
        app.config.from_mapping(test_config)

    proxies = int(app.config.get("SIAGA_TRUSTED_PROXIES") or 0)
    if proxies:
        # Behind a reverse proxy every client would share the proxy's address (and
        # its rate limit); trust exactly as many X-Forwarded-* hops as there are proxies.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore[method-assign]

    bodylimit.init_app(app)  # first: before any hook reads a body
    db.init_app(app)
    i18n.init_app(app)
    reports.init_app(app)
    csrf.init_app(app)
    auth.init_app(app)
    commissioning.init_app(app)  # before live: supervision takes its rules
    live.init_app(app)
    app.register_blueprint(board.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(devices.bp)
    app.register_blueprint(stats.bp)
    app.register_blueprint(openapi.bp)
    enrolment.init_app(app)
    evaluation.init_app(app)
    cap.init_app(app)
    metrics.init_app(app)  # after live: it reads the live parts' counters
    _register_errors(app)

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        tiles = app.config.get("SIAGA_MAP_TILE_ORIGIN") or ""
        response.headers.setdefault(
            "Content-Security-Policy",
            f"default-src 'self'; img-src 'self' data: blob: {tiles}; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
        )
        return response

    return app


#: The message (i18n key) a page shows for an HTTP error; the same names are the JSON ``error``.
_ERROR_KEYS = {
    400: "bad_request",
    401: "login_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    429: "too_many_requests",
    500: "server_error",
}


def _register_errors(app: Flask) -> None:
    """Every error answers in the format of where it happened, never a stack trace:
    JSON under ``/api/``, the Open311 error format under ``/open311/``, a page elsewhere."""

    def handle(error: HTTPException) -> Any:
        code = error.code or 500
        if code < 400:
            return error
        if code >= 500:
            _count_server_error(app, error)
        headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
        description = getattr(error, "description", "") or ""
        if request.path.startswith("/open311/"):
            response = open311.http_error(error)
        elif request.path.startswith("/api/"):
            key = "csrf" if description == "csrf" else _ERROR_KEYS.get(code) or _snake(error.name)
            body: dict[str, Any] = {"error": key}
            if code < 500 and description and description != "csrf":
                body["message"] = description
            response = jsonify(body)
            response.status_code = code
        else:
            key = "csrf_failed" if description == "csrf" else _ERROR_KEYS.get(code, "http_error")
            response = _error_page(code, key)
        for name, value in headers:
            response.headers[name] = value
        return response

    app.register_error_handler(HTTPException, handle)


def _snake(name: str) -> str:
    return "_".join(name.lower().split())


def _error_page(code: int, message_key: str) -> Response:
    try:
        body = render_template("error.html", code=code, message_key=message_key)
    except Exception:  # a broken template or database must not turn an error page into a traceback
        log.exception("error page %s could not be rendered", code)
        body = f"{code}\n"
        return Response(body, status=code, content_type="text/plain; charset=utf-8")
    return Response(body, status=code, content_type="text/html; charset=utf-8")


def _count_server_error(app: Flask, error: HTTPException) -> None:
    """Flask has logged an unhandled exception's traceback already; a deliberate 5xx is logged here."""
    state = app.extensions.get(live.EXTENSION)
    if state is not None:
        state.counters.add(f"http_{error.code}")
    if getattr(error, "original_exception", None) is None:
        log.error("%s %s answered %s: %s", request.method, request.path, error.code, error.description)
