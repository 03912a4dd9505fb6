#!/usr/bin/env python3
"""Dashboard ingest throughput: events persisted per second, next to the broker's raw QoS 1 rate.

    .venv/bin/python bench/ingest.py [--events 20000]

A publisher floods the broker with valid press events from 20 gateways and
500 buttons (so alarms are opened and joined); the dashboard runs as its own
process. The rate is events committed to the dashboard's store divided by the
time from the first publish to the last commit. The floor is the same number
of QoS 1 messages from one paho client to another on the same broker.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.request

from common import DashboardProcess, connected_client, disconnect, machine, press_event, scratch_folder, subscriber

from firmware_bridge.payloads import ButtonInfo, Inventory, Kind, Site, Source
from firmware_bridge.timeutil import format_epoch
from firmware_bridge.topics import Topics
from sim.mosquitto import Mosquitto

GATEWAYS = 20
BUTTONS = 500


def raw_rate(port: int, count: int) -> float:
    received = threading.Event()
    seen = [0]

    def on_message(*_: object) -> None:
        seen[0] += 1
        if seen[0] == count:
            received.set()

    sub = subscriber(port, "bench-raw-sub", "bench/raw", on_message)
    pub = connected_client(port, "bench-raw-pub", max_inflight=1000)
    payload = b"x" * 300
    start = time.perf_counter()
    for _ in range(count):
        pub.publish("bench/raw", payload, qos=1)
    if not received.wait(120):
        raise RuntimeError(f"raw rate: only {seen[0]} of {count} arrived")
    elapsed = time.perf_counter() - start
    disconnect(pub, sub)
    return count / elapsed


def events(count: int) -> list[tuple[str, bytes]]:
    start = int(time.time() * 1000)
    return [
        press_event(f"gw-bench-{n % GATEWAYS}", f"bench-{n % BUTTONS}", millis=start + n) for n in range(count)
    ]


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    args = parser.parse_args()
    batch = events(args.events)
    with scratch_folder() as workdir:
        broker = Mosquitto(workdir / "mosquitto").start()
        dashboard = DashboardProcess(workdir, broker.port)
        try:
            floor = raw_rate(broker.port, args.events)
            dashboard.start()
            wait_connected(dashboard.url, 30)
            pub = connected_client(broker.port, "bench-gateways", max_inflight=1000)
            for topic, payload in inventories():
                pub.publish(topic, payload, qos=1, retain=True)
            deadline = time.monotonic() + 30
            while dashboard.count_events("buttons") < BUTTONS:
                if time.monotonic() > deadline:
                    raise RuntimeError("the dashboard did not store the inventories")
                time.sleep(0.01)  # polling another process's database
            start = time.perf_counter()
            for topic, payload in batch:
                pub.publish(topic, payload, qos=1)
            elapsed = dashboard.stored_by(args.events, 300) - start
            disconnect(pub)
        finally:
            dashboard.stop()
            broker.stop()
    rate = args.events / elapsed
    print(
        json.dumps(
            {
                "bench": "ingest",
                "events": args.events,
                "gateways": GATEWAYS,
                "buttons": BUTTONS,
                "seconds": round(elapsed, 3),
                "events_per_s": round(rate),
                "raw_mqtt_qos1_per_s": round(floor),
                "ratio_to_raw": round(rate / floor, 3),
                "target_events_per_s": 3000,
                "meets_target": rate >= 3000,
                "store": "SQLite WAL, synchronous=FULL, commit before PUBACK",
                "machine": machine(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
