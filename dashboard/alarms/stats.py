"""Response statistics: how fast alarms are acknowledged and resolved, and how many were false.

Computed from the stored alarms (dashboard clock): press → acknowledgement is
``acknowledged_at - opened_at``, acknowledgement → resolution is
``resolved_at - acknowledged_at``. The false-alarm rate is false alarms among
alarms resolved as real or false; alarms resolved as tests count apart and
stay out of the response times. Months and days are the regency's local time
(WITA, UTC+8: :data:`dashboard.defaults.LOCAL_TIME`). :func:`summarise` does no I/O.
"""

from __future__ import annotations

import functools
import logging
import math
import sqlite3
import statistics
import time
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, render_template, request

from firmware_bridge.payloads import Kind

from ..accounts import audit
from ..accounts.auth import Role, login_required, visible_kinds
from ..db import get_db, read_snapshot, transaction
from ..defaults import LOCAL_TIME
from . import store
from .lifecycle import Resolution

bp = Blueprint("stats", __name__)
log = logging.getLogger(__name__)

GROUPS = ("month", "site", "kind")


@dataclass(frozen=True, slots=True)
class AlarmTimes:
    kind: str
    site: str
    opened_at: float
    acknowledged_at: float | None
    resolved_at: float | None
    resolution: str | None

    @property
    def month(self) -> str:
        return _month_of_hour(int(self.opened_at // 3600))


@functools.lru_cache(maxsize=65536)
def _month_of_hour(hour: int) -> str:
    """The local month of an hour since the epoch: a year's alarms need a few thousand, not one per alarm.

    Whole hours suffice because the regency's offset is a whole number of hours (WITA, UTC+8).
    """
    return datetime.fromtimestamp(hour * 3600, LOCAL_TIME).strftime("%Y-%m")


def load(conn: sqlite3.Connection, kinds: Iterable[str], since: float | None, until: float | None) -> list[AlarmTimes]:
    """The alarms of ``kinds`` opened in [since, until), oldest first, each with its button's site now.

    What the figures are computed from; the pages take them from :func:`period_parts`, which
    reads a month's alarms only when its stored summary is not current.
    """
    sites = store.button_sites(conn)
    return [
        AlarmTimes(kind, sites.get(button, button), opened_at, acknowledged_at, resolved_at, resolution)
        for kind, button, opened_at, acknowledged_at, resolved_at, resolution in store.alarm_time_tuples(
            conn, kinds, since, until
        )
    ]


#: A tally's key: its local month, site and kind, in the order of :data:`GROUPS`.
Key = tuple[str, str, str]


@dataclass(slots=True)
class Tally:
    """The alarms of one month, site and kind: what every figure of the page is computed from.

    Counts, and the response times in seconds (``array('d')``, so that a month's summary is
    stored as bytes and read back as the very same floats: the figures stay exact).
    """

    alarms: int = 0
    open: int = 0
    real: int = 0
    false_alarm: int = 0
    test: int = 0
    to_ack: array[float] = field(default_factory=lambda: array("d"))
    to_resolve: array[float] = field(default_factory=lambda: array("d"))

    def add(
        self, opened_at: float, acknowledged_at: float | None, resolved_at: float | None, resolution: str | None
    ) -> None:
        self.alarms += 1
        if resolved_at is None:
            self.open += 1
        if resolution == Resolution.REAL:
            self.real += 1
        elif resolution == Resolution.FALSE_ALARM:
            self.false_alarm += 1
        elif resolution == Resolution.TEST:
            self.test += 1
            return  # a test: counted apart, out of the response times
        if acknowledged_at is not None:
            self.to_ack.append(acknowledged_at - opened_at)
            if resolved_at is not None and acknowledged_at:
                self.to_resolve.append(resolved_at - acknowledged_at)

    def merge(self, other: Tally) -> None:
        self.alarms += other.alarms
        self.open += other.open
        self.real += other.real
        self.false_alarm += other.false_alarm
        self.test += other.test
        self.to_ack.extend(other.to_ack)
        self.to_resolve.extend(other.to_resolve)

    def counts(self) -> tuple[int, int, int, int, int]:
        return self.alarms, self.open, self.real, self.false_alarm, self.test


def tally(alarms: Iterable[AlarmTimes]) -> dict[Key, Tally]:
    """The tallies of ``alarms`` by month, site and kind."""
    tallies: dict[Key, Tally] = {}
    for a in alarms:
        key = (a.month, a.site, a.kind)
        found = tallies.get(key)
        if found is None:
            found = tallies[key] = Tally()
        found.add(a.opened_at, a.acknowledged_at, a.resolved_at, a.resolution)
    return tallies


def tally_month(month: str, alarms: Iterable[tuple[Any, ...]], sites: dict[str, str]) -> dict[Key, Tally]:
    """The tallies of one month's alarms, read as the store's plain tuples (see :func:`store.alarm_time_tuples`).

    Each button's site is looked up once per alarm in ``sites`` (a button in no inventory is its own site).
    """
    tallies: dict[Key, Tally] = {}
    for kind, button, opened_at, acknowledged_at, resolved_at, resolution in alarms:
        key = (month, sites.get(button, button), kind)
        found = tallies.get(key)
        if found is None:
            found = tallies[key] = Tally()
        found.add(opened_at, acknowledged_at, resolved_at, resolution)
    return tallies


#: Part of a period's alarms: ``(month, site, kind, alarms, open, real, false_alarm, test, to_ack, to_resolve)``,
#: the times as sorted ``array('d')`` bytes. A site of None: every site of the kind that month (what the month
#: and kind tables merge, so that a year is two dozen parts for them, not one per site).
Part = tuple[Any, ...]


def parts(tallies: Mapping[Key, Tally]) -> list[Part]:
    """The parts of ``tallies``: one per month, site and kind, and one per month and kind."""
    found: list[Part] = []
    wholes: dict[tuple[str, str], Tally] = {}
    for (month, site, kind), part in tallies.items():
        found.append(_part(month, site, kind, part))
        whole = wholes.get((month, kind))
        if whole is None:
            whole = wholes[(month, kind)] = Tally()
        whole.merge(part)
    found.extend(_part(month, None, kind, whole) for (month, kind), whole in wholes.items())
    return found


def _part(month: str, site: str | None, kind: str, part: Tally) -> Part:
    """Sorted, so that merging months is merging sorted runs."""
    to_ack, to_resolve = array("d", sorted(part.to_ack)), array("d", sorted(part.to_resolve))
    return (month, site, kind, *part.counts(), to_ack.tobytes(), to_resolve.tobytes())


def _figures(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"median_s": None, "p90_s": None, "mean_s": None}
    ordered = sorted(values)
    count = len(ordered)
    p90 = ordered[min(count - 1, max(0, round(0.9 * count + 0.5) - 1))]
    # statistics.median's own arithmetic, without its sorting the sorted list again
    median = ordered[count // 2] if count % 2 else (ordered[count // 2 - 1] + ordered[count // 2]) / 2
    return {
        "median_s": round(median, 1),
        "p90_s": round(p90, 1),
        "mean_s": round(statistics.fmean(ordered), 1),
    }


def summarise(alarms: Iterable[AlarmTimes], group: str) -> list[dict[str, Any]]:
    """One row per month, site or kind, in order."""
    return rows(parts(tally(alarms)), group)


def rows(period: Iterable[Part], group: str) -> list[dict[str, Any]]:
    """One row per month, site or kind, in order: the parts of each merged (counts added, times joined)."""
    position = GROUPS.index(group)
    by_site = group == "site"
    merged: dict[str, list[Any]] = {}
    for part in period:
        if (part[1] is not None) is not by_site:
            continue  # the site table merges per-site parts; the month and kind tables, each month's whole kind
        key = part[position]
        entry = merged.get(key)
        if entry is None:
            merged[key] = [*part[3:8], [part[8]], [part[9]]]
        else:
            entry[0] += part[3]
            entry[1] += part[4]
            entry[2] += part[5]
            entry[3] += part[6]
            entry[4] += part[7]
            entry[5].append(part[8])
            entry[6].append(part[9])
    return [_row(group, key, merged[key]) for key in sorted(merged)]


def tables(period: list[Part]) -> dict[str, list[dict[str, Any]]]:
    """The page's three tables (the per-site parts walked once, by the site table only)."""
    by_site = [part for part in period if part[1] is not None]
    wholes = [part for part in period if part[1] is None]
    return {group: rows(by_site if group == "site" else wholes, group) for group in GROUPS}


def _row(group: str, key: str, entry: list[Any]) -> dict[str, Any]:
    alarms, still_open, real, false, test, to_ack, to_resolve = entry
    to_ack, to_resolve = _floats(b"".join(to_ack)), _floats(b"".join(to_resolve))
    return {
        group: key,
        "alarms": alarms,
        "open": still_open,
        "real": real,
        "false_alarm": false,
        "test": test,
        "false_alarm_rate": round(false / (real + false), 3) if real + false else None,
        "ack": {**_figures(to_ack), "count": len(to_ack)},
        "resolve": {**_figures(to_resolve), "count": len(to_resolve)},
    }


def _floats(data: bytes) -> array[float]:
    values = array("d")
    values.frombytes(data)
    return values


def total(period: Iterable[Part]) -> int:
    """How many alarms the parts hold."""
    return sum(part[3] for part in period if part[1] is None)


# -- a period's tallies: whole months from their stored summaries ---------------------------------

#: Every kind: a month's summary holds them all, and each reader takes only the kinds it may see.
ALL_KINDS = tuple(kind.value for kind in Kind)
_DAY_S = 86400


def _month_bounds(month: str) -> tuple[float, float]:
    """The month's first instant and the next month's (epoch seconds)."""
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=LOCAL_TIME)
    try:
        end = (start.replace(day=28) + timedelta(days=4)).replace(day=1).timestamp()
    except OverflowError:
        end = start.timestamp() + 31 * _DAY_S  # December 9999 (a fixed offset: its days are all alike)
    return start.timestamp(), end


def _months(first: str, last: str) -> list[tuple[str, float, float]]:
    """Each month from ``first`` to ``last`` (YYYY-MM, both included) with its bounds."""
    months = []
    month = first
    while month <= last:
        start, end = _month_bounds(month)
        months.append((month, start, end))
        if month == "9999-12":
            break
        month = _month_of_hour(int(end // 3600))
    return months


def _span(
    conn: sqlite3.Connection, kinds: Sequence[str], since: float | None, until: float | None
) -> tuple[str, str] | None:
    """The first and last months of the period that can hold an alarm of ``kinds`` (None: none can)."""
    opened = store.opened_span(conn, kinds)
    if opened is None:
        return None
    first_opened, last_opened = opened
    low = first_opened if since is None else max(since, first_opened)
    if until is not None and until <= low:
        return None
    if until is None or until > last_opened:
        last = _month_of_hour(int(last_opened // 3600))
    else:
        last = _month_of_hour(math.ceil(until / 3600) - 1)  # the month of the period's last instant
    return _month_of_hour(int(low // 3600)), last


def _day(at: float) -> int:
    """The UTC day the store's triggers count an alarm's changes under (``CAST(opened_at / 86400 AS INTEGER)``)."""
    return int(at / _DAY_S)


@dataclass(frozen=True, slots=True)
class _Computed:
    """A month summarised from its alarms, with the change counts it was read at (to be stored)."""

    month: str
    alarm_changes: int
    site_changes: int
    parts: list[Part]


def period_parts(
    conn: sqlite3.Connection, kinds: Iterable[str], since: float | None, until: float | None, *, by_site: bool = True
) -> list[Part]:
    """The parts of the alarms of ``kinds`` opened in [``since``, ``until``) (None: open-ended); without
    the per-site ones unless ``by_site`` (the month and kind tables need only each month's whole kinds).

    A whole month comes from its stored summary while the store's change counts for it (kept by
    triggers on every change of an alarm's figures and of a button's site, see schema.sql) are
    those the summary was computed at; otherwise, and for a month the period cuts, from its
    alarms. Months summarised anew are stored afterwards; all is read in one snapshot, so a
    summary is never stored with counts newer than the alarms it was computed from.
    """
    kinds = sorted(str(kind) for kind in kinds)
    if not kinds:
        return []
    with read_snapshot(conn):
        span = _span(conn, kinds, since, until)
        if span is None:
            return []
        found, computed = _read_months(conn, kinds, since, until, _months(*span), by_site)
    if computed:
        _store_months(conn, computed)
    return found


def _read_months(
    conn: sqlite3.Connection,
    kinds: list[str],
    since: float | None,
    until: float | None,
    months: list[tuple[str, float, float]],
    by_site: bool,
) -> tuple[list[Part], list[_Computed]]:
    """Inside one read snapshot: the months' parts of ``kinds``, and the months summarised anew."""
    whole = [m for m in months if (since is None or since <= m[1]) and (until is None or until >= m[2])]
    cut = [m for m in months if m not in whole]
    site_changes = store.stats_site_changes(conn)
    alarm_changes = _alarm_changes(conn, whole)
    stored = store.stats_months(conn, [month for month, _start, _end in whole])
    fresh = {month for month, _s, _e in whole if stored.get(month) == (alarm_changes[month], site_changes)}
    found = store.stats_groups(conn, sorted(fresh), kinds, by_site=by_site)
    sites: dict[str, str] | None = None
    computed = []
    for month, start, end in (m for m in whole if m[0] not in fresh):
        sites = store.button_sites(conn) if sites is None else sites
        every_kind = parts(tally_month(month, store.alarm_time_tuples(conn, ALL_KINDS, start, end), sites))
        computed.append(_Computed(month, alarm_changes[month], site_changes, every_kind))
        found.extend(part for part in every_kind if part[2] in kinds and (by_site or part[1] is None))
    for month, start, end in cut:
        sites = store.button_sites(conn) if sites is None else sites
        low = start if since is None else max(start, since)
        high = end if until is None else min(end, until)
        found.extend(parts(tally_month(month, store.alarm_time_tuples(conn, kinds, low, high), sites)))
    return found, computed


def _alarm_changes(conn: sqlite3.Connection, months: list[tuple[str, float, float]]) -> dict[str, int]:
    """Each month's count of alarm changes: the sum over the UTC days it touches, which only ever grows."""
    if not months:
        return {}
    counts = store.stats_alarm_changes(conn, _day(months[0][1]), _day(months[-1][2]))
    return {month: sum(counts.get(day, 0) for day in range(_day(start), _day(end) + 1)) for month, start, end in months}


def _store_months(conn: sqlite3.Connection, computed: list[_Computed]) -> None:
    """Keep the months summarised anew; a failure (the store busy for long) costs only a recomputation."""
    try:
        with transaction(conn):
            store.save_stats_months(conn, [(c.month, c.alarm_changes, c.site_changes, c.parts) for c in computed])
    except sqlite3.Error:
        log.warning("statistics: monthly summaries not stored", exc_info=True)


CSV_COLUMNS = (
    "alarms", "open", "real", "false_alarm", "test", "false_alarm_rate",
    "ack_count", "ack_median_s", "ack_p90_s", "ack_mean_s",
    "resolve_count", "resolve_median_s", "resolve_p90_s", "resolve_mean_s",
)  # fmt: skip


def flat(row: dict[str, Any], group: str) -> list[Any]:
    values = {
        **row,
        **{f"ack_{k}": v for k, v in row["ack"].items()},
        **{f"resolve_{k}": v for k, v in row["resolve"].items()},
    }
    return [row[group], *("" if values[c] is None else values[c] for c in CSV_COLUMNS)]


# -- pages -----------------------------------------------------------------------------------------


def _period() -> tuple[float | None, float | None, dict[str, str]]:
    """``from`` / ``to`` months (YYYY-MM, WITA), both included."""

    def month(name: str) -> datetime | None:
        try:
            return datetime.strptime(request.args.get(name, ""), "%Y-%m").replace(tzinfo=LOCAL_TIME)
        except ValueError:
            return None

    start, end = month("from"), month("to")
    if end is not None:
        try:
            end = (end.replace(day=28) + timedelta(days=4)).replace(day=1)  # the first of the next month
        except OverflowError:
            end = None  # up to December 9999: no end at all
    args = {k: request.args[k] for k in ("from", "to") if k in request.args}
    return (start.timestamp() if start else None), (end.timestamp() if end else None), args


def _kinds() -> list[str]:
    kinds = sorted(visible_kinds())
    wanted = request.args.get("kind")
    return [wanted] if wanted in kinds else kinds


def _log_sapa(kinds: list[str]) -> None:
    if Kind.SAPA in kinds:
        audit.sapa_read(get_db(), "stats", time.time())


_STATS_ROLES = (Role.FIRE_OPERATOR, Role.SAPA_DESK, Role.ADMIN)


@bp.get("/stats")
@login_required(*_STATS_ROLES)
def page() -> str:
    since, until, args = _period()
    kinds = _kinds()
    period = period_parts(get_db(), kinds, since, until)
    _log_sapa(kinds)
    shown = tables(period)
    return render_template(
        "stats.html", tables=shown, args=args, kinds=kinds, total=total(period), chart=chart(shown["month"])
    )


@bp.get("/stats.csv")
@login_required(*_STATS_ROLES)
def csv_export() -> Response:
    group = request.args.get("group", "month")
    if group not in GROUPS:
        group = "month"
    since, until, _args = _period()
    kinds = _kinds()
    table = rows(period_parts(get_db(), kinds, since, until, by_site=group == "site"), group)
    _log_sapa(kinds)
    return audit.csv_download([group, *CSV_COLUMNS], (flat(row, group) for row in table), f"siaga-stats-{group}.csv")


def chart(rows: list[dict[str, Any]], width: int = 720, height: int = 220) -> dict[str, Any]:
    """Bars of the monthly median time to acknowledge, as SVG geometry for the template (no script)."""
    values = [(row["month"], row["ack"]["median_s"], row["alarms"]) for row in rows]
    top = max([v for _m, v, _n in values if v is not None] + [1.0])
    step = width / max(len(values), 1)
    bars = []
    for index, (month, value, count) in enumerate(values):
        bar_height = 0 if value is None else (height - 40) * value / top
        bars.append(
            {
                "x": round(index * step + step * 0.15, 1),
                "y": round(height - 20 - bar_height, 1),
                "w": round(step * 0.7, 1),
                "h": round(bar_height, 1),
                "label": month,
                "value": value,
                "count": count,
            }
        )
    return {"width": width, "height": height, "bars": bars, "top": round(top, 1)}
