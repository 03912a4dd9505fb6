"""Escalation: an alarm nobody acknowledges gets louder, step by step.

Each kind has its steps, as seconds since the alarm opened (dashboard clock):
``fire_after_s = [60, 180, 600]`` escalates an unacknowledged fire alarm after
one, three and ten minutes. A step is recorded on the alarm (``escalation``,
an ``escalated`` action naming who was notified), makes the board show it more
prominently, and queues webhook notifications (:mod:`.notify`) in the same
transaction. Acknowledging (or resolving) stops further steps.

:func:`due_steps` is the rule and does no I/O; :class:`Escalator` applies it
every ``check_interval_s``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from firmware_bridge.payloads import Kind

from ..accounts import audit
from ..db import PeriodicCheck, transaction
from . import notices, notify, store
from .changes import AlarmChanges, Change
from .lifecycle import Action, AlarmState, InvalidTransition, Resolution

log = logging.getLogger(__name__)

#: Who the alarm log names for a step the dashboard took by itself.
ACTOR = "siaga"


@dataclass(frozen=True)
class EscalationSettings:
    #: kind -> seconds after opening at which each step is taken, ascending.
    after_s: dict[str, tuple[float, ...]] = field(
        default_factory=lambda: {Kind.FIRE.value: (60.0, 180.0, 600.0), Kind.SAPA.value: (120.0, 600.0)}
    )
    webhooks: tuple[notify.Webhook, ...] = ()
    retry: notify.RetryPolicy = field(default_factory=notify.RetryPolicy)
    check_interval_s: float = 1.0
    #: The board's public address, put in each notification so a reader can open it.
    board_url: str | None = None


def due_steps(waited_s: float, taken: int, after_s: Sequence[float]) -> list[int]:
    """The steps (1-based) due after ``waited_s`` unacknowledged, beyond the ``taken`` ones.

    More than one when the dashboard was down across several: each is still
    recorded, so the alarm's log says what was (late) done.
    """
    return [number for number, after in enumerate(after_s, start=1) if number > taken and waited_s >= after]


def any_due(conn: sqlite3.Connection, settings: EscalationSettings, now: float) -> bool:
    """Whether a step is due, read without the write lock (which the alarm ingest needs every moment)."""
    return any(
        due_steps(now - row["opened_at"], row["escalation"], settings.after_s.get(row["kind"], ()))
        for row in store.escalation_candidates(conn)
    )


def escalate_due(conn: sqlite3.Connection, settings: EscalationSettings, now: float) -> list[int]:
    """Take every due step (inside the caller's transaction); returns the ids of the alarms escalated."""
    escalated = []
    for row in store.escalation_candidates(conn):
        waited = now - row["opened_at"]
        steps = due_steps(waited, row["escalation"], settings.after_s.get(row["kind"], ()))
        for step in steps:
            _take_step(conn, row["id"], row["kind"], step, waited, settings, now)
        if steps:
            escalated.append(row["id"])
    return escalated


def _take_step(
    conn: sqlite3.Connection,
    alarm_id: int,
    kind: str,
    step: int,
    waited: float,
    settings: EscalationSettings,
    now: float,
) -> None:
    store.mark_escalated(conn, alarm_id, step, now)
    alarm = store.alarm_brief(conn, alarm_id)
    assert alarm is not None
    receivers = [webhook.name for webhook in settings.webhooks if webhook.receives(kind, step)]
    body = notify.payload(
        notify.NotificationEvent.ESCALATED,
        alarm,
        step,
        now,
        notices.escalated_texts(alarm, waited),
        settings.board_url,
    )
    notify.enqueue(
        conn,
        alarm_id=alarm_id,
        kind=kind,
        event=notify.NotificationEvent.ESCALATED,
        step=step,
        body=body,
        webhooks=receivers,
        now=now,
    )
    note = f"step {step}: unacknowledged for {waited:.0f} s; notifying: {', '.join(receivers) or 'no webhook'}"
    state = AlarmState.UNACKNOWLEDGED
    store.log_action(conn, alarm_id, Action.ESCALATED, ACTOR, now, state, state, note)
    audit.record(
        conn,
        audit.Who(ACTOR),
        f"alarm.{Action.ESCALATED}",
        subject=f"alarm:{alarm_id}",
        kind=kind,
        before={"escalation": step - 1},
        after={"escalation": step, "notified": receivers},
        at=now,
    )


#: A test alarm (a button in test mode) is closed by the dashboard after this long.
TEST_ALARM_S = 60.0


class Escalator(PeriodicCheck):
    """Takes due steps every ``check_interval_s`` and closes old test alarms; ``changes`` tells the others."""

    def __init__(self, database: str, changes: AlarmChanges, settings: EscalationSettings) -> None:
        super().__init__("siaga-escalator", settings.check_interval_s, database)
        self._changes = changes
        self.settings = settings

    def _close_tests(self, conn: sqlite3.Connection, now: float) -> None:
        """Resolve test alarms a minute old, so that the button's LED goes out after confirming."""
        for row in store.expired_test_alarms(conn, opened_before=now - TEST_ALARM_S):
            try:
                alarm = store.act_on_alarm(
                    conn,
                    row["id"],
                    Action.RESOLVED,
                    actor=ACTOR,
                    kinds={row["kind"]},
                    now=now,
                    note="test mode: closed automatically",
                    resolution=Resolution.TEST,
                    seen_rev=row["rev"],
                )
            except InvalidTransition:
                continue  # an operator acted on it meanwhile (or a press joined): next round
            self._changes.committed([alarm], Change.ACTED)

    def check(self, conn: sqlite3.Connection, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        self._close_tests(conn, now)
        if not any_due(conn, self.settings, now):
            return []  # most rounds: no write transaction at all
        with transaction(conn):
            escalated = escalate_due(conn, self.settings, now)
        if not escalated:
            return []
        alarms = store.get_alarms(conn, escalated)
        for alarm in alarms:
            log.warning("alarm %s (%s) escalated to step %s", alarm["id"], alarm["kind"], alarm["escalation"])
        self._changes.committed(alarms, Change.ESCALATED)
        return alarms
