"""The dashboard's configuration (``dashboard.toml``), read and validated once at start."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Any

from firmware_bridge.access import read_bearer_token, stated_purpose
from firmware_bridge.broker import read_broker_settings, read_secret_file
from firmware_bridge.errors import ConfigError
from firmware_bridge.metrics import read_metrics
from firmware_bridge.payloads import Kind
from firmware_bridge.settings import Section, read_toml

from . import defaults
from .alarms.escalation import EscalationSettings
from .alarms.notify import RetryPolicy, Webhook
from .cap.messages import ACCESS, CapSettings
from .commissioning.settings import read_commissioning
from .devices.supervision import SupervisionSettings
from .enrolment.settings import read_enrolment
from .evaluation.settings import read_evaluation
from .homeassistant.discovery import read_settings as read_homeassistant
from .i18n import LANGUAGES
from .pg import is_url
from .reports.categories import load_catalogue
from .reports.photos import writable_folder
from .timeseries.writer import InfluxSettings


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
    if is_url(database):
        _check_database_url(section, database)
    elif "://" in database:
        raise section.error("database", "an SQLite file's path, or a postgresql:// URL")
    secret_key_file = Path(section.str("secret_key_file", str(data_dir / "secret_key")))
    config: dict[str, Any] = {
        "DATABASE": database,
        "SIAGA_LANGUAGE": section.str("language", "id", choices=LANGUAGES),
        "SIAGA_HOST": section.str("host", "127.0.0.1"),
        "SIAGA_PORT": section.int("port", 8000, min=1, max=65535),
        "SIAGA_THREADS": section.int("threads", 32, min=4, max=512),
        "SIAGA_MAX_STREAMS": section.int("max_streams", defaults.MAX_STREAMS, min=1, max=100_000),
        "SESSION_COOKIE_SECURE": section.bool("cookie_secure", True),
        "SIAGA_DEMO_PANEL_URL": section.str("demo_panel_url", None),
        "SIAGA_TRUSTED_PROXIES": section.int("trusted_proxies", 0, min=0, max=5),
    }
    config.update(_tls(section))
    config["SECRET_KEY"] = _secret_key(section, secret_key_file, create=create_secret)
    section.done()
    config.update(_reports(root.section("reports"), data_dir, prepare=create_secret))
    config["SIAGA_SUPERVISION"] = _supervision(root.section("supervision"))
    config["SIAGA_ESCALATION"] = _escalation(root.section("escalation"))
    config.update(_board(root.section("board")))
    broker = read_broker_settings(root.section("mqtt", required=True))
    config["SIAGA_BROKER"] = broker
    config["SIAGA_MQTT_CLIENT_ID"] = broker.client_id or defaults.MQTT_CLIENT_ID
    config["SIAGA_HOMEASSISTANT"] = read_homeassistant(root.section("homeassistant"), mqtt_root=broker.root)
    config["SIAGA_CAP"] = _cap(root.section("cap"))
    config["SIAGA_METRICS"] = read_metrics(root.section("metrics"), listener=False)  # /metrics, off by default
    config["SIAGA_INFLUXDB"] = _influxdb(root.section("influxdb")) if root.has("influxdb") else None  # off
    config["SIAGA_ENROLMENT"] = read_enrolment(root.section("enrolment"), broker)  # off unless enabled
    config["SIAGA_COMMISSIONING"] = read_commissioning(root.section("commissioning"))  # required unless turned off
    config["SIAGA_EVALUATION"] = read_evaluation(root.section("evaluation"))  # the defaults suit Konawe Selatan
    root.done()
    return config


def _tls(section: Section) -> dict[str, Any]:
    """``tls_cert_file`` and ``tls_key_file``: HTTPS served by the dashboard itself (no reverse proxy needed)."""
    cert, key = section.str("tls_cert_file", None), section.str("tls_key_file", None)
    if (cert is None) != (key is None):
        raise section.error(
            "tls_cert_file" if cert is None else "tls_key_file", "tls_cert_file and tls_key_file go together"
        )
    for name, value in (("tls_cert_file", cert), ("tls_key_file", key)):
        if value is not None and not Path(value).is_file():
            raise section.error(name, f"file {value!r} does not exist")
    return {"SIAGA_TLS_CERT_FILE": cert, "SIAGA_TLS_KEY_FILE": key}


def _check_database_url(section: Section, url: str) -> None:
    """A PostgreSQL URL libpq can read, without a password in it (that goes in a passfile)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url)
    except Exception as exc:  # noqa: BLE001 - libpq's own message says what is wrong
        reason = str(exc).strip().replace("\n", " ")
        raise section.error("database", f"not a PostgreSQL URL libpq can read: {reason}") from None
    if parts.get("password"):
        raise section.error("database", "no password in the URL: give it in a passfile (?passfile=..., mode 0600)")


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
        "SIAGA_PHOTOS_DIR": Path(section.str("photos_dir", str(defaults.photos_folder(data_dir)))),
        "SIAGA_TICKET_PREFIX": section.str("ticket_prefix", defaults.TICKET_PREFIX, pattern=r"^[A-Z]{2,8}$"),
        "SIAGA_PUBLIC_PHOTOS": section.bool("public_photos", False),
        "SIAGA_MAP_TILES": tiles,
        "SIAGA_MAP_TILE_ORIGIN": "/".join(tiles.split("/")[:3]) if tiles else None,
        "SIAGA_MAP_ATTRIBUTION": section.str("map_attribution", "", nonempty=False),
        "SIAGA_FORM_RATE": defaults.form_rate(
            section.int("form_posts_per_10_min", defaults.FORM_POSTS_PER_10_MIN, min=1, max=10_000)
        ),
        "SIAGA_API_RATE": defaults.api_rate(
            section.int("api_posts_per_min", defaults.API_POSTS_PER_MIN, min=1, max=100_000)
        ),
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
        anomaly_memory_s=section.float("anomaly_memory_s", 86400.0, min=60.0, max=30 * 86400.0),
        indication_resync_s=section.float("indication_resync_s", 60.0, min=1.0, max=3600.0),
    )
    section.done()
    return settings


_KINDS = tuple(kind.value for kind in Kind)

#: Who the board suggests sending, per alarm kind (operators may type any other).
DEFAULT_UNITS = {
    Kind.FIRE: ("Damkar Pos Andoolo", "Damkar Pos Konda", "Damkar Pos Tinanggea"),
    Kind.SAPA: ("UPTD PPA Konawe Selatan", "Unit PPA Polres Konawe Selatan", "Puskesmas terdekat"),
}


def _board(section: Section) -> dict[str, Any]:
    """``[board]``: the units an operator can dispatch, and how many screens one account may keep open."""
    units = {}
    for kind in _KINDS:
        value = section.raw(f"{kind}_units", list(DEFAULT_UNITS[kind]))
        if not isinstance(value, list) or not all(
            isinstance(item, str) and 0 < len(item.strip()) <= 100 for item in value
        ):
            raise section.error(f"{kind}_units", f"must be a list of unit names of 1-100 characters (got {value!r})")
        units[kind] = tuple(item.strip() for item in value)
    streams = section.int("streams_per_account", defaults.STREAMS_PER_ACCOUNT, min=1, max=10_000)
    section.done()
    return {"SIAGA_UNITS": units, "SIAGA_STREAMS_PER_ACCOUNT": streams}


_DEFAULT_STEPS = EscalationSettings().after_s


def _escalation(section: Section) -> EscalationSettings:
    """``[escalation]`` and its ``[[escalation.webhook]]`` receivers."""
    after_s = {kind: _steps(section, f"{kind}_after_s", _DEFAULT_STEPS[kind]) for kind in _KINDS}
    retry = RetryPolicy(
        base_s=section.float("retry_base_s", 5.0, min=0.05, max=3600.0),
        max_s=section.float("retry_max_s", 300.0, min=0.05, max=86400.0),
    )
    if retry.max_s < retry.base_s:
        raise section.error("retry_max_s", "must not be below retry_base_s")
    webhooks = tuple(_webhook(item) for item in section.sections("webhook"))
    names = [webhook.name for webhook in webhooks]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise section.error(f"webhook[{index + 1}].name", f"{name!r} is used twice")
    settings = EscalationSettings(
        after_s=after_s,
        webhooks=webhooks,
        retry=retry,
        check_interval_s=section.float("check_interval_s", 1.0, min=0.05, max=60.0),
        board_url=section.str("board_url", None, pattern=r"^https?://"),
    )
    section.done()
    return settings


def _steps(section: Section, key: str, default: tuple[float, ...]) -> tuple[float, ...]:
    value = section.raw(key, list(default))
    if not isinstance(value, list) or not all(
        isinstance(item, (int, float)) and not isinstance(item, bool) for item in value
    ):
        raise section.error(key, f"must be a list of seconds, e.g. [60, 180, 600] (got {value!r})")
    steps = tuple(float(item) for item in value)
    if any(not 1.0 <= item <= 7 * 86400 for item in steps):
        raise section.error(key, "each step must be between 1 and 604800 seconds")
    if list(steps) != sorted(set(steps)):
        raise section.error(key, "steps must rise (each later than the one before)")
    return steps


def _webhook(section: Section) -> Webhook:
    url = section.str("url", pattern=r"^https?://[^/\s]+")
    kinds = section.raw("kinds")
    if not isinstance(kinds, list) or not kinds or not set(kinds) <= set(_KINDS):
        # No default on purpose: a SAPA alarm goes only where someone chose to send it.
        raise section.error("kinds", f"must list the alarm kinds it receives: fire, sapa (got {kinds!r})")
    steps = section.raw("steps", None)
    if steps is not None and (
        not isinstance(steps, list)
        or not steps
        or not all(isinstance(step, int) and not isinstance(step, bool) and step >= 1 for step in steps)
    ):
        raise section.error("steps", f"must list step numbers, e.g. [1, 2] (got {steps!r})")
    secret_file = section.str("secret_file", None)
    secret = read_secret_file(section, "secret_file", secret_file) if secret_file else None
    if secret is not None and len(secret) < 16:
        raise section.error("secret_file", "the signing secret must be at least 16 characters")
    token_file = section.str("token_file", None)
    ca_file = section.str("ca_file", None)
    if ca_file is not None and not Path(ca_file).is_file():
        raise section.error("ca_file", f"file {ca_file!r} does not exist")
    webhook = Webhook(
        name=section.str("name", pattern=r"^[A-Za-z0-9_.-]{1,40}$"),
        url=url,
        kinds=frozenset(kinds),
        steps=None if steps is None else frozenset(steps),
        secret=secret.encode("utf-8") if secret else None,
        token=read_secret_file(section, "token_file", token_file) if token_file else None,
        ca_file=ca_file,
        timeout_s=section.float("timeout_s", 5.0, min=0.1, max=60.0),
        max_attempts=section.int("max_attempts", 20, min=1, max=1000),
    )
    section.done()
    return webhook


def _influxdb(section: Section) -> InfluxSettings | None:
    """``[influxdb]``: time series written to an InfluxDB 2 write API (``dashboard/timeseries/``); None with
    ``enabled = false`` (every key checked all the same, so that turning it on again holds no surprise)."""
    enabled = section.bool("enabled", True)
    url = section.str("url", pattern=r"^https?://[^/\s]+")
    token_file = section.str("token_file", None)
    sapa_detail = section.bool("sapa_detail", False)
    purpose = stated_purpose(section, "sapa_detail", sapa_detail)
    settings = InfluxSettings(
        url=url,
        org=section.str("org"),
        bucket=section.str("bucket"),
        token=read_secret_file(section, "token_file", token_file) if token_file else None,
        batch_size=section.int("batch_size", 5000, min=1, max=100_000),
        interval_s=section.float("interval_s", 1.0, min=0.05, max=600.0),
        timeout_s=section.float("timeout_s", 10.0, min=0.1, max=300.0),
        retry_max_s=section.float("retry_max_s", 60.0, min=1.0, max=3600.0),
        trouble_after_s=section.float("trouble_after_s", 300.0, min=1.0, max=7 * 86400.0),
        sapa_detail=sapa_detail,
        sapa_purpose=purpose,
    )
    section.done()
    return settings if enabled else None


def _cap(section: Section) -> CapSettings:
    """``[cap]``: the CAP 1.2 feed of fire alarms (``dashboard/cap/``), off unless ``enabled``."""
    enabled = section.bool("enabled", False)
    # CAP forbids spaces, commas, '<' and '&' in a sender: it is written into other messages' references.
    sender = section.str("sender", *(() if enabled else (None,)), pattern=r"^[^\s,<&]{1,200}$")
    access = section.str("access", "public", choices=ACCESS)
    token_file = section.str("token_file", None)
    if access == "token" and token_file is None:
        raise section.error("token_file", 'access = "token" needs token_file (a file holding the bearer token)')
    if access == "public" and token_file is not None:
        # Never let a reader of the file believe the feed is protected when it is not.
        raise section.error("token_file", 'is used only with access = "token"; the feed is public')
    token = read_bearer_token(section, "token_file", token_file)
    codes = section.raw("region_codes", {})
    if not isinstance(codes, dict) or not all(
        isinstance(code, str) and re.fullmatch(r"[0-9A-Za-z.\-]{1,40}", code) for code in codes.values()
    ):
        raise section.error("region_codes", f"must map kecamatan to codes of letters, digits, '.', '-' (got {codes!r})")
    settings = CapSettings(
        enabled=enabled,
        access=access,
        token=token,
        sender=sender or CapSettings.sender,
        sender_name=section.str("sender_name", None, pattern=r"^[^\x00-\x1f]{1,200}$"),
        keep_resolved_s=section.float("keep_resolved_s", 86400.0, min=60.0, max=30 * 86400.0),
        radius_km=section.float("radius_km", 0.5, min=0.01, max=100.0),
        region_codes=dict(codes),
        geocode_name=section.str("geocode_name", CapSettings.geocode_name, pattern=r"^[^\x00-\x1f<&]{1,60}$"),
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
