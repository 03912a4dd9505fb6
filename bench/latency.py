#!/usr/bin/env python3
"""Press -> board latency, next to the raw MQTT hop on the same broker, in one JSON line.

    .venv/bin/python bench/latency.py [--presses 300] [--idle-gap-ms 100]

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
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from common import (
    DashboardProcess,
    bench_button,
    connected_client,
    disconnect,
    gateway_config_file,
    machine,
    percentiles,
    scratch_folder,
    subscriber,
)
from gpiozero.pins.mock import MockFactory

from gateway.app import Gateway
from gateway.config import GatewayConfig, load_config
from sim.mosquitto import Mosquitto
from sim.webclient import DashboardClient

BUTTONS = 4

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


def durable_floor(workdir: Path, port: int, count: int, gap_s: float = 0.0) -> list[float]:
    """Outbox commit -> QoS 1 publish -> on_message -> a dashboard-style commit, one at a time (milliseconds)."""
    from dashboard.db import connect
    from gateway.outbox import Outbox

    store = connect(workdir / f"floor-{gap_s}.sqlite")
    store.execute("CREATE TABLE IF NOT EXISTS floor (id TEXT PRIMARY KEY, payload BLOB NOT NULL)")
    stored = threading.Event()
    finished = [0.0]

    def on_message(client: object, userdata: object, message) -> None:
        store.execute("INSERT INTO floor (id, payload) VALUES (?, ?)", (message.payload[:26], message.payload))
        finished[0] = time.perf_counter()
        stored.set()

    sub = subscriber(port, "bench-floor-sub", "bench/floor", on_message)
    pub = connected_client(port, "bench-floor-pub")
    with Outbox(workdir / f"floor-outbox-{gap_s}.sqlite") as outbox:

        def send(n: int) -> None:
            payload = f"{n:026d}".encode() + b"x" * 200
            outbox.put(f"F{n}", "bench/floor", payload)
            pub.publish("bench/floor", payload, qos=1)

        samples = round_trips(count, gap_s, send, stored, finished)
    disconnect(pub, sub)
    store.close()
    return samples


def gateway_config(workdir: Path, mqtt_port: int) -> GatewayConfig:
    buttons = [
        bench_button(f"bench-{n}", "fire", 5 + n, f"Bench site {n}", led_pin=20 + n, bounce_s=0) for n in range(BUTTONS)
    ]
    return load_config(gateway_config_file(workdir, "gw-bench", mqtt_port, buttons))


def press_to_board(
    gateway: Gateway, factory: MockFactory, client: DashboardClient, count: int, warmup: int, gap_s: float
):
    samples: list[float] = []
    indicated = threading.Condition()
    applied = [0]

    def on_pattern(button: str, pattern) -> None:
        if str(pattern) == "received":
            with indicated:
                applied[0] += 1
                indicated.notify_all()

    gateway.add_listener(on_pattern)
    expected: dict[str, int] = {}
    with client.stream() as stream:
        snapshot = stream.wait_for(lambda e: e.event == "snapshot", 10).json()
        for alarm in snapshot["alarms"]:
            expected[alarm["button"]] = alarm["press_count"]
        for i in range(warmup + count):
            n = i % BUTTONS
            button = f"bench-{n}"
            target = expected.get(button, 0) + 1
            pin = factory.pin(5 + n)
            before = applied[0]
            start = time.perf_counter()
            pin.drive_low()
            event = stream.wait_for(
                lambda e, b=button, t=target: (
                    e.event == "alarm" and (d := e.json())["button"] == b and d["press_count"] == t
                ),
                10,
            )
            pin.drive_high()
            expected[button] = target
            if i >= warmup:
                samples.append((event.arrived - start) * 1000)
            with indicated:  # let the downlink settle before the next press
                indicated.wait_for(lambda b=before: applied[0] > b, 5)
            if gap_s:
                time.sleep(gap_s)  # idle between presses, as a real site is (cold caches, idle disk)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=300, help="presses per mode")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--idle-gap-ms", type=float, default=100.0, help="idle time before each press, idle mode")
    args = parser.parse_args()
    modes = {"back_to_back": 0.0, "idle": args.idle_gap_ms / 1000}
    results: dict[str, dict] = {}

    with scratch_folder() as workdir:
        broker = Mosquitto(workdir / "mosquitto").start()
        dashboard = None
        gateway = None
        try:
            dashboard = DashboardProcess(workdir, broker.port, user=("bench", "bench-password-1", "fire_operator"))
            dashboard.start()
            client = DashboardClient(dashboard.url)
            client.login("bench", "bench-password-1")
            factory = MockFactory()
            gateway = Gateway(gateway_config(workdir, broker.port), pin_factory=factory).start()
            if not gateway.link.connected.wait(10):
                raise RuntimeError("gateway did not connect")
            for mode, gap in modes.items():
                board = press_to_board(gateway, factory, client, args.presses, args.warmup, gap)
                hop = mqtt_hop(broker.port, args.presses + args.warmup, gap)[args.warmup :]
                floor = durable_floor(workdir, broker.port, args.presses + args.warmup, gap)[args.warmup :]
                disk = fsync_cost(workdir, min(args.presses, 100), gap)
                board_p, hop_p, floor_p = percentiles(board), percentiles(hop), percentiles(floor)
                results[mode] = {
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
        finally:
            if gateway is not None:
                gateway.close()
            if dashboard is not None:
                dashboard.stop()
            broker.stop()

    result = {
        "bench": "latency",
        "presses_per_mode": args.presses,
        **results,
        "target_ms": {"p50": 2.0, "p99": 5.0},
        "target_floor_ratio_p50": FLOOR_RATIO,
        "path": "gpio press -> outbox commit (fsync) -> mosquitto -> dashboard store commit (fsync) -> SSE",
        "machine": machine(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
