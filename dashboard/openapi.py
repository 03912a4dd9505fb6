"""The OpenAPI 3.1 description of the dashboard's HTTP API, served at ``GET /openapi.json``.

It describes every route under ``/api/`` (the operators' board: session
cookie, CSRF header on writes) and under ``/open311/`` (citizens' reports,
GeoReport v2, each resource as ``.json`` and ``.xml``). It is built from
code, not from data: it never carries an alarm, a report or anything else
from the database, so it is public. ``tests/test_openapi.py`` keeps it true
(every rule of ``app.url_map`` under those prefixes is described, nothing
else is) and ``tests/test_fuzz_api.py`` fuzzes the app from it and checks
each response against it. Integrators read ``docs/api.md``.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from flask import Blueprint, current_app, jsonify

from firmware_bridge import __version__

from .commissioning import apidoc as commissioning
from .enrolment import apidoc as enrolment

bp = Blueprint("openapi", __name__)

JSON = "application/json"
XML = "text/xml"  # what the Open311 resources send (with "; charset=utf-8"), as the spec's discovery names it
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
FORMATS = ("json", "xml")

#: Alarm ids (``16 * number + kind``) as the routes accept them: larger ones are simply not found (404).
ALARM_ID_MAX = 4611686018427387903


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema_type: str, **extra: Any) -> dict[str, Any]:
    return {"type": [schema_type, "null"], **extra}


_TIME = _nullable("string", description="UTC, ISO 8601 with milliseconds, e.g. 2026-11-30T03:41:29.058Z")


def _sse_event(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": name},
            "data": {"type": "string", "contentMediaType": JSON, "contentSchema": data},
        },
    }


# -- schemas -------------------------------------------------------------------------------------

_NOTE = _nullable("string", maxLength=2000, description="shown in the alarm's history")
_REV = {
    "type": ["integer", "null"],
    "description": "the revision you saw. If it is not the current one and presses joined since, the move is "
    "refused with 409 changed",
}
_PRESSES = {
    "type": ["integer", "null"],
    "description": "the press count you saw: with it, a changed rev is refused only if presses joined",
}
_UNIT = {"type": "string", "minLength": 1, "maxLength": 100, "description": "who was sent"}
_RESOLUTION = {"type": "string", "enum": ["real", "false_alarm", "test"]}


def _body(required: list[str], **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


SCHEMAS: dict[str, Any] = {
    "ApiError": {
        "type": "object",
        "description": "Every refusal under /api/ (errors are JSON there, never a page).",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "string",
                "description": "a stable key: login_required (401), forbidden (403), csrf (400: the X-CSRF-Token "
                "header is missing or wrong), bad_request, invalid (400), not_found (404), method_not_allowed "
                "(405), conflict or changed (409), too_large (413), too_many_requests (429), server_error (500)",
                "examples": ["login_required", "forbidden", "csrf", "invalid", "not_found", "conflict"],
            },
            "message": {"type": "string", "description": "for people; may change"},
        },
    },
    "Site": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "lat": _nullable("number"),
            "lon": _nullable("number"),
        },
    },
    "Alarm": {
        "type": "object",
        "description": "One alarm: opened by a press, joined by later presses of the same button while open.",
        "required": ["id", "number", "kind", "state", "button", "gw", "rev", "press_count", "open", "opened_at"],
        "properties": {
            "id": {"type": "integer", "description": "16 * number + kind: numbers run per kind"},
            "number": {"type": "integer", "description": "the alarm's number among alarms of its kind"},
            "kind": {"type": "string", "enum": ["fire", "sapa"]},
            "state": {"type": "string", "enum": ["unacknowledged", "acknowledged", "dispatched", "resolved"]},
            "open": {"type": "boolean"},
            "test": {"type": "boolean", "description": "raised by a button in test mode: never sounded or escalated"},
            "button": {"type": "string"},
            "label": _nullable("string"),
            "gw": {"type": "string", "description": "the gateway the first press came through"},
            "transport": _nullable("string", description="gpio or lora"),
            "site": {"anyOf": [_ref("Site"), {"type": "null"}]},
            "rev": {"type": "integer", "description": "bumped by every change; resolving names the one you saw"},
            "press_count": {"type": "integer"},
            "first_press_ts": _TIME,
            "last_press_at": _TIME,
            "last_event_id": _nullable("string"),
            "opened_at": _TIME,
            "acknowledged_at": _TIME,
            "acknowledged_by": _nullable("string"),
            "dispatched_at": _TIME,
            "dispatched_by": _nullable("string"),
            "dispatch_unit": _nullable("string"),
            "resolved_at": _TIME,
            "resolved_by": _nullable("string"),
            "resolution": _nullable("string", description="real, false_alarm or test"),
            "note": _nullable("string"),
            "escalation": {"type": "integer", "description": "escalation steps taken while unacknowledged"},
            "escalated_at": _TIME,
            "notified": {"type": "integer"},
        },
    },
    "AlarmAction": {
        "type": "object",
        "required": ["action", "actor", "at"],
        "properties": {
            "action": {"type": "string", "description": "opened, pressed, acknowledged, dispatched, resolved, …"},
            "actor": {"type": "string", "description": "an operator's account, gw:<gateway> or the escalator"},
            "at": _TIME,
            "from_state": _nullable("string"),
            "to_state": _nullable("string"),
            "note": _nullable("string"),
            "event_id": _nullable("string"),
        },
    },
    "AlarmEvent": {
        "type": "object",
        "description": "One press that opened or joined the alarm.",
        "required": ["id", "gw", "type"],
        "properties": {
            "id": {"type": "string", "description": "the event's ULID or UUID"},
            "gw": {"type": "string"},
            "type": {"type": "string"},
            "ts": _nullable("string", description="the gateway's time of the press"),
            "received_at": _TIME,
            "src": _nullable("string"),
        },
    },
    "Notification": {
        "type": "object",
        "description": "A webhook notice about the alarm (escalation) and its delivery, oldest first.",
        "required": ["status"],
        "properties": {
            "event": {"type": "string"},
            "step": {"type": ["integer", "null"]},
            "webhook": {"type": "string"},
            "status": {"type": "string"},
            "attempts": {"type": "integer"},
            "created_at": _TIME,
            "finished_at": _TIME,
            "last_error": _nullable("string"),
        },
    },
    "AlarmDetail": {
        "type": "object",
        "required": ["alarm", "actions", "events", "notifications"],
        "properties": {
            "alarm": _ref("Alarm"),
            "actions": {"type": "array", "items": _ref("AlarmAction")},
            "events": {"type": "array", "items": _ref("AlarmEvent")},
            "notifications": {"type": "array", "items": _ref("Notification")},
        },
    },
    "AlarmResult": {
        "type": "object",
        "required": ["alarm"],
        "properties": {"alarm": _ref("Alarm")},
    },
    "AlarmChanged": {
        "type": "object",
        "description": "409 when presses joined since the revision the operator saw (error = changed), with the "
        "alarm as it is now; or a move the alarm's state does not allow (error = conflict), without it.",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "enum": ["changed", "conflict"]},
            "message": {"type": "string"},
            "alarm": _ref("Alarm"),
        },
    },
    "Gateway": {
        "type": "object",
        "required": ["gw", "state"],
        "properties": {
            "gw": {"type": "string"},
            "state": {"type": "string", "description": "online or offline"},
            "status_ts": _nullable("string"),
            "reason": _nullable("string"),
            "version": _nullable("string"),
            "started": _nullable("string"),
            "updated_at": _TIME,
            "health_at": _TIME,
            "outbox_depth": {"type": ["integer", "null"]},
        },
    },
    "Trouble": {
        "type": "object",
        "description": "A device problem: a silent or offline gateway, a missing button, a low battery, tampering, "
        "a button out of service or in test mode, a failing webhook, …",
        "required": ["id", "type", "subject"],
        "properties": {
            "id": {
                "type": "string",
                "description": "names one trouble (what it is and when it was found); not a row number",
            },
            "type": {"type": "string"},
            "gw": _nullable("string"),
            "button": _nullable("string"),
            "subject": {"type": "string"},
            "kind": _nullable("string", description="the button's kind; null for a gateway's trouble"),
            "detail": _nullable("string"),
            "began": _TIME,
            "detected": _TIME,
            "cleared": _TIME,
        },
    },
    "SiteButton": {
        "type": "object",
        "required": ["id", "kind", "state"],
        "properties": {
            "id": {"type": "string"},
            "kind": {"type": "string"},
            "label": _nullable("string"),
            "transport": _nullable("string"),
            "gw": _nullable("string"),
            "lat": _nullable("number"),
            "lon": _nullable("number"),
            "state": {
                "type": "string",
                "description": "an open alarm's state, out_of_service, test_mode, trouble or ok",
            },
            "alarm": {"type": ["integer", "null"], "description": "the open alarm's id, for roles that see it"},
        },
    },
    "SiteWithButtons": {
        "type": "object",
        "required": ["name", "buttons", "state"],
        "properties": {
            "name": {"type": "string"},
            "lat": {"type": "number"},
            "lon": {"type": "number"},
            "state": {"type": "string", "description": "the most urgent state of its buttons"},
            "buttons": {"type": "array", "items": _ref("SiteButton")},
        },
    },
    "SiteSummary": {
        "type": "object",
        "description": "A site as the board's map and list show it at once; its every button: ?site=<name>.",
        "required": ["name", "state", "count", "states", "buttons", "complete"],
        "properties": {
            "name": {"type": "string"},
            "lat": {"type": "number"},
            "lon": {"type": "number"},
            "state": {"type": "string", "description": "the most urgent state of its buttons"},
            "count": {"type": "integer", "description": "its buttons of the kinds your role sees"},
            "states": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "how many of them are in each state but ok",
            },
            "buttons": {
                "type": "array",
                "items": _ref("SiteButton"),
                "description": "only its buttons that are not ok, or carry a (test) alarm your role sees",
            },
            "complete": {"type": "boolean", "description": "buttons lists every one of its buttons"},
        },
    },
    "DeviceOverview": {
        "type": "object",
        "description": "One page: gateways with a problem (an open trouble of theirs or of a button, offline, "
        "no recent health) first, then the others by name; with the buttons of the page's gateways (those in "
        "trouble or set aside first) and the troubles of both.",
        "required": ["gateways", "buttons", "troubles", "at", "page", "pages", "per_page", "gateways_total"],
        "properties": {
            "at": {"type": "string"},
            "page": {"type": "integer", "description": "this page (1 is the first; a page past the last is the last)"},
            "pages": {"type": "integer"},
            "per_page": {"type": "integer", "description": "gateways per page (50)"},
            "gateways_total": {"type": "integer", "description": "gateways on every page together (after q)"},
            "problem_gateways": {"type": "integer", "description": "how many of them have a problem (listed first)"},
            "query": {"type": "string", "description": "the search applied (q), cut to 100 characters"},
            "gateways": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["gw", "state"],
                    "properties": {
                        "gw": {"type": "string"},
                        "state": {"type": "string"},
                        "version": _nullable("string"),
                        "health_at": _TIME,
                        "health_age_s": {"type": ["integer", "null"]},
                        "outbox_depth": {"type": ["integer", "null"]},
                        "radio": _nullable("string", description="the LoRa module's state"),
                        "troubles": {"type": "array", "items": _ref("Trouble")},
                    },
                },
            },
            "buttons": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "kind"],
                    "properties": {
                        "id": {"type": "string"},
                        "gw": _nullable("string"),
                        "kind": {"type": "string"},
                        "transport": _nullable("string"),
                        "site": _nullable("string"),
                        "label": _nullable("string"),
                        "heard_s": {"type": ["number", "null"], "description": "seconds since a LoRa node was heard"},
                        "battery_mv": {"type": ["number", "null"]},
                        "rssi": {"type": ["number", "null"]},
                        "snr": {"type": ["number", "null"]},
                        "via": _nullable("string", description="the gateway that heard the LoRa node best"),
                        "pressed": {"type": ["boolean", "null"], "description": "a wired button held down now"},
                        "troubles": {"type": "array", "items": _ref("Trouble")},
                        "service": {
                            "type": ["object", "null"],
                            "description": "out of service or test mode: mode, reason, until, who",
                        },
                    },
                },
            },
            "troubles": {"type": "array", "items": _ref("Trouble")},
        },
    },
    "Diagnostics": {
        "type": "object",
        "required": ["counters", "mqtt_connected", "ingest_alive"],
        "properties": {
            "counters": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "per-kind counters end in .fire or .sapa; only the kinds your role sees",
            },
            "mqtt_connected": {"type": "boolean"},
            "ingest_alive": {"type": "boolean"},
            "ingest_backlog": {"type": ["integer", "null"]},
            "rejections": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"at": {}, "topic": {"type": "string"}, "reason": {"type": "string"}},
                },
            },
            "live_subscribers": {"type": "integer"},
            "reports": {"type": "object", "additionalProperties": {"type": "integer"}},
            "enrolment": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "gateway enrolment: codes used, refused (by reason), throttled, broker failures",
            },
            "supervisor_round": {
                "type": ["object", "null"],
                "description": "how long the supervisor's rounds take (null without a supervisor); each is null "
                "before its first round. A round longer than interval_s delays the next",
                "properties": {
                    "last_s": {"type": ["number", "null"], "description": "the last round, seconds"},
                    "max_s": {"type": ["number", "null"], "description": "the longest since the dashboard started"},
                    "p50_s": {"type": ["number", "null"], "description": "the median of the last 100 rounds"},
                    "interval_s": {"type": "number", "description": "a round starts this often"},
                },
            },
        },
    },
    "LiveEvent": {
        "description": "One Server-Sent Event of /api/stream; its data is JSON.",
        "oneOf": [
            _sse_event("snapshot", _ref("Snapshot")),
            _sse_event("alarm", _ref("Alarm")),
            _sse_event("trouble", _ref("Trouble")),
        ],
    },
    "Snapshot": {
        "type": "object",
        "description": "Everything a board shows, sent first on every (re)connection.",
        "required": ["alarms", "closed", "gateways", "troubles", "server_time"],
        "properties": {
            "alarms": {"type": "array", "items": _ref("Alarm"), "description": "open alarms"},
            "closed": {
                "type": "array",
                "description": "alarms resolved in the last hour: a late copy of an older revision is ignored",
                "items": {
                    "type": "object",
                    "required": ["id", "rev"],
                    "properties": {"id": {"type": "integer"}, "rev": {"type": "integer"}},
                },
            },
            "gateways": {"type": "array", "items": _ref("Gateway")},
            "troubles": {"type": "array", "items": _ref("Trouble")},
            "server_time": {"type": "string"},
        },
    },
    # -- Open311 --
    "Open311Errors": {
        "type": "array",
        "description": "GeoReport v2 errors; in XML <errors><error><code/><description/></error></errors>",
        "items": {
            "type": "object",
            "required": ["code", "description"],
            "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
        },
    },
    "Service": {
        "type": "object",
        "required": ["service_code", "service_name", "metadata", "type"],
        "properties": {
            "service_code": {"type": "string"},
            "service_name": {"type": "string"},
            "description": _nullable("string"),
            "metadata": {"type": "boolean", "description": "true: GET services/{service_code} lists its attributes"},
            "type": {"type": "string", "enum": ["realtime", "batch", "blackbox"]},
            "keywords": _nullable("string"),
            "group": _nullable("string"),
        },
    },
    "ServiceDefinition": {
        "type": "object",
        "required": ["service_code", "attributes"],
        "properties": {
            "service_code": {"type": "string"},
            "attributes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["code", "datatype", "required"],
                    "properties": {
                        "variable": {"type": "boolean"},
                        "code": {"type": "string"},
                        "datatype": {
                            "type": "string",
                            "enum": ["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"],
                        },
                        "required": {"type": "boolean"},
                        "datatype_description": _nullable("string"),
                        "order": {"type": "integer"},
                        "description": _nullable("string"),
                        "values": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["key", "name"],
                                "properties": {"key": {"type": "string"}, "name": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        },
    },
    "ServiceRequest": {
        "type": "object",
        "description": "A report as the public sees it: never the reporter's identity, contacts or internal notes.",
        "required": ["service_request_id", "status", "service_code", "requested_datetime"],
        "properties": {
            "service_request_id": {"type": "string", "examples": ["LAP-2026-000001"]},
            "status": {"type": "string", "enum": ["open", "closed"]},
            "status_notes": _nullable("string"),
            "service_name": _nullable("string"),
            "service_code": {"type": "string"},
            "description": _nullable("string"),
            "agency_responsible": _nullable("string"),
            "service_notice": _nullable("string"),
            "requested_datetime": {"type": "string", "description": "W3C datetime with timezone (WITA)"},
            "updated_datetime": _nullable("string"),
            "expected_datetime": _nullable("string"),
            "address": _nullable("string"),
            "address_id": _nullable("string"),
            "zipcode": _nullable("string"),
            "lat": _nullable("number"),
            "long": _nullable("number"),
            "media_url": _nullable("string"),
        },
        "not": {
            "anyOf": [
                {"required": ["email"]},
                {"required": ["phone"]},
                {"required": ["first_name"]},
                {"required": ["last_name"]},
            ]
        },
    },
    "ServiceRequestCreated": {
        "type": "object",
        "required": ["service_request_id", "token"],
        "properties": {
            "service_request_id": {"type": "string"},
            "token": {"type": "string", "description": "GET tokens/{token} gives the service_request_id later"},
            "service_notice": _nullable("string"),
            "account_id": _nullable("string"),
        },
    },
    "TokenResult": {
        "type": "object",
        "required": ["service_request_id", "token"],
        "properties": {"service_request_id": {"type": "string"}, "token": {"type": "string"}},
    },
    "Discovery": {
        "type": "object",
        "required": ["endpoints"],
        "properties": {
            "changeset": {"type": "string"},
            "contact": {"type": "string"},
            "key_service": {"type": "string"},
            "endpoints": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "specification": {"type": "string"},
                        "url": {"type": "string"},
                        "changeset": {"type": "string"},
                        "type": {"type": "string"},
                        "formats": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
    },
    "Open311ReportForm": {
        "type": "object",
        "description": "GeoReport v2 POST requests fields. A location is required: lat and long, address_string "
        "or address_id. Answers to the category's questions are attribute[code] (attribute[code][] repeated for a "
        "multivaluelist).",
        "required": ["api_key", "service_code"],
        "properties": {
            "api_key": {"type": "string", "description": "the app's key from the regency's administrator"},
            "jurisdiction_id": {"type": "string"},
            "service_code": {"type": "string"},
            "lat": {"type": "string", "description": "WGS84 degrees, -90 to 90"},
            "long": {"type": "string", "description": "WGS84 degrees, -180 to 180"},
            "address_string": {"type": "string"},
            "address_id": {"type": "string"},
            "area": {"type": "string", "description": "Siaga extension: the kecamatan (one of the catalogue's areas)"},
            "description": {"type": "string", "maxLength": 4000},
            "email": {"type": "string"},
            "phone": {"type": "string"},
            "first_name": {"type": "string"},
            "last_name": {"type": "string"},
            "device_id": {"type": "string"},
            "account_id": {"type": "string"},
            "media_url": {"type": "string", "description": "http(s) only"},
        },
        "additionalProperties": {"type": "string", "description": "attribute[code] and attribute[code][] answers"},
    },
}


# -- responses -----------------------------------------------------------------------------------


def _api_error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref("ApiError")}}}


def _api_ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _listing(key: str, item: str) -> dict[str, Any]:
    return {"type": "object", "required": [key], "properties": {key: {"type": "array", "items": _ref(item)}}}


_SIGNED_IN = {
    "401": _api_error("not signed in (error = login_required)"),
    "403": _api_error("signed in with a role that may not use this (error = forbidden)"),
}
_WRITE_ERRORS = {
    "400": _api_error(
        "the X-CSRF-Token header is missing or wrong (error = csrf), or a field is wrong (error = invalid, "
        "or bad_request for a body that is not a JSON object)"
    ),
    "404": _api_error("no such alarm, or one of a kind your role does not see (error = not_found)"),
    "409": {
        "description": "the move does not apply to the alarm's state, or presses joined since the revision you saw",
        "content": {JSON: {"schema": _ref("AlarmChanged")}},
    },
    "413": _api_error("body over 1 MB (error = too_large)"),
}

_SESSION = [{"session": []}]
_SESSION_CSRF = [{"session": [], "csrf": []}]


def _get(
    summary: str, roles: str, ok: dict[str, Any], *, parameters: list[dict[str, Any]] | None = None, **more: Any
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "tags": ["board"],
        "summary": summary,
        "description": f"Roles: {roles}.",
        "security": _SESSION,
        "responses": {"200": ok, **_SIGNED_IN, **more},
    }
    if parameters:
        operation["parameters"] = parameters
    return operation


_ALARM_ID_PARAM = {
    "name": "alarm_id",
    "in": "path",
    "required": True,
    "description": "the alarm's id (not its number)",
    "schema": {"type": "integer", "minimum": 0, "maximum": ALARM_ID_MAX},
}

#: Per move: the JSON body, and the form-encoded one where a form can say it (a form's numbers are text,
#: and rev and presses must be JSON integers: resolving needs rev, so it takes JSON only).
_ACTION_BODIES: dict[str, dict[str, Any]] = {
    "acknowledge": {
        JSON: _body([], note=_NOTE, rev=_REV, presses=_PRESSES),
        FORM: _body([], note=_NOTE),
    },
    "dispatch": {
        JSON: _body(["unit"], unit=_UNIT, note=_NOTE, rev=_REV, presses=_PRESSES),
        FORM: _body(["unit"], unit=_UNIT, note=_NOTE),
    },
    "resolve": {
        JSON: _body(
            ["resolution", "rev"], resolution=_RESOLUTION, rev=_REV | {"type": "integer"}, presses=_PRESSES, note=_NOTE
        ),
    },
}


def _alarm_action(verb: str, what: str) -> dict[str, Any]:
    return {
        "tags": ["board"],
        "summary": what,
        "operationId": f"{verb}Alarm",
        "description": "Roles: fire_operator (fire alarms), sapa_desk (SAPA alarms), admin (fire alarms). "
        "The button is told (its LED follows) and every open board hears of it.",
        "security": _SESSION_CSRF,
        "parameters": [_ALARM_ID_PARAM],
        "requestBody": {
            "required": verb != "acknowledge",
            "content": {media: {"schema": schema} for media, schema in _ACTION_BODIES[verb].items()},
        },
        "responses": {"200": _api_ok("the alarm after the move", _ref("AlarmResult")), **_SIGNED_IN, **_WRITE_ERRORS},
    }


def _api_paths() -> dict[str, Any]:
    board = "fire_operator, sapa_desk, admin (each sees only the kinds of alarm its role may: SAPA for sapa_desk)"
    devices = "fire_operator, sapa_desk, technician, admin"
    return {
        "/api/alarms": {
            "get": _get(
                "Alarms, newest first",
                board,
                _api_ok("alarms", _listing("alarms", "Alarm")),
                parameters=[
                    {
                        "name": "state",
                        "in": "query",
                        "description": "all: closed ones too; anything else (default open): open alarms only",
                        "schema": {"type": "string", "examples": ["open", "all"]},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "description": "at most this many (1-1000, default 200; out of range is clamped, "
                        "not a number is the default)",
                        "schema": {"type": "integer"},
                    },
                ],
            )
            | {"operationId": "listAlarms"},
        },
        "/api/alarms/{alarm_id}": {
            "get": _get(
                "One alarm with its history (actions), its presses (events) and its notifications",
                board,
                _api_ok("the alarm", _ref("AlarmDetail")),
                parameters=[_ALARM_ID_PARAM],
                **{"404": _api_error("no such alarm, or one of a kind your role does not see (error = not_found)")},
            )
            | {"operationId": "getAlarm"},
        },
        "/api/alarms/{alarm_id}/acknowledge": {"post": _alarm_action("acknowledge", "Acknowledge: help is coming")},
        "/api/alarms/{alarm_id}/dispatch": {"post": _alarm_action("dispatch", "Dispatch a unit (unit required)")},
        "/api/alarms/{alarm_id}/resolve": {
            "post": _alarm_action("resolve", "Resolve (resolution and rev required)"),
        },
        "/api/gateways": {
            "get": _get(
                "Gateways and their last status", "any signed-in role", _api_ok("", _listing("gateways", "Gateway"))
            )
            | {"operationId": "listGateways"},
        },
        "/api/sites": {
            "get": _get(
                "Sites, most urgent first, with their buttons and each button's state (map and site list)",
                f"{board}, technician (never an alarm id or state for technicians)",
                _api_ok(
                    "every site with every button; with view=summary every site with only its buttons that are "
                    "not ok; with site=<name> that one site with every button",
                    {
                        "anyOf": [
                            _listing("sites", "SiteWithButtons"),
                            _listing("sites", "SiteSummary"),
                            {"type": "object", "required": ["site"], "properties": {"site": _ref("SiteWithButtons")}},
                        ]
                    },
                ),
                parameters=[
                    {
                        "name": "view",
                        "in": "query",
                        "description": "summary: per site its state, counts and only the buttons that are not ok "
                        "(what a board fetches after each change); anything else: every button of every site",
                        "schema": {"type": "string", "examples": ["summary"]},
                    },
                    {
                        "name": "site",
                        "in": "query",
                        "description": "one site by name, with every button (the others are not read)",
                        "schema": {"type": "string"},
                    },
                ],
                **{"404": _api_error("site= names no site with buttons your role sees (error = not_found)")},
            )
            | {"operationId": "listSites"},
        },
        "/api/troubles": {
            "get": _get(
                "Open device troubles of the buttons your role sees, and every gateway's",
                f"{board}, technician",
                _api_ok("", _listing("troubles", "Trouble")),
            )
            | {"operationId": "listTroubles"},
        },
        "/api/devices": {
            "get": _get(
                "Gateways and buttons with health, radio and troubles, a page at a time, problems first",
                devices,
                _api_ok("", _ref("DeviceOverview")),
                parameters=[
                    {
                        "name": "page",
                        "in": "query",
                        "description": "which page of 50 gateways (default 1; past the last: the last; not a "
                        "number: the first)",
                        "schema": {"type": "integer", "minimum": 1},
                    },
                    {
                        "name": "q",
                        "in": "query",
                        "description": "only gateways whose name holds this (with all their buttons), or with a "
                        "button whose id, label or site holds it (with those buttons); any case, up to 100 characters",
                        "schema": {"type": "string", "maxLength": 100},
                    },
                ],
            )
            | {"operationId": "deviceOverview"},
        },
        "/api/diagnostics": {
            "get": _get(
                "The dashboard's own health and counters", "technician, admin", _api_ok("", _ref("Diagnostics"))
            )
            | {"operationId": "diagnostics"},
        },
        "/api/stream": {
            "get": _get(
                "The live board: Server-Sent Events",
                board,
                {
                    "description": "An endless text/event-stream: first `snapshot` (alarms, recently closed, gateways, "
                    "troubles, server_time), then `alarm` and `trouble` events as they happen, and a keepalive "
                    "comment every 15 s. Reconnect on any error: the next snapshot has everything. An account "
                    "holds at most `streams_per_account` streams (20 by default): one more ends the account's "
                    "oldest one with a last `replaced` event (its board then waits for a click). A board more "
                    "than 2,000 messages behind is ended and resyncs when it reconnects. A dashboard holding "
                    "`max_streams` (2,000) answers 503 `too_many_streams` with Retry-After.",
                    "content": {"text/event-stream": {"schema": _ref("LiveEvent")}},
                },
            )
            | {"operationId": "stream"},
        },
    }


# -- Open311 ------------------------------------------------------------------------------------


_JURISDICTION = {
    "name": "jurisdiction_id",
    "in": "query",
    "description": "may be omitted; anything but this dashboard's jurisdiction (konaweselatankab.go.id by "
    "default) is a 404",
    "schema": {"type": "string"},
}
_LANG = {
    "name": "lang",
    "in": "query",
    "description": "en: English names and questions; anything else: Bahasa Indonesia",
    "schema": {"type": "string", "examples": ["en", "id"]},
}


def _o311_errors(fmt: str, *statuses: str) -> dict[str, Any]:
    meaning = {
        "400": "a missing or wrong field; the description names it",
        "403": "api_key missing or invalid (also a revoked key)",
        "404": "unknown service_code, service_request_id, token, jurisdiction_id or resource",
        "405": "a method other than GET and POST",
        "413": "a body over 1 MB",
        "429": "too many POSTs from this key; Retry-After says when to try again",
    }
    return {status: _o311_body(fmt, meaning[status], _ref("Open311Errors")) for status in statuses}


def _o311_body(fmt: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    if fmt == "json":
        return {"description": description, "content": {JSON: {"schema": schema}}}
    return {
        "description": f"{description} (XML: the same fields as elements, see docs/open311.md)",
        "content": {XML: {"schema": {"type": "string"}}},
    }


def _o311_get(
    fmt: str, summary: str, ok: dict[str, Any], params: list[dict[str, Any]], errors: tuple[str, ...], op_id: str
) -> dict[str, Any]:
    return {
        "tags": ["open311"],
        "summary": summary,
        "operationId": f"{op_id}{fmt.upper()}",
        "security": [],
        "parameters": params,
        "responses": {"200": _o311_body(fmt, "", ok), **_o311_errors(fmt, *errors)},
    }


def _open311_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for fmt in FORMATS:
        paths[f"/open311/discovery.{fmt}"] = {
            "get": {
                "tags": ["open311"],
                "summary": "Open311 service discovery: where the endpoint is and which formats it speaks",
                "operationId": f"discovery{fmt.upper()}",
                "security": [],
                "responses": {"200": _o311_body(fmt, "", _ref("Discovery"))},
            }
        }
        paths[f"/open311/v2/services.{fmt}"] = {
            "get": _o311_get(
                fmt,
                "The categories of report (Perda/Perkada violations)",
                {"type": "array", "items": _ref("Service")},
                [_JURISDICTION, _LANG],
                ("404",),
                "listServices",
            )
        }
        paths[f"/open311/v2/services/{{service_code}}.{fmt}"] = {
            "get": _o311_get(
                fmt,
                "A category's attributes (its questions)",
                _ref("ServiceDefinition"),
                [
                    {"name": "service_code", "in": "path", "required": True, "schema": {"type": "string"}},
                    _JURISDICTION,
                    _LANG,
                ],
                ("404",),
                "serviceDefinition",
            )
        }
        paths[f"/open311/v2/requests.{fmt}"] = {
            "get": _o311_get(
                fmt,
                "Search reports (without dates: the last 90 days; at most 1,000, newest first)",
                {"type": "array", "items": _ref("ServiceRequest")},
                [
                    _JURISDICTION,
                    {
                        "name": "service_request_id",
                        "in": "query",
                        "description": "comma-separated; other filters are then ignored",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "service_code",
                        "in": "query",
                        "description": "comma-separated",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "start_date",
                        "in": "query",
                        "description": "W3C datetime with a timezone, e.g. 2026-11-01T00:00:00+08:00",
                        "schema": {"type": "string"},
                    },
                    {"name": "end_date", "in": "query", "description": "as start_date", "schema": {"type": "string"}},
                    {
                        "name": "status",
                        "in": "query",
                        "description": "comma-separated: open, closed",
                        "schema": {"type": "string", "examples": ["open", "closed", "open,closed"]},
                    },
                ],
                ("400", "404"),
                "searchRequests",
            ),
            "post": {
                "tags": ["open311"],
                "summary": "Submit a report on a citizen's behalf (needs an api_key)",
                "operationId": f"submitRequest{fmt.upper()}",
                "description": "The api_key is a field of the form body, as GeoReport v2 defines it (OpenAPI's "
                "apiKey schemes cannot say so): there is no cookie and no CSRF token. At most "
                "api_posts_per_min POSTs per key (default 120).",
                "security": [],
                "parameters": [_JURISDICTION],
                "requestBody": {
                    "required": True,
                    "content": {
                        FORM: {"schema": _ref("Open311ReportForm")},
                        MULTIPART: {"schema": _ref("Open311ReportForm")},
                    },
                },
                "responses": {
                    "201": _o311_body(fmt, "stored", {"type": "array", "items": _ref("ServiceRequestCreated")}),
                    **_o311_errors(fmt, "400", "403", "404", "413"),
                    "429": _o311_errors(fmt, "429")["429"]
                    | {"headers": {"Retry-After": {"description": "seconds", "schema": {"type": "string"}}}},
                },
            },
        }
        paths[f"/open311/v2/requests/{{service_request_id}}.{fmt}"] = {
            "get": _o311_get(
                fmt,
                "One report",
                {"type": "array", "items": _ref("ServiceRequest"), "maxItems": 1},
                [
                    {"name": "service_request_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    _JURISDICTION,
                ],
                ("404",),
                "getRequest",
            )
        }
        paths[f"/open311/v2/tokens/{{token}}.{fmt}"] = {
            "get": _o311_get(
                fmt,
                "The service_request_id a submission's token became",
                {"type": "array", "items": _ref("TokenResult"), "maxItems": 1},
                [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}, _JURISDICTION],
                ("404",),
                "getToken",
            )
        }
    return paths


@cache
def _spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Siaga dashboard API",
            "version": __version__,
            "description": "The operators' board API (/api/: session cookie, X-CSRF-Token on writes, roles) and "
            "the citizens' reports API (/open311/: Open311 GeoReport v2, public reads, api_key for submissions). "
            "See docs/api.md and docs/open311.md.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": "board", "description": "alarms, devices and troubles for signed-in operators"},
            {"name": "open311", "description": "citizens' reports, Open311 GeoReport v2"},
            {"name": "commissioning", "description": "technicians' commissioning sessions (siaga-gateway commission)"},
            {"name": "enrolment", "description": "a gateway redeems its one-time code (siaga-gateway enrol)"},
            {"name": "meta", "description": "this description"},
        ],
        "paths": {
            **_api_paths(),
            **commissioning.api_paths(),
            **enrolment.api_paths(),
            **_open311_paths(),
            "/openapi.json": {
                "get": {
                    "tags": ["meta"],
                    "summary": "This OpenAPI description",
                    "operationId": "openapi",
                    "security": [],
                    "responses": {"200": {"description": "", "content": {JSON: {"schema": {"type": "object"}}}}},
                }
            },
        },
        "components": {
            "schemas": {**SCHEMAS, **commissioning.SCHEMAS, **enrolment.SCHEMAS},
            "securitySchemes": {
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "siaga_session",
                    "description": "The signed session cookie that POST /login sets (HttpOnly, SameSite=Lax, Secure "
                    "by default). It names a server-side session: POST /logout, a new password or a changed role "
                    "ends it.",
                },
                "csrf": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-CSRF-Token",
                    "description": "Required on every POST with a session: the token of the signed-in session, "
                    'from <meta name="csrf-token" content="…"> on any page of the dashboard (e.g. GET /board). '
                    "Missing or wrong: 400 with error = csrf.",
                },
            },
        },
    }


def spec(cookie_name: str = "siaga_session", jurisdiction: str | None = None) -> dict[str, Any]:
    """The OpenAPI document (a copy: callers may change it) for this dashboard's cookie and jurisdiction."""
    document = copy.deepcopy(_spec())
    document["components"]["securitySchemes"]["session"]["name"] = cookie_name
    if jurisdiction:
        only = {"type": "string", "enum": [jurisdiction]}
        for item in document["paths"].values():
            for operation in item.values():
                for parameter in operation.get("parameters", []):
                    if parameter["name"] == "jurisdiction_id":
                        parameter["schema"] = only
        document["components"]["schemas"]["Open311ReportForm"]["properties"]["jurisdiction_id"] = only
    return document


@bp.get("/openapi.json")
def openapi_json() -> Any:
    catalogue = current_app.config.get("SIAGA_CATALOGUE")
    response = jsonify(
        spec(
            current_app.config.get("SESSION_COOKIE_NAME", "siaga_session"),
            getattr(catalogue, "jurisdiction", None),
        )
    )
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
