"""Who may learn what of alarms and troubles, for the signed-in role.

SAPA alarms concern women and children: only the SAPA desk may learn that
one exists. Every view that could show an alarm, a press or a count of
either asks here rather than deciding for itself.
"""

from __future__ import annotations

from firmware_bridge.payloads import Kind

from .auth import ALARM_KINDS, TROUBLE_KINDS, Role, current_role
from .supervision import Audience

#: Whose press troubles (presses swallowed while out of service, unregistered
#: buttons, kind mismatches, presses set aside) each role sees: those tell that
#: somebody pressed, so a SAPA button's are the SAPA desk's alone. Technicians
#: see fire buttons' ones, to fix what caused them.
PRESS_TROUBLE_KINDS: dict[Role, frozenset[str]] = {
    **ALARM_KINDS,
    Role.TECHNICIAN: frozenset({Kind.FIRE.value}),
}


def alarm_kinds() -> frozenset[str]:
    """The alarm kinds the current role may see (none for technicians, Satpol PP or nobody)."""
    role = current_role()
    return ALARM_KINDS.get(role, frozenset()) if role else frozenset()


def trouble_audience() -> Audience:
    """The troubles the current role may see."""
    role = current_role()
    if role is None:
        return Audience(frozenset(), frozenset())
    return Audience(TROUBLE_KINDS.get(role, frozenset()), PRESS_TROUBLE_KINDS.get(role, frozenset()))
