"""Supervised button loops: the cable read through an ADC with an end-of-line resistor; a cut is a trouble.

A plain wired button is a contact between a GPIO pin and ground: a cut cable
looks exactly like a button nobody presses, and the site is silently
unprotected. A supervised loop (``supervision = "eol"``) puts known resistors
on the cable and measures it with an MCP3008 ADC on the Pi's SPI bus::

    3.3 V ── R_pull (gateway box) ──┬── ADC channel
                                    │
                          cable ────┤
                                    ├── R_eol ─────────────── GND   (inside the button's box)
                                    └── button ── R_alarm ─── GND

The ADC reads the fraction ``R / (R_pull + R)`` of the reference for the
loop's resistance ``R``: about 0.5 for a healthy idle loop (R_eol), 0.15 when
pressed (R_eol in parallel with R_alarm), 1.0 when the cable is cut (open) and
0.0 when it is shorted. :class:`LoopLevels` turns a reading into one of those
four states (the boundaries are the midpoints between neighbours), and
:class:`LoopTracker` decides, without I/O, what a run of readings means:
a press, a release, a wiring fault.

Fail open: a loop that was healthy and suddenly reads a dead short is also
treated as a press (a button whose alarm resistor failed, or was never fitted,
shorts the loop when pressed) as well as a wiring fault; a loop found shorted
or open at start, or that goes from open to short, is a fault only, so a
missing ADC (which reads all zeros) does not raise every alarm at boot.
:class:`SupervisedButton` and :class:`LoopPoller` are the part that reads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from gpiozero import MCP3008, Device
from gpiozero.pins import Factory

from firmware_bridge.counters import Counters
from firmware_bridge.payloads import Wiring
from firmware_bridge.periodic import Guard

from .buttons import WiredButton

if TYPE_CHECKING:  # config.py asks this module to check resistor values: no import back at run time
    from .config import ButtonConfig, LoopConfig

log = logging.getLogger(__name__)

#: How often every loop is read: 50 times a second, so a press is seen 60-80 ms after it begins (three
#: readings agree), far inside a deliberate press. Each read is a Python call down to the SPI driver (about
#: 0.3 ms on gpiozero's mock pins, which bit-bang the bus in Python; not yet measured on a Pi's hardware SPI),
#: so eight loops cost a few percent of a core at most.
POLL_S = 0.02
#: Readings in a row a new state must hold before it counts (debounce; a contact's bounce is ~5 ms).
CONFIRM_READINGS = 3
#: Failed reads in a row before the loop is reported unreadable (an ADC unplugged or dead).
UNREADABLE_AFTER = 20


class LoopState(StrEnum):
    NORMAL = "normal"
    ALARM = "alarm"
    OPEN = "open"
    SHORT = "short"


_FAULTS = (LoopState.OPEN, LoopState.SHORT)


def fraction(ohms: float, pull_ohms: float) -> float:
    """What the ADC reads (0..1 of its reference) for a loop of ``ohms`` under ``pull_ohms``."""
    if ohms == float("inf"):
        return 1.0
    return ohms / (pull_ohms + ohms)


def parallel(a: float, b: float) -> float:
    return a * b / (a + b)


@dataclass(frozen=True)
class LoopLevels:
    """The readings of a loop's four states and the boundaries between them (midpoints)."""

    short: float
    alarm: float
    normal: float
    open: float

    @classmethod
    def of(cls, loop: LoopConfig) -> LoopLevels:
        return cls(
            short=0.0,
            alarm=fraction(parallel(loop.eol_ohms, loop.alarm_ohms), loop.pull_ohms),
            normal=fraction(loop.eol_ohms, loop.pull_ohms),
            open=1.0,
        )

    def narrowest_gap(self) -> float:
        return min(self.alarm - self.short, self.normal - self.alarm, self.open - self.normal)

    def classify(self, value: float) -> LoopState:
        if value < (self.short + self.alarm) / 2:
            return LoopState.SHORT
        if value < (self.alarm + self.normal) / 2:
            return LoopState.ALARM
        if value < (self.normal + self.open) / 2:
            return LoopState.NORMAL
        return LoopState.OPEN


class LoopTracker:
    """What one loop's readings mean, without I/O: feed it readings, it says when a press happened.

    ``state`` is the debounced state (None until the first one is confirmed);
    ``pressed_since`` / ``fault_since`` are monotonic times.
    """

    def __init__(self, levels: LoopLevels, hold_s: float = 0.0, confirm: int = CONFIRM_READINGS) -> None:
        self.levels = levels
        self.hold_s = hold_s
        self.confirm = confirm
        self.state: LoopState | None = None
        self.unreadable = False
        self.pressed_since: float | None = None
        self.fault_since: float | None = None
        self._candidate: LoopState | None = None
        self._seen = 0
        self.failures = 0
        self._press_counted = False

    def reading(self, value: float, now: float) -> bool:
        """Take one reading; True when it completes a press (at once, or after ``hold_s`` held)."""
        self.failures = 0
        if self.unreadable:
            self.unreadable = False
            self.fault_since = now if self.state in _FAULTS else None
        observed = self.levels.classify(value)
        if observed == self.state:
            self._candidate, self._seen = None, 0
        else:
            if observed != self._candidate:
                self._candidate, self._seen = observed, 0
            self._seen += 1
            if self._seen >= self.confirm:
                self._enter(observed, now)
        return self._press_due(now)

    def failed_read(self, now: float) -> None:
        """A read that raised: after :data:`UNREADABLE_AFTER` in a row the loop is unsupervised, a fault."""
        self.failures += 1
        if self.failures >= UNREADABLE_AFTER and not self.unreadable:
            self.unreadable = True
            self.fault_since = now

    def _enter(self, new: LoopState, now: float) -> None:
        old, self.state = self.state, new
        self._candidate, self._seen = None, 0
        # A short is a press only from a loop known healthy (or being pressed): see the module's docstring.
        pressing = new is LoopState.ALARM or (
            new is LoopState.SHORT and (old in (LoopState.NORMAL, LoopState.ALARM) or self.pressed_since is not None)
        )
        if not pressing:
            self.pressed_since = None
        elif self.pressed_since is None:
            self.pressed_since, self._press_counted = now, False
        if new not in _FAULTS:
            self.fault_since = None
        elif old not in _FAULTS or self.fault_since is None:
            self.fault_since = now

    def _press_due(self, now: float) -> bool:
        if self.pressed_since is None or self._press_counted:
            return False
        if now - self.pressed_since >= self.hold_s:
            self._press_counted = True
            return True
        return False

    @property
    def wiring(self) -> Wiring:
        if self.unreadable:
            return Wiring.UNREADABLE
        if self.state is LoopState.OPEN:
            return Wiring.OPEN
        if self.state is LoopState.SHORT:
            return Wiring.SHORT
        return Wiring.OK

    @property
    def pressed(self) -> bool:
        return self.state is LoopState.ALARM


def check_levels(loop: LoopConfig) -> str | None:
    """Why these resistors cannot be told apart by the ADC, or None if they can."""
    gap = LoopLevels.of(loop).narrowest_gap()
    if gap < 0.1:
        return (
            f"the loop's states would read within {gap:.2f} of each other (need 0.10): choose resistors further "
            "apart (pull 4700, eol 4700, alarm 1000 read 0.50 idle, 0.15 pressed)"
        )
    return None


class SupervisedButton(WiredButton):
    """A wall button on a supervised loop: read through the ADC by :class:`LoopPoller`; LED and buzzer as wired."""

    def _make_input(self, config: ButtonConfig, factory: Factory | None, file: str) -> None:
        loop = config.loop
        assert loop is not None
        if Device.pin_factory is None and factory is not None:
            # gpiozero 2.0's software SPI bus (what mock pins use) asks for a default factory even when
            # given one; its pins still come from ``factory``.
            Device.pin_factory = factory
        self.adc = self._make(
            "adc_channel", lambda: MCP3008(channel=loop.channel, device=loop.device, pin_factory=factory), file
        )
        self.tracker = LoopTracker(LoopLevels.of(loop), hold_s=config.hold_s)
        #: Called when the wiring changes (the gateway sends its health at once: a cut cable is news now).
        self.on_wiring_change: Callable[[], None] = lambda: None

    def poll(self, now: float, counters: Counters) -> None:
        try:
            value = float(self.adc.value)
        except Exception as exc:  # noqa: BLE001 (any failed read, not only the SPI's errors, leaves the loop unwatched)
            counters.add("loop_read_errors")
            before = self.tracker.wiring
            self.tracker.failed_read(now)
            if self.tracker.failures == 1:  # once per run of failures: the reader turns 50 times a second
                log.warning("button %s: cannot read its loop: %s", self.config.id, exc)
            self._tell_wiring(before, str(exc))
            return
        before = self.tracker.wiring
        if self.tracker.reading(value, now):
            held_ms = int(self.config.hold_s * 1000) if self.config.hold_s > 0 else None
            self._on_press(self.config, held_ms)
        self._tell_wiring(before, f"reads {value:.2f}")

    def _tell_wiring(self, before: Wiring, why: str) -> None:
        if self.tracker.wiring is not before:
            log.warning("button %s: loop wiring %s (%s)", self.config.id, self.tracker.wiring, why)
            self.on_wiring_change()

    def view(self) -> dict[str, object]:
        now = time.monotonic()
        tracker = self.tracker
        fault_for = None if tracker.fault_since is None else round(now - tracker.fault_since, 1)
        held = None if tracker.pressed_since is None or not tracker.pressed else round(now - tracker.pressed_since, 1)
        return {
            "id": self.config.id,
            "pressed": tracker.pressed,
            "pressed_for_s": held,
            "wiring": str(tracker.wiring),
            "wiring_for_s": fault_for if tracker.wiring is not Wiring.OK else None,
        }


class LoopPoller:
    """The ``siaga-loops`` thread: reads every supervised loop every :data:`POLL_S`; outlives any one error."""

    def __init__(self, buttons: Callable[[], list[SupervisedButton]], counters: Counters, poll_s: float = POLL_S):
        self._buttons = buttons
        self._counters = counters
        self.poll_s = poll_s
        self.guard = Guard("siaga-loops", on_error=lambda: counters.add("loop_errors"))
        self.last_loop = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="siaga-loops", daemon=True)

    def start(self) -> LoopPoller:
        self._thread.start()
        return self

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        with self.guard.lifetime():
            while not self._stop.is_set():
                now = time.monotonic()
                self.last_loop = now
                for button in self._buttons():
                    with self.guard.round(f"reading the loop of {button.config.id}"):
                        button.poll(now, self._counters)
                self._stop.wait(self.poll_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
