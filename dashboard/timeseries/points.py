"""The points Siaga writes to InfluxDB, built from what the store holds: line protocol, no I/O.

Every point is idempotent: the same fact gives the same measurement, tags
and timestamp, so a point written twice (the writer stopped between the
server's answer and forgetting the batch) overwrites itself.

SAPA stays private by default: no point names a SAPA site, button, node or
alarm, and no gateway whose every button is SAPA; only counts per kecamatan
and day (:func:`sapa_day`), written once the day is over, so that not even
the hour of a call for help can be read from them. ``SeriesPolicy.sapa_detail``
(an administrator's choice, with a stated purpose) treats SAPA like fire.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from influxdb_client import Point, WritePrecision

from firmware_bridge.payloads import Event, Health, Kind
from firmware_bridge.timeutil import parse_ts

#: The one kind whose points are private unless ``sapa_detail`` is on.
PRIVATE_KIND = str(Kind.SAPA)
#: Fields that are measurements, always written as floats.
FLOAT_FIELDS = frozenset(
    {"uptime_s", "disk_free_mb", "disk_used_pct", "cpu_temp_c", "load_1m", "battery_v", "rssi", "snr", "age_s"}
)
#: The tag value of a site whose inventory names no kecamatan.
NO_KECAMATAN = "-"


@dataclass(frozen=True)
class SeriesPolicy:
    #: SAPA presses, alarms, nodes and troubles with their sites and buttons, as fire's are.
    sapa_detail: bool = False

    def shows(self, kind: str | None) -> bool:
        """Whether a point about something of ``kind`` may name its site and button."""
        return kind != PRIVATE_KIND or self.sapa_detail


@dataclass(frozen=True)
class ButtonFacts:
    """Where a button is, as its gateway's inventory says."""

    id: str
    gw: str
    kind: str
    transport: str
    site: str
    kecamatan: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ButtonFacts:
        return cls(row["id"], row["gw"], row["kind"], row["transport"], row["site_name"], row["kecamatan"])


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _line(point: Point) -> str:
    return point.to_line_protocol()


def _place(point: Point, button: ButtonFacts | None) -> Point:
    """Tag a point with its button's site and kecamatan (unknown buttons: no site)."""
    if button is None:
        return point.tag("kecamatan", NO_KECAMATAN)
    return point.tag("site", button.site).tag("kecamatan", button.kecamatan or NO_KECAMATAN)


def press(event: Event, kind: str, button: ButtonFacts | None, policy: SeriesPolicy) -> str | None:
    """An event a gateway sent (press, test, tamper …), at the time its gateway stamped; None if private."""
    if not policy.shows(kind):
        return None
    line = _press_series(kind, str(event.type), event.gw, event.button, str(event.src), button) + " presses=1i"
    radio = event.radio or {}
    for name in ("rssi", "snr"):
        value = radio.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            line += f",{name}={float(value)!r}"
    return f"{line} {_ms(parse_ts(event.ts).timestamp())}"


@lru_cache(maxsize=4096)
def _press_series(kind: str, type: str, gw: str, button_id: str, src: str, button: ButtonFacts | None) -> str:
    """A press point's measurement and tags, escaped by the client library once per series, not per press
    (an ingest burst builds thousands a second)."""
    point = (
        Point("siaga_press")
        .tag("kind", kind)
        .tag("type", type)
        .tag("gateway", gw)
        .tag("button", button_id)
        .tag("transport", src)
        .field("presses", 1)
    )
    line = _line(_place(point, button))  # no time: "<measurement>,<tags> presses=1i"
    return line.removesuffix(" presses=1i")


def alarm_step(step: Mapping[str, Any], policy: SeriesPolicy) -> str | None:
    """One step of an alarm's life (opened, acknowledged, dispatched, resolved, escalated) with the
    seconds since it opened; ``step`` is a row of :func:`dashboard.alarms.store.alarm_steps_since`."""
    kind = step["kind"]
    if not policy.shows(kind):
        return None
    point = (
        Point("siaga_alarm")
        .tag("kind", kind)
        .tag("step", step["action"])
        .tag("button", step["button"])
        .tag("test", "true" if step["test"] else "false")
        .field("seconds", max(0.0, float(step["at"]) - float(step["opened_at"])))
        .field("number", int(step["number"]))
        .time(_ms(step["at"]), WritePrecision.MS)
    )
    if step["action"] == "resolved" and step["resolution"]:
        point.tag("resolution", step["resolution"])
    if step["site_name"] is not None:
        point.tag("site", step["site_name"])
    return _line(point.tag("kecamatan", step["kecamatan"] or NO_KECAMATAN))


def gateway(health: Health, received_at: float, buttons: Iterable[ButtonFacts], policy: SeriesPolicy) -> list[str]:
    """A gateway's health report: its own figures, and one point per LoRa node it serves."""
    served = list(buttons)
    if served and not any(policy.shows(button.kind) for button in served):
        return []  # a gateway only of SAPA buttons tells where a SAPA button is
    shown = [button for button in served if policy.shows(button.kind)]
    at = _ms(received_at)
    point = Point("siaga_gateway").tag("gateway", health.gw).time(at, WritePrecision.MS)
    if shown:
        point.tag("kecamatan", shown[0].kecamatan or NO_KECAMATAN)
    fields: dict[str, Any] = {
        "uptime_s": health.uptime_s,
        "outbox_depth": health.outbox.depth,
        "outbox_memory_only": health.outbox.memory_only,
        "awaiting_receipt": health.outbox.awaiting_receipt,
        "mqtt_connected": health.mqtt_connected,
    }
    if health.system is not None:
        fields.update(
            disk_free_mb=health.system.disk_free_mb,
            disk_used_pct=health.system.disk_used_pct,
            cpu_temp_c=health.system.cpu_temp_c,
            load_1m=health.system.load_1m,
        )
    if health.radio is not None:
        fields["radio_rejected"] = sum(health.radio.rejected.values())
    lines = [_line(point)] if _fields(point, fields) else []
    by_id = {button.id: button for button in shown}
    for node in health.radio.nodes.values() if health.radio is not None else ():
        facts = by_id.get(node.button)
        if facts is None:
            continue  # not in its inventory (or private): nothing says where it is
        node_point = Point("siaga_lora_node").tag("gateway", health.gw).tag("button", node.button)
        _fields(
            node_point,
            {
                "battery_v": None if node.battery_mv is None else node.battery_mv / 1000,
                "rssi": node.rssi,
                "snr": node.snr,
                "age_s": node.age_s,
                "frames": node.frames,
                "events": node.events,
                "heartbeats": node.heartbeats,
                "duplicates": node.duplicates,
                "rejected": sum(node.rejected.values()),
                "low_battery": node.low_battery,
                "tamper": node.tamper,
            },
        )
        lines.append(_line(_place(node_point, facts).time(at, WritePrecision.MS)))
    return lines


def _fields(point: Point, fields: Mapping[str, Any]) -> int:
    """Set the fields that are known (integers stay integers, ``1i``); returns how many were."""
    known = {name: value for name, value in fields.items() if value is not None}
    for name, value in known.items():
        # A field keeps one type for good (InfluxDB refuses a float where an integer was): a measured
        # figure is always a float, whatever the gateway's JSON happened to spell.
        point.field(name, float(value) if name in FLOAT_FIELDS else value)
    return len(known)


def trouble(row: Mapping[str, Any], *, cleared: bool, policy: SeriesPolicy) -> str | None:
    """A trouble opened (``open`` 1 at its beginning) or cleared (0, with how long it lasted)."""
    if not policy.shows(row["kind"]):
        return None
    point = Point("siaga_trouble").tag("type", row["type"])
    for tag in ("gw", "button"):
        if row[tag]:
            point.tag("gateway" if tag == "gw" else tag, row[tag])
    if cleared:
        point.field("open", 0).field("seconds", max(0.0, row["cleared_at"] - row["began_at"]))
        point.time(_ms(row["cleared_at"]), WritePrecision.MS)
    else:
        point.field("open", 1).time(_ms(row["began_at"]), WritePrecision.MS)
    return _line(point)


def sapa_day(day_start: float, kecamatan: str | None, presses: int, alarms: int) -> str:
    """SAPA's count of one local day in one kecamatan, at the day's first instant."""
    point = (
        Point("siaga_sapa_daily")
        .tag("kecamatan", kecamatan or NO_KECAMATAN)
        .field("presses", presses)
        .field("alarms", alarms)
        .time(_ms(day_start), WritePrecision.MS)
    )
    return _line(point)
