"""The gateway <-> dashboard MQTT contract: topics, payloads, validation errors."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime

import pytest

from firmware_bridge import BadPayload, BadTopic, SiagaError
from firmware_bridge.ids import is_event_id, make_ulid, ulid_millis
from firmware_bridge.payloads import (
    MAX_PAYLOAD_BYTES,
    ButtonHealth,
    ButtonInfo,
    Event,
    EventType,
    GatewayState,
    Health,
    Indication,
    IndicationState,
    Inventory,
    Kind,
    LoraMode,
    LoraModel,
    ModuleState,
    NodeHealth,
    OutboxHealth,
    RadioHealth,
    RadioModule,
    Site,
    Source,
    Status,
    decode_event,
    decode_health,
    decode_indication,
    decode_inventory,
    decode_status,
)
from firmware_bridge.timeutil import format_epoch, format_ts, parse_ts
from firmware_bridge.topics import Channel, Topics

ULID = make_ulid(1_795_000_000_000, bytes(range(10)))


def event(**changes: object) -> dict:
    base = {
        "v": 1,
        "id": ULID,
        "gw": "gw-a",
        "button": "fire-1",
        "kind": "fire",
        "type": "press",
        "ts": "2026-11-28T04:05:06.789Z",
        "src": "gpio",
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def raw(data: dict) -> bytes:
    return json.dumps(data).encode()


# -- topics -------------------------------------------------------------------------


def test_topics_are_built_under_the_root_and_parse_back() -> None:
    topics = Topics("siaga/v1")
    assert topics.event("gw-a") == "siaga/v1/gw/gw-a/event"
    assert topics.indicate("gw-a") == "siaga/v1/gw/gw-a/cmd/indicate"
    for channel in Channel:
        assert topics.parse(topics.topic("gw-a", channel)) == ("gw-a", channel)
    assert topics.subscription(Channel.STATUS) == "siaga/v1/gw/+/status"


def test_channel_qos_and_retain_follow_the_contract() -> None:
    assert (Channel.STATUS.qos, Channel.STATUS.retain) == (1, True)
    assert (Channel.INVENTORY.qos, Channel.INVENTORY.retain) == (1, True)
    assert (Channel.EVENT.qos, Channel.EVENT.retain) == (1, False)
    assert (Channel.HEALTH.qos, Channel.HEALTH.retain) == (0, False)
    assert (Channel.INDICATE.qos, Channel.INDICATE.retain) == (1, False)


@pytest.mark.parametrize(
    "topic",
    [
        "other/v1/gw/gw-a/event",
        "siaga/v1/gw/gw-a/unknown",
        "siaga/v1/gw/gw-a",
        "siaga/v1/gw//event",
        "siaga/v1/gw/+/event",
        "siaga/v1/gw/gw-a/event/extra",
    ],
)
def test_foreign_topics_are_refused(topic: str) -> None:
    with pytest.raises(BadTopic):
        Topics().parse(topic)


@pytest.mark.parametrize("gw", ["", "a/b", "a+b", "#", "-leading", "x" * 65])
def test_ids_that_would_change_a_topic_are_refused(gw: str) -> None:
    with pytest.raises(BadTopic):
        Topics().event(gw)


@pytest.mark.parametrize("root", ["", "/siaga", "siaga/", "siaga/#", "a//b"])
def test_bad_roots_are_refused(root: str) -> None:
    with pytest.raises(BadTopic):
        Topics(root)


# -- events -------------------------------------------------------------------------


def test_event_round_trip() -> None:
    original = Event(
        id=ULID,
        gw="gw-a",
        button="fire-1",
        kind=Kind.FIRE,
        type=EventType.PRESS,
        ts="2026-11-28T04:05:06.789Z",
        src=Source.GPIO,
        held_ms=1200,
    )
    assert decode_event(original.encode()) == original


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    decoded = decode_event(raw(event(firmware="2.1", extra={"a": 1})))
    assert decoded.button == "fire-1"


@pytest.mark.parametrize("missing", ["v", "id", "gw", "button", "kind", "type", "ts", "src"])
def test_a_missing_field_is_named(missing: str) -> None:
    data = event()
    del data[missing]
    with pytest.raises(BadPayload) as caught:
        decode_event(raw(data))
    assert caught.value.field == missing
    assert missing in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("kind", "smoke", "bad_value"),
        ("type", "explode", "bad_value"),
        ("src", "wifi", "bad_value"),
        ("button", "fire/1", "invalid"),
        ("button", 17, "bad_type"),
        ("id", "not-an-id", "invalid"),
        ("ts", "2026-11-28 04:05:06", "invalid"),
        ("ts", "2026-11-28T04:05:06", "invalid"),
        ("held_ms", -1, "invalid"),
        ("v", 2, "bad_version"),
        ("v", "1", "bad_version"),
    ],
)
def test_a_wrong_field_is_named_with_a_reason(field: str, value: object, reason: str) -> None:
    with pytest.raises(BadPayload) as caught:
        decode_event(raw(event(**{field: value})))
    assert caught.value.field == field
    assert caught.value.reason == reason
    assert f"'{field}'" in str(caught.value)


def test_an_impossible_date_is_refused() -> None:
    with pytest.raises(BadPayload) as caught:
        decode_event(raw(event(ts="2026-13-40T04:05:06.789Z")))
    assert caught.value.reason == "bad_timestamp"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "not_json"),
        (b"{not json", "not_json"),
        (b"\xff\xfe", "bad_encoding"),
        ('{"v": 1}'.encode("utf-16"), "bad_encoding"),  # the contract is UTF-8
        ('{"v": 1}'.encode("utf-8-sig"), "bad_encoding"),  # ... without a byte-order mark
        (b'{"v": 1, "label": "\\ud800"}', "bad_encoding"),  # valid JSON, but no text: the store cannot keep it
        (b'{"v": 1, "kind": "fire", "kind": "sapa"}', "duplicate_key"),  # parsers differ on which one wins
        (b'{"v": 1, "uptime_s": 1' + b"0" * 400 + b"}", "out_of_range"),
        (b'{"v": 1, "seq": 9223372036854775808}', "out_of_range"),
        (b'{"v": 1, "ts": ' + b"[" * 900 + b'"\\u0041"' + b"]" * 900 + b"}", "too_deep"),  # escapes, deep
        (b"[1, 2]", "not_object"),
        (b"null", "not_object"),
        (b'"press"', "not_object"),
        (b" " * (MAX_PAYLOAD_BYTES + 1), "too_large"),
        (b"[" * 200_000, "too_deep"),
        (b'{"v": 1, "lat": NaN}', "not_finite"),
        (b'{"v": 1, "lat": -Infinity}', "not_finite"),
        (b'{"v": 1, "lat": 1e999}', "not_finite"),
    ],
)
def test_garbage_payloads_get_a_precise_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(BadPayload) as caught:
        decode_event(payload)
    assert caught.value.reason == reason


def test_errors_are_siaga_errors_and_builtins() -> None:
    with pytest.raises(SiagaError):
        decode_event(b"nope")
    with pytest.raises(ValueError):
        decode_event(b"nope")


def test_the_encoder_refuses_an_invalid_event() -> None:
    bad = Event(id="x", gw="gw-a", button="b", kind=Kind.FIRE, type=EventType.PRESS, ts="now", src=Source.GPIO)
    with pytest.raises(BadPayload):
        bad.encode()


# -- other payloads -----------------------------------------------------------------------


def test_status_inventory_health_indication_round_trip() -> None:
    now = format_epoch(1_795_000_000.5)
    status = Status(gw="gw-a", state=GatewayState.ONLINE, ts=now, version="0.1.0", started=now)
    assert decode_status(status.encode()) == status
    inventory = Inventory(
        gw="gw-a",
        ts=now,
        buttons=(ButtonInfo("fire-1", Kind.FIRE, Source.GPIO, Site("Pasar Andoolo", -4.35, 122.37), "Blok A"),),
    )
    assert decode_inventory(inventory.encode()) == inventory
    health = Health(gw="gw-a", ts=now, uptime_s=3.5, outbox=OutboxHealth(depth=0), counters={"x": 1})
    assert decode_health(health.encode()).counters == {"x": 1}
    assert decode_health(health.encode()) == health
    indication = Indication(button="fire-1", state=IndicationState.RECEIVED, alarm=3, rev=0, ts=now)
    assert decode_indication(indication.encode()) == indication


# -- health: every field typed ---------------------------------------------------------------

#: What today's gateway sends, with LoRa (an RYLR module) and one wired button: every field.
TODAYS_HEALTH = {
    "v": 1,
    "gw": "gw-pasar-andoolo",
    "ts": "2026-11-28T04:05:06.789Z",
    "uptime_s": 3600.5,
    "outbox": {"depth": 2, "oldest_ts": "2026-11-28T04:04:06.789Z", "memory_only": 0, "inflight": 1,
               "awaiting_receipt": 2},
    "counters": {"presses": 3, "radio_rejected.bad_mac": 1},
    "version": "0.1.0",
    "outbox_ok": True,
    "delivery_verified": True,
    "mqtt_connected": True,
    "pump_alive": True,
    "outbox_error": None,
    "dashboard_online": None,
    "buttons": [{"id": "pasar-andoolo-fire-1", "pressed": True, "pressed_for_s": 1.5}],
    "radio": {
        "module": {"type": "rylr998", "port": "/dev/ttyUSB0", "state": "open", "since": "2026-11-28T03:05:06.000Z",
                   "last_error": None, "configured": True, "queued": 0},
        "nodes": {
            "1001": {"button": "pasar-andoolo-fire-2", "last_heard": "2026-11-28T04:05:00.000Z", "age_s": 6.8,
                     "low_battery": True, "tamper": False, "rssi": -97, "snr": 7.25, "battery_mv": 3300, "frames": 12,
                     "events": 2, "heartbeats": 9, "duplicates": 1, "rejected": {"bad_mac": 1}},
            "1002": {"button": "pasar-andoolo-sapa-1", "last_heard": None, "age_s": None, "low_battery": False,
                     "tamper": False, "rssi": None, "snr": None, "battery_mv": None, "frames": 0, "events": 0,
                     "heartbeats": 0, "duplicates": 0, "rejected": {}},
        },
        "rejected": {"bad_mac": 1},
    },
}  # fmt: skip


def test_todays_full_health_reads_into_typed_fields_and_round_trips_unchanged() -> None:
    health = decode_health(json.dumps(TODAYS_HEALTH))
    assert health.outbox == OutboxHealth(
        depth=2, oldest_ts="2026-11-28T04:04:06.789Z", memory_only=0, inflight=1, awaiting_receipt=2
    )
    assert health.buttons == (ButtonHealth("pasar-andoolo-fire-1", pressed=True, pressed_for_s=1.5),)
    assert (health.outbox_ok, health.delivery_verified, health.dashboard_online) == (True, True, None)
    radio = health.radio
    assert isinstance(radio, RadioHealth) and radio.rejected == {"bad_mac": 1}
    assert radio.module == RadioModule(
        type=LoraModel.RYLR998, port="/dev/ttyUSB0", state=ModuleState.OPEN, since="2026-11-28T03:05:06.000Z",
        configured=True, queued=0,
    )  # fmt: skip
    node = radio.nodes["1001"]
    assert isinstance(node, NodeHealth) and (node.button, node.age_s, node.rssi, node.snr) == (
        "pasar-andoolo-fire-2", 6.8, -97, 7.25,
    )  # fmt: skip
    assert node.low_battery is True and node.rejected == {"bad_mac": 1} and health.unknown == {}
    assert health.to_dict() == TODAYS_HEALTH  # what a gateway sent is what the dashboard stores
    assert decode_health(health.encode()) == health


def test_an_e32_module_and_a_newer_gateways_fields_round_trip() -> None:
    module = {"type": "e32", "port": "/dev/ttyS0", "state": "missing", "since": "2026-11-28T03:05:06.000Z",
              "last_error": "[Errno 2] No such file", "mode": "fixed", "skipped_bytes": 4, "bad_crc": 1}  # fmt: skip
    sent = {**TODAYS_HEALTH, "radio": {"module": module, "nodes": {}, "rejected": {}}, "solar_mv": 12_900}
    health = decode_health(json.dumps(sent))
    assert health.radio is not None and health.radio.module is not None
    assert (health.radio.module.mode, health.radio.module.state) == (LoraMode.FIXED, ModuleState.MISSING)
    assert health.unknown == {"solar_mv": 12_900}  # kept, and passed on as sent
    assert health.to_dict() == sent and decode_health(health.encode()) == health


def test_a_newer_gateways_unknown_module_codes_cost_nothing_but_themselves() -> None:
    """A module model, state or mode this version does not know reads as unknown; the rest of the report counts."""
    module = {"type": "sx1262", "port": "/dev/ttyAMA0", "state": "sleeping", "mode": "mesh"}
    health = decode_health(json.dumps({**TODAYS_HEALTH, "radio": {"module": module, "nodes": {}, "rejected": {}}}))
    assert health.radio is not None and health.radio.module is not None
    assert (health.radio.module.type, health.radio.module.state, health.radio.module.mode) == (None, None, None)
    assert health.radio.module.port == "/dev/ttyAMA0" and health.outbox.depth == 2


def test_an_old_partial_health_is_accepted_and_reads_as_unknown() -> None:
    old = {"v": 1, "gw": "gw-a", "ts": "2026-11-28T04:05:06.789Z", "uptime_s": 1, "outbox": {"depth": 0},
           "counters": {}, "buttons": [{"id": "fire-1"}], "radio": {"nodes": {"7": {"button": "lora-7"}}}}  # fmt: skip
    health = decode_health(json.dumps(old))
    assert (health.version, health.outbox_ok, health.pump_alive, health.outbox.memory_only) == (None,) * 4
    assert health.buttons == (ButtonHealth("fire-1"),)
    assert health.radio == RadioHealth(module=None, nodes={"7": NodeHealth("lora-7")})
    assert decode_health(health.encode()) == health  # what it lacks stays unknown


@pytest.mark.parametrize(
    ("member", "field", "reason"),
    [
        ({"radio": True}, "radio", "bad_type"),
        ({"buttons": 5}, "buttons", "bad_type"),
        ({"buttons": [{"id": "b", "pressed_for_s": "long"}]}, "buttons[0].pressed_for_s", "invalid"),
        ({"radio": {"module": {"state": 5}}}, "radio.module.state", "bad_type"),
        ({"radio": {"nodes": {"1": {"age_s": 1}}}}, "radio.nodes.1.button", "missing_field"),
        ({"outbox_ok": "yes"}, "outbox_ok", "bad_type"),
    ],
)
def test_a_health_field_of_the_wrong_type_is_named(member: dict, field: str, reason: str) -> None:
    with pytest.raises(BadPayload) as caught:
        decode_health(json.dumps({**TODAYS_HEALTH, **member}))
    assert (caught.value.field, caught.value.reason) == (field, reason)


def test_the_fields_beyond_the_core_ones_are_written_back_as_sent() -> None:
    health = decode_health(json.dumps(TODAYS_HEALTH))
    core = {"v", "gw", "ts", "uptime_s", "outbox", "counters"}
    beyond_core = {key: value for key, value in health.to_dict().items() if key not in core}
    assert beyond_core == {key: value for key, value in TODAYS_HEALTH.items() if key not in core}


def test_inventory_refuses_duplicate_buttons_and_bad_coordinates() -> None:
    site = {"name": "Pasar", "lat": -4.35, "lon": 122.37}
    button = {"id": "b1", "kind": "fire", "transport": "gpio", "site": site}
    base = {"v": 1, "gw": "gw-a", "ts": "2026-11-28T04:05:06.789Z"}
    with pytest.raises(BadPayload) as caught:
        decode_inventory(raw({**base, "buttons": [button, button]}))
    assert caught.value.reason == "duplicate"
    with pytest.raises(BadPayload) as caught:
        decode_inventory(raw({**base, "buttons": [{**button, "site": {**site, "lat": 91}}]}))
    assert caught.value.field == "buttons[0].site.lat"


def test_a_status_without_state_names_state() -> None:
    with pytest.raises(BadPayload) as caught:
        decode_status(raw({"v": 1, "gw": "gw-a", "ts": "2026-11-28T04:05:06.789Z"}))
    assert caught.value.field == "state"


def test_indications_are_ordered_by_alarm_then_revision() -> None:
    ts = "2026-11-28T04:05:06.789Z"
    first = Indication("b", IndicationState.RECEIVED, alarm=5, rev=0, ts=ts)
    acked = Indication("b", IndicationState.ACKNOWLEDGED, alarm=5, rev=1, ts=ts)
    newer_alarm = Indication("b", IndicationState.RECEIVED, alarm=6, rev=0, ts=ts)
    assert acked.supersedes(first) and not first.supersedes(acked)
    assert newer_alarm.supersedes(acked)
    assert first.supersedes(None)


# -- ids and time ---------------------------------------------------------------------------


def test_ulids_sort_by_time_and_keep_their_millis() -> None:
    early = make_ulid(1000, b"\xff" * 10)
    late = make_ulid(1001, b"\x00" * 10)
    assert early < late
    assert ulid_millis(late) == 1001
    assert is_event_id(early) and is_event_id("123e4567-e89b-12d3-a456-426614174000")
    assert not is_event_id("01J" + "I" * 23)  # I is not Crockford base32


def test_event_ids_are_what_the_dashboard_receipted_before() -> None:
    """``is_event_id`` replaced the ingest's own pattern: the same ids pass, the same are refused."""
    former = re.compile(r"^([0-7][0-9A-HJKMNP-TV-Z]{25}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
    ulid = make_ulid(1_700_000_000_000, bytes(range(10)))
    uuid_text = "123e4567-e89b-12d3-a456-426614174000"
    samples = [
        ulid,
        make_ulid(0, bytes(10)),
        make_ulid((1 << 48) - 1, b"\xff" * 10),
        uuid_text,
        str(uuid.uuid5(uuid.NAMESPACE_URL, "siaga")),
        ulid + "\n",
        uuid_text + "\n",
        ulid.lower(),
        uuid_text.upper(),
        "8" + ulid[1:],
        ulid[:-1],
        ulid + "0",
        ulid[:10] + "I" + ulid[11:],
        ulid[:10] + "U" + ulid[11:],
        uuid_text.replace("-", ""),
        "{" + uuid_text + "}",
        " " + ulid,
        "",
    ]
    for sample in samples:
        assert is_event_id(sample) == bool(former.match(sample)), repr(sample)
    for other in (None, 42, ulid.encode(), [ulid]):
        assert not is_event_id(other)


def test_timestamps_are_utc_with_milliseconds_and_need_a_timezone() -> None:
    assert format_epoch(0.25) == "1970-01-01T00:00:00.250Z"
    # Milliseconds are cut, never rounded up into the next second (either way of formatting).
    assert format_epoch(1700000000.9999) == "2023-11-14T22:13:20.999Z"
    assert format_epoch(253402300799.5) == "9999-12-31T23:59:59.500Z"
    for moment in (0.0005, 86399.9994, 1764547200.123456):
        assert format_epoch(moment) == format_ts(datetime.fromtimestamp(moment, tz=UTC))
    assert parse_ts("2026-11-28T12:00:00.000+08:00").utcoffset().total_seconds() == 8 * 3600
    with pytest.raises(BadPayload):
        parse_ts("2026-11-28T12:00:00")
