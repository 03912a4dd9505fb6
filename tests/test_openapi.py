"""The OpenAPI description (``GET /openapi.json``) is valid, public, and describes exactly the routes the app has.

Routes are read from ``app.url_map``, never listed by hand: a new ``/api/`` or
``/open311/`` route without its description fails here, and so does a
description of a path or method the app does not have. Real responses are
checked against the description too (the fuzzing in ``test_fuzz_api.py`` does
that at scale).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("schemathesis", reason="schemathesis has no wheels for this machine (32-bit ARM)")

import schemathesis
from flask import Flask
from schemathesis.core.result import Ok
from werkzeug.routing import Rule

from dashboard.openapi import spec

from .reports_helpers import api_key, make_app, report_fields, sign_in

#: Every rule under these prefixes must be described (and only those rules).
DESCRIBED = ("/api/", "/open311/", "/openapi.json")
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}  # Flask answers these for every rule by itself
_VARIABLE = re.compile(r"<(?:(?P<converter>[a-zA-Z_]\w*)(?:\((?P<args>[^)]*)\))?:)?(?P<name>[a-zA-Z_]\w*)>")


def rule_paths(rule: Rule) -> list[str]:
    """The OpenAPI path templates one Flask rule stands for, with every parameter written ``{}``.

    ``<any(xml, json):fmt>`` is a fixed suffix in the description (``services.json``, ``services.xml``),
    so such a rule stands for one path per alternative.
    """
    paths = [""]
    position = 0
    for match in _VARIABLE.finditer(rule.rule):
        literal = rule.rule[position : match.start()]
        paths = [path + literal for path in paths]
        if match["converter"] == "any":
            choices = [choice.strip().strip("'\"") for choice in match["args"].split(",")]
            paths = [path + choice for path in paths for choice in choices]
        else:
            paths = [path + "{}" for path in paths]
        position = match.end()
    return [path + rule.rule[position:] for path in paths]


def normalized(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", template)


def app_operations(app: Flask) -> set[tuple[str, str]]:
    operations = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(DESCRIBED):
            continue
        for path in rule_paths(rule):
            for method in (rule.methods or set()) - IMPLICIT_METHODS:
                operations.add((path, method.lower()))
    return operations


def spec_operations(document: dict) -> Iterator[tuple[str, str, dict]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}:
                yield path, method, operation


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_app(tmp_path)


def test_every_api_and_open311_route_is_described_and_nothing_else(app: Flask) -> None:
    document = app.test_client().get("/openapi.json").get_json()
    described = {(normalized(path), method) for path, method, _ in spec_operations(document)}
    routed = app_operations(app)
    assert routed, "no /api/ or /open311/ routes found: the enumeration is broken"
    assert sorted(routed - described) == [], "routes of the app that /openapi.json does not describe"
    assert sorted(described - routed) == [], "operations /openapi.json describes that the app does not have"


def test_each_described_path_reaches_the_view_it_describes(app: Flask) -> None:
    """A described path, filled in, is routed to a real view, not to the catch-all of another prefix."""
    adapter = app.url_map.bind("localhost")
    for path, method, operation in spec_operations(spec()):
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        endpoint, _ = adapter.match(concrete, method=method.upper())
        blueprints = {"api", "open311", "devices", "openapi", "commissioning", "enrol_api"}
        assert endpoint.split(".")[0] in blueprints, f"{method.upper()} {path}"
        assert operation["operationId"], path


def test_the_rule_expansion_matches_the_routes_we_know() -> None:
    """The helper itself: a suffix alternative becomes two paths, a converter becomes a parameter."""
    assert rule_paths(Rule("/open311/v2/services/<code>.<any(xml, json):fmt>")) == [
        "/open311/v2/services/{}.xml",
        "/open311/v2/services/{}.json",
    ]
    assert rule_paths(Rule("/api/alarms/<int(max=9):alarm_id>/resolve")) == ["/api/alarms/{}/resolve"]
    assert rule_paths(Rule("/open311/<path:anything>")) == ["/open311/{}"]


def test_the_description_is_valid_openapi_and_every_operation_loads(app: Flask) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    schema.validate()  # against the OpenAPI 3.1 meta-schema; raises with the first violation
    operations = list(schema.get_all_operations())
    broken = [str(result.err()) for result in operations if not isinstance(result, Ok)]
    assert broken == []
    loaded = {result.ok().label for result in operations}
    described = {f"{method.upper()} {path}" for path, method, _ in spec_operations(spec())}
    assert described - loaded == {"GET /openapi.json"}  # schemathesis leaves out the document it was loaded from


def test_the_description_is_public_json_and_names_this_dashboards_cookie_and_jurisdiction(tmp_path: Path) -> None:
    app = make_app(tmp_path, SESSION_COOKIE_NAME="kab_session")
    response = app.test_client().get("/openapi.json")  # anonymous
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["session"] == {
        **spec()["components"]["securitySchemes"]["session"],
        "name": "kab_session",
    }
    parameters = document["paths"]["/open311/v2/requests.json"]["get"]["parameters"]
    (jurisdiction,) = [p for p in parameters if p["name"] == "jurisdiction_id"]
    assert jurisdiction["schema"]["enum"] == [app.config["SIAGA_CATALOGUE"].jurisdiction]


def test_security_is_declared_as_the_app_enforces_it(app: Flask) -> None:
    """Board reads need the session; board writes the session and the CSRF header; Open311 no cookie at all,
    nor a view the app itself exempts from CSRF because its body carries the credential (enrolment's code)."""
    document = spec()
    adapter = app.url_map.bind("localhost")
    exempt = tuple(app.config.get("SIAGA_CSRF_EXEMPT", ()))
    for path, method, operation in spec_operations(document):
        security = operation.get("security")
        endpoint, _ = adapter.match(re.sub(r"\{[^}]+\}", "1", path), method=method.upper())
        if path.startswith("/api/") and endpoint.startswith(exempt):
            assert security == [], f"{method.upper()} {path}: the app asks for no cookie; neither may the description"
        elif path.startswith("/api/"):
            wanted = [{"session": [], "csrf": []}] if method == "post" else [{"session": []}]
            assert security == wanted, f"{method.upper()} {path}"
            assert {"401", "403"} <= set(operation["responses"]), f"{method.upper()} {path}"
        else:
            assert security == [], f"{method.upper()} {path}"
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                assert parameter["required"] is True
                assert "{" + parameter["name"] + "}" in path, f"{parameter['name']} is not in {path}"
        assert all("description" in response for response in operation["responses"].values())
    post = document["paths"]["/open311/v2/requests.json"]["post"]
    form = document["components"]["schemas"]["Open311ReportForm"]
    assert set(post["requestBody"]["content"]) == {"application/x-www-form-urlencoded", "multipart/form-data"}
    assert "api_key" in form["required"]


def test_real_responses_conform_to_the_description(app: Flask) -> None:
    """A report's life through Open311 in both formats, and the board's reads, against the description."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    client = app.test_client()
    key = api_key(app)
    checked: list[tuple[str, int]] = []

    def check(path: str, template: str, method: str, response) -> None:
        schema[template][method].validate_response(response)
        checked.append((f"{method} {path}", response.status_code))

    for fmt in ("json", "xml"):
        posted = client.post(f"/open311/v2/requests.{fmt}", data={**report_fields(), "api_key": key})
        check("requests", f"/open311/v2/requests.{fmt}", "POST", posted)
        refused = client.post(f"/open311/v2/requests.{fmt}", data=report_fields())
        check("requests (no key)", f"/open311/v2/requests.{fmt}", "POST", refused)
        assert refused.status_code == 403
    created = client.post("/open311/v2/requests.json", data={**report_fields(), "api_key": key}).get_json()[0]
    ticket, token = created["service_request_id"], created["token"]
    for fmt in ("json", "xml"):
        reads = {
            f"/open311/discovery.{fmt}": f"/open311/discovery.{fmt}",
            f"/open311/v2/services.{fmt}?lang=en": f"/open311/v2/services.{fmt}",
            f"/open311/v2/services/ternak-berkeliaran.{fmt}": f"/open311/v2/services/{{service_code}}.{fmt}",
            f"/open311/v2/services/no-such-code.{fmt}": f"/open311/v2/services/{{service_code}}.{fmt}",
            f"/open311/v2/requests.{fmt}?status=open": f"/open311/v2/requests.{fmt}",
            f"/open311/v2/requests.{fmt}?status=maybe": f"/open311/v2/requests.{fmt}",
            f"/open311/v2/requests/{ticket}.{fmt}": f"/open311/v2/requests/{{service_request_id}}.{fmt}",
            f"/open311/v2/tokens/{token}.{fmt}": f"/open311/v2/tokens/{{token}}.{fmt}",
        }
        for path, template in reads.items():
            check(path, template, "GET", client.get(path))
    for fmt in ("json", "xml"):
        # No route: the app's own 404 and 405, in the spec's error format, with what the resource takes.
        missing = client.get(f"/open311/v2/nothing-here.{fmt}")
        assert missing.status_code == 404 and missing.mimetype in ("application/json", "text/xml")
        refused = client.delete(f"/open311/v2/requests.{fmt}")
        assert refused.status_code == 405
        assert set(refused.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}

    board = {
        "/api/alarms?state=all": "/api/alarms",
        "/api/alarms/17": "/api/alarms/{alarm_id}",
        "/api/gateways": "/api/gateways",
        "/api/sites": "/api/sites",
        "/api/troubles": "/api/troubles",
        "/api/devices": "/api/devices",
        "/api/diagnostics": "/api/diagnostics",
    }
    anonymous = app.test_client()
    operator = sign_in(app, "fire_operator")
    for path, template in board.items():
        check(path, template, "GET", anonymous.get(path))
        check(path, template, "GET", operator.get(path))
    check("ack", "/api/alarms/{alarm_id}/acknowledge", "POST", operator.post("/api/alarms/17/acknowledge", json={}))
    statuses = {status for _, status in checked}
    assert {200, 201, 400, 401, 403, 404} <= statuses, checked  # 405: checked above, outside any operation
