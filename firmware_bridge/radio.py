"""The radio frame format between LoRa buttons and gateways (version 1), without I/O.

Every frame is authenticated with a truncated HMAC-SHA256 under the node's own
128-bit key, so a frame cannot be forged without the key; every uplink carries
a counter that grows with each transmission, so a recorded frame cannot be
replayed. ``docs/radio-protocol.md`` specifies the format for firmware authors,
with test vectors. The reference firmware (``firmware_bridge/firmware/``)
implements the same format independently for MicroPython; both are checked
against the same vectors.

Uplink (node -> gateway), 26 bytes::

    0  u8   version << 4 | class (0 = uplink)
    1  u32  node id
    5  u32  counter         every transmission, strictly increasing, never reused
    9  u32  event counter   the counter of the event's first transmission
    13 u8   type            press 1, test 2, heartbeat 3, low battery 4, tamper 5
    14 u8   kind            fire 1, sapa 2
    15 u16  battery (mV, 0 = unknown)
    17 u8   flags
    18 8B   MAC = HMAC-SHA256(key, bytes 0..17)[:8]

Downlinks (gateway -> node) are an ack (21 bytes) and an indication (24 bytes),
described in the protocol document. All integers are big-endian.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from .errors import BadFrame
from .payloads import EventType, IndicationState, Kind

VERSION = 1
MAX_FRAME = 58
MAC_LEN = 8
KEY_LEN = 16
MAX_COUNTER = 0xFFFFFFFF

#: Namespace of the deterministic event ids of radio events (uuid5).
EVENT_NAMESPACE = uuid.UUID("6d1c1c51-4a39-4f0e-9d4a-5a1a5e7c0b01")


class FrameClass(IntEnum):
    UPLINK = 0
    ACK = 1
    INDICATE = 2


class FrameType(IntEnum):
    PRESS = 1
    TEST = 2
    HEARTBEAT = 3
    LOW_BATTERY = 4
    TAMPER = 5


class Flag(IntFlag):
    NONE = 0
    HELD = 0x01  # a hold-to-confirm press, held the full time
    RETRY = 0x02  # a retransmission of an event not yet acknowledged
    EXTERNAL_POWER = 0x04
    LOW_BATTERY = 0x08
    TAMPER = 0x10


KNOWN_FLAGS = Flag.HELD | Flag.RETRY | Flag.EXTERNAL_POWER | Flag.LOW_BATTERY | Flag.TAMPER

KIND_CODES = {Kind.FIRE: 1, Kind.SAPA: 2}
KINDS_BY_CODE = {code: kind for kind, code in KIND_CODES.items()}
STATE_CODES = {
    IndicationState.RECEIVED: 1,
    IndicationState.ACKNOWLEDGED: 2,
    IndicationState.DISPATCHED: 3,
    IndicationState.RESOLVED: 4,
}
STATES_BY_CODE = {code: state for state, code in STATE_CODES.items()}

#: Which contract event each frame type becomes (heartbeats are kept by the gateway).
EVENT_TYPES = {
    FrameType.PRESS: EventType.PRESS,
    FrameType.TEST: EventType.TEST,
    FrameType.HEARTBEAT: EventType.HEARTBEAT,
    FrameType.LOW_BATTERY: EventType.LOW_BATTERY,
    FrameType.TAMPER: EventType.TAMPER,
}

_UPLINK = struct.Struct(">BIIIBBHB")  # 18 bytes before the MAC
_ACK = struct.Struct(">BIII")  # 13 bytes before the MAC
_INDICATE = struct.Struct(">BIIIHB")  # 16 bytes before the MAC
UPLINK_LEN = _UPLINK.size + MAC_LEN
ACK_LEN = _ACK.size + MAC_LEN
INDICATE_LEN = _INDICATE.size + MAC_LEN


# -- errors -----------------------------------------------------------------------------


class RadioError(BadFrame):
    """A frame that is refused. ``reason`` is the counter name; ``node`` the claimed node id, if read."""

    reason = "bad_frame"

    def __init__(self, message: str, *, node: int | None = None) -> None:
        super().__init__(message)
        self.node = node


class TruncatedFrame(RadioError):
    reason = "truncated"


class OversizedFrame(RadioError):
    reason = "too_long"


class UnknownVersion(RadioError):
    reason = "bad_version"


class WrongClass(RadioError):
    reason = "bad_class"


class UnknownNode(RadioError):
    reason = "unknown_node"


class ForgedFrame(RadioError):
    """The MAC does not match: forged, or corrupted on the way."""

    reason = "bad_mac"


class BadField(RadioError):
    """Authentic, but a field holds a value this version does not define (a firmware bug)."""

    reason = "bad_field"


class ReplayedFrame(RadioError):
    """The counter is not above the last accepted one (decided by the gateway's state)."""

    reason = "replayed"


class BadEncoding(RadioError):
    """The module's text does not carry a frame (RYLR base64)."""

    reason = "bad_encoding"


# -- frames ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Uplink:
    node: int
    counter: int
    event_counter: int
    type: FrameType
    kind: Kind
    battery_mv: int = 0
    flags: Flag = Flag.NONE

    @property
    def is_retry(self) -> bool:
        return self.counter != self.event_counter


@dataclass(frozen=True, slots=True)
class Ack:
    """ "I have your event": the node stops retrying it."""

    node: int
    counter: int
    event_counter: int


@dataclass(frozen=True, slots=True)
class Indicate:
    """What the node's LED should show for the alarm that includes its event."""

    node: int
    event_counter: int
    alarm: int
    rev: int
    state: IndicationState


def check_key(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_LEN:
        raise ValueError(f"a node key is {KEY_LEN} bytes")
    return bytes(key)


def mac(key: bytes, data: bytes) -> bytes:
    """The frame MAC: HMAC-SHA256 under the node key, first 8 bytes."""
    return hmac.new(key, data, hashlib.sha256).digest()[:MAC_LEN]


def _header(frame_class: FrameClass) -> int:
    return VERSION << 4 | int(frame_class)


def _u32(value: int, name: str) -> int:
    if not 0 <= value <= MAX_COUNTER:
        raise ValueError(f"{name} must fit in 32 bits")
    return value


def encode_uplink(frame: Uplink, key: bytes) -> bytes:
    if not 1 <= frame.event_counter <= frame.counter:
        raise ValueError("need 1 <= event_counter <= counter")
    body = _UPLINK.pack(
        _header(FrameClass.UPLINK),
        _u32(frame.node, "node"),
        _u32(frame.counter, "counter"),
        frame.event_counter,
        int(frame.type),
        KIND_CODES[Kind(frame.kind)],
        frame.battery_mv,
        int(frame.flags),
    )
    return body + mac(key, body)


def encode_ack(frame: Ack, key: bytes) -> bytes:
    body = _ACK.pack(_header(FrameClass.ACK), frame.node, frame.counter, frame.event_counter)
    return body + mac(key, body)


def encode_indicate(frame: Indicate, key: bytes) -> bytes:
    if not 0 <= frame.alarm <= MAX_COUNTER or not 0 <= frame.rev <= 0xFFFF:
        raise ValueError("alarm must fit in 32 bits and rev in 16")
    body = _INDICATE.pack(
        _header(FrameClass.INDICATE),
        frame.node,
        frame.event_counter,
        frame.alarm,
        frame.rev,
        STATE_CODES[IndicationState(frame.state)],
    )
    return body + mac(key, body)


def peek_node(frame: bytes) -> int | None:
    """The node id a frame claims (unauthenticated), for counters; None if too short."""
    if len(frame) < 5:
        return None
    return int.from_bytes(frame[1:5], "big")


def _check_envelope(frame: bytes, expected: FrameClass, length: int) -> int:
    """Length, version and class; returns the claimed node id."""
    if not isinstance(frame, (bytes, bytearray)):
        raise TruncatedFrame(f"a frame is bytes, not {type(frame).__name__}")
    node = peek_node(frame)
    if len(frame) < 1:
        raise TruncatedFrame("empty frame")
    version, frame_class = frame[0] >> 4, frame[0] & 0x0F
    if version != VERSION:
        raise UnknownVersion(f"frame version {version}, this gateway speaks {VERSION}", node=node)
    if frame_class != expected:
        raise WrongClass(f"frame class {frame_class}, expected {int(expected)} ({expected.name})", node=node)
    if len(frame) < length:
        raise TruncatedFrame(f"{expected.name} frame of {len(frame)} bytes, needs {length}", node=node)
    if len(frame) > length:
        raise OversizedFrame(f"{expected.name} frame of {len(frame)} bytes, expected {length}", node=node)
    assert node is not None
    return node


def _check_mac(frame: bytes, key: bytes, node: int) -> None:
    body, tag = bytes(frame[:-MAC_LEN]), bytes(frame[-MAC_LEN:])
    if not hmac.compare_digest(mac(key, body), tag):
        raise ForgedFrame(f"MAC mismatch for node {node}: forged, or corrupted in transit", node=node)


KeyLookup = Callable[[int], "bytes | None"]


def decode_uplink(frame: bytes, keys: KeyLookup) -> Uplink:
    """Authenticate and parse an uplink frame; raises a :class:`RadioError` subclass.

    ``keys(node_id)`` returns the node's key, or None for a node this
    gateway does not serve. The counter is checked against the gateway's
    state by the caller (``ReplayedFrame``).
    """
    node = _check_envelope(frame, FrameClass.UPLINK, UPLINK_LEN)
    key = keys(node)
    if key is None:
        raise UnknownNode(f"node {node} is not provisioned on this gateway", node=node)
    _check_mac(frame, key, node)
    _, _, counter, event_counter, type_code, kind_code, battery, flags = _UPLINK.unpack(frame[: _UPLINK.size])
    try:
        frame_type = FrameType(type_code)
    except ValueError:
        raise BadField(f"node {node}: unknown frame type {type_code}", node=node) from None
    if kind_code not in KINDS_BY_CODE:
        raise BadField(f"node {node}: unknown button kind {kind_code}", node=node)
    if not 1 <= event_counter <= counter:
        raise BadField(f"node {node}: event counter {event_counter} not in 1..{counter}", node=node)
    if flags & ~int(KNOWN_FLAGS):
        raise BadField(f"node {node}: undefined flag bits {flags:#04x}", node=node)
    return Uplink(node, counter, event_counter, frame_type, KINDS_BY_CODE[kind_code], battery, Flag(flags))


def decode_downlink(frame: bytes, key: bytes, node: int) -> Ack | Indicate:
    """Authenticate and parse a downlink addressed to ``node`` (the node's side)."""
    if len(frame) < 1:
        raise TruncatedFrame("empty frame")
    frame_class = frame[0] & 0x0F
    if frame_class == FrameClass.ACK:
        claimed = _check_envelope(frame, FrameClass.ACK, ACK_LEN)
    elif frame_class == FrameClass.INDICATE:
        claimed = _check_envelope(frame, FrameClass.INDICATE, INDICATE_LEN)
    else:
        _check_envelope(frame, FrameClass.ACK, ACK_LEN)  # raises the precise error
        raise WrongClass(f"frame class {frame_class} is not a downlink", node=peek_node(frame))
    if claimed != node:
        raise UnknownNode(f"frame for node {claimed}, this is node {node}", node=claimed)
    _check_mac(frame, key, node)
    if frame_class == FrameClass.ACK:
        _, _, counter, event_counter = _ACK.unpack(frame[: _ACK.size])
        return Ack(node, counter, event_counter)
    _, _, event_counter, alarm, rev, state_code = _INDICATE.unpack(frame[: _INDICATE.size])
    if state_code not in STATES_BY_CODE:
        raise BadField(f"unknown indication state {state_code}", node=node)
    return Indicate(node, event_counter, alarm, rev, STATES_BY_CODE[state_code])


def key_id(key: bytes) -> str:
    """A short public fingerprint of a key (names it in logs and event ids, never reveals it)."""
    return hashlib.sha256(b"siaga-key-id" + key).hexdigest()[:8]


def event_id(node: int, key: bytes, event_counter: int) -> str:
    """The event id of a radio event: the same on every gateway that hears it.

    Two gateways hearing one press, or a node retrying after a lost ack, give
    one id, so the dashboard stores the event once. The key's fingerprint is
    part of it: a re-provisioned node (new key, counter from 1) gets new ids.
    """
    return str(uuid.uuid5(EVENT_NAMESPACE, f"lora/{node}/{key_id(key)}/{event_counter}"))


def airtime_s(
    payload_len: int, sf: int = 9, bandwidth_hz: int = 125_000, coding_rate: int = 1, preamble: int = 12
) -> float:
    """LoRa time on air in seconds (Semtech AN1200.13), explicit header, CRC on."""
    symbol = (2**sf) / bandwidth_hz
    low_data_rate = 1 if symbol > 0.016 else 0
    bits = 8 * payload_len - 4 * sf + 28 + 16
    payload_symbols = 8 + max(math.ceil(bits / (4 * (sf - 2 * low_data_rate))) * (coding_rate + 4), 0)
    return (preamble + 4.25) * symbol + payload_symbols * symbol


#: RYLR AT+PARAMETER bandwidth codes (7 = 125 kHz).
RYLR_BANDWIDTHS = {
    0: 7_800,
    1: 10_400,
    2: 15_600,
    3: 20_800,
    4: 31_250,
    5: 41_700,
    6: 62_500,
    7: 125_000,
    8: 250_000,
    9: 500_000,
}


def rylr_airtime_s(parameter: str, payload_len: int) -> float:
    """Airtime of an RYLR packet under ``AT+PARAMETER=<sf>,<bw>,<cr>,<preamble>``."""
    sf, bw, cr, preamble = (int(part) for part in parameter.split(","))
    return airtime_s(payload_len, sf, RYLR_BANDWIDTHS.get(bw, 125_000), cr, preamble)


# -- RYLR896/RYLR998: frames as ASCII ----------------------------------------------------------


def to_text(frame: bytes) -> str:
    """RYLR modules carry ASCII text: a frame goes as standard base64 (no commas, no line breaks)."""
    return base64.b64encode(frame).decode("ascii")


def from_text(text: str | bytes) -> bytes:
    try:
        frame = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadEncoding(f"module data is not base64: {exc}") from None
    if len(frame) > MAX_FRAME:
        raise OversizedFrame(f"frame of {len(frame)} bytes exceeds {MAX_FRAME}", node=peek_node(frame))
    return frame


# -- Ebyte E32/E22: frames in a byte stream ------------------------------------------------------

SYNC = b"\xa5\x5a"
STREAM_OVERHEAD = len(SYNC) + 1 + 2  # sync, length, CRC


class BadCrc(RadioError):
    reason = "bad_crc"


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR).

    The reference firmware (``firmware/siaga_proto.py``) keeps its own bitwise
    loop on purpose: MicroPython's ``binascii`` may lack ``crc_hqx``. Both are
    checked against ``docs/radio-vectors.json``.
    """
    return binascii.crc_hqx(data, 0xFFFF)


def to_stream(frame: bytes) -> bytes:
    """Wrap a frame for a transparent byte stream: A5 5A, length, frame, CRC-16 over length and frame."""
    if len(frame) + STREAM_OVERHEAD > MAX_FRAME:
        raise ValueError("frame too long for one E32 packet")
    body = bytes([len(frame)]) + frame
    return SYNC + body + crc16(body).to_bytes(2, "big")


class StreamDeframer:
    """Finds frames in a byte stream, resynchronising after garbage (sans-io).

    Feed it bytes as they arrive; it returns the complete frames found and
    counts what it had to skip.
    """

    def __init__(self, max_frame: int = MAX_FRAME - STREAM_OVERHEAD) -> None:
        self._buffer = bytearray()
        self._max = max_frame
        self.skipped_bytes = 0
        self.bad_crc = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames: list[bytes] = []
        while True:
            start = self._buffer.find(SYNC)
            if start < 0:
                keep = 1 if self._buffer.endswith(SYNC[:1]) else 0
                self._skip(len(self._buffer) - keep)
                return frames
            self._skip(start)
            if len(self._buffer) < len(SYNC) + 1:
                return frames
            length = self._buffer[len(SYNC)]
            if length == 0 or length > self._max:
                self._skip(1)  # not a real frame start: look further
                continue
            end = len(SYNC) + 1 + length + 2
            if len(self._buffer) < end:
                # Garbage can look like the start of a long frame; a real frame
                # complete further on must not wait for bytes that may never come.
                later = self._complete_frame_after(1)
                if later is None:
                    return frames
                self._skip(later)
                continue
            body = bytes(self._buffer[len(SYNC) : end - 2])
            if crc16(body) != int.from_bytes(self._buffer[end - 2 : end], "big"):
                self.bad_crc += 1
                self._skip(1)
                continue
            frames.append(body[1:])
            del self._buffer[:end]

    def _complete_frame_after(self, offset: int) -> int | None:
        """Position of the first complete, CRC-valid frame at or after ``offset``."""
        position = self._buffer.find(SYNC, offset)
        while position >= 0:
            if len(self._buffer) >= position + len(SYNC) + 1:
                length = self._buffer[position + len(SYNC)]
                end = position + len(SYNC) + 1 + length + 2
                if 0 < length <= self._max and len(self._buffer) >= end:
                    body = bytes(self._buffer[position + len(SYNC) : end - 2])
                    if crc16(body) == int.from_bytes(self._buffer[end - 2 : end], "big"):
                        return position
            position = self._buffer.find(SYNC, position + 1)
        return None

    def _skip(self, count: int) -> None:
        if count > 0:
            self.skipped_bytes += count
            del self._buffer[:count]
