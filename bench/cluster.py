#!/usr/bin/env python3
"""Press -> board latency through a 3-node nats-server cluster, beside the same through one Mosquitto, in one JSON line.

    .venv/bin/python bench/cluster.py [--presses 200] [--idle-gap-ms 100]

The quiet path (issue 12's target: p99 <= 20 ms through the cluster): a
gateway in this process on gpiozero's mock pins, the dashboard as its own
process (``siaga-dashboard serve``), presses one at a time after an idle gap,
each timed from ``pin.drive_low()`` to its alarm update on the board's live
stream (bench/latency.py's method). On the cluster the gateway is connected
to node 1 and the dashboard to node 2, so every press crosses a route and is
stored in JetStream (3 replicas) on the way. The floors, measured in the
same run: the same presses through one Mosquitto, and the raw QoS 1 hop
(publish -> on_message) on each broker (on the cluster from node 1 to node 2).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

from common import DashboardProcess, disconnect, machine, percentiles, scratch_folder
from gpiozero.pins.mock import MockFactory
from latency import gateway_config, press_to_board, round_trips

from firmware_bridge.broker import BrokerSettings, make_client
from gateway.app import Gateway
from sim.mosquitto import Mosquitto
from sim.natscluster import NatsCluster
from sim.webclient import DashboardClient

#: Issue 12: press -> board p99 through the cluster when quiet.
TARGET_P99_MS = 20.0
USER = ("bench", "bench-password-1", "fire_operator")


def client_on(port: int, name: str, on_message: object = None, topic: str | None = None) -> object:
    """A connected paho client (Siaga's settings) on a broker port, subscribed (QoS 1) to ``topic`` if given."""
    client = make_client(BrokerSettings(port=port), name, persistent=False)
    ready = threading.Event()
    client.on_connect = lambda *a: ready.set()
    client.on_subscribe = lambda *a: ready.set()
    if on_message is not None:
        client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not ready.wait(30):
        raise RuntimeError(f"{name} could not connect to port {port}")
    if topic is not None:
        ready.clear()
        client.subscribe(topic, 1)
        if not ready.wait(30):
            raise RuntimeError(f"{name} could not subscribe")
    return client


def hop(pub_port: int, sub_port: int, count: int, gap_s: float) -> list[float]:
    """QoS 1 publish on one broker port -> on_message on another (or the same), one at a time, in ms."""
    arrived = threading.Event()
    arrival = [0.0]

    def on_message(*_: object) -> None:
        arrival[0] = time.perf_counter()
        arrived.set()

    sub = client_on(sub_port, f"bench-hop-sub-{sub_port}", on_message, "bench/hop")
    pub = client_on(pub_port, f"bench-hop-pub-{pub_port}")
    payload = b'{"v":1,"id":"01J0000000000000000000000","gw":"gw-bench","button":"b","kind":"fire"}' * 2
    samples = round_trips(count, gap_s, lambda _n: pub.publish("bench/hop", payload, qos=1), arrived, arrival)
    disconnect(pub, sub)
    return samples


def presses(
    workdir: Path, gateway_port: int, dashboard_port: int, count: int, warmup: int, gap_s: float
) -> list[float]:
    """Press -> board samples with the gateway on one broker port and the dashboard on another (or the same)."""
    workdir.mkdir(parents=True, exist_ok=True)
    dashboard = DashboardProcess(workdir, dashboard_port, user=USER)
    gateway = None
    try:
        dashboard.start()
        client = DashboardClient(dashboard.url)
        client.login(*USER[:2])
        factory = MockFactory()
        gateway = Gateway(gateway_config(workdir, gateway_port), pin_factory=factory).start()
        if not gateway.link.connected.wait(30):
            raise RuntimeError("gateway did not connect")
        return press_to_board(gateway, factory, client, count, warmup, gap_s)
    finally:
        if gateway is not None:
            gateway.close()
        dashboard.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--idle-gap-ms", type=float, default=100.0, help="idle time before each press")
    args = parser.parse_args()
    gap = args.idle_gap_ms / 1000
    total = args.presses + args.warmup

    with scratch_folder() as workdir:
        with Mosquitto(workdir / "mosquitto") as broker:
            mosquitto_board = presses(
                workdir / "on-mosquitto", broker.port, broker.port, args.presses, args.warmup, gap
            )
            mosquitto_hop = hop(broker.port, broker.port, total, gap)[args.warmup :]
        with NatsCluster(workdir / "nats") as cluster:
            first, second = cluster.nodes[0].mqtt_port, cluster.nodes[1].mqtt_port
            cluster_board = presses(workdir / "on-cluster", first, second, args.presses, args.warmup, gap)
            cluster_hop = hop(first, second, total, gap)[args.warmup :]

    board = percentiles(cluster_board)
    result = {
        "bench": "cluster",
        "presses": args.presses,
        "gap_ms": args.idle_gap_ms,
        "cluster_press_to_board_ms": board,
        "mosquitto_press_to_board_ms": percentiles(mosquitto_board),
        "cluster_hop_ms": percentiles(cluster_hop),
        "mosquitto_hop_ms": percentiles(mosquitto_hop),
        "target_p99_ms": TARGET_P99_MS,
        "meets_target": board["p99"] <= TARGET_P99_MS,
        "path": "gpio press -> outbox commit -> nats node 1 (JetStream R3) -> node 2 -> dashboard commit -> SSE",
        "machine": machine(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
