"""The dashboard's configuration (``dashboard.toml``), read and validated once at start."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from firmware_bridge.broker import read_broker_settings
from firmware_bridge.errors import ConfigError
from firmware_bridge.settings import Section, read_toml

from .i18n import LANGUAGES
from .reports.categories import load_catalogue
from .reports.photos import writable_folder
from .supervision import SupervisionSettings


def load_config(path: str | Path, *, create_secret: bool = True) -> dict[str, Any]:
    """Read ``dashboard.toml`` into a Flask config mapping; raises ConfigError naming file and key.

    The session-signing key is read from its file, or created there on first
    start (``create_secret``); a mere check creates nothing.
    """
    return parse_config(read_toml(path), create_secret=create_secret)


def parse_config(root: Section, *, create_secret: bool = True) -> dict[str, Any]:
    section = root.section("dashboard", required=True)
    data_dir = Path(section.str("data_dir", "/var/lib/siaga"))
    database = section.str("database", str(data_dir / "dashboard.sqlite"))
    secret_key_file = Path(section.str("secret_key_file", str(data_dir / "secret_key")))
    config: dict[str, Any] = {
        "DATABASE": database,
        "SIAGA_LANGUAGE": section.str("language", "id", choices=LANGUAGES),
        "SIAGA_HOST": section.str("host", "127.0.0.1"),
        "SIAGA_PORT": section.int("port", 8000, min=1, max=65535),
        "SIAGA_THREADS": section.int("threads", 32, min=4, max=512),
        "SESSION_COOKIE_SECURE": section.bool("cookie_secure", True),
        "SIAGA_DEMO_PANEL_URL": section.str("demo_panel_url", None),
        "SIAGA_TRUSTED_PROXIES": section.int("trusted_proxies", 0, min=0, max=5),
    }
    config["SECRET_KEY"] = _secret_key(section, secret_key_file, create=create_secret)
    section.done()
    config.update(_reports(root.section("reports"), data_dir, prepare=create_secret))
    config["SIAGA_SUPERVISION"] = _supervision(root.section("supervision"))
    broker = read_broker_settings(root.section("mqtt", required=True))
    config["SIAGA_BROKER"] = broker
    config["SIAGA_MQTT_CLIENT_ID"] = broker.client_id or "siaga-dashboard"
    root.done()
    return config


def _reports(section: Section, data_dir: Path, *, prepare: bool) -> dict[str, Any]:
    """``[reports]``: citizens' reports (Open311, the form, the Satpol PP workspace).

    ``prepare``: make sure the photos folder is writable now, so that a wrong
    path stops the start instead of failing the first citizen who sends a photo.
    """
    categories_file = section.str("categories_file", None)
    try:
        catalogue = load_catalogue(categories_file)
    except ConfigError as exc:
        raise section.error("categories_file", str(exc)) from None
    tiles = section.str("map_tile_url", None, pattern=r"^https://[^/]+/.*\{z\}.*\{x\}.*\{y\}")
    config = {
        "SIAGA_CATALOGUE": catalogue,
        "SIAGA_PHOTOS_DIR": Path(section.str("photos_dir", str(data_dir / "photos"))),
        "SIAGA_TICKET_PREFIX": section.str("ticket_prefix", "LAP", pattern=r"^[A-Z]{2,8}$"),
        "SIAGA_PUBLIC_PHOTOS": section.bool("public_photos", False),
        "SIAGA_MAP_TILES": tiles,
        "SIAGA_MAP_TILE_ORIGIN": "/".join(tiles.split("/")[:3]) if tiles else None,
        "SIAGA_MAP_ATTRIBUTION": section.str("map_attribution", "", nonempty=False),
        "SIAGA_FORM_RATE": (section.int("form_posts_per_10_min", 10, min=1, max=10_000), 600),
        "SIAGA_API_RATE": (section.int("api_posts_per_min", 120, min=1, max=100_000), 60),
    }
    section.done()
    if prepare:
        try:
            writable_folder(config["SIAGA_PHOTOS_DIR"])
        except OSError as exc:
            raise section.error("photos_dir", f"cannot write to {str(config['SIAGA_PHOTOS_DIR'])!r}: {exc}") from None
    return config


def _supervision(section: Section) -> SupervisionSettings:
    """``[supervision]``: when a silent gateway or button becomes a trouble."""
    settings = SupervisionSettings(
        gateway_silent_s=section.float("gateway_silent_s", 90.0, min=5.0, max=86400.0),
        radio_button_silent_s=section.float("radio_button_silent_s", 200.0, min=10.0, max=7 * 86400.0),
        button_stuck_s=section.float("button_stuck_s", 60.0, min=5.0, max=86400.0),
        clock_skew_s=section.float("clock_skew_s", 120.0, min=1.0, max=86400.0),
        backlog_events=section.int("backlog_events", 100, min=1, max=10_000_000),
        backlog_age_s=section.float("backlog_age_s", 60.0, min=1.0, max=86400.0),
        check_interval_s=section.float("check_interval_s", 5.0, min=0.5, max=600.0),
    )
    section.done()
    return settings


def _secret_key(section: Section, path: Path, *, create: bool) -> str | None:
    """The session-signing key: read from its file, or created there (mode 0600) on first start."""
    try:
        key = path.read_text("utf-8").strip()
    except FileNotFoundError:
        key = ""
    except OSError as exc:
        raise section.error("secret_key_file", f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if key:
        if len(key) < 32:
            raise section.error("secret_key_file", f"{str(path)!r} holds a key shorter than 32 characters")
        return key
    if not create:
        return None
    key = secrets.token_hex(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
    except OSError as exc:
        raise section.error("secret_key_file", f"cannot create {str(path)!r}: {exc.strerror or exc}") from None
    return key
