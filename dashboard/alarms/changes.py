"""The one way an alarm change leaves the store: the boards, then the webhook notifier, then the button.

Every part that changes alarms (the MQTT ingest, the board's operator
actions, the escalator) hands the changed alarms here once its transaction
has committed, never before: a board or a button must not show what the
store could still roll back. The boards come first because they are the
alarm's path to a person; the ingest acknowledges to the broker and receipts
to the gateways between them and the button (``before_buttons``). Watchers
(integrations such as Home Assistant, :meth:`AlarmChanges.watch`) hear last,
with the events the commit stored; they must not block, and whatever they
raise is logged, never passed on to the committer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ..ingest.hub import Hub, LiveMessage
from .notify import Notifier

if TYPE_CHECKING:
    from firmware_bridge.payloads import Event

log = logging.getLogger(__name__)

#: The longest a committer waits for the boards to be written before it goes on (seconds).
BOARDS_WAIT_S = 0.002

#: Sends a button what its alarm now is (the MQTT ingest's ``indicate``).
Indicate = Callable[[dict[str, Any]], None]

#: Hears of every change after everyone else: the alarms, what happened, and the events the commit stored
#: (each with the kind of desk it went to; none but for presses). Must return at once (hand over, not work).
Watcher = Callable[[list[dict[str, Any]], "Change", Sequence[tuple["Event", str]]], None]


class Change(StrEnum):
    """What happened to the alarms, which decides who is told besides the boards."""

    #: A press opened or joined an alarm (degraded or not): the button learns its alarm was received.
    PRESSED = "pressed"
    #: An operator (or the dashboard, closing a test) acknowledged, dispatched or resolved it.
    ACTED = "acted"
    #: An escalation step queued notices; the button's indication does not change.
    ESCALATED = "escalated"


class AlarmChanges:
    """Tells the boards, the notifier and the buttons of alarms that changed (after the commit)."""

    def __init__(self, hub: Hub, notifier: Notifier | None = None) -> None:
        self.hub = hub
        self.notifier = notifier
        self._indicate: Indicate | None = None
        self._watchers: list[Watcher] = []

    def watch(self, watcher: Watcher) -> None:
        """Tell ``watcher`` of every change after the boards, the notifier and the buttons."""
        self._watchers.append(watcher)

    def link_buttons(self, indicate: Indicate) -> None:
        """The MQTT link names how to reach the buttons (there is none without a broker)."""
        self._indicate = indicate

    def committed(
        self,
        alarms: Iterable[dict[str, Any]],
        change: Change,
        *,
        before_buttons: Callable[[], None] | None = None,
        events: Sequence[tuple[Event, str]] = (),
    ) -> None:
        """Tell everyone of ``alarms`` (as :func:`store.alarm_view` shows them), in order.

        The boards first; the notifier if notices may have been queued (an
        escalation step, or an answer to an alarm whose escalation some
        receiver heard of); then ``before_buttons`` if given; then each
        button, unless only the escalation changed; then the watchers, with
        ``events`` (what the commit stored).
        """
        alarms = list(alarms)
        for alarm in alarms:
            self.hub.publish(LiveMessage("alarm", alarm, kind=alarm["kind"]))
        if alarms:
            # Let the event loop write the boards' bytes before this thread
            # goes on (PUBACKs, receipts, indications) and holds the GIL it
            # needs: ~0.7 ms off press -> board, bounded so a storm's
            # thousand boards never hold up the broker's acknowledgements.
            self.hub.wait_delivered(BOARDS_WAIT_S)
        if self._notices_queued(alarms, change) and self.notifier is not None:
            self.notifier.wake()
        if before_buttons is not None:
            before_buttons()
        if change is not Change.ESCALATED:
            for alarm in alarms:
                self._tell_button(alarm, change)
        for watcher in self._watchers:
            try:
                watcher(alarms, change, events)
            except Exception:  # an integration's bug must not reach the alarm's path
                log.exception("a watcher of alarm changes failed (the change itself is done)")

    @staticmethod
    def _notices_queued(alarms: list[dict[str, Any]], change: Change) -> bool:
        if change is Change.ESCALATED:
            return bool(alarms)
        # An answered alarm that had escalated: its receivers hear that it was answered.
        return change is Change.ACTED and any(alarm["escalation"] for alarm in alarms)

    def _tell_button(self, alarm: dict[str, Any], change: Change) -> None:
        if self._indicate is not None:
            self._indicate(alarm)
        elif change is Change.ACTED:
            log.warning("no MQTT link: button %s not told about alarm %s", alarm["button"], alarm["id"])
