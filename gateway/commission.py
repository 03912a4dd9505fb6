"""``siaga-gateway commission``: walk the technician through every button with the dashboard, and get the report.

For each button: the dashboard is asked for its press (the session put the
gateway's buttons in test mode: the press is a test alarm, never a real one),
the technician is told ``press <id> now``, the dashboard is polled until it
has the press, the gateway's own status socket (``gateway/status.py``) is read
to confirm that the indication came back and the LED shows it, and the
technician is asked what they saw (unless ``--yes``). At the end the session is
finished, a summary printed with the report's address.

Exit status: 0 every button passed, 1 one did not (or the dashboard failed
us), 2 sign-in refused, 78 a configuration problem (no ``[dashboard]``: enrol
first). The password is read from ``--password-file`` or asked without echo;
it is never printed or logged.
"""

from __future__ import annotations

import argparse
import getpass
import json
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any, TextIO

from firmware_bridge.errors import ConfigError, SiagaError

from .config import DashboardLink, GatewayConfig, load_config
from .status import StatusUnavailable, read_status

EXIT_PASSED, EXIT_FAILED, EXIT_SIGN_IN, EXIT_CONFIG = 0, 1, 2, 78
#: How often the dashboard is asked whether the press arrived.
POLL_S = 0.5
#: How often the technician is reminded that a press is awaited.
REMIND_S = 15.0
#: How long the gateway's status socket is read for the indication of the press (it follows in milliseconds).
INDICATION_WAIT_S = 10.0
HTTP_TIMEOUT_S = 15.0

_CSRF = re.compile(r'name="csrf[-_]token"\s+(?:value|content)="([^"]+)"')


class DashboardError(SiagaError, RuntimeError):
    """The dashboard refused or failed a request; ``status`` is its HTTP status (0: not reached)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class SignInRefused(DashboardError):
    """The dashboard refused the technician's name and password (or is throttling sign-ins)."""


class Dashboard:
    """A signed-in session with the dashboard: cookie and CSRF token, as the browser has them."""

    def __init__(self, link: DashboardLink, timeout: float = HTTP_TIMEOUT_S) -> None:
        self.base = link.url
        self.timeout = timeout
        handlers: list[urllib.request.BaseHandler] = [urllib.request.HTTPCookieProcessor(CookieJar())]
        if link.url.startswith("https://"):
            context = ssl.create_default_context(cafile=str(link.ca_file) if link.ca_file else None)
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)
        self.csrf = ""

    def _send(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
        # The URL is the configured dashboard's, checked as http(s) when the configuration was read.
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})  # noqa: S310
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status, response.read().decode("utf-8", "replace"), response.geturl()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace"), exc.geturl()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DashboardError(f"cannot reach the dashboard at {self.base}: {reason}") from None

    def _page(self, path: str) -> str:
        status, text, _ = self._send("GET", path)
        if status != 200:
            raise DashboardError(f"GET {path}: HTTP {status}", status)
        if match := _CSRF.search(text):
            self.csrf = match.group(1)
        return text

    def sign_in(self, username: str, password: str) -> None:
        self._page("/login")
        form = urllib.parse.urlencode({"username": username, "password": password, "csrf_token": self.csrf})
        status, text, url = self._send(
            "POST", "/login", form.encode(), {"Content-Type": "application/x-www-form-urlencoded"}
        )
        if status == 429:
            raise SignInRefused("the dashboard refuses sign-ins from here for a while (too many failures)", 429)
        if status != 200 or urllib.parse.urlsplit(url).path.rstrip("/").endswith("/login"):
            raise SignInRefused(f"the dashboard refused the sign-in of {username!r}", status)
        if match := _CSRF.search(text):
            self.csrf = match.group(1)  # the new session's token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Accept": "application/json"}
        data = None
        if method != "GET":
            headers.update({"Content-Type": "application/json", "X-CSRF-Token": self.csrf})
            data = json.dumps(body or {}).encode()
        status, text, _ = self._send(method, path, data, headers)
        try:
            answer = json.loads(text) if text else None
        except ValueError:
            answer = None
        if status >= 400 or not isinstance(answer, dict):
            message = answer.get("message") or answer.get("error") if isinstance(answer, dict) else text[:200]
            raise DashboardError(f"{method} {path}: HTTP {status}: {message}", status)
        return answer


class Console:
    """Where progress goes and answers come from (the terminal; a test's pipes)."""

    def __init__(self, out: TextIO = sys.stdout, answers: TextIO = sys.stdin) -> None:
        self.out = out
        self.answers = answers

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def ask_yes_no(self, question: str) -> str:
        """``yes`` or ``no``; ``not_asked`` if nobody can answer (end of input)."""
        while True:
            print(f"  {question} [y/n] ", end="", file=self.out, flush=True)
            line = self.answers.readline()
            if not line:
                self.say()
                return "not_asked"
            answer = line.strip().lower()
            if answer in ("y", "yes", "ya"):
                return "yes"
            if answer in ("n", "no", "tidak"):
                return "no"


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        try:
            return Path(args.password_file).read_text("utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"--password-file {args.password_file}: {exc.strerror or exc}") from None
    return getpass.getpass("Dashboard password: ")


def _chosen_buttons(config: GatewayConfig, wanted: list[str] | None) -> list[str]:
    every = config.all_button_ids
    if not wanted:
        return every
    unknown = [button for button in wanted if button not in every]
    if unknown:
        raise ConfigError(f"--button {', '.join(unknown)}: not a button of gateway {config.id} ({config.file})")
    return [button for button in every if button in wanted]


def run_commission(args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or Console()
    try:
        config = load_config(args.config)
        if config.dashboard is None:
            raise ConfigError(
                f"{config.file}: no [dashboard] url: enrol first (siaga-gateway enrol) or add "
                '[dashboard] url = "https://..." to the configuration'
            )
        buttons = _chosen_buttons(config, args.button)
    except ConfigError as exc:
        print(f"siaga-gateway commission: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    dashboard = Dashboard(config.dashboard)
    try:
        user = args.user or input("Dashboard user (technician): ").strip()
        password = _password(args)
        dashboard.sign_in(user, password)
    except ConfigError as exc:
        print(f"siaga-gateway commission: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except SignInRefused as exc:
        print(f"siaga-gateway commission: {exc}", file=sys.stderr)
        return EXIT_SIGN_IN
    except (DashboardError, EOFError) as exc:
        print(f"siaga-gateway commission: {exc or 'no user name given'}", file=sys.stderr)
        return EXIT_FAILED
    return Commissioning(config, dashboard, console, args.timeout, ask=not args.yes).run(user, buttons)


class Commissioning:
    """One run of the command: the session, each button in turn, the report."""

    def __init__(
        self, config: GatewayConfig, dashboard: Dashboard, console: Console, timeout: float, *, ask: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.config = config
        self.dashboard = dashboard
        self.console = console
        self.timeout = timeout
        self.ask = ask
        self.clock = clock
        self.session: dict[str, Any] = {}

    @property
    def _path(self) -> str:
        return f"/api/commissioning/sessions/{self.session['id']}"

    def run(self, user: str, buttons: list[str]) -> int:
        say = self.console.say
        say(f"Commissioning gateway {self.config.id} with {self.dashboard.base} as {user}: {len(buttons)} button(s)")
        try:
            self.session = self.dashboard.call(
                "POST", "/api/commissioning/sessions", {"gw": self.config.id, "buttons": buttons}
            )
        except DashboardError as exc:
            print(f"siaga-gateway commission: could not start the session: {exc}", file=sys.stderr)
            return EXIT_FAILED
        say(f"Session {self.session['id']} started: the buttons are in test mode until {self.session['expires_at']}")
        try:
            for number, button in enumerate(self.session["buttons"], 1):
                say(f"[{number}/{len(self.session['buttons'])}] {button['id']}")
                self.commission(button)
            report = self.dashboard.call("POST", self._path + "/finish")
        except KeyboardInterrupt:
            self._abandon("Interrupted")
            return 130
        except DashboardError as exc:
            print(f"siaga-gateway commission: {exc}", file=sys.stderr)
            self._abandon("Stopped")
            return EXIT_FAILED
        except Exception:
            # Whatever stops the run, the buttons must not stay in test mode: a real press there would be muted.
            self._abandon("Stopped by an error")
            raise
        self.summary(report)
        return EXIT_PASSED if report["verdict"] == "passed" else EXIT_FAILED

    def _abandon(self, why: str) -> None:
        try:
            self.dashboard.call("POST", self._path + "/abandon")
            self.console.say(f"\n{why}: the session is abandoned and its buttons left test mode.")
        except DashboardError as exc:
            # Said loudly: until the session expires, these buttons' presses are test alarms.
            buttons = ", ".join(b["id"] for b in self.session.get("buttons", []))
            self.console.say(
                f"\n{why}; the session could not be abandoned ({exc}). WARNING: {buttons} stay in test mode "
                f"until {self.session.get('expires_at')}: end the session in the device view, or put the buttons "
                "back in service there."
            )

    def commission(self, button: dict[str, Any]) -> None:
        say = self.console.say
        path = f"{self._path}/buttons/{urllib.parse.quote(button['id'], safe='')}"
        self.dashboard.call("POST", path + "/arm")
        where = ", ".join(part for part in (button.get("label"), button.get("site")) if part)
        say(f"  press {button['id']} now ({where})")
        pressed = self.wait_for_press(button["id"])
        if pressed is None:
            self.dashboard.call("POST", path, {"gave_up": True})
            say(f"  no press reached the dashboard within {self.timeout:g} s")
        else:
            test = "a test alarm" if pressed["test_alarm"] else "NOT a test alarm"
            radio = f", RSSI {pressed['rssi']} dBm / SNR {pressed['snr']} dB" if pressed["rssi"] is not None else ""
            say(f"  press seen: event {pressed['event_id']}, alarm {pressed['alarm_id']} ({test}){radio}")
            answers = self.indication(pressed)
            answers.update(self.answers(pressed, answers.pop("_has_buzzer", button["kind"] == "fire")))
            self.dashboard.call("POST", path, answers)
        final = self._button(self.dashboard.call("GET", self._path), button["id"])
        reasons = f" ({', '.join(final['reasons'])})" if final["reasons"] else ""
        say(f"  -> {final['result'].upper()}{reasons}")

    def wait_for_press(self, button_id: str) -> dict[str, Any] | None:
        deadline = self.clock() + self.timeout
        next_note = self.clock() + REMIND_S
        while True:
            try:
                self.session = self.dashboard.call("GET", self._path)
            except DashboardError as exc:  # a Wi-Fi blip or a busy dashboard: ask again until the deadline
                if self.clock() >= deadline:
                    raise
                self.console.say(f"  the dashboard did not answer ({exc}); asking again")
                time.sleep(POLL_S)
                continue
            record = self._button(self.session, button_id)
            if record["event_id"] is not None:
                return record
            now = self.clock()
            if now >= deadline:
                return None
            if now >= next_note:
                self.console.say(f"  still waiting for the press of {button_id} ({deadline - now:.0f} s left)")
                next_note = now + REMIND_S
            time.sleep(POLL_S)

    @staticmethod
    def _button(session: dict[str, Any], button_id: str) -> dict[str, Any]:
        return next(b for b in session["buttons"] if b["id"] == button_id)

    def indication(self, pressed: dict[str, Any]) -> dict[str, Any]:
        """What the gateway's status socket says of the button once it shows this press's alarm."""
        socket_path = self.config.status_socket
        if socket_path is None:
            self.console.say("  no status socket configured ([gateway] status_socket): indication not checked")
            return {}
        deadline = self.clock() + INDICATION_WAIT_S
        mine: dict[str, Any] | None = None
        while True:
            try:
                document = read_status(socket_path)
            except StatusUnavailable as exc:
                self.console.say(f"  cannot read the gateway's status ({exc}): is siaga-gateway running here?")
                return {}
            mine = next((b for b in document["buttons"] if isinstance(b, dict) and b.get("id") == pressed["id"]), None)
            indication = (mine or {}).get("indication") or {}
            if indication.get("alarm") == pressed["alarm_id"] or self.clock() >= deadline:
                break
            time.sleep(POLL_S)
        if mine is None:
            self.console.say("  the gateway's status does not list this button")
            return {}
        indication = mine.get("indication") or {}
        self.console.say(
            f"  gateway shows: {indication.get('state', 'nothing')} for alarm {indication.get('alarm', '-')}, "
            f"LED {mine.get('led')}"
        )
        answers: dict[str, Any] = {
            "indication": {
                "state": indication.get("state"),
                "alarm": indication.get("alarm"),
                "led": str(mine.get("led")),
                "indicated_at": mine.get("indicated_at"),
            },
            "_has_buzzer": bool(mine.get("has_buzzer")),
        }
        if mine.get("firmware"):
            answers["node_firmware"] = str(mine["firmware"])[:64]
        return answers

    def answers(self, pressed: dict[str, Any], has_buzzer: bool) -> dict[str, str]:
        buzzer_applies = pressed["kind"] == "fire" and has_buzzer
        if not self.ask:
            return {"led_seen": "not_asked", "buzzer_heard": "not_asked" if buzzer_applies else "none"}
        led = self.console.ask_yes_no("Is the LED blinking?")
        buzzer = self.console.ask_yes_no("Did the buzzer sound?") if buzzer_applies else "none"
        return {"led_seen": led, "buzzer_heard": buzzer}

    def summary(self, report: dict[str, Any]) -> None:
        say = self.console.say
        say()
        header = ("button", "press", "test alarm", "radio", "indication", "LED", "buzzer", "result")
        rows = [header] + [
            (
                b["id"],
                b["checks"]["press"],
                b["checks"]["test_alarm"],
                b["checks"]["radio"],
                b["checks"]["indication"],
                b["led_seen"],
                b["buzzer_heard"],
                b["result"].upper(),
            )
            for b in report["buttons"]
        ]
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
        for row in rows:
            say("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        say()
        say(f"Gateway {report['gw']} software {report.get('gateway_version') or 'unknown'}; "
            f"commissioned by {report['started_by']}")  # fmt: skip
        say(f"Verdict: {report['verdict'].upper()}")
        say(f"Report: {report['report_url']}")
        say(f"PDF:    {report['pdf_url']}")
