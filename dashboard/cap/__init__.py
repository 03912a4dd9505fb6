"""A CAP 1.2 feed of fire alarms for the disaster agency (BPBD) and warning dashboards (``[cap]``, off by default)."""

from __future__ import annotations

from flask import Flask

from firmware_bridge.errors import ConfigError

from .feed import EXTENSION, bp
from .messages import CapSettings


def init_app(app: Flask) -> None:
    """Register the feed's routes only when ``[cap] enabled``: while it is off, ``/cap/`` does not exist."""
    settings = app.config.get("SIAGA_CAP") or CapSettings()
    if not settings.enabled:
        return
    if settings.restricted and not settings.token:
        raise ConfigError("SIAGA_CAP: access = token needs the token (token_file)")
    app.extensions[EXTENSION] = settings
    app.register_blueprint(bp)
