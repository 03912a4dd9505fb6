"""Run a real Mosquitto with the project's broker configuration (tests, benchmarks, demo).

The generated main configuration adds only what is per-run (listener port,
persistence folder, accounts) and includes ``deploy/mosquitto/conf.d`` --
the same tuning file production uses. Accounts come from a password file and
``deploy/mosquitto/siaga.acl`` (``users``, ``acl``), or from the dynamic
security plugin (``dynsec``: its file made by ``mosquitto_ctrl dynsec init``,
as ``docs/deployment.md`` tells an operator to).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .processes import kill_process, stop_process

REPO = Path(__file__).resolve().parent.parent
CONF_D = REPO / "deploy" / "mosquitto" / "conf.d"
ACL_FILE = REPO / "deploy" / "mosquitto" / "siaga.acl"
#: Where Debian (and Ubuntu) install Mosquitto's dynamic security plugin, per architecture.
DYNSEC_PLUGINS = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/arm-linux-gnueabihf/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
)


class BrokerStartError(RuntimeError):
    pass


# Under pytest-xdist every worker takes ports from its own block below the
# kernel's ephemeral range (32768-60999 on Linux). A port handed out by
# bind(0) is free only until the caller's server binds it; in between, another
# worker's bind(0) or any outgoing connection may take it, and a server then
# fails with "address already in use". Blocks outside that range leave only
# this worker's own processes to race for a port.
PORT_BLOCK_BASE = 12000
PORT_BLOCK_SIZE = 2000
PORT_BLOCKS = 10
_next_port: int | None = None


def _worker_block() -> int | None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not worker[2:].isdigit():
        return None
    return PORT_BLOCK_BASE + (int(worker[2:]) % PORT_BLOCKS) * PORT_BLOCK_SIZE


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on now (see the block note above for tests)."""
    global _next_port
    block = _worker_block()
    if block is not None:
        if _next_port is None:
            # Processes a worker starts inherit its block: start each at its own place in it.
            _next_port = os.getpid() % PORT_BLOCK_SIZE
        for _ in range(PORT_BLOCK_SIZE):
            port = block + _next_port
            _next_port = (_next_port + 1) % PORT_BLOCK_SIZE
            if _bindable(host, port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    """True once something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.01)  # polling a port that is not open yet; nothing to wait on
    return False


def mosquitto_binary() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BrokerStartError("mosquitto is not installed (Debian: sudo apt-get install mosquitto)")


def dynsec_plugin() -> str:
    """The dynamic security plugin's file, as the installed Mosquitto package put it."""
    for candidate in DYNSEC_PLUGINS:
        if os.path.isfile(candidate):
            return candidate
    raise BrokerStartError("mosquitto_dynamic_security.so is not installed (Debian: the mosquitto package ships it)")


@dataclass(frozen=True)
class DynsecAdmin:
    """The dynamic security plugin's administrator, made by ``mosquitto_ctrl dynsec init`` (as in production)."""

    username: str
    password: str


@dataclass
class TlsFiles:
    ca_file: str
    cert_file: str
    key_file: str


@dataclass
class Mosquitto:
    """One Mosquitto process on a free loopback port, restartable on the same port and data."""

    workdir: Path
    port: int = 0
    users: dict[str, str] = field(default_factory=dict)
    acl: bool = False
    tls: TlsFiles | None = None
    #: Accounts and ACLs from the dynamic security plugin (no password file, no acl_file): its administrator.
    dynsec: DynsecAdmin | None = None
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port(self.host)
        self.log_path = self.workdir / "mosquitto.log"

    def write_config(self) -> Path:
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        lines = [
            f"user {getpass.getuser()}",
            f"persistence_location {data}/",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            f"listener {self.port} {self.host}",
        ]
        if self.tls:
            lines += [
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.cert_file}",
                f"keyfile {self.tls.key_file}",
            ]
        if self.dynsec is not None:
            if self.users or self.acl:
                raise BrokerStartError("dynsec replaces users and acl: give one or the other")
            lines += [
                "allow_anonymous false",
                f"plugin {dynsec_plugin()}",
                f"plugin_opt_config_file {self._dynsec_file()}",
            ]
        elif self.users:
            lines += ["allow_anonymous false", f"password_file {self._password_file()}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl:
            lines.append(f"acl_file {ACL_FILE}")
        lines.append(f"include_dir {CONF_D}")
        path = self.workdir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _password_file(self) -> Path:
        path = self.workdir / "passwd"
        if not path.exists():
            path.touch(mode=0o600)
            for user, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(path), user, password], check=True, capture_output=True)
        return path

    @property
    def dynsec_file(self) -> Path:
        """The plugin's own state: clients, roles, ACLs (it rewrites the file on every change)."""
        return self.workdir / "dynamic-security.json"

    def _dynsec_file(self) -> Path:
        """Made once by the command an operator runs (docs/deployment.md): the test broker starts as production's."""
        assert self.dynsec is not None
        path = self.dynsec_file
        if not path.exists():
            command = ["mosquitto_ctrl", "dynsec", "init", str(path), self.dynsec.username, self.dynsec.password]
            subprocess.run(command, check=True, capture_output=True)
        return path

    def start(self, timeout: float = 10.0) -> Mosquitto:
        config = self.write_config()
        log = open(self.workdir / "stderr.log", "ab")
        self.process = subprocess.Popen([mosquitto_binary(), "-c", str(config)], stdout=log, stderr=log)
        log.close()
        if not wait_for_port(self.host, self.port, timeout):
            self.kill()
            raise BrokerStartError(f"mosquitto did not start on port {self.port}: {self.describe_failure()}")
        return self

    def describe_failure(self) -> str:
        text = ""
        for name in ("stderr.log", "mosquitto.log"):
            path = self.workdir / name
            if path.exists():
                text += path.read_text(errors="replace")[-2000:]
        return text.strip() or "no output"

    def stop(self, timeout: float = 10.0) -> None:
        """A clean shutdown: Mosquitto saves its persistence file."""
        stop_process(self.process, timeout)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: what a power cut or crash does to the broker."""
        kill_process(self.process)
        self.process = None

    def forget_state(self) -> None:
        """Delete the saved state (sessions, queues, retained messages): a broker rebuilt on a new machine."""
        assert not self.running, "the broker's state is deleted only while it is down"
        for saved in (self.workdir / "data").glob("mosquitto.db*"):
            saved.unlink()

    def restart(self) -> Mosquitto:
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
