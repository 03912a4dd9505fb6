"""Supervision: nothing silent. Every gateway and button that stops reporting becomes a trouble.

:func:`evaluate` is the rule book and does no I/O: from what the store knows
of each gateway (its status, its last health message and when it arrived)
it lists the troubles that hold now. :class:`Supervisor` runs it every few
seconds, records when each trouble began and cleared (table ``troubles``) and
tells the boards.

Times: ``*_at`` values are the dashboard's clock. A gateway's own timestamps
are used only as differences on the gateway's clock (how long ago a button was
heard, how old the oldest waiting event is), so a gateway whose clock is
wrong is flagged but cannot hide a silent button.

Health is read only through :func:`.health.read_health` (also by the device view and
the gateway list), into the contract's typed :class:`Health`. The schema types
every field on the wire, but a stored message may predate it (an older
dashboard stored whatever shape it was sent) or come from an older gateway: a
field of an unexpected shape or an absurd value is left unknown, never
trusted, and every time derived from one is bounded (:func:`bounded_time`).
A gateway whose health still cannot be read becomes a trouble of its own
(``gateway_health_unreadable``); the others are supervised as usual.
"""

from __future__ import annotations

import logging
import sqlite3
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, cast

from firmware_bridge.counters import Counters
from firmware_bridge.payloads import (
    GatewayState,
    Health,
    Kind,
    ModuleState,
    NodeHealth,
    Source,
    Wiring,
)
from firmware_bridge.timeutil import format_epoch

from ..alarms import notify
from ..commissioning import store as commissioning
from ..commissioning.settings import CommissioningSettings
from ..db import PeriodicCheck, spelled, transaction
from ..ingest.hub import Hub, LiveMessage
from ..timeseries import queue
from . import registry
from .health import (
    FIRST_TIME,
    LAST_TIME,
    MAX_TEXT,
    bounded_time,
    field_epoch,
    field_number,
    format_time,
    read_health,
    seconds,
    stored_health,
)
from .service import ServiceMode

log = logging.getLogger(__name__)

#: How many recent rounds :meth:`Supervisor.round_times` takes its median over (about 8 minutes at 5 s).
ROUNDS_KEPT = 100


class TroubleType(StrEnum):
    GATEWAY_OFFLINE = "gateway_offline"  # its last will, or a clean stop
    GATEWAY_SILENT = "gateway_silent"  # online, but its health stopped: hung
    GATEWAY_CLOCK = "gateway_clock"  # its clock is far from ours
    GATEWAY_BACKLOG = "gateway_backlog"  # events wait in its outbox
    GATEWAY_DISK = "gateway_disk"  # its outbox cannot store: events only in memory
    GATEWAY_HEALTH_UNREADABLE = "gateway_health_unreadable"  # its health broke the rules: it is not supervised
    RADIO_MISSING = "radio_missing"  # its LoRa module is unplugged or dead
    BUTTON_MISSING = "button_missing"  # a radio button not heard within its window
    BUTTON_STUCK = "button_stuck"  # a wired button held down for long
    BUTTON_WIRING = "button_wiring"  # a supervised loop's cable is cut, shorted, or its ADC unreadable
    LOW_BATTERY = "low_battery"
    TAMPER = "tamper"  # the button's case is open
    WEBHOOK_FAILING = "webhook_failing"  # escalation notices are not getting through
    TIMESERIES_FAILING = "timeseries_failing"  # points wait in the store: the time-series server refuses them
    BUTTON_OUT_OF_SERVICE = "button_out_of_service"  # set aside by a technician: its presses raise no alarm
    BUTTON_IN_TEST = "button_in_test"  # a technician is testing it: its presses raise silent test alarms
    NOT_COMMISSIONED = "not_commissioned"  # with [commissioning] required: never passed a commissioning
    TEST_OVERDUE = "test_overdue"  # its last test is older than [commissioning] test_period_days
    # Troubles that arise from presses (see PRESS_TROUBLES):
    PRESSES_SUPPRESSED = "presses_suppressed"  # presses of a button out of service: stored, no alarm
    KIND_MISMATCH = "kind_mismatch"  # events claim another kind than the button's registered one
    BUTTON_UNREGISTERED = "button_unregistered"  # events of a button in no inventory (alarms raised all the same)
    PRESS_SET_ASIDE = "press_set_aside"  # a press the ingest could not process normally
    MESSAGE_SET_ASIDE = "message_set_aside"  # any other message the ingest could not process
    BUTTON_CONFLICT = "button_conflict"  # gateways register one button id under different kinds


#: Troubles that exist because somebody pressed a button. For a SAPA button
#: that alone is SAPA data (somebody called for help there, then), so these
#: are shown only to the desk of that kind: see :class:`Audience`.
PRESS_TROUBLES = frozenset(
    {
        TroubleType.WEBHOOK_FAILING,  # notices exist because an alarm went unanswered
        TroubleType.PRESSES_SUPPRESSED,
        TroubleType.KIND_MISMATCH,
        TroubleType.BUTTON_UNREGISTERED,
        TroubleType.PRESS_SET_ASIDE,
    }
)


@dataclass(frozen=True)
class Audience:
    """Whose troubles a role sees: device troubles of ``kinds``, press troubles of ``press_kinds``.

    Gateway troubles (kind None) are everyone's. A technician sees every
    button's device troubles but press troubles only of fire buttons.
    """

    kinds: frozenset[str]
    press_kinds: frozenset[str]

    def sees(self, trouble_type: str, kind: str | None) -> bool:
        if trouble_type in PRESS_TROUBLES:
            return kind is not None and kind in self.press_kinds
        return kind is None or kind in self.kinds


@dataclass(frozen=True)
class SupervisionSettings:
    gateway_silent_s: float = 90.0
    radio_button_silent_s: float = 200.0
    button_stuck_s: float = 60.0
    clock_skew_s: float = 120.0
    backlog_events: int = 100
    backlog_age_s: float = 60.0
    check_interval_s: float = 5.0
    #: How long anomalous events (unregistered button, kind mismatch) and
    #: set-aside messages stay a trouble after the last one, unless fixed sooner.
    anomaly_memory_s: float = 86400.0
    #: How often the dashboard tells every open alarm's button again what to
    #: show, so that a lost or forged indication does not stay on a LED.
    indication_resync_s: float = 60.0
    #: With time series on (``[influxdb]``): how long writes may fail before it is a trouble.
    timeseries_trouble_after_s: float | None = None
    #: ``[commissioning]``: with ``required``, every button must be commissioned and tested every period
    #: (``create_app`` sets it from ``SIAGA_COMMISSIONING``; None: no such troubles).
    commissioning: CommissioningSettings | None = None


@dataclass(frozen=True)
class Trouble:
    type: TroubleType
    gw: str | None
    button: str | None
    kind: str | None  # the button's kind (fire / sapa): who may see it; None for a gateway's trouble
    detail: str
    began_at: float  # dashboard clock: our best estimate of when it began
    subject: str | None = None  # what it is about when neither a gateway nor a button (a webhook)

    @property
    def key(self) -> str:
        subject = self.button or self.gw or self.subject
        if self.type is TroubleType.WEBHOOK_FAILING:
            return f"{self.type}:{subject}:{self.kind}"  # one receiver may fail both desks: a trouble for each
        return f"{self.type}:{subject}"


@dataclass(frozen=True)
class GatewayFacts:
    gw: str
    state: str
    updated_at: float
    #: its last health message as stored (decoded), or already read (:func:`.health.read_health`)
    health: dict[str, Any] | Health | None
    health_at: float | None


#: button id -> (gateway, kind, transport), from the gateways' inventories
Buttons = dict[str, tuple[str, str, str]]


#: Told of a gateway whose health could not be read: (gateway, the exception). See :class:`Supervisor`.
OnUnreadable = Callable[[str, Exception], None]


#: gateway -> ((health_at, the health read, the buttons judged against), its health's troubles, the buttons it heard)
HealthVerdicts = dict[str, tuple[tuple[float, object, Buttons], list[Trouble], dict[str, tuple[float, str]]]]


def evaluate(
    now: float,
    gateways: Iterable[GatewayFacts],
    buttons: Buttons,
    settings: SupervisionSettings,
    on_unreadable: OnUnreadable | None = None,
    verdicts: HealthVerdicts | None = None,
    heard: dict[str, tuple[float, str]] | None = None,
) -> list[Trouble]:
    """Every trouble that holds at ``now``. ``buttons``: id -> (gateway, kind, transport), from the inventories.

    Each gateway is evaluated on its own: if reading one's facts fails (a bug
    the tolerant reader did not foresee), that gateway gets a
    ``gateway_health_unreadable`` trouble, ``on_unreadable`` is told, and the
    round goes on for the others. Every trouble's ``began_at`` is bounded
    (:func:`bounded_time`).

    With ``verdicts`` (kept by the caller across rounds, for the same
    ``buttons`` object and ``settings``), what a gateway's health message says
    is worked out once per message: it does not depend on ``now``. ``heard``, if
    given, is filled with each radio button's latest hearing by a live gateway.
    """
    troubles: list[Trouble] = []
    heard = {} if heard is None else heard  # radio button -> (last heard, dashboard clock; by which gateway)
    live_gateways: set[str] = set()
    for facts in gateways:
        ears: dict[str, tuple[float, str]] = {}
        try:
            found = _gateway_troubles(now, facts, settings)
            if facts.state == GatewayState.ONLINE and facts.health is not None and facts.health_at is not None:
                live = now - facts.health_at <= settings.gateway_silent_s
                said, ears = _health_verdict(facts, buttons, settings, verdicts)
                found += said
                if live:
                    live_gateways.add(facts.gw)
                else:
                    ears = {}  # what a silent gateway last said of its buttons is stale: it cannot make one missing
        except Exception as exc:  # noqa: BLE001 - one gateway's odd report must not blind supervision of the rest
            if on_unreadable is not None:
                on_unreadable(facts.gw, exc)
            detail = f"its health report could not be read ({type(exc).__name__}); not supervised until it can"
            at = facts.health_at if isinstance(facts.health_at, (int, float)) else now
            troubles.append(Trouble(TroubleType.GATEWAY_HEALTH_UNREADABLE, facts.gw, None, None, detail, at))
            continue  # its buttons: its own trouble says it all, as for a silent gateway
        troubles += found
        for button, (at, gw) in ears.items():
            if button not in heard or at > heard[button][0]:
                heard[button] = (at, gw)
    for button, (gw, kind, transport) in sorted(buttons.items()):
        if transport != Source.LORA:
            continue
        last = heard.get(button)
        if last is not None and now - last[0] <= settings.radio_button_silent_s:
            continue
        if last is None and gw not in live_gateways:
            continue  # its gateway's own trouble says it all; no news of the button either way
        began = last[0] if last else now
        detail = "not heard since it was installed" if last is None else f"not heard for {now - last[0]:.0f} s"
        troubles.append(Trouble(TroubleType.BUTTON_MISSING, gw, button, kind, detail, began))
    return [_bounded(trouble, now) for trouble in troubles]


def _bounded(trouble: Trouble, now: float) -> Trouble:
    began = bounded_time(trouble.began_at, now)
    return trouble if began == trouble.began_at else replace(trouble, began_at=began)


def _health_verdict(
    facts: GatewayFacts, buttons: Buttons, settings: SupervisionSettings, verdicts: HealthVerdicts | None
) -> tuple[list[Trouble], dict[str, tuple[float, str]]]:
    """The troubles ``facts.health`` shows and the buttons it heard, from ``verdicts`` if that message was seen.

    Kept with the very message object and buttons mapping it was judged from
    (compared by identity: a new message or inventory is a new object); a
    message that cannot be read is never kept, so it fails, and is reported,
    every round.
    """
    health_at = cast(float, facts.health_at)
    known = verdicts.get(facts.gw) if verdicts is not None else None
    if known is not None:
        (seen_at, seen_health, seen_buttons), found, ears = known
        if seen_at == health_at and seen_health is facts.health and seen_buttons is buttons:
            return found, ears
    ears = {}
    found = _health_troubles(facts.gw, facts.health, health_at, buttons, settings, ears)
    if verdicts is not None:
        verdicts[facts.gw] = ((health_at, facts.health, buttons), found, ears)
    return found, ears


def _gateway_troubles(now: float, facts: GatewayFacts, settings: SupervisionSettings) -> list[Trouble]:
    if facts.state != GatewayState.ONLINE:
        return [Trouble(TroubleType.GATEWAY_OFFLINE, facts.gw, None, None, GatewayState.OFFLINE, facts.updated_at)]
    last = facts.health_at if facts.health_at is not None else facts.updated_at
    if now - last > settings.gateway_silent_s:
        return [Trouble(TroubleType.GATEWAY_SILENT, facts.gw, None, None, f"no health for {now - last:.0f} s", last)]
    return []


def _health_troubles(
    gw: str,
    stored: object,
    health_at: float,
    buttons: Buttons,
    settings: SupervisionSettings,
    heard: dict[str, tuple[float, str]],
) -> list[Trouble]:
    troubles: list[Trouble] = []
    health = stored if isinstance(stored, Health) else read_health(stored)
    sent_at = field_epoch(health.ts)
    if sent_at is not None and abs(sent_at - health_at) > settings.clock_skew_s:
        skew = sent_at - health_at
        detail = f"clock {abs(skew):.0f} s {'ahead' if skew > 0 else 'behind'}"
        troubles.append(Trouble(TroubleType.GATEWAY_CLOCK, gw, None, None, detail, health_at))
    troubles += _outbox_troubles(gw, health, sent_at, health_at, settings)
    radio = health.radio
    module = radio.module if radio is not None else None
    if module is not None and module.state is ModuleState.MISSING:
        detail = f"LoRa module {module.type or '?'} missing on {module.port}"
        troubles.append(Trouble(TroubleType.RADIO_MISSING, gw, None, None, detail, health_at))
    for node in radio.nodes.values() if radio is not None else ():
        troubles += _node_troubles(gw, node, health_at, buttons, heard)
    for wired in health.buttons:
        held = wired.pressed_for_s
        if held is not None and held > settings.button_stuck_s:
            kind = buttons.get(wired.id, (gw, None, None))[1]
            detail = f"held down for {held:.0f} s"
            troubles.append(Trouble(TroubleType.BUTTON_STUCK, gw, wired.id, kind, detail, health_at - held))
        if wired.wiring is not None and wired.wiring is not Wiring.OK:
            kind = buttons.get(wired.id, (gw, None, None))[1]
            faulty_for = wired.wiring_for_s if wired.wiring_for_s is not None else 0.0
            detail = f"loop {wired.wiring} for {faulty_for:.0f} s"
            troubles.append(Trouble(TroubleType.BUTTON_WIRING, gw, wired.id, kind, detail, health_at - faulty_for))
    return troubles


def _outbox_troubles(
    gw: str, health: Health, sent_at: float | None, health_at: float, settings: SupervisionSettings
) -> list[Trouble]:
    troubles = []
    outbox = health.outbox
    depth = outbox.depth or 0
    oldest = field_epoch(outbox.oldest_ts)
    waited = 0.0
    if sent_at is not None and oldest is not None:  # both on the gateway's clock
        waited = seconds(sent_at - oldest) or 0.0  # a span beyond belief counts as the longest one
    if depth >= settings.backlog_events or (depth and waited > settings.backlog_age_s):
        detail = f"{depth} event(s) waiting, oldest {waited:.0f} s"
        troubles.append(Trouble(TroubleType.GATEWAY_BACKLOG, gw, None, None, detail, health_at - waited))
    memory_only = outbox.memory_only or 0
    error = health.outbox_error
    if memory_only or error or health.outbox_ok is False:
        detail = f"outbox cannot store ({error or 'unavailable'}); {memory_only} event(s) only in memory"
        troubles.append(Trouble(TroubleType.GATEWAY_DISK, gw, None, None, detail, health_at))
    return troubles


def _node_troubles(
    gw: str,
    node: NodeHealth,
    health_at: float,
    buttons: Buttons,
    heard: dict[str, tuple[float, str]],
) -> list[Trouble]:
    button = node.button
    kind = buttons.get(button, (gw, None, None))[1]
    if node.age_s is not None:
        at = health_at - node.age_s
        if button not in heard or at > heard[button][0]:
            heard[button] = (at, gw)
    troubles = []
    if node.low_battery:
        battery = node.battery_mv
        detail = f"battery {battery} mV" if battery else "battery low"
        troubles.append(Trouble(TroubleType.LOW_BATTERY, gw, button, kind, detail, health_at))
    if node.tamper:
        troubles.append(Trouble(TroubleType.TAMPER, gw, button, kind, "case opened", health_at))
    return troubles


# -- the store and the thread ------------------------------------------------------------------


def load_facts(
    conn: sqlite3.Connection, memo: HealthMemo | None = None, inventory: InventoryMemo | None = None
) -> tuple[list[GatewayFacts], Buttons]:
    """Every gateway's facts and every registered button. With ``memo``, a health message read in an
    earlier round is not fetched or read again (a round's cost grows with what changed, not with every
    gateway's whole message); with ``inventory``, neither are the buttons while no inventory changed."""
    if memo is None:
        memo = HealthMemo()
    rows = conn.execute("SELECT gw, state, updated_at, health_at FROM gateways").fetchall()
    texts = _health_texts(conn, [row["gw"] for row in rows if not memo.knows(row["gw"], row["health_at"])])
    gateways = []
    for row in rows:
        gw, health_at = row["gw"], row["health_at"]
        health = memo.get(gw) if gw not in texts else memo.read(gw, health_at, texts[gw])
        gateways.append(GatewayFacts(gw, row["state"], row["updated_at"], health, health_at))
    memo.keep({row["gw"] for row in rows})
    return gateways, inventory.buttons(conn) if inventory is not None else read_buttons(conn)


def read_buttons(conn: sqlite3.Connection) -> Buttons:
    cursor = conn.cursor()
    cursor.row_factory = None  # plain tuples: a Row per button was most of reading 20,000 of them
    return {button: (gw, kind, transport) for button, gw, kind, transport in cursor.execute(_BUTTONS)}


_BUTTONS = "SELECT id, gw, kind, transport FROM buttons ORDER BY id"


class InventoryMemo:
    """The registered buttons and the conflicting registrations, read again only when an inventory changed.

    Inventories change when a gateway is installed or reconfigured; every round
    reads only their mark (:func:`registry.inventory_mark`), and everything again
    at least every ``refresh_s`` whatever the mark says.
    """

    def __init__(self, refresh_s: float = registry.INVENTORY_REFRESH_S) -> None:
        self.refresh_s = refresh_s
        self._mark: tuple[Any, ...] | None = None
        self._read_at = 0.0
        self._buttons: Buttons = {}
        self._conflicts: list[Trouble] | None = None

    def _fresh(self, conn: sqlite3.Connection) -> bool:
        mark = registry.inventory_mark(conn)
        if mark == self._mark and time.monotonic() - self._read_at < self.refresh_s:
            return True
        self._mark, self._read_at = mark, time.monotonic()
        self._buttons, self._conflicts = read_buttons(conn), None
        return False

    def buttons(self, conn: sqlite3.Connection) -> Buttons:
        """The buttons, as :func:`read_buttons`; the same object until something changed."""
        self._fresh(conn)
        return self._buttons

    def conflicts(self, conn: sqlite3.Connection, now: float) -> list[Trouble]:
        """:func:`conflict_troubles`, read once per inventory mark (after :meth:`buttons` in a round)."""
        if self._conflicts is None:
            self._conflicts = conflict_troubles(conn, now)
        return self._conflicts


def _health_texts(conn: sqlite3.Connection, gateways: list[str]) -> dict[str, str | None]:
    """The stored health text of ``gateways``, a few hundred per query (SQLite's limit on parameters)."""
    texts: dict[str, str | None] = {}
    for start in range(0, len(gateways), 500):
        chunk = gateways[start : start + 500]
        marks = ",".join("?" * len(chunk))
        query = f"SELECT gw, health FROM gateways WHERE gw IN ({marks})"  # noqa: S608 - marks only
        texts.update((row["gw"], row["health"]) for row in conn.execute(query, chunk))
    return texts


class HealthMemo:
    """Each gateway's last health message as read, keyed by when it arrived (``health_at``).

    A message is stored with its own ``health_at``, so an unchanged
    ``health_at`` means an unchanged message. One that cannot be read is kept
    decoded but unread, so that :func:`evaluate` meets the error itself
    (the gateway's ``gateway_health_unreadable`` trouble), every round.
    """

    def __init__(self) -> None:
        self._read: dict[str, tuple[float | None, dict[str, Any] | Health | None]] = {}

    def knows(self, gw: str, health_at: float | None) -> bool:
        entry = self._read.get(gw)
        return entry is not None and entry[0] == health_at and health_at is not None

    def get(self, gw: str) -> dict[str, Any] | Health | None:
        """What was read when :meth:`knows` said it knows this gateway's message."""
        return self._read[gw][1]

    def read(self, gw: str, health_at: float | None, text: str | None) -> dict[str, Any] | Health | None:
        decoded = stored_health(text)
        health: dict[str, Any] | Health | None = decoded
        if decoded is not None:
            try:
                health = read_health(decoded)
            except Exception:  # noqa: BLE001 - evaluate() reads it again and reports it as that gateway's trouble
                health = decoded
        self._read[gw] = (health_at, health)
        return health

    def keep(self, gateways: set[str]) -> None:
        """Forget gateways no longer in the store."""
        for gw in set(self._read) - gateways:
            del self._read[gw]


#: How long a notice that was given up stays a trouble (the operator must see it).
WEBHOOK_FAILED_MEMORY_S = 3600.0


def webhook_troubles(conn: sqlite3.Connection, now: float) -> list[Trouble]:
    """Receivers whose escalation notices fail: retrying for three tries or more, or given up this hour."""
    troubles = []
    for row in notify.failing_webhooks(conn, since=now - WEBHOOK_FAILED_MEMORY_S):
        detail = f"{row['count']} notification(s) not delivered; last error: {row['error'] or '-'}"
        troubles.append(
            Trouble(TroubleType.WEBHOOK_FAILING, None, None, row["kind"], detail, row["began"], row["webhook"])
        )
    return troubles


def timeseries_troubles(conn: sqlite3.Connection, now: float, after_s: float | None) -> list[Trouble]:
    """Time-series writes failing for ``after_s`` or longer: Grafana's charts stop, though nothing is lost."""
    if after_s is None:
        return []
    since = queue.bookmark(conn, "failing_since")
    if since is None or now - since < after_s:
        return []
    waiting = queue.batches_waiting(conn)
    detail = f"{waiting} batch(es) of points waiting; last error: {queue.bookmark(conn, 'last_error') or '-'}"
    detail = detail[:MAX_TEXT]
    return [Trouble(TroubleType.TIMESERIES_FAILING, None, None, None, detail, since, "influxdb")]


def service_troubles(conn: sqlite3.Connection, now: float) -> list[Trouble]:
    """A button set aside is a trouble until it is back: nobody must forget it is not protecting anyone.

    The presses it swallowed are a trouble of their own (a press trouble), so
    that the count reaches the button's desk without telling a technician
    that somebody pressed a SAPA button.
    """
    troubles = []
    rows = conn.execute(
        "SELECT s.*, b.gw, b.kind, (SELECT COUNT(*) FROM events e WHERE e.button = s.button "
        "AND e.suppressed IS NOT NULL AND e.received_at >= s.set_at) AS suppressed, "
        "(SELECT MIN(e.received_at) FROM events e WHERE e.button = s.button "
        "AND e.suppressed IS NOT NULL AND e.received_at >= s.set_at) AS first_suppressed "
        "FROM button_service s LEFT JOIN buttons b ON b.id = s.button WHERE s.until > ?",
        (now,),
    ).fetchall()
    for row in rows:
        until = format_epoch(row["until"])
        gw, button, kind = row["gw"], row["button"], row["kind"]
        why = f"{row['reason']} (until {until})"
        if row["mode"] == ServiceMode.OUT_OF_SERVICE:
            troubles.append(Trouble(TroubleType.BUTTON_OUT_OF_SERVICE, gw, button, kind, why, row["set_at"]))
            if row["suppressed"]:
                detail = f"{row['suppressed']} press(es) without alarm while out of service"
                troubles.append(
                    Trouble(TroubleType.PRESSES_SUPPRESSED, gw, button, kind, detail, row["first_suppressed"])
                )
        else:
            troubles.append(Trouble(TroubleType.BUTTON_IN_TEST, gw, button, kind, why, row["set_at"]))
    return troubles


def periodic_test_troubles(
    now: float, buttons: Buttons, tests: dict[str, tuple[float, float]], period_s: float
) -> list[Trouble]:
    """The rule book of periodic testing (no I/O): a registered button never commissioned, or whose last
    test (``tests``: button -> (last commissioning passed, last test)) is older than ``period_s``."""
    troubles = []
    every = f"{period_s / 86400:g}"
    for button, (gw, kind, _transport) in buttons.items():  # in the inventory's order (read sorted by id)
        last = tests.get(button)
        if last is None:
            troubles.append(Trouble(TroubleType.NOT_COMMISSIONED, gw, button, kind, "never commissioned", now))
        elif now - last[1] > period_s:
            detail = f"last test {format_epoch(last[1])}; one is due every {every} days"
            troubles.append(Trouble(TroubleType.TEST_OVERDUE, gw, button, kind, detail, last[1] + period_s))
    return troubles


def anomaly_troubles(conn: sqlite3.Connection, now: float, memory_s: float) -> list[Trouble]:
    """Events of unregistered buttons, and events whose kind disagrees with their button's registration.

    Each holds until it is fixed (the button is registered, or registered
    with the kind its events claim), until a later event of the button is in
    order, or ``memory_s`` after the last such event.
    """
    troubles = []
    rows = conn.execute(
        # The partial index of anomalous events (few): the planner, left alone, may skip-scan the index
        # of every event by button instead, one seek per button ever heard.
        spelled(  # noqa: S608
            conn,
            sqlite="WITH recent AS (SELECT * FROM events INDEXED BY events_anomaly WHERE anomaly IS NOT NULL "
            " AND anomaly IN ('unregistered', 'kind_mismatch') AND received_at >= ?), "
            # SQLite takes the bare columns of a lone MAX() from the row that holds it: the latest event.
            "latest AS (SELECT button, anomaly, MAX(received_at) AS last, gw, kind, "
            " json_extract(payload, '$.kind') AS claimed FROM recent GROUP BY button, anomaly), ",
            # PostgreSQL: the latest event of each (button, anomaly) by DISTINCT ON.
            postgresql="WITH recent AS (SELECT * FROM events WHERE anomaly IS NOT NULL "
            " AND anomaly IN ('unregistered', 'kind_mismatch') AND received_at >= ?), "
            "latest AS (SELECT DISTINCT ON (button, anomaly) button, anomaly, received_at AS last, gw, kind, "
            " siaga_json(payload) ->> 'kind' AS claimed FROM recent ORDER BY button, anomaly, received_at DESC), ",
        )
        + "span AS (SELECT button, anomaly, MIN(received_at) AS began, COUNT(*) AS n FROM recent "
        " GROUP BY button, anomaly) "
        "SELECT l.*, s.began, s.n, "
        # Registered by the gateway that carried the latest such event (each
        # gateway's own registration routes its presses).
        "(SELECT r.kind FROM registrations r WHERE r.gw = l.gw AND r.button = l.button) AS registered, "
        "EXISTS (SELECT 1 FROM events e WHERE e.button = l.button AND e.anomaly IS NULL "
        " AND e.received_at > l.last) AS in_order_since "
        "FROM latest l JOIN span s USING (button, anomaly)",
        (now - memory_s,),
    ).fetchall()
    for row in rows:
        if row["in_order_since"]:
            continue
        if row["anomaly"] == "unregistered":
            if row["registered"] is not None:
                continue
            detail = f"{row['n']} event(s) from a button in no inventory (claimed kind {row['claimed']})"
            troubles.append(
                Trouble(TroubleType.BUTTON_UNREGISTERED, row["gw"], row["button"], row["kind"], detail, row["began"])
            )
            continue
        if row["registered"] is None or row["registered"] == row["claimed"]:
            continue
        # Whoever sees this learns that the button sent something: SAPA's desk
        # alone may, whichever of the two kinds is SAPA.
        kinds = {row["registered"], row["claimed"]}
        audience = Kind.SAPA if Kind.SAPA in kinds else row["registered"]
        detail = f"{row['n']} event(s) claimed kind {row['claimed']}; registered as {row['registered']}"
        troubles.append(Trouble(TroubleType.KIND_MISMATCH, row["gw"], row["button"], audience, detail, row["began"]))
    return troubles


def conflict_troubles(conn: sqlite3.Connection, now: float) -> list[Trouble]:
    """A button id that gateways register under different kinds: a configuration to fix.

    Each gateway's presses go by its own registration meanwhile. It is a
    device trouble (nobody pressed), of SAPA's audience if SAPA is involved.
    """
    troubles = []
    joined = spelled(conn, sqlite="GROUP_CONCAT", postgresql="string_agg")
    rows = conn.execute(
        f"SELECT button, {joined}(gw || '=' || kind, ', ') AS claims, MIN(updated_at) AS began, "  # noqa: S608
        "MAX(CASE WHEN kind = 'sapa' THEN 1 ELSE 0 END) AS sapa, MIN(kind) AS kind, "
        "(SELECT b.gw FROM buttons b WHERE b.id = registrations.button) AS shown_by "
        "FROM registrations WHERE button IN ("
        # Found from the index on (button, kind) alone; only those buttons are read further.
        " SELECT button FROM registrations GROUP BY button HAVING MIN(kind) != MAX(kind)) "
        "GROUP BY button"
    ).fetchall()
    for row in rows:
        audience = Kind.SAPA if row["sapa"] else row["kind"]
        detail = f"registered under different kinds: {row['claims']}"
        troubles.append(
            Trouble(TroubleType.BUTTON_CONFLICT, row["shown_by"], row["button"], audience, detail, row["began"])
        )
    return troubles


def set_aside_troubles(conn: sqlite3.Connection, now: float, memory_s: float) -> list[Trouble]:
    """Messages the ingest could not process (a bug, or data the store refused): never only a log line."""
    troubles = []
    rows = conn.execute(
        "SELECT gw, button, kind, press, COUNT(*) AS n, MIN(at) AS began, "
        "SUM(CASE WHEN alarm_id IS NOT NULL THEN 1 ELSE 0 END) AS raised FROM rejected_messages "
        "WHERE reason = 'internal_error' AND at >= ? GROUP BY gw, button, kind, press",
        (now - memory_s,),
    ).fetchall()
    for row in rows:
        if row["press"]:
            what = TroubleType.PRESS_SET_ASIDE
            missing = row["n"] - row["raised"]
            detail = f"{row['n']} press(es) not processed normally; {row['raised']} raised as degraded alarm(s)"
            if missing:
                detail += f", {missing} not stored (its gateway keeps and resends it)"
        else:
            what = TroubleType.MESSAGE_SET_ASIDE
            detail = f"{row['n']} message(s) could not be processed; kept in rejected_messages"
        troubles.append(Trouble(what, row["gw"], row["button"], row["kind"], detail, row["began"]))
    return _merge_by_key(troubles)


def _merge_by_key(troubles: list[Trouble]) -> list[Trouble]:
    """One trouble per key (the same button's messages may have been filed under several kinds)."""
    merged: dict[str, Trouble] = {}
    for trouble in troubles:
        merged.setdefault(trouble.key, trouble)
    return list(merged.values())


def _unchanged(conn: sqlite3.Connection, current: dict[str, Trouble]) -> bool:
    rows = conn.execute("SELECT key, detail, kind FROM troubles WHERE cleared_at IS NULL").fetchall()
    stored = {row["key"]: (row["detail"], row["kind"]) for row in rows}
    return stored == {key: (t.detail, t.kind) for key, t in current.items()}


def record(conn: sqlite3.Connection, troubles: list[Trouble], now: float) -> list[dict[str, Any]]:
    """Open new troubles, update details, clear those that no longer hold; returns what changed."""
    current = {trouble.key: trouble for trouble in troubles}
    changed: list[int] = []
    if _unchanged(conn, current):
        return []  # a quiet round takes no write lock from the alarm ingest
    with transaction(conn):
        open_rows = {row["key"]: row for row in conn.execute("SELECT * FROM troubles WHERE cleared_at IS NULL")}
        for key, row in list(open_rows.items()):
            # A trouble whose audience changed (an unregistered button first
            # heard as fire, then as SAPA) is cleared and opened anew, so that
            # its new detail never reaches its old audience.
            if key not in current or current[key].kind != row["kind"]:
                conn.execute("UPDATE troubles SET cleared_at = ? WHERE id = ?", (now, row["id"]))
                changed.append(row["id"])
                if key in current:
                    del open_rows[key]
            elif current[key].detail != row["detail"]:
                conn.execute("UPDATE troubles SET detail = ? WHERE id = ?", (current[key].detail, row["id"]))
                changed.append(row["id"])
        for key, trouble in current.items():
            if key in open_rows:
                continue
            cursor = conn.execute(
                "INSERT INTO troubles (key, type, gw, button, subject, kind, detail, began_at, detected_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    key,
                    str(trouble.type),
                    trouble.gw,
                    trouble.button,
                    trouble.subject,
                    trouble.kind,
                    trouble.detail,
                    bounded_time(trouble.began_at, now),
                    now,
                ),
            )
            changed.append(int(cursor.fetchone()[0]))
    return [trouble_view(row) for row in _rows(conn, changed)]


def _rows(conn: sqlite3.Connection, ids: list[int]) -> list[sqlite3.Row]:
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return conn.execute(f"SELECT * FROM troubles WHERE id IN ({marks}) ORDER BY id", ids).fetchall()  # noqa: S608


def trouble_view(row: sqlite3.Row) -> dict[str, Any]:
    """A stored trouble as the boards see it. Never raises on a stored time, however absurd.

    A row stored before began_at was bounded is shown bounded the same way
    (within ten years before it was detected), so it cannot break a stream.
    """
    detected_at = row["detected_at"]
    detected = format_time(detected_at, time.time())
    reference = detected_at if field_number(detected_at, FIRST_TIME, LAST_TIME) is not None else time.time()
    return {
        # Not the row id: those run across every kind, and their gaps would
        # count the SAPA desk's troubles. What it is and when it was found
        # names one trouble as well (one open trouble per key).
        "id": f"{row['key']}@{detected}",
        "type": row["type"],
        "gw": row["gw"],
        "button": row["button"],
        "subject": row["button"] or row["gw"] or row["subject"],
        "kind": row["kind"],
        "detail": row["detail"],
        "began": format_time(bounded_time(row["began_at"], reference)),
        "detected": detected,
        "cleared": format_time(row["cleared_at"]),
    }


def open_troubles(conn: sqlite3.Connection, audience: Audience) -> list[dict[str, Any]]:
    """Open troubles a role may see: every gateway's, and its kinds' buttons' (see :class:`Audience`)."""
    rows = conn.execute("SELECT * FROM troubles WHERE cleared_at IS NULL ORDER BY began_at").fetchall()
    return [trouble_view(row) for row in rows if audience.sees(row["type"], row["kind"])]


def troubled_buttons(conn: sqlite3.Connection, audience: Audience) -> set[str]:
    """The buttons with an open trouble a role may see: :func:`open_troubles`' buttons, without their views."""
    rows = conn.execute("SELECT button, type, kind FROM troubles WHERE cleared_at IS NULL AND button IS NOT NULL")
    return {button for button, kind_of_trouble, kind in rows if audience.sees(kind_of_trouble, kind)}


class Supervisor(PeriodicCheck):
    """Evaluates the rules every ``check_interval_s`` and tells the boards what changed."""

    def __init__(
        self, database: str, hub: Hub, settings: SupervisionSettings, counters: Counters | None = None
    ) -> None:
        super().__init__("siaga-supervisor", settings.check_interval_s, database)
        self._hub = hub
        self.settings = settings
        self.counters = counters if counters is not None else Counters()
        self.last_check = 0.0
        self._unreadable: dict[str, str] = {}  # gateway -> the error last logged for it
        self._unreadable_now: dict[str, str] = {}
        self._healths = HealthMemo()
        self._inventory = InventoryMemo()
        self._verdicts: HealthVerdicts = {}
        #: radio button -> (when last heard, by which live gateway), as of the last round
        self.heard: dict[str, tuple[float, str]] = {}
        self._rounds: deque[float] = deque(maxlen=ROUNDS_KEPT)
        self._longest_ms = 0.0
        self._rounds_lock = threading.Lock()
        self._check_lock = threading.Lock()

    def round_times(self) -> dict[str, Any]:
        """How long its rounds took, in seconds: the last, the longest since it started, and the median of
        the last ``ROUNDS_KEPT``; None before the first round. Beside the interval they must stay under."""
        with self._rounds_lock:
            recent, longest = list(self._rounds), self._longest_ms
        done = bool(recent)
        return {
            "last_s": round(recent[-1] / 1000, 4) if done else None,
            "max_s": round(longest / 1000, 4) if done else None,
            "p50_s": round(statistics.median(recent) / 1000, 4) if done else None,
            "interval_s": self.settings.check_interval_s,
        }

    def _timed(self, started: float) -> None:
        took = (time.perf_counter() - started) * 1000
        with self._rounds_lock:
            self._rounds.append(took)
            self._longest_ms = max(self._longest_ms, took)

    def _health_unreadable(self, gw: str, exc: Exception) -> None:
        """Counted every round it fails; logged with its traceback once per gateway and error."""
        self.counters.add("health_unreadable")
        error = f"{type(exc).__name__}: {exc}"[:MAX_TEXT]
        self._unreadable_now[gw] = error
        if self._unreadable.get(gw) != error:
            log.error("the health report of gateway %s cannot be read: %s", gw, error, exc_info=exc)

    def check(self, conn: sqlite3.Connection, now: float | None = None) -> list[dict[str, Any]]:
        # One round at a time (a test or a tool may run one beside the thread): rounds share what they keep.
        with self._check_lock:
            started = time.perf_counter()
            try:
                return self._check(conn, time.time() if now is None else now)
            finally:
                self._timed(started)  # a round that failed took its time too

    def _check(self, conn: sqlite3.Connection, now: float) -> list[dict[str, Any]]:
        gateways, buttons = load_facts(conn, self._healths, self._inventory)
        self._unreadable_now = {}
        for gone in self._verdicts.keys() - {facts.gw for facts in gateways}:
            del self._verdicts[gone]
        heard: dict[str, tuple[float, str]] = {}
        troubles = evaluate(now, gateways, buttons, self.settings, self._health_unreadable, self._verdicts, heard)
        self.heard = heard  # replaced whole: the device view reads it from request threads
        self._unreadable = self._unreadable_now
        troubles += webhook_troubles(conn, now)
        troubles += timeseries_troubles(conn, now, self.settings.timeseries_trouble_after_s)
        troubles += service_troubles(conn, now)
        troubles += anomaly_troubles(conn, now, self.settings.anomaly_memory_s)
        troubles += self._inventory.conflicts(conn, now)
        troubles += set_aside_troubles(conn, now, self.settings.anomaly_memory_s)
        rules = self.settings.commissioning
        if rules is not None and rules.required:
            tests = commissioning.last_tests(conn, buttons, now, rules.test_period_s)
            troubles += periodic_test_troubles(now, buttons, tests, rules.test_period_s)
        changed = record(conn, troubles, now)
        opened_now = format_epoch(now)
        for view in changed:
            if view["cleared"] or view["detected"] == opened_now:  # not every new "for N s" of the detail
                state = "cleared" if view["cleared"] else "open"
                log.warning("trouble %s %s: %s %s", state, view["type"], view["subject"], view["detail"])
            self._hub.publish(LiveMessage("trouble", view, kind=view["kind"]))
        self.last_check = time.monotonic()
        return changed
