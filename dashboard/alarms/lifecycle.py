"""The alarm life cycle, without I/O: which event opens an alarm, which action moves it where."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from firmware_bridge.errors import SiagaError
from firmware_bridge.payloads import EventType, IndicationState, Kind


class AlarmState(StrEnum):
    UNACKNOWLEDGED = "unacknowledged"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"  # a unit is on its way
    RESOLVED = "resolved"


class Resolution(StrEnum):
    REAL = "real"
    FALSE_ALARM = "false_alarm"
    TEST = "test"


class Action(StrEnum):
    OPENED = "opened"
    PRESSED = "pressed"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    RESOLVED = "resolved"
    ESCALATED = "escalated"  # taken by the dashboard itself: nobody acknowledged in time


class AlarmNotFound(SiagaError, LookupError):
    """No such alarm, or not one the current user may see."""


class InvalidAction(SiagaError, ValueError):
    """The request itself is wrong (an unknown resolution, a note too long...)."""


class InvalidTransition(SiagaError, ValueError):
    """The action does not apply to the alarm's current state (e.g. resolving twice)."""


class AlarmChanged(InvalidTransition):
    """The alarm changed since the operator looked at it (a new press joined it)."""

    def __init__(self, message: str, alarm: dict | None = None) -> None:
        super().__init__(message)
        self.alarm = alarm


OPEN_STATES = (AlarmState.UNACKNOWLEDGED, AlarmState.ACKNOWLEDGED, AlarmState.DISPATCHED)

#: Alarm ids are ``ID_STRIDE * number + KIND_CODE[kind]``, numbered per kind. A
#: single sequence would let the fire post see gaps where SAPA alarms happened.
ID_STRIDE = 16
KIND_CODE = {Kind.FIRE: 1, Kind.SAPA: 2}


def make_alarm_id(kind: Kind, number: int) -> int:
    """The id of the ``number``-th alarm of ``kind``."""
    return ID_STRIDE * number + KIND_CODE[kind]


_OPERATOR_MOVES: dict[Action, dict[AlarmState, AlarmState]] = {
    Action.ACKNOWLEDGED: {AlarmState.UNACKNOWLEDGED: AlarmState.ACKNOWLEDGED},
    # Dispatching follows acknowledging: the board shows the alarm was seen first.
    Action.DISPATCHED: {AlarmState.ACKNOWLEDGED: AlarmState.DISPATCHED},
    Action.RESOLVED: {
        AlarmState.UNACKNOWLEDGED: AlarmState.RESOLVED,
        AlarmState.ACKNOWLEDGED: AlarmState.RESOLVED,
        AlarmState.DISPATCHED: AlarmState.RESOLVED,
    },
}

_VERBS = {Action.ACKNOWLEDGED: "acknowledge", Action.DISPATCHED: "dispatch", Action.RESOLVED: "resolve"}

#: Note length limit for operator notes, in characters.
MAX_NOTE = 2000
#: Length limit of a dispatched unit's name.
MAX_UNIT = 100


class Anomaly(StrEnum):
    """Why an event or alarm needs a second look. The alarm is raised all the same (fail open)."""

    UNREGISTERED = "unregistered"  # its button is in no gateway's inventory
    KIND_MISMATCH = "kind_mismatch"  # the event claims another kind than the button's registered one
    DEGRADED = "degraded"  # processing failed on it; a minimal path raised the alarm


@dataclass(frozen=True, slots=True)
class Routing:
    """Which desk an event goes to, and what is odd about it."""

    kind: Kind
    anomaly: Anomaly | None = None


def route(claimed: Kind, registered: str | None) -> Routing:
    """The desk of an event: its button's registered kind, never the event's claim alone.

    A button in no inventory still reaches a desk, the one its event names: a
    fire must never be dropped for a configuration slip, and a SAPA call must
    never land on the fire post's board. Either way the doubt is recorded.
    """
    if registered is None:
        return Routing(claimed, Anomaly.UNREGISTERED)
    kind = Kind(registered)
    if kind is not claimed:
        return Routing(kind, Anomaly.KIND_MISMATCH)
    return Routing(kind)


def opens_alarm(event_type: EventType) -> bool:
    """Only a real press raises an alarm; heartbeats and troubles are stored as events."""
    return event_type is EventType.PRESS


def next_state(state: AlarmState, action: Action) -> AlarmState:
    """The state after an operator action, or :class:`InvalidTransition`."""
    moves = _OPERATOR_MOVES.get(action, {})
    if state not in moves:
        verb = _VERBS.get(action, action.value)
        raise InvalidTransition(f"cannot {verb} an alarm that is {state.value}")
    return moves[state]


def indication_for(state: AlarmState) -> IndicationState:
    """What the button should show for an alarm in ``state``."""
    return {
        AlarmState.UNACKNOWLEDGED: IndicationState.RECEIVED,
        AlarmState.ACKNOWLEDGED: IndicationState.ACKNOWLEDGED,
        AlarmState.DISPATCHED: IndicationState.DISPATCHED,
        AlarmState.RESOLVED: IndicationState.RESOLVED,
    }[state]


def clean_note(note: object) -> str | None:
    """Validate an operator's note; ``None`` when empty."""
    if note is None:
        return None
    if not isinstance(note, str):
        raise InvalidAction("note must be text")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise InvalidAction(f"note is longer than {MAX_NOTE} characters")
    return note or None


def clean_unit(unit: object) -> str:
    """The unit an operator dispatched (required for a dispatch)."""
    if not isinstance(unit, str) or not unit.strip():
        raise InvalidAction("unit (who was sent) is required to dispatch")
    unit = " ".join(unit.split())
    if len(unit) > MAX_UNIT:
        raise InvalidAction(f"unit is longer than {MAX_UNIT} characters")
    return unit
