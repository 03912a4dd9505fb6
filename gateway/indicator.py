"""What a button's LED shows, decided without touching hardware.

``sending``     fast flicker: pressed here, the dashboard has not confirmed yet
``received``    slow blink: the dashboard stored the alarm
``help_coming`` solid: an operator acknowledged (or dispatched) it
``off``         resolved, or nothing to show
"""

from __future__ import annotations

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

_FOR_STATE = {
    IndicationState.RECEIVED: Pattern.RECEIVED,
    IndicationState.ACKNOWLEDGED: Pattern.HELP_COMING,
    IndicationState.DISPATCHED: Pattern.HELP_COMING,
    IndicationState.RESOLVED: Pattern.OFF,
}


class IndicatorState:
    """The pattern one button should show, from local presses and downlink indications."""

    def __init__(self) -> None:
        self.pattern = Pattern.OFF
        self.last: Indication | None = None

    def pressed(self) -> Pattern:
        self.pattern = Pattern.SENDING
        return self.pattern

    def indicate(self, indication: Indication) -> Pattern | None:
        """Apply an indication; ``None`` if it is older than one already applied.

        An equal (alarm, rev) is applied again: the dashboard re-sends the
        current state after each press and after reconnects, and that must
        end a ``sending`` flicker.
        """
        last = self.last
        if last is not None and (indication.alarm, indication.rev) < (last.alarm, last.rev):
            return None
        self.last = indication
        self.pattern = _FOR_STATE[indication.state]
        return self.pattern
