"""Commissioning end to end: ``siaga-gateway commission`` against a real dashboard, broker and gateway process.

The gateway runs in its own process on mock pins (``siaga-sim gateway``, pressed
through its control API) with its status socket in a folder of the test; the
command runs as a subprocess and each button is pressed when it says
``press <id> now``. What is checked: the presses raised test alarms only (no
real alarm, no escalation), the report is stored, shown as HTML and as a PDF
naming the buttons and the technician, linked from the device view; a button
not pressed fails the run; ``not_commissioned`` and ``test_overdue`` appear
and clear, for the roles that see that button's troubles; a commissioning with
a SAPA button is never shown to the fire post or an administrator.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory
from pypdf import PdfReader

from dashboard.commissioning.results import judge, verdict
from dashboard.commissioning.settings import CommissioningSettings, read_commissioning
from dashboard.db import connect
from dashboard.devices.supervision import SupervisionSettings, TroubleType, periodic_test_troubles
from firmware_bridge.broker import BrokerSettings
from firmware_bridge.errors import ConfigError
from firmware_bridge.settings import parse_toml
from gateway.status import StatusServer, read_status
from sim.gatewayconf import gateway_document, toml_text
from sim.mosquitto import Mosquitto
from sim.servers import DashboardServer, dashboard_config
from sim.webclient import DashboardClient, HTTPStatusError

from .conftest import ADMIN, FIRE_1, OPERATOR, SAPA_1, SAPA_DESK
from .waiting import poll_until

TECHNICIAN = ("teknisi", "teknisi-password-1")
GW = "gw-komisi"
REPO = Path(__file__).resolve().parent.parent
DAY_S = 86400.0


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path: a Unix socket's path must fit in 108 bytes (pytest's tmp_path may not)."""
    folder = Path(tempfile.mkdtemp(prefix="siaga-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def commissioning_dashboard(tmp_path: Path, broker_settings: BrokerSettings) -> Iterator[DashboardServer]:
    """A dashboard that requires commissioning (as a real site does), with every role's account."""
    config = dashboard_config(
        tmp_path / "dashboard",
        broker_settings,
        SIAGA_COMMISSIONING=CommissioningSettings(required=True),
        SIAGA_SUPERVISION=SupervisionSettings(check_interval_s=0.2),
    )
    server = DashboardServer(config).start()
    server.create_user(*TECHNICIAN, "technician")
    server.create_user(*OPERATOR, "fire_operator")
    server.create_user(*SAPA_DESK, "sapa_desk")
    server.create_user(*ADMIN, "admin")
    yield server
    server.stop()


@dataclass
class GatewayProcess:
    """``siaga-sim gateway`` on mock pins, pressed through its control API."""

    config: Path
    socket: Path
    process: subprocess.Popen[str] | None = None
    control: str = ""
    lines: list[str] = field(default_factory=list)

    def start(self) -> GatewayProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sim", "gateway", "--config", str(self.config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        )  # fmt: skip
        ready = threading.Event()

        def read() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self.lines.append(line)
                if "control on " in line:
                    self.control = line.split("control on ", 1)[1].strip().rstrip("/")
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        assert ready.wait(30), "".join(self.lines)
        return self

    def press(self, button: str) -> str:
        request = urllib.request.Request(f"{self.control}/press/{button}", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["id"]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def write_gateway(folder: Path, mosquitto: Mosquitto, dashboard_url: str | None) -> Path:
    document = gateway_document(
        GW,
        mqtt={"host": "127.0.0.1", "port": mosquitto.port},
        buttons=[FIRE_1, SAPA_1],
        data_dir=str(folder / "data"),
        health_interval_s=1,
        status_socket=str(folder / "run" / "gw.sock"),
    )
    if dashboard_url is not None:
        document["dashboard"] = {"url": dashboard_url}
    (folder / "run").mkdir(exist_ok=True)
    path = folder / "gateway.toml"
    path.write_text(toml_text(document), "utf-8")
    return path


@pytest.fixture
def site(
    short_dir: Path, mosquitto: Mosquitto, commissioning_dashboard: DashboardServer
) -> Iterator[tuple[GatewayProcess, DashboardServer, DashboardClient]]:
    """The gateway process registered with the dashboard, and the technician signed in."""
    config = write_gateway(short_dir, mosquitto, commissioning_dashboard.url)
    gateway = GatewayProcess(config, short_dir / "run" / "gw.sock").start()
    technician = DashboardClient(commissioning_dashboard.url)
    technician.login(*TECHNICIAN)
    poll_until(lambda: technician.get_json("/api/devices")["buttons"], lambda b: len(b) == 2, timeout=20,
               what="the gateway's inventory at the dashboard")  # fmt: skip
    try:
        yield gateway, commissioning_dashboard, technician
    finally:
        gateway.stop()


class CommissionRun:
    """``siaga-gateway commission`` as a subprocess; presses each button when it asks (unless told not to)."""

    def __init__(self, config: Path, password_file: Path, *args: str, answers: str | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(config), "commission", "--user", TECHNICIAN[0],
             "--password-file", str(password_file), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )  # fmt: skip
        self.answers = answers
        self.output: list[str] = []

    def run(self, gateway: GatewayProcess, press: Callable[[str], bool] = lambda _b: True) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        if self.answers is not None:
            self.process.stdin.write(self.answers)
            self.process.stdin.flush()
        self.process.stdin.close()
        for line in self.process.stdout:
            self.output.append(line)
            words = line.split()
            if len(words) >= 3 and words[0] == "press" and words[2] == "now" and press(words[1]):
                gateway.press(words[1])
        assert self.process.stderr is not None
        self.errors = self.process.stderr.read()
        return self.process.wait(30)

    @property
    def text(self) -> str:
        return "".join(self.output)


def password_file(folder: Path, password: str = TECHNICIAN[1]) -> Path:
    path = folder / "password"
    path.write_text(password + "\n")
    path.chmod(0o600)
    return path


def troubles(client: DashboardClient) -> set[tuple[str, str]]:
    return {(t["type"], t["subject"]) for t in client.get_json("/api/troubles")["troubles"]}


def signed_in(server: DashboardServer, account: tuple[str, str]) -> DashboardClient:
    client = DashboardClient(server.url)
    client.login(*account)
    return client


def status_of(client: DashboardClient, path: str) -> int:
    status, _body, _url = client._request("GET", path)
    return status


def test_commissioning_a_gateway_tests_each_button_as_a_test_and_keeps_the_report(
    site: tuple[GatewayProcess, DashboardServer, DashboardClient], short_dir: Path
) -> None:
    gateway, dashboard, technician = site
    operator, desk, admin = (signed_in(dashboard, a) for a in (OPERATOR, SAPA_DESK, ADMIN))

    # Never commissioned: a trouble for whoever sees that button's troubles.
    poll_until(lambda: troubles(technician), lambda t: {("not_commissioned", "fire-1"),
               ("not_commissioned", "sapa-1")} <= t, what="not_commissioned troubles")  # fmt: skip
    assert ("not_commissioned", "fire-1") in troubles(operator)
    assert ("not_commissioned", "sapa-1") not in troubles(operator) | troubles(admin)
    assert ("not_commissioned", "sapa-1") in troubles(desk)

    run = CommissionRun(gateway.config, password_file(short_dir), "--yes", "--timeout", "30")
    code = run.run(gateway)
    assert code == 0, run.text + run.errors
    assert "press fire-1 now (Blok A, Pasar Andoolo)" in run.text
    assert "Verdict: PASSED" in run.text
    assert TECHNICIAN[1] not in run.text + run.errors  # the password is never shown
    report_url = next(line.split()[1] for line in run.output if line.startswith("Report:"))
    session_id = int(report_url.rstrip("/").rsplit("/", 1)[1])

    # Both presses raised test alarms, never real ones, and nothing escalated.
    fire_alarms = operator.get_json("/api/alarms?state=all")["alarms"]
    assert [a["button"] for a in fire_alarms] == ["fire-1"] and all(a["test"] for a in fire_alarms)
    assert all(a["escalation"] == 0 for a in fire_alarms)
    sapa_alarms = desk.get_json("/api/alarms?state=all")["alarms"]
    assert [a["button"] for a in sapa_alarms] == ["sapa-1"] and all(a["test"] for a in sapa_alarms)
    with connect(dashboard.config["DATABASE"]) as conn:
        assert conn.execute("SELECT COUNT(*) FROM notifications").fetchone()[0] == 0

    # The report: stored, shown, downloadable, linked from the device view.
    session = technician.get_json(f"/api/commissioning/sessions/{session_id}")
    assert session["state"] == "finished" and session["verdict"] == "passed"
    fire = next(b for b in session["buttons"] if b["id"] == "fire-1")
    assert fire["checks"] == {"press": "passed", "test_alarm": "passed", "radio": "not_applicable",
                              "indication": "passed"}  # fmt: skip
    assert fire["indication"]["alarm"] == fire["alarm_id"] and fire["buzzer_heard"] == "not_asked"
    status, page = technician.get_page(f"/commissioning/reports/{session_id}")
    assert status == 200
    assert 'data-button="fire-1" data-result="passed"' in page and 'data-button="sapa-1" data-result="passed"' in page
    assert 'data-verdict="passed"' in page and TECHNICIAN[0] in page
    pdf = urllib_get(technician, f"/commissioning/reports/{session_id}.pdf")
    assert pdf.startswith(b"%PDF")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    for word in ("fire-1", "sapa-1", TECHNICIAN[0], GW, "LULUS"):
        assert word in text, word
    _, devices = technician.get_page("/devices")
    assert f'href="/commissioning/reports/{session_id}"' in devices and 'data-commissioning="sapa-1"' in devices

    # Commissioned: the troubles clear; the buttons are back in service.
    poll_until(lambda: troubles(technician), lambda t: not {k for k in t if k[0] == "not_commissioned"},
               what="not_commissioned cleared")  # fmt: skip
    buttons = technician.get_json("/api/devices")["buttons"]
    assert all(b["service"] is None for b in buttons)

    # Privacy: not for the fire post at all; an administrator sees no report that holds a SAPA button.
    for client in (operator, desk):
        assert status_of(client, f"/commissioning/reports/{session_id}") == 403
        assert status_of(client, f"/api/commissioning/sessions/{session_id}") == 403
    _, operator_devices = operator.get_page("/devices")
    assert "data-commissioning" not in operator_devices and "/commissioning/" not in operator_devices
    assert status_of(admin, f"/commissioning/reports/{session_id}") == 404
    assert status_of(admin, f"/commissioning/reports/{session_id}.pdf") == 404
    assert status_of(admin, f"/api/commissioning/sessions/{session_id}") == 404
    _, listing = admin.get_page("/commissioning")
    assert f'data-report="{session_id}"' not in listing

    # A month later (the store's last tests moved back): both overdue; a fire button's test press in test
    # mode counts as its test, a SAPA button's does not (that press is the SAPA desk's to know).
    with connect(dashboard.config["DATABASE"]) as conn:
        month = 31 * DAY_S
        conn.execute(
            "UPDATE button_tests SET commissioned_at = commissioned_at - ?, tested_at = tested_at - ?", (month, month)
        )
        conn.execute("UPDATE events SET received_at = received_at - ?", (month,))  # its test presses too
        conn.commit()
    poll_until(lambda: troubles(technician), lambda t: {("test_overdue", "fire-1"), ("test_overdue", "sapa-1")} <= t,
               what="test_overdue troubles")  # fmt: skip
    for button in ("fire-1", "sapa-1"):
        technician.post_form(
            f"/devices/buttons/{button}/service", {"mode": "test", "reason": "uji bulanan", "hours": "1"}
        )
        gateway.press(button)
    poll_until(lambda: troubles(technician), lambda t: ("test_overdue", "fire-1") not in t,
               what="fire-1's test press counted")  # fmt: skip
    assert ("test_overdue", "sapa-1") in troubles(technician) and ("test_overdue", "sapa-1") in troubles(desk)


def urllib_get(client: DashboardClient, path: str) -> bytes:
    request = urllib.request.Request(client.base_url + path)
    with client._opener.open(request, timeout=10) as response:
        return response.read()


def test_a_button_not_pressed_fails_the_run_and_is_recorded_as_failed(
    site: tuple[GatewayProcess, DashboardServer, DashboardClient], short_dir: Path
) -> None:
    gateway, _dashboard, technician = site
    # The technician answers the prompts: the fire button's LED and buzzer seen; the SAPA button never pressed.
    run = CommissionRun(gateway.config, password_file(short_dir), "--timeout", "3", answers="y\ny\n")
    code = run.run(gateway, press=lambda button: button == "fire-1")
    assert code == 1, run.text + run.errors
    assert "Is the LED blinking? [y/n]" in run.text and "Did the buzzer sound? [y/n]" in run.text
    assert "no press reached the dashboard within 3 s" in run.text and "Verdict: FAILED" in run.text
    (report,) = technician.get_page("/commissioning")[1].split('data-report="')[1:2]
    session_id = int(report.split('"', 1)[0])
    session = technician.get_json(f"/api/commissioning/sessions/{session_id}")
    results = {b["id"]: b for b in session["buttons"]}
    assert results["fire-1"]["result"] == "passed" and results["fire-1"]["led_seen"] == "yes"
    assert results["fire-1"]["buzzer_heard"] == "yes"
    assert results["sapa-1"]["result"] == "failed" and results["sapa-1"]["reasons"] == ["no_press"]
    assert session["verdict"] == "failed"
    # Only the button that passed is commissioned.
    poll_until(lambda: troubles(technician), lambda t: ("not_commissioned", "fire-1") not in t)
    assert ("not_commissioned", "sapa-1") in troubles(technician)


def test_a_run_the_dashboard_stops_answering_ends_with_a_warning_not_a_traceback(
    site: tuple[GatewayProcess, DashboardServer, DashboardClient], short_dir: Path
) -> None:
    """Whatever ends a run early, it tries to end the session (test mode would mute real presses there); when even
    that cannot reach the dashboard, it says loudly which buttons stay in test mode and until when."""
    gateway, dashboard, _technician = site

    def dashboard_gone(_button: str) -> bool:
        dashboard.stop()
        return False

    run = CommissionRun(gateway.config, password_file(short_dir), "--yes", "--timeout", "3")
    code = run.run(gateway, press=dashboard_gone)
    assert code == 1, run.text + run.errors
    assert "the dashboard did not answer" in run.text and "Traceback" not in run.errors
    assert "WARNING: fire-1, sapa-1 stay in test mode until" in run.text


def test_a_sapa_press_that_raised_a_real_alarm_is_never_recorded_in_a_session(
    site: tuple[GatewayProcess, DashboardServer, DashboardClient],
) -> None:
    """Put back in service during the session, a SAPA button's press is a real call for help: its time and alarm
    are the SAPA desk's alone, so the session (read by technicians) records nothing of it."""
    gateway, dashboard, technician = site
    session = technician.post_json("/api/commissioning/sessions", {"gw": GW, "buttons": ["sapa-1"]}, expect=201)
    path = f"/api/commissioning/sessions/{session['id']}"
    technician.post_form("/devices/buttons/sapa-1/service", {"mode": "in_service", "reason": "", "hours": "0"})
    technician.post_json(path + "/buttons/sapa-1/arm", {})
    gateway.press("sapa-1")
    desk = signed_in(dashboard, SAPA_DESK)
    poll_until(lambda: desk.get_json("/api/alarms")["alarms"], lambda a: any(not x["test"] for x in a),
               what="the real SAPA alarm")  # fmt: skip
    record = next(b for b in technician.get_json(path)["buttons"] if b["id"] == "sapa-1")
    assert (record["event_id"], record["alarm_id"], record["pressed_at"]) == (None, None, None)


def test_the_command_refuses_a_wrong_password_and_a_gateway_not_enrolled(
    site: tuple[GatewayProcess, DashboardServer, DashboardClient], short_dir: Path, mosquitto: Mosquitto
) -> None:
    gateway, _dashboard, _technician = site
    wrong = CommissionRun(gateway.config, password_file(short_dir, "not-the-password"), "--yes")
    assert wrong.run(gateway) == 2
    assert "refused the sign-in" in wrong.errors and "not-the-password" not in wrong.text + wrong.errors
    lonely = short_dir / "lonely"
    lonely.mkdir()
    unenrolled = CommissionRun(write_gateway(lonely, mosquitto, None), password_file(short_dir), "--yes")
    assert unenrolled.run(gateway) == 78
    assert "enrol first" in unenrolled.errors


def test_the_technician_commissions_from_the_device_view(
    site: tuple[GatewayProcess, DashboardServer, DashboardClient],
) -> None:
    gateway, _dashboard, technician = site
    status, page = technician.post_form("/commissioning/sessions", {"gw": GW})
    assert status == 200 and 'id="commissioning-session"' in page
    session_id = int(page.split('data-session="', 1)[1].split('"', 1)[0])
    gateway.press("fire-1")
    gateway.press("sapa-1")
    api = f"/api/commissioning/sessions/{session_id}"
    poll_until(lambda: technician.get_json(api)["buttons"], lambda b: all(x["event_id"] for x in b),
               what="both presses seen")  # fmt: skip
    # No status socket in the browser: the technician's eyes confirm the LED (and the fire button's buzzer).
    technician.post_form(f"/commissioning/sessions/{session_id}/buttons/fire-1",
                         {"action": "answer", "led_seen": "yes", "buzzer_heard": "yes"})  # fmt: skip
    session = technician.get_json(api)
    sapa = next(b for b in session["buttons"] if b["id"] == "sapa-1")
    assert sapa["result"] == "pending" and sapa["reasons"] == ["led_unconfirmed"]
    technician.post_form(
        f"/commissioning/sessions/{session_id}/buttons/sapa-1", {"action": "answer", "led_seen": "yes"}
    )
    status, report = technician.post_form(f"/commissioning/sessions/{session_id}/finish", {})
    assert status == 200 and 'id="commissioning-report" data-verdict="passed"' in report
    # The record never changes after: answers to a finished session are refused.
    with pytest.raises(HTTPStatusError) as refused:
        technician.post_json(f"{api}/buttons/fire-1", {"led_seen": "no"})
    assert refused.value.status == 409


def test_the_rule_book_drives_time_by_its_now() -> None:
    buttons = {"fire-1": ("gw", "fire", "gpio"), "sapa-1": ("gw", "sapa", "lora"), "fire-2": ("gw", "fire", "gpio")}
    period = 30 * DAY_S
    t0 = 1_800_000_000.0
    tests = {"fire-1": (t0, t0), "sapa-1": (t0, t0 + 5 * DAY_S)}
    assert {(t.type, t.button) for t in periodic_test_troubles(t0 + DAY_S, buttons, tests, period)} == {
        (TroubleType.NOT_COMMISSIONED, "fire-2")
    }
    later = periodic_test_troubles(t0 + 31 * DAY_S, buttons, tests, period)
    overdue = {t.button: t for t in later if t.type is TroubleType.TEST_OVERDUE}
    assert set(overdue) == {"fire-1"} and overdue["fire-1"].began_at == t0 + period and overdue["fire-1"].kind == "fire"
    assert {t.button for t in periodic_test_troubles(t0 + 36 * DAY_S, buttons, tests, period)} == {
        "fire-1",
        "sapa-1",
        "fire-2",
    }


def test_a_lora_button_keeps_the_radio_margin_or_fails() -> None:
    settings = CommissioningSettings()  # RSSI >= -115 dBm, SNR >= -2.5 dB
    pressed = {"transport": "lora", "event_id": "e", "test_alarm": True, "alarm_id": 33, "led_seen": "yes",
               "indication": {"state": "received", "alarm": 33, "led": "received"}}  # fmt: skip
    assert judge({**pressed, "rssi": -96.0, "snr": 7.0}, settings)["result"] == "passed"
    weak = judge({**pressed, "rssi": -121.0, "snr": 7.0}, settings)
    assert weak["result"] == "failed" and weak["reasons"] == ["weak_radio"]
    assert judge({**pressed, "rssi": -100.0, "snr": -6.0}, settings)["checks"]["radio"] == "failed"
    e32 = judge({**pressed, "rssi": None, "snr": None}, settings)  # the E32 reports neither
    assert e32["checks"]["radio"] == "not_measured" and e32["result"] == "passed"
    real = judge({**pressed, "rssi": -90.0, "snr": 8.0, "test_alarm": False}, settings)
    assert real["reasons"] == ["not_a_test_alarm"]
    waiting = {"transport": "gpio", "event_id": None}
    assert (
        judge(waiting, settings)["result"] == "pending" and judge(waiting, settings, final=True)["result"] == "failed"
    )
    assert verdict([]) == "failed" and verdict(["passed", "passed"]) == "passed"


class _FakeCounters:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, name: str, amount: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + amount


def test_the_status_socket_serves_the_gateway_and_never_stops_it(
    make_gateway_config: Callable[..., Any], start_gateway: Callable[..., Any], short_dir: Path, pin_factory: Any
) -> None:
    path = short_dir / "gw.sock"
    # A socket left by a gateway that died is replaced.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    config = make_gateway_config()
    gateway = start_gateway(replace(config, status_socket=path))
    assert gateway.status is not None and gateway.status.is_alive()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    document = read_status(path)
    assert document["gw"] == "gw-test" and document["v"] == 1
    fire = next(b for b in document["buttons"] if b["id"] == "fire-1")
    assert fire["led"] == "off" and fire["indication"] is None and fire["has_buzzer"] and fire["has_led"]
    # A client that connects and never reads costs one send timeout at most; the next client is served.
    idle = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(3)]
    for client in idle:
        client.connect(str(path))
    started = time.monotonic()
    assert read_status(path)["gw"] == "gw-test"
    assert time.monotonic() - started < 5
    for client in idle:
        client.close()
    # A second server on the same path (another gateway) does not take it from the first one.
    counters = _FakeCounters()

    class Other:
        pass

    other = Other()
    other.counters = counters  # type: ignore[attr-defined]
    second = StatusServer(other, path).start()  # type: ignore[arg-type]
    assert not second.is_alive() and counters.counts == {"status_errors": 1}
    assert read_status(path)["gw"] == "gw-test"
    # Without its folder (no RuntimeDirectory) the gateway starts all the same, unserved.
    missing = make_gateway_config("gw-two")
    lonely = start_gateway(
        replace(missing, status_socket=short_dir / "nowhere" / "gw.sock"), factory=MockFactory(), wait_connected=False
    )
    assert lonely.status is not None and not lonely.status.is_alive()
    assert lonely.counters.get("status_errors") == 1


@pytest.mark.browser
def test_a_technician_commissions_in_the_browser_and_the_page_follows_each_press(
    site: tuple[GatewayProcess, DashboardServer, DashboardClient], browser: Any
) -> None:
    """Chromium: start from the device view, watch each press appear by itself, tick the LED, finish."""
    playwright_api = pytest.importorskip("playwright.sync_api", reason="no Playwright wheels on this machine")
    gateway, dashboard, _technician = site
    expect = playwright_api.expect
    context = browser.new_context(locale="id-ID")
    try:
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.set_default_timeout(15_000)
        page.goto(dashboard.url + "/login")
        page.fill("form.login input[name=username]", TECHNICIAN[0])
        page.fill("form.login input[name=password]", TECHNICIAN[1])
        page.click("form.login button[type=submit]")
        page.wait_for_url(dashboard.url + "/devices")
        page.click(f"[data-commissioning='{GW}'] button[type=submit]")
        expect(page.locator("#commissioning-session")).to_have_attribute("data-state", "open")
        for button in ("fire-1", "sapa-1"):
            row = page.locator(f"#commissioning-buttons tr[data-button='{button}']")
            expect(row).to_have_attribute("data-result", "pending")
            gateway.press(button)
            # No click: the page polls and shows the press, waiting for the LED to be confirmed.
            expect(row).to_contain_text("kejadian")
            answers = page.locator(f"tr[data-answers='{button}']")
            answers.locator("select[name=led_seen]").select_option("yes")
            if button == "fire-1":
                answers.locator("select[name=buzzer_heard]").select_option("yes")
            answers.locator("button[value=answer]").click()
            expect(page.locator(f"#commissioning-buttons tr[data-button='{button}']")).to_have_attribute(
                "data-result", "passed"
            )
        page.click("#commissioning-finish button[type=submit]")
        expect(page.locator("#commissioning-report")).to_have_attribute("data-verdict", "passed")
        expect(page.locator("#commissioning-results tr[data-result=passed]")).to_have_count(2)
        assert problems == []
    finally:
        context.close()


def test_the_commissioning_settings_are_read_once_and_checked() -> None:
    def read(text: str) -> CommissioningSettings:
        return read_commissioning(parse_toml(text, "dashboard.toml").section("commissioning"))

    assert read("") == CommissioningSettings() and CommissioningSettings().required
    custom = read("[commissioning]\nrequired = false\ntest_period_days = 7\nmin_rssi_dbm = -110\n")
    assert not custom.required and custom.test_period_s == 7 * DAY_S and custom.min_snr_db == -2.5
    for wrong in ("test_period_days = 0", "min_rssi_dbm = 5", "session_minutes = 5", "requird = true"):
        with pytest.raises(ConfigError, match="commissioning"):
            read(f"[commissioning]\n{wrong}\n")
