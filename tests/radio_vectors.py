"""Build the radio protocol's test vectors (docs/radio-vectors.json) from the reference codec.

    .venv/bin/python -m tests.radio_vectors > docs/radio-vectors.json

The committed file is the specification's vectors: tests check that the
gateway's codec and the node firmware's codec both agree with it, and that
the codec still produces exactly these bytes.
"""

from __future__ import annotations

import json
import sys

from firmware_bridge import radio
from firmware_bridge.payloads import IndicationState, Kind

KEY = bytes(range(16))
NODE = 1001
OTHER_KEY = bytes(range(16, 32))


def _uplink(**kw: object) -> radio.Uplink:
    base = dict(
        node=NODE,
        counter=1,
        event_counter=1,
        type=radio.FrameType.PRESS,
        kind=Kind.FIRE,
        battery_mv=3700,
        flags=radio.Flag.NONE,
    )
    base.update(kw)
    return radio.Uplink(**base)  # type: ignore[arg-type]


def _fields(frame: radio.Uplink) -> dict:
    return {
        "node": frame.node,
        "counter": frame.counter,
        "event_counter": frame.event_counter,
        "type": frame.type.name.lower(),
        "kind": str(frame.kind),
        "battery_mv": frame.battery_mv,
        "flags": int(frame.flags),
    }


def _remac(body: bytes, key: bytes = KEY) -> bytes:
    return body + radio.mac(key, body)


def build() -> dict:
    valid_uplinks = {
        "press": _uplink(),
        "retry of the press": _uplink(counter=2, event_counter=1, flags=radio.Flag.RETRY),
        "heartbeat": _uplink(counter=3, event_counter=3, type=radio.FrameType.HEARTBEAT, battery_mv=3650),
        "sapa press held": _uplink(counter=4, event_counter=4, kind=Kind.SAPA, flags=radio.Flag.HELD),
        "low battery": _uplink(
            counter=5, event_counter=5, type=radio.FrameType.LOW_BATTERY, battery_mv=3310, flags=radio.Flag.LOW_BATTERY
        ),
        "tamper": _uplink(counter=6, event_counter=6, type=radio.FrameType.TAMPER, flags=radio.Flag.TAMPER),
    }
    press = radio.encode_uplink(valid_uplinks["press"], KEY)
    body = press[: -radio.MAC_LEN]
    invalid = {
        "truncated": (press[:20], "truncated"),
        "one byte too many": (press + b"\x00", "too_long"),
        "version 2": (bytes([0x20]) + press[1:], "bad_version"),
        "class 3": (bytes([0x13]) + press[1:], "bad_class"),
        "unknown node 999": (radio.encode_uplink(_uplink(node=999), OTHER_KEY), "unknown_node"),
        "MAC of another key": (radio.encode_uplink(_uplink(), OTHER_KEY), "bad_mac"),
        "last MAC byte flipped": (press[:-1] + bytes([press[-1] ^ 0x01]), "bad_mac"),
        "counter changed after signing": (body[:8] + bytes([body[8] ^ 0x02]) + body[9:] + press[-8:], "bad_mac"),
        "type 9, correctly signed": (_remac(body[:13] + b"\x09" + body[14:]), "bad_field"),
        "kind 7, correctly signed": (_remac(body[:14] + b"\x07" + body[15:]), "bad_field"),
        "event counter above counter": (
            _remac(body[:9] + (5).to_bytes(4, "big") + body[13:]),
            "bad_field",
        ),
        "undefined flag bit": (_remac(body[:17] + b"\x80"), "bad_field"),
    }
    ack = radio.Ack(node=NODE, counter=2, event_counter=1)
    indications = {
        "received": radio.Indicate(NODE, 1, alarm=17, rev=0, state=IndicationState.RECEIVED),
        "acknowledged": radio.Indicate(NODE, 1, alarm=17, rev=1, state=IndicationState.ACKNOWLEDGED),
        "resolved": radio.Indicate(NODE, 1, alarm=17, rev=2, state=IndicationState.RESOLVED),
    }
    return {
        "about": "Siaga radio protocol v1 test vectors; see docs/radio-protocol.md",
        "key": KEY.hex(),
        "node": NODE,
        "valid_uplinks": [
            {"name": name, "hex": radio.encode_uplink(frame, KEY).hex(), "fields": _fields(frame)}
            for name, frame in valid_uplinks.items()
        ],
        "invalid_uplinks": [
            {"name": name, "hex": frame.hex(), "reason": reason} for name, (frame, reason) in invalid.items()
        ],
        "replay": {
            "about": "after the gateway accepted counter 2, these valid frames are refused as replayed",
            "last_accepted_counter": 2,
            "frames": [
                radio.encode_uplink(valid_uplinks["press"], KEY).hex(),
                radio.encode_uplink(valid_uplinks["retry of the press"], KEY).hex(),
            ],
            "reason": "replayed",
        },
        "ack": {"hex": radio.encode_ack(ack, KEY).hex(), "counter": 2, "event_counter": 1},
        "indications": [
            {
                "name": name,
                "hex": radio.encode_indicate(frame, KEY).hex(),
                "event_counter": frame.event_counter,
                "alarm": frame.alarm,
                "rev": frame.rev,
                "state": str(frame.state),
            }
            for name, frame in indications.items()
        ],
        "rylr_text": {"frame_hex": press.hex(), "text": radio.to_text(press)},
        "e32_stream": {"frame_hex": press.hex(), "stream_hex": radio.to_stream(press).hex()},
        "event_id": {"node": NODE, "event_counter": 1, "id": radio.event_id(NODE, KEY, 1)},
    }


if __name__ == "__main__":
    json.dump(build(), sys.stdout, indent=2)
    sys.stdout.write("\n")
