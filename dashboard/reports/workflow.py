"""How Satpol PP works a report, without I/O: states, moves, and what Open311 shows.

    received -> verified -> in_action (warning, written warning, closure, referral) -> done
        \\            \\-> done (nothing left to do)
         \\-> rejected (not a violation, outside authority, duplicate)   <- also from verified

``in_action`` may follow ``in_action`` (a warning, then a written warning).
Open311 knows only ``open`` and ``closed``.
"""

from __future__ import annotations

from enum import StrEnum

from firmware_bridge.errors import SiagaError


class Status(StrEnum):
    RECEIVED = "received"
    VERIFIED = "verified"
    REJECTED = "rejected"
    IN_ACTION = "in_action"
    DONE = "done"


class Rejection(StrEnum):
    NOT_A_VIOLATION = "not_a_violation"
    OUTSIDE_AUTHORITY = "outside_authority"
    DUPLICATE = "duplicate"


class Enforcement(StrEnum):
    WARNING = "warning"
    WRITTEN_WARNING = "written_warning"
    CLOSURE = "closure"
    REFERRAL = "referral"


class WorkflowError(SiagaError, ValueError):
    """A move that does not apply, or lacks what it needs (a reason, an action).

    The message is English detail for the log; ``key`` is the message the
    officer sees, in the workspace's language.
    """

    def __init__(self, message: str, key: str = "error_move") -> None:
        super().__init__(message)
        self.key = key


MOVES: dict[Status, tuple[Status, ...]] = {
    Status.RECEIVED: (Status.VERIFIED, Status.REJECTED),
    Status.VERIFIED: (Status.IN_ACTION, Status.DONE, Status.REJECTED),
    Status.IN_ACTION: (Status.IN_ACTION, Status.DONE),
    Status.REJECTED: (),
    Status.DONE: (),
}

#: What a move needs: the kind of its ``resolution``.
RESOLUTIONS: dict[Status, type[StrEnum]] = {Status.REJECTED: Rejection, Status.IN_ACTION: Enforcement}

CLOSED = (Status.REJECTED, Status.DONE)


def open311_status(status: Status) -> str:
    return "closed" if status in CLOSED else "open"


def check_move(current: Status, target: str, resolution: str | None) -> tuple[Status, str | None]:
    """Validate a move; returns the target status and its resolution (or raises WorkflowError)."""
    try:
        new = Status(target)
    except ValueError:
        raise WorkflowError(f"unknown status {target!r}") from None
    if new not in MOVES[current]:
        allowed = ", ".join(s.value for s in MOVES[current]) or "none (the report is closed)"
        raise WorkflowError(f"a {current.value} report cannot become {new.value}; allowed: {allowed}")
    kind = RESOLUTIONS.get(new)
    if kind is None:
        if resolution:
            raise WorkflowError(f"{new.value} takes no reason or action", "error_move_no_reason")
        return new, None
    try:
        return new, str(kind(resolution))
    except ValueError:
        choices = ", ".join(r.value for r in kind)
        key = "error_move_needs_reason" if new is Status.REJECTED else "error_move_needs_action"
        raise WorkflowError(f"{new.value} needs one of {choices} (got {resolution!r})", key) from None
