#!/usr/bin/env python3
"""Dashboard ingest throughput: events persisted per second, next to the broker's raw QoS 1 rate.

    .venv/bin/python bench/ingest.py [--events 20000] [--store sqlite|postgresql] [--dashboards N]
    .venv/bin/python bench/ingest.py --all     # SQLite x1, PostgreSQL x1, PostgreSQL x2, one line
    .venv/bin/python bench/ingest.py --timeseries [--store ...]   # the same run without, then with [influxdb]

A publisher floods the broker with valid press events from 20 gateways and
500 buttons (so alarms are opened and joined); each dashboard runs as its own
process. The rate is distinct events committed to the store divided by the
time from the first publish to the last commit. With several dashboards on
one PostgreSQL store each ingests every message (each has its own MQTT
session); whichever takes the store's write lock first stores an event and
the others find it a duplicate. The line also says when every dashboard had
taken every message (stored or duplicate), read from their diagnostics.

Floors, measured in the same run: the same number of QoS 1 messages from one
paho client to as many subscribers as there are dashboards on the same broker
(the raw rate); on PostgreSQL, single-row INSERT + COMMIT transactions from
one connection (autocommit: one round trip and one WAL flush per row), and
the same rows written as the ingest writes them (the store's connection, a
transaction of 500 taken with its write lock, one INSERT statement per row).

With ``--timeseries`` the configuration runs twice, without and then with
time series written to a VictoriaMetrics (InfluxDB 2 write API) on the same
machine: the issue's bar is that ingest keeps 90 % of its rate with them on.
The second run also says when the last point had left the store's queue.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

from common import (
    DashboardProcess,
    connected_client,
    disconnect,
    load_average,
    machine,
    press_event,
    scratch_folder,
    subscriber,
)

from firmware_bridge.payloads import ButtonInfo, Inventory, Kind, Site, Source
from firmware_bridge.timeutil import format_epoch
from firmware_bridge.topics import Topics
from sim.mosquitto import Mosquitto
from sim.stores import drop_made, postgresql_store_at
from sim.victoria import VictoriaMetrics
from sim.webclient import DashboardClient

GATEWAYS = 20
BUTTONS = 500
TARGET_EVENTS_PER_S = 3000
#: The ingest's largest batch (``dashboard.ingest.mqtt``: ``batch_max``), for the batched PostgreSQL floor.
BATCH = 500
#: Single-row commits are slow (a WAL flush each): this many is enough for a steady rate.
SINGLE_ROW_COMMITS = 2000
ADMIN = ("bench-admin", "bench-password-1", "admin")
#: What ``--all`` runs: (store, dashboards), the single-node figures first.
ALL_RUNS = (("sqlite", 1), ("postgresql", 1), ("postgresql", 2))


def raw_rate(port: int, count: int, subscribers: int = 1) -> float:
    """QoS 1 messages per second from one publisher until every one of ``subscribers`` has them all."""
    finished = threading.Barrier(subscribers + 1)
    seen = [0] * subscribers

    def counter(index: int):
        def on_message(*_: object) -> None:
            seen[index] += 1
            if seen[index] == count:
                finished.wait()

        return on_message

    subs = [subscriber(port, f"bench-raw-sub-{n}", "bench/raw", counter(n)) for n in range(subscribers)]
    pub = connected_client(port, "bench-raw-pub", max_inflight=1000)
    payload = b"x" * 300
    start = time.perf_counter()
    for _ in range(count):
        pub.publish("bench/raw", payload, qos=1)
    try:
        finished.wait(120)
    except threading.BrokenBarrierError:
        raise RuntimeError(f"raw rate: only {seen} of {count} arrived") from None
    elapsed = time.perf_counter() - start
    disconnect(pub, *subs)
    return count / elapsed


def events(count: int) -> list[tuple[str, bytes]]:
    start = int(time.time() * 1000)
    return [press_event(f"gw-bench-{n % GATEWAYS}", f"bench-{n % BUTTONS}", millis=start + n) for n in range(count)]


def inventories() -> list[tuple[str, bytes]]:
    """Each gateway's buttons, so that presses take the normal path (a registered button of their kind)."""
    topics = Topics()
    now = format_epoch(time.time())
    site = Site("Bench", -4.35, 122.37)
    out = []
    for g in range(GATEWAYS):
        buttons = tuple(
            ButtonInfo(f"bench-{b}", Kind.FIRE, Source.GPIO, site, None) for b in range(g, BUTTONS, GATEWAYS)
        )
        out.append((topics.inventory(f"gw-bench-{g}"), Inventory(f"gw-bench-{g}", now, buttons).encode()))
    return out


def wait_connected(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                if json.load(response)["mqtt_connected"]:
                    return
        except OSError:
            pass
        time.sleep(0.05)  # polling another process
    raise RuntimeError("dashboard did not connect to the broker")


def _floor_table(conn: object) -> None:
    conn.execute("DROP TABLE IF EXISTS bench_floor")
    conn.execute("CREATE TABLE bench_floor (id TEXT PRIMARY KEY, gw TEXT NOT NULL, payload TEXT NOT NULL)")


def postgresql_single_row_rate(url: str, payloads: list[bytes]) -> float:
    """Rows per second as one autocommit INSERT each (a transaction and a WAL flush per row), one connection."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        _floor_table(conn)
        start = time.perf_counter()
        for n, payload in enumerate(payloads):
            conn.execute(
                "INSERT INTO bench_floor (id, gw, payload) VALUES (%s, %s, %s)", (f"{n:026d}", "gw", payload.decode())
            )
        return len(payloads) / (time.perf_counter() - start)


def postgresql_batched_rate(url: str, payloads: list[bytes]) -> float:
    """Rows per second written as the ingest writes: the store's connection, BATCH rows per write-locked
    transaction, one INSERT statement (one round trip) per row."""
    from dashboard.db import connect, transaction

    with connect(url) as conn:
        _floor_table(conn)
        start = time.perf_counter()
        for first in range(0, len(payloads), BATCH):
            with transaction(conn):
                for n in range(first, min(first + BATCH, len(payloads))):
                    conn.execute(
                        "INSERT INTO bench_floor (id, gw, payload) VALUES (?, ?, ?) ON CONFLICT(id) DO NOTHING",
                        (f"{n:026d}", "gw", payloads[n].decode()),
                    )
        elapsed = time.perf_counter() - start
        conn.execute("DROP TABLE bench_floor")
    return len(payloads) / elapsed


def taken(client: DashboardClient) -> tuple[int, int]:
    """(stored, duplicates) of fire events this dashboard process has taken, from its diagnostics."""
    counters = client.get_json("/api/diagnostics")["counters"]
    return counters.get("events_stored.fire", 0), counters.get("events_duplicate.fire", 0)


def all_taken(clients: list[DashboardClient], count: int, timeout: float) -> float | None:
    """perf_counter() once every dashboard has taken ``count`` events (stored or duplicate), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(sum(taken(client)) >= count for client in clients):
            return time.perf_counter()
        time.sleep(0.02)  # polling other processes
    return None


def queue_emptied(dashboard: DashboardProcess, timeout: float) -> float:
    """When the store's time-series queue was first seen empty after the ingest."""
    deadline = time.monotonic() + timeout
    while dashboard.count_events("timeseries_points") > 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the time-series points did not leave the store")
        time.sleep(0.02)  # polling another process's database
    return time.perf_counter()


def start_dashboards(
    workdir: Path, broker_port: int, database: str | None, count: int, sections: dict | None = None
) -> list[DashboardProcess]:
    """``count`` dashboard processes on one store (an admin account made in it before they start)."""
    dashboards = [
        DashboardProcess(
            workdir,
            broker_port,
            sections=sections,
            database=database,
            client_id=f"bench-dashboard-{n + 1}",
            name=f"dashboard-{n + 1}",
            user=ADMIN if n == 0 else None,
        )
        for n in range(count)
    ]
    for dashboard in dashboards:
        dashboard.start()
    for dashboard in dashboards:
        wait_connected(dashboard.url, 30)
    return dashboards


def run(workdir: Path, store: str, dashboards: int, count: int, *, series: bool = False) -> dict[str, object]:
    """One configuration on a broker and store of its own: the ingest rate beside the floors measured with it."""
    workdir.mkdir(parents=True)
    batch = events(count)
    database = postgresql_store_at(workdir / "store") if store == "postgresql" else None
    result: dict[str, object] = {"store": store, "dashboards": dashboards, "load_average_before": load_average()}
    broker = Mosquitto(workdir / "mosquitto").start()
    procs: list[DashboardProcess] = []
    victoria = VictoriaMetrics(workdir / "victoria").start() if series else None
    result["timeseries"] = series
    try:
        floor = raw_rate(broker.port, count, dashboards)
        if database is not None:
            payloads = [payload for _topic, payload in batch]
            result["pg_single_row_commits_per_s"] = round(
                postgresql_single_row_rate(database, payloads[:SINGLE_ROW_COMMITS])
            )
            result["pg_batched_rows_per_s"] = round(postgresql_batched_rate(database, payloads))
        sections = None if victoria is None else {"influxdb": {"url": victoria.url, "org": "siaga", "bucket": "siaga"}}
        procs = start_dashboards(workdir, broker.port, database, dashboards, sections)
        clients = []
        if dashboards > 1:
            for proc in procs:
                clients.append(DashboardClient(proc.url))
                clients[-1].login(*ADMIN[:2])
        pub = connected_client(broker.port, "bench-gateways", max_inflight=1000)
        for topic, payload in inventories():
            pub.publish(topic, payload, qos=1, retain=True)
        deadline = time.monotonic() + 30
        while procs[0].count_events("buttons") < BUTTONS:
            if time.monotonic() > deadline:
                raise RuntimeError("the dashboard did not store the inventories")
            time.sleep(0.01)  # polling another process's database
        start = time.perf_counter()
        for topic, payload in batch:
            pub.publish(topic, payload, qos=1)
        elapsed = procs[0].stored_by(count, 300) - start
        if victoria is not None:
            result["points_written_s"] = round(queue_emptied(procs[0], 300) - start, 3)
        if clients:
            done = all_taken(clients, count, 300)
            result["all_dashboards_took_all_s"] = None if done is None else round(done - start, 3)
            result["stored_duplicate_by_dashboard"] = [list(taken(client)) for client in clients]
        disconnect(pub)
    finally:
        for proc in procs:
            proc.stop()
        broker.stop()
        if victoria is not None:
            victoria.stop()
    rate = count / elapsed
    result.update(
        {
            "seconds": round(elapsed, 3),
            "events_per_s": round(rate),
            "raw_mqtt_qos1_per_s": round(floor),
            "raw_subscribers": dashboards,
            "ratio_to_raw": round(rate / floor, 3),
        }
    )
    if "pg_batched_rows_per_s" in result:
        result["ratio_to_pg_batched"] = round(rate / float(result["pg_batched_rows_per_s"]), 3)  # type: ignore[arg-type]
    result["meets_target"] = rate >= TARGET_EVENTS_PER_S
    result["load_average_after"] = load_average()
    return result


STORES = {
    "sqlite": "SQLite WAL, synchronous=FULL, commit before PUBACK",
    "postgresql": "PostgreSQL (synchronous_commit on, local server), commit before PUBACK",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--store", choices=sorted(STORES), default="sqlite")
    parser.add_argument("--dashboards", type=int, default=1, help="dashboard processes on one store")
    parser.add_argument("--all", action="store_true", help="SQLite x1, PostgreSQL x1 and x2 in one run")
    parser.add_argument("--timeseries", action="store_true", help="run without, then with [influxdb] on")
    parser.add_argument("--rounds", type=int, default=1, help="with --timeseries: pairs of runs, the median taken")
    args = parser.parse_args()
    if args.dashboards < 1:
        parser.error("--dashboards must be at least 1")
    if args.dashboards > 1 and args.store != "postgresql":
        parser.error("several dashboards share a PostgreSQL store: give --store postgresql")
    if args.timeseries and args.all:
        parser.error("--timeseries runs one configuration: give --store and --dashboards, not --all")
    plan = ALL_RUNS if args.all else ((args.store, args.dashboards),)
    runs = []
    try:
        with scratch_folder() as workdir:
            for store, dashboards in plan:
                for round_ in range(args.rounds if args.timeseries else 1):
                    folder = workdir / f"{store}-x{dashboards}-{round_}"
                    runs.append(run(folder, store, dashboards, args.events))
                    if args.timeseries:
                        runs.append(run(folder.with_name(folder.name + "-timeseries"), store, dashboards,
                                        args.events, series=True))  # fmt: skip
    finally:
        drop_made()
    header = {"bench": "ingest", "events": args.events, "gateways": GATEWAYS, "buttons": BUTTONS}
    footer = {
        "target_events_per_s": TARGET_EVENTS_PER_S,
        "stores": {store: STORES[store] for store, _n in plan},
        "machine": machine(),
    }
    if any(store == "postgresql" for store, _n in plan):
        footer["pg_floors"] = (
            f"single-row: autocommit INSERT, {SINGLE_ROW_COMMITS} rows, one connection; "
            f"batched: the store's connection, {BATCH} rows per write-locked transaction, one INSERT per row"
        )
    if args.timeseries:
        # Each pair ran back to back: the machine's mood changes less within a pair than between pairs.
        kept = statistics.median(
            float(on["events_per_s"]) / float(off["events_per_s"])  # type: ignore[arg-type]
            for off, on in zip(runs[::2], runs[1::2], strict=True)
        )
        line = {**header, "runs": runs, "timeseries_rate_kept": round(kept, 3), "meets_timeseries_bar": kept >= 0.9}
        line.update(footer)
    elif args.all:
        last = runs[-1]
        line = {**header, "runs": runs, "meets_target_postgresql_x2": last["meets_target"], **footer}
    else:
        line = {**header, **runs[0], **footer}
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
