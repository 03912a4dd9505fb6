"""The whole system as separate processes, for fault tests and the chaos benchmark.

A real Mosquitto (the project's configuration, accounts and ACL), the
dashboard (``siaga-dashboard``), and gateways (``siaga-sim gateway``: the
production gateway with its wired buttons on mock pins) that reach the broker
through a :class:`~sim.relay.TcpRelay` each, so the network between them can be
cut. Any process can be killed with SIGKILL and started again on the same
data; a gateway's data folder can sit on a small filesystem that a test fills.

The harness keeps the ground truth: every press whose gateway answered with
an event id (the event was committed there) must end up in the dashboard's
store exactly once, with its alarm. :meth:`Stack.audit` checks that against
the dashboard's database.
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
class GatewayProcess:
    gw_id: str
    config: Path
    data_dir: Path
    relay: TcpRelay
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
    broker: Mosquitto | None = None
    dashboard_port: int = 0
    dashboard: subprocess.Popen[bytes] | None = None
    gws: list[GatewayProcess] = field(default_factory=list)
    disks: dict[str, SmallDisk] = field(default_factory=dict)
    presses: list[Press] = field(default_factory=list)

    # -- start and stop ---------------------------------------------------------------

    def start(self) -> Stack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Fresh passwords per run: the accounts exist only for this stack's broker.
        users = {"dashboard": secrets.token_hex(12)}
        ids = [f"gw-chaos-{n}" for n in range(1, self.gateways + 1)]
        for gw_id in ids:
            users[gw_id] = secrets.token_hex(12)
        self.broker = Mosquitto(self.workdir / "broker", users=users, acl=True).start()
        self.dashboard_port = free_port()
        self._write_dashboard_config(users["dashboard"])
        self.start_dashboard()
        for index, gw_id in enumerate(ids):
            self.gws.append(self._make_gateway(index, gw_id, users[gw_id]))
        for gw in self.gws:
            self.start_gateway(gw)
        return self

    def close(self) -> None:
        for gw in self.gws:
            self._stop(gw.process)
            gw.relay.close()
        self._stop(self.dashboard)
        if self.broker is not None:
            self.broker.stop()
        for disk in self.disks.values():
            disk.unmount()

    def __enter__(self) -> Stack:
        return self.start()

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
    def database(self) -> Path:
        return self.workdir / "dashboard" / "dashboard.sqlite"

    def _write_dashboard_config(self, password: str) -> None:
        assert self.broker is not None
        folder = self.workdir / "dashboard"
        folder.mkdir(exist_ok=True)
        secret = folder / "mqtt-password"
        secret.write_text(password + "\n")
        dashboard = {"data_dir": folder, "host": "127.0.0.1", "port": self.dashboard_port, "cookie_secure": False}
        mqtt = {
            "host": self.broker.host,
            "port": self.broker.port,
            "username": "dashboard",
            "password_file": secret,
            "client_id": MQTT_CLIENT_ID,
        }
        (folder / "dashboard.toml").write_text(toml_text({"dashboard": dashboard, "mqtt": mqtt}))

    def start_dashboard(self, timeout: float = 20.0) -> None:
        folder = self.workdir / "dashboard"
        log_file = open(folder / "dashboard.log", "ab")
        self.dashboard = subprocess.Popen(
            [sys.executable, "-m", "dashboard", "--config", str(folder / "dashboard.toml"), "serve"],
            stdout=log_file,
            stderr=log_file,
        )
        log_file.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.dashboard.poll() is not None:
                raise StackError(f"the dashboard exited; see {folder / 'dashboard.log'}")
            health = self._get_json(f"http://127.0.0.1:{self.dashboard_port}/healthz")
            if health and health.get("mqtt_connected"):
                return
            time.sleep(0.05)  # a child process: polling is the only way to see it ready
        raise StackError(f"the dashboard was not ready within {timeout} s; see {folder / 'dashboard.log'}")

    def kill_dashboard(self) -> None:
        self._kill(self.dashboard)

    # -- the broker ----------------------------------------------------------------------

    def kill_broker(self) -> None:
        assert self.broker is not None
        self.broker.kill()

    def start_broker(self) -> None:
        assert self.broker is not None
        self.broker.start()

    # -- gateways ------------------------------------------------------------------------

    def _make_gateway(self, index: int, gw_id: str, password: str) -> GatewayProcess:
        assert self.broker is not None
        folder = self.workdir / gw_id
        folder.mkdir(exist_ok=True)
        data_dir = folder / "data"
        if self.small_disk:
            self.disks[gw_id] = SmallDisk(data_dir).mount()
        secret = folder / "mqtt-password"
        secret.write_text(password + "\n")
        relay = TcpRelay(self.broker.host, self.broker.port).start()
        buttons = [f"{gw_id}-b{n:02d}" for n in range(1, self.buttons_per_gateway + 1)]
        config = write_gateway_config(
            folder / "gateway.toml",
            gw_id,
            data_dir=data_dir,
            health_interval_s=5,
            receipt_timeout_s=self.receipt_timeout_s,
            mqtt={
                "host": "127.0.0.1",
                "port": relay.port,
                "username": gw_id,
                "password_file": secret,
                "keepalive": 5,
            },
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
        gw.relay.refuse(True)
        gw.relay.cut()

    def restore_network(self, gw: GatewayProcess, *, after_attempts: int = 1, timeout: float = 15.0) -> None:
        """Bring the network back, once the gateway has tried (and failed) to reconnect ``after_attempts`` times."""
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
        with ReadOnlyDatabase(self.database) as db:
            return {row[0] for row in db.execute("SELECT id FROM events")}

    def wait_stored(self, timeout: float) -> bool:
        """Wait until every accepted press is in the dashboard's store."""
        wanted = set(self.accepted())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if wanted <= self.stored_ids():
                return True
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


class ReadOnlyDatabase:
    """A read-only connection to the dashboard's database (WAL: readers do not block its writer)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)

    def __enter__(self) -> sqlite3.Connection:
        return self._db

    def __exit__(self, *exc: object) -> None:
        self._db.close()
