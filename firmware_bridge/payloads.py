"""JSON payloads of the gateway <-> dashboard contract (version 1).

Each payload has a model (a frozen dataclass), an ``encode()`` that produces
the bytes to publish, and a ``decode_*`` function that turns bytes received
from the broker into the model or raises :class:`BadPayload` naming the
offending field. Both ends validate against the same JSON Schemas
(``firmware_bridge/schemas/*.schema.json``).

Consumers ignore fields they do not know, so a payload may grow within
version 1; anything incompatible gets a new ``v`` and a new topic root.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from typing import Any, TypeVar

import fastjsonschema

from .errors import BadPayload
from .timeutil import parse_ts

PAYLOAD_VERSION = 1

#: Anything larger is refused before it is parsed (an inventory of 1,000
#: buttons is about 150 KiB; an event is a few hundred bytes).
MAX_PAYLOAD_BYTES = 256 * 1024


class Kind(StrEnum):
    FIRE = "fire"
    SAPA = "sapa"


class EventType(StrEnum):
    PRESS = "press"
    TEST = "test"
    HEARTBEAT = "heartbeat"
    LOW_BATTERY = "low_battery"
    TAMPER = "tamper"


class Source(StrEnum):
    GPIO = "gpio"
    LORA = "lora"


class GatewayState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class StatusReason(StrEnum):
    CONNECTED = "connected"
    SHUTDOWN = "shutdown"
    LOST = "lost"


class IndicationState(StrEnum):
    """What a button shows. ``received``: the dashboard stored the alarm;
    ``acknowledged``/``dispatched``: a person is on it ("help is coming");
    ``resolved``: the alarm is closed."""

    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    RESOLVED = "resolved"


class ModuleState(StrEnum):
    """Whether the gateway has its LoRa module's serial port open."""

    OPEN = "open"
    MISSING = "missing"


class LoraModel(StrEnum):
    """The LoRa modules a gateway can drive."""

    RYLR896 = "rylr896"
    RYLR998 = "rylr998"
    E32 = "e32"
    E22 = "e22"


class LoraMode(StrEnum):
    """An E32/E22 module's addressing mode."""

    TRANSPARENT = "transparent"
    FIXED = "fixed"


def _load_schema(name: str) -> Callable[[Any], Any]:
    text = resources.files("firmware_bridge.schemas").joinpath(f"{name}.schema.json").read_text("utf-8")
    return fastjsonschema.compile(json.loads(text))


_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    name: _load_schema(name) for name in ("event", "status", "inventory", "health", "indication", "receipt", "presence")
}


def _field_of(exc: fastjsonschema.JsonSchemaValueException) -> str:
    name = exc.name or "data"
    if exc.rule == "required" and isinstance(exc.value, dict):
        missing = [key for key in (exc.rule_definition or []) if key not in exc.value]
        if missing:
            name = f"{name}.{missing[0]}"
    return name[len("data.") :] if name.startswith("data.") else name.replace("data", "", 1)


def _reason_of(exc: fastjsonschema.JsonSchemaValueException) -> str:
    return {"required": "missing_field", "enum": "bad_value", "type": "bad_type", "const": "bad_version"}.get(
        exc.rule or "", "invalid"
    )


class _NotFinite(ValueError):
    pass


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf
        raise _NotFinite(text)
    return value


def _no_constant(name: str) -> float:
    raise _NotFinite(name)  # NaN, Infinity, -Infinity: Python accepts them, JSON does not


class _OutOfRange(ValueError):
    pass


class _DuplicateKey(ValueError):
    pass


#: The largest integer any field may carry: what SQLite (and most JSON peers) can hold.
MAX_INT = 2**63 - 1


def _bounded_int(text: str) -> int:
    value = int(text)
    if not -MAX_INT <= value <= MAX_INT:
        raise _OutOfRange(text[:40])
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object; a key given twice is refused: parsers differ on which one wins (``kind`` twice...)."""
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return data


#: Built once: json.loads with hooks builds a decoder and its scanner on every call (~10 us a message).
_DECODER = json.JSONDecoder(
    parse_float=_finite_float,
    parse_int=_bounded_int,
    parse_constant=_no_constant,
    object_pairs_hook=_unique_keys,
)


def _has_lone_surrogate(value: Any) -> bool:
    """A ``\ud800`` escape is valid JSON but no text: UTF-8 (and so the store) cannot carry it."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


def _text_of(payload: bytes | str, what: str) -> str:
    """The payload as text: UTF-8, strictly, and without a byte-order mark (the contract says UTF-8)."""
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadPayload(f"{what}: not UTF-8 ({exc.reason} at byte {exc.start})", reason="bad_encoding") from None
    if payload.startswith("\ufeff"):
        raise BadPayload(f"{what}: starts with a byte-order mark; the contract is plain UTF-8", reason="bad_encoding")
    return payload


def _parse_object(payload: bytes | str, what: str) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise BadPayload(f"{what}: payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}", reason="too_large")
    text = _text_of(payload, what)
    try:
        data = _DECODER.decode(text)
    except _NotFinite as exc:
        raise BadPayload(f"{what}: number {exc} is not a finite JSON number", reason="not_finite") from None
    except _OutOfRange as exc:
        raise BadPayload(f"{what}: integer {exc}... is beyond ±{MAX_INT}", reason="out_of_range") from None
    except _DuplicateKey as exc:
        raise BadPayload(f"{what}: key {exc} appears twice in one object", reason="duplicate_key") from None
    except RecursionError:
        raise BadPayload(f"{what}: nested too deeply", reason="too_deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadPayload(f"{what}: not valid JSON ({exc})", reason="not_json") from None
    if not isinstance(data, dict):
        raise BadPayload(f"{what}: expected a JSON object, got {type(data).__name__}", reason="not_object")
    try:
        lone_surrogate = "\\u" in text and _has_lone_surrogate(data)
    except RecursionError:
        raise BadPayload(f"{what}: nested too deeply", reason="too_deep") from None
    if lone_surrogate:
        raise BadPayload(f"{what}: a string holds a lone surrogate (\\ud800-\\udfff), not text", reason="bad_encoding")
    return data


def validate(what: str, data: dict[str, Any]) -> dict[str, Any]:
    """Validate a decoded payload against its schema; raises :class:`BadPayload`."""
    version = data.get("v")
    if version != PAYLOAD_VERSION:
        raise BadPayload(
            f"{what}: field 'v': unsupported payload version {version!r} (this end speaks {PAYLOAD_VERSION})",
            field="v",
            reason="bad_version",
        )
    try:
        _VALIDATORS[what](data)
    except RecursionError:
        raise BadPayload(f"{what}: nested too deeply", reason="too_deep") from None
    except fastjsonschema.JsonSchemaValueException as exc:
        where = _field_of(exc)
        message = exc.message.replace("data.", "", 1) if exc.message.startswith("data.") else exc.message
        raise BadPayload(f"{what}: field '{where}': {message}", field=where, reason=_reason_of(exc)) from None
    return data


def _encode(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}


_E = TypeVar("_E", bound=StrEnum)


def _optional_enum(kind: type[_E], value: Any) -> _E | None:
    """A code of ``kind``; None if absent or one this version does not know (a newer gateway's, say):
    an unknown module model must not cost a gateway its whole health report."""
    try:
        return None if value is None else kind(value)
    except ValueError:
        return None


def _text_or_none(value: StrEnum | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    lat: float
    lon: float
    #: the kecamatan (district) it is in: statistics and integrations group by it
    kecamatan: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "lat": self.lat, "lon": self.lon, **_drop_none({"kecamatan": self.kecamatan})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Site:
        return cls(data["name"], float(data["lat"]), float(data["lon"]), data.get("kecamatan"))


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened at a button."""

    id: str
    gw: str
    button: str
    kind: Kind
    type: EventType
    ts: str
    src: Source
    seq: int | None = None
    held_ms: int | None = None
    radio: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(
            {
                "v": PAYLOAD_VERSION,
                "id": self.id,
                "gw": self.gw,
                "button": self.button,
                "kind": str(self.kind),
                "type": str(self.type),
                "ts": self.ts,
                "src": str(self.src),
                "seq": self.seq,
                "held_ms": self.held_ms,
                "radio": self.radio,
            }
        )

    def encode(self) -> bytes:
        return _encode(validate("event", self.to_dict()))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        validate("event", data)
        parse_ts(data["ts"])
        return cls(
            id=data["id"],
            gw=data["gw"],
            button=data["button"],
            kind=Kind(data["kind"]),
            type=EventType(data["type"]),
            ts=data["ts"],
            src=Source(data["src"]),
            seq=data.get("seq"),
            held_ms=data.get("held_ms"),
            radio=data.get("radio"),
        )


@dataclass(frozen=True, slots=True)
class Status:
    """A gateway's presence, retained; the broker publishes the last will on loss."""

    gw: str
    state: GatewayState
    ts: str
    version: str | None = None
    reason: StatusReason | None = None
    started: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(
            {
                "v": PAYLOAD_VERSION,
                "gw": self.gw,
                "state": str(self.state),
                "ts": self.ts,
                "version": self.version,
                "reason": str(self.reason) if self.reason else None,
                "started": self.started,
            }
        )

    def encode(self) -> bytes:
        return _encode(validate("status", self.to_dict()))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Status:
        validate("status", data)
        parse_ts(data["ts"])
        return cls(
            gw=data["gw"],
            state=GatewayState(data["state"]),
            ts=data["ts"],
            version=data.get("version"),
            reason=StatusReason(data["reason"]) if "reason" in data else None,
            started=data.get("started"),
        )


@dataclass(frozen=True, slots=True)
class ButtonInfo:
    id: str
    kind: Kind
    transport: Source
    site: Site
    label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(
            {
                "id": self.id,
                "kind": str(self.kind),
                "transport": str(self.transport),
                "site": self.site.to_dict(),
                "label": self.label,
            }
        )


@dataclass(frozen=True, slots=True)
class Inventory:
    gw: str
    ts: str
    buttons: tuple[ButtonInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": PAYLOAD_VERSION,
            "gw": self.gw,
            "ts": self.ts,
            "buttons": [button.to_dict() for button in self.buttons],
        }

    def encode(self) -> bytes:
        return _encode(validate("inventory", self.to_dict()))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Inventory:
        validate("inventory", data)
        parse_ts(data["ts"])
        buttons = tuple(
            ButtonInfo(
                id=item["id"],
                kind=Kind(item["kind"]),
                transport=Source(item["transport"]),
                site=Site.from_dict(item["site"]),
                label=item.get("label"),
            )
            for item in data["buttons"]
        )
        seen: set[str] = set()
        for button in buttons:
            if button.id in seen:
                raise BadPayload(
                    f"inventory: field 'buttons': duplicate button id {button.id!r}",
                    field="buttons",
                    reason="duplicate",
                )
            seen.add(button.id)
        return cls(gw=data["gw"], ts=data["ts"], buttons=buttons)


# In the health models below, None is "not known": a field an older gateway does
# not send, or one a tolerant reader of stored health (the dashboard's) could not
# read. The schema says which fields the wire requires; encode() refuses the rest.


@dataclass(frozen=True, slots=True)
class OutboxHealth:
    """The gateway's outbox: events waiting for the dashboard's receipt."""

    depth: int | None
    oldest_ts: str | None = None
    #: events that could not be written to disk (disk full, I/O error) and live only in memory
    memory_only: int | None = None
    #: events published, not yet acknowledged by the broker
    inflight: int | None = None
    #: events published, waiting for the dashboard's receipt
    awaiting_receipt: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "depth": self.depth,
            "oldest_ts": self.oldest_ts,
            **_drop_none(
                {"memory_only": self.memory_only, "inflight": self.inflight, "awaiting_receipt": self.awaiting_receipt}
            ),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutboxHealth:
        """From a validated payload's ``outbox``."""
        return cls(
            depth=data["depth"],
            oldest_ts=data.get("oldest_ts"),
            memory_only=data.get("memory_only"),
            inflight=data.get("inflight"),
            awaiting_receipt=data.get("awaiting_receipt"),
        )


class Wiring(StrEnum):
    """A supervised loop's cable (``gateway/loops.py``): a plain wired button reports none."""

    OK = "ok"
    OPEN = "open"  # cut, or a connector off: presses cannot arrive
    SHORT = "short"  # shorted: taken as a press if the loop was healthy just before
    UNREADABLE = "unreadable"  # the ADC does not answer: the loop is not supervised


@dataclass(frozen=True, slots=True)
class ButtonHealth:
    """A wired button's input: one held down for long is stuck (jammed, or its wire shorted);
    a supervised loop also says whether its cable is sound."""

    id: str
    pressed: bool | None = None
    pressed_for_s: float | None = None
    #: None for a plain (unsupervised) button, or an unknown word from a newer gateway
    wiring: Wiring | None = None
    #: how long the wiring has been faulty, on the gateway's clock
    wiring_for_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **_drop_none({"pressed": self.pressed}),
            "pressed_for_s": self.pressed_for_s,
            **_drop_none({"wiring": self.wiring and self.wiring.value, "wiring_for_s": self.wiring_for_s}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ButtonHealth:
        return cls(
            id=data["id"],
            pressed=data.get("pressed"),
            pressed_for_s=data.get("pressed_for_s"),
            wiring=_optional_enum(Wiring, data.get("wiring")),
            wiring_for_s=data.get("wiring_for_s"),
        )


@dataclass(frozen=True, slots=True)
class RadioModule:
    """The gateway's LoRa module and its driver's details (``configured``, ``queued``: RYLR; the rest: E32/E22)."""

    type: LoraModel | None = None
    port: str | None = None
    state: ModuleState | None = None
    since: str | None = None
    last_error: str | None = None
    configured: bool | None = None
    queued: int | None = None
    mode: LoraMode | None = None
    skipped_bytes: int | None = None
    bad_crc: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **_drop_none(
                {
                    "type": _text_or_none(self.type),
                    "port": self.port,
                    "state": _text_or_none(self.state),
                    "since": self.since,
                }
            ),
            "last_error": self.last_error,
            **_drop_none(
                {
                    "configured": self.configured,
                    "queued": self.queued,
                    "mode": _text_or_none(self.mode),
                    "skipped_bytes": self.skipped_bytes,
                    "bad_crc": self.bad_crc,
                }
            ),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RadioModule:
        return cls(
            type=_optional_enum(LoraModel, data.get("type")),
            port=data.get("port"),
            state=_optional_enum(ModuleState, data.get("state")),
            since=data.get("since"),
            last_error=data.get("last_error"),
            configured=data.get("configured"),
            queued=data.get("queued"),
            mode=_optional_enum(LoraMode, data.get("mode")),
            skipped_bytes=data.get("skipped_bytes"),
            bad_crc=data.get("bad_crc"),
        )


@dataclass(frozen=True, slots=True)
class NodeHealth:
    """A LoRa node as its gateway knows it: when it was last heard, how well, its battery, its frames."""

    button: str
    last_heard: str | None = None
    #: seconds since heard, measured on the gateway's own clock (so a wrong clock cannot hide a silent button)
    age_s: float | None = None
    low_battery: bool = False
    tamper: bool = False
    rssi: float | None = None  # dBm; not every module reports it (E32 does not)
    snr: float | None = None  # dB
    battery_mv: int | None = None
    frames: int | None = None
    events: int | None = None
    heartbeats: int | None = None
    duplicates: int | None = None
    #: refused frames by reason
    rejected: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "button": self.button,
            "last_heard": self.last_heard,
            "age_s": self.age_s,
            "low_battery": self.low_battery,
            "tamper": self.tamper,
            "rssi": self.rssi,
            "snr": self.snr,
            "battery_mv": self.battery_mv,
            **_drop_none(
                {
                    "frames": self.frames,
                    "events": self.events,
                    "heartbeats": self.heartbeats,
                    "duplicates": self.duplicates,
                }
            ),
            "rejected": dict(self.rejected),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeHealth:
        return cls(
            button=data["button"],
            last_heard=data.get("last_heard"),
            age_s=data.get("age_s"),
            low_battery=data.get("low_battery", False),
            tamper=data.get("tamper", False),
            rssi=data.get("rssi"),
            snr=data.get("snr"),
            battery_mv=data.get("battery_mv"),
            frames=data.get("frames"),
            events=data.get("events"),
            heartbeats=data.get("heartbeats"),
            duplicates=data.get("duplicates"),
            rejected=dict(data.get("rejected", {})),
        )


@dataclass(frozen=True, slots=True)
class RadioHealth:
    """A gateway's LoRa side: its module, each node it serves (by node id, decimal) and refused frames by reason."""

    module: RadioModule | None = None
    nodes: Mapping[str, NodeHealth] = field(default_factory=dict)
    rejected: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **({"module": self.module.to_dict()} if self.module is not None else {}),
            "nodes": {node: stats.to_dict() for node, stats in self.nodes.items()},
            "rejected": dict(self.rejected),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RadioHealth:
        module = data.get("module")
        return cls(
            module=None if module is None else RadioModule.from_dict(module),
            nodes={node: NodeHealth.from_dict(stats) for node, stats in data.get("nodes", {}).items()},
            rejected=dict(data.get("rejected", {})),
        )


@dataclass(frozen=True, slots=True)
class SystemHealth:
    """The gateway's machine: its disk, CPU temperature and load, each None where it cannot be read."""

    disk_free_mb: float | None = None
    disk_used_pct: float | None = None
    cpu_temp_c: float | None = None
    load_1m: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "disk_free_mb": self.disk_free_mb,
            "disk_used_pct": self.disk_used_pct,
            "cpu_temp_c": self.cpu_temp_c,
            "load_1m": self.load_1m,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SystemHealth:
        return cls(data.get("disk_free_mb"), data.get("disk_used_pct"), data.get("cpu_temp_c"), data.get("load_1m"))


@dataclass(frozen=True, slots=True)
class Health:
    """A gateway's periodic report: its outbox, counters, links, wired buttons and LoRa side.

    ``v``, ``gw``, ``ts``, ``uptime_s``, ``outbox`` and ``counters`` are
    required on the wire; the rest came later and may be absent (None).
    ``unknown`` keeps, as sent, the fields of a newer gateway this version
    does not know, so that they are stored and passed on unchanged.
    """

    gw: str
    ts: str | None
    uptime_s: float | None
    outbox: OutboxHealth
    counters: Mapping[str, int] = field(default_factory=dict)
    version: str | None = None
    #: false: no outbox could be opened at all; every event lives only in memory
    outbox_ok: bool | None = None
    #: why the last write to the outbox failed; None once a write succeeds
    outbox_error: str | None = None
    #: the gateway saw its own status come back from the broker (the ACL lets it publish)
    delivery_verified: bool | None = None
    mqtt_connected: bool | None = None
    #: the dashboard's presence as last heard; None before any
    dashboard_online: bool | None = None
    pump_alive: bool | None = None
    buttons: tuple[ButtonHealth, ...] = ()
    radio: RadioHealth | None = None
    system: SystemHealth | None = None
    unknown: Mapping[str, Any] = field(default_factory=dict)

    #: The fields every version-1 health carries.
    CORE = frozenset({"v", "gw", "ts", "uptime_s", "outbox", "counters"})
    #: Every field this version knows.
    KNOWN = CORE | {
        "version",
        "outbox_ok",
        "outbox_error",
        "delivery_verified",
        "mqtt_connected",
        "dashboard_online",
        "pump_alive",
        "buttons",
        "radio",
        "system",
    }

    def to_dict(self) -> dict[str, Any]:
        return {
            **{key: value for key, value in self.unknown.items() if key not in self.KNOWN},
            "v": PAYLOAD_VERSION,
            "gw": self.gw,
            "ts": self.ts,
            "uptime_s": self.uptime_s,
            "outbox": self.outbox.to_dict(),
            "counters": dict(self.counters),
            **_drop_none(
                {
                    "version": self.version,
                    "outbox_ok": self.outbox_ok,
                    "delivery_verified": self.delivery_verified,
                    "mqtt_connected": self.mqtt_connected,
                    "pump_alive": self.pump_alive,
                }
            ),
            "outbox_error": self.outbox_error,
            "dashboard_online": self.dashboard_online,
            "buttons": [button.to_dict() for button in self.buttons],
            **({"radio": self.radio.to_dict()} if self.radio is not None else {}),
            **({"system": self.system.to_dict()} if self.system is not None else {}),
        }

    def encode(self) -> bytes:
        return _encode(validate("health", self.to_dict()))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Health:
        validate("health", data)
        parse_ts(data["ts"])
        radio, system = data.get("radio"), data.get("system")
        return cls(
            gw=data["gw"],
            ts=data["ts"],
            uptime_s=float(data["uptime_s"]),
            outbox=OutboxHealth.from_dict(data["outbox"]),
            counters=dict(data["counters"]),
            version=data.get("version"),
            outbox_ok=data.get("outbox_ok"),
            outbox_error=data.get("outbox_error"),
            delivery_verified=data.get("delivery_verified"),
            mqtt_connected=data.get("mqtt_connected"),
            dashboard_online=data.get("dashboard_online"),
            pump_alive=data.get("pump_alive"),
            buttons=tuple(ButtonHealth.from_dict(button) for button in data.get("buttons", [])),
            radio=None if radio is None else RadioHealth.from_dict(radio),
            system=None if system is None else SystemHealth.from_dict(system),
            unknown={key: value for key, value in data.items() if key not in cls.KNOWN},
        )


@dataclass(frozen=True, slots=True)
class Indication:
    """Downlink: what a button should show for an alarm."""

    button: str
    state: IndicationState
    alarm: int
    rev: int
    ts: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": PAYLOAD_VERSION,
            "button": self.button,
            "state": str(self.state),
            "alarm": self.alarm,
            "rev": self.rev,
            "ts": self.ts,
        }

    def encode(self) -> bytes:
        return _encode(validate("indication", self.to_dict()))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Indication:
        validate("indication", data)
        parse_ts(data["ts"])
        return cls(
            button=data["button"],
            state=IndicationState(data["state"]),
            alarm=data["alarm"],
            rev=data["rev"],
            ts=data["ts"],
        )

    def supersedes(self, other: Indication | None) -> bool:
        """True if this indication is newer than ``other`` for the same button.

        Alarm numbers grow, and an alarm's revision grows with each action, so
        (alarm, rev) orders indications even when the broker redelivers old ones.
        """
        return other is None or (self.alarm, self.rev) > (other.alarm, other.rev)


@dataclass(frozen=True, slots=True)
class Receipt:
    """Downlink: events the dashboard has committed (or refused for good); the gateway may forget them."""

    ids: tuple[str, ...]
    ts: str

    #: Most ids in one receipt; the dashboard splits larger batches.
    MAX_IDS = 1000

    def to_dict(self) -> dict[str, Any]:
        return {"v": PAYLOAD_VERSION, "ids": list(self.ids), "ts": self.ts}

    def encode(self) -> bytes:
        return _encode(validate("receipt", self.to_dict()))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Receipt:
        validate("receipt", data)
        parse_ts(data["ts"])
        return cls(ids=tuple(data["ids"]), ts=data["ts"])


@dataclass(frozen=True, slots=True)
class Presence:
    """The dashboard's presence, retained, with a last will ``offline``."""

    state: GatewayState
    ts: str
    started: str | None = None
    #: Changes when the dashboard's subscriptions were granted in a session the broker had not kept.
    resync: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(
            {
                "v": PAYLOAD_VERSION,
                "state": str(self.state),
                "ts": self.ts,
                "started": self.started,
                "resync": self.resync,
            }
        )

    def encode(self) -> bytes:
        return _encode(validate("presence", self.to_dict()))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Presence:
        validate("presence", data)
        parse_ts(data["ts"])
        return cls(
            state=GatewayState(data["state"]), ts=data["ts"], started=data.get("started"), resync=data.get("resync")
        )


def decode_event(payload: bytes | str) -> Event:
    return Event.from_dict(_parse_object(payload, "event"))


def decode_status(payload: bytes | str) -> Status:
    return Status.from_dict(_parse_object(payload, "status"))


def decode_inventory(payload: bytes | str) -> Inventory:
    return Inventory.from_dict(_parse_object(payload, "inventory"))


def decode_health(payload: bytes | str) -> Health:
    return Health.from_dict(_parse_object(payload, "health"))


def decode_indication(payload: bytes | str) -> Indication:
    return Indication.from_dict(_parse_object(payload, "indication"))


def decode_receipt(payload: bytes | str) -> Receipt:
    return Receipt.from_dict(_parse_object(payload, "receipt"))


def decode_presence(payload: bytes | str) -> Presence:
    return Presence.from_dict(_parse_object(payload, "presence"))
