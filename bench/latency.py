#!/usr/bin/env python3
"""Press -> board latency, next to the raw MQTT hop on the same broker, in one JSON line.

    .venv/bin/python bench/latency.py [--presses 300] [--idle-gap-ms 100] [--store sqlite|postgresql] [--dashboards N]
    .venv/bin/python bench/latency.py --all     # SQLite x1, PostgreSQL x1, PostgreSQL x2, one line

Starts Mosquitto with the project's config, the dashboard as its own process
(``siaga-dashboard serve``), and a gateway in this process on gpiozero's mock
pins. For each press it measures from ``pin.drive_low()`` to the moment the
alarm update arrives on the board's live stream (Server-Sent Events over
HTTP), with the gateway's outbox commit and the dashboard's store commit
(both fsync'd) on the path. It then measures the floors on the same broker:
the raw MQTT hop (a QoS 1 publish to a subscriber's ``on_message``) and the
durable floor, the least any design with both commits on the path can do:
one outbox commit, the hop, then one commit in a store opened as the
dashboard opens its own (WAL, ``synchronous=FULL``), one after the other.
The target is a press -> board p50 within 1.5 x the durable floor's.

Two modes, both reported: presses back to back (the next one as soon as the
previous one's indication is back), and presses after an idle gap, as real
presses come. An idle machine is slower to wake and an idle disk slower to
fsync; the line also reports one outbox commit in each mode, measured in the
same run, to show how much of the path is the disk.

``--store postgresql``: the dashboard stores in a fresh schema on the local
PostgreSQL server (``sim.stores``), and the durable floor's second commit is
a PostgreSQL one (an autocommit INSERT; the first stays the gateway's SQLite
outbox, as on the real path). ``--dashboards 2`` (PostgreSQL only): two
dashboard processes on that store, a board open on each. Both ingest every
press; the one that stores it tells its own boards, and the other process's
boards hear it through the relay (NOTIFY, then LISTEN). Which process stored
each press is read from their diagnostics after it, so each press gives one
sample on the storing process's board and one on the other's (press ->
store -> relay -> board). The relay floor: the durable floor, then a
``pg_notify`` from another connection (its own commit) heard by a third
connection that LISTENs.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from common import (
    DashboardProcess,
    bench_button,
    connected_client,
    disconnect,
    gateway_config_file,
    load_average,
    machine,
    percentiles,
    scratch_folder,
    subscriber,
)
from gpiozero.pins.mock import MockFactory

from gateway.app import Gateway
from gateway.config import GatewayConfig, load_config
from sim.mosquitto import Mosquitto
from sim.sse import SSEClient
from sim.stores import drop_made, postgresql_store_at
from sim.webclient import DashboardClient

BUTTONS = 4
#: Signs in to the board and reads the diagnostics (which process stored a press), on every process.
ADMIN = ("bench-admin", "bench-password-1", "admin")
#: Where a press may be waited for: on a busy machine a relayed update can take a while.
WAIT_S = 10.0

#: The press -> board p50 may be at most this many times the durable floor's (issue 11).
FLOOR_RATIO = 1.5


def fsync_cost(workdir: Path, count: int, gap_s: float) -> list[float]:
    """One outbox commit (SQLite WAL, synchronous=FULL), in milliseconds."""
    from gateway.outbox import Outbox

    samples = []
    with Outbox(workdir / f"fsync-{gap_s}.sqlite") as outbox:
        for n in range(count):
            start = time.perf_counter()
            outbox.put(f"E{n}", "t", b"x" * 300)
            samples.append((time.perf_counter() - start) * 1000)
            if gap_s:
                time.sleep(gap_s)
    return samples


def mqtt_hop(port: int, count: int, gap_s: float = 0.0) -> list[float]:
    """QoS 1 publish -> on_message at a subscriber, one message at a time (milliseconds)."""
    received = threading.Event()
    arrival = [0.0]

    def on_message(*_: object) -> None:
        arrival[0] = time.perf_counter()
        received.set()

    sub = subscriber(port, "bench-hop-sub", "bench/hop", on_message)
    pub = connected_client(port, "bench-hop-pub")
    payload = b'{"v":1,"id":"01J0000000000000000000000","gw":"gw-bench","button":"b","kind":"fire"}' * 2
    samples = round_trips(count, gap_s, lambda _n: pub.publish("bench/hop", payload, qos=1), received, arrival)
    disconnect(pub, sub)
    return samples


def round_trips(
    count: int, gap_s: float, send: Callable[[int], object], arrived: threading.Event, arrival: list[float]
) -> list[float]:
    """``send(n)`` one at a time, each until ``arrived`` (``arrival[0]`` its perf_counter), in milliseconds."""
    samples = []
    for n in range(count):
        arrived.clear()
        start = time.perf_counter()
        send(n)
        if not arrived.wait(5):
            raise RuntimeError("a benchmark message was lost")
        samples.append((arrival[0] - start) * 1000)
        if gap_s:
            time.sleep(gap_s)
    return samples


@contextmanager
def floor_store(workdir: Path, store: str | None, gap_s: float) -> Iterator[Any]:
    """The dashboard-side connection of the durable floor: an SQLite file opened as the dashboard opens its
    own, or a PostgreSQL URL (autocommit: each INSERT its own durable commit)."""
    from dashboard.db import connect

    conn = connect(store if store is not None else workdir / f"floor-{gap_s}.sqlite")
    try:
        conn.execute("DROP TABLE IF EXISTS floor")
        conn.execute("CREATE TABLE floor (id TEXT PRIMARY KEY, payload TEXT NOT NULL)")
        yield conn
        conn.execute("DROP TABLE floor")
    finally:
        conn.close()


class Listener:
    """A connection that LISTENs on a channel; ``heard`` is set, and ``at[0]`` stamped, at each notification."""

    def __init__(self, url: str, channel: str) -> None:
        import psycopg

        self.heard = threading.Event()
        self.at = [0.0]
        self._stop = threading.Event()
        self._conn = psycopg.connect(url, autocommit=True)
        self._conn.execute(f"LISTEN {channel}")
        self._thread = threading.Thread(target=self._run, name="bench-listen", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for _notice in self._conn.notifies(timeout=0.2):
                self.at[0] = time.perf_counter()
                self.heard.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._conn.close()


def durable_floor(
    workdir: Path, port: int, count: int, gap_s: float = 0.0, store: str | None = None, relay: bool = False
) -> list[float]:
    """Outbox commit -> QoS 1 publish -> on_message -> a dashboard-style commit (SQLite, or the PostgreSQL
    ``store``), one at a time (milliseconds). ``relay``: then a ``pg_notify`` on another connection, until a
    third connection hears it (what a board on another dashboard process waits for)."""
    import psycopg

    from gateway.outbox import Outbox

    stored = threading.Event()
    finished = [0.0]
    with ExitStack() as stack:
        conn = stack.enter_context(floor_store(workdir, store, gap_s))
        notifier = listener = None
        if relay:
            assert store is not None
            notifier = stack.enter_context(psycopg.connect(store, autocommit=True))
            listener = Listener(store, "bench_floor")
            stack.callback(listener.close)

        def on_message(client: object, userdata: object, message) -> None:
            text = message.payload.decode()
            conn.execute("INSERT INTO floor (id, payload) VALUES (?, ?)", (text[:26], text))
            if notifier is not None:
                notifier.execute("SELECT pg_notify('bench_floor', %s)", (text[:26],))
                return  # finished when the listener hears it
            finished[0] = time.perf_counter()
            stored.set()

        sub = subscriber(port, "bench-floor-sub", "bench/floor", on_message)
        pub = connected_client(port, "bench-floor-pub")
        outbox = stack.enter_context(Outbox(workdir / f"floor-outbox-{gap_s}-{relay}.sqlite"))

        def send(n: int) -> None:
            payload = f"{n:026d}".encode() + b"x" * 200
            outbox.put(f"F{n}", "bench/floor", payload)
            pub.publish("bench/floor", payload, qos=1)

        if listener is not None:
            samples = round_trips(count, gap_s, send, listener.heard, listener.at)
        else:
            samples = round_trips(count, gap_s, send, stored, finished)
        disconnect(pub, sub)
    return samples


def postgresql_commit_cost(url: str, count: int, gap_s: float) -> list[float]:
    """One single-row autocommit INSERT on the PostgreSQL server (its WAL flush), in milliseconds."""
    import psycopg

    samples = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS commit_probe")
        conn.execute("CREATE TABLE commit_probe (n INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        for n in range(count):
            start = time.perf_counter()
            conn.execute("INSERT INTO commit_probe (n, payload) VALUES (%s, %s)", (n, "x" * 300))
            samples.append((time.perf_counter() - start) * 1000)
            if gap_s:
                time.sleep(gap_s)
        conn.execute("DROP TABLE commit_probe")
    return samples


def gateway_config(workdir: Path, mqtt_port: int) -> GatewayConfig:
    buttons = [
        bench_button(f"bench-{n}", "fire", 5 + n, f"Bench site {n}", led_pin=20 + n, bounce_s=0) for n in range(BUTTONS)
    ]
    return load_config(gateway_config_file(workdir, "gw-bench", mqtt_port, buttons))


def press_to_board(
    gateway: Gateway, factory: MockFactory, client: DashboardClient, count: int, warmup: int, gap_s: float
) -> list[float]:
    """Press -> alarm update on ``client``'s board, one press at a time (milliseconds)."""
    with client.stream() as stream:
        samples, _ = press_to_boards(gateway, factory, [stream], count, warmup, gap_s)
    return [arrivals[0] for arrivals in samples]


def press_to_boards(
    gateway: Gateway,
    factory: MockFactory,
    streams: list[SSEClient],
    count: int,
    warmup: int,
    gap_s: float,
    after_press: Callable[[], int] | None = None,
) -> tuple[list[list[float]], list[int]]:
    """Press -> alarm update on each of ``streams``, one press at a time: per press (after the warm-up) the
    milliseconds to each stream, and what ``after_press()`` (called once every board has it) said of it."""
    samples: list[list[float]] = []
    tags: list[int] = []
    indicated = threading.Condition()
    applied = [0]

    def on_pattern(button: str, pattern) -> None:
        if str(pattern) == "received":
            with indicated:
                applied[0] += 1
                indicated.notify_all()

    gateway.add_listener(on_pattern)
    expected: dict[str, int] = {}
    snapshots = [stream.wait_for(lambda e: e.event == "snapshot", WAIT_S).json() for stream in streams]
    for alarm in snapshots[0]["alarms"]:
        expected[alarm["button"]] = alarm["press_count"]
    for i in range(warmup + count):
        n = i % BUTTONS
        button = f"bench-{n}"
        target = expected.get(button, 0) + 1
        pin = factory.pin(5 + n)
        before = applied[0]
        start = time.perf_counter()
        pin.drive_low()
        arrivals = [
            stream.wait_for(
                lambda e, b=button, t=target: (
                    e.event == "alarm" and (d := e.json())["button"] == b and d["press_count"] == t
                ),
                WAIT_S,
            ).arrived
            for stream in streams
        ]
        pin.drive_high()
        expected[button] = target
        tag = after_press() if after_press is not None else 0
        if i >= warmup:
            samples.append([(arrived - start) * 1000 for arrived in arrivals])
            tags.append(tag)
        with indicated:  # let the downlink settle before the next press
            indicated.wait_for(lambda b=before: applied[0] > b, 5)
        if gap_s:
            time.sleep(gap_s)  # idle between presses, as a real site is (cold caches, idle disk)
    return samples, tags


def stored_counts(clients: list[DashboardClient]) -> list[int]:
    """Fire events each dashboard process has stored itself (not found a duplicate), from its diagnostics."""
    return [int(client.get_json("/api/diagnostics")["counters"].get("events_stored.fire", 0)) for client in clients]


def storer(clients: list[DashboardClient]) -> Callable[[], int]:
    """``after_press``: the index of the process that stored the last press (its count went up by one)."""
    last = stored_counts(clients)

    def which() -> int:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            now = stored_counts(clients)
            grown = [n for n, (a, b) in enumerate(zip(now, last, strict=True)) if a > b]
            if sum(now) - sum(last) == 1 and len(grown) == 1:
                last[:] = now
                return grown[0]
            if sum(now) - sum(last) > 1:
                raise RuntimeError(f"a press was stored more than once: {last} -> {now}")
            time.sleep(0.002)  # the counter is bumped just after the boards are told: polling other processes
        raise RuntimeError("no dashboard counted the press as stored")

    return which


def split_by_storer(samples: list[list[float]], tags: list[int]) -> tuple[list[float], list[float]]:
    """(on the storing process's board, on the other's): one of each per press, with two processes."""
    own = [arrivals[tag] for arrivals, tag in zip(samples, tags, strict=True)]
    other = [arrivals[1 - tag] for arrivals, tag in zip(samples, tags, strict=True)]
    return own, other


def ratios(board: dict[str, float], floor: dict[str, float]) -> dict[str, float]:
    return {"p50": round(board["p50"] / floor["p50"], 2), "p99": round(board["p99"] / floor["p99"], 2)}


def measure_mode(
    workdir: Path, port: int, args: argparse.Namespace, gap: float, store: str | None, boards: dict[str, list[float]]
) -> dict[str, object]:
    """The floors of one mode, measured right after its presses, beside them."""
    total = args.presses + args.warmup
    hop = mqtt_hop(port, total, gap)[args.warmup :]
    floor = durable_floor(workdir, port, total, gap, store)[args.warmup :]
    disk = fsync_cost(workdir, min(args.presses, 100), gap)
    board_p, hop_p, floor_p = percentiles(boards["own"]), percentiles(hop), percentiles(floor)
    result: dict[str, object] = {
        "gap_ms": gap * 1000,
        "press_to_board_ms": board_p,
        "durable_floor_ms": floor_p,
        "floor_ratio_p50": round(board_p["p50"] / floor_p["p50"], 2),
        "floor_ratio_p99": round(board_p["p99"] / floor_p["p99"], 2),
        "mqtt_hop_ms": hop_p,
        "ratio_p50": round(board_p["p50"] / hop_p["p50"], 2),
        "ratio_p99": round(board_p["p99"] / hop_p["p99"], 2),
        "one_commit_ms": {"p50": percentiles(disk)["p50"], "p95": percentiles(disk)["p95"]},
        "meets_target": board_p["p50"] <= 2.0 and board_p["p99"] <= 5.0,
        "meets_floor_ratio": board_p["p50"] <= FLOOR_RATIO * floor_p["p50"],
    }
    if store is not None:
        pg = percentiles(postgresql_commit_cost(store, min(args.presses, 100), gap))
        result["one_pg_commit_ms"] = {"p50": pg["p50"], "p95": pg["p95"]}
    if "other" in boards:
        other_p = percentiles(boards["other"])
        relay_floor = percentiles(durable_floor(workdir, port, total, gap, store, relay=True)[args.warmup :])
        result.update(
            {
                "press_to_other_board_ms": other_p,
                "relay_floor_ms": relay_floor,
                "other_board_relay_floor_ratio": ratios(other_p, relay_floor),
                "relay_cost_p50_ms": round(other_p["p50"] - board_p["p50"], 3),
                "stored_by_dashboard": boards["stored_by"],
            }
        )
    return result


def start_dashboards(workdir: Path, broker_port: int, store: str | None, count: int) -> list[DashboardProcess]:
    """``count`` dashboard processes on one store (SQLite when ``store`` is None), each its own MQTT session."""
    user = ADMIN if count > 1 else ("bench", "bench-password-1", "fire_operator")
    dashboards = []
    for n in range(count):
        dashboards.append(
            DashboardProcess(
                workdir,
                broker_port,
                user=user if n == 0 else None,
                database=store,
                client_id="bench-dashboard" if n == 0 else f"bench-dashboard-{n + 1}",
                name="dashboard" if n == 0 else f"dashboard-{n + 1}",
            )
        )
        dashboards[-1].start()
    return dashboards


def signed_in(dashboards: list[DashboardProcess]) -> list[DashboardClient]:
    user = ADMIN if len(dashboards) > 1 else ("bench", "bench-password-1")
    clients = []
    for dashboard in dashboards:
        clients.append(DashboardClient(dashboard.url))
        clients[-1].login(*user[:2])
    return clients


def board_samples(
    gateway: Gateway, factory: MockFactory, clients: list[DashboardClient], args: argparse.Namespace, gap: float
) -> dict[str, list[float]]:
    """``own``: press -> the storing process's board; with two processes also ``other`` (through the relay)
    and ``stored_by`` (presses each process stored)."""
    if len(clients) == 1:
        return {"own": press_to_board(gateway, factory, clients[0], args.presses, args.warmup, gap)}
    with ExitStack() as stack:
        streams = [stack.enter_context(client.stream()) for client in clients]
        samples, tags = press_to_boards(
            gateway, factory, streams, args.presses, args.warmup, gap, after_press=storer(clients)
        )
    own, other = split_by_storer(samples, tags)
    return {"own": own, "other": other, "stored_by": [tags.count(n) for n in range(len(clients))]}


PATHS = {
    "sqlite": "gpio press -> outbox commit (fsync) -> mosquitto -> dashboard store commit (SQLite, fsync) -> SSE",
    "postgresql": "gpio press -> outbox commit (fsync) -> mosquitto -> dashboard store commit (PostgreSQL) -> SSE",
}
RELAY_PATH = "... -> dashboard A store commit -> pg_notify (a commit) -> LISTEN on dashboard B -> B's SSE"


#: What ``--all`` runs, one configuration after the other: (store, dashboards), the single-node figures first.
ALL_RUNS = (("sqlite", 1), ("postgresql", 1), ("postgresql", 2))


def run(workdir: Path, args: argparse.Namespace, store_kind: str, count: int) -> dict[str, object]:
    """One configuration (its own broker, store and dashboards): both modes, each beside its floors."""
    workdir.mkdir(parents=True)
    modes = {"back_to_back": 0.0, "idle": args.idle_gap_ms / 1000}
    results: dict[str, object] = {"store": store_kind, "dashboards": count, "load_average_before": load_average()}
    store = postgresql_store_at(workdir / "store") if store_kind == "postgresql" else None
    broker = Mosquitto(workdir / "mosquitto").start()
    dashboards: list[DashboardProcess] = []
    gateway = None
    try:
        dashboards = start_dashboards(workdir, broker.port, store, count)
        clients = signed_in(dashboards)
        factory = MockFactory()
        gateway = Gateway(gateway_config(workdir, broker.port), pin_factory=factory).start()
        if not gateway.link.connected.wait(10):
            raise RuntimeError("gateway did not connect")
        for mode, gap in modes.items():
            boards = board_samples(gateway, factory, clients, args, gap)
            results[mode] = measure_mode(workdir, broker.port, args, gap, store, boards)
    finally:
        if gateway is not None:
            gateway.close()
        for dashboard in dashboards:
            dashboard.stop()
        broker.stop()
    results["path"] = PATHS[store_kind]
    if count > 1:
        results["relay_path"] = RELAY_PATH
    results["load_average_after"] = load_average()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=300, help="presses per mode")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--idle-gap-ms", type=float, default=100.0, help="idle time before each press, idle mode")
    parser.add_argument("--store", choices=sorted(PATHS), default="sqlite")
    parser.add_argument("--dashboards", type=int, choices=(1, 2), default=1, help="processes on one store")
    parser.add_argument("--all", action="store_true", help="SQLite x1, PostgreSQL x1 and x2 in one run")
    args = parser.parse_args()
    if args.dashboards > 1 and args.store != "postgresql":
        parser.error("two dashboards share a PostgreSQL store: give --store postgresql")
    plan = ALL_RUNS if args.all else ((args.store, args.dashboards),)
    runs = []
    try:
        with scratch_folder() as workdir:
            for store_kind, count in plan:
                runs.append(run(workdir / f"{store_kind}-x{count}", args, store_kind, count))
    finally:
        drop_made()
    header = {"bench": "latency", "presses_per_mode": args.presses}
    footer = {"target_ms": {"p50": 2.0, "p99": 5.0}, "target_floor_ratio_p50": FLOOR_RATIO, "machine": machine()}
    line = {**header, "runs": runs, **footer} if args.all else {**header, **runs[0], **footer}
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
