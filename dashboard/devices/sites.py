"""Sites and their buttons with each one's state, for the board's map and site list.

A button's state is what an operator must see first: its open alarm (by
alarm state), else that it is set aside (out of service, test mode), else
that it has a trouble, else ``ok``. Only the buttons of the kinds a role may
see are listed, and only alarms the role may see are attached: a technician
sees every button but no alarm, so a SAPA button shows its device state only.

Costs: the buttons and their places change only with inventories, so they
are read once per inventory change (:class:`_Places`, one per store and set
of kinds); each request reads only what is not ``ok`` (open alarms, buttons
set aside, open troubles: few) and lays it over them. :func:`summary` is
what a board fetches after every change: per site its state, counts and its
buttons that are not ``ok``; :func:`site` one site's every button, when opened.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..alarms import store
from ..alarms.lifecycle import AlarmState
from ..db import database_file
from . import registry, service
from .service import ServiceMode
from .supervision import Audience, troubled_buttons

TROUBLE = "trouble"  # a button with an open trouble
OK = "ok"

#: Most urgent first: a site takes the state of its most urgent button.
URGENCY: tuple[str, ...] = (
    AlarmState.UNACKNOWLEDGED,
    AlarmState.ACKNOWLEDGED,
    AlarmState.DISPATCHED,
    TROUBLE,
    ServiceMode.OUT_OF_SERVICE,
    ServiceMode.TEST,
    OK,
)
_RANK = {str(state): rank for rank, state in enumerate(URGENCY)}


@dataclass(frozen=True)
class _Places:
    """The buttons of some kinds grouped by site, in site then id order, as read at ``mark``."""

    mark: tuple[Any, ...]
    read_at: float
    sites: dict[str, dict[str, Any]]  # name -> {name, lat, lon, buttons: [button without state]}
    site_of: dict[str, str]  # button -> its site
    button_of: dict[str, dict[str, Any]]  # button -> itself, as in its site's list


_places: dict[tuple[str, tuple[str, ...]], _Places] = {}
#: The last summary per store and audience, with what it was made of; the same list while those hold.
_summaries: dict[tuple[Any, ...], tuple[_Places, dict[str, tuple[str, int | None]], list[dict[str, Any]]]] = {}
_places_lock = threading.Lock()


def _read_places(conn: sqlite3.Connection, kinds: tuple[str, ...], mark: tuple[Any, ...]) -> _Places:
    marks = ",".join("?" * len(kinds))
    cursor = conn.cursor()
    cursor.row_factory = None
    grouped: dict[str, dict[str, Any]] = {}
    site_of: dict[str, str] = {}
    button_of: dict[str, dict[str, Any]] = {}
    rows = cursor.execute(
        f"SELECT id, kind, label, transport, gw, lat, lon, site_name FROM buttons WHERE kind IN ({marks}) "  # noqa: S608
        "ORDER BY site_name, id",
        kinds,
    )
    for button, kind, label, transport, gw, lat, lon, name in rows:
        site = grouped.setdefault(name, {"name": name, "buttons": []})
        button_of[button] = {
            "id": button, "kind": kind, "label": label, "transport": transport, "gw": gw, "lat": lat, "lon": lon
        }  # fmt: skip
        site["buttons"].append(button_of[button])
        site_of[button] = name
    for site in grouped.values():
        buttons = site["buttons"]
        site["lat"] = round(sum(b["lat"] for b in buttons) / len(buttons), 6)
        site["lon"] = round(sum(b["lon"] for b in buttons) / len(buttons), 6)
    return _Places(mark, time.monotonic(), grouped, site_of, button_of)


def _places_of(conn: sqlite3.Connection, kinds: frozenset[str]) -> _Places:
    key = (database_file(conn), tuple(sorted(kinds)))
    mark = registry.inventory_mark(conn, registrations=False)  # a place, label or kind moves it
    with _places_lock:
        known = _places.get(key)
    if known is not None and known.mark == mark and time.monotonic() - known.read_at < registry.INVENTORY_REFRESH_S:
        return known
    places = _read_places(conn, key[1], mark)
    with _places_lock:
        _places[key] = places
    return places


def _open_alarms(conn: sqlite3.Connection, alarm_kinds: frozenset[str]) -> dict[str, sqlite3.Row]:
    """Button -> its most urgent open alarm among the kinds the role may see (a real one before a test)."""
    return {
        button: min(alarms, key=lambda alarm: (alarm["test"], URGENCY.index(alarm["state"])))
        for button, alarms in store.open_alarms_by_button(conn, alarm_kinds).items()
    }


def _not_ok(
    conn: sqlite3.Connection, audience: Audience, alarm_kinds: frozenset[str], now: float
) -> dict[str, tuple[str, int | None]]:
    """Button -> (state, alarm id) of every button whose state is not ``ok`` (few), for ``audience``."""
    open_alarms = _open_alarms(conn, alarm_kinds)
    troubled = troubled_buttons(conn, audience)
    set_aside = service.active(conn, now)
    states: dict[str, tuple[str, int | None]] = {}
    for button in open_alarms.keys() | troubled | set_aside.keys():
        alarm = open_alarms.get(button)
        if alarm is not None and not alarm["test"]:
            state = alarm["state"]
        elif button in set_aside:
            state = str(set_aside[button].mode)
        elif button in troubled:
            state = TROUBLE
        else:
            state = OK  # only a test alarm: the button is fine, its alarm still attached
        states[button] = (str(state), alarm["id"] if alarm is not None else None)
    return states


def _with_state(button: dict[str, Any], states: dict[str, tuple[str, int | None]]) -> dict[str, Any]:
    state, alarm = states.get(button["id"], (OK, None))
    return {**button, "state": state, "alarm": alarm}


def _ordered(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(result, key=lambda s: (_RANK[s["state"]], s["name"]))


def _lookup(
    conn: sqlite3.Connection, audience: Audience, alarm_kinds: frozenset[str], now: float
) -> tuple[_Places, dict[str, tuple[str, int | None]]] | None:
    if not audience.kinds:
        return None
    places = _places_of(conn, audience.kinds)
    states = {b: s for b, s in _not_ok(conn, audience, alarm_kinds, now).items() if b in places.site_of}
    return places, states


def sites(
    conn: sqlite3.Connection, audience: Audience, alarm_kinds: frozenset[str], now: float
) -> list[dict[str, Any]]:
    """Sites with every button of ``audience.kinds``; alarms attached only of ``alarm_kinds``."""
    found = _lookup(conn, audience, alarm_kinds, now)
    if found is None:
        return []
    places, states = found
    result = []
    for place in places.sites.values():
        buttons = [_with_state(b, states) for b in place["buttons"]]
        state = min((b["state"] for b in buttons), key=_RANK.__getitem__)
        result.append({**place, "buttons": buttons, "state": state})
    return _ordered(result)


def summary(
    conn: sqlite3.Connection, audience: Audience, alarm_kinds: frozenset[str], now: float
) -> list[dict[str, Any]]:
    """Every site with its state, its number of buttons, how many are in each state but ``ok``, and only
    those buttons (each with its alarm, if the role may see it): what the map and site list show at once.
    Its cost grows with the sites and the buttons that are not ``ok``, not with every button; while
    nothing changed, it is the very list returned before (never change it)."""
    found = _lookup(conn, audience, alarm_kinds, now)
    if found is None:
        return []
    places, states = found
    key = (
        database_file(conn),
        tuple(sorted(audience.kinds)),
        tuple(sorted(audience.press_kinds)),
        *sorted(alarm_kinds),
    )
    with _places_lock:
        known = _summaries.get(key)
    if known is not None and known[0] is places and known[1] == states:
        return known[2]  # boards fetch after every change, all at once: the first one's answer serves them all
    result = _summary(places, states)
    with _places_lock:
        _summaries[key] = (places, states, result)
    return result


def _summary(places: _Places, states: dict[str, tuple[str, int | None]]) -> list[dict[str, Any]]:
    flagged: dict[str, list[dict[str, Any]]] = {}
    for button in sorted(states):
        flagged.setdefault(places.site_of[button], []).append(_with_state(places.button_of[button], states))
    result = []
    for name, place in places.sites.items():
        count = len(place["buttons"])
        shown = flagged.get(name, [])
        counts: dict[str, int] = {}
        for button in shown:
            if button["state"] != OK:
                counts[button["state"]] = counts.get(button["state"], 0) + 1
        state = min(counts, key=_RANK.__getitem__) if counts else OK  # anything else is more urgent than ok
        result.append(
            {"name": name, "lat": place["lat"], "lon": place["lon"], "state": state, "count": count,
             "states": counts, "buttons": shown, "complete": len(shown) == count}
        )  # fmt: skip
    return _ordered(result)


def site(
    conn: sqlite3.Connection, audience: Audience, alarm_kinds: frozenset[str], now: float, name: str
) -> dict[str, Any] | None:
    """One site with every button of ``audience.kinds`` and its state, or None if it has none of them."""
    found = _lookup(conn, audience, alarm_kinds, now)
    if found is None or name not in found[0].sites:
        return None
    places, states = found
    buttons = [_with_state(b, states) for b in places.sites[name]["buttons"]]
    state = min((b["state"] for b in buttons), key=_RANK.__getitem__)
    return {**places.sites[name], "buttons": buttons, "state": state}
