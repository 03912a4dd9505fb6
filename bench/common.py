"""Shared pieces of the benchmarks: percentiles, a dashboard process, a counting store reader, a gateway config."""

from __future__ import annotations

import contextlib
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from firmware_bridge.broker import BrokerSettings, make_client
from firmware_bridge.ids import make_ulid
from firmware_bridge.payloads import Event, EventType, Kind, Source
from firmware_bridge.timeutil import format_epoch
from firmware_bridge.topics import Topics
from sim.gatewayconf import site, toml_text, write_gateway_config
from sim.mosquitto import free_port, wait_for_port
from sim.processes import stop_process


@contextlib.contextmanager
def scratch_folder() -> Iterator[Path]:
    """A temporary folder for one benchmark run's broker, dashboard and gateway, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="siaga-bench-") as tmp:
        yield Path(tmp)


def is_postgresql(store: object) -> bool:
    """Whether a store names a PostgreSQL server (a URL) rather than an SQLite file."""
    return isinstance(store, str) and store.startswith(("postgresql://", "postgres://"))


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages at the time of a run: the machine is shared."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> str:
    """The machine a result was measured on, for the JSON line."""
    return f"{platform.machine()}, {os.cpu_count()} cpu, Python {platform.python_version()}"


def bench_button(button_id: str, kind: str, pin: int, site_name: str, **keys: object) -> dict[str, object]:
    """A wired button at the benchmarks' one place (``keys``: led_pin, bounce_s, ...)."""
    return {"id": button_id, "kind": kind, "pin": pin, **keys, "site": site(site_name, -4.35, 122.37)}


def gateway_config_file(workdir: Path, gw_id: str, mqtt_port: int, buttons: list[dict[str, object]]) -> Path:
    """A gateway.toml in ``workdir`` for the local broker; the gateway keeps its data in ``workdir/gw``."""
    return write_gateway_config(
        workdir / f"{gw_id}.toml", gw_id, data_dir=workdir / "gw", mqtt={"port": mqtt_port}, buttons=buttons
    )


def press_event(gw: str, button: str, *, millis: int | None = None) -> tuple[str, bytes]:
    """A fire press of ``button`` on ``gw`` as its event topic and payload (``millis``: its id's time)."""
    now = time.time()
    event = Event(
        id=make_ulid(int(now * 1000) if millis is None else millis, os.urandom(10)),
        gw=gw,
        button=button,
        kind=Kind.FIRE,
        type=EventType.PRESS,
        ts=format_epoch(now),
        src=Source.GPIO,
    )
    return Topics().event(gw), event.encode()


def connected_client(port: int, name: str, *, max_inflight: int = 100) -> mqtt.Client:
    """A paho client (as Siaga configures them) connected to the local broker, its loop running."""
    client = make_client(BrokerSettings(port=port, max_inflight=max_inflight), name, persistent=False)
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not connected.wait(10):
        raise RuntimeError(f"{name} could not connect to the broker")
    return client


def subscriber(port: int, name: str, topic: str, on_message: Callable[..., None]) -> mqtt.Client:
    """A connected client subscribed (QoS 1) to ``topic``."""
    client = connected_client(port, name)
    subscribed = threading.Event()
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    client.subscribe(topic, 1)
    if not subscribed.wait(10):
        raise RuntimeError(f"{name} could not subscribe")
    return client


def disconnect(*clients: mqtt.Client) -> None:
    for client in clients:
        client.disconnect()
        client.loop_stop()


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pick(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return {
        "p50": round(pick(50), 3),
        "p95": round(pick(95), 3),
        "p99": round(pick(99), 3),
        "max": round(ordered[-1], 3),
        "mean": round(statistics.fmean(ordered), 3),
    }


class DashboardProcess:
    """``siaga-dashboard serve`` as its own process, as in production."""

    def __init__(
        self,
        workdir: Path,
        mqtt_port: int,
        *,
        user: tuple[str, str, str] | None = None,
        sections: dict[str, dict[str, object]] | None = None,
        database: str | None = None,
        client_id: str = "bench-dashboard",
        name: str = "dashboard",
        port: int | None = None,
    ) -> None:
        """``sections``: more settings, by section (``{"board": {"streams_per_account": 1000}}``).

        ``database``: a PostgreSQL URL to store in (several processes may share one; give each its own
        ``client_id``, as the broker keeps one session per id, and ``name``, its folder, config and log in
        ``workdir``), else the SQLite file ``<workdir>/<name>/dashboard.sqlite``. ``port``: its HTTP port.
        """
        self.workdir = workdir
        self.name = name
        self.port = port if port is not None else free_port()
        self.client_id = client_id
        self.database: Path | str = database if database is not None else workdir / name / "dashboard.sqlite"
        self.config = workdir / f"{name}.toml"
        self.log = workdir / f"{name}.log"
        extra = sections or {}
        dashboard: dict[str, object] = {"data_dir": workdir / name, "port": self.port, "cookie_secure": False}
        if database is not None:
            dashboard["database"] = database
        mqtt = {"port": mqtt_port, "client_id": client_id}
        document = {
            **extra,
            "dashboard": {**dashboard, **extra.get("dashboard", {})},
            "mqtt": {**mqtt, **extra.get("mqtt", {})},
        }
        self.config.write_text(toml_text(document))
        self.command = [sys.executable, "-m", "dashboard", "--config", str(self.config), "--log-level", "WARNING"]
        self._reader: Any = None  # a PostgreSQL store's reading connection, kept: opening one costs milliseconds
        if user is not None:
            self.create_user(*user)
        self.process: subprocess.Popen[bytes] | None = None

    def create_user(self, name: str, password: str, role: str) -> None:
        """An account, made with ``siaga-dashboard create-user`` before the dashboard starts."""
        subprocess.run(
            [*self.command, "create-user", name, "--role", role, "--password-stdin"],
            input=(password + "\n").encode(),
            check=True,
            capture_output=True,
            timeout=60,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> DashboardProcess:
        log = open(self.log, "ab")
        self.process = subprocess.Popen([*self.command, "serve"], stdout=log, stderr=log)
        log.close()
        if not wait_for_port("127.0.0.1", self.port, 30):
            raise RuntimeError("dashboard did not start: " + self.log.read_text())
        return self

    def stop(self) -> None:
        stop_process(self.process, 30)
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @property
    def on_postgresql(self) -> bool:
        return is_postgresql(self.database)

    def count_events(self, table: str = "events") -> int:
        """Rows of ``table`` (events by default) committed to the dashboard's store, read from another connection."""
        query = f"SELECT COUNT(*) FROM {table}"  # noqa: S608 - our own names
        if self.on_postgresql:
            return self._count_postgresql(query)
        try:
            conn = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=5)
        except sqlite3.OperationalError:
            return 0
        try:
            return int(conn.execute(query).fetchone()[0])
        except sqlite3.OperationalError:
            return 0
        finally:
            conn.close()

    def _count_postgresql(self, query: str) -> int:
        import psycopg

        try:
            if self._reader is None or self._reader.closed:
                self._reader = psycopg.connect(str(self.database), autocommit=True, connect_timeout=5)
            return int(self._reader.execute(query).fetchone()[0])
        except psycopg.errors.UndefinedTable:
            return 0  # the dashboard has not made its schema yet
        except psycopg.OperationalError:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
            return 0

    def stored_by(self, count: int, timeout: float) -> float:
        """perf_counter() when the store first holds ``count`` events; RuntimeError if it does not in time."""
        stored_at = self.wait_for_events(count, timeout)
        if stored_at is None:
            raise RuntimeError(f"the dashboard stored only {self.count_events()} of {count} events")
        return stored_at

    def wait_for_events(self, count: int, timeout: float) -> float | None:
        """perf_counter() when the store first holds ``count`` events, or None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count_events() >= count:
                return time.perf_counter()
            time.sleep(0.005)  # polling another process's database
        return None
