"""The whole system as separate processes, for fault tests and the chaos benchmark.

A real Mosquitto (the project's configuration, accounts and ACL), the
dashboard (``siaga-dashboard``), and gateways (``siaga-sim gateway``: the
production gateway with its wired buttons on mock pins) that reach the broker
through a :class:`~sim.relay.TcpRelay` each, so the network between them can be
cut. Any process can be killed with SIGKILL and started again on the same
data; a gateway's data folder can sit on a small filesystem that a test fills.

The same stack can instead run its store on a PostgreSQL URL (``database``,
e.g. a :class:`~sim.pgserver.PgServer`), several dashboard processes on that
store (``dashboards``: distinct MQTT client ids and HTTP ports; they share the
jobs through dashboard.peers), and the broker as a :class:`~sim.natscluster.NatsCluster`
(``cluster``: that many nodes; every gateway and dashboard is given every
member's URL and fails over on its own, so there is no relay to cut).

The harness keeps the ground truth: every press whose gateway answered with
an event id (the event was committed there) must end up in the dashboard's
store exactly once, with its alarm. :meth:`Stack.audit` checks that against
the dashboard's database, whichever engine holds it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboard.defaults import MQTT_CLIENT_ID

from .gatewayconf import site, toml_text, write_gateway_config
from .mosquitto import Mosquitto, free_port, wait_for_port
from .natscluster import NatsCluster
from .processes import kill_process, stop_process
from .relay import TcpRelay

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A process of the stack did not start or answer."""


@dataclass
class Press:
    button: str
    at: float  # wall clock, like the dashboard's received_at
    event_id: str | None  # None: the gateway did not answer (dead, or killed mid-press)


@dataclass
class DashboardProcess:
    """One ``siaga-dashboard serve`` process of the stack: its folder, HTTP port and MQTT client id."""

    index: int
    folder: Path
    port: int
    client_id: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.folder / "dashboard.toml"

    @property
    def log_path(self) -> Path:
        return self.folder / "dashboard.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class GatewayProcess:
    gw_id: str
    config: Path
    data_dir: Path
    relay: TcpRelay | None  # None on a clustered broker: the gateway dials the members itself
    control_port: int
    buttons: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"


@dataclass
class SmallDisk:
    """A small tmpfs mounted at ``path`` (needs root): a disk that can be filled."""

    path: Path
    size: str = "16m"
    mounted: bool = False
    filler: Path | None = None

    @staticmethod
    def available() -> str | None:
        """None if a small disk can be mounted here, else why not."""
        if os.geteuid() != 0:
            return "mounting a small filesystem needs root"
        return None

    def mount(self) -> SmallDisk:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.path)], check=True)
        self.mounted = True
        return self

    def fill(self) -> None:
        """Write until the filesystem is full (ENOSPC), as a filling SD card does."""
        self._truncate_sqlite_journals()
        self.filler = self.path / "filler"
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for size in (65536, 512):  # big blocks, then the last few small ones
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError:
                    pass
        finally:
            os.close(fd)

    def _truncate_sqlite_journals(self) -> None:
        """Checkpoint and truncate every SQLite WAL on this disk first: a WAL reuses the space
        it already holds, so a disk filled behind a grown WAL may go unnoticed for hundreds of
        commits, and the fault would test nothing."""
        for database in self.path.glob("*.sqlite"):
            with contextlib.closing(sqlite3.connect(database, timeout=10)) as db:
                for _attempt in range(20):
                    busy, _pages, _done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                    if not busy:
                        break

    def free(self) -> None:
        if self.filler is not None:
            self.filler.unlink(missing_ok=True)
            self.filler = None

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False)
            self.mounted = False


def _button(button_id: str, number: int, gateway_index: int) -> dict[str, object]:
    """The ``number``-th wired button of a stack's gateway: every fifth one is SAPA."""
    return {
        "id": button_id,
        "kind": "sapa" if number % 5 == 4 else "fire",
        "pin": 2 + number,
        "bounce_s": 0,
        "site": site(f"Lokasi uji {gateway_index + 1}", -4.35, 122.38),
    }


@dataclass
class Stack:
    workdir: Path
    gateways: int = 1
    buttons_per_gateway: int = 20
    receipt_timeout_s: float = 1.0
    small_disk: bool = False
    #: The store: a PostgreSQL URL, or None for an SQLite file in the first dashboard's folder.
    database_url: str | None = None
    #: How many dashboard processes serve the store (more than one wants a PostgreSQL store).
    dashboards: int = 1
    #: Nodes of a nats-server cluster as the broker; 0: one Mosquitto.
    cluster: int = 0
    #: The dashboards' ``[escalation]`` table (with its ``webhook`` list), or None for the defaults.
    escalation: dict[str, Any] | None = None
    broker: Mosquitto | None = None
    nats: NatsCluster | None = None
    dashboard_procs: list[DashboardProcess] = field(default_factory=list)
    gws: list[GatewayProcess] = field(default_factory=list)
    disks: dict[str, SmallDisk] = field(default_factory=dict)
    presses: list[Press] = field(default_factory=list)

    # -- start and stop ---------------------------------------------------------------

    def start(self) -> Stack:
        if self.dashboards < 1:
            raise ValueError("a stack needs at least one dashboard")
        if self.dashboards > 1 and self.database_url is None:
            raise ValueError("several dashboard processes share a PostgreSQL store: give database_url")
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Fresh passwords per run: the accounts exist only for this stack's broker.
        users = {"dashboard": secrets.token_hex(12)}
        ids = [f"gw-chaos-{n}" for n in range(1, self.gateways + 1)]
        for gw_id in ids:
            users[gw_id] = secrets.token_hex(12)
        if self.cluster:
            self.nats = NatsCluster(self.workdir / "nats", size=self.cluster).start()
        else:
            self.broker = Mosquitto(self.workdir / "broker", users=users, acl=True).start()
        for index in range(self.dashboards):
            self.dashboard_procs.append(self._make_dashboard(index, users["dashboard"]))
        for dashboard in self.dashboard_procs:  # one after the other: the first makes the store's schema
            self.start_dashboard(dashboard)
        for index, gw_id in enumerate(ids):
            self.gws.append(self._make_gateway(index, gw_id, users[gw_id]))
        for gw in self.gws:
            self.start_gateway(gw)
        return self

    def close(self) -> None:
        for gw in self.gws:
            self._stop(gw.process)
            if gw.relay is not None:
                gw.relay.close()
        for dashboard in self.dashboard_procs:
            self._stop(dashboard.process)
        if self.broker is not None:
            self.broker.stop()
        if self.nats is not None:
            self.nats.stop()
        for disk in self.disks.values():
            disk.unmount()

    def __enter__(self) -> Stack:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _stop(process: subprocess.Popen[bytes] | None) -> None:
        stop_process(process, 10)

    @staticmethod
    def _kill(process: subprocess.Popen[bytes] | None) -> None:
        kill_process(process)

    # -- the dashboard ------------------------------------------------------------------

    @property
    def database(self) -> Path | str:
        """The store: the first dashboard's SQLite file, or the PostgreSQL URL all of them share."""
        if self.database_url is not None:
            return self.database_url
        return self.workdir / "dashboard" / "dashboard.sqlite"

    @property
    def dashboard(self) -> subprocess.Popen[bytes] | None:
        """The first dashboard's process (the only one unless ``dashboards`` says more)."""
        return self.dashboard_procs[0].process if self.dashboard_procs else None

    @property
    def dashboard_port(self) -> int:
        return self.dashboard_procs[0].port if self.dashboard_procs else 0

    def _make_dashboard(self, index: int, password: str) -> DashboardProcess:
        # The first keeps the historical folder and client id (the single-dashboard tests read both).
        folder = self.workdir / ("dashboard" if index == 0 else f"dashboard-{index + 1}")
        folder.mkdir(exist_ok=True)
        client_id = MQTT_CLIENT_ID if index == 0 else f"{MQTT_CLIENT_ID}-{index + 1}"
        dashboard = DashboardProcess(index, folder, free_port(), client_id)
        settings: dict[str, Any] = {
            "data_dir": folder,
            "database": self.database_url,  # None: <data_dir>/dashboard.sqlite
            "host": "127.0.0.1",
            "port": dashboard.port,
            "cookie_secure": False,
        }
        mqtt = self._dashboard_mqtt(index, folder, password, client_id)
        # The stack's buttons are never commissioned: without this each would be a not_commissioned trouble.
        document: dict[str, Any] = {"dashboard": settings, "mqtt": mqtt, "commissioning": {"required": False}}
        if self.escalation is not None:
            document["escalation"] = self.escalation
        dashboard.config.write_text(toml_text(document))
        return dashboard

    def member_urls(self, index: int) -> list[str]:
        """Every cluster member's URL, starting at member ``index`` (modulo the size): the n-th dashboard and
        the n-th gateway start on member n, so that killing one member strands only some of the processes."""
        assert self.nats is not None
        urls = self.nats.mqtt_urls
        first = index % len(urls)
        return urls[first:] + urls[:first]

    def _dashboard_mqtt(self, index: int, folder: Path, password: str, client_id: str) -> dict[str, Any]:
        if self.nats is not None:  # the cluster has no accounts (deploy/nats/siaga-nats.conf)
            return {"brokers": self.member_urls(index), "client_id": client_id}
        assert self.broker is not None
        secret = folder / "mqtt-password"
        secret.write_text(password + "\n")
        return {
            "host": self.broker.host,
            "port": self.broker.port,
            "username": "dashboard",
            "password_file": secret,
            "client_id": client_id,
        }

    def start_dashboard(self, dashboard: DashboardProcess | None = None, timeout: float = 30.0) -> None:
        """Start a dashboard process (the first by default) and wait until it is connected to the broker."""
        dashboard = dashboard if dashboard is not None else self.dashboard_procs[0]
        log_file = open(dashboard.log_path, "ab")
        dashboard.process = subprocess.Popen(
            [sys.executable, "-m", "dashboard", "--config", str(dashboard.config), "serve"],
            stdout=log_file,
            stderr=log_file,
        )
        log_file.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if dashboard.process.poll() is not None:
                raise StackError(f"the dashboard exited; see {dashboard.log_path}")
            health = self._get_json(f"{dashboard.url}/healthz")
            if health and health.get("mqtt_connected"):
                return
            time.sleep(0.05)  # a child process: polling is the only way to see it ready
        raise StackError(f"the dashboard was not ready within {timeout} s; see {dashboard.log_path}")

    def kill_dashboard(self, dashboard: DashboardProcess | None = None) -> None:
        """SIGKILL a dashboard process (the first by default)."""
        self._kill((dashboard if dashboard is not None else self.dashboard_procs[0]).process)

    def create_user(self, username: str, password: str, role: str) -> None:
        """An account in the store (which the first dashboard made), to sign in to any of the processes."""
        from dashboard.accounts.auth import create_user
        from dashboard.db import connect

        conn = connect(str(self.database))
        try:
            create_user(conn, username, password, role)
        finally:
            conn.close()

    # -- the broker ----------------------------------------------------------------------

    def kill_broker(self) -> None:
        assert self.broker is not None
        self.broker.kill()

    def start_broker(self) -> None:
        assert self.broker is not None
        self.broker.start()

    # -- gateways ------------------------------------------------------------------------

    def _make_gateway(self, index: int, gw_id: str, password: str) -> GatewayProcess:
        folder = self.workdir / gw_id
        folder.mkdir(exist_ok=True)
        data_dir = folder / "data"
        if self.small_disk:
            self.disks[gw_id] = SmallDisk(data_dir).mount()
        relay: TcpRelay | None = None
        mqtt: dict[str, Any]
        if self.nats is not None:
            mqtt = {"brokers": self.member_urls(index), "keepalive": 5}
        else:
            assert self.broker is not None
            secret = folder / "mqtt-password"
            secret.write_text(password + "\n")
            relay = TcpRelay(self.broker.host, self.broker.port).start()
            mqtt = {
                "host": "127.0.0.1",
                "port": relay.port,
                "username": gw_id,
                "password_file": secret,
                "keepalive": 5,
            }
        buttons = [f"{gw_id}-b{n:02d}" for n in range(1, self.buttons_per_gateway + 1)]
        config = write_gateway_config(
            folder / "gateway.toml",
            gw_id,
            data_dir=data_dir,
            health_interval_s=5,
            receipt_timeout_s=self.receipt_timeout_s,
            mqtt=mqtt,
            buttons=[_button(button, number, index) for number, button in enumerate(buttons)],
        )
        return GatewayProcess(gw_id, config, data_dir, relay, free_port(), buttons, folder / "gateway.log")

    def start_gateway(self, gw: GatewayProcess, timeout: float = 20.0) -> None:
        log_file = open(gw.log_path, "ab")
        gw.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sim",
                "--log-level",
                "INFO",
                "gateway",
                "--config",
                str(gw.config),
                "--control-port",
                str(gw.control_port),
            ],
            stdout=log_file,
            stderr=log_file,
        )
        log_file.close()
        if not wait_for_port("127.0.0.1", gw.control_port, timeout):
            raise StackError(f"gateway {gw.gw_id} did not start; see {gw.log_path}")

    def kill_gateway(self, gw: GatewayProcess) -> None:
        self._kill(gw.process)

    def cut_network(self, gw: GatewayProcess) -> None:
        assert gw.relay is not None, "no relay to cut on a clustered broker"
        gw.relay.refuse(True)
        gw.relay.cut()

    def restore_network(self, gw: GatewayProcess, *, after_attempts: int = 1, timeout: float = 15.0) -> None:
        """Bring the network back, once the gateway has tried (and failed) to reconnect ``after_attempts`` times."""
        assert gw.relay is not None, "no relay to cut on a clustered broker"
        if not gw.relay.wait_refused(after_attempts, timeout):
            raise StackError(f"gateway {gw.gw_id} never tried to reconnect while the network was down")
        gw.relay.refuse(False)

    def wait_gateway_disconnected(self, gw: GatewayProcess, timeout: float = 15.0) -> None:
        """Wait until the gateway itself reports it lost the broker."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = self.gateway_health(gw)
            if health is not None and not health.get("mqtt_connected", True):
                return
            time.sleep(0.05)
        raise StackError(f"gateway {gw.gw_id} never noticed the broker was gone")

    # -- presses ---------------------------------------------------------------------------

    def press(self, gw: GatewayProcess, button: str) -> Press:
        at = time.time()
        request = urllib.request.Request(f"{gw.url}/press/{button}", data=b"", method="POST")
        event_id = None
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                event_id = json.loads(response.read())["id"]
        except (OSError, ValueError, KeyError):
            pass  # dead or killed mid-press: not a press the system accepted
        press = Press(button, at, event_id)
        self.presses.append(press)
        return press

    def gateway_health(self, gw: GatewayProcess) -> dict[str, Any] | None:
        return self._get_json(f"{gw.url}/health")

    @staticmethod
    def _get_json(url: str) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except (OSError, ValueError, urllib.error.URLError):
            return None

    # -- the verdict ------------------------------------------------------------------------------

    def accepted(self) -> dict[str, Press]:
        return {press.event_id: press for press in self.presses if press.event_id is not None}

    def stored_ids(self) -> set[str]:
        try:
            with ReadOnlyDatabase(self.database) as db:
                return {row[0] for row in db.execute("SELECT id FROM events")}
        except _server_errors() as exc:
            raise StoreUnreadable(f"the store stopped answering: {exc}") from exc

    def wait_stored(self, timeout: float) -> bool:
        """Wait until every accepted press is in the dashboard's store."""
        wanted = set(self.accepted())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if wanted <= self.stored_ids():
                    return True
            except StoreUnreadable:
                pass  # a PostgreSQL store restarting: look again
            time.sleep(0.1)  # another process's database: polling is the way to watch it
        return False

    def wait_gateways_drained(self, timeout: float) -> bool:
        """Wait until every gateway's outbox and memory are empty (everything receipted)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            healths = [self.gateway_health(gw) for gw in self.gws]
            if all(h and h["outbox"]["depth"] == 0 and h["outbox"]["memory_only"] == 0 for h in healths):
                return True
            time.sleep(0.1)
        return False

    def audit(self) -> dict[str, Any]:
        """What became of every press: lost, duplicated, without alarm, split over alarms."""
        accepted = self.accepted()
        with ReadOnlyDatabase(self.database) as db:
            events = {
                row[0]: (row[1], row[2], row[3])
                for row in db.execute("SELECT id, button, alarm_id, received_at FROM events WHERE type = 'press'")
            }
            total_rows = db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM events").fetchone()
            alarms = db.execute("SELECT id, button, press_count FROM alarms").fetchall()
        lost = sorted(set(accepted) - set(events))
        without_alarm = sorted(event_id for event_id, (_, alarm, _) in events.items() if alarm is None)
        per_button: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for alarm_id, button, press_count in alarms:
            per_button[button].append((alarm_id, press_count))
        events_per_alarm: dict[int, int] = defaultdict(int)
        for _, alarm, _ in events.values():
            if alarm is not None:
                events_per_alarm[alarm] += 1
        split = sorted(button for button, found in per_button.items() if len(found) > 1)
        miscounted = sorted(
            alarm_id for alarm_id, _, press_count in alarms if press_count != events_per_alarm.get(alarm_id, 0)
        )
        delays = [events[event_id][2] - press.at for event_id, press in accepted.items() if event_id in events]
        return {
            "pressed": len(self.presses),
            "accepted": len(accepted),
            "unanswered": sum(1 for press in self.presses if press.event_id is None),
            "stored": len(events),
            "stored_unanswered": len(set(events) - set(accepted)),
            "lost": lost,
            "duplicate_rows": total_rows[0] - total_rows[1],
            "without_alarm": without_alarm,
            "buttons_with_two_alarms": split,
            "alarms_miscounted": miscounted,
            "worst_delay_s": round(max(delays), 3) if delays else None,
        }


def _server_errors() -> tuple[type[BaseException], ...]:
    """What a PostgreSQL store that went away raises mid-read (nothing to catch without psycopg)."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - SQLite-only installs
        return ()
    return (psycopg.OperationalError,)


class StoreUnreadable(StackError):
    """The dashboard's store did not answer (a PostgreSQL server that is down or starting)."""


class ReadOnlyDatabase:
    """A read-only connection to the dashboard's database: an SQLite file (WAL: readers do not block its
    writer) or a PostgreSQL URL (a read-only session; the URL's search path finds the store's schema).

    Only SQL without parameters is meant to go through it, which both engines read alike.
    """

    def __init__(self, target: Path | str) -> None:
        self._db: Any
        if isinstance(target, str) and target.startswith(("postgresql://", "postgres://")):
            import psycopg

            try:
                self._db = psycopg.connect(target, autocommit=True, connect_timeout=5)
                self._db.execute("SET default_transaction_read_only = on")
            except psycopg.OperationalError as exc:
                raise StoreUnreadable(f"the store does not answer: {exc}") from exc
        else:
            self._db = sqlite3.connect(f"file:{target}?mode=ro", uri=True, timeout=10)

    def __enter__(self) -> Any:
        return self._db

    def __exit__(self, *exc: object) -> None:
        self._db.close()
