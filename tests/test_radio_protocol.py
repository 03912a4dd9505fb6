"""The radio protocol: the specification's test vectors against both implementations, and fuzzing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import BadFrame, SiagaError, radio
from firmware_bridge.payloads import IndicationState, Kind
from sim.firmware import load_firmware

from .radio_vectors import build

DOCS = Path(__file__).resolve().parents[1] / "docs"
VECTORS = json.loads((DOCS / "radio-vectors.json").read_text())
KEY = bytes.fromhex(VECTORS["key"])
NODE = VECTORS["node"]
fw = load_firmware()
proto = fw.siaga_proto


def keys(node: int) -> bytes | None:
    return KEY if node == NODE else None


def test_the_published_vectors_are_what_the_codec_produces() -> None:
    assert build() == VECTORS


def test_the_document_shows_every_vector() -> None:
    document = (DOCS / "radio-protocol.md").read_text()
    for vector in VECTORS["valid_uplinks"] + VECTORS["invalid_uplinks"] + VECTORS["indications"]:
        assert vector["hex"] in document.replace(" ", ""), vector["name"]
    assert VECTORS["ack"]["hex"] in document.replace(" ", "")


@pytest.mark.parametrize("vector", VECTORS["valid_uplinks"], ids=lambda v: v["name"])
def test_valid_uplinks_decode_at_the_gateway(vector: dict) -> None:
    frame = radio.decode_uplink(bytes.fromhex(vector["hex"]), keys)
    fields = vector["fields"]
    assert (frame.node, frame.counter, frame.event_counter) == (
        fields["node"],
        fields["counter"],
        fields["event_counter"],
    )
    assert (frame.type.name.lower(), str(frame.kind), frame.battery_mv, int(frame.flags)) == (
        fields["type"],
        fields["kind"],
        fields["battery_mv"],
        fields["flags"],
    )


@pytest.mark.parametrize("vector", VECTORS["valid_uplinks"], ids=lambda v: v["name"])
def test_the_firmware_encodes_the_same_bytes(vector: dict) -> None:
    fields = vector["fields"]
    frame = proto.encode_uplink(
        KEY,
        fields["node"],
        fields["counter"],
        fields["event_counter"],
        getattr(proto, fields["type"].upper()),
        proto.SAPA if fields["kind"] == "sapa" else proto.FIRE,
        fields["battery_mv"],
        fields["flags"],
    )
    assert frame.hex() == vector["hex"]


@pytest.mark.parametrize("vector", VECTORS["invalid_uplinks"], ids=lambda v: v["name"])
def test_invalid_uplinks_are_refused_with_their_reason(vector: dict) -> None:
    with pytest.raises(radio.RadioError) as caught:
        radio.decode_uplink(bytes.fromhex(vector["hex"]), keys)
    assert caught.value.reason == vector["reason"]
    assert isinstance(caught.value, BadFrame) and isinstance(caught.value, ValueError)


def test_downlinks_decode_on_the_node_and_at_the_gateway() -> None:
    ack = bytes.fromhex(VECTORS["ack"]["hex"])
    assert proto.decode_downlink(KEY, NODE, ack) == ("ack", 2, 1)
    assert radio.decode_downlink(ack, KEY, NODE) == radio.Ack(NODE, 2, 1)
    codes = {"received": proto.RECEIVED, "acknowledged": proto.ACKNOWLEDGED, "resolved": proto.RESOLVED}
    for vector in VECTORS["indications"]:
        frame = bytes.fromhex(vector["hex"])
        expected = ("indicate", vector["event_counter"], vector["alarm"], vector["rev"], codes[vector["state"]])
        assert proto.decode_downlink(KEY, NODE, frame) == expected
        assert radio.decode_downlink(frame, KEY, NODE).state == IndicationState(vector["state"])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda f: f[:-1],
        lambda f: f + b"\x00",
        lambda f: f[:-1] + bytes([f[-1] ^ 1]),
        lambda f: bytes([0x20]) + f[1:],
        lambda f: bytes([0x10]) + f[1:],  # an uplink's class: a reflected frame
        lambda f: f[:1] + (NODE + 1).to_bytes(4, "big") + f[5:],
    ],
)
def test_the_node_refuses_damaged_or_foreign_downlinks(mutate) -> None:
    for frame in (bytes.fromhex(VECTORS["ack"]["hex"]), bytes.fromhex(VECTORS["indications"][0]["hex"])):
        with pytest.raises(proto.FrameError):
            proto.decode_downlink(KEY, NODE, mutate(frame))
        with pytest.raises(radio.RadioError):
            radio.decode_downlink(mutate(frame), KEY, NODE)


def test_an_uplink_is_never_taken_for_a_downlink() -> None:
    uplink = bytes.fromhex(VECTORS["valid_uplinks"][0]["hex"])
    with pytest.raises(proto.FrameError):
        proto.decode_downlink(KEY, NODE, uplink)


def test_text_and_stream_encodings_agree() -> None:
    frame = bytes.fromhex(VECTORS["rylr_text"]["frame_hex"])
    assert proto.to_text(frame) == radio.to_text(frame) == VECTORS["rylr_text"]["text"]
    assert "," not in VECTORS["rylr_text"]["text"]
    assert radio.from_text(proto.to_text(frame)) == frame == proto.from_text(radio.to_text(frame))
    assert proto.to_stream(frame).hex() == radio.to_stream(frame).hex() == VECTORS["e32_stream"]["stream_hex"]


def _bitwise_crc16(data: bytes) -> int:
    """The former hand-written CRC-16/CCITT-FALSE, kept as the reference for ``binascii.crc_hqx``."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def test_the_stream_crc_matches_the_vectors_and_the_firmware() -> None:
    stream = bytes.fromhex(VECTORS["e32_stream"]["stream_hex"])
    body, crc = stream[len(radio.SYNC) : -2], int.from_bytes(stream[-2:], "big")
    assert radio.crc16(body) == _bitwise_crc16(body) == proto.crc16(body) == crc
    assert radio.crc16(b"123456789") == 0x29B1  # the CRC-16/CCITT-FALSE check value
    assert radio.crc16(b"") == 0xFFFF


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_the_stream_crc_is_the_bitwise_crc(data: bytes) -> None:
    assert radio.crc16(data) == _bitwise_crc16(data) == proto.crc16(data)


def test_event_ids_are_shared_by_every_gateway_and_change_with_the_key() -> None:
    vector = VECTORS["event_id"]
    assert radio.event_id(NODE, KEY, 1) == vector["id"]
    assert radio.event_id(NODE, KEY, 2) != vector["id"]
    assert radio.event_id(NODE, bytes(16), 1) != vector["id"]


def test_the_deframer_resynchronises_after_garbage() -> None:
    frames = [bytes.fromhex(v["hex"]) for v in VECTORS["valid_uplinks"]]
    stream = b"\x00\xa5\xff" + radio.to_stream(frames[0]) + b"\xa5\x5a\x30garbage" + radio.to_stream(frames[1])
    for deframer in (radio.StreamDeframer(), proto.Deframer()):
        found = []
        for i in range(len(stream)):  # byte by byte, as a UART may deliver it
            found += deframer.feed(stream[i : i + 1])
        assert found == frames[:2]


def test_a_frame_after_a_false_start_is_not_held_back() -> None:
    frame = bytes.fromhex(VECTORS["valid_uplinks"][0]["hex"])
    deframer = radio.StreamDeframer()
    # Garbage that looks like the start of a 48-byte frame, then a real one: it comes out at once.
    assert deframer.feed(b"\xa5\x5a\x30" + radio.to_stream(frame)) == [frame]


# -- properties ------------------------------------------------------------------------------------


VALID = [bytes.fromhex(v["hex"]) for v in VECTORS["valid_uplinks"]]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80))
def test_decoding_random_bytes_only_ever_raises_radio_errors(data: bytes) -> None:
    try:
        radio.decode_uplink(data, keys)
    except radio.RadioError:
        pass
    try:
        radio.decode_downlink(data, KEY, NODE)
    except radio.RadioError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(VALID), st.data())
def test_mutated_frames_are_refused_or_exactly_right(frame: bytes, data: st.DataObject) -> None:
    mutated = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] ^= data.draw(st.integers(1, 255))
    if data.draw(st.booleans()):
        mutated = mutated[: data.draw(st.integers(0, len(mutated)))]
    try:
        decoded = radio.decode_uplink(bytes(mutated), keys)
    except SiagaError as exc:
        assert isinstance(exc, radio.RadioError)
    else:
        assert bytes(mutated) == frame  # a change that gets through must have been undone
        assert decoded.node == NODE


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=8), st.sampled_from(VALID))
def test_the_deframer_never_fails_and_finds_frames_among_garbage(noise: list[bytes], frame: bytes) -> None:
    cleaned = []
    for chunk in noise:
        while radio.SYNC in chunk:
            chunk = chunk.replace(radio.SYNC, b"")
        cleaned.append(chunk)
    stream = b"".join(chunk + radio.to_stream(frame) for chunk in cleaned) or radio.to_stream(frame)
    deframer = radio.StreamDeframer()
    found = deframer.feed(stream)
    assert found.count(frame) == max(len(cleaned), 1)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_module_text_only_ever_raises_radio_errors(text: str) -> None:
    try:
        radio.from_text(text)
    except radio.RadioError:
        pass


def test_kinds_and_states_are_all_encoded() -> None:
    assert set(radio.KIND_CODES) == set(Kind)
    assert set(radio.STATE_CODES) == set(IndicationState)
