#!/usr/bin/env python3
"""Chaos: the whole stack under a steady rate of presses while faults strike at random.

    .venv/bin/python bench/chaos.py [--duration 60] [--rate 20] [--gateways 2] [--seed N]

Runs the real broker (Mosquitto, the project's config, accounts and ACL), the
dashboard and each gateway as separate processes (``sim.stack``). Presses go
to random buttons of random gateways at ``--rate`` per second for
``--duration`` seconds. Meanwhile, one at a time with quiet gaps between, a
random fault strikes and is mended after a random 1-5 s: the broker, a
gateway or the dashboard killed with SIGKILL and restarted; a gateway's
network cut and restored; a gateway's disk filled and freed (when this runs
as root, which can mount a small tmpfs).

Afterwards it waits for everything to settle and prints one JSON line: events
pressed, accepted by a gateway (a press on a gateway that is dead at that
moment is not: a wired button cannot be heard by a dead gateway), stored,
duplicates, lost, alarms split or miscounted, and the press-to-store delay
(the dashboard's commit, just before the board is told) for presses made
while no fault was active ("quiet") and while one was or had just been mended
("faulted": up to RECOVERY_S after), worst and p50/p99. ``lost`` and ``duplicates`` must be 0.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from sim.stack import ReadOnlyDatabase, SmallDisk, Stack

#: Presses this soon after a fault was mended count as "faulted": they queue
#: behind the backlog and the reconnect backoff (up to 2 s) that it left.
RECOVERY_S = 5.0
#: The result's figures read from Stack.audit(): counts as they are (name in the result -> key in the audit)...
AUDIT_COUNTS = {
    "pressed": "pressed",
    "accepted": "accepted",
    "unanswered": "unanswered",
    "stored": "stored",
    "duplicates": "duplicate_rows",
}
#: ...and the lists of event ids or buttons by their length.
AUDIT_LISTS = {
    "lost": "lost",
    "without_alarm": "without_alarm",
    "split_alarms": "buttons_with_two_alarms",
    "miscounted_alarms": "alarms_miscounted",
}

#: A fault: (name, break it, mend it).
Fault = tuple[str, Callable[[], None], Callable[[], None]]


def faults_for(stack: Stack, rng: random.Random, disk: bool) -> list[Callable[[], Fault]]:
    def broker() -> Fault:
        return "broker_killed", stack.kill_broker, stack.start_broker

    def dashboard() -> Fault:
        return "dashboard_killed", stack.kill_dashboard, stack.start_dashboard

    def gateway() -> Fault:
        gw = rng.choice(stack.gws)
        return "gateway_killed", lambda: stack.kill_gateway(gw), lambda: stack.start_gateway(gw)

    def network() -> Fault:
        gw = rng.choice(stack.gws)
        return "network_cut", lambda: stack.cut_network(gw), lambda: stack.restore_network(gw)

    def disk_full() -> Fault:
        small = stack.disks[rng.choice(stack.gws).gw_id]
        return "disk_full", small.fill, small.free

    return [broker, dashboard, gateway, network] + ([disk_full] if disk else [])


class Chaos(threading.Thread):
    """Strikes one fault at a time until ``stop``; records when each was active."""

    def __init__(self, stack: Stack, rng: random.Random, disk: bool, stop: threading.Event) -> None:
        super().__init__(name="chaos", daemon=True)
        self.choices = faults_for(stack, rng, disk)
        self.rng = rng
        self.stop_event = stop
        self.windows: list[tuple[float, float]] = []  # wall-clock spans from break to mended
        self.struck: Counter[str] = Counter()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop_event.wait(self.rng.uniform(2.0, 5.0)):  # a quiet gap first
                name, strike, mend = self.rng.choice(self.choices)()
                began = time.time()
                strike()
                self.stop_event.wait(self.rng.uniform(1.0, 5.0))
                mend()
                self.windows.append((began, time.time()))
                self.struck[name] += 1
        except BaseException as exc:  # reported by main(): a fault that could not be mended
            self.error = exc

    def touched(self, moment: float) -> bool:
        """A fault was active at ``moment``, or mended less than RECOVERY_S before it."""
        return any(began <= moment <= ended + RECOVERY_S for began, ended in self.windows)


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def delay_figures(values: list[float]) -> dict[str, float | None]:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return {
        "count": len(values),
        "p50_ms": ms(percentile(values, 0.50)),
        "p99_ms": ms(percentile(values, 0.99)),
        "worst_ms": ms(max(values) if values else None),
    }


def press_at_rate(stack: Stack, rng: random.Random, rate: float, duration: float) -> None:
    interval = 1.0 / rate
    start = time.monotonic()
    n = 0
    while (now := time.monotonic()) - start < duration:
        due = start + n * interval
        if due > now:
            time.sleep(due - now)  # pacing the load generator itself
        gw = rng.choice(stack.gws)
        stack.press(gw, rng.choice(gw.buttons))
        n += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of presses (default 60)")
    parser.add_argument("--rate", type=float, default=20.0, help="presses per second (default 20)")
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None, help="the random faults' seed (default: random)")
    parser.add_argument("--workdir", default=None, help="keep the stack's files here (default: a temp folder)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    disk = SmallDisk.available() is None
    with tempfile.TemporaryDirectory(prefix="siaga-chaos-") as temp:
        workdir = Path(args.workdir or temp)
        with Stack(workdir, gateways=args.gateways, small_disk=disk) as stack:
            stop = threading.Event()
            chaos = Chaos(stack, rng, disk, stop)
            chaos.start()
            press_at_rate(stack, random.Random(seed + 1), args.rate, args.duration)
            stop.set()
            chaos.join(60)
            if chaos.error is not None:
                print(f"chaos: a fault could not be mended: {chaos.error!r}", file=sys.stderr)
            settled_from = time.monotonic()
            stored_all = stack.wait_stored(120)
            drained = stack.wait_gateways_drained(120)
            settle_s = time.monotonic() - settled_from
            audit = stack.audit()
            with ReadOnlyDatabase(stack.database) as db:
                received = dict(db.execute("SELECT id, received_at FROM events"))
    quiet, faulted = [], []
    for event_id, press in stack.accepted().items():
        if event_id in received:
            (faulted if chaos.touched(press.at) else quiet).append(received[event_id] - press.at)
    result = {
        "bench": "chaos",
        "seed": seed,
        "duration_s": args.duration,
        "rate_per_s": args.rate,
        "gateways": args.gateways,
        "faults": dict(chaos.struck),
        **{name: audit[key] for name, key in AUDIT_COUNTS.items()},
        **{name: len(audit[key]) for name, key in AUDIT_LISTS.items()},
        "settled_s": round(settle_s, 2),
        "settled": stored_all and drained,
        "delay_quiet": delay_figures(quiet),
        "delay_faulted": delay_figures(faulted),
    }
    print(json.dumps(result), flush=True)
    ok = result["lost"] == 0 and result["duplicates"] == 0 and result["settled"] and chaos.error is None
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
