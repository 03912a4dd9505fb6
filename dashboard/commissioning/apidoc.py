"""The OpenAPI description of ``/api/commissioning/`` (merged into ``dashboard/openapi.py``'s document)."""

from __future__ import annotations

from typing import Any

JSON = "application/json"
ROLES = "Roles: technician (every button), admin (sessions of fire buttons only; any other: 404)."

_TIME = {"type": ["string", "null"], "description": "UTC, ISO 8601 with milliseconds"}
_CHECK = {
    "type": "string",
    "description": "passed, failed, waiting, not_measured (a LoRa module that reports no RSSI/SNR), "
    "not_applicable (radio of a wired button), not_reported (no indication from the gateway's status socket)",
}
_ANSWER = {"type": "string", "description": "yes, no, not_asked, none (no buzzer)"}

SCHEMAS: dict[str, Any] = {
    "CommissioningButton": {
        "type": "object",
        "description": "One button's record in a session and its checks.",
        "required": ["id", "kind", "transport", "event_id", "alarm_id", "checks", "result", "reasons"],
        "properties": {
            "id": {"type": "string"},
            "kind": {"type": "string"},
            "transport": {"type": "string"},
            "site": {"type": ["string", "null"]},
            "label": {"type": ["string", "null"]},
            "event_id": {"type": ["string", "null"], "description": "the test press's event, once seen"},
            "pressed_at": _TIME,
            "alarm_id": {"type": ["integer", "null"]},
            "test_alarm": {"type": ["boolean", "null"], "description": "the press raised a test alarm"},
            "rssi": {"type": ["number", "null"]},
            "snr": {"type": ["number", "null"]},
            "indication": {"type": ["object", "null"], "description": "what the gateway's status socket said"},
            "node_firmware": {"type": ["string", "null"]},
            "armed_at": _TIME,
            "gave_up_at": _TIME,
            "checks": {
                "type": "object",
                "properties": {name: _CHECK for name in ("press", "test_alarm", "radio", "indication")},
            },
            "led_seen": _ANSWER,
            "buzzer_heard": _ANSWER,
            "result": {"type": "string", "enum": ["pending", "passed", "failed"]},
            "reasons": {"type": "array", "items": {"type": "string"}, "description": "why it failed (codes)"},
        },
    },
    "CommissioningSession": {
        "type": "object",
        "description": "A commissioning session: its buttons are in test mode until it is finished or expires.",
        "required": ["id", "gw", "state", "started_by", "started_at", "expires_at", "buttons"],
        "properties": {
            "id": {"type": "integer"},
            "gw": {"type": "string"},
            "state": {"type": "string", "enum": ["open", "finished", "abandoned", "expired"]},
            "started_by": {"type": "string"},
            "started_at": _TIME,
            "expires_at": _TIME,
            "finished_by": {"type": ["string", "null"]},
            "finished_at": _TIME,
            "verdict": {"type": ["string", "null"], "enum": ["passed", "failed", None]},
            "gateway_version": {"type": ["string", "null"]},
            "buttons": {"type": "array", "items": {"$ref": "#/components/schemas/CommissioningButton"}},
            "margins": {"type": "object"},
            "report_url": {"type": "string"},
            "pdf_url": {"type": "string"},
            "page_url": {"type": "string"},
        },
    },
}

_SESSION_REF = {"$ref": "#/components/schemas/CommissioningSession"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": {"$ref": "#/components/schemas/ApiError"}}}}


_SIGNED_IN = {
    "401": _error("not signed in (error = login_required)"),
    "403": _error("signed in with a role that may not use this (error = forbidden)"),
}
_WRITE_ERRORS = {
    "400": _error("the X-CSRF-Token header is missing or wrong (error = csrf), or the body is wrong (bad_request)"),
    "404": _error("no such session, gateway or button, or one your role does not see (error = not_found)"),
    "409": _error("the session is finished, abandoned or expired (session_closed, session_expired), or busy"),
    "413": _error("body over 1 MB (error = too_large)"),
}
_SESSION_ID = {
    "name": "session_id",
    "in": "path",
    "required": True,
    "description": "the session's id (also its report's)",
    "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
}
_BUTTON = {"name": "button", "in": "path", "required": True, "description": "a button of the session",
           "schema": {"type": "string"}}  # fmt: skip


def _ok(description: str, status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, "content": {JSON: {"schema": _SESSION_REF}}}}


def _post(operation_id: str, summary: str, ok: dict[str, Any], parameters: list[dict[str, Any]], **extra: Any) -> dict[
    str, Any
]:  # fmt: skip
    return {
        "tags": ["commissioning"],
        "summary": summary,
        "operationId": operation_id,
        "description": ROLES,
        "security": [{"session": [], "csrf": []}],
        "parameters": parameters,
        "responses": {**ok, **_SIGNED_IN, **_WRITE_ERRORS},
        **extra,
    }


def api_paths() -> dict[str, Any]:
    answers = {
        "type": "object",
        "properties": {
            "indication": {
                "type": "object",
                "description": "the gateway's status socket's view of the button",
                "properties": {
                    "state": {"type": ["string", "null"]},
                    "alarm": {"type": ["integer", "null"]},
                    "led": {"type": "string"},
                    "indicated_at": {"type": ["string", "null"]},
                },
            },
            "led_seen": {"type": "string", "enum": ["yes", "no", "not_asked"]},
            "buzzer_heard": {"type": "string", "enum": ["yes", "no", "not_asked", "none"]},
            "node_firmware": {"type": ["string", "null"], "maxLength": 64},
            "gave_up": {"const": True, "description": "no press came: the button fails"},
        },
    }
    start = {
        "type": "object",
        "required": ["gw"],
        "properties": {
            "gw": {"type": "string", "description": "the gateway to commission"},
            "buttons": {"type": "array", "items": {"type": "string"}, "description": "only these (default: all)"},
        },
    }
    return {
        "/api/commissioning/sessions": {
            "post": _post(
                "startCommissioning",
                "Start a session on a gateway: its buttons go into test mode (an open session of it is abandoned)",
                _ok("the session, with its page's, report's and PDF's addresses", "201"),
                [],
                requestBody={"required": True, "content": {JSON: {"schema": start}}},
            ),
        },
        "/api/commissioning/sessions/{session_id}": {
            "get": {
                "tags": ["commissioning"],
                "summary": "A session and each button's record (a press since it was armed is recorded as it is read)",
                "operationId": "getCommissioning",
                "description": ROLES,
                "security": [{"session": []}],
                "parameters": [_SESSION_ID],
                "responses": {
                    **_ok("the session"),
                    **_SIGNED_IN,
                    "404": _error("no such session, or one your role does not see (error = not_found)"),
                },
            },
        },
        "/api/commissioning/sessions/{session_id}/buttons/{button}/arm": {
            "post": _post(
                "armCommissioningButton",
                "Ask for the button's press (again): what was recorded of it is cleared",
                _ok("the session"),
                [_SESSION_ID, _BUTTON],
            ),
        },
        "/api/commissioning/sessions/{session_id}/buttons/{button}": {
            "post": _post(
                "recordCommissioningButton",
                "Record the gateway's indication, what the technician saw and heard, or that no press came",
                _ok("the session"),
                [_SESSION_ID, _BUTTON],
                requestBody={"required": True, "content": {JSON: {"schema": answers}}},
            ),
        },
        "/api/commissioning/sessions/{session_id}/finish": {
            "post": _post(
                "finishCommissioning",
                "Finish the session: every button judged, the report (results and PDF) stored for good",
                _ok("the report's results, with its addresses"),
                [_SESSION_ID],
            ),
        },
        "/api/commissioning/sessions/{session_id}/abandon": {
            "post": _post(
                "abandonCommissioning",
                "End the session without a report; its buttons leave test mode",
                _ok("the session"),
                [_SESSION_ID],
            ),
        },
    }
