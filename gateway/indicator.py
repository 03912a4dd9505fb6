"""What a button's LED shows, decided without touching hardware.

``sending``     fast flicker: pressed here, the dashboard has not confirmed yet
``received``    slow blink: the dashboard stored the alarm
``help_coming`` solid: an operator acknowledged (or dispatched) it
``off``         resolved, or nothing to show
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from firmware_bridge.payloads import Indication, IndicationState


class Pattern(StrEnum):
    OFF = "off"
    SENDING = "sending"
    RECEIVED = "received"
    HELP_COMING = "help_coming"


#: (on seconds, off seconds) of the blinking patterns.
BLINK_TIMES: dict[Pattern, tuple[float, float]] = {
    Pattern.SENDING: (0.1, 0.3),
    Pattern.RECEIVED: (0.5, 0.5),
}

#: Indications published close together (by different dashboard threads) may
#: arrive out of order: within this many seconds of the last one applied to a
#: button, an older (alarm, rev) is ignored. After it, the latest indication
#: wins whatever its (alarm, rev): the dashboard re-sends the current state of
#: every open alarm periodically and on reconnect, so one forged with a huge
#: alarm or rev is overwritten by the next genuine one instead of pinning the LED.
REORDER_WINDOW_S = 2.0

_FOR_STATE = {
    IndicationState.RECEIVED: Pattern.RECEIVED,
    IndicationState.ACKNOWLEDGED: Pattern.HELP_COMING,
    IndicationState.DISPATCHED: Pattern.HELP_COMING,
    IndicationState.RESOLVED: Pattern.OFF,
}


def supersedes(indication: Indication, last: Indication | None, since_last_s: float, window_s: float) -> bool:
    """Whether ``indication`` replaces ``last``, applied ``since_last_s`` seconds ago.

    An equal (alarm, rev) does: the dashboard re-sends the current state after
    each press and after reconnects, and that must end a ``sending`` flicker.
    """
    if last is None or since_last_s > window_s:
        return True
    return (indication.alarm, indication.rev) >= (last.alarm, last.rev)


class IndicatorState:
    """The pattern one button should show, from local presses and downlink indications.

    Not thread-safe: the gateway calls it under its own lock.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, reorder_window_s: float = REORDER_WINDOW_S
    ) -> None:
        self.pattern = Pattern.OFF
        self.last: Indication | None = None
        self._last_at = 0.0
        self._clock = clock
        self._reorder_window_s = reorder_window_s

    def pressed(self) -> Pattern:
        self.pattern = Pattern.SENDING
        return self.pattern

    def indicate(self, indication: Indication) -> Pattern | None:
        """Apply an indication; ``None`` if it is a late reorder (see :data:`REORDER_WINDOW_S`)."""
        now = self._clock()
        if not supersedes(indication, self.last, now - self._last_at, self._reorder_window_s):
            return None
        self.last, self._last_at = indication, now
        self.pattern = _FOR_STATE[indication.state]
        return self.pattern
