"""The OpenAPI description of ``POST /api/enrol`` (merged into ``dashboard/openapi.py``'s document)."""

from __future__ import annotations

from typing import Any

JSON = "application/json"

SCHEMAS: dict[str, Any] = {
    "EnrolRequest": {
        "type": "object",
        "required": ["code"],
        "properties": {
            "code": {
                "type": "string",
                "maxLength": 64,
                "description": "the one-time code an administrator issued (XXXX-XXXX-XXXX-XXXX; case, spaces and "
                "dashes do not matter)",
            }
        },
    },
    "Enrolment": {
        "type": "object",
        "description": "What a gateway needs, once: its gateway.toml (no secret in it; it names the files below "
        "under /etc/siaga), its MQTT password (made now, never stored by the dashboard) and the CAs.",
        "required": ["gateway_id", "config", "mqtt_username", "mqtt_password", "broker_ca", "dashboard_ca"],
        "properties": {
            "gateway_id": {"type": "string"},
            "config": {"type": "string", "description": "gateway.toml"},
            "mqtt_username": {"type": "string", "description": "the gateway id"},
            "mqtt_password": {"type": "string", "description": "256 random bits, URL-safe base64"},
            "broker_ca": {"type": ["string", "null"], "description": "PEM; null: the brokers are not TLS"},
            "dashboard_ca": {"type": ["string", "null"], "description": "PEM; null: a CA the system trusts"},
            "replaced_account": {"type": "boolean", "description": "re-enrolment: the old password was replaced"},
        },
    },
    "EnrolRefusal": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string"},
            "message": {"type": "string"},
            "reason": {"type": "string", "enum": ["unknown", "used", "revoked", "expired"]},
        },
    },
}


def _refusal(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": {"$ref": "#/components/schemas/EnrolRefusal"}}}}


def api_paths() -> dict[str, Any]:
    return {
        "/api/enrol": {
            "post": {
                "tags": ["enrolment"],
                "summary": "Redeem a one-time enrolment code (siaga-gateway enrol)",
                "description": "No session and no CSRF token: the code is the credential. A code works once, "
                "until it expires (code_ttl_h) or is revoked; every use and failed use is audited. Ten wrong "
                "codes in ten minutes from one address (an IPv6 /64) and it waits.",
                "operationId": "enrol",
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": {"$ref": "#/components/schemas/EnrolRequest"}}},
                },
                "responses": {
                    "200": {
                        "description": "enrolled",
                        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Enrolment"}}},
                    },
                    "400": _refusal("not JSON with a code (error = bad_request)"),
                    "403": _refusal("the code was refused (error = code_refused; reason says why)"),
                    "404": _refusal("enrolment is not enabled on this dashboard (error = enrolment_disabled)"),
                    "413": _refusal("body over 1 MB (error = too_large)"),
                    "429": _refusal(
                        "too many wrong codes from this address (error = too_many_wrong_codes); "
                        "Retry-After says when to try again"
                    ),
                    "503": _refusal(
                        "the broker account could not be made (error = broker_unavailable); the code is not spent"
                    ),
                },
            }
        }
    }
