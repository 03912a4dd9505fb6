"""The Siaga dashboard: MQTT ingest, alarm store, live board (Flask)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Flask, jsonify, render_template, request
from werkzeug.middleware.proxy_fix import ProxyFix

from . import admin, api, auth, board, csrf, db, devices, i18n, live, reports, stats

DEFAULTS: dict[str, Any] = {
    "SIAGA_LANGUAGE": "id",
    "SIAGA_BROKER": None,
    "SIAGA_MQTT_CLIENT_ID": "siaga-dashboard",
    "SIAGA_DEMO_PANEL_URL": None,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_NAME": "siaga_session",
    "PERMANENT_SESSION_LIFETIME": timedelta(hours=14),  # a night shift and the handover
    "MAX_CONTENT_LENGTH": 1 * 1024 * 1024,
}


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. Without ``test_config`` the TOML named by ``SIAGA_DASHBOARD_CONFIG`` is read."""
    app = Flask(__name__)
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

    db.init_app(app)
    i18n.init_app(app)
    reports.init_app(app)

    @app.before_request
    def _body_limit() -> None:
        # Before anything reads the body: the report form may carry photos, nothing else may.
        limit = app.config["SIAGA_BODY_LIMITS"].get(request.endpoint)
        if limit is not None:
            request.max_content_length = limit

    csrf.init_app(app)
    auth.init_app(app)
    live.init_app(app)
    app.register_blueprint(board.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(devices.bp)
    app.register_blueprint(stats.bp)
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


def _register_errors(app: Flask) -> None:
    def handler(code: int, key: str):
        def handle(error: Exception) -> Any:
            if request.path.startswith("/api/"):
                description = getattr(error, "description", "")
                return jsonify(error=key if description != "csrf" else "csrf"), code
            message_key = "csrf_failed" if getattr(error, "description", "") == "csrf" else key
            return render_template("error.html", code=code, message_key=message_key), code

        return handle

    app.register_error_handler(400, handler(400, "bad_request"))
    app.register_error_handler(403, handler(403, "forbidden"))
    app.register_error_handler(404, handler(404, "not_found"))
    app.register_error_handler(413, handler(413, "too_large"))
