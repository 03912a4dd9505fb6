"""Open311 GeoReport v2: every endpoint in XML and JSON, and every error path."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest
from flask import Flask

from dashboard.db import connect
from dashboard.reports import store
from dashboard.reports.intake import validate_report

from .reports_helpers import api_key, make_app, report_fields

BASE = "/open311/v2"


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_app(tmp_path)


def xml(response) -> ET.Element:
    assert response.content_type == "text/xml; charset=utf-8"
    assert response.data.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(response.data)  # noqa: S314 -- our own server's reply


def post(app: Flask, fmt: str = "json", key: str | None = "", **fields):
    data = report_fields(**fields)
    if key == "":
        key = api_key(app, f"app-{time.monotonic_ns()}")
    if key is not None:
        data["api_key"] = key
    return app.test_client().post(f"{BASE}/requests.{fmt}", data=data)


def assert_error(response, status: int, fmt: str, words: str) -> None:
    assert response.status_code == status
    if fmt == "json":
        (error,) = response.json
        assert error["code"] == status and words in error["description"]
    else:
        root = xml(response)
        assert root.tag == "errors"
        (error,) = root.findall("error")
        assert error.findtext("code") == str(status) and words in error.findtext("description")


# -- services ------------------------------------------------------------------------------------


def test_services_in_json(app: Flask) -> None:
    services = app.test_client().get(f"{BASE}/services.json").json
    codes = [s["service_code"] for s in services]
    assert "ternak-berkeliaran" in codes and "bangunan-tanpa-izin" in codes
    livestock = next(s for s in services if s["service_code"] == "ternak-berkeliaran")
    assert livestock == {
        "service_code": "ternak-berkeliaran",
        "service_name": "Hewan ternak berkeliaran",
        "description": livestock["description"],
        "metadata": True,
        "type": "realtime",
        "keywords": "sapi, kambing, kerbau, ternak, jalan",
        "group": "Ketertiban umum",
    }
    signs = next(s for s in services if s["service_code"] == "reklame-tanpa-izin")
    assert signs["metadata"] is False


def test_services_in_xml(app: Flask) -> None:
    root = xml(app.test_client().get(f"{BASE}/services.xml"))
    assert root.tag == "services"
    service = next(s for s in root.findall("service") if s.findtext("service_code") == "ternak-berkeliaran")
    assert service.findtext("metadata") == "true" and service.findtext("type") == "realtime"
    english = xml(app.test_client().get(f"{BASE}/services.xml?lang=en"))
    names = [s.findtext("service_name") for s in english.findall("service")]
    assert "Livestock roaming the roads" in names


def test_a_service_definition_in_both_formats(app: Flask) -> None:
    client = app.test_client()
    definition = client.get(f"{BASE}/services/ternak-berkeliaran.json").json
    assert definition["service_code"] == "ternak-berkeliaran"
    kinds = definition["attributes"][0]
    assert (kinds["code"], kinds["datatype"], kinds["required"], kinds["variable"], kinds["order"]) == (
        "jenis_ternak",
        "multivaluelist",
        True,
        True,
        1,
    )
    assert {"key": "sapi", "name": "Sapi"} in kinds["values"]
    root = xml(client.get(f"{BASE}/services/ternak-berkeliaran.xml"))
    assert root.tag == "service_definition"
    attribute = root.find("attributes/attribute")
    assert attribute.findtext("code") == "jenis_ternak" and attribute.findtext("required") == "true"
    assert [v.findtext("key") for v in attribute.findall("values/value")][:2] == ["sapi", "kambing"]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_an_unknown_service_is_404(app: Flask, fmt: str) -> None:
    assert_error(app.test_client().get(f"{BASE}/services/nothing-like-this.{fmt}"), 404, fmt, "not found")


# -- posting ---------------------------------------------------------------------------------------


def test_posting_a_request_returns_its_id_and_token(app: Flask) -> None:
    response = post(
        app,
        "json",
        **{
            "attribute[jenis_ternak][]": ["sapi", "kerbau"],
            "email": "warga@example.id",
            "first_name": "Wa Ode",
            "last_name": "Sitti",
            "phone": "0812-3456-7890",
        },
    )
    assert response.status_code == 201
    (created,) = response.json
    assert created["service_request_id"].startswith("LAP-") and created["token"]
    assert created["account_id"] is None and created["service_notice"]
    stored = app.test_client().get(f"{BASE}/requests/{created['service_request_id']}.json").json[0]
    assert stored["status"] == "open" and stored["service_code"] == "ternak-berkeliaran"
    conn = connect(app.config["DATABASE"])
    row = store.get_report(conn, created["service_request_id"])
    conn.close()
    assert row["reporter_name"] == "Wa Ode Sitti" and row["reporter_email"] == "warga@example.id"
    assert '"kerbau"' in row["attributes"]


def test_posting_in_xml(app: Flask) -> None:
    root = xml(post(app, "xml"))
    assert root.tag == "service_requests"
    request = root.find("request")
    assert request.findtext("service_request_id").startswith("LAP-") and request.findtext("token")


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(("key", "words"), [(None, "missing"), ("siaga_not-a-real-key", "invalid")])
def test_posting_needs_a_valid_api_key(app: Flask, fmt: str, key: str | None, words: str) -> None:
    assert_error(post(app, fmt, key=key), 403, fmt, words)


def test_a_revoked_key_is_refused(app: Flask) -> None:
    key = api_key(app, "OldApp")
    conn = connect(app.config["DATABASE"])
    (row,) = [k for k in store.list_api_keys(conn) if k["name"] == "OldApp"]
    store.revoke_api_key(conn, row["id"])
    conn.close()
    assert_error(post(app, key=key), 403, "json", "invalid")


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"service_code": None}, "service_code is required"),
        ({"service_code": "nope"}, "'nope' was not found"),
        ({"lat": None, "long": None}, "a location is required"),
        ({"long": None}, "long is required together with lat"),
        ({"lat": "91"}, "lat must be between"),
        ({"long": "-181"}, "long must be between"),
        ({"lat": "north"}, "lat must be a number"),
        ({"lat": "nan"}, "lat must be between"),
        ({"description": "x" * 4001}, "longer than 4000"),
        ({"attribute[jenis_ternak][]": None}, "attribute[jenis_ternak] is required"),
        ({"attribute[jenis_ternak][]": ["unicorn"]}, "'unicorn' is not one of"),
        ({"attribute[warna]": "merah"}, "attribute[warna] is not an attribute"),
        ({"attribute[jumlah]": "banyak"}, "attribute[jumlah] must be a number"),
        ({"email": "not-an-email"}, "email is not"),
        ({"media_url": "file:///etc/passwd"}, "media_url must be an http(s) URL"),
        ({"area": "Kendari"}, "area 'Kendari' is not a district"),
    ],
)
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_bad_requests_are_refused_with_a_precise_400(app: Flask, fields: dict, words: str, fmt: str) -> None:
    assert_error(post(app, fmt, **fields), 400, fmt, words)


def test_an_address_alone_is_a_location(app: Flask) -> None:
    response = post(app, lat=None, long=None, address_string="Jl. Poros Andoolo, depan pasar")
    assert response.status_code == 201


def test_each_app_key_is_rate_limited(tmp_path: Path) -> None:
    app = make_app(tmp_path, SIAGA_API_RATE=(3, 60))
    key = api_key(app)
    statuses = [post(app, key=key).status_code for _ in range(4)]
    assert statuses == [201, 201, 201, 429]


# -- reading -------------------------------------------------------------------------------------------


def seed(app: Flask, *, days_ago: float = 0, code: str = "ternak-berkeliaran", **fields) -> str:
    conn = connect(app.config["DATABASE"])
    report = validate_report(report_fields(service_code=code, **fields), app.config["SIAGA_CATALOGUE"], source="web")
    ticket, _ = store.create_report(
        conn, report, photos_dir=app.config["SIAGA_PHOTOS_DIR"], now=time.time() - days_ago * 86400
    )
    conn.close()
    return ticket


def test_requests_default_to_the_last_90_days(app: Flask) -> None:
    recent, old = seed(app, days_ago=5), seed(app, days_ago=100)
    ids = [r["service_request_id"] for r in app.test_client().get(f"{BASE}/requests.json").json]
    assert recent in ids and old not in ids


def test_requests_by_id_ignore_other_filters(app: Flask) -> None:
    first, second = seed(app), seed(app, days_ago=200)
    response = app.test_client().get(f"{BASE}/requests.json?service_request_id={first},{second}&status=closed")
    assert sorted(r["service_request_id"] for r in response.json) == sorted([first, second])


def test_requests_filter_by_code_status_and_dates(app: Flask) -> None:
    livestock = seed(app, days_ago=2)
    signs = seed(app, days_ago=30, code="reklame-tanpa-izin", **{"attribute[jenis_ternak][]": None})
    conn = connect(app.config["DATABASE"])
    store.move_report(conn, signs, "rejected", resolution="duplicate", actor="petugas", note=None, public=False)
    conn.close()
    client = app.test_client()
    by_code = client.get(f"{BASE}/requests.json?service_code=reklame-tanpa-izin").json
    assert [r["service_request_id"] for r in by_code] == [signs]
    closed = client.get(f"{BASE}/requests.json?status=closed").json
    assert [r["service_request_id"] for r in closed] == [signs]
    opened = client.get(f"{BASE}/requests.json?status=open").json
    assert [r["service_request_id"] for r in opened] == [livestock]
    start = datetime.fromtimestamp(time.time() - 10 * 86400).astimezone().isoformat()
    since = client.get(f"{BASE}/requests.json", query_string={"start_date": start}).json
    assert [r["service_request_id"] for r in since] == [livestock]
    root = xml(client.get(f"{BASE}/requests.xml?status=closed"))
    assert root.tag == "service_requests" and root.find("request/status").text == "closed"


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ("start_date=yesterday", 400, "start_date must be a W3C datetime"),
        ("end_date=2026-11-01T00:00:00", 400, "must include a timezone"),
        ("start_date=2026-11-02T00:00:00Z&end_date=2026-11-01T00:00:00Z", 400, "start_date is after end_date"),
        ("status=pending", 400, "status must be open or closed"),
        ("service_code=nope", 404, "not found"),
        ("jurisdiction_id=kendarikota.go.id", 404, "jurisdiction_id"),
    ],
)
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_bad_queries_are_refused(app: Flask, query: str, status: int, words: str, fmt: str) -> None:
    assert_error(app.test_client().get(f"{BASE}/requests.{fmt}?{query}"), status, fmt, words)


def test_one_request_and_its_token_in_both_formats(app: Flask) -> None:
    (created,) = post(app).json
    client = app.test_client()
    ticket, token = created["service_request_id"], created["token"]
    root = xml(client.get(f"{BASE}/requests/{ticket}.xml"))
    request = root.find("request")
    assert request.findtext("service_request_id") == ticket
    requested = request.findtext("requested_datetime")
    assert requested.endswith("+08:00") and datetime.fromisoformat(requested).tzinfo is not None
    assert request.findtext("agency_responsible").startswith("Satuan Polisi Pamong Praja")
    assert client.get(f"{BASE}/tokens/{token}.json").json == [{"service_request_id": ticket, "token": token}]
    assert xml(client.get(f"{BASE}/tokens/{token}.xml")).find("request/service_request_id").text == ticket
    for fmt in ("json", "xml"):
        assert_error(client.get(f"{BASE}/requests/LAP-1999-000001.{fmt}"), 404, fmt, "not found")
        assert_error(client.get(f"{BASE}/tokens/unknown-token.{fmt}"), 404, fmt, "not found")


def test_the_reporter_never_appears_in_open311(app: Flask) -> None:
    (created,) = post(app, email="rahasia@example.id", first_name="Rahasia", phone="081299998888").json
    client = app.test_client()
    for path in (f"requests/{created['service_request_id']}", "requests"):
        for fmt in ("json", "xml"):
            body = client.get(f"{BASE}/{path}.{fmt}").data
            assert b"rahasia" not in body.lower() and b"081299998888" not in body


def test_status_notes_follow_the_workflow(app: Flask) -> None:
    ticket = seed(app)
    conn = connect(app.config["DATABASE"])
    store.move_report(
        conn, ticket, "verified", resolution=None, actor="petugas", note="Sudah dicek di lokasi", public=True
    )
    store.move_report(
        conn, ticket, "in_action", resolution="warning", actor="petugas", note="catatan dalam", public=False
    )
    store.move_report(
        conn, ticket, "done", resolution=None, actor="petugas", note="Pemilik ternak sudah ditegur", public=True
    )
    conn.close()
    (request,) = app.test_client().get(f"{BASE}/requests/{ticket}.json").json
    assert (request["status"], request["status_notes"]) == ("closed", "Pemilik ternak sudah ditegur")


def test_an_unknown_resource_is_an_open311_404(app: Flask) -> None:
    assert_error(app.test_client().get(f"{BASE}/services.csv"), 404, "xml", "no such Open311 resource")
    assert_error(app.test_client().get(f"{BASE}/whatever.json"), 404, "json", "no such Open311 resource")


def test_service_discovery(app: Flask) -> None:
    discovery = app.test_client().get("/open311/discovery.json").json
    (endpoint,) = discovery["endpoints"]
    assert endpoint["url"].endswith("/open311/v2") and "text/xml" in endpoint["formats"]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_an_oversized_body_is_refused_early_in_the_spec_format(app: Flask, fmt: str) -> None:
    data = {**report_fields(), "api_key": api_key(app), "description": "x" * (2 * 1024 * 1024)}
    response = app.test_client().post(f"{BASE}/requests.{fmt}", data=data)
    assert_error(response, 413, fmt, "Request Entity Too Large")
    assert app.extensions["siaga.reports"].counters.get("open311.refused.http_413") == 1


def test_a_wrong_method_is_refused_in_the_spec_format(app: Flask) -> None:
    response = app.test_client().delete(f"{BASE}/services.json")
    assert_error(response, 405, "json", "GET and POST only")
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}  # what the resource takes
    posted = app.test_client().post(f"{BASE}/services.json")  # a resource that is only read
    assert_error(posted, 405, "json", "Method Not Allowed")
    assert "POST" not in posted.headers["Allow"]
