"""A SAPA press is invisible to every role but the SAPA desk, on every route and stream the app registers.

SAPA alarms concern women and children at risk (UU PDP 27/2022): only the
``sapa_desk`` role may learn that one exists (docs/operators.md, "Roles").
This test cannot go stale because nothing in it lists routes by hand.

**The experiment.** The same scenario runs twice, each time on fresh real
parts (Mosquitto, the dashboard under uvicorn with its ingest, supervisor
and escalator, a gateway on gpiozero mock pins with a virtual LoRa module on
a pty, a virtual LoRa node running the reference firmware, two webhook
receivers): once *with* SAPA activity and once *without*. Both runs have the
same devices (three wired SAPA buttons, a LoRa SAPA node, two fire buttons),
the same fire alarm (pressed, escalated, acknowledged, dispatched), the same
citizen report with a photo, the same service changes by a technician (one
SAPA button in test mode, one out of service) and the same sign-ins and
reads by every role. Only the SAPA run also presses: a wired SAPA button
(escalated, acknowledged and dispatched by the SAPA desk with notes), the
LoRa SAPA node (escalated, left open), the SAPA button in test mode (a test
alarm) and the one out of service (a suppressed press).

**Every route.** ``app.url_map`` of the running app is enumerated; every rule
that answers GET is requested with GET and HEAD, as every role (anonymous,
fire_operator, satpol, technician, admin, evaluator, sapa_desk). Converters are filled
from :func:`fillers` with real values of the run (the SAPA and fire alarms'
ids *and* their numbers, button and gateway ids, the report's ticket, token
and photo, user ids, ...); ``any(...)`` converters fill themselves. A GET
rule with an argument nobody can fill fails the test and asks for a filler,
so a new route never escapes silently. A few query strings per endpoint are
added (``?state=all``, ``?kind=sapa``, ``?group=...``): those are variants
of enumerated routes, never the list itself.

**Every stream.** Any response of type ``text/event-stream`` is a stream.
Each one a role can open is opened before the scenario and kept open, so
every event it carries is recorded; after the scenario a fire alarm is
resolved as a marker and each stream is read until the marker (or a short
timeout). In the final sweep each stream's snapshot (its first event with
data) is compared too. Streams are swept last, so that the open-stream count
in diagnostics is the same in both runs.

**The oracle.** For each role but the SAPA desk, every response (status,
headers, normalised body) and every stream (the sorted list of normalised
events) must be identical in both runs: any counter, id, row, state or
number that moved because of SAPA activity is a leak. On top, the SAPA run's
raw bodies are scanned for what the SAPA desk wrote (notes, unit), the SAPA
presses' event ids, and (for roles with no business with SAPA devices) the
SAPA buttons' ids, labels and SAPA-only site names, to name leaks readably.

**Normalisation** (both runs alike, every role alike) removes only what
differs between two identical runs and cannot depend on SAPA activity:

- times: ISO 8601 timestamps, ``Content-Disposition`` stamps, and numbers
  under JSON keys ``*_at``/``at``/``ts`` become ``<time>``;
- durations: numbers under JSON keys ending in ``_s`` (ages, uptime, medians),
  CSV columns ending in ``_s``, and in HTML the "N s ago" phrases, the
  statistics' "N s"/"N min" cells, ``data-seconds`` and the y/height of the
  statistics chart's bars (their count and labels stay) become ``<seconds>``.
  Fire alarms are acknowledged after a wall-clock wait that varies by a few
  hundred ms; alarm *counts* are never normalised;
- radio measurements: ``rssi``/``snr`` numbers and "N dBm / M dB" (the
  simulated air draws them; the device view may show them: operators.md,
  "The device view");
- random tokens: CSRF tokens, the report's Open311 token (replaced by name),
  ULIDs/UUIDs (event ids: random, and fire event ids are the same kind of
  value in both runs); the dashboard's own URL (its port);
- Prometheus samples of times (``/metrics``: ``_seconds``, their histograms'
  buckets and sums, and ``_created``) become ``<seconds>``, and its lines are
  compared sorted (series appear in the order of their first request); request
  *counts* are compared (the SAPA desk's own requests are not counted at all);
- headers ``Date``, ``Server``, ``Set-Cookie``, ``Content-Length`` and the
  file headers ``ETag``/``Expires``/``Last-Modified`` (the report's photo is
  written anew in each run); binary bodies are compared by SHA-256.

Ids are *not* normalised. Alarm ids are ``16 * number + kind`` with numbers
per kind, so equal in both runs unless SAPA activity shifts them; any other
id a role sees (an alarm action's, a trouble's, a notification's) must not
move because of SAPA rows either.

**Exceptions, narrow.** The administrator may see in the audit log *that* the
SAPA desk read or acted on a SAPA alarm, never which one or what was written
(operators.md). So for ``admin`` only, audit rows (CSV or the HTML table)
whose role is ``sapa_desk``, whose before/after are empty or redacted and
whose subject names no id are dropped before comparing, and the CSV's row
ids (shifted by those rows) are masked. An escalation by the dashboard
itself is not the SAPA desk acting, and stays a leak. The technician may see
SAPA buttons as devices (kind, site, link, last heard, battery, radio
quality, troubles, service state: operators.md, "The device view"): the node
is heard by a heartbeat in both runs, so the technician's view must
otherwise be identical: no alarm, no press count, no state that moved.

The evaluation report and its open data publish SAPA *counts* by design, a
count of 1 to 4 shown as hidden and a zero as zero (docs/evaluation.md). So a
period is asked for twice: the last closed quarter, before either run's
activity, where everything must be identical as anywhere else; and the month
under way, whose report (for administrators and evaluators) is compared
between the runs only in its SAPA section and SAPA datasets: its fire response
times move with the scenario's timing (the fire alarm is dispatched after the
SAPA desk's work), while SAPA shows no month not yet over, so nothing of the
run's SAPA presses; tests/test_evaluation_privacy.py proves what the SAPA
cells may show. Every evaluation and open-data reply is still scanned for the
SAPA traces and devices, as every role, administrators included, and a PDF is
compared and scanned by its text. For ``admin`` the audit log's
``evaluation.generated`` rows (who made which period's report) are dropped
before comparing: the parallel first sweep interleaves the administrator's and
the evaluator's.

The SAPA desk is the positive control: its view must show the SAPA alarm and
differ between the runs, or the scenario is broken and the test says so.

``SIAGA_PRIVACY_SELFCHECK=1`` runs both runs without SAPA presses: it must
pass, or the normalisation misses something that differs between identical
runs. ``SIAGA_PRIVACY_REPORT=<file>`` writes the leak report to a file, and
``SIAGA_PRIVACY_DUMP=<dir>`` every normalised reply and stream of both runs.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import http.client
import io
import itertools
import json
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from gpiozero.pins.mock import MockFactory
from pypdf import PdfReader
from werkzeug.routing import AnyConverter, Rule

from dashboard.alarms.escalation import EscalationSettings
from dashboard.alarms.notify import RetryPolicy, Webhook
from dashboard.cap.messages import CapSettings, FireAlarm, Stage, incident
from dashboard.db import Connection, connect
from dashboard.devices.supervision import SupervisionSettings
from dashboard.evaluation.opendata import closed_periods
from dashboard.evaluation.period import Granularity, Period
from firmware_bridge.broker import BrokerSettings
from firmware_bridge.metrics import MetricsSettings, ScrapeAccess
from firmware_bridge.settings import read_toml
from gateway.app import Gateway
from gateway.config import parse_config
from sim.gatewayconf import site, toml_text, write_gateway_config
from sim.mosquitto import Mosquitto
from sim.radio import Air, Impairments, NodeSpec, VirtualNode
from sim.servers import DashboardServer, dashboard_config
from sim.webclient import DashboardClient
from sim.webhook import WebhookReceiver

from .conftest import ADMIN, FIRE_1, OPERATOR, SAPA_DESK, SATPOL, press, signed_in
from .reports_helpers import jpeg, report_fields
from .test_lora import FAST, plugged_rylr
from .waiting import poll_until

TECHNICIAN = ("teknisi", "teknisi-password-1")
EVALUATOR = ("penilai", "penilai-password-1")
ACCOUNTS = {
    "fire_operator": OPERATOR,
    "satpol": SATPOL,
    "technician": TECHNICIAN,
    "admin": ADMIN,
    "evaluator": EVALUATOR,
    "sapa_desk": SAPA_DESK,
}
#: The SAPA desk is swept last, so that its (audited) reads of the final sweep are in nobody's view.
ROLES = ("anonymous", "fire_operator", "satpol", "technician", "admin", "evaluator", "sapa_desk")
OTHERS = ROLES[:-1]
#: Who reads the evaluation report; the label of the period under way, whose report is compared in its SAPA parts only.
EVALUATION_READERS = ("admin", "evaluator")
UNDER_WAY = "period-under-way"
#: The SAPA section of an HTML report: compared even in the report of the month under way.
SAPA_SECTION = re.compile(r'<section class="report-section" id="section-sapa".*?</section>', re.S)

GW = "gw-konsel-1"
NODE = 1002
NODE_KEY = bytes(range(16, 32))
SECRET = b"a-webhook-secret-of-some-length"
WAIT_S = 15.0

#: The SAPA devices: (id, label, site). The sites are SAPA-only: their names alone say "SAPA here".
SAPA_BUTTONS = {
    "sapa-1": ("Pos keamanan", "Pasar Andoolo", 23, 24),
    "sapa-2": ("Ruang konseling", "SD Negeri 2 Tinanggea", 5, 6),
    "sapa-3": ("Toilet perempuan", "Puskesmas Palangga", 13, 19),
}
SAPA_LORA = ("sapa-lora-1", "Kamar bilas dermaga", "Pelabuhan Torobulu")
SAPA_ONLY_SITES = ("SD Negeri 2 Tinanggea", "Puskesmas Palangga", "Pelabuhan Torobulu")
#: What the SAPA desk writes: the most sensitive data of all.
SAPA_ACK_NOTE = "Korban anak 9 tahun, pelaku kerabat dekat"
SAPA_DISPATCH_NOTE = "Pendamping psikolog ikut, jangan sebut nama korban"
SAPA_UNIT = "UPTD PPA Konsel"

#: The wired buttons: the default fire button, another fire button, and the SAPA buttons.
BUTTONS = [
    FIRE_1,
    {
        "id": "fire-2",
        "kind": "fire",
        "label": "Lobi",
        "pin": 20,
        "led_pin": 21,
        "site": site("Kantor Camat Tinanggea", -4.4561, 122.2167),
    },
    *(
        {
            "id": button,
            "kind": "sapa",
            "label": label,
            "pin": pin,
            "led_pin": led,
            "site": site(site_name, -4.35 - index / 100, 122.37 + index / 100),
        }
        for index, (button, (label, site_name, pin, led)) in enumerate(SAPA_BUTTONS.items())
    ),
]

#: Extra query strings per endpoint (variants of enumerated routes; an endpoint no longer registered is ignored).
QUERIES: dict[str, tuple[str, ...]] = {
    "api.list_alarms": ("", "?state=all", "?state=all&limit=1000"),
    "stats.page": ("", "?kind=sapa", "?kind=fire"),
    "stats.csv_export": ("", "?group=site", "?group=kind", "?group=kind&kind=sapa"),
    "admin.audit_log": ("", "?action=alarm.", "?action=sapa"),
    "admin.audit_csv": ("", "?action=alarm."),
    "board.fire": ("", "?wall=1"),
    "public.lookup": ("", "?ticket={ticket}"),
    "open311.list_requests": ("", "?status=open"),
}


# -- one run -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: tuple[tuple[str, str], ...]
    content_type: str
    body: bytes


@dataclass(frozen=True)
class Target:
    """One request to make: ``key`` names it the same way in both runs, ``path`` is this run's URL."""

    key: str
    path: str
    endpoint: str


class Recorder:
    """A live stream held open for the whole run; every event is kept, in arrival order."""

    def __init__(self, sock: socket.socket, response: http.client.HTTPResponse) -> None:
        self._sock, self._response = sock, response
        sock.settimeout(120)  # quiet spells are normal; close() unblocks the reader
        self.events: list[tuple[str, str]] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, name="privacy-stream", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        event, data = "message", []
        try:
            while raw := self._response.readline():
                line = raw.decode("utf-8").rstrip("\r\n")
                if not line:
                    if data:
                        with self._changed:
                            self.events.append((event, "\n".join(data)))
                            self._changed.notify_all()
                    event, data = "message", []
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
        except Exception:  # the stream ends (close() or the server): what was read is what it carried
            return

    def wait(self, predicate: Callable[[str, Any], bool], what: str, timeout: float = WAIT_S) -> Any:
        def found() -> Any:
            for event, data in self.events:
                value = _json_or_none(data)
                if predicate(event, value):
                    return value if value is not None else data
            return None

        with self._changed:
            if not self._changed.wait_for(lambda: found() is not None, timeout):
                raise AssertionError(f"scenario: no stream event for {what} within {timeout} s")
            return found()

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._response.close()
        self._thread.join(5)


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


@dataclass
class Run:
    sapa: bool
    server: DashboardServer
    gateway: Gateway
    pins: MockFactory
    node: VirtualNode
    fire_post: WebhookReceiver
    sapa_post: WebhookReceiver
    clients: dict[str, DashboardClient]
    ticket: str = ""
    token: str = ""
    photo_id: int = 0
    streams: dict[tuple[str, str], Recorder] = field(default_factory=dict)
    replies: dict[tuple[str, str, str], Reply] = field(default_factory=dict)
    stream_events: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    @property
    def app(self) -> Flask:
        return self.server.app

    def db(self) -> Connection:
        return connect(self.server.config["DATABASE"])

    def query(self, sql: str, *params: Any) -> list[Any]:
        with closing(self.db()) as conn:
            return conn.execute(sql, params).fetchall()

    def cookie(self, role: str) -> str:
        return self.clients[role].cookie_header() if role != "anonymous" else ""

    def fetch(self, role: str, method: str, path: str, *, keep_stream: bool = False) -> Reply | Recorder:
        """One request as ``role``, redirects not followed. A stream answers with its first event (or stays open)."""
        conn = http.client.HTTPConnection(
            self.server.config["SIAGA_HOST"], self.server.config["SIAGA_PORT"], timeout=10
        )
        cookie = self.cookie(role)
        conn.request(method, path, headers={"Cookie": cookie} if cookie else {})
        sock = conn.sock  # getresponse() hands a closing connection's socket to the response
        response = conn.getresponse()
        content_type = response.getheader("Content-Type", "")
        if content_type.startswith("text/event-stream") and method == "GET":
            if keep_stream:
                return Recorder(sock, response)
            body = _first_event(response)
        else:
            body = response.read()
        response.close()
        conn.close()
        headers = tuple(sorted((k.lower(), v) for k, v in response.getheaders() if k.lower() not in IGNORED_HEADERS))
        return Reply(response.status, headers, content_type, body)


#: Per-connection or per-file values (a photo is written anew in each run): never about alarms.
IGNORED_HEADERS = frozenset({"date", "server", "set-cookie", "content-length", "etag", "expires", "last-modified"})


def _first_event(response: http.client.HTTPResponse) -> bytes:
    """A stream's first event that carries data (the snapshot), read with the connection's timeout."""
    block: list[bytes] = []
    try:
        while raw := response.readline():
            if raw.strip():
                block.append(raw)
            elif any(line.startswith(b"data:") for line in block):
                return b"".join(block)
            else:
                block = []
    except TimeoutError:
        return b"<no event with data within the timeout>"
    return b"".join(block)


def gateway_toml(tmp: Path, mosquitto: Mosquitto, tty: Path) -> Path:
    keys = tmp / "lora-keys.toml"
    keys.write_text(toml_text({"keys": {str(NODE): NODE_KEY.hex()}}))
    keys.chmod(0o600)
    button, label, site_name = SAPA_LORA
    return write_gateway_config(
        tmp / "gateway.toml",
        GW,
        data_dir=tmp / "gateway-data",
        health_interval_s=3600,
        mqtt={"host": "127.0.0.1", "port": mosquitto.port},
        lora={"port": tty, "module": "rylr998", "keys_file": keys, "reopen_s": 0.2},
        lora_buttons=[
            {
                "id": button,
                "node": NODE,
                "kind": "sapa",
                "label": label,
                "site": site(site_name, -4.1834, 122.5241),
            }
        ],
        buttons=BUTTONS,
    )


@pytest.fixture
def start_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bool], Run]]:
    """Fresh real parts for one run; everything stopped after the test."""
    # The gateway retains its status again 30 s after connecting (for a clustered broker): a run longer
    # than that on a loaded machine got it on the board's stream and the other run did not, a difference
    # between the runs that is no SAPA activity.
    monkeypatch.setattr("gateway.link.RETAIN_AGAIN_S", 3600.0)
    with ExitStack() as stack:

        def start(sapa: bool) -> Run:
            tmp = Path(tempfile.mkdtemp("-sapa" if sapa else "-no-sapa", dir=tmp_path))
            mosquitto = Mosquitto(tmp / "mosquitto").start()
            stack.callback(mosquitto.stop)
            fire_post = stack.enter_context(WebhookReceiver(secret=SECRET))
            sapa_post = stack.enter_context(WebhookReceiver(secret=SECRET))
            escalation = EscalationSettings(
                after_s={"fire": (0.3,), "sapa": (0.3,)},
                webhooks=(
                    Webhook("pos-damkar", fire_post.url, frozenset({"fire"}), secret=SECRET, timeout_s=2.0),
                    Webhook("meja-sapa", sapa_post.url, frozenset({"sapa"}), secret=SECRET, timeout_s=2.0),
                ),
                retry=RetryPolicy(base_s=0.05, max_s=0.2),
                check_interval_s=0.05,
                board_url="https://siaga.example/board",
            )
            config = dashboard_config(
                tmp / "dashboard",
                BrokerSettings(host=mosquitto.host, port=mosquitto.port),
                SIAGA_ESCALATION=escalation,
                SIAGA_SUPERVISION=SupervisionSettings(check_interval_s=0.1),
                SIAGA_THREADS=32,
                SIAGA_API_RATE=(100_000, 60),
                SIAGA_CAP=CapSettings(enabled=True, sender="siaga@damkar.example"),  # public: every role reads it
                # /metrics for this machine, without a token: every role's requests come from it, so all read it
                SIAGA_METRICS=MetricsSettings(enabled=True, access=ScrapeAccess(allow=(ip_network("127.0.0.1"),))),
            )
            server = DashboardServer(config).start()
            stack.callback(server.stop)
            for role, (username, password) in ACCOUNTS.items():
                server.create_user(username, password, role)
            clients = {"anonymous": DashboardClient(server.url)}
            clients.update({role: signed_in(server, account) for role, account in ACCOUNTS.items()})

            air = Air(Impairments(time_scale=0.1), seed=7)
            stack.callback(air.close)
            host = plugged_rylr(air, tmp / "ttyLORA0")
            stack.callback(host.close)
            pins = MockFactory()
            stack.callback(pins.reset)
            gateway = Gateway(parse_config(read_toml(gateway_toml(tmp, mosquitto, host.path))), pin_factory=pins)
            gateway.start()
            stack.callback(gateway.close)
            assert gateway.link.connected.wait(10) and gateway.radio is not None
            assert gateway.radio.link.connected.wait(10), "the LoRa module did not come up"
            settings = {**FAST, "ALARM_POLL_S": 3600}  # one poll per alarm: a count that does not race the clock
            node = VirtualNode(air, NodeSpec(NODE, NODE_KEY, kind="sapa", settings=settings), tmp / "nodes", seed=NODE)
            stack.callback(node.close)
            return Run(sapa, server, gateway, pins, node, fire_post, sapa_post, clients)

        yield start


def eventually(check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """For state with no event to wait on from outside (the store, the gateway's radio counters): poll it."""
    return poll_until(check, timeout=timeout, interval=0.02, what=f"scenario: {what}")


def submit_report(run: Run) -> None:
    """A citizen's report with a photo through the public form (the same app, in process: multipart is easy)."""
    client = run.app.test_client()
    token = re.search(rb'name="csrf[-_]token"\s+(?:value|content)="([^"]+)"', client.get("/lapor").data)
    assert token, "no CSRF token on /lapor"
    fields = {**report_fields(), "csrf_token": token.group(1).decode(), "photos": [(io.BytesIO(jpeg()), "a.jpg")]}
    response = client.post("/lapor", data=fields, content_type="multipart/form-data")
    assert response.status_code == 303, response.data[:300]
    run.ticket = response.headers["Location"].split("/lapor/")[1].split("?")[0]
    (row,) = run.query("SELECT id, token FROM reports WHERE ticket = ?", run.ticket)
    run.token = row["token"]
    run.photo_id = run.query("SELECT id FROM report_photos WHERE report_id = ?", row["id"])[0]["id"]


def alarm_event(button: str, **expected: Any) -> Callable[[str, Any], bool]:
    def match(event: str, data: Any) -> bool:
        return (
            event == "alarm"
            and isinstance(data, dict)
            and data.get("button") == button
            and all(data.get(key) == value for key, value in expected.items())
        )

    return match


def trouble_event(button: str, contains: str = "") -> Callable[[str, Any], bool]:
    def match(event: str, data: Any) -> bool:
        return event == "trouble" and isinstance(data, dict) and data.get("button") == button and contains in str(data)

    return match


def scenario(run: Run) -> None:
    """Identical in both runs except for the SAPA presses and the SAPA desk's work on them."""
    fire_board, sapa_board = run.streams[("fire_operator", "/api/stream")], run.streams[("sapa_desk", "/api/stream")]
    operator, desk, technician = run.clients["fire_operator"], run.clients["sapa_desk"], run.clients["technician"]

    # The LoRa node says "still here" once (its heartbeat timer firing): heard in both runs.
    run.node.node.next_heartbeat = 0
    eventually(lambda: run.gateway.radio.stats.get(NODE) and run.gateway.radio.stats[NODE].heartbeats, "a heartbeat")

    # A technician's service changes on SAPA buttons: device maintenance, in both runs.
    for button, mode, reason in (("sapa-2", "test", "Uji berkala"), ("sapa-3", "out_of_service", "Kabel putus")):
        status, _ = technician.post_form(
            f"/devices/buttons/{button}/service", {"mode": mode, "reason": reason, "hours": "4"}
        )
        assert status == 200, f"service change of {button}: HTTP {status}"
        sapa_board.wait(trouble_event(button), f"the trouble of {button}")

    if run.sapa:  # a SAPA press while nothing else happens
        press(run.pins, 23)
        sapa_board.wait(alarm_event("sapa-1", escalation=1), "the SAPA alarm's escalation")
        run.sapa_post.wait(1, delivered=True)

    press(run.pins, 17)
    fire = fire_board.wait(alarm_event("fire-1", escalation=1), "the fire alarm's escalation")
    run.fire_post.wait(1, delivered=True)
    operator.post_json(f"/api/alarms/{fire['id']}/acknowledge", {"note": "Regu 1 berangkat"})
    run.fire_post.wait(2, delivered=True)  # told that it was answered

    if run.sapa:  # the SAPA desk works its case; more SAPA presses of every sort
        sapa = sapa_board.wait(alarm_event("sapa-1", escalation=1), "the SAPA alarm")
        desk.post_json(f"/api/alarms/{sapa['id']}/acknowledge", {"note": SAPA_ACK_NOTE})
        desk.post_json(f"/api/alarms/{sapa['id']}/dispatch", {"unit": SAPA_UNIT, "note": SAPA_DISPATCH_NOTE})
        assert run.gateway.wait_for_indication("sapa-1", "dispatched", 10)
        run.sapa_post.wait(2, delivered=True)
        run.node.press()
        assert run.node.wait_for_pattern("received", 10), "the LoRa SAPA press was not received"
        sapa_board.wait(alarm_event(SAPA_LORA[0], escalation=1), "the LoRa SAPA alarm's escalation")
        press(run.pins, SAPA_BUTTONS["sapa-2"][2])  # in test mode: a test alarm
        sapa_board.wait(alarm_event("sapa-2", test=True), "the SAPA test alarm")
        press(run.pins, SAPA_BUTTONS["sapa-3"][2])  # out of service: stored, no alarm
        sapa_board.wait(trouble_event("sapa-3", "1 press"), "the suppressed SAPA press")

    operator.post_json(f"/api/alarms/{fire['id']}/dispatch", {"unit": "Damkar Andoolo", "note": "Dua mobil"})
    assert run.gateway.wait_for_indication("fire-1", "dispatched", 10)

    # Settle what runs by itself: notifications out, and the gateway's next health report (its
    # interval is long in this test, so it is sent here, as the health loop would) stored.
    eventually(lambda: not run.query("SELECT 1 FROM notifications WHERE status = 'pending'"), "notifications")
    before = run.query("SELECT health_at FROM gateways WHERE gw = ?", GW)[0]["health_at"] or 0
    run.gateway.link.publish_health(run.gateway.health().encode())
    eventually(
        lambda: (run.query("SELECT health_at FROM gateways WHERE gw = ?", GW)[0]["health_at"] or 0) > before, "health"
    )


def end_marker(run: Run) -> None:
    """Resolve the fire alarm, and read every recorded stream up to it (those that can see it)."""
    operator = run.clients["fire_operator"]
    (fire,) = [a for a in operator.get_json("/api/alarms")["alarms"] if a["button"] == "fire-1"]
    operator.post_json(f"/api/alarms/{fire['id']}/resolve", {"resolution": "real", "rev": fire["rev"], "note": "Padam"})
    for (role, _key), recorder in run.streams.items():
        if role in ("fire_operator", "admin"):  # the roles that see fire alarms
            recorder.wait(alarm_event("fire-1", state="resolved"), "the end marker", timeout=5)


# -- routes and their fillers ------------------------------------------------------------------------


def fillers(run: Run, alarms: list[tuple[str, int, int]]) -> dict[str, list[tuple[str, str]]]:
    """Values for each converter argument: (label, value); the label names the value alike in both runs.

    A new route whose argument is not here fails the test: add a filler with real values of the run.
    """
    static = Path(run.app.static_folder or "")
    users = run.query("SELECT id, username FROM users ORDER BY id")
    buttons = ["fire-1", "fire-2", *SAPA_BUTTONS, SAPA_LORA[0]]
    alarm_values = [(f"alarm-{kind}-{number}", str(alarm_id)) for kind, number, alarm_id in alarms]
    now = time.time()
    closed = closed_periods(now)[Granularity.QUARTER][0]  # the newest served (not on a quarter's first day)
    numbers = {str(number): f"number-{number}" for _kind, number, _id in alarms}
    return {
        "alarm_id": alarm_values + [(label, value) for value, label in sorted(numbers.items())],
        "filename": [(p, p) for p in sorted(str(f.relative_to(static)) for f in static.rglob("*") if f.is_file())],
        "code": [(c.code, c.code) for c in run.app.config["SIAGA_CATALOGUE"].categories],
        "ticket": [("report-ticket", run.ticket)],
        "token": [("report-token", run.token)],
        "photo_id": [("report-photo", str(run.photo_id))],
        "anything": [("v2/unknown.json", "v2/unknown.json")],
        "button": [(b, b) for b in buttons],
        "gw": [(GW, GW)],
        "gw_id": [(GW, GW)],  # enrolment's plans: none in either run, so the same 404
        "button_id": [(b, b) for b in buttons],
        "code_id": [("code-1", "1")],
        "user_id": [(f"user-{row['username']}", str(row["id"])) for row in users],
        "username": [(row["username"], row["username"]) for row in users],
        "key_id": [("key-1", "1")],
        "identifier": cap_identifiers(run, alarms),
        # Commissioning sessions and their reports (none in this scenario: tests/test_commissioning.py shows
        # a SAPA button's commissioning to no one but technicians); the first ids are asked all the same.
        "session_id": [("commissioning-1", "1"), ("commissioning-2", "2")],
        # The evaluation and the open data: the last closed quarter (before all activity), the month under way.
        "period": [("closed-quarter", closed.key), (UNDER_WAY, Period.containing(now, Granularity.MONTH).key)],
        "dataset": [(name, name) for name in open_datasets(run, closed)],
    }


def open_datasets(run: Run, period: Period) -> list[str]:
    """The open data's dataset ids, as its data package lists them (public: the anonymous may read it)."""
    reply = run.fetch("anonymous", "GET", f"/open-data/{period.key}/datapackage.json")
    assert isinstance(reply, Reply) and reply.status == 200, "the open data's package of a closed quarter"
    return [resource["name"] for resource in json.loads(reply.body)["resources"]]


def cap_identifiers(run: Run, alarms: list[tuple[str, int, int]]) -> list[tuple[str, str]]:
    """Every CAP message name each alarm would have (its kind, number and opening second; a SAPA alarm's also
    with its id as a fire number): a fire alarm's are served, a SAPA alarm's must be the same 404 as in the run
    where it never happened. (Not its number as a fire number: fire alarm 1 may open in the same second as
    SAPA alarm 1, and its messages are rightly served.)"""
    rows = run.query("SELECT kind, number, opened_at FROM alarms")
    opened = {(row["kind"], row["number"]): row["opened_at"] for row in rows}
    found = []
    for kind, number, alarm_id in alarms:
        name = incident(FireAlarm(number, opened.get((kind, number), 0.0)))
        guesses = {"": name.replace("siaga-fire-", f"siaga-{kind}-", 1)}
        if kind != "fire":
            guesses["-as-fire"] = name.replace(f"siaga-fire-{number}-", f"siaga-fire-{alarm_id}-", 1)
        for how, guess in guesses.items():
            found += [(f"cap-{kind}-{number}{how}-{stage}", f"{guess}-{stage}") for stage in Stage]
    return found


def targets(run: Run, fill: dict[str, list[tuple[str, str]]], missing: list[str] | None = None) -> list[Target]:
    """Every GET rule of the app, with every combination of fillers, and its query variants."""
    adapter = run.app.url_map.bind("localhost")
    result = []
    for rule in sorted(run.app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        if "GET" not in (rule.methods or ()):
            continue
        choices = []
        for arg in sorted(rule.arguments):
            converter = rule._converters.get(arg)
            if isinstance(converter, AnyConverter):
                choices.append([(arg, item, item) for item in sorted(converter.items)])
            elif fill.get(arg):
                choices.append([(arg, label, value) for label, value in fill[arg]])
            else:
                if missing is not None:
                    missing.append(f"{rule.rule} (endpoint {rule.endpoint}): add a filler for <{arg}> in fillers()")
                break
        else:
            for combo in itertools.product(*choices):
                path = _build(rule, {arg: value for arg, _label, value in combo})
                endpoint, _ = adapter.match(path, method="GET")
                assert endpoint == rule.endpoint, f"{path} reaches {endpoint}, not {rule.endpoint}"
                label = rule.rule + "".join(f" {arg}={label}" for arg, label, _value in combo)
                for query in QUERIES.get(rule.endpoint, ("",)):
                    result.append(Target(label + query, path + query.format(ticket=run.ticket), rule.endpoint))
    return result


def _build(rule: Rule, values: dict[str, str]) -> str:
    built = rule.build(values, append_unknown=False)
    assert built is not None, f"cannot build {rule.rule} from {values}"
    return built[1]


# -- normalisation -----------------------------------------------------------------------------------

ISO_TS = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?")
#: A moment as the evaluation report writes it for readers: "1 Desember 2026, 11:15:30" (its generation).
LONG_TS = re.compile(r"\b\d{1,2} \w+ \d{4}, \d{2}:\d{2}(?::\d{2})?")
STAMP = re.compile(r"\d{8}-\d{6}")
ULID = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{26}\b")
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
CSRF = re.compile(r'(name="csrf[-_]token"\s+(?:value|content)=")[^"]*(")')
AGO = re.compile(r"\d+(?:\.\d+)? (?:dtk lalu|s ago)")
DURATION = re.compile(r"(?<![\w.])\d+(?:\.\d+)? (?:dtk|mnt|min|s)\b")
DATA_SECONDS = re.compile(r'(data-seconds=")[^"]*(")')
RADIO = re.compile(r"-?\d+ dBm / -?\d+(?:\.\d+)? dB")
CHART = re.compile(r'<svg id="ack-chart".*?</svg>', re.S)
CHART_GEOMETRY = re.compile(r'\b(y|height)="[-\d.]+"')
TIME_KEYS = re.compile(r"(^|_)(at|ts)$")
AUDIT_ROW = re.compile(r"<tr data-action=.*?</tr>\s*", re.S)  # with its trailing whitespace: a dropped row leaves none


def normalise_text(text: str, run: Run) -> str:
    if run.token:
        text = text.replace(run.token, "<report-token>")
    text = text.replace(run.server.url, "<dashboard>")
    text = CSRF.sub(r"\1<csrf>\2", text)
    text = ISO_TS.sub("<time>", text)
    text = LONG_TS.sub("<time>", text)
    text = STAMP.sub("<time>", text)
    text = ULID.sub("<ulid>", UUID.sub("<uuid>", text))
    text = AGO.sub("<seconds> ago", text)
    text = DATA_SECONDS.sub(r"\1<seconds>\2", text)
    text = CHART.sub(lambda m: CHART_GEOMETRY.sub(r'\1="<n>"', m.group(0)), text)
    text = DURATION.sub("<seconds>", text)
    return RADIO.sub("<radio>", text)


def normalise_json(value: Any, run: Run, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: normalise_json(v, run, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise_json(v, run) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        if key.endswith("_s"):
            return "<seconds>"
        if key in ("rssi", "snr"):
            return "<radio>"
        if TIME_KEYS.search(key):
            return "<time>"
        return value
    return normalise_text(str(value), run)


def _contentless(cell: str) -> bool:
    return not cell.strip() or cell.strip().startswith("[SAPA")


def drop_sapa_desk_audit_rows(text: str, content_type: str) -> str:
    """The administrator's one exception: *that* the SAPA desk read or acted, never which alarm or what.
    (And the reports made of the evaluation, whose order the parallel first sweep varies.)"""
    if content_type.startswith("text/csv"):
        rows = list(csv.DictReader(io.StringIO(text)))
        if not rows or not {"role", "kind", "subject", "before", "after"} <= set(rows[0]):
            return text
        kept = [
            row
            for row in rows
            if not (
                row["role"] == "sapa_desk"
                and _contentless(row["before"])
                and _contentless(row["after"])
                and not re.search(r"\d", row["subject"])
            )
            and row["action"] != "evaluation.generated"
        ]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in kept:
            writer.writerow({**row, "id": "<id>"} if "id" in row else row)
        return out.getvalue()
    if 'id="audit"' in text:

        def keep(match: re.Match[str]) -> str:
            row = match.group(0)
            if row.startswith('<tr data-action="evaluation.generated"'):
                return ""
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            codes = re.findall(r"<code>(.*?)</code>", row, re.S)
            by_desk = "(sapa_desk)" in row
            subject = cells[3] if len(cells) > 3 else ""
            if by_desk and all(_contentless(c) for c in codes) and not re.search(r"\d", subject):
                return ""
            return row

        return AUDIT_ROW.sub(keep, text)
    return text


def normalise(reply: Reply, run: Run, role: str) -> str:
    """The reply as compared: status, headers, and the body normalised by its type."""
    head = [str(reply.status)] + [f"{k}: {normalise_text(v, run)}" for k, v in reply.headers]
    return "\n".join(head) + "\n\n" + normalise_body(reply.body, reply.content_type, run, role)


def pdf_text(body: bytes) -> str:
    """A PDF's text (the evaluation report's): compared and scanned as text, since its bytes hold its making."""
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(body)).pages)


def normalise_body(body: bytes, content_type: str, run: Run, role: str) -> str:
    if not body:
        return ""
    if content_type.startswith("application/pdf"):
        return normalise_text(pdf_text(body), run)
    textual = content_type.startswith(("text/", "application/json", "application/xml", "application/javascript"))
    if not textual and not content_type.split(";")[0].strip().endswith(("+json", "+xml")):  # "; charset=utf-8" too
        return f"<{len(body)} bytes, sha256 {hashlib.sha256(body).hexdigest()}>"
    text = body.decode("utf-8", "replace")
    if role == "admin":
        text = drop_sapa_desk_audit_rows(text, content_type)
    if content_type.startswith("text/event-stream"):
        return "\n".join(normalise_event(line, run) for line in text.splitlines())
    if "json" in content_type:
        try:
            return "\n".join(flatten(normalise_json(json.loads(text), run)))
        except ValueError:
            pass
    if content_type.startswith("text/plain") and "version=" in content_type:
        # Sorted: a family's series come in the order they first appeared, which the parallel sweeps vary.
        return "\n".join(sorted(normalise_metric(line, run) for line in text.splitlines()))
    if content_type.startswith("text/csv"):
        rows = list(csv.reader(io.StringIO(text)))
        header = rows[0] if rows else []
        return "\n".join(
            ",".join(
                "<seconds>" if cell and i < len(header) and header[i].endswith("_s") else normalise_text(cell, run)
                for i, cell in enumerate(row)
            )
            for row in rows
        )
    lines = normalise_text(text, run).splitlines()  # a long line (inline JSON, markup) one tag per line: readable diffs
    return "\n".join(
        part for line in lines for part in (line.replace(">", ">\n") if len(line) > 300 else line).split("\n")
    )


#: A Prometheus sample whose value is a time: a duration (``_seconds``, its histogram's buckets and sum) or a
#: series' creation (``_created``). Counts (``_count``, ``_total``) and gauges of anything else are compared.
METRIC_TIME = re.compile(r"^(\w+(?:_seconds(?:_bucket|_sum)?|_created))((?:\{.*\})?) \S+$")


def normalise_metric(line: str, run: Run) -> str:
    """One line of /metrics: the value of a time becomes ``<seconds>``, as durations do elsewhere."""
    return METRIC_TIME.sub(r"\1\2 <seconds>", normalise_text(line, run))


def flatten(value: Any, path: str = "") -> Iterator[str]:
    """One line per leaf, named by its path (``notifications[1].id = 3``): diffs that say what moved."""
    if isinstance(value, dict) and value:
        for key in sorted(value):
            yield from flatten(value[key], f"{path}.{key}" if path else key)
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from flatten(item, f"{path}[{index}]")
    else:
        yield f"{path} = {json.dumps(value, ensure_ascii=False)}"


def normalise_event(line: str, run: Run) -> str:
    if line.startswith("data:"):
        value = _json_or_none(line[5:])
        if value is not None:
            return "data: " + json.dumps(normalise_json(value, run), sort_keys=True, ensure_ascii=False)
    return normalise_text(line, run)


# -- sweeps ------------------------------------------------------------------------------------------


def in_parallel(roles: tuple[str, ...], work: Callable[[str], None]) -> None:
    """One thread per role: each role's requests in order, the roles side by side."""
    with ThreadPoolExecutor(len(roles)) as pool:
        for future in [pool.submit(work, role) for role in roles]:
            future.result()


def open_streams(run: Run) -> None:
    """Before the scenario: request every GET route as every role; keep each stream open and recorded."""
    every = targets(run, fillers(run, []))

    def sweep(role: str) -> None:
        for target in every:
            reply = run.fetch(role, "GET", target.path, keep_stream=True)
            if isinstance(reply, Recorder):
                run.streams[(role, target.key)] = reply

    in_parallel(ROLES, sweep)
    assert ("fire_operator", "/api/stream") in run.streams and ("sapa_desk", "/api/stream") in run.streams


def final_sweep(run: Run, alarms: list[tuple[str, int, int]]) -> list[str]:
    """Every route as every role, GET and HEAD; streams last, so that diagnostics count the same open streams."""
    missing: list[str] = []
    every = targets(run, fillers(run, alarms), missing)
    stream_keys = {key for _role, key in run.streams}

    def sweep(role: str, streams: bool) -> None:
        for target in every:
            if (target.key in stream_keys) == streams:
                for method in ("GET", "HEAD"):
                    reply = run.fetch(role, method, target.path)
                    assert isinstance(reply, Reply)
                    run.replies[(role, method, target.key)] = reply

    for streams in (False, True):  # one role after the other: a request counted in diagnostics is seen or not alike
        for role in ROLES:
            sweep(role, streams)
    return missing


def record_streams(run: Run) -> None:
    for (role, key), recorder in run.streams.items():
        recorder.close()
        events = [f"event: {event}\n" + normalise_event("data:" + data, run) for event, data in recorder.events]
        run.stream_events[(role, key)] = sorted(events)


def execute(run: Run, alarms: list[tuple[str, int, int]] | None) -> tuple[list[tuple[str, int, int]], list[str]]:
    submit_report(run)
    eventually(lambda: len(run.query("SELECT id FROM buttons")) == 3 + len(SAPA_BUTTONS), "the inventory")
    open_streams(run)
    scenario(run)
    if alarms is None:  # the SAPA run: its alarms (and their numbers) fill both runs' routes
        alarms = [
            (r["kind"], r["number"], r["id"]) for r in run.query("SELECT kind, number, id FROM alarms ORDER BY id")
        ]
    missing = final_sweep(run, alarms)
    end_marker(run)
    record_streams(run)
    return alarms, missing


# -- the test ----------------------------------------------------------------------------------------


def sapa_traces(run: Run) -> dict[str, str]:
    """Strings that exist only because of SAPA activity (what the desk wrote, the presses' event ids)."""
    traces = {SAPA_ACK_NOTE: "the SAPA desk's note", SAPA_DISPATCH_NOTE: "the SAPA desk's note", SAPA_UNIT: "SAPA unit"}
    buttons = [*SAPA_BUTTONS, SAPA_LORA[0]]
    marks = ",".join("?" * len(buttons))
    for row in run.query(f"SELECT id FROM events WHERE button IN ({marks})", *buttons):  # noqa: S608
        traces[row["id"]] = "a SAPA press's event id"
    return traces


def sapa_devices() -> dict[str, str]:
    devices = {}
    for button, (label, _site, _pin, _led) in SAPA_BUTTONS.items():
        devices[f'"{button}"'] = "a SAPA button's id"
        devices[f">{button}<"] = "a SAPA button's id"
        devices[label] = "a SAPA button's label"
    devices[SAPA_LORA[0]] = "the SAPA LoRa node's id"
    devices[SAPA_LORA[1]] = "the SAPA LoRa node's label"
    devices.update({site: "a SAPA-only site" for site in SAPA_ONLY_SITES})
    return devices


def sapa_kind_objects(body: bytes, content_type: str) -> int:
    """JSON objects that say ``"kind": "sapa"`` and carry an alarm (id, number, state or count of presses)."""
    if "json" not in content_type:
        return 0
    try:
        value = json.loads(body)
    except ValueError:
        return 0
    found = 0

    def walk(item: Any) -> None:
        nonlocal found
        if isinstance(item, dict):
            alarmish = item.get("alarm") or item.get("number") or item.get("press_count") or item.get("alarm_id")
            if item.get("kind") == "sapa" and alarmish:
                found += 1
            for child in item.values():
                walk(child)
        elif isinstance(item, list):
            for child in item:
                walk(child)

    walk(value)
    return found


def excerpt(before: str, after: str, lines: int = 8) -> list[str]:
    diff = [
        line[:220]
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---")) and line[1:].strip()
    ]
    return diff[:lines] + ([f"... {len(diff) - lines} more changed lines"] if len(diff) > lines else [])


@pytest.mark.timeout(300)
def test_a_sapa_press_is_invisible_to_every_role_but_the_sapa_desk(start_run: Callable[[bool], Run]) -> None:
    selfcheck = bool(os.environ.get("SIAGA_PRIVACY_SELFCHECK"))  # both runs without SAPA: nothing may differ
    with_sapa = start_run(not selfcheck)
    alarms, missing = execute(with_sapa, None)
    without = start_run(False)
    execute(without, alarms)
    assert missing == [], "routes whose parameters this test cannot fill:\n" + "\n".join(missing)

    # The positive control: the SAPA desk sees its alarm and what it wrote, so the scenario really made them.
    sapa_id = next((alarm_id for kind, number, alarm_id in alarms if kind == "sapa" and number == 1), None)
    assert selfcheck or sapa_id is not None, "positive control: no SAPA alarm was made; the scenario is broken"
    desk_key = ("sapa_desk", "GET", "/api/alarms?state=all")
    if not selfcheck:
        case = json.dumps(with_sapa.clients["sapa_desk"].get_json(f"/api/alarms/{sapa_id}"), ensure_ascii=False)
        assert SAPA_ACK_NOTE in case and SAPA_UNIT in case, "positive control: the SAPA desk does not see its case"
        assert normalise(with_sapa.replies[desk_key], with_sapa, "sapa_desk") != normalise(
            without.replies[desk_key], without, "sapa_desk"
        ), "positive control: the SAPA desk's view is the same with and without SAPA presses"

    leaks: dict[tuple[str, str], list[str]] = {}  # (what, evidence) -> roles

    def leak(role: str, what: str, evidence: list[str]) -> None:
        leaks.setdefault((what, "\n      ".join(evidence)), []).append(role)

    traces, devices = sapa_traces(with_sapa), sapa_devices()
    sapa_sections_under_way = 0  # the control: the month under way's SAPA section was really compared
    for (role, method, key), reply in sorted(with_sapa.replies.items()):
        if role not in OTHERS:
            continue
        other = without.replies.get((role, method, key))
        assert other is not None, f"{key} was requested in one run only"
        evaluation = key.startswith(("/evaluation", "/open-data"))
        mine, theirs = normalise(reply, with_sapa, role), normalise(other, without, role)
        # By design (see above): the fire figures of the month under way move; its SAPA ones must not.
        counts_move = evaluation and UNDER_WAY in key and role in EVALUATION_READERS and "/sapa-" not in key
        if mine != theirs and not counts_move:
            leak(role, f"{method} {key}: differs with SAPA activity", excerpt(theirs, mine))
        if counts_move and SAPA_SECTION.findall(mine) != SAPA_SECTION.findall(theirs):
            leak(role, f"{method} {key}: SAPA section differs with SAPA activity", excerpt(theirs, mine))
        sapa_sections_under_way += counts_move and bool(SAPA_SECTION.search(mine))
        if reply.content_type.startswith("application/pdf") and reply.body:
            text = pdf_text(reply.body)
        else:
            text = reply.body.decode("utf-8", "replace")
        named = sorted({why for token, why in traces.items() if token in text})
        if role not in ("technician", "admin") or evaluation:  # no report names a SAPA device, to anyone
            named += sorted({why for token, why in devices.items() if token in text})
        if sapa_kind_objects(reply.body, reply.content_type):
            named.append('a JSON object with "kind": "sapa" and an alarm')
        if named:
            leak(role, f"{method} {key}: contains SAPA data", named)
    assert sapa_sections_under_way > 0, "the report of the month under way has no SAPA section to compare"
    for (role, key), events in sorted(with_sapa.stream_events.items()):
        if role in OTHERS and events != without.stream_events.get((role, key)):
            leak(
                role,
                f"stream {key}: other events with SAPA activity",
                excerpt("\n".join(without.stream_events.get((role, key), [])), "\n".join(events)),
            )
    if os.environ.get("SIAGA_PRIVACY_DUMP"):
        dump = Path(os.environ["SIAGA_PRIVACY_DUMP"])
        for name, run in (("with", with_sapa), ("without", without)):
            (dump / name).mkdir(parents=True, exist_ok=True)
            for (role, method, key), reply in run.replies.items():
                slug = re.sub(r"[^\w.=-]+", "_", f"{role}_{method}_{key}")[:200]
                (dump / name / slug).write_text(normalise(reply, run, role))
            for (role, key), events in run.stream_events.items():
                (dump / name / re.sub(r"[^\w.=-]+", "_", f"{role}_STREAM_{key}")).write_text("\n".join(events))
    report = [f"{what}\n    roles: {', '.join(roles)}\n      {evidence}" for (what, evidence), roles in leaks.items()]
    if os.environ.get("SIAGA_PRIVACY_REPORT"):
        Path(os.environ["SIAGA_PRIVACY_REPORT"]).write_text("\n".join(report) + "\n")
    assert not leaks, f"{len(leaks)} SAPA leak(s) to roles other than the SAPA desk:\n" + "\n".join(report)
