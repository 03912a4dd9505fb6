"""A planned gateway without I/O: its fields checked as the gateway will check them, and its gateway.toml.

Each check names the form field it is about and a catalogue key for the
message, so a page can say what is wrong next to the field. The rules are the
gateway's own (``gateway/config.py``): ids of the topics' pattern, BCM pins
0..27 each used once on the gateway, no buzzer on a SAPA button, ``hold_s``
0..30. The configuration names the files enrolment writes beside it under
``/etc/siaga`` and holds no secret.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from firmware_bridge.errors import SiagaError
from firmware_bridge.payloads import Kind
from firmware_bridge.tomlwrite import toml_text
from firmware_bridge.topics import is_valid_id

from .settings import EnrolmentSettings

#: Where the gateway package keeps its configuration; enrolment writes these files there.
ETC = "/etc/siaga"
CONFIG_NAME = "gateway.toml"
PASSWORD_NAME = "mqtt-password"  # noqa: S105 - a file name, not a password
BROKER_CA_NAME = "ca.crt"
DASHBOARD_CA_NAME = "dashboard-ca.crt"
DATA_DIR = "/var/lib/siaga"

BCM_MAX = 27
HOLD_MAX_S = 30.0
TEXT_MAX = 100
#: Broker account names that are not gateways (deploy/mosquitto/siaga.acl; gateway/config.py's RESERVED_IDS).
RESERVED_IDS = frozenset({"dashboard"})
_TEXT = re.compile(r"^[^\x00-\x1f\x7f]*$")
PIN_FIELDS = ("pin", "led_pin", "buzzer_pin")


@dataclass(frozen=True)
class FieldError:
    field: str
    #: A catalogue key (translations); ``values`` fill its placeholders.
    key: str
    values: Mapping[str, Any] = field(default_factory=dict)


class PlanError(SiagaError, ValueError):
    """A plan or a button that the gateway would refuse; ``errors`` say which field and why."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("; ".join(f"{error.field}: {error.key}" for error in errors))
        self.errors = list(errors)

    def by_field(self) -> dict[str, FieldError]:
        found: dict[str, FieldError] = {}
        for error in self.errors:
            found.setdefault(error.field, error)
        return found


@dataclass(frozen=True)
class Site:
    name: str
    kecamatan: str | None
    lat: float
    lon: float


@dataclass(frozen=True)
class Button:
    id: str
    kind: Kind
    pin: int
    label: str | None = None
    led_pin: int | None = None
    buzzer_pin: int | None = None
    hold_s: float = 0.0

    def pins(self) -> dict[str, int]:
        return {name: value for name in PIN_FIELDS if (value := getattr(self, name)) is not None}


class _Checker:
    def __init__(self, form: Mapping[str, str]) -> None:
        self.form = form
        self.errors: list[FieldError] = []

    def fail(self, name: str, key: str, **values: Any) -> None:
        self.errors.append(FieldError(name, key, values))

    def text(self, name: str, *, required: bool = True) -> str | None:
        value = (self.form.get(name) or "").strip()
        if not value:
            if required:
                self.fail(name, "enrol_err_required")
            return None
        if len(value) > TEXT_MAX or not _TEXT.match(value):
            self.fail(name, "enrol_err_text", max=TEXT_MAX)
            return None
        return value

    def identifier(self, name: str) -> str:
        value = (self.form.get(name) or "").strip()
        if not value:
            self.fail(name, "enrol_err_required")
        elif not is_valid_id(value):
            self.fail(name, "enrol_err_id")
        return value

    def number(self, name: str, low: float, high: float, *, required: bool = True) -> float | None:
        raw = (self.form.get(name) or "").strip().replace(",", ".")
        if not raw:
            if required:
                self.fail(name, "enrol_err_required")
            return None
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not low <= value <= high:
            self.fail(name, "enrol_err_number", min=_plain(low), max=_plain(high))
            return None
        return value

    def pin(self, name: str, *, required: bool = False) -> int | None:
        raw = (self.form.get(name) or "").strip()
        if not raw:
            if required:
                self.fail(name, "enrol_err_required")
            return None
        if not raw.isdigit() or int(raw) > BCM_MAX:
            self.fail(name, "enrol_err_pin", max=BCM_MAX)
            return None
        return int(raw)


def _plain(number: float) -> str:
    return str(int(number)) if number == int(number) else str(number)


def check_gateway_id(gw_id: str, *, reserved: Iterable[str] = (), clustered: bool = False) -> list[FieldError]:
    if not gw_id:
        return [FieldError("gateway_id", "enrol_err_required")]
    if not is_valid_id(gw_id):
        return [FieldError("gateway_id", "enrol_err_id")]
    if gw_id.lower() in RESERVED_IDS | {name.lower() for name in reserved}:
        return [FieldError("gateway_id", "enrol_err_reserved", {"value": gw_id})]
    if clustered and "." in gw_id:
        # nats-server 2.9 closes the connection on a topic with a '.' (gateway/config.py refuses it too).
        return [FieldError("gateway_id", "enrol_err_dot_cluster")]
    return []


def read_site(form: Mapping[str, str]) -> Site:
    """The site fields of a form; raises PlanError naming every wrong field."""
    check = _Checker(form)
    name = check.text("site_name")
    kecamatan = check.text("kecamatan", required=False)
    lat = check.number("lat", -90.0, 90.0)
    lon = check.number("lon", -180.0, 180.0)
    if check.errors:
        raise PlanError(check.errors)
    assert name is not None and lat is not None and lon is not None
    return Site(name=name, kecamatan=kecamatan, lat=lat, lon=lon)


def read_button(form: Mapping[str, str], others: Sequence[Button] = ()) -> Button:
    """A button's fields, checked against the gateway's other buttons; raises PlanError naming every wrong field."""
    check = _Checker(form)
    button_id = check.identifier("button_id")
    if button_id and any(other.id == button_id for other in others):
        check.fail("button_id", "enrol_err_exists", value=button_id)
    kind_text = (form.get("kind") or "").strip()
    kind = Kind(kind_text) if kind_text in {k.value for k in Kind} else None
    if kind is None:
        check.fail("kind", "enrol_err_kind")
    label = check.text("label", required=False)
    pins = {name: check.pin(name, required=name == "pin") for name in PIN_FIELDS}
    if kind is Kind.SAPA and pins["buzzer_pin"] is not None:
        check.fail("buzzer_pin", "enrol_err_buzzer_sapa")
    _check_pins(check, pins, others)
    hold = check.number("hold_s", 0.0, HOLD_MAX_S, required=False)
    if check.errors:
        raise PlanError(check.errors)
    assert kind is not None and pins["pin"] is not None
    return Button(button_id, kind, pins["pin"], label, pins["led_pin"], pins["buzzer_pin"], hold or 0.0)


def _check_pins(check: _Checker, pins: Mapping[str, int | None], others: Sequence[Button]) -> None:
    taken = {pin: f"{other.id} ({name})" for other in others for name, pin in other.pins().items()}
    for name, pin in pins.items():
        if pin is None:
            continue
        if pin in taken:
            check.fail(name, "enrol_err_pin_taken", pin=pin, by=taken[pin])
        taken[pin] = name


# -- the gateway's configuration -------------------------------------------------------------------


def gateway_document(
    gw_id: str, site: Site, buttons: Sequence[Button], settings: EnrolmentSettings, *, etc: str = ETC
) -> dict[str, Any]:
    """gateway.toml as data: the plan, the brokers and the paths of the files enrolment writes in ``etc``."""
    mqtt: dict[str, Any] = {
        "brokers": list(settings.brokers),
        "username": gw_id,
        "password_file": f"{etc}/{PASSWORD_NAME}",
    }
    if settings.uses_tls:
        mqtt["tls"] = {"ca_file": f"{etc}/{BROKER_CA_NAME}"}
    dashboard: dict[str, Any] = {"url": settings.public_url}
    if settings.dashboard_ca_file is not None:
        dashboard["ca_file"] = f"{etc}/{DASHBOARD_CA_NAME}"
    return {
        "gateway": {"id": gw_id, "data_dir": DATA_DIR},
        "mqtt": mqtt,
        "dashboard": dashboard,
        "button": [_button_table(button, site) for button in buttons] or None,
    }


def _button_table(button: Button, site: Site) -> dict[str, Any]:
    return {
        "id": button.id,
        "kind": button.kind.value,
        "label": button.label,
        "pin": button.pin,
        "led_pin": button.led_pin,
        "buzzer_pin": button.buzzer_pin,
        "hold_s": button.hold_s or None,
        "site": {"name": site.name, "lat": site.lat, "lon": site.lon, "kecamatan": site.kecamatan},
    }


def gateway_toml(gw_id: str, site: Site, buttons: Sequence[Button], settings: EnrolmentSettings) -> str:
    header = (
        f"# Siaga gateway {gw_id}: written by the dashboard's enrolment ({settings.public_url}).\n"
        "# The MQTT password and the CA files are beside this file; docs/configuration.md has every key.\n"
    )
    return header + toml_text(gateway_document(gw_id, site, buttons, settings))
