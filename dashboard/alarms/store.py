"""The alarm store: events stored idempotently, alarms opened and joined, operator actions.

This is the one module that reads and writes alarm rows (``alarms``); every
change of a row goes through :func:`_bump`, which moves the revision on (or
its batched form for the presses of an ingest batch, :func:`_join_presses`).
Other modules ask it (escalation candidates, test alarms due to close, the
statistics' times, the sites' open alarms) instead of querying the table.
Functions take an open connection; writers run inside :func:`db.transaction`.
Reads that the board shows come back as plain dicts, ready for JSON.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from firmware_bridge.payloads import Event, Kind
from firmware_bridge.timeutil import format_epoch

from ..accounts import audit
from ..db import (
    COPY_FROM_ROWS,
    InQuery,
    database_file,
    dialect,
    insert_rows,
    pipelined,
    read_all,
    rows_in,
    savepoint,
    spelled,
    transaction,
)
from ..db import Error as StoreError
from ..devices import registry, service
from . import notify
from .lifecycle import (
    OPEN_STATES,
    Action,
    AlarmChanged,
    AlarmNotFound,
    AlarmState,
    Anomaly,
    InvalidAction,
    Resolution,
    Routing,
    clean_note,
    clean_unit,
    make_alarm_id,
    next_state,
    opens_alarm,
    route,
)

log = logging.getLogger(__name__)

_ALARM_SELECT = """
SELECT a.*, b.site_name, b.lat, b.lon, b.label, b.transport,
    CASE WHEN a.escalation > 0 THEN (SELECT COUNT(DISTINCT n.webhook) FROM notifications n
        WHERE n.alarm_id = a.id AND n.event = 'alarm.escalated') ELSE 0 END AS notified
FROM alarms a LEFT JOIN buttons b ON b.id = a.button
"""


@dataclass
class IngestOutcome:
    stored: int = 0
    duplicates: int = 0
    suppressed: int = 0  # presses of buttons out of service: stored, no alarm
    #: "stored.fire", "duplicate.sapa", ...: per kind, so that diagnostics can
    #: show the fire post's numbers without revealing SAPA activity.
    by_kind: Counter[str] = field(default_factory=Counter)
    #: alarm id -> the last action that changed it in this batch
    alarms: dict[int, Action] = field(default_factory=dict)
    #: the events stored (not redeliveries), each with the kind of desk it went to
    events: list[tuple[Event, str]] = field(default_factory=list)


def _iso(value: float | None) -> str | None:
    return None if value is None else format_epoch(value)


# -- the one writer of existing alarm rows --------------------------------------


@dataclass(frozen=True)
class _Sql:
    """A column's new value as an SQL expression of the row, ``?`` standing for ``params``."""

    expression: str
    params: tuple[Any, ...] = ()


#: One more press joined the alarm.
_ONE_MORE_PRESS = _Sql("press_count + 1")


def _update_alarm(assignments: list[str], *, batch: str | None = None) -> str:
    """The UPDATE of one alarm (``WHERE id = ?``) with ``assignments``, or of those whose ids ``batch`` lists
    (a FROM item ``j`` with a column ``alarm``); it moves the revision on."""
    # Column names come from this module's keyword arguments and code, never from input.
    changes = ", ".join(["rev = rev + 1", *assignments])
    if batch is None:
        return f"UPDATE alarms SET {changes} WHERE id = ?"  # noqa: S608
    return f"UPDATE alarms SET {changes} FROM {batch} WHERE alarms.id = j.alarm"  # noqa: S608


def _bump(conn: sqlite3.Connection, alarm_id: int, **columns: object) -> None:
    """Change an alarm row and move its revision on: every change of an alarm goes through here.

    Boards keep the highest revision they saw and buttons ignore an older one,
    so no change may leave ``rev`` where it was.
    """
    assignments, params = [], []
    for column, value in columns.items():
        if isinstance(value, _Sql):
            assignments.append(f"{column} = {value.expression}")
            params.extend(value.params)
        else:
            assignments.append(f"{column} = ?")
            params.append(value)
    counted = not STATS_COLUMNS.isdisjoint(columns)
    if "opened_at" in columns:
        count_stats_change(conn, alarm_id)  # its month before, as well as after
    conn.execute(_update_alarm(assignments), (*params, alarm_id))
    if counted:
        count_stats_change(conn, alarm_id)


#: An alarm's columns the API and the live stream show as stored ...
_ALARM_FIELDS = (
    "id", "number", "button", "label", "gw", "kind", "state", "rev", "press_count", "first_press_ts",
    "acknowledged_by", "dispatched_by", "dispatch_unit", "resolved_by", "resolution", "note", "last_event_id",
    "escalation", "notified", "transport", "anomaly",
)  # fmt: skip
#: ... and those that are times (epoch seconds in the store, wire timestamps in the view).
_ALARM_TIMES = ("opened_at", "last_press_at", "acknowledged_at", "dispatched_at", "resolved_at", "escalated_at")


def alarm_view(row: sqlite3.Row) -> dict[str, Any]:
    """An alarm as the API and the live stream show it (``notified``: webhook receivers told of its escalation)."""
    # sqlite3.Row finds a column by name with a scan of its names: one dict instead of ~33 scans
    # (a board's snapshot after a storm holds thousands of alarms).
    data = dict(zip(row.keys(), row, strict=True))
    view = {name: data[name] for name in _ALARM_FIELDS}
    view.update((name, _iso(data[name])) for name in _ALARM_TIMES)
    view["open"] = data["state"] != AlarmState.RESOLVED
    view["test"] = bool(data["test"])
    has_site = data["site_name"] is not None
    view["site"] = {"name": data["site_name"], "lat": data["lat"], "lon": data["lon"]} if has_site else None
    return view


# -- ingest -------------------------------------------------------------------


def route_event(conn: sqlite3.Connection, event: Event) -> Routing:
    return route(event.kind, registry.registered_kind(conn, event.gw, event.button))


def store_events(conn: sqlite3.Connection, events: Sequence[tuple[Event, float]]) -> IngestOutcome:
    """Store events (inside the caller's transaction). A known event id changes nothing.

    Each event goes to the desk of its button's registered kind (see
    :func:`.lifecycle.route`); an event whose own kind disagrees, or whose button
    is in no inventory, is stored with its anomaly and still raises its alarm.
    """
    outcome = IngestOutcome()
    lookups = _Lookups.read(conn, events)
    writes = _Writes()
    with pipelined(conn):  # on a server, the alarms a batch opens cost a round trip each, not three
        for event, received_at in events:
            _store_event(conn, event, received_at, lookups, writes, outcome)
    writes.flush(conn)
    return outcome


def _store_event(
    conn: sqlite3.Connection,
    event: Event,
    received_at: float,
    lookups: _Lookups,
    writes: _Writes,
    outcome: IngestOutcome,
) -> None:
    routing = route(event.kind, lookups.registered.get((event.gw, event.button)))
    kind = routing.kind
    if event.id in lookups.known:
        outcome.duplicates += 1
        outcome.by_kind[f"duplicate.{kind}"] += 1
        return
    lookups.known.add(event.id)
    outcome.stored += 1
    outcome.events.append((event, kind))
    outcome.by_kind[f"stored.{kind}"] += 1
    anomaly = str(routing.anomaly) if routing.anomaly else None
    if anomaly:
        outcome.by_kind[f"anomaly.{anomaly}.{kind}"] += 1
    alarm_id, suppressed = None, None
    if opens_alarm(event.type):
        set_aside = lookups.service_of(event.button, received_at)
        if set_aside is not None and set_aside.mode is service.ServiceMode.OUT_OF_SERVICE:
            # Stored and counted (the device view and the trouble show it), but no alarm.
            suppressed = str(service.ServiceMode.OUT_OF_SERVICE)
            outcome.suppressed += 1
        else:
            alarm_id = lookups.open_alarms.get((event.button, kind))
            testing = set_aside is not None and set_aside.mode is service.ServiceMode.TEST
            if alarm_id is None:
                alarm_id = _open_alarm(conn, event, received_at, kind, anomaly, test=testing)
                lookups.open_alarms[(event.button, kind)] = alarm_id
                if testing:
                    lookups.test_alarms.add(alarm_id)
                outcome.alarms[alarm_id] = Action.OPENED
            else:
                if not testing and alarm_id in lookups.test_alarms:
                    _make_real(conn, alarm_id, event, received_at)
                    lookups.test_alarms.discard(alarm_id)
                    outcome.alarms[alarm_id] = Action.OPENED  # as a real alarm: sounded, notified
                writes.join(alarm_id, event, received_at, anomaly)
                outcome.alarms.setdefault(alarm_id, Action.PRESSED)
    writes.events.append(
        (
            event.id,
            event.gw,
            event.button,
            str(kind),
            str(event.type),
            event.ts,
            str(event.src),
            received_at,
            json.dumps(event.to_dict(), separators=(",", ":")),
            anomaly,
            alarm_id,
            suppressed,
        )
    )


@dataclass
class _Join:
    """The presses of a batch that joined one open alarm, as one change of its row."""

    presses: int
    last_event_id: str
    last_press_at: float
    gw: str
    #: The first doubt (anomaly) among them: an alarm keeps the first it had.
    anomaly: str | None


@dataclass
class _Writes:
    """A batch's joined presses and event rows, written together once every alarm it opens exists (the
    rows name them): two statements of many rows instead of two per press."""

    joins: dict[int, _Join] = field(default_factory=dict)
    events: list[tuple[Any, ...]] = field(default_factory=list)

    def join(self, alarm_id: int, event: Event, received_at: float, anomaly: str | None) -> None:
        join = self.joins.get(alarm_id)
        if join is None:
            self.joins[alarm_id] = _Join(1, event.id, received_at, event.gw, anomaly)
            return
        join.presses += 1
        join.last_event_id, join.last_press_at, join.gw = event.id, received_at, event.gw
        join.anomaly = join.anomaly or anomaly

    def flush(self, conn: sqlite3.Connection) -> None:
        # A few rows (a single press: its alarm's change and its event row) go in one round trip; many
        # rows go by COPY, which cannot be pipelined.
        with nullcontext() if len(self.events) >= COPY_FROM_ROWS else pipelined(conn):
            _join_presses(conn, self.joins)
            insert_rows(conn, "events", _EVENT_COLUMNS, self.events)


#: An event row's columns, in the order :func:`_store_event` gives them.
_EVENT_COLUMNS = (
    "id", "gw", "button", "kind", "type", "ts", "src", "received_at", "payload", "anomaly", "alarm_id", "suppressed",
)  # fmt: skip


@dataclass
class _Lookups:
    """What a batch of events needs to know before it is stored, read with one query each (per few hundred
    buttons) instead of three per event: a server's round trips, not its work, are what a press costs there.

    Valid for the batch's transaction, which holds the store's writer lock: nothing else registers a
    button, sets its service mode or opens its alarm meanwhile, and the alarms this batch opens are added.
    """

    registered: dict[tuple[str, str], str]
    services: dict[str, service.Service]
    open_alarms: dict[tuple[str, str], int]
    #: Which of ``open_alarms`` are test alarms (a technician's presses).
    test_alarms: set[int]
    #: Event ids already stored: a redelivery (or the same event twice in a batch) changes nothing.
    known: set[str]

    @classmethod
    def read(cls, conn: sqlite3.Connection, events: Sequence[tuple[Event, float]]) -> _Lookups:
        buttons = sorted({event.button for event, _at in events})
        pressed = sorted({event.button for event, _at in events if opens_alarm(event.type)})
        registered, services, (open_alarms, test_alarms), known = read_all(
            conn,
            registry.registered_kinds(buttons),
            service.settings_of(pressed),
            _open_alarms_of(pressed),
            _stored_events({event.id for event, _at in events}),
        )
        return cls(registered, services, open_alarms, test_alarms, known)

    def service_of(self, button: str, now: float) -> service.Service | None:
        """As :func:`service.current`: the button's setting unless it expired by ``now``."""
        setting = self.services.get(button)
        return setting if setting is not None and setting.until > now else None


def _open_alarms_of(buttons: Sequence[str]) -> InQuery[tuple[dict[tuple[str, str], int], set[int]]]:
    """(button, kind) -> its open alarm's id, for every open alarm of ``buttons`` (:func:`_open_alarm_of`, batched),
    and which of them are test alarms."""

    def read(rows: list[Any]) -> tuple[dict[tuple[str, str], int], set[int]]:
        return (
            {(button, kind): int(alarm_id) for alarm_id, button, kind, _test in rows},
            {int(alarm_id) for alarm_id, _button, _kind, test in rows if test},
        )

    sql = "SELECT id, button, kind, test FROM alarms WHERE button IN ({}) AND state != 'resolved'"
    return InQuery(sql, buttons, read)


def _stored_events(ids: set[str]) -> InQuery[set[str]]:
    """Which of ``ids`` the store holds already."""
    return InQuery("SELECT id FROM events WHERE id IN ({})", ids, lambda rows: {row[0] for row in rows})


def _join_press(conn: sqlite3.Connection, alarm_id: int, event: Event, received_at: float, **columns: Any) -> None:
    """One more press joins an open alarm: its count, its latest event and time, and ``columns``."""
    _bump(conn, alarm_id, press_count=_ONE_MORE_PRESS, last_event_id=event.id, last_press_at=received_at, **columns)


def _join_presses(conn: sqlite3.Connection, joins: dict[int, _Join]) -> None:
    """:func:`_join_press` for a batch's presses, one row change per alarm (:func:`_bump`'s batched form: the
    revision moves on; no column the statistics count changes). Many alarms: one statement on PostgreSQL,
    its rows given as arrays; else one prepared statement run per alarm (sent together in a pipeline)."""
    if not joins:
        return
    if dialect(conn) == "sqlite" or len(joins) < COPY_FROM_ROWS:  # a few: no arrays to plan
        conn.executemany(
            _update_alarm(
                ["press_count = press_count + ?", "last_event_id = ?", "last_press_at = ?", "gw = ?",
                 "anomaly = COALESCE(anomaly, ?)"]
            ),
            [(j.presses, j.last_event_id, j.last_press_at, j.gw, j.anomaly, alarm_id) for alarm_id, j in joins.items()],
        )  # fmt: skip
        return
    rows = [(alarm_id, j.presses, j.last_event_id, j.last_press_at, j.gw, j.anomaly) for alarm_id, j in joins.items()]
    conn.execute(
        _update_alarm(
            ["press_count = press_count + j.presses", "last_event_id = j.event_id", "last_press_at = j.press_at",
             "gw = j.gateway", "anomaly = COALESCE(anomaly, j.doubt)"],
            batch="unnest(?::bigint[], ?::bigint[], ?::text[], ?::float8[], ?::text[], ?::text[]) "
            "AS j(alarm, presses, event_id, press_at, gateway, doubt)",
        ),
        [list(column) for column in zip(*rows, strict=True)],
    )  # fmt: skip


def _open_alarm_of(conn: sqlite3.Connection, button: str, kind: Kind) -> int | None:
    """The id of ``button``'s open alarm of ``kind`` (at most one: a unique index), if any."""
    # The partial index's condition written as it is (a literal, not a parameter): SQLite then plans
    # the lookup once instead of again for each press (13 µs instead of 53 µs at a million alarms).
    row = conn.execute(
        "SELECT id FROM alarms WHERE button = ? AND kind = ? AND state != 'resolved'", (button, str(kind))
    ).fetchone()
    return None if row is None else int(row["id"])


def _open_alarm(
    conn: sqlite3.Connection, event: Event, received_at: float, kind: Kind, anomaly: str | None, *, test: bool
) -> int:
    # The caller's transaction holds SQLite's write lock, so MAX + 1 cannot race.
    number = conn.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM alarms WHERE kind = ?", (str(kind),)).fetchone()[0]
    new_id = make_alarm_id(kind, number)
    conn.execute(
        "INSERT INTO alarms (id, number, button, gw, kind, state, first_event_id, last_event_id, first_press_ts, "
        "opened_at, last_press_at, test, anomaly) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            new_id,
            number,
            event.button,
            event.gw,
            str(kind),
            AlarmState.UNACKNOWLEDGED,
            event.id,
            event.id,
            event.ts,
            received_at,
            received_at,
            int(test),
            anomaly,
        ),
    )
    count_stats_change(conn, new_id)
    actor = f"gw:{event.gw}"
    log_action(conn, new_id, Action.OPENED, actor, received_at, None, AlarmState.UNACKNOWLEDGED, None, event.id)
    return new_id


def _make_real(conn: sqlite3.Connection, alarm_id: int, event: Event, received_at: float) -> None:
    """A real press came to an open test alarm: the alarm is real from now, as if this press had opened it.

    Joining the muted test alarm would have it closed with the test a minute later, never sounded nor
    escalated; and an operator may have acknowledged the test, which must not tell the person pressing now
    that help is coming. So it is unacknowledged again, opened at this press, and its history says why.
    """
    before = conn.execute("SELECT state FROM alarms WHERE id = ?", (alarm_id,)).fetchone()[0]
    _bump(
        conn,
        alarm_id,
        test=0,
        opened_at=received_at,
        state=AlarmState.UNACKNOWLEDGED,
        acknowledged_at=None,
        acknowledged_by=None,
        dispatched_at=None,
        dispatched_by=None,
        dispatch_unit=None,
        escalation=0,
        escalated_at=None,
    )
    note = "a real press came to a test alarm: a real alarm from this press"
    log_action(conn, alarm_id, Action.OPENED, f"gw:{event.gw}", received_at, before, AlarmState.UNACKNOWLEDGED, note,
               event.id)  # fmt: skip


def raise_degraded_alarm(conn: sqlite3.Connection, event: Event, received_at: float) -> int | None:
    """Fail open: the alarm for a press that the normal path could not process (a bug, bad data).

    As little as possible runs here, none of it shared with the path that
    failed beyond the button's registration: the event row (kept raw if it
    could not be stored) and an alarm of the button's registered kind, opened
    or joined and marked ``degraded``. Runs inside the caller's transaction.
    If the normal path had stored the press before failing, its alarm is
    returned unchanged (None if it was held back on purpose: out of service).
    """
    done = conn.execute("SELECT alarm_id, suppressed FROM events WHERE id = ?", (event.id,)).fetchone()
    if done is not None and (done["alarm_id"] is not None or done["suppressed"] is not None):
        return done["alarm_id"]
    try:
        kind = route_event(conn, event).kind
    except (*StoreError, ValueError):
        kind = event.kind
    conn.execute(
        "INSERT INTO events (id, gw, button, kind, type, ts, src, received_at, payload, anomaly) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
        (event.id, event.gw, event.button, str(kind), "press", str(event.ts), "unknown", received_at, "{}", "degraded"),
    )
    alarm_id = _open_alarm_of(conn, event.button, kind)
    if alarm_id is not None:
        if conn.execute("SELECT test FROM alarms WHERE id = ?", (alarm_id,)).fetchone()[0]:
            _make_real(conn, alarm_id, event, received_at)  # this path cannot tell a test press from a real one
        _join_press(conn, alarm_id, event, received_at, anomaly=str(Anomaly.DEGRADED))
    else:
        alarm_id = _open_alarm(conn, event, received_at, kind, str(Anomaly.DEGRADED), test=False)
    conn.execute("UPDATE events SET alarm_id = ? WHERE id = ? AND alarm_id IS NULL", (alarm_id, event.id))
    return alarm_id


def log_action(
    conn: sqlite3.Connection,
    alarm_id: int,
    action: Action,
    actor: str,
    at: float,
    from_state: str | None,
    to_state: str,
    note: str | None,
    event_id: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO alarm_actions (alarm_id, action, actor, at, from_state, to_state, note, event_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (alarm_id, str(action), actor, at, from_state, str(to_state), note, event_id),
    )


# -- operator actions -----------------------------------------------------------


def act_on_alarm(
    conn: sqlite3.Connection,
    alarm_id: int,
    action: Action,
    *,
    actor: str,
    kinds: Iterable[Kind],
    now: float,
    note: object = None,
    resolution: object = None,
    seen_rev: object = None,
    seen_presses: object = None,
    unit: object = None,
    by: audit.Who | None = None,
) -> dict[str, Any]:
    """Acknowledge, dispatch or resolve an alarm the actor may see; returns the updated alarm.

    ``seen_rev`` is the revision the operator was looking at. Resolving needs
    it: if presses joined the alarm since, resolving would close a call for
    help nobody saw, so :class:`AlarmChanged` is raised instead. A board that
    also sends ``seen_presses`` (the press count it showed) is refused only
    when presses joined: an escalation step or a colleague's acknowledgement
    in between changes the revision but hides no call for help.
    """
    note = clean_note(note)
    if action is Action.DISPATCHED:
        unit = clean_unit(unit)
    if action is Action.RESOLVED:
        try:
            resolution = Resolution(resolution)
        except ValueError:
            choices = ", ".join(r.value for r in Resolution)
            raise InvalidAction(f"resolution must be one of {choices} (got {resolution!r})") from None
        if seen_rev is None:
            raise InvalidAction("rev (the alarm revision the operator saw) is required to resolve")
    for name, value in (("rev", seen_rev), ("presses", seen_presses)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidAction(f"{name} must be an integer (got {value!r})")
    visible = {str(kind) for kind in kinds}
    with transaction(conn):
        row = conn.execute(
            "SELECT state, kind, rev, press_count, note, dispatch_unit, resolution FROM alarms WHERE id = ?",
            (alarm_id,),
        ).fetchone()
        if row is None or row["kind"] not in visible:
            raise AlarmNotFound(f"alarm {alarm_id} not found")
        state = AlarmState(row["state"])
        new_state = next_state(state, action)
        presses_unchanged = seen_presses is not None and seen_presses == row["press_count"]
        if seen_rev is not None and seen_rev != row["rev"] and not presses_unchanged:
            current = get_alarm(conn, alarm_id, kinds=visible)
            raise AlarmChanged(
                f"the alarm changed since you looked at it (revision {row['rev']}, not {seen_rev}; "
                f"{row['press_count']} press(es) now): review it first",
                current,
            )
        if action is Action.ACKNOWLEDGED:
            moved: dict[str, object] = {"acknowledged_at": now, "acknowledged_by": actor}
        elif action is Action.DISPATCHED:
            moved = {"dispatched_at": now, "dispatched_by": actor, "dispatch_unit": unit}
        else:
            moved = {"resolved_at": now, "resolved_by": actor, "resolution": str(resolution)}
        keep_note = _Sql("COALESCE(?, note)", (note,))  # no note this time: the last one stays
        _bump(conn, alarm_id, state=str(new_state), note=keep_note, **moved)
        logged = (
            f"{unit}: {note}"
            if action is Action.DISPATCHED and note
            else (unit if action is Action.DISPATCHED else note)
        )
        log_action(conn, alarm_id, action, actor, now, state, new_state, logged)
        if state is AlarmState.UNACKNOWLEDGED:
            notify.settle(conn, alarm_id, now)  # escalation stops here
        after = conn.execute(
            "SELECT state, rev, press_count, note, dispatch_unit, resolution FROM alarms WHERE id = ?", (alarm_id,)
        ).fetchone()
        audit.record(
            conn,
            by or audit.Who(actor),
            f"alarm.{action}",
            subject=f"alarm:{alarm_id}",
            kind=row["kind"],
            before={key: row[key] for key in after.keys()},
            after=dict(after),
            at=now,
        )
    alarm = get_alarm(conn, alarm_id, kinds=visible)
    assert alarm is not None
    return alarm


def recently_closed(conn: sqlite3.Connection, *, kinds: Iterable[str], since: float) -> list[dict[str, int]]:
    """Ids and final revisions of alarms resolved since ``since`` (boards use them to ignore late copies)."""
    kinds = [str(kind) for kind in kinds]
    if not kinds:
        return []
    marks = ",".join("?" * len(kinds))
    rows = conn.execute(
        f"SELECT id, rev FROM alarms WHERE state = ? AND resolved_at >= ? AND kind IN ({marks})",  # noqa: S608
        [str(AlarmState.RESOLVED), since, *kinds],
    ).fetchall()
    return [{"id": row["id"], "rev": row["rev"]} for row in rows]


def count_open(conn: sqlite3.Connection, *, kinds: Iterable[str]) -> list[tuple[str, str, bool, int]]:
    """(kind, state, test, count) of the alarms of ``kinds`` not yet resolved (``/metrics``)."""
    kinds = [str(kind) for kind in kinds]
    if not kinds:
        return []
    marks = ",".join("?" * len(kinds))
    rows = conn.execute(
        f"SELECT kind, state, test, COUNT(*) AS n FROM alarms WHERE state != ? AND kind IN ({marks}) "  # noqa: S608
        "GROUP BY kind, state, test",
        [str(AlarmState.RESOLVED), *kinds],
    ).fetchall()
    return [(row["kind"], row["state"], bool(row["test"]), int(row["n"])) for row in rows]


def alarm_steps_since(conn: sqlite3.Connection, after: int, limit: int) -> list[sqlite3.Row]:
    """Steps of alarms' lives (``alarm_actions``) after the action id ``after``, oldest first, each with its
    alarm's number, kind, button, opening time, test mark and resolution and its button's site and kecamatan:
    what the time series say of them (``dashboard/timeseries/``)."""
    return conn.execute(
        "SELECT x.id AS action_id, x.action, x.at, a.number, a.kind, a.button, a.opened_at, a.test, "
        "a.resolution, b.site_name, b.kecamatan FROM alarm_actions x JOIN alarms a ON a.id = x.alarm_id "
        "LEFT JOIN buttons b ON b.id = a.button WHERE x.id > ? ORDER BY x.id LIMIT ?",
        (after, limit),
    ).fetchall()


def sapa_days(conn: sqlite3.Connection, start: float, end: float) -> list[sqlite3.Row]:
    """SAPA alarms opened in ``[start, end)`` and their presses, per kecamatan of their buttons."""
    return conn.execute(
        "SELECT b.kecamatan, COUNT(*) AS alarms, SUM(a.press_count) AS presses FROM alarms a "
        "LEFT JOIN buttons b ON b.id = a.button WHERE a.kind = ? AND a.opened_at >= ? AND a.opened_at < ? "
        "GROUP BY b.kecamatan",
        (str(Kind.SAPA), start, end),
    ).fetchall()


# -- reads ------------------------------------------------------------------------


def get_alarm(conn: sqlite3.Connection, alarm_id: int, *, kinds: Iterable[str]) -> dict[str, Any] | None:
    row = conn.execute(_ALARM_SELECT + " WHERE a.id = ?", (alarm_id,)).fetchone()
    if row is None or row["kind"] not in {str(kind) for kind in kinds}:
        return None
    return alarm_view(row)


def get_alarms(conn: sqlite3.Connection, alarm_ids: Iterable[int]) -> list[dict[str, Any]]:
    """Alarms by id, whatever their kind (for the live stream, which filters per subscriber)."""
    ids = list(alarm_ids)
    if not ids:
        return []
    return [alarm_view(row) for row in rows_in(conn, _ALARM_SELECT + " WHERE a.id IN ({})", ids)]


def list_alarms(
    conn: sqlite3.Connection, *, kinds: Iterable[str], open_only: bool = True, limit: int | None = 200
) -> list[dict[str, Any]]:
    """Alarms of ``kinds``, newest first, at most ``limit`` (None: every one, as a board's snapshot needs)."""
    kinds = [str(kind) for kind in kinds]
    if not kinds:
        return []
    marks = ",".join("?" * len(kinds))
    query = _ALARM_SELECT + f" WHERE a.kind IN ({marks})"
    params: list[Any] = list(kinds)
    if open_only:
        query += f" AND a.state IN ({','.join('?' * len(OPEN_STATES))})"
        params += [str(state) for state in OPEN_STATES]
    query += " ORDER BY a.opened_at DESC, a.id DESC"
    if limit is not None:
        query += " LIMIT ?"
        params.append(limit)
    return [alarm_view(row) for row in conn.execute(query, params).fetchall()]


def alarm_actions(conn: sqlite3.Connection, alarm_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT action, actor, at, from_state, to_state, note, event_id FROM alarm_actions "
        "WHERE alarm_id = ? ORDER BY id",
        (alarm_id,),
    ).fetchall()
    return [{**dict(row), "at": _iso(row["at"])} for row in rows]


def alarm_events(conn: sqlite3.Connection, alarm_id: int) -> list[dict[str, Any]]:
    """The presses of an alarm, in the order the dashboard received them."""
    rows = conn.execute(
        "SELECT id, gw, type, ts, received_at, src FROM events WHERE alarm_id = ? ORDER BY received_at, id",
        (alarm_id,),
    ).fetchall()
    return [{**dict(row), "received_at": _iso(row["received_at"])} for row in rows]


def alarms_to_indicate(conn: sqlite3.Connection, *, closed_since: float, gw: str | None = None) -> list[dict[str, Any]]:
    """What each button should show now: its open alarms, else its alarm resolved since ``closed_since``.

    Sent again periodically and when a gateway comes back, so that a lost or
    forged indication does not stay on a LED: an open alarm's state, and
    "resolved" (LED off) for a button whose last alarm was closed lately.
    """
    # Two index reads, not a scan of every alarm ever stored (66 ms per gateway
    # coming online at a million events): the open alarms from the partial
    # index (its condition written literally, so the planner can match it),
    # and the alarms resolved since ``closed_since`` that are their button's
    # latest of their kind while the button has none open.
    kinds = ", ".join(f"'{kind.value}'" for kind in Kind)
    still_open = "a.state != 'resolved'"
    closed_lately = (
        f"a.kind IN ({kinds}) AND a.state = 'resolved' AND a.resolved_at >= ? "  # noqa: S608 - kinds: the Kind enum
        "AND NOT EXISTS (SELECT 1 FROM alarms a2 WHERE a2.button = a.button AND a2.kind = a.kind AND a2.id > a.id) "
        "AND NOT EXISTS (SELECT 1 FROM alarms a3 WHERE a3.button = a.button AND a3.state != 'resolved')"
    )
    open_params: list[Any] = []
    closed_params: list[Any] = [closed_since]
    if gw is not None:
        still_open += " AND a.gw = ?"
        closed_lately += " AND a.gw = ?"
        open_params.append(gw)
        closed_params.append(gw)
    sql = f"{_ALARM_SELECT} WHERE {still_open} UNION ALL {_ALARM_SELECT} WHERE {closed_lately}"
    return [alarm_view(row) for row in conn.execute(sql, open_params + closed_params).fetchall()]


def alarm_brief(conn: sqlite3.Connection, alarm_id: int) -> dict[str, Any] | None:
    """What a webhook notification says of an alarm: enough to act on, nothing of the reporter."""
    row = conn.execute(
        "SELECT a.id, a.number, a.kind, a.state, a.button, a.gw, a.press_count, a.opened_at, a.acknowledged_at, "
        "a.acknowledged_by, a.resolved_at, a.resolution, a.escalation, b.site_name, b.lat, b.lon, b.label "
        "FROM alarms a LEFT JOIN buttons b ON b.id = a.button WHERE a.id = ?",
        (alarm_id,),
    ).fetchone()
    if row is None:
        return None
    site = None if row["site_name"] is None else {"name": row["site_name"], "lat": row["lat"], "lon": row["lon"]}
    return {
        "id": row["id"],
        "number": row["number"],
        "kind": row["kind"],
        "state": row["state"],
        "button": row["button"],
        "label": row["label"],
        "gw": row["gw"],
        "site": site,
        "press_count": row["press_count"],
        "opened_at": format_epoch(row["opened_at"]),
        "acknowledged_at": format_epoch(row["acknowledged_at"]) if row["acknowledged_at"] else None,
        "acknowledged_by": row["acknowledged_by"],
        "resolved_at": format_epoch(row["resolved_at"]) if row["resolved_at"] else None,
        "resolution": row["resolution"],
        "escalation": row["escalation"],
        "opened_epoch": row["opened_at"],
    }


def open_alarms_by_button(conn: sqlite3.Connection, kinds: Iterable[str]) -> dict[str, list[sqlite3.Row]]:
    """Button -> its open alarms of ``kinds`` (``id``, ``number``, ``button``, ``state``, ``test``)."""
    kinds = sorted(str(kind) for kind in kinds)
    if not kinds:
        return {}
    states = [str(state) for state in OPEN_STATES]
    rows = conn.execute(
        f"SELECT id, number, button, state, test FROM alarms WHERE state IN ({','.join('?' * len(states))}) "  # noqa: S608
        f"AND kind IN ({','.join('?' * len(kinds))})",
        [*states, *kinds],
    ).fetchall()
    found: dict[str, list[sqlite3.Row]] = {}
    for row in rows:
        found.setdefault(row["button"], []).append(row)
    return found


def alarm_time_tuples(
    conn: sqlite3.Connection, kinds: Iterable[str], since: float | None, until: float | None
) -> list[tuple[Any, ...]]:
    """The response times of alarms of ``kinds`` opened in [``since``, ``until``), oldest first, as plain
    tuples: ``(kind, button, opened_at, acknowledged_at, resolved_at, resolution)`` (the statistics'
    input). Read through the index on (kind, opened_at)."""
    kinds = [str(kind) for kind in kinds]
    if not kinds:
        return []
    marks = ",".join("?" * len(kinds))
    query = (
        "SELECT kind, button, opened_at, acknowledged_at, resolved_at, resolution FROM alarms "  # noqa: S608
        f"WHERE kind IN ({marks})"
    )
    params: list[Any] = list(kinds)
    if since is not None:
        query += " AND opened_at >= ?"
        params.append(since)
    if until is not None:
        query += " AND opened_at < ?"
        params.append(until)
    cursor = conn.cursor()
    cursor.row_factory = None  # tuples: a year of alarms is too many rows to wrap each one
    return cursor.execute(query + " ORDER BY opened_at", params).fetchall()


def evaluation_alarms(conn: sqlite3.Connection, kind: str, since: float, until: float) -> list[tuple[Any, ...]]:
    """The alarms of one kind opened in [``since``, ``until``), oldest first, as plain tuples, for the
    evaluation report: ``(button, kecamatan, opened_at, acknowledged_at, dispatched_at, resolved_at,
    resolution, test, escalated_at)``; ``kecamatan`` is the button's now (None when unknown). Read
    through the index on (kind, opened_at). The caller drops what happened at or after its cut-off."""
    cursor = conn.cursor()
    cursor.row_factory = None  # tuples: a year of alarms is too many rows to wrap each one
    return cursor.execute(
        "SELECT a.button, b.kecamatan, a.opened_at, a.acknowledged_at, a.dispatched_at, a.resolved_at,"
        " a.resolution, a.test, a.escalated_at FROM alarms a LEFT JOIN buttons b ON b.id = a.button"
        " WHERE a.kind = ? AND a.opened_at >= ? AND a.opened_at < ? ORDER BY a.opened_at",
        (kind, since, until),
    ).fetchall()


def button_sites(conn: sqlite3.Connection) -> dict[str, str]:
    """Each known button's site name."""
    cursor = conn.cursor()
    cursor.row_factory = None
    return dict(cursor.execute("SELECT id, site_name FROM buttons").fetchall())


# -- escalation ----------------------------------------------------------------------


def escalation_candidates(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Unacknowledged alarms that may escalate (``id``, ``kind``, ``opened_at``, ``escalation``); never a test."""
    return conn.execute(
        "SELECT id, kind, opened_at, escalation FROM alarms WHERE state = ? AND test = 0",
        (str(AlarmState.UNACKNOWLEDGED),),
    ).fetchall()


def mark_escalated(conn: sqlite3.Connection, alarm_id: int, step: int, now: float) -> None:
    """Record escalation ``step`` on the alarm (inside the caller's transaction)."""
    _bump(conn, alarm_id, escalation=step, escalated_at=now)


def expired_test_alarms(conn: sqlite3.Connection, opened_before: float) -> list[sqlite3.Row]:
    """Open test alarms opened before ``opened_before`` (``id``, ``kind``, ``rev``), due to be closed."""
    return conn.execute(
        "SELECT id, kind, rev FROM alarms WHERE test = 1 AND state != ? AND opened_at <= ?",
        (str(AlarmState.RESOLVED), opened_before),
    ).fetchall()


# -- the statistics' monthly summaries (derived data: see the end of schema.sql) ----------------------


def opened_span(conn: sqlite3.Connection, kinds: Iterable[str]) -> tuple[float, float] | None:
    """When the first and the last alarm of ``kinds`` were opened (None: there is none).

    One kind at a time, so that each is two steps down the index on (kind, opened_at): a MIN and a MAX
    in one SELECT would read every alarm of the kind, each in its own subquery is one step down.
    """
    firsts, lasts = [], []
    for kind in kinds:
        first, last = conn.execute(
            "SELECT (SELECT MIN(opened_at) FROM alarms WHERE kind = ?), "
            "(SELECT MAX(opened_at) FROM alarms WHERE kind = ?)",
            (str(kind), str(kind)),
        ).fetchone()
        if first is not None:
            firsts.append(first)
            lasts.append(last)
    return (min(firsts), max(lasts)) if firsts else None


#: The alarms' columns the statistics read: a change of any of them changes its month's figures.
STATS_COLUMNS = frozenset({"kind", "button", "opened_at", "acknowledged_at", "resolved_at", "resolution"})
#: stats_alarm_changes' row holding the generation the summaries are computed at (see schema.sql).
_GENERATION_DAY = -1
_COUNT_CHANGE = (
    "INSERT INTO stats_alarm_changes (day, changes) SELECT CAST(floor(opened_at / 86400) AS BIGINT), 1 FROM alarms "
    "WHERE id = ? ON CONFLICT(day) DO UPDATE SET changes = stats_alarm_changes.changes + 1"
)
#: Stores (by file) whose summaries this process no longer trusts: counting failed and so did distrusting them.
_distrusted: set[str] = set()
#: How many times counting a change failed (each logged; the alarm was written all the same).
bookkeeping_failures = 0


def count_stats_change(conn: sqlite3.Connection, alarm_id: int) -> None:
    """Count a change of the statistics' figures of alarm ``alarm_id`` under the day it was opened
    (inside the alarm's transaction, after its write).

    Never raises: the alarm's write must not fail with the bookkeeping (a table dropped or altered).
    On a failure the change is logged and the summaries are distrusted instead, so the statistics
    are computed from the alarms until a page stores them at a new generation.
    """
    global bookkeeping_failures
    try:
        with savepoint(conn, "stats_bookkeeping"):
            conn.execute(_COUNT_CHANGE, (alarm_id,))
    except Exception:  # whatever failed, the alarm is written
        bookkeeping_failures += 1
        log.exception("statistics: a change of alarm %s was not counted; the summaries are distrusted", alarm_id)
        _distrust_summaries(conn)


def _distrust_summaries(conn: sqlite3.Connection) -> None:
    """No stored summary is taken for current again: the generation goes (or failing that, the summaries;
    failing that too, this process stops trusting the store's summaries)."""
    for statement in (
        f"DELETE FROM stats_alarm_changes WHERE day = {_GENERATION_DAY}",  # noqa: S608 - a constant
        "DELETE FROM stats_summaries",
    ):
        try:
            with savepoint(conn, "stats_bookkeeping"):
                conn.execute(statement)
            return
        except Exception:  # noqa: BLE001, S112 - the next way, then the last resort below
            continue
    try:
        _distrusted.add(database_file(conn))
    except Exception:  # nothing left to try; logged by the caller
        log.critical("statistics: summaries could not be distrusted", exc_info=True)


def stats_trusted(conn: sqlite3.Connection) -> bool:
    """Whether this process may take the store's summaries for what they say (see :func:`count_stats_change`)."""
    return not _distrusted or database_file(conn) not in _distrusted


def stats_bookkeeping(conn: sqlite3.Connection, first_day: int, last_day: int) -> tuple[int | None, dict[int, int]]:
    """(the summaries' generation, None if there is none; UTC day -> how many changes of alarms opened
    that day were counted). Raises if the bookkeeping is missing."""
    cursor = conn.cursor()
    cursor.row_factory = None
    rows = cursor.execute(
        "SELECT day, changes FROM stats_alarm_changes WHERE day BETWEEN ? AND ? OR day = ?",
        (first_day, last_day, _GENERATION_DAY),
    ).fetchall()
    counts = dict(rows)
    return counts.pop(_GENERATION_DAY, None), counts


def stats_sites_mark(conn: sqlite3.Connection) -> str:
    """A hash of every button's site: any button added, removed or moved to another site changes it.

    In the table's order (a scan, without sorting): the same sites in another order only cost a recomputation.
    """
    cursor = conn.cursor()
    cursor.row_factory = None
    joined = spelled(  # PostgreSQL: in the key's order, as an updated row moves in its table
        conn,
        sqlite="group_concat(id || ? || site_name, ?)",
        postgresql="string_agg(id || ? || site_name, ? ORDER BY id)",
    )
    (text,) = cursor.execute(f"SELECT {joined} FROM buttons", ("\x1f", "\x1e")).fetchone()  # noqa: S608
    return hashlib.blake2b((text or "").encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def stats_summaries(conn: sqlite3.Connection, months: Sequence[str]) -> dict[str, tuple[int, int, str]]:
    """Stored month -> the (generation, alarm changes, sites hash) its summary was computed at."""
    if not months:
        return {}
    cursor = conn.cursor()
    cursor.row_factory = None
    rows = cursor.execute(
        "SELECT month, generation, alarm_changes, sites FROM stats_summaries "  # noqa: S608
        f"WHERE month IN ({','.join('?' * len(months))})",
        list(months),
    ).fetchall()
    return {month: (generation, changes, sites) for month, generation, changes, sites in rows}


#: A stored month and kind: two keys, five counts, the whole kind's sorted times, then each site's.
STATS_KIND_COLUMNS = (
    "month", "kind", "alarms", "open", "real", "false_alarm", "test", "to_ack", "to_resolve",
    "sites", "site_counts", "site_to_ack", "site_to_ack_ends", "site_to_resolve", "site_to_resolve_ends",
)  # fmt: skip
_WHOLE_COLUMNS = 9  # without the sites' columns: what the month and kind tables read


def stats_kinds(
    conn: sqlite3.Connection, months: Sequence[str], kinds: Iterable[str], *, by_site: bool = True
) -> list[tuple[Any, ...]]:
    """The stored rows of ``months`` and ``kinds`` as plain tuples of :data:`STATS_KIND_COLUMNS`
    (the sites' columns None unless ``by_site``)."""
    kinds = [str(kind) for kind in kinds]
    if not months or not kinds:
        return []
    columns = STATS_KIND_COLUMNS if by_site else (*STATS_KIND_COLUMNS[:_WHOLE_COLUMNS], *(("NULL",) * 6))
    query = (
        f"SELECT {', '.join(columns)} FROM stats_kinds "  # noqa: S608
        f"WHERE month IN ({','.join('?' * len(months))}) AND kind IN ({','.join('?' * len(kinds))})"
    )
    cursor = conn.cursor()
    cursor.row_factory = None
    return cursor.execute(query, [*months, *kinds]).fetchall()


def start_stats_generation(conn: sqlite3.Connection) -> None:
    """A new generation for summaries to be computed at, unless there is one (inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO stats_alarm_changes (day, changes) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (_GENERATION_DAY, secrets.randbits(62)),
    )


def save_stats_months(
    conn: sqlite3.Connection, summaries: Iterable[tuple[str, int, int, str, Iterable[tuple[Any, ...]]]]
) -> None:
    """Store months' summaries: (month, generation, alarm changes, sites hash, rows as :data:`STATS_KIND_COLUMNS`
    tuples), each replacing the month's earlier one (inside the caller's transaction)."""
    marks = ", ".join("?" * len(STATS_KIND_COLUMNS))
    for month, generation, alarm_changes, sites, rows in summaries:
        conn.execute("DELETE FROM stats_kinds WHERE month = ?", (month,))
        conn.executemany(f"INSERT INTO stats_kinds ({', '.join(STATS_KIND_COLUMNS)}) VALUES ({marks})", rows)  # noqa: S608
        conn.execute(
            "INSERT INTO stats_summaries (month, generation, alarm_changes, sites) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(month) DO UPDATE SET generation = excluded.generation, "
            "alarm_changes = excluded.alarm_changes, sites = excluded.sites",
            (month, generation, alarm_changes, sites),
        )


def alarms_open_or_resolved_since(conn: sqlite3.Connection, kind: Kind, since: float) -> list[sqlite3.Row]:
    """Alarms of ``kind`` open now or resolved since ``since``, in no set order, with their button's site,
    label, kecamatan and point: what the CAP feed publishes (``dashboard/cap/``, fire only). Two index reads
    (open: by kind and state; resolved: by kind, state and time), never a scan of every alarm of the kind;
    the caller orders the few rows (an ORDER BY here made SQLite walk the kind's alarms in time order)."""
    select = (
        "SELECT a.id, a.number, a.kind, a.state, a.test, a.opened_at, a.acknowledged_at, a.dispatched_at, "
        "a.dispatch_unit, a.resolved_at, a.resolution, b.site_name, b.label, b.kecamatan, b.lat, b.lon "
        "FROM alarms a LEFT JOIN buttons b ON b.id = a.button WHERE a.kind = ? AND "
    )
    still_open = "a.state IN ({})".format(", ".join(f"'{state.value}'" for state in OPEN_STATES))  # the enum
    return conn.execute(
        f"{select}{still_open} UNION ALL {select}a.state = 'resolved' AND a.resolved_at >= ?",
        (str(kind), str(kind), since),
    ).fetchall()


def evaluation_last_tests(
    conn: sqlite3.Connection, kind: str, until: float, since: float | None = None
) -> dict[str, float]:
    """Each button's last test alarm of ``kind`` opened before ``until`` (and at or after ``since``, when
    given), for the evaluation report: button -> its ``opened_at``. A test alarm is one raised in test mode
    (``test = 1``) or resolved as a test before ``until`` (a resolution after the cut-off is not yet known,
    so a closed period's report stays the same). Read through the index on (kind, opened_at)."""
    cursor = conn.cursor()
    cursor.row_factory = None
    return dict(
        cursor.execute(
            "SELECT button, MAX(opened_at) FROM alarms WHERE kind = ? AND opened_at >= ? AND opened_at < ?"
            " AND (test = 1 OR (resolution = ? AND resolved_at < ?)) GROUP BY button",
            (kind, 0.0 if since is None else since, until, str(Resolution.TEST), until),
        ).fetchall()
    )
