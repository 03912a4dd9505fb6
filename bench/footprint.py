#!/usr/bin/env python3
"""Gateway footprint: time from exec to ready, and resident memory, of ``siaga-gateway``.

    .venv/bin/python bench/footprint.py [--runs 5]

Starts the real daemon as its own process (gpiozero mock pins, 8 buttons, a
Mosquitto with the project's config), measures from spawn to its "ready" line
and to its retained "online" status on the broker, and reads VmRSS and VmHWM
from /proc once it has been connected and idle for a second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import bench_button, gateway_config_file, machine, scratch_folder

from firmware_bridge.broker import BrokerSettings, make_client
from firmware_bridge.topics import Topics
from sim.mosquitto import Mosquitto


def config(workdir: Path, port: int) -> Path:
    buttons = [
        bench_button(f"fp-{n}", "fire" if n % 2 else "sapa", 4 + n, f"Site {n}", led_pin=16 + n) for n in range(8)
    ]
    return gateway_config_file(workdir, "gw-footprint", port, buttons)


def memory_kib(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def one_run(workdir: Path, broker: Mosquitto) -> dict[str, float]:
    online = []
    sub = make_client(BrokerSettings(port=broker.port), f"fp-probe-{time.monotonic_ns()}", persistent=False)
    sub.on_message = lambda c, u, m: online.append(time.perf_counter()) if b'"online"' in m.payload else None
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    sub.subscribe(Topics().status("gw-footprint"), 1)
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(config(workdir, broker.port)), "--log-level", "WARNING"],
        env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in process.stderr:  # type: ignore[union-attr]
            if "ready" in line:
                ready = time.perf_counter() - start
                break
        else:
            raise RuntimeError("gateway exited before it was ready")
        deadline = time.monotonic() + 10
        while not [t for t in online if t > start] and time.monotonic() < deadline:
            time.sleep(0.005)  # waiting for another process's MQTT message
        connected = min(t for t in online if t > start) - start
        time.sleep(1.0)  # idle, then read its memory
        memory = memory_kib(process.pid)
    finally:
        process.terminate()
        process.wait(10)
        sub.disconnect()
        sub.loop_stop()
    return {
        "ready_s": ready,
        "online_s": connected,
        "rss_mib": memory["VmRSS"] / 1024,
        "hwm_mib": memory["VmHWM"] / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with scratch_folder() as workdir:
        with Mosquitto(workdir / "mosquitto") as broker:
            runs = [one_run(workdir, broker) for _ in range(args.runs)]
    median = {key: round(statistics.median(run[key] for run in runs), 3) for key in runs[0]}
    worst = {key: round(max(run[key] for run in runs), 3) for key in runs[0]}
    print(
        json.dumps(
            {
                "bench": "gateway_footprint",
                "runs": args.runs,
                "median": median,
                "worst": worst,
                "target": {"rss_mib": 40, "ready_s": 2.0},
                "meets_target": worst["hwm_mib"] < 40 and worst["ready_s"] < 2.0,
                "machine": machine(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
