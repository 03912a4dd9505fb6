"""No SAPA case and no reporter can be identified from anything the evaluation report or the open data holds.

A store is seeded for 2025-Q3 with SAPA alarms on a button whose id, site, label, gateway and kecamatan
are marker strings (0 alarms in July, 2 in August, 7 in September, with the SAPA desk's notes and unit),
a trouble of that button and one of its SAPA-only gateway, fire alarms, and a citizen's report whose
reporter's name, e-mail and telephone, description, address and Open311 app are markers too. Then every
evaluation and open-data route of the app (enumerated from ``app.url_map``, so a new one is covered without
editing this test) is fetched as every role, in both languages, and every body (HTML, the PDF's text,
CSV, JSON) is searched for the markers and the SAPA alarms' exact times. The month of 2 alarms shows as
hidden and the month of 7 as 7 in every form. Finally every GET route of the app is requested as an
evaluator: nothing answers it that would not answer the anonymous, but the evaluation and its open data.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pypdf import PdfReader
from werkzeug.routing import AnyConverter, Rule

from dashboard.accounts.auth import create_user
from dashboard.cap.messages import CapSettings
from dashboard.db import connect
from dashboard.evaluation.period import Granularity, Period
from dashboard.reports import store as reports
from firmware_bridge.metrics import MetricsSettings, ScrapeAccess

from .reports_helpers import ACCOUNTS, csrf, make_app

WITA = ZoneInfo("Asia/Makassar")
QUARTER = "2025-Q3"
MORE_ACCOUNTS = {"technician": ("teknisi", "teknisi-password-1"), "evaluator": ("penilai", "penilai-password-1")}
ROLES = ("anonymous", "fire_operator", "sapa_desk", "satpol", "technician", "admin", "evaluator")

#: Everything that would single out a SAPA case or a reporter: none may be in any output.
SAPA_MARKERS = {
    "button": "sapa-zq9-button",
    "site": "Rumah Aman Zq9",
    "label": "Ruang Konseling Zq9",
    "gateway": "gw-zq9-sapa",
    "kecamatan": "Kecamatan Zq9",
    "note": "Korban anak zq9",
    "unit": "UPTD PPA Zq9",
    "desk": "petugas-zq9",
    "event": "ev-zq9",
    "trouble": "kabel zq9 putus",
}
REPORTER_MARKERS = {
    "name": "Wa Ode Zq9 Pelapor",
    "email": "pelapor.zq9@example.org",
    "phone": "+62 812 0909 9990",
    "description": "Tetangga zq9 berjualan",
    "address": "Lorong Zq9 no. 7",
    "app": "AppZq9Lapor",
}
#: SAPA alarms per month of 2025-Q3: July none, August two (a small count: hidden), September seven.
SAPA_PER_MONTH = {7: 0, 8: 2, 9: 7}


def wita(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(2025, month, day, hour, minute, second, tzinfo=WITA).timestamp()


def sapa_times() -> list[float]:
    """When each SAPA alarm opened: odd minutes and seconds, so that an exact time is recognisable."""
    return [wita(month, 3 + index, 10, 17 + index, 43) for month, n in SAPA_PER_MONTH.items() for index in range(n)]


def seed(conn: sqlite3.Connection, photos: Path) -> None:
    mark = SAPA_MARKERS
    rows = [
        ("fire-a", "gw-fire", "fire", "Pasar Andoolo", "Blok A", "Andoolo"),
        (mark["button"], mark["gateway"], "sapa", mark["site"], mark["label"], mark["kecamatan"]),
    ]
    for button, gw, kind, site, label, kecamatan in rows:
        conn.execute(
            "INSERT INTO buttons (id, gw, kind, transport, site_name, lat, lon, label, updated_at, kecamatan)"
            " VALUES (?, ?, ?, 'gpio', ?, -4.35, 122.38, ?, ?, ?)",
            (button, gw, kind, site, label, wita(6, 1), kecamatan),
        )
    alarms = [("fire", "fire-a", "gw-fire", wita(7, 8, 9))] + [
        ("sapa", mark["button"], mark["gateway"], opened) for opened in sapa_times()
    ]
    numbers = {"fire": 0, "sapa": 0}
    for kind, button, gw, opened in alarms:
        numbers[kind] += 1
        number = numbers[kind]
        event = f"{mark['event']}-{kind}-{number}"
        conn.execute(
            "INSERT INTO alarms (id, number, button, gw, kind, state, first_event_id, last_event_id, first_press_ts,"
            " opened_at, last_press_at, acknowledged_at, acknowledged_by, dispatched_at, dispatched_by,"
            " dispatch_unit, resolved_at, resolved_by, resolution, note, escalation, escalated_at)"
            " VALUES (?, ?, ?, ?, ?, 'resolved', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'real', ?, 1, ?)",
            (
                16 * number + (1 if kind == "fire" else 2),
                number,
                button,
                gw,
                kind,
                event,
                event,
                datetime.fromtimestamp(opened, WITA).isoformat(),
                opened,
                opened,
                opened + 125,
                mark["desk"],
                opened + 300,
                mark["desk"],
                mark["unit"],
                opened + 3600,
                mark["desk"],
                mark["note"],
                opened + 60,
            ),
        )
    for key, kind, gw, button in (
        (f"button_missing:{mark['button']}", "sapa", mark["gateway"], mark["button"]),
        (f"gateway_offline:{mark['gateway']}", None, mark["gateway"], None),
    ):
        conn.execute(
            "INSERT INTO troubles (key, type, gw, button, kind, detail, began_at, detected_at, cleared_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, key.split(":")[0], gw, button, kind, mark["trouble"], wita(8, 20), wita(8, 20), wita(8, 21)),
        )
    conn.commit()
    who = REPORTER_MARKERS
    for source in ("web", f"open311:{who['app']}"):
        new = reports.NewReport(
            "ternak-berkeliaran",
            who["description"],
            -4.35,
            122.38,
            who["address"],
            area="Andoolo",
            source=source,
            reporter_name=who["name"],
            reporter_email=who["email"],
            reporter_phone=who["phone"],
        )
        reports.create_report(conn, new, photos_dir=photos, now=wita(7, 15, 8))


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    app = make_app(
        tmp_path,
        SIAGA_CAP=CapSettings(enabled=True, sender="siaga@damkar.example"),
        SIAGA_METRICS=MetricsSettings(enabled=True, access=ScrapeAccess(token="a-scrape-token-of-some-length")),
    )
    conn = connect(app.config["DATABASE"])
    try:
        for role, (username, password) in MORE_ACCOUNTS.items():
            create_user(conn, username, password, role)
        conn.commit()
        seed(conn, tmp_path / "photos")
    finally:
        conn.close()
    return app


def sign_in(app: Flask, role: str) -> FlaskClient:
    client = app.test_client()
    if role == "anonymous":
        return client
    username, password = {**ACCOUNTS, **MORE_ACCOUNTS}[role]
    response = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": csrf(client, "/login")}
    )
    assert response.status_code == 302, (role, response.data[:300])
    return client


@pytest.fixture
def clients(app: Flask) -> dict[str, FlaskClient]:
    return {role: sign_in(app, role) for role in ROLES}


# -- the routes, every one ---------------------------------------------------------------------------


def fillers(app: Flask) -> dict[str, list[str]]:
    """Real values of the seeded store for each route argument; a new argument fails the test until added."""
    conn = connect(app.config["DATABASE"])
    try:
        alarms = [str(row[0]) for row in conn.execute("SELECT id FROM alarms ORDER BY id")]
        users = [(str(row[0]), row[1]) for row in conn.execute("SELECT id, username FROM users ORDER BY id")]
        tickets = [(row[0], row[1]) for row in conn.execute("SELECT ticket, token FROM reports ORDER BY id")]
    finally:
        conn.close()
    now = time.time()
    return {
        "alarm_id": [alarms[0], alarms[1], alarms[-1]],  # the fire alarm and SAPA ones
        "session_id": ["1"],
        "photo_id": ["1"],
        "ticket": [ticket for ticket, _ in tickets],
        "token": [token for _, token in tickets],
        "code": ["ternak-berkeliaran"],
        "filename": ["siaga.css"],
        "gw_id": ["gw-fire", SAPA_MARKERS["gateway"]],
        "gw": ["gw-fire", SAPA_MARKERS["gateway"]],
        "button": ["fire-a", SAPA_MARKERS["button"]],
        "button_id": ["fire-a", SAPA_MARKERS["button"]],
        "user_id": [user_id for user_id, _ in users],
        "username": [name for _, name in users],
        "key_id": ["1"],
        "code_id": ["1"],
        "identifier": ["siaga-fire-1-20250708T090000-alert"],
        "anything": ["v2/unknown.json"],
        "period": [QUARTER, "2025-08", "2025-09", "2025", Period.containing(now, Granularity.MONTH).key, "2025-Q9"],
        "dataset": ["sapa-alarms-by-month", "sapa-time-to-acknowledge", "fire-alarms-by-kecamatan", "nothing"],
    }


def paths(app: Flask, rules: Iterator[Rule] | None = None) -> list[tuple[str, str]]:
    """(endpoint, path) of every GET rule, with every combination of its arguments' fillers."""
    fill = fillers(app)
    found, missing = [], []
    for rule in sorted(rules or app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" not in (rule.methods or ()):
            continue
        choices = []
        for arg in sorted(rule.arguments):
            converter = rule._converters.get(arg)
            if isinstance(converter, AnyConverter):
                choices.append([(arg, item) for item in sorted(converter.items)])
            elif arg in fill:
                choices.append([(arg, value) for value in fill[arg]])
            else:
                missing.append(f"{rule.rule}: add a filler for <{arg}>")
        for combo in itertools.product(*choices):
            built = rule.build(dict(combo), append_unknown=False)
            assert built is not None
            found.append((rule.endpoint, built[1]))
    assert missing == [], "\n".join(missing)
    return found


def evaluation_paths(app: Flask) -> list[str]:
    """Every evaluation and open-data URL, with the index pages' ``?period=`` too, in both languages."""
    rules = (rule for rule in app.url_map.iter_rules() if rule.endpoint.split(".")[0] in ("evaluation", "opendata"))
    found = [path for _endpoint, path in paths(app, rules)]
    found += [
        f"/evaluation?period={QUARTER}",
        f"/evaluation?period={QUARTER}&format=pdf",
        "/open-data/?period=2025-08",
    ]
    return [path + suffix for path in found for suffix in ("", "&lang=en" if "?" in path else "?lang=en")]


def readable(body: bytes, content_type: str) -> str:
    """A body as text to search: a PDF by its text (its streams are compressed), anything else decoded."""
    if content_type.startswith("application/pdf"):
        return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(body)).pages)
    return body.decode("utf-8")


def forbidden_strings() -> dict[str, str]:
    """Marker -> what it is; also each SAPA alarm's exact time, as a machine or a reader would write it."""
    found = {value: f"SAPA {what}" for what, value in SAPA_MARKERS.items()}
    found |= {value: f"reporter's {what}" for what, value in REPORTER_MARKERS.items()}
    for opened in sapa_times():
        local = datetime.fromtimestamp(opened, WITA)
        found[local.strftime("%Y-%m-%dT%H:%M")] = "a SAPA alarm's time"
        found[local.strftime("%H:%M:%S")] = "a SAPA alarm's time"
        found[str(int(opened))] = "a SAPA alarm's time"
    return found


def test_no_evaluation_or_open_data_output_names_a_sapa_case_or_a_reporter(
    app: Flask, clients: dict[str, FlaskClient]
) -> None:
    every = evaluation_paths(app)
    assert any(".pdf" in path for path in every) and any(".csv" in path for path in every)
    forbidden = forbidden_strings()
    leaks, shown = [], {role: 0 for role in ROLES}
    for role, path in itertools.product(ROLES, every):
        response = clients[role].get(path)
        text = readable(response.data, response.content_type)
        leaks += [f"{role} {path}: {why} ({marker!r})" for marker, why in forbidden.items() if marker in text]
        shown[role] += response.status_code == 200 and path.startswith("/evaluation/")
    assert leaks == []
    # The control: the report was really made, for those who may read it, and for nobody else.
    assert shown["admin"] == shown["evaluator"] > 0
    assert all(shown[role] == 0 for role in ROLES if role not in ("admin", "evaluator"))


def test_the_month_of_two_sapa_alarms_is_hidden_and_the_month_of_seven_shown(
    clients: dict[str, FlaskClient],
) -> None:
    evaluator, anonymous = clients["evaluator"], clients["anonymous"]
    # The open data: August (2 alarms) empty and listed as suppressed, so is the total that includes it;
    # July 0 and September 7 are shown. Each alarm was acknowledged 125 s after it opened (all or none).
    rows = list(csv.reader(io.StringIO(anonymous.get(f"/open-data/{QUARTER}/sapa-alarms-by-month.csv").text)))
    assert rows == [
        ["month", "alarms", "acknowledged"],
        ["2025-07", "0", "0"],
        ["2025-08", "", ""],
        ["2025-09", "7", "7"],
        ["total", "", ""],
    ]
    document = anonymous.get(f"/open-data/{QUARTER}/sapa-alarms-by-month.json").get_json()
    assert [row["alarms"] for row in document["data"]] == [0, None, 7, None]
    assert [1, "alarms"] in document["suppressed"] and [3, "alarms"] in document["suppressed"]
    # The HTML report: August's cells show the mark "<5" and no 2; September's alarms show 7.
    page = evaluator.get(f"/evaluation/{QUARTER}").text
    table = re.search(r'<table class="report-table" id="table-sapa-alarms-by-month">.*?</table>', page, re.S)
    assert table, "the SAPA table of the report"
    cells = {
        re.sub(r"<[^>]+>", "", head): [
            re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", rest)
        ]
        for head, rest in re.findall(r'<tr[^>]*><th scope="row">(.*?)</th>(.*?)</tr>', table.group(0), re.S)
    }
    august = next(value for key, value in cells.items() if "08" in key or "Agustus" in key)
    september = next(value for key, value in cells.items() if "09" in key or "September" in key)
    assert august and all("&lt;5" in cell and "2" not in cell for cell in august), august
    assert september[0] == "7", september
    # The PDF: the SAPA table's lines (a month and two figures): August's are marks, September's 7 and 7.
    pdf = readable(evaluator.get(f"/evaluation/{QUARTER}.pdf").data, "application/pdf")
    sapa_lines = {
        line.split()[0]: line.split()[1:] for line in pdf.splitlines() if re.fullmatch(r"2025-0\d \S+ \S+", line)
    }
    assert sapa_lines == {"2025-07": ["0", "0"], "2025-08": ["<5", "<5"], "2025-09": ["7", "7"]}, pdf[:3000]


# -- the evaluator's reach -----------------------------------------------------------------------------


def test_the_evaluator_reaches_nothing_the_anonymous_does_not_but_the_evaluation(
    app: Flask, clients: dict[str, FlaskClient]
) -> None:
    """Every GET route: an alarm, a board, a stream, a device, a Perda case, the audit log, diagnostics,
    metrics or an export answers the evaluator as it answers someone not signed in, or refuses."""
    evaluator, anonymous = clients["evaluator"], clients["anonymous"]
    landing = sign_in(app, "evaluator").get("/")
    assert landing.status_code in (302, 303) and landing.headers["Location"].endswith("/evaluation")
    reached = []
    for endpoint, path in paths(app):
        if endpoint.split(".")[0] in ("evaluation", "opendata") or endpoint == "auth.change_password":
            continue
        theirs = evaluator.get(path, buffered=False)  # a stream is not read: its status says enough
        ours = anonymous.get(path, buffered=False)
        theirs.close()
        ours.close()
        if theirs.status_code < 300 and ours.status_code >= 300:
            reached.append(f"{path} ({endpoint}): {theirs.status_code}, the anonymous {ours.status_code}")
    assert reached == []
    assert evaluator.get("/evaluation").status_code == 200
