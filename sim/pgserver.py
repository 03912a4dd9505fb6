"""A private PostgreSQL 15 server for one test: its own data directory and port, to kill and start again.

The machine's shared server (port 5432) serves every run on this machine and must
never be restarted by a test; a fault test that restarts "the database" gets one
of these instead. Debian's binaries (``/usr/lib/postgresql/15/bin``), trust
authentication on loopback only, ``fsync`` on (a SIGKILL must lose nothing that
was committed). ``initdb`` runs once per test process: each server starts from a
copy of that template directory, which takes milliseconds instead of seconds.

:meth:`PgServer.kill` SIGKILLs the postmaster and every backend at once (its
process group), as a power cut does; :meth:`PgServer.start` then starts it again
on the same directory and port and waits until it accepts connections, crash
recovery included. As root (CI) the server runs as the ``postgres`` account,
which PostgreSQL insists on, in a directory of its own under ``/tmp``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .mosquitto import free_port

BIN = Path(os.environ.get("SIAGA_PG_BIN", "/usr/lib/postgresql/15/bin"))
#: The account the server runs as when this process is root (PostgreSQL refuses to run as root).
SERVER_ACCOUNT = "postgres"
#: Small and quick: a test's store is a few megabytes.
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "on",
    "synchronous_commit": "on",
    "shared_buffers": "16MB",
    "max_connections": "100",
    "max_wal_size": "256MB",
    "log_min_messages": "warning",
    "logging_collector": "off",
}

_template_lock = threading.Lock()
_template: Path | None = None


class PgServerError(RuntimeError):
    """The server could not be made, did not start, or did not accept connections in time."""


def available() -> str | None:
    """None if a private server can run here, else why not (for a test's skip reason)."""
    for name in ("initdb", "postgres"):
        if not os.access(BIN / name, os.X_OK):
            return f"{BIN / name} is not installed (Debian: apt-get install postgresql-15)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_ACCOUNT)
        except KeyError:
            return f"running as root and there is no {SERVER_ACCOUNT!r} account to run PostgreSQL as"
    return None


def _account() -> tuple[int, int] | None:
    """(uid, gid) to run the server as, or None to run it as this process's own user."""
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam(SERVER_ACCOUNT)
    return entry.pw_uid, entry.pw_gid


def _chown_tree(path: Path, account: tuple[int, int] | None) -> None:
    if account is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, *account)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), *account)


def _private_dir(prefix: str) -> Path:
    """A directory the server's account owns (pytest's tmp dirs are root's own, mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    account = _account()
    if account is not None:
        os.chown(path, *account)
    return path


def template() -> Path:
    """A data directory made by ``initdb`` once for this process; servers start from copies of it."""
    global _template
    with _template_lock:
        if _template is None or not (_template / "data" / "PG_VERSION").exists():
            base = _private_dir("siaga-pg-template-")
            account = _account()
            completed = subprocess.run(
                [
                    str(BIN / "initdb"),
                    "--pgdata",
                    str(base / "data"),
                    "--username",
                    "postgres",
                    "--auth",
                    "trust",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",
                    "--no-sync",  # the template is thrown away with the run; each copy is synced by use
                    "--no-instructions",
                ],
                capture_output=True,
                text=True,
                user=account[0] if account else None,
                group=account[1] if account else None,
                check=False,
            )
            if completed.returncode != 0:
                raise PgServerError(f"initdb failed: {completed.stderr.strip() or completed.stdout.strip()}")
            _template = base
            atexit.register(shutil.rmtree, base, True)
        return _template


@dataclass
class PgServer:
    """One private server. ``with PgServer() as pg:`` starts it and removes its directory afterwards."""

    port: int = 0
    database: str = "siaga"
    workdir: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    starts: int = 0

    @property
    def url(self) -> str:
        """The store URL a dashboard's ``[dashboard] database`` takes."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def data_dir(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "postgres.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 30.0) -> PgServer:
        """Start the server (made from the template on first start) and wait until it takes connections."""
        if self.running:
            raise PgServerError("the server is running")
        first = self.workdir is None
        if first:
            self._make()
        account = _account()
        options: list[str] = []
        for key, value in {**SETTINGS, "port": str(self.port)}.items():
            options += ["-c", f"{key}={value}"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "postgres"), "-D", str(self.data_dir), *options],
                stdout=log,
                stderr=subprocess.STDOUT,
                user=account[0] if account else None,
                group=account[1] if account else None,
                start_new_session=True,  # its own process group: kill() takes every backend with it
            )
        self.starts += 1
        self.wait_ready(timeout)
        if first:
            self._create_database()
        return self

    def _make(self) -> None:
        source = template() / "data"
        self.workdir = _private_dir("siaga-pg-")
        shutil.copytree(source, self.data_dir, symlinks=True)
        os.chmod(self.data_dir, 0o700)  # the server refuses a group- or world-readable directory
        _chown_tree(self.workdir, _account())
        self.log_path.touch()
        _chown_tree(self.log_path, _account())
        if not self.port:
            self.port = free_port()

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(self._url_of("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')

    def _url_of(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until a connection succeeds (after a crash the server replays its WAL first)."""
        import psycopg

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise PgServerError(f"postgres exited ({self.process.returncode}): {self.log_tail()}")
            try:
                psycopg.connect(self._url_of("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError as exc:  # starting up, or recovering: try again
                last = exc
            time.sleep(0.05)  # another process's readiness: nothing to block on but a connect
        raise PgServerError(f"postgres did not accept connections within {timeout} s ({last}): {self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the postmaster and all its backends at once: the machine lost power."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def restart(self, timeout: float = 30.0) -> float:
        """SIGKILL, then start again on the same directory and port; returns the seconds it was away."""
        began = time.monotonic()
        self.kill()
        self.start(timeout)
        return time.monotonic() - began

    def stop(self, timeout: float = 10.0) -> None:
        """A fast shutdown (SIGINT: roll back, disconnect, checkpoint); SIGKILL if it does not end in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def remove(self) -> None:
        self.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:].strip()
        except (OSError, AssertionError):
            return "no log"

    def __enter__(self) -> PgServer:
        try:
            return self.start()
        except BaseException:
            self.remove()
            raise

    def __exit__(self, *exc: object) -> None:
        self.remove()
