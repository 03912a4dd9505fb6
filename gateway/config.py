"""The gateway's configuration (``gateway.toml``), read and validated once at start.

See ``docs/configuration.md`` for every key. A wrong file stops the gateway
with a :class:`ConfigError` naming the file and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from gpiozero.exc import PinInvalidPin
from gpiozero.pins.pi import PiBoardInfo

from firmware_bridge.broker import BrokerSettings, read_broker_settings
from firmware_bridge.errors import ConfigError
from firmware_bridge.metrics import MetricsSettings, read_metrics
from firmware_bridge.payloads import Kind, Site
from firmware_bridge.settings import Section, read_toml
from firmware_bridge.topics import ID_PATTERN

#: The 40-pin header, the same on every Raspberry Pi since the B+ (a 3B's
#: revision stands for them all): gpiozero's own pin names are parsed against it
#: ("GPIO17", "BCM17", "BOARD11", "J8:11", 17), and each becomes its BCM number so
#: that the same pin named two ways is caught as a duplicate.
_HEADER = PiBoardInfo.from_revision(0xA02082)
_BCM_MAX = 27

PIN_FACTORIES = ("lgpio", "rpigpio", "pigpio", "native", "mock")

#: Where the daemon answers ``siaga-gateway commission`` (``gateway/status.py``); systemd's
#: ``RuntimeDirectory=siaga`` makes the folder, owned by the service's user.
DEFAULT_STATUS_SOCKET = "/run/siaga/gateway.sock"


@dataclass(frozen=True)
class LoopConfig:
    """A supervised loop (``supervision = "eol"``): the button's cable read on an MCP3008 channel (gateway/loops.py)."""

    channel: int
    #: The SPI chip select the ADC is on: 0 (CE0, GPIO8) or 1 (CE1, GPIO7), 8 loops each.
    device: int = 0
    #: From 3.3 V to the ADC input, in the gateway's box.
    pull_ohms: float = 4700.0
    #: Across the far end of the cable, inside the button's box.
    eol_ohms: float = 4700.0
    #: In series with the button's contact: pressed, it is in parallel with the end-of-line resistor.
    alarm_ohms: float = 1000.0


#: The SPI bus's clock, MOSI and MISO, and each chip select: taken when any loop is supervised.
SPI_PINS = {"SCLK": 11, "MOSI": 10, "MISO": 9}
SPI_SELECT_PINS = {0: 8, 1: 7}


@dataclass(frozen=True)
class ButtonConfig:
    id: str
    kind: Kind
    #: The input pin; None for a supervised loop, read through the ADC instead (``loop``).
    pin: int | None
    site: Site
    label: str | None = None
    #: Seconds the button must be held before it counts (0: a press counts at once).
    hold_s: float = 0.0
    #: Software debounce in seconds (None: no debounce).
    bounce_s: float | None = 0.05
    #: True: the button connects the pin to ground (internal pull-up).
    pull_up: bool = True
    led_pin: int | None = None
    #: A local sounder; only fire buttons may have one (SAPA stays silent).
    buzzer_pin: int | None = None
    key_path: str = ""
    #: ``supervision = "eol"``: the cable is supervised through the ADC (``pin`` is then None).
    loop: LoopConfig | None = None


MODULES = ("rylr896", "rylr998", "e32", "e22")
RYLR_MODULES = ("rylr896", "rylr998")


@dataclass(frozen=True)
class LoraButtonConfig:
    """A LoRa button: a node that reaches this gateway by radio."""

    id: str
    node: int
    kind: Kind
    site: Site
    label: str | None = None
    key_path: str = ""


@dataclass(frozen=True)
class LoraConfig:
    """The gateway's LoRa module on a serial port, and the keys of its nodes."""

    port: str
    module: str
    baudrate: int
    keys_file: Path
    #: node id -> 16-byte key
    keys: dict[int, bytes]
    reopen_s: float = 2.0
    # REYAX RYLR896/RYLR998
    address: int = 1
    network_id: int = 18
    band: int = 923_000_000
    parameter: str = "9,7,1,12"
    # Ebyte E32/E22
    mode: str = "transparent"
    channel: int = 23
    #: this gateway's E32 module address (nodes in fixed mode send to it)
    e32_address: int = 1
    m0_pin: int | None = None
    m1_pin: int | None = None

    @property
    def is_rylr(self) -> bool:
        return self.module in RYLR_MODULES


@dataclass(frozen=True)
class DashboardLink:
    """``[dashboard]``: where ``siaga-gateway commission`` reaches the dashboard (enrolment writes it)."""

    url: str
    #: The CA that signed the dashboard's HTTPS certificate, when it is not one the system trusts.
    ca_file: Path | None = None


@dataclass(frozen=True)
class GatewayConfig:
    id: str
    outbox_path: Path
    broker: BrokerSettings
    buttons: tuple[ButtonConfig, ...]
    pin_factory: str | None = None
    health_interval_s: float = 30.0
    #: How long to wait for the dashboard's receipt before sending an event again.
    receipt_timeout_s: float = 15.0
    file: str = ""
    lora: LoraConfig | None = None
    lora_buttons: tuple[LoraButtonConfig, ...] = ()
    #: ``[metrics]``: the optional Prometheus listener (``gateway/metrics.py``)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    #: The local socket answering what the gateway shows (None: not served)
    status_socket: Path | None = None
    #: ``[dashboard]``, for commissioning; the daemon itself never talks HTTP
    dashboard: DashboardLink | None = None

    def button(self, button_id: str) -> ButtonConfig:
        for button in self.buttons:
            if button.id == button_id:
                return button
        raise KeyError(button_id)

    @property
    def all_button_ids(self) -> list[str]:
        return [b.id for b in self.buttons] + [b.id for b in self.lora_buttons]


def load_config(path: str | Path) -> GatewayConfig:
    """Read ``gateway.toml``; raises :class:`ConfigError` naming the file and key."""
    return parse_config(read_toml(path))


#: Broker account names that are not gateways (deploy/mosquitto/siaga.acl).
RESERVED_IDS = frozenset({"dashboard"})


def parse_config(root: Section) -> GatewayConfig:
    gateway = root.section("gateway", required=True)
    gw_id = gateway.str("id", pattern=ID_PATTERN)
    if gw_id.lower() in RESERVED_IDS:
        # A gateway logs in with its id as MQTT username: this one would be the dashboard's account.
        raise gateway.error("id", f"{gw_id!r} is reserved for the broker's other accounts")
    data_dir = Path(gateway.str("data_dir", "/var/lib/siaga"))
    outbox_path = Path(gateway.str("outbox", str(data_dir / "outbox.sqlite")))
    pin_factory = gateway.str("pin_factory", None, choices=PIN_FACTORIES)
    health_interval = gateway.float("health_interval_s", 30.0, min=1.0, max=3600.0)
    receipt_timeout = gateway.float("receipt_timeout_s", 15.0, min=0.2, max=3600.0)
    status_socket = gateway.str("status_socket", DEFAULT_STATUS_SOCKET, nonempty=False)  # "": none
    gateway.done()

    mqtt_section = root.section("mqtt", required=True)
    broker = read_broker_settings(mqtt_section)

    if len(broker.brokers) > 1 and "." in gw_id:
        # nats-server 2.9 closes the connection on a PUBLISH whose topic holds a '.', and paho resends it on
        # each reconnect: not one press would get through, so this is refused here rather than found on site.
        raise gateway.error(
            "id",
            f"{gw_id!r} contains '.', which a clustered broker (nats-server 2.9) refuses in topics; give the "
            "gateway an id without '.', or one broker (host and port) instead of [mqtt] brokers",
        )
    if broker.username is not None and broker.username != gw_id:
        # Under MQTT 3.1.1 a broker that refuses a topic by ACL still answers
        # PUBACK and drops the message: the press would leave the outbox and vanish.
        raise mqtt_section.error(
            "username",
            f"must be the gateway id {gw_id!r} (got {broker.username!r}): the broker's ACL "
            "(deploy/mosquitto/siaga.acl) gives each gateway the topics named by its username",
        )
    buttons = tuple(_parse_button(section) for section in root.sections("button"))
    _check_unique(root, buttons)
    lora_section = root.section("lora")
    lora_buttons = tuple(_parse_lora_button(section) for section in root.sections("lora_button"))
    lora = _parse_lora(lora_section, lora_buttons) if lora_section.data else None
    if lora_buttons and lora is None:
        raise root.error("lora", "LoRa buttons need a [lora] table (the module's port and the keys file)")
    if not buttons and not lora_buttons:
        raise root.error("button", "missing: a gateway needs at least one [[button]] or [[lora_button]]")
    _check_unique_lora(root, buttons, lora_buttons)
    metrics = read_metrics(root.section("metrics"), listener=True)
    dashboard = _parse_dashboard(root.section("dashboard"))
    root.done()
    return GatewayConfig(
        id=gw_id,
        outbox_path=outbox_path,
        broker=broker,
        buttons=buttons,
        pin_factory=pin_factory,
        health_interval_s=health_interval,
        receipt_timeout_s=receipt_timeout,
        file=root.file,
        lora=lora,
        lora_buttons=lora_buttons,
        metrics=metrics,
        status_socket=Path(status_socket) if status_socket else None,
        dashboard=dashboard,
    )


def _parse_dashboard(section: Section) -> DashboardLink | None:
    if not section.data:
        return None
    url = section.str("url", pattern=r"^https?://[^\s/]+(/\S*)?$")
    if url.startswith("http://") and not _is_loopback_url(url):
        # The technician's password and the commissioning record cross it: only HTTPS off this machine.
        raise section.error("url", f"{url!r} must be https:// (plain http only to this machine)")
    ca_file = section.str("ca_file", None)
    section.done()
    return DashboardLink(url=url.rstrip("/"), ca_file=Path(ca_file) if ca_file else None)


def _is_loopback_url(url: str) -> bool:
    host = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "127.0.0.1", "::1")


def _parse_site(section: Section) -> Site:
    site_section = section.section("site", required=True)
    site = Site(
        name=site_section.str("name"),
        lat=site_section.float("lat", min=-90.0, max=90.0),
        lon=site_section.float("lon", min=-180.0, max=180.0),
        kecamatan=site_section.str("kecamatan", None, pattern=r"^[^\x00-\x1f]{1,100}$"),
    )
    site_section.done()
    return site


def _parse_lora_button(section: Section) -> LoraButtonConfig:
    button = LoraButtonConfig(
        id=section.str("id", pattern=ID_PATTERN),
        node=section.int("node", min=1, max=0xFFFFFFFF),
        kind=Kind(section.str("kind", choices=[k.value for k in Kind])),
        site=_parse_site(section),
        label=section.str("label", None),
        key_path=section.path,
    )
    section.done()
    return button


def _parse_lora(section: Section, buttons: tuple[LoraButtonConfig, ...]) -> LoraConfig:
    module = section.str("module", choices=MODULES)
    keys_file = Path(section.str("keys_file"))
    keys = read_keys(keys_file, section)
    for button in buttons:
        if button.node not in keys:
            raise section.error(
                "keys_file",
                f"{str(keys_file)!r} has no key for node {button.node} ({button.key_path}, {button.id}); "
                "provision it with: siaga-gateway --config ... provision-node " + str(button.node),
            )
    rylr = module in RYLR_MODULES
    config = LoraConfig(
        port=section.str("port"),
        module=module,
        baudrate=section.int("baudrate", 115200 if rylr else 9600, min=1200, max=921600),
        keys_file=keys_file,
        keys=keys,
        reopen_s=section.float("reopen_s", 2.0, min=0.1, max=60.0),
        address=section.int("address", 1, min=0, max=65535),
        network_id=_network_id(section),
        band=section.int("band", 923_000_000, min=862_000_000, max=1_020_000_000),
        parameter=section.str("parameter", "9,7,1,12", pattern=r"^\d{1,2},\d,\d,\d{1,2}$"),
        mode=section.str("mode", "transparent", choices=("transparent", "fixed")),
        channel=section.int("channel", 23, min=0, max=255),
        e32_address=section.int("e32_address", 1, min=0, max=0xFFFF),
        m0_pin=parse_pin(section, "m0_pin"),
        m1_pin=parse_pin(section, "m1_pin"),
    )
    section.done()
    return config


def _network_id(section: Section) -> int:
    value = section.int("network_id", 18, min=0, max=18)
    if not (3 <= value <= 15 or value == 18):
        raise section.error("network_id", f"an RYLR network id is 3..15 or 18 (got {value})")
    return value


def read_keys(path: Path, section: Section | None = None) -> dict[int, bytes]:
    """The node keys file: TOML with a [keys] table of "node id" = "32 hex digits"."""

    def fail(message: str) -> ConfigError:
        if section is not None:
            return section.error("keys_file", message)
        return ConfigError(f"{path}: {message}", file=str(path))

    if not path.exists():
        raise fail(f"keys file {str(path)!r} does not exist (siaga-gateway ... provision-node creates it)")
    try:
        table = read_toml(path).section("keys").data
    except ConfigError as exc:
        raise fail(str(exc)) from None
    keys: dict[int, bytes] = {}
    for name, value in table.items():
        if not name.isdigit() or not 1 <= int(name) <= 0xFFFFFFFF:
            raise fail(f"{str(path)!r}: node id {name!r} is not a number from 1 to 4294967295")
        try:
            key = bytes.fromhex(value) if isinstance(value, str) else b""
        except ValueError:
            key = b""
        if len(key) != 16:
            raise fail(f"{str(path)!r}: the key of node {name} is not 32 hex digits (16 bytes)")
        keys[int(name)] = key
    return keys


def _check_unique_lora(
    root: Section, buttons: tuple[ButtonConfig, ...], lora_buttons: tuple[LoraButtonConfig, ...]
) -> None:
    ids = {button.id: button.key_path for button in buttons}
    nodes: dict[int, str] = {}
    for button in lora_buttons:
        for seen, value, what in ((ids, button.id, "button id"), (nodes, button.node, "node")):
            if value in seen:
                key = f"{button.key_path}.{'id' if what == 'button id' else 'node'}"
                raise ConfigError(
                    f"{root.file}: key '{key}': duplicate {what} {value!r} (also at {seen[value]})",
                    file=root.file,
                    key=key,
                )
            seen[value] = button.key_path  # type: ignore[index]


def _parse_button(section: Section) -> ButtonConfig:
    kind = Kind(section.str("kind", choices=[k.value for k in Kind]))
    site = _parse_site(section)
    loop = _parse_loop(section)
    if loop is not None:
        for key in ("pin", "pull_up", "bounce_s"):
            if section.has(key):
                raise section.error(key, 'a supervised loop (supervision = "eol") is read through the ADC: remove it')
    bounce = section.float("bounce_s", 0.05, min=0.0, max=1.0)
    button = ButtonConfig(
        id=section.str("id", pattern=ID_PATTERN),
        kind=kind,
        pin=None if loop is not None else parse_pin(section, "pin", required=True),
        site=site,
        label=section.str("label", None),
        hold_s=section.float("hold_s", 0.0, min=0.0, max=30.0),
        bounce_s=bounce or None,
        pull_up=section.bool("pull_up", True),
        led_pin=parse_pin(section, "led_pin"),
        buzzer_pin=parse_pin(section, "buzzer_pin"),
        key_path=section.path,
        loop=loop,
    )
    if button.buzzer_pin is not None and kind is Kind.SAPA:
        raise section.error("buzzer_pin", "a SAPA button must stay silent: it cannot have a buzzer")
    section.done()
    return button


def _parse_loop(section: Section) -> LoopConfig | None:
    supervision = section.str("supervision", "none", choices=("none", "eol"))
    if supervision == "none":
        for key in ("adc_channel", "adc_device", "pull_ohms", "eol_ohms", "alarm_ohms"):
            if section.has(key):
                raise section.error(key, 'only for a supervised loop: add supervision = "eol"')
        return None
    loop = LoopConfig(
        channel=section.int("adc_channel", min=0, max=7),
        device=section.int("adc_device", 0, min=0, max=1),
        pull_ohms=section.float("pull_ohms", 4700.0, min=100.0, max=1_000_000.0),
        eol_ohms=section.float("eol_ohms", 4700.0, min=100.0, max=1_000_000.0),
        alarm_ohms=section.float("alarm_ohms", 1000.0, min=10.0, max=1_000_000.0),
    )
    from .loops import check_levels  # here, not at the top: loops.py imports this module's types

    problem = check_levels(loop)
    if problem is not None:
        raise section.error("alarm_ohms", problem)
    return loop


#: "GPIO04", "BOARD07", "J8:07": leading zeros that gpiozero's names do not take, but configurations have used.
_PADDED = re.compile(r"^(GPIO|BCM|BOARD|WPI|J8:)0+(\d)")


def parse_pin(section: Section, key: str, *, required: bool = False) -> int | None:
    """A GPIO pin in any of gpiozero's pin names, as its BCM number; ``None`` if absent and optional."""
    if not section.has(key):
        if required:
            raise section.error(key, "missing (this key is required)")
        section.raw(key, None)
        return None
    value = section.raw(key)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise section.error(key, f"not a pin: {value!r}")
    name = _PADDED.sub(r"\1\2", value.strip().upper()) if isinstance(value, str) else value
    try:
        return int(_HEADER.to_gpio(name).removeprefix("GPIO"))
    except PinInvalidPin:
        raise section.error(key, _why_not_a_gpio(value, name)) from None


def _why_not_a_gpio(value: int | str, name: int | str) -> str:
    if isinstance(value, int):
        return f"BCM pin {value} does not exist (0..{_BCM_MAX})"
    for _header, info in _HEADER.find_pin(name):
        return f"header pin {value!r} is {info.name}: not a GPIO (power or ground)"
    return f"bad pin {value!r}: use a BCM number like 17, 'GPIO17' or 'BOARD11'"


def _check_unique(root: Section, buttons: tuple[ButtonConfig, ...]) -> None:
    ids: dict[str, str] = {}
    pins: dict[int, str] = {}
    for button in buttons:
        if button.id in ids:
            raise ConfigError(
                f"{root.file}: key '{button.key_path}.id': duplicate button id {button.id!r} "
                f"(also at {ids[button.id]})",
                file=root.file,
                key=f"{button.key_path}.id",
            )
        ids[button.id] = button.key_path
        for key in ("pin", "led_pin", "buzzer_pin"):
            pin = getattr(button, key)
            if pin is None:
                continue
            here = f"{button.key_path}.{key}"
            if pin in pins:
                raise ConfigError(
                    f"{root.file}: key '{here}': pin {pin!r} is already used by {pins[pin]}",
                    file=root.file,
                    key=here,
                )
            pins[pin] = here
    _check_loops(root, buttons, pins)


def _check_loops(root: Section, buttons: tuple[ButtonConfig, ...], pins: dict[int, str]) -> None:
    """Each loop on its own ADC channel, and no pin on the SPI bus the ADC needs."""
    channels: dict[tuple[int, int], str] = {}
    for button in buttons:
        if button.loop is None:
            continue
        here = f"{button.key_path}.adc_channel"
        where = (button.loop.device, button.loop.channel)
        if where in channels:
            raise ConfigError(
                f"{root.file}: key '{here}': ADC {where[0]} channel {where[1]} is already used by {channels[where]}",
                file=root.file,
                key=here,
            )
        channels[where] = here
    spi = {**SPI_PINS, **{f"CE{device}": SPI_SELECT_PINS[device] for device, _ in channels}}
    for name, pin in spi.items() if channels else ():
        if pin in pins:
            raise ConfigError(
                f"{root.file}: key '{pins[pin]}': pin {pin} is the SPI bus's {name}, which the supervised loops' ADC "
                "needs; move this to another pin",
                file=root.file,
                key=pins[pin],
            )
