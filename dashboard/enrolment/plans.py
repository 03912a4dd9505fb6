"""A planned gateway without I/O: its fields checked as the gateway will check them, and its gateway.toml.

Each check names the form field it is about and a catalogue key for the
message, so a page can say what is wrong next to the field. The rules are the
gateway's own (``gateway/config.py``): ids of the topics' pattern, BCM pins
0..27 each used once on the gateway, no buzzer on a SAPA button, ``hold_s``
0..30; a LoRa module of a known kind with the gateway's radio ranges, and
LoRa buttons whose node ids are unique. The configuration names the files
enrolment writes beside it under ``/etc/siaga`` and holds no secret: the
nodes' keys are made on the gateway itself (``siaga-gateway provision-node``).
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
KEYS_NAME = "lora-keys.toml"
DATA_DIR = "/var/lib/siaga"

BCM_MAX = 27
HOLD_MAX_S = 30.0
TEXT_MAX = 100
#: Broker account names that are not gateways (deploy/mosquitto/siaga.acl; gateway/config.py's RESERVED_IDS).
RESERVED_IDS = frozenset({"dashboard"})
_TEXT = re.compile(r"^[^\x00-\x1f\x7f]*$")
PIN_FIELDS = ("pin", "led_pin", "buzzer_pin")
#: The gateway's LoRa modules (gateway/config.py MODULES, RYLR_MODULES).
LORA_MODULES = ("rylr896", "rylr998", "e32", "e22")
RYLR_MODULES = ("rylr896", "rylr998")
NODE_MAX = 0xFFFFFFFF
#: The planned port when the administrator names none: the first USB-serial adapter. The technician may
#: replace it by the adapter's stable /dev/serial/by-id link (or /dev/serial0) before provisioning the nodes.
DEFAULT_PORT = "/dev/ttyUSB0"
_PORT = re.compile(r"^(/dev/[A-Za-z0-9._:/+-]+|[a-z][a-z0-9+.-]*://\S*)$")
_PARAMETER = re.compile(r"^\d{1,2},\d,\d,\d{1,2}$")


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


@dataclass(frozen=True)
class LoraModule:
    """The gateway's ``[lora]`` table without its keys file; defaults are the gateway's own."""

    module: str
    port: str = DEFAULT_PORT
    address: int = 1
    network_id: int = 18
    band: int = 923_000_000
    parameter: str = "9,7,1,12"
    mode: str = "transparent"
    channel: int = 23
    e32_address: int = 1

    @property
    def rylr(self) -> bool:
        return self.module in RYLR_MODULES


@dataclass(frozen=True)
class LoraButton:
    id: str
    kind: Kind
    node: int
    label: str | None = None


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

    def integer(self, name: str, low: int, high: int, default: int) -> int | None:
        raw = (self.form.get(name) or "").strip()
        if not raw:
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            self.fail(name, "enrol_err_integer", min=low, max=high)
            return None
        return int(raw)

    def choice(self, name: str, choices: Sequence[str], key: str, default: str | None = None) -> str | None:
        value = (self.form.get(name) or "").strip() or default
        if value not in choices:
            self.fail(name, key, choices=", ".join(choices))
            return None
        return value

    def kind(self) -> Kind | None:
        kind_text = (self.form.get("kind") or "").strip()
        if kind_text in {k.value for k in Kind}:
            return Kind(kind_text)
        self.fail("kind", "enrol_err_kind")
        return None

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


def read_button(
    form: Mapping[str, str], others: Sequence[Button] = (), lora_buttons: Sequence[LoraButton] = ()
) -> Button:
    """A button's fields, checked against the gateway's other buttons; raises PlanError naming every wrong field."""
    check = _Checker(form)
    button_id = check.identifier("button_id")
    if button_id and any(other.id == button_id for other in (*others, *lora_buttons)):
        check.fail("button_id", "enrol_err_exists", value=button_id)
    kind = check.kind()
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


def read_lora(form: Mapping[str, str]) -> LoraModule:
    """The LoRa module's fields (``lora_*``), in the gateway's ranges; raises PlanError naming every wrong field."""
    check = _Checker(form)
    module = check.choice("lora_module", LORA_MODULES, "enrol_err_lora_module")
    port = (form.get("lora_port") or "").strip() or DEFAULT_PORT
    if len(port) > TEXT_MAX or not _PORT.match(port):
        check.fail("lora_port", "enrol_err_lora_port")
    address = check.integer("lora_address", 0, 65535, 1)
    network_id = check.integer("lora_network_id", 0, 18, 18)
    if network_id is not None and not (3 <= network_id <= 15 or network_id == 18):
        check.fail("lora_network_id", "enrol_err_network_id")
    band = check.integer("lora_band", 862_000_000, 1_020_000_000, 923_000_000)
    parameter = (form.get("lora_parameter") or "").strip() or "9,7,1,12"
    if not _PARAMETER.match(parameter):
        check.fail("lora_parameter", "enrol_err_lora_parameter")
    mode = check.choice("lora_mode", ("transparent", "fixed"), "enrol_err_lora_mode", "transparent")
    channel = check.integer("lora_channel", 0, 255, 23)
    e32_address = check.integer("lora_e32_address", 0, 0xFFFF, 1)
    if check.errors:
        raise PlanError(check.errors)
    assert module is not None and mode is not None
    assert address is not None and network_id is not None and band is not None
    assert channel is not None and e32_address is not None
    return LoraModule(module, port, address, network_id, band, parameter, mode, channel, e32_address)


def read_lora_button(
    form: Mapping[str, str], wired: Sequence[Button] = (), others: Sequence[LoraButton] = ()
) -> LoraButton:
    """A LoRa button's fields, checked against the gateway's buttons; raises PlanError naming every wrong field."""
    check = _Checker(form)
    button_id = check.identifier("button_id")
    if button_id and any(other.id == button_id for other in (*wired, *others)):
        check.fail("button_id", "enrol_err_exists", value=button_id)
    kind = check.kind()
    label = check.text("label", required=False)
    raw = (form.get("node") or "").strip()
    node = int(raw) if raw.isdigit() and 1 <= int(raw) <= NODE_MAX else None
    if not raw:
        check.fail("node", "enrol_err_required")
    elif node is None:
        check.fail("node", "enrol_err_node", max=NODE_MAX)
    elif (holder := next((other.id for other in others if other.node == node), None)) is not None:
        check.fail("node", "enrol_err_node_taken", value=node, by=holder)
    if check.errors:
        raise PlanError(check.errors)
    assert kind is not None and node is not None
    return LoraButton(button_id, kind, node, label)


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
    gw_id: str,
    site: Site,
    buttons: Sequence[Button],
    settings: EnrolmentSettings,
    *,
    lora: LoraModule | None = None,
    lora_buttons: Sequence[LoraButton] = (),
    etc: str = ETC,
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
        "lora": _lora_table(lora, etc) if lora is not None and lora_buttons else None,
        "lora_button": [_lora_button_table(button, site) for button in lora_buttons] or None,
    }


def _lora_table(lora: LoraModule, etc: str) -> dict[str, Any]:
    table: dict[str, Any] = {"module": lora.module, "port": lora.port, "keys_file": f"{etc}/{KEYS_NAME}"}
    if lora.rylr:
        radio = {"address": lora.address, "network_id": lora.network_id, "band": lora.band, "parameter": lora.parameter}
    else:
        radio = {"mode": lora.mode, "channel": lora.channel, "e32_address": lora.e32_address}
    return {**table, **radio}


def _lora_button_table(button: LoraButton, site: Site) -> dict[str, Any]:
    return {
        "id": button.id,
        "kind": button.kind.value,
        "node": button.node,
        "label": button.label,
        "site": {"name": site.name, "lat": site.lat, "lon": site.lon, "kecamatan": site.kecamatan},
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


def gateway_toml(
    gw_id: str,
    site: Site,
    buttons: Sequence[Button],
    settings: EnrolmentSettings,
    *,
    lora: LoraModule | None = None,
    lora_buttons: Sequence[LoraButton] = (),
) -> str:
    header = (
        f"# Siaga gateway {gw_id}: written by the dashboard's enrolment ({settings.public_url}).\n"
        "# The MQTT password and the CA files are beside this file; docs/configuration.md has every key.\n"
    )
    if lora_buttons:
        header += "# The LoRa nodes' keys are made on the gateway: siaga-gateway provision-node (docs/field.md).\n"
    document = gateway_document(gw_id, site, buttons, settings, lora=lora, lora_buttons=lora_buttons)
    return header + toml_text(document)
