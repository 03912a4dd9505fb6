"""Reading a gateway's health: stored text, a decoded object or a payload into the contract's typed :class:`Health`.

The only reader of health on the dashboard (the supervisor, the device view
and the gateway list all ask it). The schema types every field on the wire,
but a stored message may predate it (an older dashboard stored whatever shape
it was sent) or come from an older gateway: a field of an unexpected shape or
an absurd value is left unknown, never trusted, and every time derived from
one is bounded (:func:`bounded_time`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from enum import StrEnum
from typing import Any, TypeVar

from firmware_bridge.payloads import (
    ButtonHealth,
    Health,
    LoraMode,
    LoraModel,
    ModuleState,
    NodeHealth,
    OutboxHealth,
    RadioHealth,
    RadioModule,
    SystemHealth,
    Wiring,
)
from firmware_bridge.timeutil import format_epoch, parse_ts
from firmware_bridge.topics import is_valid_id

_Code = TypeVar("_Code", bound=StrEnum)


#: The longest span of time believed from a report or kept for a trouble (a button held, a
#: backlog's wait, how long ago a trouble began): ten years. Longer ones are believed as this.
MAX_SPAN_S = 10 * 365.25 * 86400.0
#: The largest count believed from a report (events waiting, events only in memory).
MAX_COUNT = 10**12
#: How much of a text from a report is kept (it may end up in a trouble's detail).
MAX_TEXT = 200


def field_dict(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def field_objects(value: object, container: type[list] | type[dict] = list) -> list[dict[str, Any]]:
    """The objects in a list (or, with ``container=dict``, a map's values); anything else is skipped."""
    if not isinstance(value, container):
        return []
    items = value.values() if isinstance(value, dict) else value
    return [item for item in items if isinstance(item, dict)]


def field_number(value: object, low: float, high: float) -> int | float | None:
    """A finite number within ``[low, high]`` (ints stay ints), else None. Booleans are not numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if low <= value <= high else None  # an int of any size compares without overflow


def seconds(value: object) -> float | None:
    """A span of time, as a float within ``[0, MAX_SPAN_S]``: a longer one counts as the longest.

    None if it is not a number, NaN, or negative.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        return None
    return float(min(value, MAX_SPAN_S))


def field_count(value: object) -> int | None:
    """A non-negative whole number, at most ``MAX_COUNT`` (a larger one counts as that), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        return None
    if isinstance(value, float) and not value.is_integer() and math.isfinite(value):
        return None
    return int(min(value, MAX_COUNT))


def field_text(value: object, limit: int = MAX_TEXT) -> str | None:
    """A string, cut to ``limit`` characters, any character UTF-8 cannot carry replaced; else None."""
    if not isinstance(value, str):
        return None
    text = value[:limit]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: neither SQLite nor a page could take it
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def field_id(value: object) -> str | None:
    """A gateway or button id (the contract's pattern), else None."""
    return value if is_valid_id(value) else None


def field_epoch(value: object) -> float | None:
    """A wire timestamp as Unix time, else None."""
    if not isinstance(value, str):
        return None
    try:
        return parse_ts(value).timestamp()
    except (ValueError, OverflowError):  # BadPayload is a ValueError
        return None


def field_bool(value: object) -> bool | None:
    """A JSON boolean, else None."""
    return value if isinstance(value, bool) else None


def field_enum(kind: type[_Code], value: object) -> _Code | None:
    """One of ``kind``'s codes, else None (an odd value, or a code a newer gateway added)."""
    try:
        return kind(value) if isinstance(value, str) else None
    except ValueError:
        return None


def field_wire_time(value: object) -> str | None:
    """A wire timestamp that reads as a time (:func:`field_epoch`), as sent; else None."""
    return value if isinstance(value, str) and field_epoch(value) is not None else None


def field_counts(value: object) -> dict[str, int]:
    """A map of counter names to counts (:func:`field_count`); other members are skipped."""
    counts = {}
    for key, count in field_dict(value).items():
        number = field_count(count)
        name = field_text(key)
        if number is not None and name is not None:
            counts[name] = number
    return counts


def read_health(health: object) -> Health:
    """A gateway's health, read tolerantly: the one place the dashboard reads it.

    ``health`` is what the store holds (the JSON text of ``gateways.health``,
    or that text decoded) or a decoded payload. A field of an unexpected
    shape or value is left unknown (None, or empty), never raised on; spans
    and counts are bounded, texts cut (``MAX_TEXT``). Nothing readable at all
    (no message, or not JSON) reads as a health that knows nothing.
    """
    if isinstance(health, Health):
        health = health.to_dict()  # validated, but not bounded: 1e308 s is a valid span
    elif isinstance(health, (str, bytes)):
        health = stored_health(health)
    data = field_dict(health)
    radio, system = data.get("radio"), data.get("system")
    return Health(
        gw=field_id(data.get("gw")) or "",  # unknown: the caller knows whose it is
        ts=field_wire_time(data.get("ts")),
        uptime_s=seconds(data.get("uptime_s")),
        outbox=_read_outbox(field_dict(data.get("outbox"))),
        counters=field_counts(data.get("counters")),
        version=field_text(data.get("version")),
        outbox_ok=field_bool(data.get("outbox_ok")),
        outbox_error=field_text(data.get("outbox_error")),
        delivery_verified=field_bool(data.get("delivery_verified")),
        mqtt_connected=field_bool(data.get("mqtt_connected")),
        dashboard_online=field_bool(data.get("dashboard_online")),
        pump_alive=field_bool(data.get("pump_alive")),
        buttons=tuple(_read_buttons(data.get("buttons"))),
        radio=_read_radio(radio) if isinstance(radio, dict) else None,
        system=_read_system(system) if isinstance(system, dict) else None,
    )


def _read_system(system: dict[str, Any]) -> SystemHealth:
    return SystemHealth(
        disk_free_mb=field_number(system.get("disk_free_mb"), 0, MAX_COUNT),
        disk_used_pct=field_number(system.get("disk_used_pct"), 0, 100),
        cpu_temp_c=field_number(system.get("cpu_temp_c"), -100, 200),
        load_1m=field_number(system.get("load_1m"), 0, MAX_COUNT),
    )


def _read_outbox(outbox: dict[str, Any]) -> OutboxHealth:
    return OutboxHealth(
        depth=field_count(outbox.get("depth")),
        oldest_ts=field_wire_time(outbox.get("oldest_ts")),
        memory_only=field_count(outbox.get("memory_only")),
        inflight=field_count(outbox.get("inflight")),
        awaiting_receipt=field_count(outbox.get("awaiting_receipt")),
    )


def _read_buttons(buttons: object) -> Iterator[ButtonHealth]:
    for button in field_objects(buttons):
        button_id = field_id(button.get("id"))
        if button_id is not None:
            yield ButtonHealth(
                id=button_id,
                pressed=field_bool(button.get("pressed")),
                pressed_for_s=seconds(button.get("pressed_for_s")),
                wiring=_wiring(button.get("wiring")),
                wiring_for_s=seconds(button.get("wiring_for_s")),
            )


def _wiring(value: object) -> Wiring | None:
    try:
        return Wiring(value) if isinstance(value, str) else None
    except ValueError:
        return None  # a newer gateway's word: its other fields still count


def _read_radio(radio: dict[str, Any]) -> RadioHealth:
    module = radio.get("module")
    nodes = {}
    for key, node in field_dict(radio.get("nodes")).items():
        read = _read_node(node) if isinstance(node, dict) else None
        if read is not None:
            nodes[str(key)] = read
    return RadioHealth(
        module=_read_module(module) if isinstance(module, dict) else None,
        nodes=nodes,
        rejected=field_counts(radio.get("rejected")),
    )


def _whole(number: int | float | None) -> int | None:
    """A count or millivolts as an int: a stored float (an older dashboard kept what it was sent) is rounded."""
    return number if number is None or isinstance(number, int) else round(number)


def _read_module(module: dict[str, Any]) -> RadioModule:
    return RadioModule(
        type=field_enum(LoraModel, module.get("type")),
        port=field_text(module.get("port")),
        state=field_enum(ModuleState, module.get("state")),
        since=field_wire_time(module.get("since")),
        last_error=field_text(module.get("last_error")),
        configured=field_bool(module.get("configured")),
        queued=field_count(module.get("queued")),
        mode=field_enum(LoraMode, module.get("mode")),
        skipped_bytes=field_count(module.get("skipped_bytes")),
        bad_crc=field_count(module.get("bad_crc")),
    )


def _read_node(node: dict[str, Any]) -> NodeHealth | None:
    button = field_id(node.get("button"))
    if button is None:
        return None
    return NodeHealth(
        button=button,
        last_heard=field_wire_time(node.get("last_heard")),
        age_s=seconds(node.get("age_s")),
        low_battery=node.get("low_battery") is True,
        tamper=node.get("tamper") is True,
        battery_mv=_whole(field_number(node.get("battery_mv"), 0, 100_000)),
        rssi=field_number(node.get("rssi"), -300, 300),
        snr=field_number(node.get("snr"), -100, 100),
        frames=field_count(node.get("frames")),
        events=field_count(node.get("events")),
        heartbeats=field_count(node.get("heartbeats")),
        duplicates=field_count(node.get("duplicates")),
        rejected=field_counts(node.get("rejected")),
    )


def bounded_time(at: object, now: float) -> float:
    """A time when something began, kept within ``[now - MAX_SPAN_S, now]``; ``now`` if it is no number."""
    if isinstance(at, bool) or not isinstance(at, (int, float)) or at != at:
        return now
    return float(min(max(at, now - MAX_SPAN_S), now))


#: The times ``format_epoch`` can write (years 1 to 9999), a day inside each end for any time zone.
FIRST_TIME = -62135596800.0 + 86400
LAST_TIME = 253402300799.0 - 86400


def format_time(at: object, fallback: float | None = None) -> str | None:
    """A stored time as a wire timestamp, whatever is stored: never raises.

    Not a number: ``fallback`` (or None without one); beyond what a
    timestamp can write: the nearest one it can.
    """
    if isinstance(at, bool) or not isinstance(at, (int, float)) or at != at:
        if fallback is None:
            return None
        at = fallback
    return format_epoch(float(min(max(at, FIRST_TIME), LAST_TIME)))  # clamped first: an int of any size


def stored_health(text: str | bytes | None) -> dict[str, Any] | None:
    """A gateway's stored health message (the JSON text of ``gateways.health``); None if absent or unreadable."""
    try:
        value = json.loads(text) if text else None
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
