"""``siaga-sim demo`` as a newcomer runs it: one command, then a press from the command line."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from sim.mosquitto import free_port
from sim.processes import stop_process
from sim.webclient import DashboardClient

from .test_demo_broker import Peer
from .test_ingest import wait_alarm
from .waiting import poll_until

DEMO_MQTT_ACCOUNTS = ("dashboard", "gw-pasar-andoolo", "gw-smpn1-konda")


def panel_pattern(panel: str, button: str) -> str:
    with urllib.request.urlopen(f"{panel}/api/buttons", timeout=5) as response:
        return next(b["pattern"] for b in json.load(response)["buttons"] if b["id"] == button)


@pytest.fixture
def demo(tmp_path: Path, request: pytest.FixtureRequest):
    """The demo as ``siaga-sim demo`` starts it; parametrize indirectly with "mosquitto" for that broker, or with
    a list of more arguments."""
    port, panel_port, mqtt_port = free_port(), free_port(), free_port()
    param = getattr(request, "param", "embedded")
    broker, more = (param, []) if isinstance(param, str) else ("embedded", list(param))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sim",
            "demo",
            "--workdir",
            str(tmp_path / "demo"),
            "--port",
            str(port),
            "--panel-port",
            str(panel_port),
            "--mqtt-port",
            str(mqtt_port),
            "--broker",
            broker,
            *more,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def read() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            output.append(line)
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        while True:
            line = lines.get(timeout=60)
            if "Siaga demo ready" in line:
                break
        yield {
            "port": port,
            "mqtt_port": mqtt_port,
            "panel": f"http://127.0.0.1:{panel_port}",
            "output": output,
            "process": process,
            "workdir": tmp_path / "demo",
        }
    finally:
        stop_process(process, 30, signal.SIGINT)


def demo_password(demo: dict, user: str) -> str:
    """The password the demo printed for ``user``."""
    return next(line.split(f" {user} / ")[1].strip() for line in demo["output"] if f" {user} / " in line)


def assert_panel_shows_help_coming(demo: dict, button: str) -> None:
    """The virtual LED follows the acknowledgement; the panel is another process, so ask it."""
    poll_until(  # polling another process's state
        lambda: panel_pattern(demo["panel"], button),
        lambda pattern: pattern == "help_coming",
        what="the panel showing help coming",
    )
    assert panel_pattern(demo["panel"], button) == "help_coming"


def press_and_sign_in(demo: dict, button: str) -> tuple[DashboardClient, dict]:
    """Press ``button`` with ``siaga-sim press`` and sign in as the fire post; returns the board and the alarm."""
    password = demo_password(demo, "damkar")
    pressed = subprocess.run(
        [sys.executable, "-m", "sim", "press", button, "--panel", demo["panel"]],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert pressed.returncode == 0, pressed.stderr
    assert f"pressed {button}" in pressed.stdout
    board = DashboardClient(f"http://127.0.0.1:{demo['port']}")
    board.login("damkar", password)
    return board, wait_alarm(board, lambda a: a["button"] == button, timeout=20)


def test_the_demo_runs_the_whole_system_and_a_press_reaches_the_board(demo: dict) -> None:
    text = "".join(demo["output"])
    assert "broker     embedded (amqtt)" in text
    assert f"http://127.0.0.1:{demo['port']}/" in text
    board, alarm = press_and_sign_in(demo, "pasar-andoolo-fire-1")
    assert alarm["site"]["name"] == "Pasar Andoolo" and alarm["gw"] == "gw-pasar-andoolo"
    gateways = {gw["gw"]: gw["state"] for gw in board.get_json("/api/gateways")["gateways"]}
    assert gateways == {"gw-pasar-andoolo": "online", "gw-smpn1-konda": "online"}

    board.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {})
    assert_panel_shows_help_coming(demo, "pasar-andoolo-fire-1")
    listing = subprocess.run(
        [sys.executable, "-m", "sim", "buttons", "--panel", demo["panel"]], capture_output=True, text=True, timeout=30
    )
    assert any(
        line.startswith("pasar-andoolo-fire-1") and "help_coming" in line for line in listing.stdout.splitlines()
    ), listing.stdout

    # A LoRa button: the firmware on a virtual node, over the virtual air, to a pty the gateway reads.
    pressed = subprocess.run(
        [sys.executable, "-m", "sim", "press", "smpn1-konda-lora-fire-1", "--panel", demo["panel"]],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert pressed.returncode == 0, pressed.stderr
    lora = wait_alarm(board, lambda a: a["button"] == "smpn1-konda-lora-fire-1", timeout=20)
    assert lora["transport"] == "lora" and lora["gw"] == "gw-smpn1-konda"

    unknown = subprocess.run(
        [sys.executable, "-m", "sim", "press", "no-such-button", "--panel", demo["panel"]],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert unknown.returncode == 1 and "pasar-andoolo-fire-1" in unknown.stderr


def check_mqtt_accounts(demo: dict) -> None:
    """Each MQTT account has its own random password in a 0600 file that the configs point at; nobody else gets in."""
    text = "".join(demo["output"])
    folder = demo["workdir"] / "mqtt"
    assert f"passwords in {folder}/<account>.password (mode 0600)" in text
    assert folder.stat().st_mode & 0o777 == 0o700
    passwords = {}
    for user in DEMO_MQTT_ACCOUNTS:
        path = folder / f"{user}.password"
        assert path.stat().st_mode & 0o777 == 0o600
        passwords[user] = path.read_text().strip()
        config = (demo["workdir"] / ("dashboard.toml" if user == "dashboard" else f"{user}.toml")).read_text()
        assert f'username = "{user}"' in config and f'password_file = "{path}"' in config
        assert passwords[user] not in config and passwords[user] not in text
    assert len(set(passwords.values())) == len(passwords) and min(map(len, passwords.values())) >= 24

    def login(username: str | None, password: str | None) -> str:
        peer = Peer(demo["mqtt_port"], username, password)
        reason, _ = peer.connect()
        peer.close()
        return reason.getName()

    assert login(None, None) == "Not authorized"
    assert login("dashboard", passwords["gw-pasar-andoolo"]) == "Not authorized"
    assert login("dashboard", passwords["dashboard"]) == "Success"


def test_the_demo_broker_takes_only_the_demos_accounts(demo: dict) -> None:
    check_mqtt_accounts(demo)


@pytest.mark.parametrize("demo", ["mosquitto"], indirect=True)
def test_the_demo_on_mosquitto_uses_the_same_accounts(demo: dict) -> None:
    assert "broker     Mosquitto" in "".join(demo["output"])
    check_mqtt_accounts(demo)
    board, alarm = press_and_sign_in(demo, "smpn1-konda-fire-1")
    assert alarm["gw"] == "gw-smpn1-konda"
    board.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {})
    assert_panel_shows_help_coming(demo, "smpn1-konda-fire-1")


def test_the_demo_takes_citizens_reports_for_satpol_pp(demo: dict) -> None:
    text = "".join(demo["output"])
    base = f"http://127.0.0.1:{demo['port']}"
    assert f"Citizens report Perda violations at {base}/lapor" in text
    password = demo_password(demo, "satpol")
    citizen = DashboardClient(base)
    status, page = citizen.get_page("/lapor")
    assert status == 200 and "Laporkan Pelanggaran Perda/Perkada" in page
    officer = DashboardClient(base)
    officer.login("satpol", password)
    status, queue = officer.get_page("/satpol/")
    assert status == 200 and 'name="min_age_days"' in queue


def test_the_demo_has_a_technician_and_an_administrator(demo: dict) -> None:
    base = f"http://127.0.0.1:{demo['port']}"

    technician = DashboardClient(base)
    technician.login("teknisi", demo_password(demo, "teknisi"))
    buttons = {b["id"] for b in technician.get_json("/api/devices")["buttons"]}
    assert {"pasar-andoolo-fire-1", "pasar-andoolo-lora-sapa-1"} <= buttons
    admin = DashboardClient(base)
    admin.login("admin", demo_password(demo, "admin"))
    status, page = admin.get_page("/admin/audit")
    assert status == 200 and 'id="audit"' in page


def test_the_demo_stops_cleanly_on_ctrl_c(demo: dict) -> None:
    process = demo["process"]
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0
    assert "Siaga demo stopping" in "".join(demo["output"])


@pytest.mark.parametrize("demo", [["--influxdb", "local"]], indirect=True)
def test_with_time_series_a_demo_press_becomes_a_point_in_a_real_server(demo: dict) -> None:
    """The issue's bar: with [influxdb] set, a press made in the demo is a point within a few seconds."""
    line = next(line for line in demo["output"] if "time series http://" in line)
    server = line.split("time series ")[1].split()[0]
    _board, alarm = press_and_sign_in(demo, "pasar-andoolo-fire-1")
    assert alarm["state"] == "unacknowledged"
    query = urllib.parse.urlencode({"match[]": '{__name__="siaga_press_presses"}', "start": "0"})

    def presses() -> list[dict]:
        urllib.request.urlopen(f"{server}/internal/force_flush", timeout=5).read()
        with urllib.request.urlopen(f"{server}/api/v1/export?{query}", timeout=5) as answer:
            return [json.loads(row) for row in answer.read().decode().splitlines() if row.strip()]

    # The server offers nothing to wait on: its query API is polled.
    series = poll_until(presses, lambda found: found, timeout=10, what="the press as a point")
    labels = series[0]["metric"]
    place = (labels["button"], labels["site"], labels["kecamatan"])
    assert place == ("pasar-andoolo-fire-1", "Pasar Andoolo", "Andoolo")
    assert labels["gateway"] == "gw-pasar-andoolo" and series[0]["values"] == [1]
