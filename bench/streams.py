#!/usr/bin/env python3
"""Open boards at scale: N live streams on one dashboard while an operator acknowledges and monitoring polls.

    .venv/bin/python bench/streams.py [--streams 1000] [--presses 20]

The dashboard runs as its own process (``siaga-dashboard serve``). One
asyncio client opens N board streams for one fire operator account. Then
presses arrive one at a time as a gateway's MQTT events; for each, the time
from the publish until every stream has the new alarm is recorded (over all
streams and presses), and the operator acknowledges it (the HTTP round trip
is recorded). Meanwhile ``/healthz`` is polled every 50 ms. Beside them: the
raw MQTT hop of the same broker in the same run, and the dashboard's RSS.

Targets (issue 11): with 1,000 open streams, acknowledge p99 <= 50 ms,
``/healthz`` p99 <= 20 ms, every stream has a press within 100 ms p99. The
client shares the machine's cores with the dashboard and the broker, so the
figures are an upper bound of what the dashboard alone costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field

from common import DashboardProcess, connected_client, disconnect, machine, percentiles, scratch_folder
from footprint import memory_kib
from ingest import wait_connected
from latency import mqtt_hop

from firmware_bridge.ids import make_ulid
from firmware_bridge.payloads import ButtonInfo, Event, EventType, Inventory, Kind, Site, Source
from firmware_bridge.timeutil import format_epoch
from firmware_bridge.topics import Topics
from sim.mosquitto import Mosquitto
from sim.webclient import DashboardClient

GW = "gw-bench"
OPERATOR = ("operator", "bench-operator-password", "fire_operator")
WAIT_S = 30.0


@dataclass
class Board:
    """One open stream: when each button's alarm first arrived on it."""

    arrivals: dict[str, float] = field(default_factory=dict)
    ready: bool = False


@dataclass
class AllReady:
    """Set once every board has had its snapshot."""

    boards: int
    count: int = 0
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def one_more(self) -> None:
        self.count += 1
        if self.count >= self.boards:
            self.event.set()


async def open_board(host: str, port: int, cookie: str, board: Board, ready: AllReady) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    headers = f"Host: {host}:{port}\r\nAccept: text/event-stream\r\nCookie: {cookie}\r\n"
    writer.write(f"GET /api/stream HTTP/1.1\r\n{headers}\r\n".encode())
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"stream refused: {status!r}")
    event = ""
    try:
        while line := await reader.readline():  # SSE lines; the chunk-size lines between them are ignored
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if text.startswith("event: "):
                event = text[7:]
                if event == "snapshot" and not board.ready:
                    board.ready = True
                    ready.one_more()
            elif text.startswith("data: ") and event == "alarm":
                alarm = json.loads(text[6:])
                board.arrivals.setdefault(alarm["button"], time.perf_counter())
    finally:
        writer.close()


def inventory(presses: int) -> tuple[str, bytes]:
    site = Site("Bench", -4.35, 122.37)
    buttons = tuple(ButtonInfo(f"bench-{n}", Kind.FIRE, Source.GPIO, site, None) for n in range(presses))
    return Topics().inventory(GW), Inventory(GW, format_epoch(time.time()), buttons).encode()


def press_event(n: int) -> tuple[str, bytes]:
    now = time.time()
    event = Event(
        id=make_ulid(int(now * 1000), os.urandom(10)),
        gw=GW,
        button=f"bench-{n}",
        kind=Kind.FIRE,
        type=EventType.PRESS,
        ts=format_epoch(now),
        src=Source.GPIO,
    )
    return Topics().event(GW), event.encode()


def poll_health(url: str, stop: threading.Event, samples: list[float]) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        with urllib.request.urlopen(url + "/healthz", timeout=10) as response:
            response.read()
        samples.append((time.perf_counter() - start) * 1000)
        stop.wait(0.05)


def run(args: argparse.Namespace) -> dict[str, object]:
    with scratch_folder() as workdir:
        broker = Mosquitto(workdir / "mosquitto").start()
        sections = {
            "board": {"streams_per_account": args.streams},
            "dashboard": {"max_streams": args.streams + 100, "threads": 32},
        }
        dashboard = DashboardProcess(workdir, broker.port, user=OPERATOR, sections=sections)
        try:
            hop = mqtt_hop(broker.port, 200)
            dashboard.start()
            wait_connected(dashboard.url, 30)
            pub = connected_client(broker.port, "bench-gateway")
            topic, payload = inventory(args.presses)
            pub.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
            operator = DashboardClient(dashboard.url, timeout=30)
            operator.login(*OPERATOR[:2])
            return asyncio.run(measure(args, dashboard, operator, pub, hop))
        finally:
            dashboard.stop()
            broker.stop()


async def measure(
    args: argparse.Namespace, dashboard: DashboardProcess, operator: DashboardClient, pub: object, hop: list[float]
) -> dict[str, object]:
    boards = [Board() for _ in range(args.streams)]
    ready = AllReady(args.streams)
    cookie = operator.cookie_header()
    opened = time.perf_counter()
    tasks = [asyncio.create_task(open_board("127.0.0.1", dashboard.port, cookie, board, ready)) for board in boards]
    await asyncio.wait_for(ready.event.wait(), 120)
    open_s = time.perf_counter() - opened
    rss_open = memory_kib(dashboard.process.pid)  # type: ignore[union-attr]
    stop = threading.Event()
    health: list[float] = []
    poller = threading.Thread(target=poll_health, args=(dashboard.url, stop, health), daemon=True)
    poller.start()
    delivery: list[float] = []
    acknowledge: list[float] = []
    missing = 0
    loop = asyncio.get_running_loop()
    for n in range(args.presses):
        button = f"bench-{n}"
        topic, payload = press_event(n)
        sent = time.perf_counter()
        pub.publish(topic, payload, qos=1)  # type: ignore[attr-defined]
        deadline = sent + WAIT_S
        while not all(button in board.arrivals for board in boards) and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
        got = [board.arrivals[button] - sent for board in boards if button in board.arrivals]
        missing += len(boards) - len(got)
        delivery += [seconds * 1000 for seconds in got]
        alarm_id = await loop.run_in_executor(None, open_alarm_of, operator, button)
        started = time.perf_counter()
        await loop.run_in_executor(None, operator.post_json, f"/api/alarms/{alarm_id}/acknowledge", {"note": "bench"})
        acknowledge.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(args.gap_s)
    stop.set()
    poller.join(10)
    rss_end = memory_kib(dashboard.process.pid)  # type: ignore[union-attr]
    for task in tasks:
        task.cancel()
    disconnect(pub)  # type: ignore[arg-type]
    return {
        "bench": "streams",
        "streams": args.streams,
        "presses": args.presses,
        "open_all_s": round(open_s, 3),
        "press_to_every_stream_ms": percentiles(delivery) if delivery else None,
        "streams_missing_a_press": missing,
        "acknowledge_ms": percentiles(acknowledge),
        "healthz_ms": percentiles(health),
        "mqtt_hop_ms": percentiles(hop),
        "dashboard_rss_mib": {
            "streams_open": round(rss_open["VmRSS"] / 1024, 1),
            "end": round(rss_end["VmRSS"] / 1024, 1),
        },
        "targets_ms": {"acknowledge_p99": 50, "healthz_p99": 20, "press_to_every_stream_p99": 100},
        "meets_target": bool(
            delivery
            and not missing
            and percentiles(acknowledge)["p99"] <= 50
            and percentiles(health)["p99"] <= 20
            and percentiles(delivery)["p99"] <= 100
        ),
        "machine": machine(),
    }


def open_alarm_of(operator: DashboardClient, button: str) -> int:
    alarms = operator.get_json("/api/alarms")["alarms"]
    return next(alarm["id"] for alarm in alarms if alarm["button"] == button)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--presses", type=int, default=20)
    parser.add_argument("--gap-s", type=float, default=0.2, help="pause between presses")
    args = parser.parse_args()
    print(json.dumps(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
