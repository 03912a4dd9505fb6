"""``[enrolment]`` of dashboard.toml: whether gateways enrol here, the dynsec administrator, what gateways get."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from firmware_bridge.broker import BrokerSettings, read_secret_file
from firmware_bridge.settings import Section

#: Mosquitto's ``mosquitto_ctrl dynsec init`` administrator, as docs/deployment.md names it.
DEFAULT_ADMIN = "siaga-admin"
DEFAULT_CODE_TTL_H = 24.0
KEYS = (
    "admin_username",
    "admin_password_file",
    "brokers",
    "broker_ca_file",
    "public_url",
    "dashboard_ca_file",
    "code_ttl_h",
    "broker_timeout_s",
)
_BROKER_URL = r"^mqtts?://[^\s/@]+(:\d{1,5})?/?$"
_DASHBOARD_URL = r"^https?://[^\s/@]+(:\d{1,5})?(/\S*)?$"


@dataclass(frozen=True)
class EnrolmentSettings:
    enabled: bool = False
    #: How the dashboard reaches the dynsec plugin: its own [mqtt] broker, as the plugin's administrator.
    admin: BrokerSettings | None = None
    #: The broker URLs written into each gateway's [mqtt] brokers (mqtt:// or mqtts://, one scheme).
    brokers: tuple[str, ...] = ()
    #: The CA (PEM) that signed the broker's certificate, handed to gateways with their configuration.
    broker_ca_file: Path | None = None
    #: The dashboard's address as gateways reach it, written into their [dashboard] url.
    public_url: str = ""
    #: The CA that signed the dashboard's HTTPS certificate, when it is not one a Pi trusts already.
    dashboard_ca_file: Path | None = None
    code_ttl_h: float = DEFAULT_CODE_TTL_H
    #: How long one dynsec command may take before enrolment says the broker did not answer.
    broker_timeout_s: float = 5.0

    @property
    def uses_tls(self) -> bool:
        return any(url.startswith("mqtts://") for url in self.brokers)


def read_enrolment(section: Section, broker: BrokerSettings) -> EnrolmentSettings:
    """Read ``[enrolment]``; off (and nothing else asked for) unless ``enabled = true``."""
    enabled = section.bool("enabled", False)
    if not enabled:
        for key in KEYS:
            section.raw(key, None)  # they may stay in the file while enrolment is off; a misspelt one may not
        section.done()
        return EnrolmentSettings()
    username = section.str("admin_username", DEFAULT_ADMIN)
    password = read_secret_file(section, "admin_password_file", section.str("admin_password_file"))
    brokers = _brokers(section)
    broker_ca = _existing(section, "broker_ca_file")
    if any(url.startswith("mqtts://") for url in brokers) and broker_ca is None:
        raise section.error("broker_ca_file", "the brokers are mqtts://: give the CA file gateways must trust")
    public_url = section.str("public_url", pattern=_DASHBOARD_URL).rstrip("/")
    if public_url.startswith("http://") and not _loopback(public_url):
        raise section.error("public_url", f"{public_url!r} must be https:// (codes and passwords cross it)")
    settings = EnrolmentSettings(
        enabled=True,
        admin=dataclasses.replace(broker, username=username, password=password, client_id=None),
        brokers=brokers,
        broker_ca_file=broker_ca,
        public_url=public_url,
        dashboard_ca_file=_existing(section, "dashboard_ca_file"),
        code_ttl_h=section.float("code_ttl_h", DEFAULT_CODE_TTL_H, min=0.1, max=24.0 * 30),
        broker_timeout_s=section.float("broker_timeout_s", 5.0, min=0.5, max=60.0),
    )
    section.done()
    return settings


def _brokers(section: Section) -> tuple[str, ...]:
    value = section.raw("brokers")
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise section.error("brokers", 'a list of the broker URLs gateways use, e.g. ["mqtts://broker.example:8883"]')
    for url in value:
        if not re.match(_BROKER_URL, url):
            raise section.error("brokers", f"{url!r} is not mqtt://host:port or mqtts://host:port")
    if len({url.split("://")[0] for url in value}) > 1:
        raise section.error("brokers", "mixes mqtt:// and mqtts://; every member must use the same")
    return tuple(value)


def _existing(section: Section, key: str) -> Path | None:
    value = section.str(key, None)
    if value is None:
        return None
    path = Path(value)
    if not path.is_file():
        raise section.error(key, f"file {value!r} does not exist")
    return path


def _loopback(url: str) -> bool:
    host = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "127.0.0.1", "::1")
