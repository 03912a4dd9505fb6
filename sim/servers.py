"""Run a real dashboard (Flask app, MQTT ingest, waitress) inside this process.

Tests and benchmarks use it to get a dashboard on a free port without a
subprocess; it is the same code ``siaga-dashboard serve`` runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboard.defaults import MQTT_CLIENT_ID
from firmware_bridge.broker import BrokerSettings

from .mosquitto import free_port, wait_for_port


def stop_waitress(server: Any, thread: threading.Thread) -> None:
    """Stop a waitress server running in ``thread`` at once (not at its next 1 s poll)."""

    def close_everything() -> None:
        for channel in list(server._map.values()):
            channel.close()

    server.trigger.pull_trigger(close_everything)  # runs in the loop thread and wakes it
    thread.join(10)
    server.task_dispatcher.shutdown(timeout=5)


def dashboard_config(
    workdir: Path,
    broker: BrokerSettings,
    *,
    port: int = 0,
    client_id: str = MQTT_CLIENT_ID,
    **extra: Any,
) -> dict[str, Any]:
    """A Flask config mapping for a dashboard whose files live in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    return {
        "DATABASE": str(workdir / "dashboard.sqlite"),
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "SIAGA_BROKER": broker,
        "SIAGA_MQTT_CLIENT_ID": client_id,
        "SIAGA_HOST": "127.0.0.1",
        "SIAGA_PORT": port or free_port(),
        "SIAGA_THREADS": 16,
        "SESSION_COOKIE_SECURE": False,
        **extra,
    }


@dataclass
class DashboardServer:
    config: dict[str, Any]
    app: Any = None
    server: Any = None
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.config['SIAGA_HOST']}:{self.config['SIAGA_PORT']}"

    @property
    def ingest(self) -> Any:
        from dashboard.live import EXTENSION

        return self.app.extensions[EXTENSION].ingest

    def start(self, *, wait_mqtt: float = 10.0) -> DashboardServer:
        from waitress import create_server

        from dashboard import create_app, live

        self.app = create_app(self.config)
        live.start(self.app)
        self.server = create_server(
            self.app,
            host=self.config["SIAGA_HOST"],
            port=self.config["SIAGA_PORT"],
            threads=self.config["SIAGA_THREADS"],
            ident="siaga",
        )
        self._thread = threading.Thread(target=self.server.run, name="waitress", daemon=True)
        self._thread.start()
        if not wait_for_port(self.config["SIAGA_HOST"], self.config["SIAGA_PORT"], 10):
            raise RuntimeError("dashboard did not start listening")
        ingest = self.ingest
        if wait_mqtt and ingest is not None and not ingest.connected.wait(wait_mqtt):
            raise RuntimeError("dashboard did not connect to the broker")
        return self

    def create_user(self, username: str, password: str, role: str) -> None:
        from dashboard.accounts.auth import create_user
        from dashboard.db import connect

        conn = connect(self.config["DATABASE"])
        try:
            create_user(conn, username, password, role)
        finally:
            conn.close()

    def stop(self) -> None:
        from dashboard import live

        if self.app is not None:
            live.stop(self.app)
        if self.server is not None and self._thread is not None:
            stop_waitress(self.server, self._thread)
        self.app = self.server = self._thread = None

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
