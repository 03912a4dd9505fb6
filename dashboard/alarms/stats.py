"""Response statistics: how fast alarms are acknowledged and resolved, and how many were false.

Computed from the stored alarms (dashboard clock): press → acknowledgement is
``acknowledged_at - opened_at``, acknowledgement → resolution is
``resolved_at - acknowledged_at``. The false-alarm rate is false alarms among
alarms resolved as real or false; alarms resolved as tests count apart and
stay out of the response times. Months and days are the regency's local time
(WITA, UTC+8: :data:`dashboard.defaults.LOCAL_TIME`). :func:`summarise` does no I/O.
"""

from __future__ import annotations

import bisect
import functools
import gc
import itertools
import json
import logging
import math
import operator
import sqlite3
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, render_template, request

from firmware_bridge.payloads import Kind

from ..accounts import audit
from ..accounts.auth import Role, login_required, visible_kinds
from ..db import Error as StoreError
from ..db import database_file, dialect, get_db, read_snapshot, savepoint, transaction
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


@dataclass(slots=True)
class MonthKind:
    """The alarms of one month and kind: the whole kind's tally, then each site's, packed so that a year
    is two dozen of them however many sites there are (the stored row of schema.sql's ``stats_kinds``).

    Times are ``array('d')`` bytes, sorted; each site's run follows the previous one in ``site_to_ack``
    and ends at its ``site_to_ack_ends`` (bytes). Without ``sites`` (None) it holds the whole kind only.
    """

    month: str
    kind: str
    counts: tuple[int, int, int, int, int]  # alarms, open, real, false_alarm, test
    to_ack: bytes
    to_resolve: bytes
    sites: list[str] | None = None
    site_counts: array[int] = field(default_factory=lambda: array("q"))
    site_to_ack: bytes = b""
    site_to_ack_ends: array[int] = field(default_factory=lambda: array("q"))
    site_to_resolve: bytes = b""
    site_to_resolve_ends: array[int] = field(default_factory=lambda: array("q"))

    def row(self) -> tuple[Any, ...]:
        """As stored (:data:`store.STATS_KIND_COLUMNS`)."""
        return (
            self.month, self.kind, *self.counts, self.to_ack, self.to_resolve, json.dumps(self.sites),
            self.site_counts.tobytes(), self.site_to_ack, self.site_to_ack_ends.tobytes(),
            self.site_to_resolve, self.site_to_resolve_ends.tobytes(),
        )  # fmt: skip

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> MonthKind:
        month, kind, alarms, still_open, real, false, test, to_ack, to_resolve, sites = row[:10]
        whole = cls(month, kind, (alarms, still_open, real, false, test), to_ack, to_resolve)
        if sites is not None:
            whole.sites = json.loads(sites)
            whole.site_counts = _ints(row[10])
            whole.site_to_ack, whole.site_to_ack_ends = row[11], _ints(row[12])
            whole.site_to_resolve, whole.site_to_resolve_ends = row[13], _ints(row[14])
        return whole

    def without_sites(self) -> MonthKind:
        return MonthKind(self.month, self.kind, self.counts, self.to_ack, self.to_resolve)


def parts(tallies: Mapping[Key, Tally]) -> list[MonthKind]:
    """The tallies of each month and kind packed, sites in order."""
    grouped: dict[tuple[str, str], list[tuple[str, Tally]]] = {}
    for (month, site, kind), part in tallies.items():
        grouped.setdefault((month, kind), []).append((site, part))
    return [_month_kind(month, kind, sites) for (month, kind), sites in grouped.items()]


def _month_kind(month: str, kind: str, sites: list[tuple[str, Tally]]) -> MonthKind:
    sites.sort(key=lambda site: site[0])
    counts, to_ack, to_resolve = array("q"), array("d"), array("d")
    ack_ends, resolve_ends = array("q"), array("q")
    whole = [0, 0, 0, 0, 0]
    for _site, part in sites:
        site_counts = part.counts()
        counts.extend(site_counts)
        whole = [a + b for a, b in zip(whole, site_counts, strict=True)]
        to_ack.extend(sorted(part.to_ack))
        ack_ends.append(len(to_ack) * to_ack.itemsize)
        to_resolve.extend(sorted(part.to_resolve))
        resolve_ends.append(len(to_resolve) * to_resolve.itemsize)
    return MonthKind(
        month, kind, tuple(whole), array("d", sorted(to_ack)).tobytes(), array("d", sorted(to_resolve)).tobytes(),  # type: ignore[arg-type]
        [site for site, _part in sites], counts, to_ack.tobytes(), ack_ends, to_resolve.tobytes(), resolve_ends,
    )  # fmt: skip


def _ints(data: bytes) -> array[int]:
    values = array("q")
    values.frombytes(data)
    return values


#: Up to this many times, a row's figures come from sorting them; beyond, from its sorted runs as they are.
_SORT_UP_TO = 4096


def _figures_of_runs(runs: list[array[float]]) -> dict[str, float | None]:
    """Median, 90th percentile and mean of the values of ``runs`` (each sorted, unless they are few):
    the same figures whichever way they are found."""
    count = sum(map(len, runs))
    if not count:
        return {"median_s": None, "p90_s": None, "mean_s": None}
    if count <= _SORT_UP_TO:
        at: Callable[[int], float] = sorted(itertools.chain.from_iterable(runs)).__getitem__
    else:
        at = functools.partial(_nth, runs)
    p90 = at(min(count - 1, max(0, round(0.9 * count + 0.5) - 1)))
    # statistics.median's arithmetic
    median = at(count // 2) if count % 2 else (at(count // 2 - 1) + at(count // 2)) / 2
    return {
        "median_s": round(median, 1),
        "p90_s": round(p90, 1),
        "mean_s": round(math.fsum(itertools.chain.from_iterable(runs)) / count, 1),  # statistics.fmean's own
    }


def _nth(runs: list[array[float]], index: int) -> float:
    """The ``index``-th smallest (from 0) of the values of sorted ``runs``, without merging them: each turn
    halves the largest run still in play around its middle value, found in the others by bisection."""
    low = [0] * len(runs)
    high = [len(run) for run in runs]
    while True:
        widest = max(range(len(runs)), key=lambda i: high[i] - low[i])
        pivot = runs[widest][(low[widest] + high[widest]) // 2]
        below = [bisect.bisect_left(run, pivot, low[i], high[i]) for i, run in enumerate(runs)]
        upto = [bisect.bisect_right(run, pivot, low[i], high[i]) for i, run in enumerate(runs)]
        smaller = sum(below) - sum(low)
        if index < smaller:
            high = below
        elif index < sum(upto) - sum(low):
            return pivot
        else:
            index -= sum(upto) - sum(low)
            low = upto


def summarise(alarms: Iterable[AlarmTimes], group: str) -> list[dict[str, Any]]:
    """One row per month, site or kind, in order."""
    return rows(parts(tally(alarms)), group)


def rows(period: Iterable[MonthKind], group: str) -> list[dict[str, Any]]:
    """One row per month, site or kind, in order: the counts added and the times joined (each row's
    sorted once: the sorted runs it joins make that a merge)."""
    with _collector_paused():
        merged = _by_site(period) if group == "site" else _by_whole(period, group)
        return [_row(group, key, merged[key]) for key in sorted(merged)]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Without the cyclic garbage collector, which the merge's many small tuples (none in a cycle) would
    set off again and again, each pass walking every object of the process: half the merge's time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _by_whole(period: Iterable[MonthKind], group: str) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for part in period:
        key = part.month if group == "month" else part.kind
        entry = merged.get(key)
        if entry is None:
            merged[key] = [*part.counts, [part.to_ack], [part.to_resolve]]
        else:
            for index, count in enumerate(part.counts):
                entry[index] += count
            entry[5].append(part.to_ack)
            entry[6].append(part.to_resolve)
    return merged


def _by_site(period: Iterable[MonthKind]) -> dict[str, list[Any]]:
    """Each site's counts and runs of times from every month and kind.

    A year at a thousand gateways is some 50,000 (month, kind, site) runs: they are cut, sorted by site
    and grouped by C code (``map``, ``zip``, ``sort``, ``groupby``), not by a Python loop over each.
    """
    runs: list[tuple[str, tuple[int, ...], bytes, bytes]] = []
    for part in period:
        if part.sites is None:
            continue
        counts = iter(part.site_counts.tolist())
        runs.extend(
            zip(
                part.sites,
                zip(counts, counts, counts, counts, counts, strict=True),  # five at a time
                _runs(part.site_to_ack, part.site_to_ack_ends),
                _runs(part.site_to_resolve, part.site_to_resolve_ends),
                strict=True,
            )
        )
    runs.sort(key=_SITE)  # each part's sites are in order: a merge of sorted runs
    merged: dict[str, list[Any]] = {}
    for site, group in itertools.groupby(runs, key=_SITE):
        found = list(group)
        merged[site] = [
            *map(sum, zip(*map(_COUNTS, found), strict=True)),
            list(map(_ACKS, found)),
            list(map(_RESOLVES, found)),
        ]
    return merged


_SITE, _COUNTS, _ACKS, _RESOLVES = (operator.itemgetter(index) for index in range(4))


def _runs(data: bytes, ends: array[int]) -> Iterator[bytes]:
    """Each site's run of ``data``, which ends at its ``ends`` (bytes)."""
    return map(data.__getitem__, map(slice, itertools.chain((0,), ends), ends))


def tables(period: list[MonthKind]) -> dict[str, list[dict[str, Any]]]:
    """The page's three tables."""
    return {group: rows(period, group) for group in GROUPS}


def _row(group: str, key: str, entry: list[Any]) -> dict[str, Any]:
    alarms, still_open, real, false, test, to_ack, to_resolve = entry
    to_ack, to_resolve = _sorted_runs(to_ack), _sorted_runs(to_resolve)
    return {
        group: key,
        "alarms": alarms,
        "open": still_open,
        "real": real,
        "false_alarm": false,
        "test": test,
        "false_alarm_rate": round(false / (real + false), 3) if real + false else None,
        "ack": {**_figures_of_runs(to_ack), "count": sum(map(len, to_ack))},
        "resolve": {**_figures_of_runs(to_resolve), "count": sum(map(len, to_resolve))},
    }


def _sorted_runs(pieces: list[bytes]) -> list[array[float]]:
    """Sorted runs of times as bytes: one array if they are few (sorted by :func:`_figures_of_runs`), else one
    array each."""
    if sum(map(len, pieces)) <= _SORT_UP_TO * 8:
        return [_floats(b"".join(pieces))]  # sorted by _figures_of_runs
    return [_floats(piece) for piece in pieces if piece]


def _floats(data: bytes) -> array[float]:
    values = array("d")
    values.frombytes(data)
    return values


def total(period: Iterable[MonthKind]) -> int:
    """How many alarms the parts hold."""
    return sum(part.counts[0] for part in period)


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
    """The UTC day the store counts an alarm's changes under (``CAST(floor(opened_at / 86400) AS BIGINT)``)."""
    return int(at / _DAY_S)


@dataclass(frozen=True, slots=True)
class _Computed:
    """A month summarised from its alarms, with the bookkeeping it was read at (to be stored)."""

    month: str
    alarm_changes: int
    parts: list[MonthKind]


@dataclass(slots=True)
class _Read:
    """What one snapshot gave: the period's parts, the months summarised anew and what they were read at."""

    parts: list[MonthKind]
    computed: list[_Computed] = field(default_factory=list)
    generation: int | None = None
    sites: str = ""


def period_parts(
    conn: sqlite3.Connection, kinds: Iterable[str], since: float | None, until: float | None, *, by_site: bool = True
) -> list[MonthKind]:
    """The parts of the alarms of ``kinds`` opened in [``since``, ``until``) (None: open-ended); without
    the sites unless ``by_site`` (the month and kind tables need only each month's whole kinds).

    A whole month comes from its stored summary while the bookkeeping for it (the change counts the
    store keeps for the days it touches, the generation, and the hash of every button's site, see
    schema.sql) is what the summary was computed at; otherwise, and for a month the period cuts, from
    its alarms. Months summarised anew are stored afterwards; all is read in one snapshot, so a
    summary is never stored with bookkeeping newer than the alarms it was computed from. If the
    bookkeeping is missing or broken, every month is computed from its alarms (and none stored).
    """
    kinds = sorted(str(kind) for kind in kinds)
    if not kinds:
        return []
    with read_snapshot(conn):
        span = _span(conn, kinds, since, until)
        if span is None:
            return []
        months = _months(*span)
        period = _Period(kinds, since, until, months, by_site)
        try:
            with savepoint(conn, "stats_read"):  # PostgreSQL: the snapshot's other reads go on after a failure
                read = _read_months(conn, period)
        except StoreError:
            log.exception("statistics: the summaries' bookkeeping is missing or broken; computed from the alarms")
            read = _Read(_from_alarms(conn, period))
            return read.parts
    if read.generation is None:
        _start_generation(conn)
    elif read.computed:
        _store_months(conn, read)
    return read.parts


def _whole(month: tuple[str, float, float], since: float | None, until: float | None) -> bool:
    return (since is None or since <= month[1]) and (until is None or until >= month[2])


@dataclass(frozen=True)
class _Period:
    """What a statistics view asks for: alarms of ``kinds`` opened in [``since``, ``until``) (None:
    open-ended), the local months that touches, and whether by site."""

    kinds: list[str]
    since: float | None
    until: float | None
    months: list[tuple[str, float, float]]
    by_site: bool


def _read_months(conn: sqlite3.Connection, period: _Period) -> _Read:
    """Inside one read snapshot: the months' parts of ``kinds``, and the months summarised anew."""
    kinds, since, until, months, by_site = period.kinds, period.since, period.until, period.months, period.by_site
    whole = [m for m in months if _whole(m, since, until)]
    cut = [m for m in months if not _whole(m, since, until)]
    generation, alarm_changes = _alarm_changes(conn, whole)
    sites_mark = store.stats_sites_mark(conn)
    stored = store.stats_summaries(conn, [month for month, _start, _end in whole])
    trusted = generation is not None and store.stats_trusted(conn)
    fresh = {
        month
        for month, _s, _e in whole
        if trusted and stored.get(month) == (generation, alarm_changes[month], sites_mark)
    }
    read = _Read(
        [MonthKind.from_row(row) for row in store.stats_kinds(conn, sorted(fresh), kinds, by_site=by_site)],
        generation=generation if trusted else None,
        sites=sites_mark,
    )
    stale = [m for m in whole if m[0] not in fresh]
    sites = _button_sites(conn, sites_mark) if stale or cut else {}
    for month, start, end in stale:
        every_kind = _from_month(conn, ALL_KINDS, month, start, end, sites)
        read.computed.append(_Computed(month, alarm_changes[month], every_kind))
        read.parts.extend(_wanted(every_kind, kinds, by_site))
    for month in cut:
        read.parts.extend(_wanted(_cut_month(conn, kinds, since, until, month, sites), kinds, by_site))
    return read


def _wanted(found: list[MonthKind], kinds: list[str], by_site: bool) -> list[MonthKind]:
    return [part if by_site else part.without_sites() for part in found if part.kind in kinds]


def _cut_month(
    conn: sqlite3.Connection,
    kinds: list[str],
    since: float | None,
    until: float | None,
    month: tuple[str, float, float],
    sites: dict[str, str],
) -> list[MonthKind]:
    name, start, end = month
    low = start if since is None else max(start, since)
    high = end if until is None else min(end, until)
    return _from_month(conn, kinds, name, low, high, sites)


def _from_month(
    conn: sqlite3.Connection, kinds: Sequence[str], month: str, low: float, high: float, sites: dict[str, str]
) -> list[MonthKind]:
    """The parts of the alarms of ``kinds`` opened in [``low``, ``high``), all of ``month``."""
    return parts(tally_month(month, store.alarm_time_tuples(conn, kinds, low, high), sites))


#: Per store, the buttons' sites last read, with their hash (:func:`store.stats_sites_mark`).
_sites_read: dict[str, tuple[str, dict[str, str]]] = {}


def _button_sites(conn: sqlite3.Connection, mark: str) -> dict[str, str]:
    """Every button's site, read again only when the hash of them all (read in the caller's snapshot) moved."""
    database = database_file(conn)
    known = _sites_read.get(database)
    if known is not None and known[0] == mark:
        return known[1]
    sites = store.button_sites(conn)
    _sites_read[database] = (mark, sites)
    return sites


def _from_alarms(conn: sqlite3.Connection, period: _Period) -> list[MonthKind]:
    """Every month of the period from its alarms (the summaries out of use)."""
    kinds, since, until, months, by_site = period.kinds, period.since, period.until, period.months, period.by_site
    sites = store.button_sites(conn)
    return [
        part
        for month in months
        for part in _wanted(_cut_month(conn, kinds, since, until, month, sites), kinds, by_site)
    ]


def _alarm_changes(
    conn: sqlite3.Connection, months: list[tuple[str, float, float]]
) -> tuple[int | None, dict[str, int]]:
    """The generation, and each month's count of alarm changes: the sum over the UTC days it touches."""
    first, last = (_day(months[0][1]), _day(months[-1][2])) if months else (0, 0)
    generation, counts = store.stats_bookkeeping(conn, first, last)
    return generation, {
        month: sum(counts.get(day, 0) for day in range(_day(start), _day(end) + 1)) for month, start, end in months
    }


@contextmanager
def _derived_write(conn: sqlite3.Connection) -> Iterator[None]:
    """A write of derived data: without waiting for the disk (losing it costs only a recomputation, and the
    next commit that does wait writes it too), so that it holds the store's write lock, which a press may
    be waiting for, for as short as it can."""
    sqlite = dialect(conn) == "sqlite"  # a PostgreSQL server's durability is its own configuration's
    if sqlite:
        conn.execute("PRAGMA synchronous=NORMAL")
    try:
        with transaction(conn):
            yield
    finally:
        if sqlite:
            conn.execute("PRAGMA synchronous=FULL")


def _store_months(conn: sqlite3.Connection, read: _Read) -> None:
    """Keep the months summarised anew; a failure (the store busy for long, the tables broken) costs
    only a recomputation."""
    assert read.generation is not None
    summaries = [
        (c.month, read.generation, c.alarm_changes, read.sites, [p.row() for p in c.parts]) for c in read.computed
    ]
    try:
        with _derived_write(conn):
            store.save_stats_months(conn, summaries)
    except StoreError:
        log.warning("statistics: monthly summaries not stored", exc_info=True)


def _start_generation(conn: sqlite3.Connection) -> None:
    """A generation for summaries to be stored at from the next view on (none is stored with this one: its
    counts were read while there was none, when a change may have gone uncounted)."""
    try:
        with _derived_write(conn):
            store.start_stats_generation(conn)
    except StoreError:
        log.warning("statistics: no generation for the monthly summaries", exc_info=True)


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
