"""Virtual supervised loops: an MCP3008 on gpiozero's mock SPI pins, and the cables and buttons it measures.

A gateway whose buttons are supervised loops (``supervision = "eol"``, see
``gateway/loops.py``) reads them through an MCP3008 ADC. On mock pins,
:class:`VirtualAdc` answers the gateway's SPI transfers bit by bit as the chip
does (start bit, single-ended bit, three channel bits, a null bit, ten data
bits), and each channel's :class:`VirtualLoop` says what resistance the cable
shows: idle (the end-of-line resistor), pressed, cut, or shorted. Tests and the
simulator press a supervised button, cut its cable or short it by setting its
loop's state.

The ADC must be attached to the factory *before* the gateway opens its
buttons (gpiozero's mock SPI wants the device on the pins first).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from enum import StrEnum

from gpiozero.pins.mock import MockFactory, MockSPIDevice

from gateway.config import SPI_PINS, SPI_SELECT_PINS, ButtonConfig, LoopConfig
from gateway.loops import fraction, parallel


class Cable(StrEnum):
    IDLE = "idle"
    PRESSED = "pressed"
    CUT = "cut"
    SHORTED = "shorted"


class VirtualLoop:
    """One button's cable and contact, as the ADC sees them."""

    def __init__(self, loop: LoopConfig) -> None:
        self.loop = loop
        self.cable = Cable.IDLE

    def reading(self) -> float:
        """The fraction of the reference the ADC reads now."""
        loop = self.loop
        ohms = {
            Cable.IDLE: loop.eol_ohms,
            Cable.PRESSED: parallel(loop.eol_ohms, loop.alarm_ohms),
            Cable.CUT: float("inf"),
            Cable.SHORTED: 0.0,
        }[self.cable]
        return fraction(ohms, loop.pull_ohms)


class VirtualAdc(MockSPIDevice):
    """An MCP3008 on the mock SPI bus (chip select ``device``): eight channels, ten bits."""

    BITS = 10

    def __init__(self, factory: MockFactory, device: int = 0) -> None:
        super().__init__(
            SPI_PINS["SCLK"],
            SPI_PINS["MOSI"],
            SPI_PINS["MISO"],
            SPI_SELECT_PINS[device],
            pin_factory=factory,
        )
        self.channels: dict[int, VirtualLoop] = {}
        self._state = "idle"
        self._lock = threading.Lock()

    def on_start(self) -> None:
        super().on_start()
        self._state = "idle"

    def on_bit(self) -> None:
        # The MCP3008's serial protocol: wait for the start bit, then SGL/DIFF, then D2..D0; the chip answers
        # a null bit and the ten result bits, most significant first.
        if self._state == "idle":
            if self.rx_buf[-1]:
                self._state, self.rx_buf = "mode", []
        elif self._state == "mode":
            self._state, self.rx_buf = ("single" if self.rx_buf[-1] else "differential"), []
        elif self._state in ("single", "differential") and len(self.rx_buf) == 3:
            self.tx_word(self._code(self.rx_word()), self.BITS + 2)  # the sampling and null bits, then the result
            self._state = "result"
        elif self._state == "result" and not self.tx_buf:
            self._state, self.rx_buf = "idle", []

    def _code(self, channel: int) -> int:
        loop = self.channels.get(channel)
        value = 1.0 if loop is None else loop.reading()  # a channel with nothing on it floats high: open
        return max(0, min(2**self.BITS - 1, round(value * (2**self.BITS - 1))))


class VirtualLoops:
    """The ADCs and loops of one gateway's supervised buttons on a mock factory."""

    def __init__(self, factory: MockFactory, buttons: Iterable[ButtonConfig]) -> None:
        self.loops: dict[str, VirtualLoop] = {}
        self.adcs: dict[int, VirtualAdc] = {}
        for button in buttons:
            if button.loop is None:
                continue
            adc = self.adcs.get(button.loop.device)
            if adc is None:
                adc = self.adcs[button.loop.device] = VirtualAdc(factory, button.loop.device)
            loop = adc.channels[button.loop.channel] = VirtualLoop(button.loop)
            self.loops[button.id] = loop

    def supervises(self, button_id: str) -> bool:
        return button_id in self.loops

    def set(self, button_id: str, cable: Cable | str) -> None:
        self.loops[button_id].cable = Cable(cable)

    def close(self) -> None:
        for adc in self.adcs.values():
            adc.close()


def mock_pins(buttons: Iterable[ButtonConfig]) -> tuple[MockFactory, VirtualLoops]:
    """A mock pin factory with the virtual ADCs of ``buttons``' supervised loops already on its SPI pins."""
    factory = MockFactory()
    return factory, VirtualLoops(factory, buttons)


def drive(factory: MockFactory, loops: VirtualLoops, button: ButtonConfig, pressed: bool) -> None:
    """Hold ``button`` down or let it go: its pin to ground (or up), or its loop's contact closed."""
    if button.loop is not None:
        loops.set(button.id, Cable.PRESSED if pressed else Cable.IDLE)
        return
    pin = factory.pin(button.pin)
    if pressed == button.pull_up:  # a pull-up button is pressed by pulling its pin low
        pin.drive_low()
    else:
        pin.drive_high()
