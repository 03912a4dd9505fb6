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
import sqlite3
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, render_template, request

from firmware_bridge.payloads import Kind

from ..accounts import audit
from ..accounts.auth import Role, login_required, visible_kinds
from ..db import get_db
from ..defaults import LOCAL_TIME
from . import store
from .lifecycle import Resolution

bp = Blueprint("stats", __name__)

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
    """The alarms of ``kinds`` opened in [since, until), oldest first (the store reads them).

    Read as plain tuples and each button's site looked up once, not joined
    per alarm: a year of a regency's alarms is hundreds of thousands of rows.
    """
    sites = store.button_sites(conn)
    return [
        AlarmTimes(kind, sites.get(button, button), opened_at, acknowledged_at, resolved_at, resolution)
        for kind, button, opened_at, acknowledged_at, resolved_at, resolution in store.alarm_time_tuples(
            conn, kinds, since, until
        )
    ]


def _figures(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"median_s": None, "p90_s": None, "mean_s": None}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, max(0, round(0.9 * len(ordered) + 0.5) - 1))]
    return {
        "median_s": round(statistics.median(ordered), 1),
        "p90_s": round(p90, 1),
        "mean_s": round(statistics.fmean(ordered), 1),
    }


def summarise(alarms: Iterable[AlarmTimes], group: str) -> list[dict[str, Any]]:
    """One row per month, site or kind, in order."""
    buckets: dict[str, list[AlarmTimes]] = {}
    for alarm in alarms:
        key = alarm.month if group == "month" else alarm.site if group == "site" else alarm.kind
        buckets.setdefault(key, []).append(alarm)
    return [_row(group, key, buckets[key]) for key in sorted(buckets)]


def _row(group: str, key: str, items: list[AlarmTimes]) -> dict[str, Any]:
    """One group's figures, in one pass over its alarms."""
    to_ack: list[float] = []
    to_resolve: list[float] = []
    resolutions = {Resolution.REAL.value: 0, Resolution.FALSE_ALARM.value: 0, Resolution.TEST.value: 0, None: 0}
    still_open = 0
    for a in items:
        resolution = a.resolution
        if resolution in resolutions:
            resolutions[resolution] += 1
        if a.resolved_at is None:
            still_open += 1
        if resolution == Resolution.TEST:
            continue
        if a.acknowledged_at is not None:
            to_ack.append(a.acknowledged_at - a.opened_at)
            if a.resolved_at is not None and a.acknowledged_at:
                to_resolve.append(a.resolved_at - a.acknowledged_at)
    real, false = resolutions[Resolution.REAL], resolutions[Resolution.FALSE_ALARM]
    return {
        group: key,
        "alarms": len(items),
        "open": still_open,
        "real": real,
        "false_alarm": false,
        "test": resolutions[Resolution.TEST],
        "false_alarm_rate": round(false / (real + false), 3) if real + false else None,
        "ack": {**_figures(to_ack), "count": len(to_ack)},
        "resolve": {**_figures(to_resolve), "count": len(to_resolve)},
    }


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
    alarms = load(get_db(), kinds, since, until)
    _log_sapa(kinds)
    tables = {group: summarise(alarms, group) for group in GROUPS}
    return render_template(
        "stats.html", tables=tables, args=args, kinds=kinds, total=len(alarms), chart=chart(tables["month"])
    )


@bp.get("/stats.csv")
@login_required(*_STATS_ROLES)
def csv_export() -> Response:
    group = request.args.get("group", "month")
    if group not in GROUPS:
        group = "month"
    since, until, _args = _period()
    kinds = _kinds()
    rows = summarise(load(get_db(), kinds, since, until), group)
    _log_sapa(kinds)
    return audit.csv_download([group, *CSV_COLUMNS], (flat(row, group) for row in rows), f"siaga-stats-{group}.csv")


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
