"""Costs at scale (issue 11): how each periodic job and each page grows with gateways and stored events.

For each size (gateways by stored events) a fresh store is seeded
(:mod:`bench.seed`) and, in process (no HTTP), each of these is timed (median
of a few runs after one warm-up): the supervisor's round, the board's
snapshot, the sites map, the board's sites summary (made anew, as after a change)
and one site, the technicians' device view (page 1 and a search), a year of statistics,
the audit log's first page (and a filtered one), and the escalator's check. The statistics are
timed three ways: the first view (every month summarised from its alarms), a view with every month
stored, and a view after a new alarm in the current month (the usual case: that month anew).
Prints one JSON line; ``--gateways`` / ``--events`` choose the sizes.

    .venv/bin/python -m bench.costs
    .venv/bin/python -m bench.costs --gateways 1000 --events 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import machine
from bench.seed import YEAR_S, seed
from dashboard.accounts import audit
from dashboard.alarms import escalation, stats
from dashboard.alarms import store as alarm_store
from dashboard.board.api import CLOSED_MEMORY_S
from dashboard.db import connect, init_schema, transaction
from dashboard.defaults import LOCAL_TIME
from dashboard.devices import registry
from dashboard.devices import sites as site_list
from dashboard.devices.sites import sites
from dashboard.devices.supervision import Audience, SupervisionSettings, Supervisor, open_troubles
from dashboard.devices.view import device_overview
from dashboard.ingest.hub import Hub
from firmware_bridge.ids import make_ulid
from firmware_bridge.payloads import Event, EventType, Kind, Source
from firmware_bridge.timeutil import format_epoch

ALL_KINDS = frozenset({"fire", "sapa"})
FIRE = frozenset({"fire"})
#: A fire operator's audience (troubles of fire buttons and every gateway's).
OPERATOR = Audience(FIRE, FIRE)
#: A technician's: every button's device troubles, press troubles of fire buttons only.
TECHNICIAN = Audience(ALL_KINDS, FIRE)
TARGETS_MS = {"supervisor_round": 100, "snapshot": 50, "stats_year": 500, "audit_page": 100}


def timed(work: Callable[[], object], repeat: int, before: Callable[[], object] | None = None) -> tuple[float, object]:
    """Median milliseconds of ``repeat`` runs after a warm-up, and the last result (``before``: untimed, each run)."""
    result = work()
    samples = []
    for _ in range(repeat):
        if before is not None:
            before()
        started = time.perf_counter()
        result = work()
        samples.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(samples), 2), result


def snapshot(conn: Any, kinds: frozenset[str], audience: Audience, now: float) -> dict[str, Any]:
    """What ``dashboard.board.api._snapshot`` reads, from the same store functions."""
    return {
        "alarms": alarm_store.list_alarms(conn, kinds=kinds, open_only=True),
        "closed": alarm_store.recently_closed(conn, kinds=kinds, since=now - CLOSED_MEMORY_S),
        "gateways": registry.list_gateways(conn),
        "troubles": open_troubles(conn, audience),
    }


def audit_page(conn: Any, **filters: Any) -> list[dict[str, Any]]:
    """The audit log's first page as an administrator sees it (fire alarms' content only)."""
    page = getattr(audit, "page", None)
    if page is not None:
        return page(conn, kinds=FIRE, **filters).rows
    return audit.entries(conn, kinds=FIRE, limit=500, **filters)


def measure(database: Path, gateways: int, events: int, repeat: int) -> dict[str, Any]:
    conn = connect(database)
    init_schema(conn)
    now = time.time()
    summary = seed(conn, gateways=gateways, buttons_per_gateway=20, events=events, now=now)
    now += 10  # as if the jobs ran shortly after; the seeded health is still fresh
    supervisor = Supervisor(str(database), Hub(), SupervisionSettings())
    point: dict[str, Any] = {
        "gateways": gateways, "buttons": summary.buttons, "events": events, "alarms": summary.alarms,
        "audit_rows": summary.audit_rows, "seed_s": summary.seconds,
    }  # fmt: skip
    point["supervisor_round_ms"], _ = timed(lambda: supervisor.check(conn, now), repeat)
    point["snapshot_ms"], snap = timed(lambda: json.dumps(snapshot(conn, ALL_KINDS, OPERATOR, now)), repeat)
    point["snapshot_bytes"] = len(str(snap))
    point["sites_ms"], _ = timed(lambda: sites(conn, TECHNICIAN, FIRE, now), repeat)
    # What a board reads after every change (the summary made anew: its memo would answer the same change
    # for every other board), and one site opened from its list.
    point["sites_summary_ms"], _ = timed(
        lambda: site_list.summary(conn, OPERATOR, FIRE, now), repeat, before=site_list._summaries.clear
    )
    point["site_ms"], _ = timed(lambda: site_list.site(conn, OPERATOR, FIRE, now, "site-0000-0"), repeat)
    point["device_view_ms"], _ = timed(lambda: device_overview(conn, TECHNICIAN, now), repeat)  # page 1
    middle = f"gw-{gateways // 2:04d}"  # a technician's search: one gateway's name
    point["device_search_ms"], _ = timed(lambda: device_overview(conn, TECHNICIAN, now, query=middle), repeat)

    # As the statistics page asks (whole months): from the month of the seed's first alarm on, every one of them.
    year_from = datetime.fromtimestamp(now - YEAR_S, LOCAL_TIME).replace(day=1, hour=0, minute=0, second=0)

    def year_of_stats() -> object:  # as the statistics page: the period's tallies, then each group's table
        return stats.tables(stats.period_parts(conn, ALL_KINDS, year_from.timestamp(), None))

    presses = iter(range(1_000_000))

    def a_new_alarm() -> None:  # the current month changes between two views, as it does all day
        event_id = make_ulid(int(time.time() * 1000), os.urandom(10))
        button = f"bench-{next(presses)}"
        event = Event(event_id, "gw-bench", button, Kind.FIRE, EventType.PRESS, format_epoch(now), Source.GPIO)
        with transaction(conn):
            alarm_store.store_events(conn, [(event, now)])

    started = time.perf_counter()
    year_of_stats()
    point["stats_year_first_ms"] = round((time.perf_counter() - started) * 1000, 2)  # every month summarised
    point["stats_year_stored_ms"], _ = timed(year_of_stats, repeat)  # every month from its summary
    point["stats_year_ms"], _ = timed(year_of_stats, repeat, before=a_new_alarm)  # the current month anew
    point["audit_page_ms"], _ = timed(lambda: audit_page(conn), repeat)
    point["audit_page_filtered_ms"], _ = timed(lambda: audit_page(conn, actor="admin"), repeat)

    def escalation_check() -> object:
        alarm_store.expired_test_alarms(conn, opened_before=now - escalation.TEST_ALARM_S)
        return escalation.any_due(conn, escalation.EscalationSettings(), now)

    point["escalation_check_ms"], _ = timed(escalation_check, repeat)
    conn.close()
    return point


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--events", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    points = []
    for gateways in args.gateways:
        for events in args.events:
            with tempfile.TemporaryDirectory(prefix="siaga-costs-") as tmp:
                points.append(measure(Path(tmp) / "dashboard.db", gateways, events, args.repeat))
            print(json.dumps(points[-1]), file=sys.stderr)
    print(json.dumps({"bench": "costs", "machine": machine(), "targets_ms": TARGETS_MS, "points": points}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
