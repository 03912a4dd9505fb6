"""Whose troubles the signed-in role may see (its alarm kinds: :func:`auth.visible_kinds`).

SAPA alarms concern women and children: only the SAPA desk may learn that
one exists, and a trouble that exists because somebody pressed tells as much.
"""

from __future__ import annotations

from firmware_bridge.payloads import Kind

from ..devices.supervision import Audience
from .auth import ALARM_KINDS, TROUBLE_KINDS, Role, current_role

#: Whose press troubles (``supervision.PRESS_TROUBLES``: presses swallowed
#: while out of service, unregistered buttons, kind mismatches, presses set
#: aside, failing escalation notices) each role sees: those tell that
#: somebody pressed, so a SAPA button's are the SAPA desk's alone. Technicians
#: see fire buttons' ones, to fix what caused them.
PRESS_TROUBLE_KINDS: dict[Role, frozenset[str]] = {
    **ALARM_KINDS,
    Role.TECHNICIAN: frozenset({Kind.FIRE.value}),
}


def trouble_audience() -> Audience:
    """The troubles the current role may see."""
    role = current_role()
    if role is None:
        return Audience(frozenset(), frozenset())
    return Audience(TROUBLE_KINDS.get(role, frozenset()), PRESS_TROUBLE_KINDS.get(role, frozenset()))
