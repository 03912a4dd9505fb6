"""The reference node firmware's own behaviour, run under CPython on the virtual radio.

What the node puts on the air is read back from the air's record and decoded
with the gateway's codec.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_bridge import radio
from sim.firmware import load_firmware
from sim.radio import Air, Impairments, NodeSpec, VirtualNode

from .waiting import poll_until

KEY = bytes(range(16))
NODE = 1001


def keys(node: int) -> bytes | None:
    return KEY if node == NODE else None


@pytest.fixture
def air() -> Iterator[Air]:
    medium = Air(Impairments(time_scale=0.1), seed=3)
    yield medium
    medium.close()


def sent(air: Air) -> list[radio.Uplink]:
    return [radio.decode_uplink(radio.from_text(packet.data), keys) for packet in air.captured]


def wait_until(condition, timeout: float = 10.0) -> None:
    # watching another thread's radio output
    poll_until(condition, timeout=timeout, interval=0.01, what="condition not met in time")


@pytest.fixture
def node(air: Air, tmp_path: Path) -> Iterator[VirtualNode]:
    nodes: list[VirtualNode] = []

    def make(**settings: object) -> VirtualNode:
        hold = int(settings.pop("HOLD_MS", 0))  # type: ignore[call-overload]
        battery = int(settings.pop("BATTERY", 3900))  # type: ignore[call-overload]
        spec = NodeSpec(
            NODE,
            KEY,
            hold_ms=hold,
            battery_mv=battery,
            settings={"RETRY_BASE_MS": 200, "RETRY_MAX_MS": 800, "HEARTBEAT_S": 3600, **settings},
        )
        created = VirtualNode(air, spec, tmp_path, seed=1)
        nodes.append(created)
        return created

    yield make  # type: ignore[misc]
    for created in nodes:
        created.close()
        assert created.failure is None


def test_the_counter_survives_resets_without_reuse_or_wear(tmp_path: Path) -> None:
    node_module = load_firmware().siaga_node
    writes = []

    class Storage(node_module.FileStorage):
        def write(self, text: str) -> None:
            writes.append(text)
            super().write(text)

    def store():
        return node_module.CounterStore(Storage(str(tmp_path / "c.a")), Storage(str(tmp_path / "c.b")))

    first = store()
    used = [first.next() for _ in range(40)]
    assert used == list(range(1, 41))
    assert len(writes) == 3  # 40 frames, three writes: the flash is spared
    after_reset = store()
    assert after_reset.next() > used[-1]  # a reset skips ahead, never back
    # A power cut while writing one slot: the other one still knows.
    (tmp_path / "c.a").write_text("")
    assert store().next() > used[-1]
    (tmp_path / "c.a").write_text("garbage")
    (tmp_path / "c.b").write_text("")
    with pytest.raises(node_module.CounterLost):
        store()  # never silently from 0: the gateway would take every frame for a replay


def test_the_clock_does_not_wrap(tmp_path: Path) -> None:
    node_module = load_firmware().siaga_node
    period = 1 << 30  # an ESP32's ticks_ms wraps here
    ticks = [period - 100]

    def ticks_diff(new: int, old: int) -> int:
        return ((new - old + period // 2) % period) - period // 2

    clock = node_module.UnwrappingClock(lambda: ticks[0], ticks_diff)
    before = clock.ms()
    ticks[0] = 150  # 250 ms later, past the wrap
    assert clock.ms() - before == 250


def test_an_unanswered_press_is_retried_with_backoff_keeping_its_event(node, air: Air) -> None:
    button = node()
    button.press()
    wait_until(lambda: len(air.captured) >= 4)
    frames = sent(air)[:4]
    assert [f.event_counter for f in frames] == [frames[0].counter] * 4
    assert [f.counter for f in frames] == sorted({f.counter for f in frames})  # fresh counters, increasing
    assert all(radio.Flag.RETRY in f.flags for f in frames[1:]) and radio.Flag.RETRY not in frames[0].flags
    times = [packet.sent_at for packet in air.captured[:4]]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[1] > gaps[0] * 1.2  # backing off
    assert button.pattern == "sending"


def test_hold_to_confirm_ignores_a_bump_and_counts_a_hold(node, air: Air) -> None:
    button = node(HOLD_MS=400)
    start = time.time()
    button.press(hold_s=0.1)  # a bump
    button.press(hold_s=0.6, confirm=True)  # a deliberate press, begun after the bump's release
    wait_until(lambda: len(air.captured) >= 1)
    first = sent(air)[0]
    assert first.type is radio.FrameType.PRESS and radio.Flag.HELD in first.flags
    # Sent only once the second press had been held 0.4 s: the bump sent nothing.
    assert air.captured[0].sent_at - start >= 0.5
    assert first.event_counter == first.counter


def test_a_low_battery_is_reported_and_flagged(node, air: Air) -> None:
    node(BATTERY=3300)
    wait_until(lambda: len(air.captured) >= 1)
    report = sent(air)[0]
    assert report.type is radio.FrameType.LOW_BATTERY
    assert report.battery_mv == 3300 and radio.Flag.LOW_BATTERY in report.flags


def test_heartbeats_carry_the_battery_voltage(node, air: Air) -> None:
    node(HEARTBEAT_S=0.1)
    wait_until(lambda: len(air.captured) >= 2)
    beats = sent(air)
    assert all(f.type is radio.FrameType.HEARTBEAT and f.battery_mv == 3900 for f in beats)
    assert beats[1].counter > beats[0].counter


def test_a_tamper_or_low_battery_never_displaces_a_pending_press(node, air: Air) -> None:
    button = node(BATTERY=3300)  # its low-battery report goes out first...
    wait_until(lambda: len(air.captured) >= 1)
    button.press()  # ...a press interrupts it...
    wait_until(lambda: len(air.captured) >= 5)
    frames = sent(air)
    presses = [f for f in frames if f.type is radio.FrameType.PRESS]
    assert presses and frames[0].type is radio.FrameType.LOW_BATTERY
    # ...and from then on only the press is retried (the report waits its turn, as a new event).
    first_press = frames.index(presses[0])
    assert all(f.type is radio.FrameType.PRESS for f in frames[first_press:])
    assert len({f.event_counter for f in presses}) == 1
    assert button.node.queue == [(radio.FrameType.LOW_BATTERY, radio.Flag.LOW_BATTERY)]


def test_a_press_cut_short_by_a_reset_is_sent_again(node, air: Air, tmp_path: Path) -> None:
    first = node()
    first.press()
    wait_until(lambda: len(air.captured) >= 1)
    first.close()  # power lost before any gateway answered
    count = len(air.captured)
    second = node()  # the same node, booting again
    wait_until(lambda: len(air.captured) > count)
    again = sent(air)[count]
    assert again.type is radio.FrameType.PRESS
    assert again.counter > sent(air)[0].counter  # a fresh counter, after the reserved block
    assert second.pattern == "sending"
