"""Citizens' reports of Perda/Perkada violations: Open311, the public form and tracking, the Satpol PP workspace."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from firmware_bridge.counters import Counters
from firmware_bridge.errors import ConfigError

from .. import defaults
from ..accounts.ratelimit import RateLimiter
from ..pg import is_url
from . import keys, open311, public, workspace
from .categories import load_catalogue
from .metrics import EXTENSION


@dataclass
class Reports:
    form_limiter: RateLimiter
    api_limiter: RateLimiter
    counters: Counters


def init_app(app: Flask) -> None:
    config = app.config
    if config.get("SIAGA_CATALOGUE") is None:
        config["SIAGA_CATALOGUE"] = load_catalogue(config.get("SIAGA_CATEGORIES_FILE"))
    photos_dir = config.get("SIAGA_PHOTOS_DIR")
    if not photos_dir:
        if is_url(config["DATABASE"]):  # a server's store has no folder of its own to put them beside
            raise ConfigError("SIAGA_PHOTOS_DIR: the photos folder must be named when the store is PostgreSQL")
        photos_dir = defaults.photos_folder(Path(config["DATABASE"]).parent)
    config["SIAGA_PHOTOS_DIR"] = Path(photos_dir)
    config.setdefault("SIAGA_TICKET_PREFIX", defaults.TICKET_PREFIX)
    form_limit, form_window = config.get("SIAGA_FORM_RATE", defaults.form_rate())
    api_limit, api_window = config.get("SIAGA_API_RATE", defaults.api_rate())
    secret = config.get("SECRET_KEY") or b""  # the limits are counted in the store, their keys as digests
    app.extensions[EXTENSION] = Reports(
        form_limiter=RateLimiter("reports.form", form_limit, form_window, secret=secret),
        api_limiter=RateLimiter("reports.open311", api_limit, api_window, secret=secret),
        counters=Counters(),
    )
    config.setdefault("SIAGA_CSRF_EXEMPT", set()).add("open311.")  # api_key, no cookies
    for blueprint in (open311.bp, public.bp, workspace.bp, keys.bp):
        app.register_blueprint(blueprint)
