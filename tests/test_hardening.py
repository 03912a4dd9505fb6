"""Issue 9, findings 4-7: the Open311 XML feed stays well-formed, sign-in cannot be
turned into an open redirect or a lock-out, and bad input gets a 4xx in the format
of where it was sent, never a 500 or a stack trace."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import xml.dom.minidom
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from flask import Flask, abort
from flask.testing import FlaskClient
from werkzeug.exceptions import TooManyRequests
from werkzeug.routing.converters import IntegerConverter

from dashboard import SafeJSONProvider
from dashboard.accounts.auth import (
    ATTACK_TRIES_PER_WINDOW,
    ATTACK_WINDOW_S,
    LOGIN_FAILURES_PER_ADDRESS,
    LOGIN_FAILURES_PER_PAIR,
    LoginLimits,
    address_key,
)
from dashboard.db import connect
from dashboard.reports import store
from dashboard.reports.categories import default_file, load_catalogue
from firmware_bridge.errors import ConfigError
from sim.stores import server as stores_server

from .reports_helpers import ACCOUNTS, api_key, csrf, make_app, report_fields, sign_in

#: Every character XML 1.0 cannot carry that a form can deliver: C0 controls but tab,
#: LF and CR, and the noncharacters U+FFFE and U+FFFF.
NOT_XML = "".join(chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20))) + "\ufffe\uffff"
ATTACKER, OPERATOR_DESK, ELSEWHERE = "203.0.113.66", "198.51.100.7", "192.0.2.10"


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    # Not TESTING: an exception must become the 500 a user would get, not a test-time raise.
    return make_app(tmp_path, TESTING=False)


def well_formed(body: bytes) -> ET.Element:
    """Parsed by two strict parsers, or the test fails."""
    xml.dom.minidom.parseString(body)  # noqa: S318 -- our own server's reply
    return ET.fromstring(body)  # noqa: S314 -- our own server's reply


def rows(app: Flask, query: str, *params: Any) -> list[Any]:
    conn = connect(app.config["DATABASE"])
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


# -- 4: the Open311 XML feed ------------------------------------------------------------------


def dirty_fields() -> dict[str, Any]:
    return report_fields(
        service_code="pelanggaran-lain",
        **{"attribute[jenis_ternak][]": None, "attribute[peraturan]": f"Perda{NOT_XML} 3"},
        description=f"Sapi{NOT_XML} di jalan",
        address_string=f"Jl. Poros{NOT_XML} Andoolo",
        first_name=f"Wa{NOT_XML} Ode",
    )


@pytest.mark.parametrize("channel", ["open311", "form"])
def test_characters_xml_cannot_carry_are_removed_at_intake(app: Flask, channel: str) -> None:
    client = app.test_client()
    if channel == "open311":
        extra = {"device_id": f"hp{NOT_XML}1", "account_id": f"akun{NOT_XML}"}
        response = client.post("/open311/v2/requests.json", data={**dirty_fields(), **extra, "api_key": api_key(app)})
        assert response.status_code == 201, response.data
    else:
        response = client.post("/lapor", data={**dirty_fields(), "csrf_token": csrf(client)})
        assert response.status_code == 303, response.data[:300]
    [row] = rows(app, "SELECT * FROM reports")
    assert row["description"] == "Sapi di jalan" and row["address"] == "Jl. Poros Andoolo"
    assert row["reporter_name"] == "Wa Ode" and json.loads(row["attributes"]) == {"peraturan": "Perda 3"}
    root = well_formed(client.get("/open311/v2/requests.xml").data)
    assert root.find("request/description").text == "Sapi di jalan"
    assert root.find("request/address").text == "Jl. Poros Andoolo"


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_bytes_that_are_no_text_still_give_a_well_formed_feed(app: Flask, encoding: str) -> None:
    """Lone surrogates (ED A0 80), U+FFFE and U+FFFF as raw UTF-8 bytes: whatever the
    form parser makes of them, the feed stays well-formed."""
    fields = {**report_fields(description=None), "api_key": api_key(app)}
    raw = b"Sapi\xed\xa0\x80\xed\xbf\xbf\xef\xbf\xbe\xef\xbf\xbf\x0b\x0c di jalan"
    if encoding == "urlencoded":
        body = urlencode(fields, doseq=True).encode() + b"&description=" + quote(raw).encode()
        content_type = "application/x-www-form-urlencoded"
    else:
        parts = [(name, value) for name, values in fields.items() for value in _listed(values)]
        body = b"".join(
            b'--B\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (name.encode(), value.encode())
            for name, value in parts
        )
        body += b'--B\r\nContent-Disposition: form-data; name="description"\r\n\r\n' + raw + b"\r\n--B--\r\n"
        content_type = "multipart/form-data; boundary=B"
    client = app.test_client()
    assert client.post("/open311/v2/requests.json", data=body, content_type=content_type).status_code == 201
    root = well_formed(client.get("/open311/v2/requests.xml").data)
    assert root.find("request/description").text.startswith("Sapi")


def _listed(values: Any) -> list[Any]:
    return values if isinstance(values, list) else [values]


def test_rows_stored_before_the_fix_do_not_break_the_feed(app: Flask) -> None:
    conn = connect(app.config["DATABASE"])
    try:
        report = store.NewReport(  # straight into the store, past the intake: as rows written before the fix
            service_code=f"kode-lama{NOT_XML}",
            description=f"lama{NOT_XML}",
            lat=None,
            lon=None,
            address=f"alamat{NOT_XML}",
            address_id=f"id{NOT_XML}",
            media_url=f"https://foto.example/{NOT_XML}",
        )
        ticket, token = store.create_report(conn, report, photos_dir=app.config["SIAGA_PHOTOS_DIR"])
        conn.execute(
            "INSERT INTO report_history (report_id, at, actor, from_status, to_status, note, public) "
            "SELECT id, requested_at + 1, 'petugas', 'received', 'received', ?, 1 FROM reports",
            (f"catatan{NOT_XML}",),
        )
        conn.commit()
    finally:
        conn.close()
    client = app.test_client()
    for path in ("/open311/v2/requests.xml", f"/open311/v2/requests/{ticket}.xml", f"/open311/v2/tokens/{token}.xml"):
        root = well_formed(client.get(path).data)
        assert root.tag == "service_requests", path
    request = well_formed(client.get("/open311/v2/requests.xml").data).find("request")
    kept = NOT_XML if stores_server() is None else NOT_XML.replace("\x00", "\ufffd")  # no PostgreSQL text holds NUL
    shown = "" if stores_server() is None else "\ufffd"  # what of it XML can carry
    assert request.findtext("description") == f"lama{shown}" and request.findtext("status_notes") == f"catatan{shown}"
    assert request.findtext("service_name") == f"kode-lama{shown}"
    assert client.get("/open311/v2/requests.json").json[0]["status_notes"] == f"catatan{kept}"  # JSON can carry it


def test_an_officers_public_note_cannot_break_the_feed(app: Flask) -> None:
    client = app.test_client()
    assert (
        client.post("/open311/v2/requests.json", data={**report_fields(), "api_key": api_key(app)}).status_code == 201
    )
    [row] = rows(app, "SELECT ticket FROM reports")
    officer = sign_in(app, "satpol")
    page = f"/satpol/laporan/{row['ticket']}"
    response = officer.post(
        page,
        data={
            "to_status": "verified",
            "note": f"Dicek{NOT_XML} besok",
            "public": "1",
            "csrf_token": csrf(officer, page),
        },
    )
    assert response.status_code == 303
    root = well_formed(client.get("/open311/v2/requests.xml").data)
    assert root.findtext("request/status_notes") == "Dicek besok"


def test_a_categories_file_with_a_control_character_is_refused_by_name(tmp_path: Path) -> None:
    text = Path(default_file()).read_text("utf-8")
    bad = tmp_path / "categories.toml"
    bad.write_text(text.replace('name = "Hewan ternak berkeliaran"', 'name = "Hewan\\u000Bternak"', 1), "utf-8")
    with pytest.raises(ConfigError, match=r"category\[\d+\]\.name|category.*name"):
        load_catalogue(bad)


def test_services_from_a_catalogue_with_control_characters_are_well_formed(tmp_path: Path) -> None:
    """Whatever the catalogue holds (one built in code, not read from a file), the XML is well-formed."""
    catalogue = load_catalogue()
    first = catalogue.categories[0]
    attribute = dataclasses.replace(first.attributes[0], description=f"tanya{NOT_XML}", values={"a": f"A{NOT_XML}"})
    dirty = dataclasses.replace(
        first, name=f"nama{NOT_XML}", description=f"isi{NOT_XML}", group=f"grup{NOT_XML}", attributes=(attribute,)
    )
    app = make_app(tmp_path, TESTING=False, SIAGA_CATALOGUE=dataclasses.replace(catalogue, categories=(dirty,)))
    client = app.test_client()
    root = well_formed(client.get("/open311/v2/services.xml").data)
    assert root.findtext("service/service_name") == "nama"
    definition = well_formed(client.get(f"/open311/v2/services/{first.code}.xml").data)
    assert definition.findtext("attributes/attribute/values/value/name") == "A"


# -- 5: no open redirect after sign-in ----------------------------------------------------------

BYPASSES = [
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r/evil.example",
    "\t//evil.example",
    " //evil.example",
    "\x00//evil.example",
    "/\x0b/evil.example",
    "//evil.example/%2F..",
    "//@evil.example",
    "https://evil.example",
    "https:/evil.example",
    "http:evil.example",
    "HTTPS://evil.example",
    "javascript:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    "%2F%2Fevil.example",
    "/\u3000/evil.example",
    "/\uff0f/evil.example",
]


def sign_in_at(
    app: Flask, username: str, password: str, address: str, query: str = "", client: FlaskClient | None = None
):
    client = client or app.test_client()
    data = {"username": username, "password": password, "csrf_token": csrf(client, "/login")}
    return client.post(f"/login{query}", data=data, environ_base={"REMOTE_ADDR": address})


@pytest.mark.parametrize("target", BYPASSES, ids=[repr(b) for b in BYPASSES])
def test_sign_in_never_redirects_to_another_site(app: Flask, target: str) -> None:
    response = sign_in_at(app, *ACCOUNTS["fire_operator"], OPERATOR_DESK, "?" + urlencode({"next": target}))
    assert response.status_code == 302
    assert response.headers["Location"] == "/board"  # the role's landing page


@pytest.mark.parametrize(
    "query",
    [
        "?next=/%09/evil.example",
        "?next=/%5cevil.example",
        "?next=/%5C%5Cevil.example",
        "?next=%2F%2Fevil.example",
        "?next=/%0d%0a/evil.example",
        "?next=/%2F/evil.example",
    ],
)
def test_the_reported_redirects_exactly_as_sent(app: Flask, query: str) -> None:
    response = sign_in_at(app, *ACCOUNTS["fire_operator"], OPERATOR_DESK, query)
    assert response.headers["Location"] == "/board"


def test_a_path_on_this_site_is_still_followed(app: Flask) -> None:
    response = sign_in_at(app, *ACCOUNTS["fire_operator"], OPERATOR_DESK, "?next=/stats%3Ffrom%3D2026-01")
    assert response.headers["Location"] == "/stats?from=2026-01"


# -- 6: throttled guessing without a lock-out ------------------------------------------------------


def test_a_stranger_cannot_lock_an_operator_out(app: Flask) -> None:
    username, password = ACCOUNTS["fire_operator"]
    for _ in range(LOGIN_FAILURES_PER_PAIR):
        assert sign_in_at(app, username, "wrong-password", ATTACKER).status_code == 401
    throttled = sign_in_at(app, username, password, ATTACKER)  # even the right password, from there
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    assert "Terlalu banyak percobaan" in throttled.get_data(as_text=True)
    at_the_post = sign_in_at(app, username, password, OPERATOR_DESK)
    assert at_the_post.status_code == 302 and at_the_post.headers["Location"] == "/board"
    audit = rows(app, "SELECT action, ip, after FROM audit_log WHERE subject = 'user:operator' ORDER BY id")
    assert [r["action"] for r in audit] == ["login.failed"] * LOGIN_FAILURES_PER_PAIR + ["login.throttled", "login"]
    assert audit[-2]["ip"] == ATTACKER and json.loads(audit[-2]["after"]) == {"reason": "pair"}


def test_behind_a_proxy_each_client_address_counts_on_its_own(tmp_path: Path) -> None:
    app = make_app(tmp_path, TESTING=False, SIAGA_TRUSTED_PROXIES=1)
    username, password = ACCOUNTS["fire_operator"]

    def attempt(secret: str, address: str) -> int:
        client = app.test_client()
        data = {"username": username, "password": secret, "csrf_token": csrf(client, "/login")}
        return client.post("/login", data=data, headers={"X-Forwarded-For": address}).status_code

    assert [attempt("wrong-password", ATTACKER) for _ in range(LOGIN_FAILURES_PER_PAIR)] == [401] * 5
    assert attempt(password, ATTACKER) == 429
    assert attempt(password, OPERATOR_DESK) == 302


def test_one_address_guessing_many_accounts_is_throttled(app: Flask) -> None:
    limits: LoginLimits = app.extensions["siaga.login_limits"]
    for n in range(limits.address.limit):
        assert sign_in_at(app, f"akun{n}", "wrong-password", ATTACKER).status_code == 401
    throttled = sign_in_at(app, *ACCOUNTS["fire_operator"], ATTACKER)
    assert throttled.status_code == 429 and "Retry-After" in throttled.headers
    assert sign_in_at(app, *ACCOUNTS["fire_operator"], OPERATOR_DESK).status_code == 302


def test_an_account_under_attack_from_many_addresses_still_lets_a_clean_address_in(app: Flask) -> None:
    # The real limiter with a small account-wide limit, so that the test needs few scrypt checks.
    limits: LoginLimits = app.extensions["siaga.login_limits"]
    limits.account = dataclasses.replace(limits.account, limit=6)
    username, password = ACCOUNTS["fire_operator"]
    assert sign_in_at(app, username, "typo-password", ELSEWHERE).status_code == 401  # one slip, before the attack
    for n in range(6):
        assert sign_in_at(app, username, "wrong-password", f"203.0.113.{n}").status_code == 401
    # Under attack: an address that already guessed wrong waits (far fewer guesses per address) ...
    refused = sign_in_at(app, username, password, "203.0.113.0")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert sign_in_at(app, username, password, ELSEWHERE).status_code == 429
    reasons = [
        json.loads(r["after"])["reason"]
        for r in rows(app, "SELECT after FROM audit_log WHERE action = 'login.throttled'")
    ]
    assert reasons == ["account", "account"]
    # ... while the fire post, with no failure of its own, signs in.
    assert sign_in_at(app, username, password, OPERATOR_DESK).status_code == 302


class Clock:
    """A monotonic clock the test moves by hand: no sleeps."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def clocked_limits(app: Flask, *, account_failures: int | None = None) -> Clock:
    """The app's real sign-in limits on a hand-moved clock; optionally a smaller account-wide
    threshold, so that a test reaches 'under attack' with few scrypt checks."""
    clock = Clock()
    limits = LoginLimits.create(clock=clock, secret=app.config["SECRET_KEY"])
    if account_failures is not None:
        limits.account = dataclasses.replace(limits.account, limit=account_failures)
    app.extensions["siaga.login_limits"] = limits
    return clock


class LoginForm:
    """One browser posting the sign-in form from whatever address it is given."""

    def __init__(self, app: Flask) -> None:
        self.client = app.test_client()
        self.token = csrf(self.client, "/login")

    def post(self, username: str, password: str, address: str):
        data = {"username": username, "password": password, "csrf_token": self.token}
        return self.client.post("/login", data=data, environ_base={"REMOTE_ADDR": address})


def throttle_reasons(app: Flask) -> list[str]:
    return [
        json.loads(r["after"])["reason"]
        for r in rows(app, "SELECT after FROM audit_log WHERE action = 'login.throttled' ORDER BY id")
    ]


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("2001:db8:66:1:aaaa:bbbb:cccc:dddd", "2001:db8:66:1::/64"),
        ("2001:DB8:66:1::1", "2001:db8:66:1::/64"),
        ("2001:db8:66:2::1", "2001:db8:66:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:203.0.113.66", "203.0.113.66"),  # a dual-stack socket's IPv4 client is that IPv4 address
        ("203.0.113.66", "203.0.113.66"),
        ("203.0.113.67", "203.0.113.67"),
        ("?", "?"),
        ("unix:/run/siaga.sock", "unix:/run/siaga.sock"),
    ],
)
def test_sign_in_limits_count_an_ipv6_64_as_one_address(address: str, key: str) -> None:
    assert address_key(address) == key


@pytest.mark.parametrize(
    ("accounts", "through"), [("one", LOGIN_FAILURES_PER_PAIR), ("many", LOGIN_FAILURES_PER_ADDRESS)]
)
def test_a_thousand_addresses_in_one_ipv6_64_are_throttled_as_one(app: Flask, accounts: str, through: int) -> None:
    """One subscriber has 2^64 addresses; a different one for each guess gains nothing."""
    clocked_limits(app)
    username, password = ACCOUNTS["fire_operator"]
    subscriber = ipaddress.IPv6Network("2001:db8:66:1::/64")
    form = LoginForm(app)
    checked = 0
    for n in range(1000):
        address = str(subscriber[n * 2**54 + 1])  # spread over the whole interface-identifier range
        response = form.post(username if accounts == "one" else f"akun{n}", "wrong-password", address)
        assert response.status_code in (401, 429)
        checked += response.status_code == 401
        assert checked <= through, f"guess {n} from {address} reached the password check"
    assert checked == through
    assert throttle_reasons(app) == ["pair" if accounts == "one" else "address"] * (1000 - through)
    assert form.post(username, password, "2001:db8:66:1:1234::5").status_code == 429  # the same /64
    assert form.post(username, password, "2001:db8:66:2::1").status_code == 302  # the next subscriber


def test_a_thousand_ipv4_addresses_get_at_most_the_budget_per_minute_against_one_account(app: Flask) -> None:
    """A botnet with an address per guess: once the account is under attack, at most
    ATTACK_TRIES_PER_WINDOW guesses a minute reach the password check, whatever the addresses."""
    threshold = 6  # the real limiter, a small account-wide threshold: fewer scrypt checks
    clock = clocked_limits(app, account_failures=threshold)
    username = ACCOUNTS["fire_operator"][0]
    form = LoginForm(app)
    step = 0.18  # 1,000 guesses in three minutes
    checked: list[float] = []
    for n in range(1000):
        response = form.post(username, "wrong-password", str(ipaddress.IPv4Address("10.0.0.1") + n))
        if response.status_code == 401:
            checked.append(clock())
            under_attack = checked[threshold:]
            in_last_minute = [t for t in under_attack if t > clock() - ATTACK_WINDOW_S]
            assert len(in_last_minute) <= ATTACK_TRIES_PER_WINDOW, f"guess {n}: {len(in_last_minute)} in a minute"
        else:
            assert response.status_code == 429
            assert 0 < int(response.headers["Retry-After"]) <= ATTACK_WINDOW_S + 1  # seconds, not 15 minutes
        clock.advance(step)
    through = len(checked) - threshold
    assert 2 * ATTACK_TRIES_PER_WINDOW < through <= 3 * ATTACK_TRIES_PER_WINDOW  # slowed, never stopped
    assert throttle_reasons(app) == ["account_rate"] * (1000 - len(checked))


def test_under_attack_the_operator_at_a_new_address_signs_in_once_the_minute_turns(app: Flask) -> None:
    clock = clocked_limits(app, account_failures=6)
    username, password = ACCOUNTS["fire_operator"]
    form, operator = LoginForm(app), LoginForm(app)
    for n in range(6 + ATTACK_TRIES_PER_WINDOW):  # under attack, then the minute's budget spent
        assert form.post(username, "wrong-password", f"203.0.113.{n}").status_code == 401
        clock.advance(1)
    assert form.post(username, "wrong-password", "203.0.113.200").status_code == 429
    # The right password from a clean address, in a minute whose budget the attacker spent: wait seconds ...
    refused = operator.post(username, password, OPERATOR_DESK)
    wait = int(refused.headers["Retry-After"])
    assert refused.status_code == 429 and 0 < wait <= ATTACK_WINDOW_S + 1
    assert "1 menit" in refused.get_data(as_text=True)
    assert throttle_reasons(app) == ["account_rate", "account_rate"]
    clock.advance(wait)
    # ... and the attack goes on (the account is still under attack), yet the operator is in.
    assert operator.post(username, password, OPERATOR_DESK).status_code == 302
    assert form.post(username, password, "203.0.113.0").status_code == 429  # an address that guessed wrong waits


def test_under_attack_an_address_that_signed_in_before_is_outside_the_budget(app: Flask) -> None:
    clock = clocked_limits(app, account_failures=6)
    username, password = ACCOUNTS["fire_operator"]
    form = LoginForm(app)
    assert LoginForm(app).post(username, password, OPERATOR_DESK).status_code == 302  # the post's desk, yesterday
    clock.advance(86400)
    for n in range(6 + ATTACK_TRIES_PER_WINDOW):
        assert form.post(username, "wrong-password", f"203.0.113.{n}").status_code == 401
    assert form.post(username, "wrong-password", "203.0.113.200").status_code == 429
    assert form.post(username, password, ELSEWHERE).status_code == 429  # a new address waits for the minute
    assert LoginForm(app).post(username, password, OPERATOR_DESK).status_code == 302  # the known desk does not


# -- 7: 500s ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/stats?to=9999-12",
        "/stats?from=9999-12&to=9999-12",
        "/stats?from=0001-01&to=0001-01",
        "/stats?from=2026-13&to=99999-1",
        "/stats.csv?to=9999-12",
        "/stats.csv?to=9999-12&group=site&kind=fire",
    ],
)
def test_any_month_in_the_statistics_is_answered(app: Flask, path: str) -> None:
    assert sign_in(app, "fire_operator").get(path).status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/admin/audit?from=0001-01-01&to=9999-12-31", "/admin/audit.csv?from=9999-12-31&to=0001-01-01"],
)
def test_any_day_in_the_audit_log_is_answered(app: Flask, path: str) -> None:
    assert sign_in(app, "admin").get(path).status_code == 200


def int_rules(app: Flask) -> list[Any]:
    return [
        rule
        for rule in app.url_map.iter_rules()
        if any(isinstance(converter, IntegerConverter) for converter in rule._converters.values())
    ]


def test_every_int_route_answers_404_for_ids_sqlite_cannot_hold(app: Flask) -> None:
    rules = int_rules(app)
    assert len(rules) >= 8, [rule.rule for rule in rules]  # alarms, accounts, API keys, photos ...
    clients = {"anonymous": app.test_client(), **{role: sign_in(app, role) for role in ACCOUNTS}}
    wrong = []
    for rule in rules:
        for huge in (2**63, 2**64 + 1, 10**30, int("9" * 4000)):
            path = rule.build({name: huge for name in rule.arguments}, append_unknown=False)[1]
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                for role, client in clients.items():
                    status = client.open(path, method=method).status_code
                    if status != 404:
                        wrong.append(f"{role} {method} {rule.rule} with {str(huge)[:20]}: {status}")
    assert wrong == []


def test_the_largest_id_sqlite_holds_is_looked_up_not_crashed_on(app: Flask) -> None:
    clients = [sign_in(app, role) for role in ACCOUNTS]
    for rule in int_rules(app):
        converter = next(c for c in rule._converters.values() if isinstance(c, IntegerConverter))
        path = rule.build({name: converter.max for name in rule.arguments}, append_unknown=False)[1]
        for client in clients:
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                headers = {"X-CSRF-Token": csrf(client, "/account/password")}
                assert client.open(path, method=method, headers=headers).status_code < 500, (rule.rule, method)


@pytest.fixture
def operator(app: Flask) -> tuple[FlaskClient, dict[str, str]]:
    client = sign_in(app, "fire_operator")
    return client, {"X-CSRF-Token": csrf(client, "/board")}


@pytest.mark.parametrize("body", ["[" * 100_000, "{" * 50_000, '{"note": ' * 30_000, '{"note": "x"', "\x00"])
def test_a_json_body_that_cannot_be_read_is_a_json_400(operator: tuple[FlaskClient, dict[str, str]], body: str) -> None:
    client, headers = operator
    response = client.post("/api/alarms/17/acknowledge", data=body, content_type="application/json", headers=headers)
    assert response.status_code == 400 and response.json["error"] == "bad_request"


def test_the_apps_json_parser_refuses_depth_as_bad_json(app: Flask) -> None:
    assert isinstance(app.json, SafeJSONProvider)
    with pytest.raises(ValueError, match="nested too deeply"):
        app.json.loads("[" * 100_000)


def crashing_app(tmp_path: Path) -> Flask:
    app = make_app(tmp_path, TESTING=False)

    def crash() -> Any:
        raise RuntimeError("a bug with a secret in its message: hunter2")

    def busy() -> Any:
        raise TooManyRequests(retry_after=7)

    def teapot() -> Any:
        abort(418)

    for prefix in ("/api/test", "/open311/v2/test", "/test"):
        app.add_url_rule(f"{prefix}/crash", f"{prefix}-crash", crash)
        app.add_url_rule(f"{prefix}/crash.json", f"{prefix}-crash-json", crash)
        app.add_url_rule(f"{prefix}/busy.json", f"{prefix}-busy", busy)
        app.add_url_rule(f"{prefix}/teapot.json", f"{prefix}-teapot", teapot)
    return app


def test_errors_under_api_are_json(tmp_path: Path) -> None:
    app = crashing_app(tmp_path)
    client = sign_in(app, "fire_operator")
    cases = [
        ("GET", "/api/test/crash", 500, "server_error"),
        ("GET", "/api/test/busy.json", 429, "too_many_requests"),
        ("GET", "/api/test/teapot.json", 418, "i'm_a_teapot"),
        ("GET", "/api/alarms/17/acknowledge", 405, "method_not_allowed"),
        ("DELETE", "/api/alarms", 405, "method_not_allowed"),
        ("GET", "/api/no-such-thing", 404, "not_found"),
        ("POST", "/api/alarms/17/acknowledge", 400, "csrf"),
    ]
    for method, path, status, error in cases:
        response = client.open(path, method=method)
        assert (response.status_code, response.content_type) == (status, "application/json"), path
        assert response.json["error"] == error, path
        assert "Traceback" not in response.get_data(as_text=True) and "hunter2" not in response.get_data(as_text=True)
    assert client.get("/api/test/busy.json").headers["Retry-After"] == "7"
    assert "POST" in client.get("/api/alarms/17/acknowledge").headers["Allow"]
    assert app.extensions["siaga"].counters.get("http_500") == 1


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_errors_under_open311_are_in_the_specs_format(tmp_path: Path, fmt: str) -> None:
    app = crashing_app(tmp_path)
    client = app.test_client()
    suffix = ".json" if fmt == "json" else ""
    for path, status in (
        (f"/open311/v2/test/crash{suffix}", 500),
        ("/open311/v2/test/busy.json", 429),
        ("/open311/v2/test/teapot.json", 418),
    ):
        response = client.get(path)
        assert response.status_code == status and "hunter2" not in response.get_data(as_text=True)
        if path.endswith(".json"):
            assert response.json[0]["code"] == status
        else:
            root = well_formed(response.data)
            assert root.tag == "errors" and root.findtext("error/code") == str(status)
    assert client.get("/open311/v2/test/busy.json").headers["Retry-After"] == "7"


def test_a_crash_on_a_page_is_an_error_page_without_a_trace(tmp_path: Path) -> None:
    app = crashing_app(tmp_path)
    response = app.test_client().get("/test/crash")
    text = response.get_data(as_text=True)
    assert response.status_code == 500 and response.content_type.startswith("text/html")
    assert "Kesalahan ini telah dicatat" in text and "Traceback" not in text and "hunter2" not in text
    assert app.test_client().delete("/stats").status_code == 405
    assert app.extensions["siaga"].counters.get("http_500") == 1


@pytest.mark.parametrize(
    "query",
    [
        "status=" + ",".join(["open"] * 90_000),
        "service_code=" + ",".join(["ternak-berkeliaran"] * 20_000),
        "service_request_id=" + ",".join(["LAP-2026-000001"] * 20_000),
        "start_date=0001-01-01T00:00:00%2B14:00&end_date=9999-12-31T23:59:59-14:00",
        "end_date=0001-01-01T00:00:00%2B14:00",
    ],
)
def test_open311_searches_with_extreme_parameters_are_answered(app: Flask, query: str) -> None:
    response = app.test_client().get(f"/open311/v2/requests.xml?{query}")
    assert response.status_code in (200, 400) and well_formed(response.data) is not None


def test_guessing_the_current_password_is_limited_and_audited(app: Flask) -> None:
    client = sign_in(app, "fire_operator")
    username, password = ACCOUNTS["fire_operator"]
    change = {"new": "a-new-password-9", "again": "a-new-password-9"}
    for n in range(5):
        token = csrf(client, "/account/password")
        response = client.post("/account/password", data={**change, "current": f"guess-{n}", "csrf_token": token})
        assert response.status_code == 400
    token = csrf(client, "/account/password")
    response = client.post("/account/password", data={**change, "current": password, "csrf_token": token})
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert "Terlalu banyak kata sandi sekarang yang salah" in response.get_data(as_text=True)
    audit = rows(
        app, "SELECT action, actor, subject, before, after FROM audit_log WHERE action LIKE 'user.current_password%'"
    )
    assert [r["action"] for r in audit] == ["user.current_password_wrong"] * 5 + ["user.current_password_throttled"]
    assert all(r["actor"] == username and r["subject"] == f"user:{username}" for r in audit)
    assert "guess-" not in repr([tuple(r) for r in audit])  # never the password
    assert sign_in_at(app, username, password, OPERATOR_DESK).status_code == 302  # the password is unchanged
