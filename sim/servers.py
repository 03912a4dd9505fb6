"""Run a real dashboard (Flask app, MQTT ingest, uvicorn) inside this process.

Tests and benchmarks use it to get a dashboard on a free port without a
subprocess; it is the same code ``siaga-dashboard serve`` runs.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboard.commissioning.settings import CommissioningSettings
from dashboard.defaults import MQTT_CLIENT_ID
from firmware_bridge.broker import BrokerSettings

from .mosquitto import wait_for_port
from .stores import store_at


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
        "DATABASE": store_at(workdir / "dashboard.sqlite"),
        "SIAGA_PHOTOS_DIR": workdir / "photos",
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "SIAGA_BROKER": broker,
        "SIAGA_MQTT_CLIENT_ID": client_id,
        "SIAGA_HOST": "127.0.0.1",
        # 0: the port is chosen when the server binds (DashboardServer.start), so that no other process
        # can take it in between, as one did with a port picked here and bound later.
        "SIAGA_PORT": port,
        "SIAGA_THREADS": 16,
        "SESSION_COOKIE_SECURE": False,
        # Off in tests, as in the demo: every button would be a not_commissioned trouble (the
        # commissioning tests turn it on).
        "SIAGA_COMMISSIONING": CommissioningSettings(required=False),
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
        if not self.config["SIAGA_PORT"]:
            raise RuntimeError("the dashboard's port is chosen when it starts")
        return f"http://{self.config['SIAGA_HOST']}:{self.config['SIAGA_PORT']}"

    @property
    def ingest(self) -> Any:
        from dashboard.live import EXTENSION

        return self.app.extensions[EXTENSION].ingest

    def start(self, *, wait_mqtt: float = 10.0) -> DashboardServer:
        from dashboard import create_app, live
        from dashboard.asgi import Server

        host, threads = self.config["SIAGA_HOST"], self.config["SIAGA_THREADS"]
        listening = socket.create_server((host, self.config["SIAGA_PORT"]))
        self.config["SIAGA_PORT"] = listening.getsockname()[1]
        self.app = create_app(self.config)
        live.start(self.app)
        self.server = Server(self.app, host=host, port=self.config["SIAGA_PORT"], threads=threads)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [listening]}, name="uvicorn", daemon=True
        )
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
            self.server.should_exit = True
            self._thread.join(10)
            self.server.asgi.close()
        self.app = self.server = self._thread = None

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
