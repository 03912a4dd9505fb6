"""What the MQTT fuzzer publishes: Hypothesis strategies for the ingest's topics and payloads, and an oracle.

Payloads come in four families, most of the budget on the first:

- *schema-near*: a valid payload of the channel with one or two mutations
  (wrong type, integers past 2**63, NaN/Infinity/1e999, deep nesting, huge or
  lone-surrogate strings, unknown enum values, odd dates, numbers just out of
  range, extra, missing and duplicated keys);
- valid payloads, semantically awkward on purpose: a small pool of gateway
  and button ids is shared by inventories and events, so presses whose kind
  disagrees with the inventory, buttons in no inventory, a button moving
  between gateways and event ids reused with other content all happen;
- broken encodings of valid payloads (invalid UTF-8, BOM, UTF-16/32,
  trailing garbage, two documents);
- JSON of random shape, arbitrary bytes and a few classics.

Topics are ``{root}/gw/{segment}/{channel}`` for every channel the dashboard
subscribes to; the segment is usually the payload's gateway, sometimes
another valid id, sometimes an odd one (empty, too long, spaces, emoji, 60,000
characters). Characters Mosquitto refuses in a topic (C0/C1 controls,
noncharacters; it disconnects the publisher) are left out: that is the
broker's business, not the dashboard's.

:func:`expected` is the oracle: what the contract (``firmware_bridge``) says
the dashboard must do with a message: refuse it with a reason, store an
event, or take a status/inventory/health.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from firmware_bridge.errors import BadPayload, BadTopic
from firmware_bridge.ids import make_ulid
from firmware_bridge.payloads import (
    ButtonInfo,
    Inventory,
    Kind,
    Site,
    Source,
    decode_event,
    decode_health,
    decode_inventory,
    decode_status,
)
from firmware_bridge.timeutil import format_epoch, format_ts
from firmware_bridge.topics import DEFAULT_ROOT, ID_PATTERN, Channel, Topics

ROOT = DEFAULT_ROOT
TOPICS = Topics(ROOT)

#: The channels the dashboard subscribes to (dashboard/ingest/mqtt.py, ``SUBSCRIBED``).
INGEST_CHANNELS = (Channel.STATUS, Channel.INVENTORY, Channel.EVENT, Channel.HEALTH)

#: Ids the tests use for their own traffic; the fuzzer never generates them.
REAL_GW, REAL_BUTTON = "gw-real-0", "real-fire-0"
SENTINEL_GW, SENTINEL_BUTTON = "gw-sentinel-0", "sentinel-0"
BURST_GW, BURST_BUTTON = "gw-burst-0", "burst-fire-0"
RESERVED = frozenset({REAL_GW, REAL_BUTTON, SENTINEL_GW, SENTINEL_BUTTON, BURST_GW, BURST_BUTTON})

#: Small pools, shared by inventories and events, so that they meet.
FUZZ_GWS = ("gw-a", "gw-b", "GW.c_1")
FUZZ_BUTTONS = ("fire-1", "fire-2", "sapa-1", "sapa-2", "lora-9", "ghost-1")
#: Event ids that recur across examples: duplicates, and an id that comes back with other content.
FIXED_EVENT_IDS = tuple(make_ulid(1_700_000_000_000 + n, bytes(10)) for n in range(4))


def now_ts() -> str:
    return format_epoch(time.time())


def inventory(gw: str, button: str) -> Inventory:
    """The inventory of a gateway with one fire button: what the tests' own traffic needs registered."""
    site = Site("Pasar Andoolo", -4.3497, 122.3786)
    return Inventory(gw=gw, ts=now_ts(), buttons=(ButtonInfo(button, Kind.FIRE, Source.GPIO, site, "Blok A"),))


class Raw(str):
    """JSON text written into a payload verbatim (NaN, 1e999, deep nesting, lone surrogates)."""

    __slots__ = ()


class Dup(dict):
    """A JSON object written with some keys twice: ``dups`` follow the ordinary items."""

    def __init__(self, items: dict[str, Any], dups: list[tuple[str, Any]]) -> None:
        super().__init__(items)
        self.dups = dups


def dumps(value: Any) -> str:
    """JSON text of ``value``, with :class:`Raw` pieces verbatim and :class:`Dup` keys twice."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        pairs = list(value.items()) + (value.dups if isinstance(value, Dup) else [])
        return "{" + ",".join(json.dumps(str(key), ensure_ascii=False) + ":" + dumps(item) for key, item in pairs) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def encode(value: Any) -> bytes:
    return dumps(value).encode("utf-8")


@dataclass(frozen=True)
class Msg:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False

    def __repr__(self) -> str:  # Hypothesis prints failing examples: keep megabytes out of the report
        payload = self.payload
        if len(payload) > 400:
            payload = payload[:400] + b"...(%d bytes)" % len(self.payload)
        topic = self.topic if len(self.topic) <= 200 else self.topic[:200] + f"...({len(self.topic)} chars)"
        return f"Msg({topic!r}, {payload!r}, qos={self.qos}, retain={self.retain})"


# -- ids, times, values -----------------------------------------------------------------------

any_id = st.from_regex(ID_PATTERN, fullmatch=True).filter(lambda text: text not in RESERVED)
gw_ids = st.one_of(st.sampled_from(FUZZ_GWS), any_id)
button_ids = st.one_of(st.sampled_from(FUZZ_BUTTONS), any_id)
event_ids = st.one_of(
    st.sampled_from(FIXED_EVENT_IDS),
    st.builds(make_ulid, st.integers(0, 2**48 - 1), st.binary(min_size=10, max_size=10)),
    st.uuids().map(str),
)
wire_ts = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(
    format_ts
)

#: Characters a topic level may carry through Mosquitto (it disconnects a client for the others).
_TOPIC_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Cn"), blacklist_characters="/+#")
odd_segments = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "gw a",
            "gw-\u00e9",
            "\U0001f525",
            "..",
            "-gw",
            "_gw",
            "\u200b",
            "\uff47\uff57",  # fullwidth "gw"
            "gw\u0301",
            "gw-\u202e",
            "g" * 64,  # the longest valid id
            "g" * 65,
            "g" * 1000,
            "g" * 60_000,
        ]
    ),
    st.text(_TOPIC_CHARS, min_size=1, max_size=40),
)

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)

WRONG_TYPES = (None, True, False, 0, -1, 1.5, "", "x", [], {}, [1, "a"], {"a": {"b": []}})
HUGE_NUMBERS = (
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    10**400,  # beyond any float
    Raw("1" + "0" * 5000),  # beyond Python's int-from-text limit (4300 digits)
    1e308,
    -1e308,
    5e-324,
    -0.0,
)
NON_FINITE = (Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e999"), Raw("-1e999"))
DEEP = tuple(Raw("[" * depth + "]" * depth) for depth in (30, 200, 900, 990, 1500, 100_000)) + tuple(
    Raw('{"a":' * depth + "1" + "}" * depth) for depth in (200, 900, 990, 5000)
)
HUGE_STRINGS = (
    "x" * 300,
    "x" * 70_000,
    "\U0001f525" * 20_000,
    "x" * 270_000,  # the payload goes past 256 KiB
    "\x00" * 10,
    Raw('"\\ud800"'),  # a lone surrogate: valid JSON, not encodable as UTF-8
    Raw('"a\\udfff\\ud800b"'),
    "\u202egnp.exe",
    "<script>alert(1)</script>",
    "'; DROP TABLE alarms; --",
)
ODD_DATES = (
    "9999-12-31T23:59:59.999Z",
    "0000-01-01T00:00:00.000Z",
    "0001-01-01T00:00:00.000+14:00",  # before year 1 in UTC
    "9999-12-31T23:59:59.999-14:00",  # after year 9999 in UTC
    "1970-01-01T00:00:00.000Z",
    "2026-02-30T00:00:00.000Z",
    "2026-12-31T23:59:60.000Z",
    "2026-11-28T24:00:00.000Z",
    "2026-11-28T04:05:06.789+99:99",
    "2026-11-28T04:05:06.789",
    "2026-11-28 04:05:06.789Z",
    "2026-11-28T04:05:06.123456Z",
    "2026-11-28T04:05:06.1234567Z",
    "2026-11-28T04:05:06Z",
    "2026-11-28T04:05:06.789z",
    "2026-11-28T04:05:06.789Z\n",
    "\u0662\u0660\u0662\u0666-\u0661\u0661-\u0662\u0668T\u0660\u0664:\u0660\u0665:\u0660\u0666Z",  # Arabic-Indic digits
    "\uff12\uff10\uff12\uff16-\uff11\uff11-\uff12\uff18T\uff10\uff14:\uff10\uff15:\uff10\uff16Z",  # fullwidth digits
    "",
    "now",
)
EDGE_NUMBERS = (90.0000001, -90.0000001, 180.0000001, -180.0000001, 91, -181, -1, 600_001, 1e9, 0)
ENUM_LIKE = ("FIRE", "Fire", "smoke", "press ", "PRESS", "online\x00", "sapa", "fire", "gpio", "lora", "received")

odd_values = st.one_of(
    st.sampled_from(WRONG_TYPES),
    st.sampled_from(HUGE_NUMBERS),
    st.sampled_from(NON_FINITE),
    st.sampled_from(DEEP),
    st.sampled_from(HUGE_STRINGS),
    st.sampled_from(ODD_DATES),
    st.sampled_from(EDGE_NUMBERS),
    st.sampled_from(ENUM_LIKE),
    gw_ids,
    json_values,
    st.text(max_size=30),
)

#: Keys a mutation may add anywhere: the contract's own names, at the wrong level or with the wrong value.
KNOWN_KEYS = (
    "v", "id", "gw", "button", "kind", "type", "ts", "src", "seq", "held_ms", "radio", "state", "reason",
    "started", "version", "buttons", "site", "lat", "lon", "label", "name", "transport", "outbox", "counters",
    "uptime_s", "depth", "oldest_ts", "memory_only", "nodes", "module", "pressed_for_s", "age_s", "outbox_ok",
    "outbox_error", "low_battery", "tamper", "battery_mv",
)  # fmt: skip


# -- valid payloads ---------------------------------------------------------------------------------


def event_doc(gw: str) -> st.SearchStrategy[dict[str, Any]]:
    radio = st.fixed_dictionaries(
        {},
        optional={
            "node": st.integers(0, 2**32),
            "counter": st.integers(0, 2**32),
            "event_counter": st.integers(0, 2**32),
            "rssi": st.integers(-140, 0),
            "snr": st.floats(-20, 20),
            "battery_mv": st.integers(0, 5000),
            "flags": st.integers(0, 255),
            "module": st.sampled_from(["rylr998", "e32"]),
        },
    )
    return st.fixed_dictionaries(
        {
            "v": st.just(1),
            "id": event_ids,
            "gw": st.just(gw),
            "button": button_ids,
            "kind": st.sampled_from(["fire", "sapa"]),
            "type": st.sampled_from(["press", "test", "heartbeat", "low_battery", "tamper"]),
            "ts": wire_ts,
            "src": st.sampled_from(["gpio", "lora"]),
        },
        optional={"seq": st.integers(0, 2**62), "held_ms": st.integers(0, 600_000), "radio": radio},
    )


def status_doc(gw: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"v": st.just(1), "gw": st.just(gw), "state": st.sampled_from(["online", "offline"]), "ts": wire_ts},
        optional={
            "version": st.text(max_size=64),
            "reason": st.sampled_from(["connected", "shutdown", "lost"]),
            "started": wire_ts,
        },
    )


button_doc = st.fixed_dictionaries(
    {
        "id": button_ids,
        "kind": st.sampled_from(["fire", "sapa"]),
        "transport": st.sampled_from(["gpio", "lora"]),
        "site": st.fixed_dictionaries(
            {"name": st.text(min_size=1, max_size=40), "lat": st.floats(-90, 90), "lon": st.floats(-180, 180)}
        ),
    },
    optional={"label": st.text(max_size=40)},
)


def inventory_doc(gw: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"v": st.just(1), "gw": st.just(gw), "ts": wire_ts, "buttons": st.lists(button_doc, max_size=4)}
    )


_node = st.fixed_dictionaries(
    {"button": button_ids},
    optional={
        "last_heard": wire_ts,
        "age_s": st.floats(0, 1e7),
        "rssi": st.integers(-140, 0),
        "snr": st.floats(-20, 20),
        "battery_mv": st.integers(0, 5000),
        "low_battery": st.booleans(),
        "tamper": st.booleans(),
        "frames": st.integers(0, 10**6),
    },
)
_radio = st.fixed_dictionaries(
    {
        "module": st.fixed_dictionaries(
            {
                "type": st.sampled_from(["rylr998", "e32"]),
                "port": st.just("/dev/ttyUSB0"),
                "state": st.sampled_from(["open", "missing"]),
            }
        ),
        "nodes": st.dictionaries(st.integers(1, 65535).map(str), _node, max_size=3),
    }
)
_wired = st.fixed_dictionaries(
    {"id": button_ids, "pressed": st.booleans(), "pressed_for_s": st.one_of(st.none(), st.floats(0, 1e6))}
)


def health_doc(gw: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "v": st.just(1),
            "gw": st.just(gw),
            "ts": wire_ts,
            "uptime_s": st.floats(0, 1e9),
            "outbox": st.fixed_dictionaries(
                {"depth": st.integers(0, 10**6)},
                optional={
                    "oldest_ts": st.one_of(st.none(), wire_ts),
                    "memory_only": st.integers(0, 100),
                    "inflight": st.integers(0, 500),
                    "awaiting_receipt": st.integers(0, 5000),
                },
            ),
            "counters": st.dictionaries(st.text(max_size=20), st.integers(0, 2**62), max_size=4),
        },
        optional={
            "version": st.text(max_size=10),
            "outbox_ok": st.booleans(),
            "outbox_error": st.one_of(st.none(), st.text(max_size=40)),
            "delivery_verified": st.booleans(),
            "mqtt_connected": st.booleans(),
            "dashboard_online": st.one_of(st.none(), st.booleans()),
            "pump_alive": st.booleans(),
            "buttons": st.lists(_wired, max_size=3),
            "radio": _radio,
        },
    )


DOCS: dict[Channel, Callable[[str], st.SearchStrategy[dict[str, Any]]]] = {
    Channel.STATUS: status_doc,
    Channel.INVENTORY: inventory_doc,
    Channel.EVENT: event_doc,
    Channel.HEALTH: health_doc,
}


# -- mutations and broken encodings ---------------------------------------------------------------


def _slots(doc: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) of a document, nested: dict keys and list indexes."""
    found: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in list(node):
                found.append((node, key))
                walk(node[key])
        elif isinstance(node, list):
            for index, item in enumerate(node):
                found.append((node, index))
                walk(item)

    walk(doc)
    return found


def _objects(doc: Any) -> list[dict[str, Any]]:
    return [doc] + [container[key] for container, key in _slots(doc) if isinstance(container[key], dict)]


MUTATIONS = ("replace", "drop", "add", "duplicate")


@st.composite
def mutated(
    draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]], operations: tuple[str, ...] = MUTATIONS, most: int = 2
) -> Any:
    """A valid document with one to ``most`` mutations anywhere in it."""
    doc: Any = copy.deepcopy(draw(base))
    for _ in range(draw(st.integers(1, most))):
        operation = draw(st.sampled_from(operations))
        slots = _slots(doc)
        if operation in ("replace", "drop") and slots:
            container, key = draw(st.sampled_from(slots))
            if operation == "replace":
                container[key] = draw(odd_values)
            else:
                del container[key]
        elif operation == "add":
            target = draw(st.sampled_from(_objects(doc)))
            target[draw(st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=12)))] = draw(odd_values)
        else:  # a key written twice: JSON parsers keep the last one
            target = draw(st.sampled_from(_objects(doc)))
            if target:
                key = draw(st.sampled_from(sorted(target)))
                duplicated = Dup(target, [(key, draw(odd_values))])
                if target is doc:
                    doc = duplicated
                else:
                    for container, slot in _slots(doc):
                        if container[slot] is target:
                            container[slot] = duplicated
                            break
    return doc


BAD_UTF8 = (b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80")


@st.composite
def broken_encodings(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> bytes:
    doc = draw(base)
    text = encode(doc)
    how = draw(st.sampled_from(("bad_utf8", "bom", "utf16", "utf16le", "utf32", "trailing", "twice", "nul", "latin1")))
    if how == "bad_utf8":
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.sampled_from(BAD_UTF8)) + text[at:]
    if how == "bom":
        return b"\xef\xbb\xbf" + text
    if how in ("utf16", "utf16le", "utf32"):
        return dumps(doc).encode({"utf16": "utf-16", "utf16le": "utf-16-le", "utf32": "utf-32"}[how])
    if how == "trailing":
        return text + draw(st.sampled_from((b" \n", b"x", b",", b"}", b"\x00")))
    if how == "twice":
        return text + text
    if how == "nul":
        return b"\x00" + text
    return text.replace(b'"v":1', '"v":1,"nama":"Kec. Lain\u00e9a"'.encode("latin-1"), 1)


ODD_PAYLOADS = (
    b"",
    b"null",
    b"true",
    b"0",
    b"[]",
    b"{}",
    b" ",
    b"\x00",
    b'{"v":1}',
    b'{"v":"1"}',
    b'{"v":1.0}',
    b'{"v":true}',
    b'"\\ud800"',
    b"[" * 100_000,
    b'{"a":' * 50_000,
    b"x" * 300_000,
    b"{" + b'"k":1,' * 20_000 + b'"v":1}',
)


@st.composite
def messages(draw: st.DrawFn) -> Msg:
    """One message on one of the ingest's channels."""
    channel = draw(st.sampled_from(INGEST_CHANNELS))
    gw = draw(gw_ids)
    where = draw(st.integers(0, 9))  # mostly the payload's own gateway, so that it gets past the topic check
    segment = gw if where < 8 else draw(gw_ids if where == 8 else odd_segments)
    doc = DOCS[channel](gw)
    family = draw(st.integers(0, 9))
    if family <= 3:
        payload = encode(draw(mutated(doc)))
    elif family <= 5:  # extra keys anywhere: receivers ignore unknown fields, so these reach the store
        payload = encode(draw(mutated(doc, ("add",), most=3)))
    elif family <= 7:
        payload = encode(draw(doc))
    elif family == 8:
        payload = draw(broken_encodings(doc))
    else:
        payload = draw(st.one_of(st.sampled_from(ODD_PAYLOADS), st.binary(max_size=200), json_values.map(encode)))
    qos = draw(st.sampled_from((1, 0, 2)))
    return Msg(f"{ROOT}/gw/{segment}/{channel.value}", payload, qos, draw(st.booleans()))


# -- the oracle -----------------------------------------------------------------------------------

_DECODERS = {
    Channel.STATUS: decode_status,
    Channel.INVENTORY: decode_inventory,
    Channel.EVENT: decode_event,
    Channel.HEALTH: decode_health,
}


@dataclass(frozen=True)
class Expected:
    outcome: str  # "rejected", "event", "accepted" (status, inventory, health), "decoder_crash"
    detail: str | None = None  # the reason, the event id, or the exception


def expected(message: Msg) -> Expected:
    """What the contract says the dashboard does with ``message``."""
    try:
        gw, channel = TOPICS.parse(message.topic)
        decoded = _DECODERS[channel](message.payload)
    except BadPayload as exc:
        return Expected("rejected", exc.reason)
    except BadTopic:
        return Expected("rejected", "bad_topic")
    except Exception as exc:  # the decoder itself failed: the ingest would set the message aside
        return Expected("decoder_crash", repr(exc)[:300])
    if decoded.gw != gw:
        return Expected("rejected", "gw_mismatch")
    if channel is Channel.EVENT:
        return Expected("event", decoded.id)  # type: ignore[union-attr]
    return Expected("accepted")


# -- a fixed catalogue for the deterministic burst ------------------------------------------------


def poison_catalogue(gw: str, ts: str) -> list[tuple[Channel, bytes]]:
    """Hand-picked bad (and valid-but-odd) messages for ``gw``; none names :data:`BURST_BUTTON`."""
    event = {"v": 1, "id": FIXED_EVENT_IDS[0], "gw": gw, "button": "burst-other", "kind": "fire",
             "type": "press", "ts": ts, "src": "gpio"}  # fmt: skip
    site = {"name": "Pasar Andoolo", "lat": -4.35, "lon": 122.38}
    button = {"id": "burst-other", "kind": "sapa", "transport": "gpio", "site": site}
    inventory = {"v": 1, "gw": gw, "ts": ts, "buttons": [button]}
    status = {"v": 1, "gw": gw, "state": "online", "ts": ts}
    health = {"v": 1, "gw": gw, "ts": ts, "uptime_s": 1.0, "outbox": {"depth": 0}, "counters": {}}
    E, I, S, H = Channel.EVENT, Channel.INVENTORY, Channel.STATUS, Channel.HEALTH  # noqa: E741
    return [
        (E, b"{not json"),
        (E, b"\xff\xfe\x00"),
        (E, b""),
        (E, b"[]"),
        (E, encode({**event, "v": 2})),
        (E, encode({**event, "kind": "smoke"})),
        (E, encode({**event, "type": "PRESS"})),
        (E, encode({**event, "gw": "gw-elsewhere"})),
        (E, encode({**event, "id": "not-an-id"})),
        (E, encode({**event, "seq": 2**64})),
        (E, encode({**event, "seq": Raw("NaN")})),
        (E, encode({**event, "held_ms": Raw("1e999")})),
        (E, encode({**event, "ts": "9999-12-31T23:59:59.999Z"})),
        (E, encode({**event, "ts": "0000-01-01T00:00:00.000Z"})),
        (E, encode({**event, "radio": Raw("[" * 5000 + "]" * 5000)})),
        (E, encode({**event, "extra": "x" * 270_000})),
        (E, encode({key: value for key, value in event.items() if key != "button"})),
        (E, encode(Dup(event, [("kind", "smoke")]))),
        (E, encode({**event, "button": "ghost-burst", "kind": "sapa"})),  # valid: a button in no inventory
        (E, encode({**event, "id": FIXED_EVENT_IDS[1]})),  # valid, then a duplicate every round
        (I, encode({**inventory, "buttons": [button, button]})),
        (I, encode({**inventory, "buttons": [{**button, "site": {**site, "lat": 90.0000001}}]})),
        (I, encode({**inventory, "buttons": [{**button, "site": {**site, "lon": Raw("-Infinity")}}]})),
        (I, encode({**inventory, "buttons": [{**button, "site": {**site, "name": Raw('"\\ud800"')}}]})),
        (I, encode({**inventory, "buttons": [{**button, "kind": "fire?"}]})),
        (I, encode(inventory)),  # valid
        (S, encode({**status, "state": "degraded"})),
        (S, encode({**status, "ts": "2026-02-30T00:00:00.000Z"})),
        (S, encode({**status, "version": "v" * 65})),
        (S, encode(status)),  # valid
        (H, encode({**health, "uptime_s": -1})),
        (H, encode({**health, "counters": {"presses": -1}})),
        (H, encode({**health, "outbox": {"depth": 2**70}})),
        (H, encode(health)),  # valid
    ]
