#!/usr/bin/env python3
"""Backlog drain: 10,000 events recorded while the broker is away, delivered after it returns.

    .venv/bin/python bench/drain.py [--events 10000]

A gateway (in this process, mock pins) records events through its normal
path (outbox commit) while the broker is stopped. The broker then starts; the
benchmark reports how long until the gateway's outbox is empty (every event
acknowledged by the broker) and until the dashboard (its own process) has
committed every one, measured from the moment the broker accepts connections.
That includes the gateway's reconnect wait (capped exponential backoff,
``reconnect_max_s`` = 2 s by default), reported separately.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import DashboardProcess, bench_button, gateway_config_file, machine, scratch_folder
from gpiozero.pins.mock import MockFactory

from gateway.app import Gateway
from gateway.config import GatewayConfig, load_config
from sim.mosquitto import Mosquitto


def gateway_config(workdir: Path, port: int) -> GatewayConfig:
    buttons = [bench_button(f"drain-{n}", "fire", 5 + n, "Drain site") for n in range(8)]
    return load_config(gateway_config_file(workdir, "gw-drain", port, buttons))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10000)
    args = parser.parse_args()
    with scratch_folder() as workdir:
        broker = Mosquitto(workdir / "mosquitto").start()
        dashboard = DashboardProcess(workdir, broker.port).start()
        gateway = Gateway(gateway_config(workdir, broker.port), pin_factory=MockFactory()).start()
        try:
            if not gateway.link.connected.wait(10):
                raise RuntimeError("gateway did not connect")
            broker.stop()  # a clean stop: the dashboard's session and queue are saved
            record_start = time.perf_counter()
            for n in range(args.events):
                gateway.record(gateway.config.buttons[n % len(gateway.config.buttons)])
            record_s = time.perf_counter() - record_start
            backlog = gateway.outbox.depth()
            broker.start()
            back = time.perf_counter()
            if not gateway.link.connected.wait(30):
                raise RuntimeError("gateway did not reconnect")
            reconnected = time.perf_counter() - back
            if not gateway.pump.wait_drained(120):
                raise RuntimeError(f"outbox still holds {gateway.outbox.depth()} events")
            outbox_empty = time.perf_counter() - back
            stored = dashboard.stored_by(args.events, 120) - back
        finally:
            gateway.close()
            dashboard.stop()
            broker.stop()
    print(
        json.dumps(
            {
                "bench": "drain",
                "events": args.events,
                "backlog_in_outbox": backlog,
                "record_events_per_s": round(args.events / record_s),
                "reconnected_s": round(reconnected, 3),
                "outbox_empty_s": round(outbox_empty, 3),
                "all_stored_on_dashboard_s": round(stored, 3),
                "target_s": 5.0,
                "meets_target": stored <= 5.0,
                "machine": machine(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
