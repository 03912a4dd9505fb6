"""Wired buttons on GPIO, read with gpiozero, with their LED and (fire only) buzzer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gpiozero import LED, Button, Buzzer
from gpiozero.exc import GPIOZeroError
from gpiozero.pins import Factory

from firmware_bridge.errors import ConfigError
from firmware_bridge.payloads import Kind

from .config import ButtonConfig
from .indicator import BLINK_TIMES, Pattern

log = logging.getLogger(__name__)

#: Called with the button's config and, for hold-to-confirm buttons, how long it was held (ms).
OnPress = Callable[[ButtonConfig, "int | None"], None]


class WiredButton:
    """One wall button: the input pin, its LED and optional buzzer."""

    def __init__(self, config: ButtonConfig, factory: Factory | None, on_press: OnPress, *, file: str = "") -> None:
        self.config = config
        self._on_press = on_press
        self._devices: list[object] = []
        self.led: LED | None = None
        self.buzzer: Buzzer | None = None
        self.pattern = Pattern.OFF
        #: (on, off) seconds the LED blinks with; None while it is steady (on or off) or there is none.
        self.led_blink: tuple[float, float] | None = None
        try:
            self._make_input(config, factory, file)
            if config.led_pin is not None:
                self.led = self._make("led_pin", lambda: LED(config.led_pin, pin_factory=factory), file)
            if config.buzzer_pin is not None and config.kind is Kind.FIRE:
                self.buzzer = self._make("buzzer_pin", lambda: Buzzer(config.buzzer_pin, pin_factory=factory), file)
        except BaseException:
            self.close()
            raise

    def _make_input(self, config: ButtonConfig, factory: Factory | None, file: str) -> None:
        """The input: a pin to ground (``gateway/loops.py`` reads a supervised loop instead)."""
        self.button = self._make(
            "pin",
            lambda: Button(
                config.pin,
                pull_up=config.pull_up,
                bounce_time=config.bounce_s,
                hold_time=config.hold_s or 1.0,
                pin_factory=factory,
            ),
            file,
        )
        if config.hold_s > 0:
            self.button.when_held = self._held
        else:
            self.button.when_pressed = self._pressed

    def _make(self, key: str, build: Callable[[], Any], file: str) -> Any:
        try:
            device = build()
        except GPIOZeroError as exc:
            key_path = f"{self.config.key_path}.{key}"
            raise ConfigError(
                f"{file}: key '{key_path}': cannot use pin {getattr(self.config, key)!r}: {exc}",
                file=file,
                key=key_path,
            ) from None
        self._devices.append(device)
        return device

    def _pressed(self) -> None:
        self._on_press(self.config, None)

    def _held(self) -> None:
        self._on_press(self.config, int(self.config.hold_s * 1000))

    def view(self) -> dict[str, object]:
        """For health: a button held for long is stuck (jammed, or its wire shorted)."""
        held = self.button.active_time if self.button.is_active else None
        return {"id": self.config.id, "pressed": bool(self.button.is_active), "pressed_for_s": held}

    def show(self, pattern: Pattern) -> None:
        """Drive the LED (and, for a fire button newly received, a short chirp)."""
        previous, self.pattern = self.pattern, pattern
        if self.led is not None:
            self.led_blink = BLINK_TIMES.get(pattern)
            if self.led_blink is not None:
                on_time, off_time = self.led_blink
                self.led.blink(on_time, off_time, background=True)
            elif pattern is Pattern.HELP_COMING:
                self.led.on()
            else:
                self.led.off()
        if self.buzzer is not None and pattern is Pattern.RECEIVED and previous is not Pattern.RECEIVED:
            self.buzzer.beep(0.08, 0.08, n=2, background=True)

    def close(self) -> None:
        for device in reversed(self._devices):
            try:
                device.close()  # type: ignore[attr-defined]
            except Exception:  # closing must go on for the other devices
                log.exception("closing %s", device)
        self._devices.clear()
