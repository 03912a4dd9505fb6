"""Fixtures: a real Mosquitto per test (the project's config), fresh databases, mock GPIO.

Every service runs for real on a free loopback port and is stopped after the
test; nothing is faked.
"""

from __future__ import annotations

import sqlite3
import textwrap
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from dashboard.db import connect, init_schema
from firmware_bridge.broker import BrokerSettings
from firmware_bridge.settings import read_toml
from gateway.app import Gateway
from gateway.config import GatewayConfig, parse_config
from sim.gatewayconf import site, toml_text, write_gateway_config
from sim.mosquitto import Mosquitto
from sim.servers import DashboardServer, dashboard_config
from sim.stores import drop_made, store_at
from sim.stores import server as stores_server
from sim.webclient import DashboardClient

from .mqttprobe import Probe
from .waiting import poll_until

OPERATOR = ("operator", "operator-password-1")
SAPA_DESK = ("sapadesk", "sapa-desk-password-1")
ADMIN = ("admin", "admin-password-123")
SATPOL = ("petugas", "satpol-password-1")

#: Two wired buttons on one gateway: a fire button with LED and buzzer, and a
#: SAPA button with an LED only.
FIRE_1 = {
    "id": "fire-1",
    "kind": "fire",
    "label": "Blok A",
    "pin": 17,
    "led_pin": 27,
    "buzzer_pin": 22,
    "site": site("Pasar Andoolo", -4.3497, 122.3786),
}
SAPA_1 = {
    "id": "sapa-1",
    "kind": "sapa",
    "label": "Pos keamanan",
    "pin": 23,
    "led_pin": 24,
    "site": site("Pasar Andoolo", -4.3499, 122.3783),
}
#: The same two as TOML text, for tests that edit it or append it to a file of their own.
DEFAULT_BUTTONS = toml_text({"button": [FIRE_1, SAPA_1]})


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


@pytest.fixture
def broker_settings(mosquitto: Mosquitto) -> BrokerSettings:
    return BrokerSettings(host=mosquitto.host, port=mosquitto.port)


def gateway_toml(
    path: Path,
    *,
    port: int,
    gw_id: str = "gw-test",
    buttons: str | list[dict[str, Any]] = DEFAULT_BUTTONS,
    mqtt_extra: str = "",
    data_dir: Path | None = None,
) -> Path:
    """Write a gateway.toml for a broker on this machine; returns ``path``.

    ``buttons`` is a list of ``[[button]]`` tables or TOML text of them;
    ``mqtt_extra`` is TOML text of more ``[mqtt]`` keys (or ``[mqtt.tls]``).
    """
    mqtt = tomllib.loads("[mqtt]\n" + textwrap.dedent(mqtt_extra))["mqtt"]
    if isinstance(buttons, str):
        buttons = tomllib.loads(textwrap.dedent(buttons)).get("button", [])
    return write_gateway_config(
        path,
        gw_id,
        data_dir=data_dir or path.parent / f"{gw_id}-data",
        health_interval_s=60,
        mqtt={"host": "127.0.0.1", "port": port, **mqtt},
        buttons=buttons,
    )


@pytest.fixture
def make_gateway_config(tmp_path: Path, mosquitto: Mosquitto) -> Callable[..., GatewayConfig]:
    """Write a gateway.toml for the test's broker and load it the way the daemon does."""

    def make(gw_id: str = "gw-test", **kwargs: object) -> GatewayConfig:
        kwargs.setdefault("port", mosquitto.port)
        path = gateway_toml(tmp_path / f"{gw_id}.toml", gw_id=gw_id, **kwargs)  # type: ignore[arg-type]
        return parse_config(read_toml(path))

    return make


@pytest.fixture
def pin_factory() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.reset()


def wait_online(gateway: Gateway) -> None:
    """Until the gateway is connected and the broker granted its subscriptions.

    Connected is not subscribed: a receipt or indication sent before the SUBACK is not the gateway's.
    """
    assert gateway.link.connected.wait(10), "gateway did not connect to the broker"
    poll_until(lambda: gateway.link.subscribed, what="the gateway's subscriptions granted")


@pytest.fixture
def start_gateway(pin_factory: MockFactory) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def start(config: GatewayConfig, *, factory: MockFactory | None = None, wait_connected: bool = True) -> Gateway:
        gateway = Gateway(config, pin_factory=factory or pin_factory).start()
        started.append(gateway)
        if wait_connected:
            wait_online(gateway)
        return gateway

    yield start
    for gateway in reversed(started):
        gateway.close()


@pytest.fixture
def gateway(make_gateway_config: Callable[..., GatewayConfig], start_gateway: Callable[..., Gateway]) -> Gateway:
    return start_gateway(make_gateway_config())


@pytest.fixture
def dashboard(tmp_path: Path, broker_settings: BrokerSettings) -> Iterator[DashboardServer]:
    server = DashboardServer(dashboard_config(tmp_path / "dashboard", broker_settings)).start()
    server.create_user(*OPERATOR, "fire_operator")
    server.create_user(*SAPA_DESK, "sapa_desk")
    server.create_user(*ADMIN, "admin")
    server.create_user(*SATPOL, "satpol")
    yield server
    server.stop()


def signed_in(dashboard: DashboardServer, account: tuple[str, str]) -> DashboardClient:
    client = DashboardClient(dashboard.url)
    client.login(*account)
    return client


@pytest.fixture
def operator(dashboard: DashboardServer) -> DashboardClient:
    return signed_in(dashboard, OPERATOR)


@pytest.fixture
def sapa_desk(dashboard: DashboardServer) -> DashboardClient:
    return signed_in(dashboard, SAPA_DESK)


@pytest.fixture
def probe(broker_settings: BrokerSettings) -> Iterator[Probe]:
    with Probe(broker_settings) as client:
        yield client


def press(factory: MockFactory, pin: int = 17) -> None:
    """A short press of a wired button (pin pulled to ground, then released)."""
    factory.pin(pin).drive_low()
    factory.pin(pin).drive_high()


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A fresh dashboard store with its schema, for tests of the store's functions."""
    connection = connect(store_at(tmp_path / "dashboard.db"))
    init_schema(connection)
    yield connection
    connection.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if stores_server() is None:
        return
    skip = pytest.mark.skip(reason="about SQLite itself; this run's stores are on PostgreSQL")
    for item in items:
        if item.get_closest_marker("sqlite_only"):
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    drop_made()  # the PostgreSQL schemas of a run on PostgreSQL (SIAGA_TEST_DATABASE)


# -- the browser (one Playwright and one Chromium per worker: Playwright's sync API allows one at a time) --

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="no Playwright wheels on this machine")
    with sync_api.sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Any) -> Iterator[Any]:
    """Headless Chromium with its default autoplay policy: sound needs a click first."""
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()
