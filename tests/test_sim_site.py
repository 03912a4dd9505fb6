"""``siaga-sim site``: a technician's dry run of a real site's gateway.toml, run as they run it (a subprocess)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from firmware_bridge.broker import BrokerSettings
from sim.gatewayconf import toml_text
from sim.mosquitto import Mosquitto, free_port
from sim.servers import DashboardServer, dashboard_config
from sim.site import shipped_site
from sim.webclient import DashboardClient

from .conftest import OPERATOR

SITE = shipped_site("pasar-andoolo")
GW = "gw-pasar-andoolo"


def run_site(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", "site", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def lines_with(output: str, text: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


def test_the_shipped_site_runs_and_its_check_passes(tmp_path: Path) -> None:
    assert SITE is not None
    done = run_site(
        "pasar-andoolo",  # a shipped site by name, as docs/simulator.md shows
        "--check",
        "--port",
        str(free_port()),
        "--panel-port",
        str(free_port()),
        "--mqtt-port",
        str(free_port()),
        "--workdir",
        str(tmp_path / "run"),
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert lines_with(out, "configuration valid: gateway gw-pasar-andoolo, 3 wired button(s), 1 LoRa button(s)")
    # What cannot run on a laptop is substituted, and said so.
    for key in ("gateway.data_dir", "gateway.pin_factory", "lora.port", "lora.keys_file"):
        assert lines_with(out, f"substituted  {key} "), key
    assert "TEMPORARY keys made for node(s) 1101" in out
    assert lines_with(out, "broker connected as gw-pasar-andoolo")
    assert lines_with(out, "inventory accepted: the board lists 4 button(s)")
    passed = lines_with(out, "  ✓ ")
    assert [line.split()[1] for line in passed] == [
        "pasar-andoolo-fire-1",
        "pasar-andoolo-sapa-1",
        "pasar-andoolo-fire-3",
        "pasar-andoolo-lora-fire-1",
    ]
    assert all("on the board" in line or "board in" in line for line in passed)
    assert "summary: 4 of 4 button(s) reached the dashboard; check passed" in out
    # The technician's file and its real paths were not touched: the run's data is in the work folder.
    assert (tmp_path / "run" / "site" / "data" / "outbox.sqlite").exists()


def test_a_configuration_with_a_mistake_is_refused_with_the_gateways_own_error(tmp_path: Path) -> None:
    assert SITE is not None
    broken = tmp_path / "gateway.toml"
    broken.write_text(SITE.read_text().replace('kind = "sapa"', 'kind = "smoke"'))
    done = run_site(str(broken), "--check", timeout=30)
    assert done.returncode == 78
    assert f"{broken}: key 'button[2].kind': must be one of fire, sapa (got 'smoke')" in done.stderr
    assert "configuration valid" not in done.stdout

    # The gateway's own checks, not only the file's shape: a SAPA button must stay silent.
    loud = tmp_path / "loud.toml"
    loud.write_text(SITE.read_text().replace("pin = 23\n", "pin = 23\nbuzzer_pin = 25\n"))
    done = run_site(str(loud), timeout=30)
    assert done.returncode == 78
    assert "key 'button[2].buzzer_pin': a SAPA button must stay silent" in done.stderr


@pytest.fixture
def regency(tmp_path: Path):
    """The "regency's" broker (Mosquitto with accounts and the project's ACL) and dashboard, and the site's
    configuration pointing at them with the gateway's own account: what ``--broker config`` is for."""
    passwords = {"dashboard": secrets.token_hex(8), GW: secrets.token_hex(8)}
    broker = Mosquitto(tmp_path / "broker", users=passwords, acl=True).start()
    settings = BrokerSettings(host=broker.host, port=broker.port, username="dashboard", password=passwords["dashboard"])
    dashboard = DashboardServer(dashboard_config(tmp_path / "dashboard", settings)).start()
    dashboard.create_user(*OPERATOR, "fire_operator")
    password_file = tmp_path / "mqtt.password"
    password_file.write_text(passwords[GW] + "\n")
    assert SITE is not None
    document = tomllib.loads(SITE.read_text())
    document["mqtt"] = {"host": broker.host, "port": broker.port, "username": GW, "password_file": password_file}
    config = tmp_path / "gateway.toml"
    config.write_text(toml_text(document))
    try:
        yield config, dashboard, password_file
    finally:
        dashboard.stop()
        broker.stop()


def test_broker_config_checks_against_the_configured_broker_with_test_events_only(regency) -> None:
    config, dashboard, _ = regency
    done = run_site(str(config), "--broker", "config", "--check", "--timeout", "15")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert not lines_with(out, "substituted  [mqtt]")  # the configuration's own broker and account
    assert lines_with(out, f"broker connected as {GW}")
    assert lines_with(out, "inventory accepted: the broker delivers what this gateway publishes")
    assert lines_with(out, "dashboard    online on this broker")
    receipted = lines_with(out, "test event receipted by the dashboard")
    assert len(receipted) == 4, out
    assert "summary: 4 of 4 button(s) reached the dashboard; check passed" in out
    # Test events only: the regency's fire post saw no alarm.
    operator = DashboardClient(dashboard.url)
    operator.login(*OPERATOR)
    assert operator.get_json("/api/alarms?state=all")["alarms"] == []


def test_broker_config_says_why_the_broker_refused(regency) -> None:
    config, _, password_file = regency
    password_file.write_text("not-the-password\n")
    done = run_site(str(config), "--broker", "config", "--check", "--timeout", "3")
    assert done.returncode == 1
    refused = lines_with(done.stdout, "✗ broker: not connected within 3.0 s")
    assert refused and "refused the connection" in refused[0], done.stdout
