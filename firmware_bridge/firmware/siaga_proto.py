# Siaga radio frames, version 1: the node's side (MicroPython and CPython).
#
# An independent implementation of docs/radio-protocol.md, kept to the
# subset of Python that MicroPython runs (no dataclasses, enums, typing or
# hmac module). It is checked against the same test vectors as the
# gateway's implementation (firmware_bridge/radio.py).

import struct

try:
    import hashlib
except ImportError:  # pragma: no cover - very old MicroPython ports
    import uhashlib as hashlib

try:
    import binascii
except ImportError:  # pragma: no cover
    import ubinascii as binascii

VERSION = 1
MAC_LEN = 8

UPLINK = 0
ACK = 1
INDICATE = 2

PRESS = 1
TEST = 2
HEARTBEAT = 3
LOW_BATTERY = 4
TAMPER = 5

FIRE = 1
SAPA = 2

FLAG_HELD = 0x01
FLAG_RETRY = 0x02
FLAG_EXTERNAL_POWER = 0x04
FLAG_LOW_BATTERY = 0x08
FLAG_TAMPER = 0x10

RECEIVED = 1
ACKNOWLEDGED = 2
DISPATCHED = 3
RESOLVED = 4

_UPLINK_FMT = ">BIIIBBHB"
_ACK_FMT = ">BIII"
_INDICATE_FMT = ">BIIIHB"
ACK_LEN = 13 + MAC_LEN
INDICATE_LEN = 16 + MAC_LEN
SYNC = b"\xa5\x5a"


class FrameError(ValueError):
    pass


def _hmac_sha256(key, message):
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key + bytes(block - len(key))
    outer = bytes([b ^ 0x5C for b in key])
    inner = bytes([b ^ 0x36 for b in key])
    return hashlib.sha256(outer + hashlib.sha256(inner + message).digest()).digest()


def mac(key, data):
    return _hmac_sha256(key, data)[:MAC_LEN]


def _equal(a, b):
    # Compare without stopping at the first difference.
    if len(a) != len(b):
        return False
    result = 0
    for x, y in zip(a, b):
        result |= x ^ y
    return result == 0


def encode_uplink(key, node, counter, event_counter, frame_type, kind, battery_mv=0, flags=0):
    body = struct.pack(
        _UPLINK_FMT, VERSION << 4 | UPLINK, node, counter, event_counter, frame_type, kind, battery_mv, flags
    )
    return body + mac(key, body)


def decode_downlink(key, node, frame):
    """Return ("ack", counter, event_counter) or ("indicate", event_counter, alarm, rev, state)."""
    if len(frame) < 1:
        raise FrameError("empty")
    if frame[0] >> 4 != VERSION:
        raise FrameError("version")
    frame_class = frame[0] & 0x0F
    if frame_class == ACK:
        length = ACK_LEN
    elif frame_class == INDICATE:
        length = INDICATE_LEN
    else:
        raise FrameError("class")
    if len(frame) != length:
        raise FrameError("length")
    if struct.unpack(">I", frame[1:5])[0] != node:
        raise FrameError("other node")
    if not _equal(mac(key, frame[:-MAC_LEN]), frame[-MAC_LEN:]):
        raise FrameError("mac")
    if frame_class == ACK:
        _, _, counter, event_counter = struct.unpack(_ACK_FMT, frame[:13])
        return ("ack", counter, event_counter)
    _, _, event_counter, alarm, rev, state = struct.unpack(_INDICATE_FMT, frame[:16])
    if state < RECEIVED or state > RESOLVED:
        raise FrameError("state")
    return ("indicate", event_counter, alarm, rev, state)


def to_text(frame):
    return binascii.b2a_base64(frame).strip().decode()


def from_text(text):
    try:
        return binascii.a2b_base64(text)
    except Exception:  # MicroPython raises ValueError, CPython binascii.Error
        raise FrameError("base64") from None


def crc16(data):
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            if crc & 0x8000:
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF
            else:
                crc = (crc << 1) & 0xFFFF
    return crc


def to_stream(frame):
    body = bytes([len(frame)]) + frame
    crc = crc16(body)
    return SYNC + body + bytes([crc >> 8, crc & 0xFF])


class Deframer:
    """Frames out of an E32 byte stream; skips garbage."""

    def __init__(self):
        self.buffer = b""

    def feed(self, data):
        self.buffer += data
        frames = []
        while True:
            start = self.buffer.find(SYNC)
            if start < 0:
                self.buffer = self.buffer[-1:] if self.buffer.endswith(SYNC[:1]) else b""
                return frames
            self.buffer = self.buffer[start:]
            if len(self.buffer) < 3:
                return frames
            length = self.buffer[2]
            end = 3 + length + 2
            if length == 0 or length > 53:
                self.buffer = self.buffer[1:]
                continue
            if len(self.buffer) < end:
                # Maybe garbage posing as a long frame: a real frame complete
                # further on must not wait behind it.
                later = self._complete_after(1)
                if later < 0:
                    return frames
                self.buffer = self.buffer[later:]
                continue
            body = self.buffer[2 : end - 2]
            if crc16(body) != (self.buffer[end - 2] << 8 | self.buffer[end - 1]):
                self.buffer = self.buffer[1:]
                continue
            frames.append(body[1:])
            self.buffer = self.buffer[end:]

    def _complete_after(self, offset):
        position = self.buffer.find(SYNC, offset)
        while position >= 0:
            if len(self.buffer) >= position + 3:
                length = self.buffer[position + 2]
                end = position + 3 + length + 2
                if 0 < length <= 53 and len(self.buffer) >= end:
                    body = self.buffer[position + 2 : end - 2]
                    if crc16(body) == (self.buffer[end - 2] << 8 | self.buffer[end - 1]):
                        return position
            position = self.buffer.find(SYNC, position + 1)
        return -1
