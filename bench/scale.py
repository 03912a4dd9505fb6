#!/usr/bin/env python3
"""Scale curves: the dashboard at 10 to 1,000 gateways, 1 to 1,000 open boards and 10k to 1M stored events.

    .venv/bin/python bench/scale.py [--quick | --point G,S,E]

Three curves share one smallest point (10 gateways of 20 buttons, 1 open
board, 10k stored events); each curve grows one dimension from there:
gateways 10 / 100 / 1,000, open streams 1 / 100 / 1,000, stored events
10k / 100k / 1M. ``--quick`` runs the smallest point only (a smoke test).

Every point starts afresh: a Mosquitto, a store seeded with a year of history
(``bench/seed.py``) before the dashboard starts, then the dashboard as its own
process (``siaga-dashboard serve``). On the same broker, in the same run: the
raw MQTT hop (QoS 1 publish -> subscriber, one at a time) and the raw QoS 1
rate, the floors the dashboard's figures stand beside. Then:

- ``run_load`` (``sim/load.py``, in a process of its own) connects the
  point's gateways (health every 30 s) and presses a storm of one press per gateway per second for 10 s
  (1,000 presses/s at 1,000 gateways): ingest rate, presses lost, receipts;
- during the storm a probe gateway presses its own buttons one at a time; the
  time until the alarm is on the first board and on every open board is
  press -> board under load; the fire operator acknowledges each probe alarm
  (acknowledge round trip) and ``/healthz`` is polled every 50 ms;
- after the storm: the board snapshot (a board opening its stream: time
  until its snapshot message is whole, and its bytes), ``GET /api/alarms``
  (the first 200 alarms), the statistics page for the last twelve months (``/stats``), the
  audit log's first page (``/audit``, as an admin), the supervisor's rounds
  as the dashboard times them (``/api/diagnostics``: the median and slowest
  of the point's rounds, every 5 s, the storm's among them; and again
  after the quiet measures), and the dashboard's peak RSS.

Everything has a timeout; a point that cannot finish is recorded with its
error instead of hanging the run. The load generator, the boards' client and
the probes share the machine's cores with the dashboard and the broker, so
the figures are an upper bound of what the dashboard alone costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sqlite3
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from common import DashboardProcess, connected_client, disconnect, machine, percentiles, scratch_folder
from footprint import memory_kib
from ingest import raw_rate, wait_connected
from latency import mqtt_hop
from seed import seed
from streams import OPERATOR, PressTimes, Prober, inventory, open_boards, press_and_acknowledge

from dashboard.db import connect, init_schema
from dashboard.defaults import LOCAL_TIME
from sim.load import LoadSettings, raise_fd_limit, run_load
from sim.mosquitto import Mosquitto
from sim.webclient import DashboardClient

ADMIN = ("admin", "bench-admin-password", "admin")
PROBE_GW = "gw-probe"
STORM_S = 10.0
#: Presses per gateway per second in the storm: 1,000/s at 1,000 gateways.
STORM_RATE_PER_GATEWAY = 1.0
PROBE_GAP_S = 0.05
PROBE_BUTTONS = 400
POINT_TIMEOUT_S = 300.0
HTTP_TIMEOUT_S = 30.0
REPEATS = 7
#: The stream reader's line limit: a snapshot is one line of JSON, several MB at 1,000 gateways
SNAPSHOT_LIMIT = 64 * 1024 * 1024

#: issue 11's targets, by the name they have in a point
TARGETS = {
    "press_to_board_p99_ms": 250,
    "supervisor_round_ms": 100,
    "snapshot_ms": 50,
    "dashboard_rss_mib": 400,
    "acknowledge_p99_ms": 50,
    "healthz_p99_ms": 20,
    "press_to_every_stream_p99_ms": 100,
    "stats_year_ms": 500,
    "audit_page_ms": 100,
}


@dataclass(frozen=True)
class Point:
    """One configuration: how many gateways (20 buttons each), open boards and stored events."""

    gateways: int
    streams: int
    events: int

    @property
    def name(self) -> str:
        return f"{self.gateways} gateways, {self.streams} streams, {self.events} events"


SMALLEST = Point(10, 1, 10_000)
CURVES = {
    "gateways": [SMALLEST, Point(100, 1, 10_000), Point(1_000, 1, 10_000)],
    "streams": [SMALLEST, Point(10, 100, 10_000), Point(10, 1_000, 10_000)],
    "events": [SMALLEST, Point(10, 1, 100_000), Point(10, 1, 1_000_000)],
}


def all_points(quick: bool, only: str | None = None) -> list[Point]:
    """Every distinct point of the curves, smallest first (only the smallest with ``quick``, or ``only``)."""
    if only is not None:
        gateways, streams, events = (int(part) for part in only.split(","))
        return [Point(gateways, streams, events)]
    if quick:
        return [SMALLEST]
    points: list[Point] = []
    for curve in CURVES.values():
        points += [point for point in curve if point not in points]
    return points


# --- the stored history ---------------------------------------------------------------------------------------


def seed_history(database: Path, events: int) -> dict[str, Any]:
    """A year of history from ten other gateways in the dashboard's store, before it starts."""
    conn = connect(database)
    try:
        init_schema(conn)
        summary = seed(conn, gateways=10, buttons_per_gateway=20, events=events, seed=1)
        return summary.as_dict()
    finally:
        conn.close()


def stored_events(database: Path) -> int:
    """Events in the dashboard's store (read from another connection)."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def newest_event_rowid(database: Path) -> int:
    """The store's newest event row (cheap at any size): grows when the storm's first press is stored."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute("SELECT MAX(rowid) FROM events").fetchone()[0] or 0)
    finally:
        conn.close()


# --- the load generator in its own thread ---------------------------------------------------------------------


def load_in_child(settings: LoadSettings, results: Connection) -> None:
    """The child's body: run the load, send back its report as a dict (or the error)."""
    try:
        results.send({"report": asyncio.run(run_load(settings)).to_dict()})
    except Exception as exc:  # recorded in the point, the run goes on
        results.send({"error": f"{type(exc).__name__}: {exc}"})


class LoadProcess:
    """``run_load`` in a process of its own, so the gateways and the boards' client do not share one GIL."""

    def __init__(self, settings: LoadSettings) -> None:
        self.settings = settings
        self.report: dict[str, Any] | None = None
        self.error: str | None = None
        self._results, child_end = multiprocessing.Pipe(duplex=False)
        self._process = multiprocessing.get_context("spawn").Process(
            target=load_in_child, args=(settings, child_end), name="scale-load", daemon=True
        )

    def start(self) -> LoadProcess:
        self._process.start()
        return self

    def alive(self) -> bool:
        return self._process.is_alive()

    def join(self, timeout: float) -> None:
        """Wait for the report; a run past ``timeout`` is ended and recorded as such."""
        if self._results.poll(timeout):
            outcome = self._results.recv()
            self.report, self.error = outcome.get("report"), outcome.get("error")
        else:
            self.error = f"the load run did not end within {timeout:.0f} s"
            self._process.terminate()
        self._process.join(10)


# --- one point ------------------------------------------------------------------------------------------------


@dataclass
class Rig:
    """What one point runs on: the broker, the dashboard, its two accounts and the probe gateway."""

    broker: Mosquitto
    dashboard: DashboardProcess
    operator: DashboardClient
    admin: DashboardClient
    probe: Any  # a paho client
    seeded: dict[str, Any] = field(default_factory=dict)


def timed_ms(action: Callable[[], object], repeats: int = REPEATS) -> dict[str, float]:
    """Percentiles of ``action``'s wall time over ``repeats`` calls."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def fetch_ok(client: DashboardClient, path: str) -> int:
    """GET ``path`` as ``client``; its size in bytes (a refusal is an error, not a fast page)."""
    status, text = client.get_text(path)
    if status != 200:
        raise RuntimeError(f"GET {path}: HTTP {status}")
    return len(text.encode())


def last_year() -> str:
    """``/stats`` for the last twelve months, this one included (WITA months)."""
    now = datetime.now(LOCAL_TIME)
    start = now.replace(year=now.year - 1, month=now.month % 12 + 1) if now.month < 12 else now.replace(month=1)
    return f"/stats?from={start:%Y-%m}&to={now:%Y-%m}"


def supervisor_rounds(admin: DashboardClient) -> dict[str, float]:
    """The dashboard's own timing of its supervisor's rounds (``/api/diagnostics``), in ms."""
    rounds = admin.get_json("/api/diagnostics")["supervisor_round"]
    return {name[:-2]: round(rounds[name] * 1000, 2) for name in ("p50_s", "max_s", "last_s")}


def start_rig(workdir: Path, point: Point) -> Rig:
    broker = Mosquitto(workdir / "mosquitto").start()
    sections = {
        "board": {"streams_per_account": point.streams},
        "dashboard": {"max_streams": point.streams + 100, "threads": 32},
    }
    dashboard = DashboardProcess(workdir, broker.port, user=OPERATOR, sections=sections)
    dashboard.create_user(*ADMIN)
    seeded = seed_history(dashboard.database, point.events)
    return Rig(broker, dashboard, DashboardClient(dashboard.url, timeout=HTTP_TIMEOUT_S),
               DashboardClient(dashboard.url, timeout=HTTP_TIMEOUT_S), None, seeded)  # fmt: skip


def measure_point(point: Point) -> dict[str, Any]:
    """One point from a fresh broker and store; its figures, or what stopped it."""
    result: dict[str, Any] = {"gateways": point.gateways, "buttons": point.gateways * 20, "streams": point.streams,
                              "stored_events": point.events}  # fmt: skip
    started = time.perf_counter()
    with scratch_folder() as workdir:
        rig: Rig | None = None
        try:
            rig = start_rig(workdir, point)
            result["seed"] = rig.seeded
            result["raw_mqtt_hop_ms"] = percentiles(mqtt_hop(rig.broker.port, 200))
            result["raw_qos1_rate_per_s"] = round(raw_rate(rig.broker.port, 5_000))
            rig.dashboard.start()
            wait_connected(rig.dashboard.url, 30)
            rig.operator.login(*OPERATOR[:2])
            rig.admin.login(*ADMIN[:2])
            rig.probe = connected_client(rig.broker.port, "scale-probe")
            topic, payload = inventory(PROBE_BUTTONS, PROBE_GW)
            rig.probe.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
            result |= asyncio.run(asyncio.wait_for(under_load(rig, point), POINT_TIMEOUT_S))
            result |= quiet_costs(rig)
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
            result["traceback_tail"] = traceback.format_exc().splitlines()[-3:]
        finally:
            if rig is not None:
                if rig.probe is not None:
                    disconnect(rig.probe)
                rig.dashboard.stop()
                rig.broker.stop()
    result["point_s"] = round(time.perf_counter() - started, 1)
    result["load_average_1m"] = round(os.getloadavg()[0], 2)  # others' work on the machine shows here
    return result


async def under_load(rig: Rig, point: Point) -> dict[str, Any]:
    """The storm, with the boards open, probe presses, acknowledges and health polls running through it."""
    dashboard = rig.dashboard
    pid = dashboard.process.pid  # type: ignore[union-attr]
    boards = await open_boards(dashboard.port, rig.operator.cookie_header(), point.streams)
    before = stored_events(dashboard.database)
    settings = LoadSettings(
        gateways=point.gateways,
        buttons=20,
        rate=point.gateways * STORM_RATE_PER_GATEWAY,
        duration_s=STORM_S,
        broker=f"mqtt://127.0.0.1:{rig.broker.port}",
        health_s=30.0,
        grace_s=15.0,
        clean_session=True,
        seed=1,
    )
    times = PressTimes()
    probes = 0
    newest = newest_event_rowid(dashboard.database)
    with Prober(dashboard.url, OPERATOR[:2]) as prober:
        load = LoadProcess(settings).start()
        storm_began = await storm_start(dashboard.database, newest, load)
        storm_ends = storm_began + STORM_S
        while load.alive() and (time.perf_counter() < storm_ends or probes < 5) and probes < PROBE_BUTTONS:
            await press_and_acknowledge(rig.probe, boards.boards, rig.operator, prober, probes, times, PROBE_GW)
            probes += 1
            await asyncio.sleep(PROBE_GAP_S)
        await asyncio.get_running_loop().run_in_executor(None, load.join, STORM_S + settings.grace_s + 60)
    boards.close()
    storm_rounds = supervisor_rounds(rig.admin)  # the rounds of this point so far: the storm's among them
    report = load.report
    stored = stored_events(dashboard.database) - before
    rss_mib = round(memory_kib(pid)["VmHWM"] / 1024, 1)  # the peak: the kernel's high-water mark
    out: dict[str, Any] = {
        "open_all_streams_s": round(boards.open_s, 3),
        "probe_presses": probes,
        "press_to_board_ms": percentiles(times.first) if times.first else None,
        "press_to_every_stream_ms": percentiles(times.delivery) if times.delivery else None,
        "streams_missing_a_press": times.missing,
        "acknowledge_ms": percentiles(times.acknowledge) if times.acknowledge else None,
        "healthz_ms": percentiles(prober.samples) if prober.samples else None,
        "dashboard_rss_mib": rss_mib,
        "supervisor_round_ms": storm_rounds,
        "load_error": load.error,
    }
    if report is not None:
        out["load"] = {key: report[key] for key in (
            "connected", "presses_sent", "rate", "receipts", "missing_receipts", "publish_errors", "reconnects",
            "health_sent", "receipt_ms", "indication_ms")}  # fmt: skip
        out["ingest_rate_per_s"] = round(report["receipts"] / report["duration_s"], 1) if report["duration_s"] else None
        out["stored_during_storm"] = stored
        out["nothing_lost"] = bool(
            report["connected"] == point.gateways
            and report["missing_receipts"] == 0
            and report["publish_errors"] == 0
            and stored == report["presses_sent"] + probes
        )
    return out


async def storm_start(database: Path, newest: int, load: LoadProcess) -> float:
    """perf_counter() when the storm's first press is in the store (the fleet has connected)."""
    deadline = time.perf_counter() + load.settings.connect_timeout_s + 30
    loop = asyncio.get_running_loop()
    while time.perf_counter() < deadline and load.alive():
        if await loop.run_in_executor(None, newest_event_rowid, database) > newest:
            return time.perf_counter()
        await asyncio.sleep(0.02)
    raise TimeoutError(f"the storm did not begin ({load.error or 'no press stored'})")


def quiet_costs(rig: Rig) -> dict[str, Any]:
    """After the storm: the board snapshot, statistics for a year, the audit page, the supervisor's round."""
    pid = rig.dashboard.process.pid  # type: ignore[union-attr]
    measures: dict[str, Callable[[], Any]] = {
        "snapshot_ms": lambda: percentiles([board_snapshot(rig)[0] for _ in range(REPEATS)]),
        "snapshot_bytes": lambda: board_snapshot(rig)[1],
        "alarms_api_ms": lambda: timed_ms(lambda: rig.operator.get_json("/api/alarms")),
        "stats_year_ms": lambda: timed_ms(lambda: fetch_ok(rig.operator, last_year()), 3),
        "audit_page_ms": lambda: timed_ms(lambda: fetch_ok(rig.admin, "/admin/audit"), 3),
        "supervisor_round_quiet_ms": lambda: supervisor_rounds(rig.admin),
        "dashboard_rss_end_mib": lambda: round(memory_kib(pid)["VmRSS"] / 1024, 1),
    }
    out: dict[str, Any] = {}
    for name, measure in measures.items():
        try:  # one failing measure (a timeout) must not cost the point its others
            out[name] = measure()
        except Exception as exc:  # recorded in the point
            out[name] = None
            out.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
    return out


def board_snapshot(rig: Rig) -> tuple[float, int]:
    """A board opening its stream: ms until its whole snapshot message has arrived, and the message's bytes."""
    return asyncio.run(
        asyncio.wait_for(read_snapshot(rig.dashboard.port, rig.operator.cookie_header()), HTTP_TIMEOUT_S)
    )


async def read_snapshot(port: int, cookie: str) -> tuple[float, int]:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=SNAPSHOT_LIMIT)
    try:
        headers = f"Host: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\nCookie: {cookie}\r\n"
        writer.write(f"GET /api/stream HTTP/1.1\r\n{headers}\r\n".encode())
        await writer.drain()
        size, event = 0, ""
        while line := await reader.readline():
            if line.startswith(b"event: "):
                event = line[7:].strip().decode()
            elif event == "snapshot" and line.startswith(b"data: "):
                size += len(line) - 7  # one data line per message, its "data: " and newline aside
            elif event == "snapshot" and line in (b"\n", b"\r\n"):
                return (time.perf_counter() - started) * 1000, size
        raise RuntimeError("the stream ended before its snapshot")
    finally:
        writer.close()


# --- targets and output ---------------------------------------------------------------------------------------


def p99(point: dict[str, Any], key: str) -> float | None:
    value = point.get(key)
    return value["p99"] if isinstance(value, dict) else None


def meets(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Each of issue 11's targets at the point it is set for: True, False, or None when not measured."""

    def at(gateways: int, streams: int, events: int) -> dict[str, Any] | None:
        wanted = (gateways, streams, events)
        return next((p for p in points if (p["gateways"], p["streams"], p["stored_events"]) == wanted), None)

    def check(point: dict[str, Any] | None, value: Callable[[dict[str, Any]], float | None], limit: float) -> Any:
        if point is None or "error" in point:
            return None
        measured = value(point)
        return None if measured is None else measured <= limit

    fleet, streams, history = at(1_000, 1, 10_000), at(10, 1_000, 10_000), at(10, 1, 1_000_000)
    return {
        "1000_gateways_nothing_lost": None if fleet is None or "error" in fleet else fleet.get("nothing_lost"),
        "1000_gateways_press_to_board_p99": check(fleet, lambda p: p99(p, "press_to_board_ms"), 250),
        # the median of the point's rounds (every 5 s, the storm's among them); the slowest is reported beside it
        "1000_gateways_supervisor_round": check(fleet, lambda p: (p.get("supervisor_round_ms") or {}).get("p50"), 100),
        "1000_gateways_snapshot": check(fleet, lambda p: p99(p, "snapshot_ms"), 50),
        "1000_gateways_rss": check(fleet, lambda p: p.get("dashboard_rss_mib"), 400),
        "1000_streams_acknowledge_p99": check(streams, lambda p: p99(p, "acknowledge_ms"), 50),
        "1000_streams_healthz_p99": check(streams, lambda p: p99(p, "healthz_ms"), 20),
        "1000_streams_press_to_every_stream_p99": check(streams, lambda p: p99(p, "press_to_every_stream_ms"), 100),
        # the usual view (the year's months stored) and the first after a start (every month computed)
        "1m_events_stats_year": check(history, lambda p: (p.get("stats_year_ms") or {}).get("p50"), 500),
        "1m_events_stats_year_first_view": check(history, lambda p: (p.get("stats_year_ms") or {}).get("max"), 500),
        "1m_events_audit_page": check(history, lambda p: p99(p, "audit_page_ms"), 100),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the smallest point only (a smoke test)")
    parser.add_argument("--point", metavar="G,S,E", help="one point only: gateways, open streams, stored events")
    args = parser.parse_args()
    raise_fd_limit(8192)  # before the broker and the dashboard start: they inherit it (1,000 sockets each)
    points = []
    for point in all_points(args.quick, args.point):
        print(f"scale: {point.name} ...", file=sys.stderr, flush=True)
        points.append(measure_point(point))
        print(f"scale: {point.name}: {points[-1]['point_s']} s {points[-1].get('error', '')}", file=sys.stderr)
    curves = {name: [[p.gateways, p.streams, p.events] for p in curve] for name, curve in CURVES.items()}
    print(json.dumps({
        "bench": "scale",
        "points": points,
        "curves": curves,
        "storm": {"presses_per_gateway_per_s": STORM_RATE_PER_GATEWAY, "seconds": STORM_S, "health_s": 30},
        "targets": TARGETS,
        "meets": meets(points),
        "machine": machine(),
        "seconds": round(sum(p["point_s"] for p in points), 1),
        "median_point_s": statistics.median(p["point_s"] for p in points),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
