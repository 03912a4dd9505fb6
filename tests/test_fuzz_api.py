"""Schema-driven fuzzing of every JSON and form endpoint with schemathesis, as each role and anonymous.

The dashboard runs for real (Mosquitto, MQTT ingest, a gateway on gpiozero mock
pins); alarms are raised by pressing its buttons and reports come in through
Open311 and the public form, so ids in the fuzzed paths hit real rows part of
the time. Requests go to the same Flask app in-process (WSGI), carrying the
role's session cookie and CSRF header so that writes reach their handlers.

For each operation of ``/openapi.json`` and each role: schemathesis's coverage
cases (boundary values, missing and wrong-typed fields, unexpected methods;
deterministic) and then Hypothesis-generated valid and invalid requests
(derandomized, so CI is reproducible). The public HTML forms (``/lapor``,
``/login``) are fuzzed from a description kept here. Every response must:

- not be a 5xx, and carry no stack trace;
- conform to the description: documented status, content type, headers, body schema;
- parse as what it says it is (JSON parses, XML is well-formed);
- under ``/api/`` be JSON (errors too, never a page); under ``/open311/`` be the suffix's format;
- never redirect off-site.

``SIAGA_FUZZ_EXAMPLES`` sets the Hypothesis examples per operation and role
(default 40; ``SIAGA_FUZZ_EXAMPLES=2000`` for a long run, see docs/api.md).
Every failure found is listed with its request, not only the first.
"""

from __future__ import annotations

import io
import json
import os
import re
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

pytest.importorskip("schemathesis", reason="schemathesis has no wheels for this machine (32-bit ARM)")

import schemathesis
from gpiozero.pins.mock import MockFactory
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from dashboard.db import connect
from dashboard.live import EXTENSION as LIVE
from dashboard.openapi import spec
from dashboard.reports import store as reports_store
from firmware_bridge.broker import BrokerSettings
from firmware_bridge.settings import read_toml
from gateway.app import Gateway
from gateway.config import parse_config
from gateway.indicator import Pattern
from sim.mosquitto import Mosquitto
from sim.servers import DashboardServer, dashboard_config

from .conftest import ADMIN, OPERATOR, SAPA_DESK, SATPOL, gateway_toml, press, wait_online
from .reports_helpers import report_fields

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("SIAGA_FUZZ_EXAMPLES") or 40)
ROLES = ("anonymous", "fire_operator", "sapa_desk", "satpol", "technician", "admin")
ACCOUNTS = {
    "fire_operator": OPERATOR,
    "sapa_desk": SAPA_DESK,
    "satpol": SATPOL,
    "technician": ("teknisi", "teknisi-password-1"),
    "admin": ADMIN,
}
#: Signs in (and out of nothing) while /login is fuzzed, so that no role's account is throttled.
LOGIN_ACCOUNT = ("fuzz-login", "fuzz-login-password-1")
COOKIE = "siaga_session"
FORM = "application/x-www-form-urlencoded"
#: A report both intakes accept (a category with a required question, and a location).
VALID_REPORT = {
    "service_code": "ternak-berkeliaran",
    "attribute[jenis_ternak][]": "sapi",
    "lat": "-4.3497",
    "long": "122.3786",
}
TOKEN = re.compile(rb'name="csrf[-_]token"\s+(?:value|content)="([^"]+)"')

#: The operations of /openapi.json (not the document itself), writes first: what they store is read back later.
OPERATIONS = sorted(
    (
        f"{method.upper()} {path}"
        for path, item in spec()["paths"].items()
        for method in item
        if path != "/openapi.json"
    ),
    key=lambda label: (label.startswith("GET"), label),
)

#: What a stack trace or a debugger page looks like in a body.
STACK_TRACE = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+|werkzeug\.debug|__traceback_hide__"
)


# -- the system under test -------------------------------------------------------------------------


@dataclass
class Stack:
    app: Any
    schema: Any
    forms: Any
    credentials: dict[str, tuple[str, str]]  # role -> (session cookie, CSRF token)
    seeds: dict[str, list[Any]]  # path parameter -> values that name real rows
    api_key: str


def _session(client: Any, page: str) -> tuple[str, str]:
    body = client.get(page).data
    match = TOKEN.search(body)
    assert match, f"no CSRF token on {page}"
    return client.get_cookie(COOKIE).value, match.group(1).decode()


def _sign_in(app: Any, username: str, password: str) -> tuple[str, str]:
    client = app.test_client()
    _, token = _session(client, "/login")
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    assert response.status_code in (302, 303), response.data[:300]
    return _session(client, urlsplit(response.headers["Location"]).path)


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


def _seed(server: DashboardServer, gateway: Gateway, pins: MockFactory) -> tuple[dict[str, list[Any]], str]:
    """Alarms through the real press path (one resolved, one open fire, one open SAPA), troubles of both kinds,
    and two reports."""
    app = server.app
    press(pins, 17)
    press(pins, 23)
    assert gateway.wait_for_pattern("fire-1", Pattern.RECEIVED, 10)
    assert gateway.wait_for_pattern("sapa-1", Pattern.RECEIVED, 10)
    cookie, token = _sign_in(app, *OPERATOR)
    operator = app.test_client()
    operator.set_cookie(COOKIE, cookie)
    (first,) = operator.get("/api/alarms").get_json()["alarms"]
    headers = {"X-CSRF-Token": token}
    resolved = operator.post(
        f"/api/alarms/{first['id']}/resolve", json={"resolution": "false_alarm", "rev": first["rev"]}, headers=headers
    )
    assert resolved.status_code == 200, resolved.data
    assert gateway.wait_for_pattern("fire-1", Pattern.OFF, 10)
    press(pins, 17)  # a new fire alarm, open
    assert gateway.wait_for_pattern("fire-1", Pattern.RECEIVED, 10)

    # Troubles of both kinds: a technician puts one button in test mode and the other out of service,
    # and a supervision round (its thread runs every few seconds) turns that into troubles now.
    cookie, token = _sign_in(app, *ACCOUNTS["technician"])
    technician = app.test_client()
    technician.set_cookie(COOKIE, cookie)
    for button, mode in (("fire-1", "test"), ("sapa-1", "out_of_service")):
        done = technician.post(
            f"/devices/buttons/{button}/service",
            data={"mode": mode, "reason": "uji fuzzing", "hours": "2", "csrf_token": token},
        )
        assert done.status_code == 303, done.data[:300]
    conn = connect(app.config["DATABASE"])
    try:
        app.extensions[LIVE].supervisor.check(conn)
        assert {row[0] for row in conn.execute("SELECT kind FROM troubles WHERE cleared_at IS NULL")} >= {
            "fire",
            "sapa",
        }
        key = reports_store.create_api_key(conn, "fuzzer", "admin")
        alarm_ids = [row[0] for row in conn.execute("SELECT id FROM alarms ORDER BY id")]
    finally:
        conn.close()
    citizen = app.test_client()
    posted = citizen.post(
        "/open311/v2/requests.json",
        data={
            "api_key": key,
            "service_code": "ternak-berkeliaran",
            "attribute[jenis_ternak][]": "sapi",
            "lat": "-4.3497",
            "long": "122.3786",
            "description": "Tiga ekor sapi di jalan poros Andoolo.",
        },
    )
    assert posted.status_code == 201, posted.data
    created = posted.get_json()[0]
    _, form_token = _session(citizen, "/lapor")
    form = citizen.post(
        "/lapor",
        data={
            "csrf_token": form_token,
            **report_fields(description="Sapi di jalan poros, lewat formulir."),
            "photos": (io.BytesIO(_jpeg()), "sampah.jpg"),
        },
        content_type="multipart/form-data",
    )
    assert form.status_code == 303, form.data[:500]
    form_ticket = urlsplit(form.headers["Location"]).path.rsplit("/", 1)[-1]
    assert len(alarm_ids) == 3, alarm_ids
    seeds = {
        "alarm_id": alarm_ids,
        "service_request_id": [created["service_request_id"], form_ticket],
        "token": [created["token"]],
        "service_code": [category.code for category in app.config["SIAGA_CATALOGUE"].categories],
    }
    return seeds, key


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("fuzz")
    broker = Mosquitto(tmp / "mosquitto").start()
    server = gateway = None
    try:
        config = dashboard_config(
            tmp / "dashboard",
            BrokerSettings(host=broker.host, port=broker.port),
            SIAGA_STREAM_KEEPALIVE_S=0.05,
            # Limits would answer 429 before the handlers: the fuzzer is after the handlers.
            SIAGA_API_RATE=(10**9, 60),
            SIAGA_FORM_RATE=(10**9, 600),
        )
        server = DashboardServer(config).start()
        for role, account in ACCOUNTS.items():
            server.create_user(*account, role)
        server.create_user(*LOGIN_ACCOUNT, "fire_operator")
        pins = MockFactory()
        gateway = Gateway(parse_config(read_toml(gateway_toml(tmp / "gw.toml", port=broker.port))), pin_factory=pins)
        gateway.start()
        wait_online(gateway)
        seeds, key = _seed(server, gateway, pins)
        app = server.app
        credentials = {role: _sign_in(app, *account) for role, account in ACCOUNTS.items()}
        credentials["anonymous"] = _session(app.test_client(), "/lapor")  # no account: a CSRF token only
        # An event stream is read up to its first event (the snapshot), then closed.
        st_config = schemathesis.config.SchemathesisConfig.from_dict({"max-stream-events": 1, "request-timeout": 10})
        schema = schemathesis.openapi.from_wsgi("/openapi.json", app, config=st_config)
        forms = schemathesis.openapi.from_dict(_forms_description(seeds["service_code"]), config=st_config)
        forms.app = app
        yield Stack(app, schema, forms, credentials, seeds, key)
    finally:
        if gateway is not None:
            gateway.close()
        if server is not None:
            server.stop()
        broker.stop()


# -- checks beyond the description ---------------------------------------------------------------


def _content_type(response: Any) -> str:
    return (response.headers.get("content-type") or [""])[0].split(";")[0].strip().lower()


def no_stack_trace(ctx: Any, response: Any, case: Any) -> None:
    text = response.content.decode("utf-8", "replace")
    match = STACK_TRACE.search(text)
    if match:
        raise AssertionError(f"stack trace in the body: {text[max(0, match.start() - 200) : match.end() + 300]!r}")


def body_parses_as_its_content_type(ctx: Any, response: Any, case: Any) -> None:
    if not response.content:
        return
    kind = _content_type(response)
    if kind == "application/json":
        try:
            json.loads(response.content)
        except ValueError as exc:
            raise AssertionError(f"application/json that does not parse: {exc}") from None
    elif kind in ("text/xml", "application/xml"):
        try:
            ET.fromstring(response.content)  # noqa: S314 -- our own responses; expat resolves no external entities
        except ET.ParseError as exc:
            raise AssertionError(f"XML that is not well-formed: {exc}: {response.content[:400]!r}") from None


def speaks_its_prefix(ctx: Any, response: Any, case: Any) -> None:
    """/api/ answers JSON (errors too), /open311/ the format its suffix names, whatever the status."""
    if not response.content:
        return  # HEAD, OPTIONS
    path = urlsplit(response.request.url).path
    kind = _content_type(response)
    if path.startswith("/api/"):
        if path == "/api/stream" and response.status_code == 200:
            wanted = "text/event-stream"
        else:
            wanted = "application/json"
    elif path.startswith("/open311/"):
        wanted = "application/json" if path.endswith(".json") else "text/xml"
    else:
        return
    if kind != wanted:
        raise AssertionError(
            f"{response.status_code} {path} answered {kind or 'no content type'}, not {wanted}: "
            f"{response.content[:200]!r}"
        )


def stays_on_site(ctx: Any, response: Any, case: Any) -> None:
    for location in response.headers.get("location") or []:
        host = urlsplit(location).netloc
        # Browsers read "//host", "/\\host" and "\\host" as another site too.
        if (host and host != "localhost") or re.match(r"^\s*(//|/\\|\\)", location):
            raise AssertionError(f"redirect off-site: Location: {location!r}")


def html_forms_answer_pages(ctx: Any, response: Any, case: Any) -> None:
    if not response.content or 300 <= response.status_code < 400:
        return
    if _content_type(response) != "text/html":
        raise AssertionError(f"a form answered {_content_type(response)!r}, not a page")


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    unsupported_method,
    allow_header_conformance,
    no_stack_trace,
    body_parses_as_its_content_type,
    speaks_its_prefix,
    stays_on_site,
]
FORM_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_headers_conformance,
    no_stack_trace,
    stays_on_site,
    html_forms_answer_pages,
]


# -- running cases -------------------------------------------------------------------------------


def reproducer(role: str, case: Any, response: Any | None, error: BaseException) -> str:
    """What it takes to do it again: who, the request as sent, and what came back."""
    if response is not None:
        request = response.request
        body = request.body if isinstance(request.body, bytes | str | type(None)) else "<stream>"
        if isinstance(body, bytes) and len(body) > 600:
            body = body[:600] + b"..."
        sent = (
            f"{request.method} {request.url}\n  content-type: {request.headers.get('Content-Type')}\n  body: {body!r}"
        )
        got = f"{response.status_code} {_content_type(response)}: {response.content[:500]!r}"
    else:
        sent = (
            f"{case.method} {case.formatted_path} query={case.query!r} media_type={case.media_type!r} "
            f"body={case.body!r}"
        )
        got = "no response: the app raised (a 500 in production)"
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return f"as {role}: {sent}\n  -> {got}\n  {type(error).__name__}: {first_line}\n" + textwrap.indent(
        str(error)[:1500], "    "
    )


def _signature(case: Any, error: BaseException, response: Any | None) -> str:
    """One entry per kind of failure: which checks failed (or which exception), on which status."""
    if isinstance(error, FailureGroup):
        what = ",".join(sorted({type(failure).__name__ for failure in error.exceptions}))
    else:
        what = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:100]}"
    method = response.request.method if response is not None else "-"
    status = response.status_code if response is not None else "-"
    return f"{case.operation.label}: {what} | {method} {status}"


def exercise(stack: Stack, role: str, case: Any, checks: list[Callable], found: dict[str, str], **send: Any) -> None:
    """Send one case as ``role`` and check the response; a failure is kept (once per kind), not raised."""
    cookie, token = stack.credentials[role]
    headers = {"X-CSRF-Token": token, **send.pop("headers", {})}
    response = None
    try:
        response = case.call(cookies={COOKIE: cookie}, headers=headers, **send)
        case.validate_response(response, checks=checks)
    except (Exception, FailureGroup) as error:  # an app's exception (a 500) is a finding too, kept with its request
        found.setdefault(_signature(case, error, response), reproducer(role, case, response, error))


def coverage_cases(schema: Any, operation: Any) -> list[Any]:
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    config = schema.config.generation_for(operation=operation)
    return list(schema.iter_coverage_cases(operation, generation_modes=modes, generation_config=config))


def fuzz_strategy(stack: Stack, operation: Any) -> st.SearchStrategy[Any]:
    """Valid and invalid requests; valid ones also with ids of real rows, and Open311 POSTs with a real key."""
    positive = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    for parameter in operation.path_parameters:
        for value in stack.seeds.get(parameter.name, []):
            positive.append(
                operation.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters={parameter.name: value})
            )
    strategy = st.one_of(positive)
    if operation.method.upper() == "POST" and operation.path in (
        "/open311/v2/requests.json",
        "/open311/v2/requests.xml",
        "/lapor",
    ):
        # Random fields rarely make a report that gets past the first check: half the valid cases are a
        # real report (with a key for Open311) plus whatever else was generated, so the later checks
        # (attributes, photos, storage, and reading it back as JSON and XML) are fuzzed too.
        base = {**VALID_REPORT, **({"api_key": stack.api_key} if operation.path.startswith("/open311/") else {})}

        def completed(case: Any) -> Any:
            if isinstance(case.body, dict):
                case.body = {**case.body, **base}
            return case

        strategy = st.one_of(strategy, strategy.map(completed))
    return st.one_of(strategy, operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))


def run_operation(stack: Stack, schema: Any, label: str, roles: tuple[str, ...], checks: list[Callable]) -> None:
    method, path = label.split(" ", 1)
    operation = schema[path][method]
    found: dict[str, str] = {}
    for role in roles:
        for case in coverage_cases(schema, operation):
            exercise(stack, role, case, checks, found)

    strategy = fuzz_strategy(stack, operation)
    if path == "/login":
        strategy = st.one_of(strategy, strategy.map(_with_login_account))

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, role=st.sampled_from(roles))
    def fuzz(case: Any, role: str) -> None:
        exercise(stack, role, case, checks, found)

    fuzz()
    assert not found, f"{len(found)} kind(s) of failure on {label}:\n\n" + "\n\n".join(found.values())


# -- the tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", OPERATIONS)
def test_fuzz_api(stack: Stack, label: str) -> None:
    """Every operation of /openapi.json, as every role and anonymous (the role is drawn per example)."""
    run_operation(stack, stack.schema, label, ROLES, CHECKS)


@pytest.mark.parametrize("label", ["POST /lapor", "POST /login"])
def test_fuzz_public_forms(stack: Stack, label: str) -> None:
    """The citizen's report form (multipart with photos, or urlencoded) and the sign-in form."""
    run_operation(stack, stack.forms, label, ("anonymous",), FORM_CHECKS)


def known_edges(stack: Stack) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Requests of the classes of bug found before (issue 9), sent every run whatever Hypothesis draws:
    (operation, the case's fields, what to send instead of its body)."""
    alarm = stack.seeds["alarm_id"][-1]
    report = {**VALID_REPORT, "api_key": stack.api_key}
    return [
        ("GET /api/alarms/{alarm_id}", {"path_parameters": {"alarm_id": 2**63}}, {}),
        ("GET /api/alarms/{alarm_id}", {"path_parameters": {"alarm_id": 2**64 + alarm}}, {}),
        ("POST /api/alarms/{alarm_id}/resolve", {"path_parameters": {"alarm_id": 2**63}, "body": {}}, {}),
        (  # JSON nested deeper than the parser's recursion limit
            "POST /api/alarms/{alarm_id}/acknowledge",
            {"path_parameters": {"alarm_id": alarm}, "body": {}, "media_type": "application/json"},
            {"data": b"[" * 100_000},
        ),
        (
            "POST /api/alarms/{alarm_id}/dispatch",
            {"path_parameters": {"alarm_id": alarm}, "body": {}, "media_type": "application/json"},
            {"data": b'{"unit": "Regu 1", "note": "' + b"\\u0000" * 10 + b'"}'},
        ),
        (  # characters XML 1.0 cannot carry, then the feed that shows them
            "POST /open311/v2/requests.json",
            {"body": {**report, "description": "tab\x0bvertikal\x0cform\x1bfeed\ufffe"}, "media_type": FORM},
            {},
        ),
        (
            "POST /open311/v2/requests.xml",
            {"body": {**report, "address_string": "Jl.\x01 Poros"}, "media_type": FORM},
            {},
        ),
        ("GET /open311/v2/requests.xml", {}, {}),
        ("GET /open311/v2/requests.json", {"query": {"start_date": "0001-01-01T00:00:00+14:00"}}, {}),
        (  # a multipart field whose name holds a line break, in both intakes
            "POST /lapor",
            {"body": {**VALID_REPORT, "attribute[jumlah\n]": "3"}, "media_type": "multipart/form-data"},
            {},
        ),
        (
            "POST /open311/v2/requests.xml",
            {"body": {**report, "attribute[jumlah\n]": "3"}, "media_type": "multipart/form-data"},
            {},
        ),
    ]


def test_known_edges(stack: Stack) -> None:
    found: dict[str, str] = {}
    for label, fields, send in known_edges(stack):
        method, path = label.split(" ", 1)
        if path == "/lapor":
            operation, checks, roles = stack.forms[path][method], FORM_CHECKS, ("anonymous",)
        else:
            operation, checks, roles = stack.schema[path][method], CHECKS, ROLES
        for role in roles:
            exercise(stack, role, operation.Case(**fields), checks, found, **send)
    assert not found, f"{len(found)} kind(s) of failure:\n\n" + "\n\n".join(found.values())


def test_the_dashboard_still_serves_its_seeded_alarms_after_the_fuzzing(stack: Stack) -> None:
    cookie, _ = stack.credentials["sapa_desk"]
    client = stack.app.test_client()
    client.set_cookie(COOKIE, cookie)
    alarms = client.get("/api/alarms?state=all").get_json()["alarms"]
    assert [alarm["kind"] for alarm in alarms] == ["sapa"]


# -- the public HTML forms, described for the fuzzer only (they are pages, not the API) -----------


def _with_login_account(case: Any) -> Any:
    if isinstance(case.body, dict):
        case.body["username"], case.body["password"] = LOGIN_ACCOUNT
    return case


def _forms_description(service_codes: list[str]) -> dict[str, Any]:
    page = {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}
    redirect = {
        "description": "elsewhere",
        "headers": {"Location": {"required": True, "schema": {"type": "string"}}},
    }
    report = {
        "type": "object",
        "properties": {
            "service_code": {"anyOf": [{"enum": service_codes}, {"type": "string"}]},
            "description": {"type": "string", "maxLength": 4000},
            "lat": {"type": "string"},
            "long": {"type": "string"},
            "address_string": {"type": "string"},
            "area": {"type": "string"},
            "name": {"type": "string"},
            "email": {"type": "string"},
            "phone": {"type": "string"},
        },
        "additionalProperties": {"type": "string"},
    }
    with_photos = {
        **report,
        "properties": {
            **report["properties"],
            "photos": {"type": "array", "maxItems": 4, "items": {"type": "string", "format": "binary"}},
        },
    }
    lang = {"name": "lang", "in": "query", "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Siaga public forms (test description)", "version": "1"},
        "paths": {
            "/lapor": {
                "post": {
                    "parameters": [lang],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {"schema": with_photos},
                            "application/x-www-form-urlencoded": {"schema": report},
                        },
                    },
                    "responses": {
                        "303": redirect,
                        "400": page,
                        "413": page,
                        "429": page,
                    },
                }
            },
            "/login": {
                "post": {
                    "parameters": [{"name": "next", "in": "query", "schema": {"type": "string"}}, lang],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/x-www-form-urlencoded": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
                                }
                            }
                        },
                    },
                    "responses": {"302": redirect, "303": redirect, "200": page, "401": page, "429": page},
                }
            },
        },
    }


def test_the_forms_description_is_valid() -> None:
    schemathesis.openapi.from_dict(_forms_description(["x"])).validate()
