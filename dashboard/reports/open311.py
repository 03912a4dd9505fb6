"""Open311 GeoReport v2 under ``/open311/v2/``, in XML (required by the spec) and JSON.

The format is the resource's suffix (``services.xml``, ``requests.json``).
Errors are ``[{"code", "description"}]`` or ``<errors><error>`` with the spec's
HTTP statuses: 400 for a bad request, 403 for a missing or invalid
``api_key`` on POST, 404 for an unknown service, request, token or
jurisdiction. See ``docs/open311.md``.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from firmware_bridge.errors import SiagaError

from ..db import get_db
from . import store
from .categories import Catalogue, Category
from .intake import IntakeError, validate_report
from .metrics import count
from .text import xml_safe
from .workflow import Status

bp = Blueprint("open311", __name__, url_prefix="/open311")

FORMAT = "<any(xml, json):fmt>"
DEFAULT_WINDOW_S = 90 * 86400  # the spec's default: 90 days or 1000 requests, whichever is smaller
MAX_RESULTS = 1000
OPEN_STATES = [Status.RECEIVED, Status.VERIFIED, Status.IN_ACTION]
CLOSED_STATES = [Status.REJECTED, Status.DONE]


class Open311Error(SiagaError):
    """A request refused with the spec's error body and an HTTP status."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def catalogue() -> Catalogue:
    return current_app.config["SIAGA_CATALOGUE"]


# -- rendering ---------------------------------------------------------------------------------


def _xml_value(value: Any) -> str:
    """Element text; whatever was stored, never a character XML 1.0 cannot carry."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)
    return xml_safe(str(value))


def _xml_fill(element: ET.Element, data: Any, item_names: dict[str, str]) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            child = ET.SubElement(element, key)
            _xml_fill(child, value, item_names)
    elif isinstance(data, list):
        name = item_names.get(element.tag, "item")
        for value in data:
            _xml_fill(ET.SubElement(element, name), value, item_names)
    else:
        element.text = _xml_value(data)


def render(fmt: str, root: str, item: str | None, data: Any, status: int = 200) -> Response:
    """``data`` as JSON, or as XML under ``root`` (a list becomes ``<item>`` children)."""
    if fmt == "json":
        response = jsonify(data)
        response.status_code = status
        return response
    element = ET.Element(root)
    names = {
        "attributes": "attribute",
        "values": "value",
        "errors": "error",
        "endpoints": "endpoint",
        "formats": "format",
    }
    if item is not None:
        names[root] = item
    _xml_fill(element, data, names)
    body = b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(element, encoding="utf-8", xml_declaration=False)
    return Response(body, status=status, content_type="text/xml; charset=utf-8")


def error(fmt: str, status: int, description: str) -> Response:
    return render(fmt, "errors", "error", [{"code": status, "description": description}], status)


def _fmt_of_path() -> str:
    return "json" if request.path.endswith(".json") else "xml"


@bp.errorhandler(Open311Error)
def _open311_error(exc: Open311Error) -> Response:
    return error(_fmt_of_path(), exc.status, exc.description)


def http_error(exc: HTTPException) -> Response:
    """Any HTTP error under ``/open311/`` (a body too large, a wrong method, a crash) in the spec's format.

    The app's error handler calls this for every path under ``/open311/``, routed or not.
    """
    status = exc.code or 500
    count(f"open311.refused.http_{status}")
    if status >= 500:
        return error(_fmt_of_path(), status, f"{exc.name}: the error has been logged")
    if status == 404 and request.url_rule is None:
        return error(_fmt_of_path(), status, f"no such Open311 resource: {request.path}")
    if status == 405 and request.method not in ("GET", "POST", "HEAD", "OPTIONS"):
        return error(_fmt_of_path(), status, f"Open311 takes GET and POST only (got {request.method})")
    return error(_fmt_of_path(), status, f"{exc.name}: {exc.description}")


def _check_jurisdiction() -> None:
    given = request.values.get("jurisdiction_id")
    if given and given != catalogue().jurisdiction:
        raise Open311Error(
            404, f"jurisdiction_id {given!r} not found (this endpoint serves {catalogue().jurisdiction})"
        )


def _language() -> str:
    return "en" if request.args.get("lang") == "en" else "id"


# -- services -----------------------------------------------------------------------------------


def _service(category: Category, language: str) -> dict[str, Any]:
    return {
        "service_code": category.code,
        "service_name": category.title(language),
        "description": category.description,
        "metadata": bool(category.attributes),
        "type": "realtime",
        "keywords": category.keywords,
        "group": category.group,
    }


@bp.get(f"/v2/services.{FORMAT}")
def services(fmt: str) -> Response:
    _check_jurisdiction()
    language = _language()
    return render(fmt, "services", "service", [_service(c, language) for c in catalogue().categories])


@bp.get(f"/v2/services/<code>.{FORMAT}")
def service_definition(code: str, fmt: str) -> Response:
    _check_jurisdiction()
    category = catalogue().get(code)
    if category is None:
        raise Open311Error(404, f"service_code {code!r} not found")
    english = _language() == "en"
    attributes = [
        {
            "variable": True,
            "code": attribute.code,
            "datatype": attribute.datatype,
            "required": attribute.required,
            "datatype_description": None,
            "order": attribute.order,
            "description": (attribute.description_en or attribute.description) if english else attribute.description,
            "values": [{"key": key, "name": name} for key, name in attribute.values.items()],
        }
        for attribute in category.attributes
    ]
    return render(fmt, "service_definition", None, {"service_code": category.code, "attributes": attributes})


# -- requests ------------------------------------------------------------------------------------


def _media_base() -> str | None:
    if not current_app.config.get("SIAGA_PUBLIC_PHOTOS"):
        return None
    return request.host_url.rstrip("/") + "/lapor/foto"


def _parse_date(name: str) -> float | None:
    value = request.args.get(name)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Open311Error(
            400, f"{name} must be a W3C datetime with a timezone, e.g. 2026-11-01T00:00:00+08:00"
        ) from None
    if moment.tzinfo is None:
        raise Open311Error(400, f"{name} must include a timezone (Z or +HH:MM)")
    return moment.timestamp()


def _split(name: str) -> list[str]:
    """A comma-separated parameter, each value once (a value repeated 100,000 times is one)."""
    raw = request.args.get(name, "")
    return list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))


@bp.get(f"/v2/requests.{FORMAT}")
def list_requests(fmt: str) -> Response:
    _check_jurisdiction()
    conn = get_db()
    tickets = _split("service_request_id")
    if tickets:  # the spec: other parameters are then ignored
        rows = store.search(conn, tickets=tickets[:MAX_RESULTS])
    else:
        statuses: list[str] = []
        for status in _split("status"):
            if status == "open":
                statuses += OPEN_STATES
            elif status == "closed":
                statuses += CLOSED_STATES
            else:
                raise Open311Error(400, f"status must be open or closed (got {status!r})")
        start, end = _parse_date("start_date"), _parse_date("end_date")
        if start is not None and end is not None and start > end:
            raise Open311Error(400, "start_date is after end_date")
        if start is None and end is None:
            start = time.time() - DEFAULT_WINDOW_S
        elif start is None:
            start = end - DEFAULT_WINDOW_S  # type: ignore[operator]
        codes = _split("service_code")
        unknown = [code for code in codes if catalogue().get(code) is None]
        if unknown:
            raise Open311Error(404, f"service_code {unknown[0]!r} not found")
        rows = store.search(conn, service_codes=codes, statuses=statuses, start=start, end=end, limit=MAX_RESULTS)
    media = _media_base()
    return render(
        fmt, "service_requests", "request", [store.open311_view(conn, row, catalogue(), media) for row in rows]
    )


@bp.get(f"/v2/requests/<ticket>.{FORMAT}")
def get_request(ticket: str, fmt: str) -> Response:
    _check_jurisdiction()
    conn = get_db()
    try:
        row = store.get_report(conn, ticket)
    except store.ReportNotFound:
        raise Open311Error(404, f"service_request_id {ticket!r} not found") from None
    return render(fmt, "service_requests", "request", [store.open311_view(conn, row, catalogue(), _media_base())])


@bp.get(f"/v2/tokens/<token>.{FORMAT}")
def get_token(token: str, fmt: str) -> Response:
    _check_jurisdiction()
    ticket = store.ticket_for_token(get_db(), token)
    if ticket is None:
        raise Open311Error(404, f"token {token!r} not found")
    return render(fmt, "service_requests", "request", [{"service_request_id": ticket, "token": token}])


@bp.post(f"/v2/requests.{FORMAT}")
def post_request(fmt: str) -> Response:
    _check_jurisdiction()
    conn = get_db()
    app_name = store.check_api_key(conn, request.form.get("api_key"))
    if app_name is None:
        given = "missing" if not request.form.get("api_key") else "invalid"
        count(f"open311.refused.api_key_{given}")
        raise Open311Error(403, f"api_key {given}: apps need a key from the regency to submit requests")
    allowed, retry = current_app.extensions["siaga.reports"].api_limiter.allow(f"key:{app_name}")
    if not allowed:
        count("open311.rate_limited")
        response = error(fmt, 429, f"too many requests from this key; try again in {int(retry) + 1} s")
        response.headers["Retry-After"] = str(int(retry) + 1)
        return response
    try:
        report = validate_report(request.form, catalogue(), source=f"open311:{app_name}")
    except IntakeError as exc:
        count(f"open311.refused.{exc.key.removeprefix('error_')}")
        raise Open311Error(exc.status, exc.description) from None
    ticket, token = store.create_report(
        conn,
        report,
        photos_dir=current_app.config["SIAGA_PHOTOS_DIR"],
        prefix=current_app.config["SIAGA_TICKET_PREFIX"],
    )
    count("open311.received")
    notice = "Laporan diterima. Satpol PP akan memverifikasinya."
    body = [{"service_request_id": ticket, "token": token, "service_notice": notice, "account_id": None}]
    return render(fmt, "service_requests", "request", body, 201)


@bp.get(f"/discovery.{FORMAT}")
def discovery(fmt: str) -> Response:
    """Open311 service discovery: where the endpoint is and what it speaks."""
    base = request.host_url.rstrip("/")
    data = {
        "changeset": "2026-11-28T00:00:00+08:00",
        "contact": catalogue().default_agency,
        "key_service": f"{base}/ (ask the regency's administrator for an api_key)",
        "endpoints": [
            {
                "specification": "http://wiki.open311.org/GeoReport_v2",
                "url": f"{base}/open311/v2",
                "changeset": "2026-11-28T00:00:00+08:00",
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }
    return render(fmt, "discovery", None, data)
