"""Commissioning in the store: sessions, each button's record, the fixed reports, and each button's last test.

A session puts its buttons in test mode (``devices/service.py``) for
``[commissioning] session_minutes``: every press is a test alarm, never a real
one, and if nobody finishes the session its test mode ends by itself, as any
test mode does. Finishing (or abandoning) it gives each button back the
service setting it had before, if that has not expired meanwhile.

A button's test press is *observed*, not pushed: the first press the store
received for it since it was armed (the session's start, or the technician
asking for the press again). Which alarm it raised, and whether that was a
test alarm, is asked of the alarm store (``alarms/store.py``, the one reader
of alarms). Writes are the caller's transaction unless a function says so.

Who may read: a session or report is shown to a role only if it may see every
button kind in it (:data:`accounts.auth.TROUBLE_KINDS`): the technician, who
maintains SAPA buttons too, sees all; an administrator only those of fire
buttons alone; to anyone else it does not exist (404).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from firmware_bridge.errors import SiagaError
from firmware_bridge.timeutil import format_epoch

from ..accounts import audit
from ..alarms import store as alarms
from ..db import rows_in, transaction
from ..devices import service
from .results import Answer, judge, verdict
from .settings import CommissioningSettings

#: Session states.
OPEN, FINISHED, ABANDONED = "open", "finished", "abandoned"
#: The longest text kept from a client (a node's firmware version, an indication's words).
MAX_TEXT = 64


class CommissioningError(SiagaError, ValueError):
    """A commissioning request that cannot be done as asked; ``code`` names why for the API."""

    def __init__(self, message: str, code: str = "bad_request", status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class SessionNotFound(CommissioningError):
    def __init__(self, message: str = "no such commissioning session") -> None:
        super().__init__(message, "not_found", 404)


def _iso(at: float | None) -> str | None:
    return None if at is None else format_epoch(at)


def _reason(session_id: int) -> str:
    """The test-mode reason that marks a button as this session's (so finishing never ends another's)."""
    return f"commissioning #{session_id}"


# -- starting -----------------------------------------------------------------------------------


def gateway_buttons(conn: sqlite3.Connection, gw: str) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT id, kind, transport, site_name, label FROM buttons WHERE gw = ? ORDER BY id", (gw,)
    ).fetchall()


def start_session(
    conn: sqlite3.Connection,
    gw: object,
    wanted: object,
    by: audit.Who,
    now: float,
    settings: CommissioningSettings,
    kinds: Collection[str],
) -> int:
    """Open a session on ``gw`` for its buttons (or the ``wanted`` ones), in the caller's transaction.

    An open session of the same gateway is abandoned first: the technician on site is the one testing.
    Only buttons of ``kinds`` (the role's) may be commissioned.
    """
    if not isinstance(gw, str) or not gw or len(gw) > 200:
        raise CommissioningError("gw: a gateway id is required")
    row = conn.execute("SELECT gw, version FROM gateways WHERE gw = ?", (gw,)).fetchone()
    if row is None:
        raise CommissioningError(f"no gateway {gw!r}", "not_found", 404)
    buttons = [b for b in gateway_buttons(conn, gw) if b["kind"] in kinds]
    if wanted is not None:
        if not isinstance(wanted, list) or not wanted or not all(isinstance(b, str) for b in wanted):
            raise CommissioningError("buttons: a list of button ids of this gateway")
        known = {b["id"] for b in buttons}
        unknown = [b for b in wanted if b not in known]
        if unknown:
            raise CommissioningError(f"not buttons of gateway {gw!r}: {', '.join(sorted(unknown)[:10])}")
        buttons = [b for b in buttons if b["id"] in set(wanted)]
    if not buttons:
        raise CommissioningError(f"gateway {gw!r} has no button to commission", "no_buttons", 409)
    earlier = conn.execute("SELECT id FROM commissioning_sessions WHERE gw = ? AND state = ?", (gw, OPEN)).fetchall()
    for row_open in earlier:
        _end(conn, row_open["id"], ABANDONED, by, now)
    expires = now + settings.session_minutes * 60
    session_id = int(
        conn.execute(
            "INSERT INTO commissioning_sessions (gw, started_by, started_at, expires_at, state, gateway_version) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (gw, by.actor, now, expires, OPEN, row["version"]),
        ).fetchone()[0]
    )
    for position, button in enumerate(buttons):
        before = service.current(conn, button["id"], now)
        service.set_mode(conn, button["id"], service.ServiceMode.TEST, _reason(session_id),
                         settings.session_minutes / 60, by, now)  # fmt: skip
        conn.execute(
            "INSERT INTO commissioning_buttons (session_id, button, position, kind, transport, site_name, label, "
            "previous_service, armed_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (session_id, button["id"], position, button["kind"], button["transport"], button["site_name"],
             button["label"], json.dumps(_service_record(before)) if before else None, now, now),
        )  # fmt: skip
    audit.record(
        conn, by, "commissioning.started", subject=f"commissioning:{session_id}", kind=_audit_kind(buttons),
        after={"gw": gw, "buttons": [b["id"] for b in buttons], "until": format_epoch(expires)}, at=now,
    )  # fmt: skip
    return session_id


def _service_record(setting: service.Service) -> dict[str, Any]:
    return {"mode": str(setting.mode), "reason": setting.reason, "until": setting.until}


def _audit_kind(buttons: Iterable[Any]) -> str:
    """An audit row about SAPA buttons is the SAPA desk's kind: an administrator reads it without content."""
    return "sapa" if any(b["kind"] == "sapa" for b in buttons) else "fire"


# -- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    id: int
    gw: str
    started_by: str
    started_at: float
    expires_at: float
    state: str
    finished_by: str | None
    finished_at: float | None
    verdict: str | None
    gateway_version: str | None
    kinds: frozenset[str]

    def is_open(self, now: float) -> bool:
        return self.state == OPEN and now < self.expires_at

    def shown_state(self, now: float) -> str:
        return "expired" if self.state == OPEN and now >= self.expires_at else self.state


def get_session(conn: sqlite3.Connection, session_id: int, kinds: Collection[str]) -> Session:
    """The session, if the role may see all of it; else :class:`SessionNotFound` (so existence never leaks)."""
    row = conn.execute("SELECT * FROM commissioning_sessions WHERE id = ?", (session_id,)).fetchone()
    if row is None:
        raise SessionNotFound()
    held = {
        r["kind"] for r in conn.execute("SELECT kind FROM commissioning_buttons WHERE session_id = ?", (row["id"],))
    }
    if not held <= set(kinds):
        raise SessionNotFound()
    return Session(
        row["id"], row["gw"], row["started_by"], row["started_at"], row["expires_at"], row["state"],
        row["finished_by"], row["finished_at"], row["verdict"], row["gateway_version"], frozenset(held),
    )  # fmt: skip


def _buttons(conn: sqlite3.Connection, session_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT * FROM commissioning_buttons WHERE session_id = ? ORDER BY position", (session_id,)
    ).fetchall()
    records = []
    for row in rows:
        record = dict(zip(row.keys(), row, strict=True))
        record["indication"] = json.loads(record["indication"]) if record["indication"] else None
        record["test_alarm"] = None if record["test_alarm"] is None else bool(record["test_alarm"])
        records.append(record)
    return records


def observe(conn: sqlite3.Connection, session: Session, now: float) -> bool:
    """Record each waiting button's first press since it was armed and before the session expired (its own
    transaction, only if one is new).

    Only presses made during the session count: after it, the buttons are back in service and their presses
    are calls for help, not tests. A SAPA button's press that raised a real alarm is never recorded (its time
    and alarm are the SAPA desk's alone, and a report is read by technicians): the button waits on, as if
    nobody had pressed.
    """
    if session.state != OPEN:
        return False
    waiting = conn.execute(
        "SELECT button, kind, armed_at FROM commissioning_buttons WHERE session_id = ? AND event_id IS NULL "
        "AND gave_up_at IS NULL",
        (session.id,),
    ).fetchall()
    presses = []
    for row in waiting:
        event = conn.execute(
            "SELECT id, received_at, alarm_id, payload FROM events WHERE button = ? AND type = 'press' "
            "AND received_at >= ? AND received_at < ? ORDER BY received_at, id LIMIT 1",
            (row["button"], row["armed_at"], session.expires_at),
        ).fetchone()
        if event is not None:
            presses.append((row["button"], row["kind"], event))
    if not presses:
        return False
    alarm_ids = {e["alarm_id"] for _, _, e in presses if e["alarm_id"]}
    tests = {a["id"]: a["test"] for a in alarms.get_alarms(conn, alarm_ids)}
    found = [(b, e) for b, kind, e in presses if kind != "sapa" or tests.get(e["alarm_id"])]
    if not found:
        return False
    with transaction(conn):
        for button, event in found:
            radio = _radio(event["payload"])
            conn.execute(
                "UPDATE commissioning_buttons SET event_id = ?, pressed_at = ?, alarm_id = ?, test_alarm = ?, "
                "rssi = ?, snr = ?, updated_at = ? WHERE session_id = ? AND button = ? AND event_id IS NULL",
                (event["id"], event["received_at"], event["alarm_id"], int(bool(tests.get(event["alarm_id"]))),
                 radio.get("rssi"), radio.get("snr"), now, session.id, button),
            )  # fmt: skip
    return True


def _radio(payload: str) -> dict[str, float]:
    """RSSI and SNR of a LoRa press as its gateway stamped them (numbers only; anything odd is unknown)."""
    try:
        radio = json.loads(payload).get("radio") or {}
    except (ValueError, AttributeError):
        return {}
    return {
        key: float(value)
        for key in ("rssi", "snr")
        if isinstance(value := radio.get(key), (int, float)) and not isinstance(value, bool) and -500 < value < 500
    }


def session_view(
    conn: sqlite3.Connection, session: Session, settings: CommissioningSettings, now: float
) -> dict[str, Any]:
    """The session and each button's record with its checks (as the CLI and the session page poll it)."""
    buttons = []
    for record in _buttons(conn, session.id):
        judged = judge(record, settings, final=session.state != OPEN)
        buttons.append(_button_view(record, judged))
    return {
        "id": session.id,
        "gw": session.gw,
        "state": session.shown_state(now),
        "started_by": session.started_by,
        "started_at": _iso(session.started_at),
        "expires_at": _iso(session.expires_at),
        "finished_by": session.finished_by,
        "finished_at": _iso(session.finished_at),
        "verdict": session.verdict,
        "gateway_version": session.gateway_version,
        "buttons": buttons,
        "margins": {"min_rssi_dbm": settings.min_rssi_dbm, "min_snr_db": settings.min_snr_db},
    }


def _button_view(record: dict[str, Any], judged: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["button"],
        "kind": record["kind"],
        "transport": record["transport"],
        "site": record["site_name"],
        "label": record["label"],
        "event_id": record["event_id"],
        "pressed_at": _iso(record["pressed_at"]),
        "alarm_id": record["alarm_id"],
        "test_alarm": record["test_alarm"],
        "rssi": record["rssi"],
        "snr": record["snr"],
        "indication": record["indication"],
        "node_firmware": record["node_firmware"],
        "armed_at": _iso(record["armed_at"]),
        "gave_up_at": _iso(record["gave_up_at"]),
        **judged,
    }


# -- the technician's answers -------------------------------------------------------------------


def arm(conn: sqlite3.Connection, session: Session, button: str, by: audit.Who, now: float) -> None:
    """Ask for the button's press (again): what was recorded of it is cleared, earlier presses no longer count."""
    _require_open(session, now)
    cursor = conn.execute(
        "UPDATE commissioning_buttons SET armed_at = ?, event_id = NULL, pressed_at = NULL, alarm_id = NULL, "
        "test_alarm = NULL, rssi = NULL, snr = NULL, indication = NULL, led_seen = NULL, buzzer_heard = NULL, "
        "gave_up_at = NULL, updated_at = ? WHERE session_id = ? AND button = ?",
        (now, now, session.id, button),
    )
    if cursor.rowcount != 1:
        raise CommissioningError(f"button {button!r} is not in this session", "not_found", 404)


_ANSWERS = {"led_seen": {a.value for a in (Answer.YES, Answer.NO, Answer.NOT_ASKED)},
            "buzzer_heard": {a.value for a in Answer}}  # fmt: skip


def record_answers(conn: sqlite3.Connection, session: Session, button: str, body: object, now: float) -> None:
    """What the CLI or the page reports of one button: the gateway's indication, what was seen and heard,
    the node's firmware, or that the technician gave up waiting for the press."""
    _require_open(session, now)
    if not isinstance(body, dict):
        raise CommissioningError("a JSON object is required")
    unknown = set(body) - {"indication", "led_seen", "buzzer_heard", "node_firmware", "gave_up"}
    if unknown:
        raise CommissioningError(f"unknown fields: {', '.join(sorted(unknown)[:10])}")
    changes: dict[str, Any] = {}
    for name, allowed in _ANSWERS.items():
        if name in body:
            if body[name] not in allowed:
                raise CommissioningError(f"{name}: one of {', '.join(sorted(allowed))}")
            changes[name] = body[name]
    if "indication" in body:
        changes["indication"] = json.dumps(_indication(body["indication"]), separators=(",", ":"))
    if "node_firmware" in body:
        firmware = body["node_firmware"]
        if firmware is not None and (not isinstance(firmware, str) or not 0 < len(firmware) <= MAX_TEXT):
            raise CommissioningError(f"node_firmware: a text of at most {MAX_TEXT} characters, or null")
        changes["node_firmware"] = firmware
    if "gave_up" in body:
        if body["gave_up"] is not True:
            raise CommissioningError("gave_up: true (to record that no press came)")
        changes["gave_up_at"] = now
    if not changes:
        raise CommissioningError("nothing to record")
    assignments = ", ".join(f"{column} = ?" for column in changes)  # names from the fixed lists above
    cursor = conn.execute(
        f"UPDATE commissioning_buttons SET {assignments}, updated_at = ? WHERE session_id = ? AND button = ?",  # noqa: S608
        [*changes.values(), now, session.id, button],
    )
    if cursor.rowcount != 1:
        raise CommissioningError(f"button {button!r} is not in this session", "not_found", 404)


def _indication(value: object) -> dict[str, Any]:
    """The gateway's view of the button, as its status socket gave it (a few bounded fields)."""
    if not isinstance(value, dict):
        raise CommissioningError("indication: an object with state, alarm and led")
    state, alarm, led = value.get("state"), value.get("alarm"), value.get("led")
    if state is not None and (not isinstance(state, str) or len(state) > MAX_TEXT):
        raise CommissioningError("indication.state: a short text or null")
    if alarm is not None and (not isinstance(alarm, int) or isinstance(alarm, bool) or not 0 <= alarm < 2**63):
        raise CommissioningError("indication.alarm: an alarm id or null")
    if not isinstance(led, str) or len(led) > MAX_TEXT:
        raise CommissioningError("indication.led: the LED's pattern")
    at = value.get("indicated_at")
    if at is not None and (not isinstance(at, str) or len(at) > MAX_TEXT):
        raise CommissioningError("indication.indicated_at: a timestamp or null")
    return {"state": state, "alarm": alarm, "led": led, "indicated_at": at}


def _require_open(session: Session, now: float) -> None:
    if session.state != OPEN:
        raise CommissioningError(f"session {session.id} is {session.state}", "session_closed", 409)
    if now >= session.expires_at:
        raise CommissioningError(f"session {session.id} expired: its buttons left test mode", "session_expired", 409)


# -- finishing ----------------------------------------------------------------------------------


def results_of(
    conn: sqlite3.Connection, session: Session, settings: CommissioningSettings, now: float, finished_by: str
) -> dict[str, Any]:
    """What the report will say: every button judged as final, the versions and the verdict."""
    view = session_view(conn, session, settings, now)
    view["buttons"] = [_button_view(r, judge(r, settings, final=True)) for r in _buttons(conn, session.id)]
    view["state"] = FINISHED
    view["finished_by"] = finished_by
    view["finished_at"] = _iso(now)
    view["verdict"] = verdict([b["result"] for b in view["buttons"]])
    view["sites"] = sorted({b["site"] for b in view["buttons"] if b["site"]})
    return view


def marker(conn: sqlite3.Connection, session_id: int) -> tuple[Any, ...]:
    """What changes whenever a button's record changes: a report is stored only for what it was made from."""
    row = conn.execute(
        "SELECT COUNT(*), MAX(updated_at) FROM commissioning_buttons WHERE session_id = ?", (session_id,)
    ).fetchone()
    return tuple(row)


def store_report(
    conn: sqlite3.Connection, session: Session, results: dict[str, Any], pdf: bytes, by: audit.Who, now: float,
    made_from: tuple[Any, ...],
) -> bool:  # fmt: skip
    """Finish the session with its report, in one transaction of its own; False if the session changed since
    ``results`` were read (the caller reads and renders again)."""
    with transaction(conn):
        state = conn.execute("SELECT state FROM commissioning_sessions WHERE id = ?", (session.id,)).fetchone()
        if state is None or state["state"] != OPEN or marker(conn, session.id) != made_from:
            if state is not None and state["state"] != OPEN:
                raise CommissioningError(f"session {session.id} is {state['state']}", "session_closed", 409)
            return False
        kinds = ",".join(sorted(session.kinds))
        conn.execute(
            "INSERT INTO commissioning_reports (session_id, gw, kinds, created_at, verdict, results, pdf) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (session.id, session.gw, kinds, now, results["verdict"], json.dumps(results, separators=(",", ":")), pdf),
        )
        for button in results["buttons"]:
            if button["result"] == "passed":
                conn.execute(
                    "INSERT INTO button_tests (button, commissioned_at, session_id, tested_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(button) DO UPDATE SET commissioned_at = excluded.commissioned_at, "
                    "session_id = excluded.session_id, tested_at = excluded.tested_at",
                    (button["id"], now, session.id, now),
                )
        _end(conn, session.id, FINISHED, by, now, results["verdict"])
    return True


def abandon(conn: sqlite3.Connection, session: Session, by: audit.Who, now: float) -> None:
    """End a session without a report (in the caller's transaction); its buttons leave test mode."""
    if session.state != OPEN:
        raise CommissioningError(f"session {session.id} is {session.state}", "session_closed", 409)
    _end(conn, session.id, ABANDONED, by, now)


def _end(
    conn: sqlite3.Connection, session_id: int, state: str, by: audit.Who, now: float, result: str | None = None
) -> None:
    """Close the session and give its buttons back the service setting they had (unless someone changed it)."""
    conn.execute(
        "UPDATE commissioning_sessions SET state = ?, finished_by = ?, finished_at = ?, verdict = ? WHERE id = ?",
        (state, by.actor, now, result, session_id),
    )
    rows = conn.execute(
        "SELECT button, kind, previous_service FROM commissioning_buttons WHERE session_id = ?", (session_id,)
    ).fetchall()
    for row in rows:
        _give_back(conn, session_id, row["button"], row["previous_service"], by, now)
    audit.record(
        conn, by, f"commissioning.{state}", subject=f"commissioning:{session_id}", kind=_audit_kind(rows),
        after={"verdict": result} if result else None, at=now,
    )  # fmt: skip


def _give_back(
    conn: sqlite3.Connection, session_id: int, button: str, previous: str | None, by: audit.Who, now: float
) -> None:
    current = service.current(conn, button, now)
    if current is None or current.mode is not service.ServiceMode.TEST or current.reason != _reason(session_id):
        return  # its test mode expired, or somebody set it otherwise since: theirs stands
    before = json.loads(previous) if previous else None
    if before is not None and before["until"] > now:
        hours = min((before["until"] - now) / 3600, service.MAX_DAYS * 24)
        service.set_mode(conn, button, before["mode"], before["reason"], hours, by, now)
    else:
        service.set_mode(conn, button, service.ServiceMode.IN_SERVICE, None, None, by, now)


# -- reports ------------------------------------------------------------------------------------


def _visible(kinds_text: str, kinds: Collection[str]) -> bool:
    return set(filter(None, kinds_text.split(","))) <= set(kinds)


def get_report(conn: sqlite3.Connection, session_id: int, kinds: Collection[str]) -> dict[str, Any]:
    """The stored results of a finished session (as they were when it finished)."""
    row = conn.execute(
        "SELECT session_id, kinds, results FROM commissioning_reports WHERE session_id = ?", (session_id,)
    ).fetchone()
    if row is None or not _visible(row["kinds"], kinds):
        raise SessionNotFound("no such commissioning report")
    return json.loads(row["results"])


def get_report_pdf(conn: sqlite3.Connection, session_id: int, kinds: Collection[str]) -> tuple[bytes, str]:
    row = conn.execute(
        "SELECT gw, kinds, pdf FROM commissioning_reports WHERE session_id = ?", (session_id,)
    ).fetchone()
    if row is None or not _visible(row["kinds"], kinds):
        raise SessionNotFound("no such commissioning report")
    return bytes(row["pdf"]), row["gw"]


def list_reports(conn: sqlite3.Connection, kinds: Collection[str], gw: str | None = None, limit: int = 200) -> list[
    dict[str, Any]
]:  # fmt: skip
    """Reports newest first (of ``gw`` if given), those the role may see."""
    query = (
        "SELECT r.session_id, r.gw, r.kinds, r.created_at, r.verdict, s.started_by, s.started_at "
        "FROM commissioning_reports r JOIN commissioning_sessions s ON s.id = r.session_id"
    )
    params: list[Any] = []
    if gw is not None:
        query += " WHERE r.gw = ?"
        params.append(gw)
    rows = conn.execute(query + " ORDER BY r.created_at DESC, r.session_id DESC LIMIT ?", [*params, limit * 4])
    return [
        {"id": row["session_id"], "gw": row["gw"], "created_at": _iso(row["created_at"]), "verdict": row["verdict"],
         "started_by": row["started_by"], "started_at": _iso(row["started_at"])}
        for row in rows if _visible(row["kinds"], kinds)
    ][:limit]  # fmt: skip


def open_sessions(conn: sqlite3.Connection, kinds: Collection[str], now: float) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT s.id, s.gw, s.started_by, s.started_at, s.expires_at, "
        "(SELECT MIN(kind) || ',' || MAX(kind) FROM commissioning_buttons b WHERE b.session_id = s.id) AS kinds "
        "FROM commissioning_sessions s WHERE s.state = ? AND s.expires_at > ? ORDER BY s.started_at DESC",
        (OPEN, now),
    ).fetchall()
    return [
        {"id": row["id"], "gw": row["gw"], "started_by": row["started_by"], "started_at": _iso(row["started_at"]),
         "expires_at": _iso(row["expires_at"])}
        for row in rows if _visible(row["kinds"] or "", kinds)
    ]  # fmt: skip


def latest_reports(
    conn: sqlite3.Connection, gateways: Iterable[str], buttons: Iterable[str], kinds: Collection[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """For the device view: each gateway's and each button's latest report the role may see (id, verdict,
    when, and for a button its own result)."""
    by_gw: dict[str, dict[str, Any]] = {}
    rows = rows_in(
        conn,
        "SELECT session_id, gw, kinds, created_at, verdict FROM commissioning_reports WHERE gw IN ({}) "
        "ORDER BY created_at, session_id",
        gateways,
    )
    for row in rows:
        if _visible(row["kinds"], kinds):
            by_gw[row["gw"]] = {"id": row["session_id"], "verdict": row["verdict"], "at": _iso(row["created_at"])}
    by_button: dict[str, dict[str, Any]] = {}
    rows = rows_in(
        conn,
        "SELECT b.button, r.session_id, r.kinds, r.created_at, r.results FROM commissioning_buttons b "
        "JOIN commissioning_reports r ON r.session_id = b.session_id WHERE b.button IN ({}) "
        "ORDER BY r.created_at, r.session_id",
        buttons,
    )
    for row in rows:
        if _visible(row["kinds"], kinds):
            mine = [b for b in json.loads(row["results"])["buttons"] if b["id"] == row["button"]]
            result = mine[0]["result"] if mine else None
            by_button[row["button"]] = {"id": row["session_id"], "verdict": result, "at": _iso(row["created_at"])}
    return by_gw, by_button


# -- periodic tests (supervision) ---------------------------------------------------------------


#: button -> (last commissioning passed, last test), dashboard clock
LastTests = dict[str, tuple[float, float]]


def last_tests(
    conn: sqlite3.Connection, buttons: dict[str, tuple[str, str, str]], now: float, period_s: float
) -> LastTests:
    """Each button's last commissioning and last test. A fire button overdue by its record is looked up
    once more: a test press since (a press of it in test mode: a test alarm) moves its last test on.

    SAPA buttons' presses are never looked at here: that a SAPA button was pressed, even in test mode, is
    the SAPA desk's to know, and the trouble is shown to technicians; a SAPA button is tested by commissioning.
    """
    tests: LastTests = {
        row["button"]: (row["commissioned_at"], row["tested_at"])
        for row in conn.execute("SELECT button, commissioned_at, tested_at FROM button_tests")
    }
    overdue = [b for b, (commissioned, tested) in tests.items()
               if now - tested > period_s and buttons.get(b, ("", "", ""))[1] == "fire"]  # fmt: skip
    if overdue:
        tests.update(_later_test_presses(conn, overdue, tests))
    return tests


def _later_test_presses(conn: sqlite3.Connection, overdue: list[str], tests: LastTests) -> LastTests:
    since = min(tests[b][1] for b in overdue)
    presses = rows_in(
        conn,
        "SELECT button, received_at, alarm_id FROM events WHERE received_at > ? AND type = 'press' "
        "AND alarm_id IS NOT NULL AND button IN ({})",
        overdue,
        since,
    )
    presses = [p for p in presses if p["received_at"] > tests[p["button"]][1]]
    if not presses:
        return {}
    test_alarms = {a["id"] for a in alarms.get_alarms(conn, {p["alarm_id"] for p in presses}) if a["test"]}
    moved: LastTests = {}
    for press in presses:
        if press["alarm_id"] in test_alarms:
            commissioned, tested = moved.get(press["button"], tests[press["button"]])
            moved[press["button"]] = (commissioned, max(tested, press["received_at"]))
    if moved:
        with transaction(conn):
            for button, (_, tested) in moved.items():
                conn.execute("UPDATE button_tests SET tested_at = ? WHERE button = ? AND tested_at < ?",
                             (tested, button, tested))  # fmt: skip
    return moved


#: Renders a report's PDF from its results (``report.render_pdf``), passed in so the store stays testable alone.
RenderPdf = Callable[[dict[str, Any]], bytes]
