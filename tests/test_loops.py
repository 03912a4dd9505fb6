"""Supervised button loops: an end-of-line resistor read through an MCP3008, so a cut cable is a trouble."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from firmware_bridge.errors import ConfigError
from firmware_bridge.payloads import Wiring
from firmware_bridge.settings import parse_toml
from gateway.app import Gateway
from gateway.config import GatewayConfig, LoopConfig, parse_config
from gateway.loops import LoopLevels, LoopState, LoopTracker
from sim.loops import Cable, VirtualLoops, drive, mock_pins
from sim.servers import DashboardServer

from .conftest import OPERATOR, gateway_toml, signed_in
from .test_ingest import wait_alarm
from .test_supervision import trouble_event
from .waiting import poll_until

LEVELS = LoopLevels.of(LoopConfig(channel=0))
IDLE, PRESSED = LEVELS.normal, LEVELS.alarm

SUPERVISED_FIRE = {
    "id": "loop-fire-1",
    "kind": "fire",
    "label": "Blok B, supervised",
    "supervision": "eol",
    "adc_channel": 2,
    "led_pin": 27,
    "site": {"name": "Pasar Andoolo", "lat": -4.3497, "lon": 122.3786},
}
PLAIN_FIRE = {
    "id": "fire-1",
    "kind": "fire",
    "pin": 17,
    "site": {"name": "Pasar Andoolo", "lat": -4.3497, "lon": 122.3786},
}


def feed(tracker: LoopTracker, value: float, times: int, start: float = 0.0, step: float = 0.01) -> list[float]:
    """Readings of ``value``; the times at which a press completed."""
    return [start + i * step for i in range(times) if tracker.reading(value, start + i * step)]


# -- the rule book, without I/O ---------------------------------------------------------------


def test_the_default_resistors_read_as_documented() -> None:
    assert LEVELS.normal == pytest.approx(0.5)
    assert LEVELS.alarm == pytest.approx(0.149, abs=0.001)
    for value, state in ((0.0, LoopState.SHORT), (0.15, LoopState.ALARM), (0.5, LoopState.NORMAL)):
        assert LEVELS.classify(value) is state
    assert LEVELS.classify(1.0) is LoopState.OPEN


def test_a_press_counts_once_after_its_readings_agree_and_again_only_after_a_release() -> None:
    tracker = LoopTracker(LEVELS)
    assert feed(tracker, IDLE, 5) == [] and tracker.wiring is Wiring.OK
    assert feed(tracker, PRESSED, 2, start=1.0) == []  # not yet: a bounce is two readings
    assert feed(tracker, PRESSED, 10, start=1.02) == [1.02]  # the third reading in a row: one press
    assert tracker.pressed
    assert feed(tracker, IDLE, 5, start=2.0) == [] and not tracker.pressed
    assert len(feed(tracker, PRESSED, 5, start=3.0)) == 1


def test_a_bounce_shorter_than_the_debounce_is_no_press() -> None:
    tracker = LoopTracker(LEVELS)
    feed(tracker, IDLE, 5)
    for i in range(20):  # alternating readings never agree three times in a row
        assert not tracker.reading(PRESSED if i % 2 else IDLE, 1.0 + i * 0.01)
    assert tracker.state is LoopState.NORMAL


def test_hold_to_confirm_counts_only_after_the_hold() -> None:
    tracker = LoopTracker(LEVELS, hold_s=1.0)
    feed(tracker, IDLE, 5)
    assert feed(tracker, PRESSED, 50, start=1.0) == []  # 0.5 s held
    assert feed(tracker, IDLE, 5, start=1.5) == []  # let go: no press
    presses = feed(tracker, PRESSED, 150, start=3.0)
    assert len(presses) == 1 and presses[0] == pytest.approx(3.02 + 1.0, abs=0.011)


def test_a_cut_cable_is_a_fault_and_never_a_press() -> None:
    tracker = LoopTracker(LEVELS)
    feed(tracker, IDLE, 5)
    assert feed(tracker, 1.0, 10, start=1.0) == []
    assert tracker.wiring is Wiring.OPEN and tracker.fault_since == pytest.approx(1.02)
    feed(tracker, IDLE, 5, start=2.0)
    assert tracker.wiring is Wiring.OK and tracker.fault_since is None


def test_a_healthy_loop_that_shorts_is_a_press_and_a_fault() -> None:
    """Fail open: a button whose alarm resistor failed shorts the loop when pressed."""
    tracker = LoopTracker(LEVELS)
    feed(tracker, IDLE, 5)
    assert len(feed(tracker, 0.0, 10, start=1.0)) == 1
    assert tracker.wiring is Wiring.SHORT


@pytest.mark.parametrize("before", [None, 1.0], ids=["found-shorted-at-start", "after-a-cut"])
def test_a_short_that_was_not_healthy_before_is_a_fault_only(before: float | None) -> None:
    """A missing ADC reads all zeros: it must not raise every button's alarm at boot."""
    tracker = LoopTracker(LEVELS)
    if before is not None:
        feed(tracker, before, 5)
    assert feed(tracker, 0.0, 10, start=1.0) == []
    assert tracker.wiring is Wiring.SHORT


def test_a_loop_that_cannot_be_read_becomes_unreadable_and_recovers() -> None:
    tracker = LoopTracker(LEVELS)
    feed(tracker, IDLE, 5)
    for i in range(19):
        tracker.failed_read(1.0 + i * 0.01)
    assert tracker.wiring is Wiring.OK  # a few failed reads are not yet a fault
    tracker.failed_read(1.2)
    assert tracker.wiring is Wiring.UNREADABLE and tracker.fault_since == 1.2
    feed(tracker, IDLE, 1, start=2.0)
    assert tracker.wiring is Wiring.OK


# -- the configuration --------------------------------------------------------------------------


def config_text(*buttons: dict[str, object], extra: str = "") -> str:
    from sim.gatewayconf import toml_text

    document = {
        "gateway": {"id": "gw-loops", "data_dir": "/tmp/unused"},
        "mqtt": {"host": "127.0.0.1", "port": 1883},
        "button": list(buttons),
    }
    return toml_text(document) + extra


def test_a_supervised_button_is_read_through_the_adc() -> None:
    config = parse_config(parse_toml(config_text(SUPERVISED_FIRE, PLAIN_FIRE), "gateway.toml"))
    loop_button = config.button("loop-fire-1")
    assert loop_button.pin is None and loop_button.loop == LoopConfig(channel=2)
    assert config.button("fire-1").loop is None


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"pin": 5}, "button[1].pin", "read through the ADC"),
        ({"adc_channel": 8}, "button[1].adc_channel", "at most 7"),
        ({"adc_channel": None}, "button[1].adc_channel", "missing"),
        ({"alarm_ohms": 20000.0}, "button[1].alarm_ohms", "further apart"),
        ({"supervision": "none"}, "button[1].adc_channel", "only for a supervised loop"),
        ({"supervision": "4-20mA"}, "button[1].supervision", "must be one of"),
    ],
)
def test_a_wrong_supervised_button_is_refused_naming_its_key(change: dict[str, object], key: str, words: str) -> None:
    button = {k: v for k, v in {**SUPERVISED_FIRE, **change}.items() if v is not None}
    with pytest.raises(ConfigError) as refused:
        parse_config(parse_toml(config_text(button), "gateway.toml"))
    assert refused.value.key == key and words in str(refused.value)


def test_two_loops_on_one_channel_and_a_pin_on_the_spi_bus_are_refused() -> None:
    twin = {**SUPERVISED_FIRE, "id": "loop-fire-2", "led_pin": 22}
    with pytest.raises(ConfigError, match=r"already used by button\[1\]\.adc_channel"):
        parse_config(parse_toml(config_text(SUPERVISED_FIRE, twin), "gateway.toml"))
    on_miso = {**PLAIN_FIRE, "pin": 9}
    with pytest.raises(ConfigError, match="SPI bus's MISO") as refused:
        parse_config(parse_toml(config_text(SUPERVISED_FIRE, on_miso), "gateway.toml"))
    assert refused.value.key == "button[2].pin"
    # Without a supervised loop, the SPI pins are ordinary pins.
    assert parse_config(parse_toml(config_text(on_miso), "gateway.toml")).button("fire-1").pin == 9


# -- the gateway on mock pins with a virtual MCP3008 --------------------------------------------


@pytest.fixture
def loops_gateway(
    tmp_path: Path, mosquitto, start_gateway: Callable[..., Gateway]
) -> Iterator[tuple[Gateway, VirtualLoops]]:
    path = gateway_toml(tmp_path / "gw.toml", port=mosquitto.port, buttons=[SUPERVISED_FIRE, PLAIN_FIRE])
    config: GatewayConfig = parse_config(parse_toml(path.read_text(), str(path)))
    config = replace(config, health_interval_s=60.0)
    factory, loops = mock_pins(config.buttons)
    gateway = start_gateway(config, factory=factory)
    yield gateway, loops
    loops.close()


def recorded_presses(gateway: Gateway) -> list[str]:
    seen: list[str] = []
    gateway.add_record_listener(lambda event: seen.append(event.button))
    return seen


def health_of(gateway: Gateway, button: str) -> dict[str, object]:
    return next(b.to_dict() for b in gateway.health().buttons if b.id == button)


def test_the_gateway_reads_a_press_and_a_cut_on_its_supervised_loop(
    loops_gateway: tuple[Gateway, VirtualLoops],
) -> None:
    gateway, loops = loops_gateway
    presses = recorded_presses(gateway)
    poll_until(lambda: health_of(gateway, "loop-fire-1"), lambda h: h.get("wiring") == "ok", timeout=5, interval=0.02)
    loops.set("loop-fire-1", Cable.PRESSED)
    poll_until(lambda: list(presses), lambda p: p == ["loop-fire-1"], timeout=5, interval=0.01, what="no press read")
    loops.set("loop-fire-1", Cable.IDLE)
    loops.set("loop-fire-1", Cable.CUT)
    cut = poll_until(
        lambda: health_of(gateway, "loop-fire-1"), lambda h: h.get("wiring") == "open", timeout=5, interval=0.02
    )
    assert cut["pressed"] is False and presses == ["loop-fire-1"]  # a cut is never a press
    loops.set("loop-fire-1", Cable.IDLE)
    poll_until(lambda: health_of(gateway, "loop-fire-1"), lambda h: h.get("wiring") == "ok", timeout=5, interval=0.02)
    assert "wiring" not in health_of(gateway, "fire-1")  # a plain button says nothing of a cable it cannot see
    assert gateway.liveness() is None


def test_a_supervised_press_and_a_cut_cable_reach_the_fire_post(
    tmp_path: Path, mosquitto, dashboard: DashboardServer, start_gateway: Callable[..., Gateway]
) -> None:
    path = gateway_toml(tmp_path / "gw.toml", port=mosquitto.port, buttons=[SUPERVISED_FIRE, PLAIN_FIRE])
    config = parse_config(parse_toml(path.read_text(), str(path)))
    factory, loops = mock_pins(config.buttons)
    operator = signed_in(dashboard, OPERATOR)
    with operator.stream() as board:
        start_gateway(config, factory=factory)
        drive(factory, loops, config.button("loop-fire-1"), True)
        alarm = wait_alarm(operator, lambda a: a["button"] == "loop-fire-1")
        assert alarm["kind"] == "fire" and not alarm["test"]
        drive(factory, loops, config.button("loop-fire-1"), False)
        # The health interval is 60 s: the cut must travel at once, not at the next report.
        loops.set("loop-fire-1", Cable.CUT)
        trouble = trouble_event(board, "button_wiring", "loop-fire-1")
        assert "open" in trouble["detail"] and trouble["kind"] == "fire"
        loops.set("loop-fire-1", Cable.IDLE)
        trouble_event(board, "button_wiring", "loop-fire-1", cleared=True)
    loops.close()
