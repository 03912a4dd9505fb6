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
import multiprocessing
import os
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import common
from common import DashboardProcess, connected_client, disconnect, machine, percentiles, scratch_folder
from footprint import memory_kib
from ingest import wait_connected
from latency import mqtt_hop

from firmware_bridge.payloads import ButtonInfo, Inventory, Kind, Site, Source
from firmware_bridge.timeutil import format_epoch
from firmware_bridge.topics import Topics
from sim.mosquitto import Mosquitto
from sim.webclient import DashboardClient

GW = "gw-bench"
OPERATOR = ("operator", "bench-operator-password", "fire_operator")
WAIT_S = 30.0


@dataclass
class Board:
    """One open stream: when each button's alarm first arrived on it, and that alarm's id."""

    arrivals: dict[str, float] = field(default_factory=dict)
    alarm_ids: dict[str, int] = field(default_factory=dict)
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


class BoardProtocol(asyncio.Protocol):
    """One board's stream read as bytes arrive (an asyncio protocol: no task per board, no line reads).

    The client is the measuring instrument and shares the machine's cores with
    the dashboard: reading 1,000 streams line by line with a task each cost it
    more CPU than the dashboard spent writing them. An SSE message ends with a
    blank line; only alarm messages are decoded.
    """

    def __init__(self, request: bytes, board: Board, ready: AllReady) -> None:
        self.request = request
        self.board = board
        self.ready = ready
        self.buffer = b""
        self.answered = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        arrived = time.perf_counter()
        self.buffer += data
        if not self.answered:
            if b"\r\n" not in self.buffer:
                return
            status = self.buffer.split(b"\r\n", 1)[0]
            if b" 200 " not in status:
                self.fail(RuntimeError(f"stream refused: {status!r}"))
                return
            self.answered = True
        *messages, self.buffer = self.buffer.split(b"\n\n")
        for message in messages:
            self.message(message, arrived)

    def message(self, message: bytes, arrived: float) -> None:
        board = self.board
        if not board.ready and b"event: snapshot" in message:
            board.ready = True
            self.ready.one_more()
        at = message.find(b"event: alarm\ndata: ")
        if at >= 0:
            alarm = json.loads(message[at + len(b"event: alarm\ndata: ") :])
            board.arrivals.setdefault(alarm["button"], arrived)
            board.alarm_ids.setdefault(alarm["button"], alarm["id"])

    def fail(self, exc: Exception) -> None:
        if not self.closed.done():
            self.closed.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def open_board(host: str, port: int, cookie: str, board: Board, ready: AllReady) -> None:
    """Reads one board's stream until it ends (or this task is cancelled)."""
    headers = f"Host: {host}:{port}\r\nAccept: text/event-stream\r\nCookie: {cookie}\r\n"
    request = f"GET /api/stream HTTP/1.1\r\n{headers}\r\n".encode()
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(lambda: BoardProtocol(request, board, ready), host, port)
    try:
        await protocol.closed
    finally:
        transport.close()


def inventory(presses: int, gw: str = GW) -> tuple[str, bytes]:
    """The retained inventory of gateway ``gw``: fire buttons ``bench-0`` … ``bench-{presses - 1}``."""
    site = Site("Bench", -4.35, 122.37)
    buttons = tuple(ButtonInfo(f"bench-{n}", Kind.FIRE, Source.GPIO, site, None) for n in range(presses))
    return Topics().inventory(gw), Inventory(gw, format_epoch(time.time()), buttons).encode()


def press_event(n: int, gw: str = GW) -> tuple[str, bytes]:
    """A press of button ``bench-{n}`` of gateway ``gw``, as its event topic and payload."""
    return common.press_event(gw, f"bench-{n}")


def poll_health(url: str, stop: threading.Event, samples: list[float]) -> None:
    """``GET /healthz`` every 50 ms until ``stop``, appending each round trip in ms to ``samples``."""
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


@dataclass
class OpenBoards:
    """Open streams, their reading tasks and how long opening them all took."""

    boards: list[Board]
    tasks: list[asyncio.Task[None]]
    open_s: float

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()


async def open_boards(port: int, cookie: str, count: int, timeout: float = 120) -> OpenBoards:
    """``count`` board streams signed in with ``cookie``, each past its snapshot (TimeoutError after ``timeout``)."""
    boards = [Board() for _ in range(count)]
    ready = AllReady(count)
    opened = time.perf_counter()
    tasks = [asyncio.create_task(open_board("127.0.0.1", port, cookie, board, ready)) for board in boards]
    try:
        await asyncio.wait_for(ready.event.wait(), timeout)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    return OpenBoards(boards, tasks, time.perf_counter() - opened)


@dataclass
class PressTimes:
    """What a series of presses measured: press -> every stream (and -> the first), acknowledge round trips."""

    delivery: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    acknowledge: list[float] = field(default_factory=list)
    missing: int = 0


async def press_and_acknowledge(
    pub: object,
    boards: list[Board],
    operator: DashboardClient,
    prober: Prober,
    n: int,
    times: PressTimes,
    gw: str = GW,
) -> None:
    """Press ``bench-{n}``; wait (up to WAIT_S) until every board has its alarm; acknowledge it; add the times."""
    loop = asyncio.get_running_loop()
    button = f"bench-{n}"
    topic, payload = press_event(n, gw)
    sent = time.perf_counter()
    pub.publish(topic, payload, qos=1)  # type: ignore[attr-defined]
    deadline = sent + WAIT_S
    while not all(button in board.arrivals for board in boards) and time.perf_counter() < deadline:
        await asyncio.sleep(0.005)
    got = [board.arrivals[button] - sent for board in boards if button in board.arrivals]
    times.missing += len(boards) - len(got)
    times.delivery += [seconds * 1000 for seconds in got]
    if got:
        times.first.append(min(got) * 1000)
    # the id the boards show, as an operator clicks it; asked for only if no board has it (a press lost)
    shown = next((board.alarm_ids[button] for board in boards if button in board.alarm_ids), None)
    alarm_id = shown if shown is not None else await loop.run_in_executor(None, open_alarm_of, operator, button)
    times.acknowledge.append(await loop.run_in_executor(None, prober.acknowledge, alarm_id))


def probe_in_child(url: str, account: tuple[str, str], requests: Connection) -> None:
    """The prober's body: ``/healthz`` every 50 ms in a thread; an acknowledge whenever asked, each timed (ms)."""
    operator = DashboardClient(url, timeout=30)
    operator.login(*account)
    stop, samples = threading.Event(), []
    poller = threading.Thread(target=poll_health, args=(url, stop, samples), daemon=True)
    poller.start()
    requests.send("ready")
    while (request := requests.recv()) != "stop":
        started = time.perf_counter()
        operator.post_json(f"/api/alarms/{request}/acknowledge", {"note": "bench"})
        requests.send((time.perf_counter() - started) * 1000)
    stop.set()
    poller.join(10)
    requests.send(samples)


class Prober:
    """An operator's acknowledges and a monitor's ``/healthz`` polls, from a process of their own.

    In the boards' reading process they would wait for its GIL behind the
    reading of a thousand streams, and measure the client instead of the
    dashboard. ``samples``: the health polls' round trips (ms), once closed.
    """

    def __init__(self, url: str, account: tuple[str, str]) -> None:
        self.samples: list[float] = []
        self._requests, child_end = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=probe_in_child, args=(url, account, child_end), name="bench-prober", daemon=True
        )

    def __enter__(self) -> Prober:
        self._process.start()
        if not self._requests.poll(60) or self._requests.recv() != "ready":
            raise RuntimeError("the prober did not start")
        return self

    def acknowledge(self, alarm_id: int) -> float:
        """Acknowledge alarm ``alarm_id`` as the operator; the round trip in ms."""
        self._requests.send(alarm_id)
        if not self._requests.poll(60):
            raise TimeoutError("no answer to an acknowledge within 60 s")
        return float(self._requests.recv())

    def __exit__(self, *_: object) -> None:
        self._requests.send("stop")
        if self._requests.poll(30):
            self.samples = self._requests.recv()
        self._process.join(10)


async def measure(
    args: argparse.Namespace, dashboard: DashboardProcess, operator: DashboardClient, pub: object, hop: list[float]
) -> dict[str, object]:
    opened = await open_boards(dashboard.port, operator.cookie_header(), args.streams)
    boards = opened.boards
    rss_open = memory_kib(dashboard.process.pid)  # type: ignore[union-attr]
    times = PressTimes()
    pid = dashboard.process.pid  # type: ignore[union-attr]
    cpu_before, own_before = cpu_seconds(pid), time.process_time()
    with Prober(dashboard.url, OPERATOR[:2]) as prober:
        for n in range(args.presses):
            await press_and_acknowledge(pub, boards, operator, prober, n, times)
            await asyncio.sleep(args.gap_s)
    dashboard_cpu, own_cpu = cpu_seconds(pid) - cpu_before, time.process_time() - own_before
    health = prober.samples
    delivery, acknowledge, missing = times.delivery, times.acknowledge, times.missing
    rss_end = memory_kib(dashboard.process.pid)  # type: ignore[union-attr]
    opened.close()
    disconnect(pub)  # type: ignore[arg-type]
    return {
        "bench": "streams",
        "streams": args.streams,
        "presses": args.presses,
        "open_all_s": round(opened.open_s, 3),
        "press_to_every_stream_ms": percentiles(delivery) if delivery else None,
        "streams_missing_a_press": missing,
        "acknowledge_ms": percentiles(acknowledge),
        "healthz_ms": percentiles(health),
        "mqtt_hop_ms": percentiles(hop),
        # CPU per press and its acknowledge (two broadcasts, ~20 polls): what the figures above
        # cost, less sensitive than latencies to what else the machine runs.
        "dashboard_cpu_ms_per_press": round(dashboard_cpu * 1000 / args.presses, 2),
        "boards_client_cpu_ms_per_press": round(own_cpu * 1000 / args.presses, 2),
        "load_average_1m": os.getloadavg()[0],
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


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
