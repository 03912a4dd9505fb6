"""Validating a new report, the same way for the citizens' form and for Open311 apps.

Every refusal names the field, says what is wrong in English (for app
developers, as Open311 errors) and carries a message key for the citizens'
form (Bahasa Indonesia or English).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from firmware_bridge.errors import SiagaError

from .categories import Catalogue, Category
from .store import NewReport
from .text import xml_safe

MAX_DESCRIPTION = 4000  # the Open311 spec's limit
MAX_SHORT = 200
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$")
_PHONE = re.compile(r"^[0-9+()\-. ]{6,20}$")
_ATTRIBUTE = re.compile(r"^attribute\[([a-z0-9_]{1,64})\](\[\])?$")


class IntakeError(SiagaError, ValueError):
    """A report that cannot be accepted as sent."""

    def __init__(self, description: str, *, field: str, key: str, status: int = 400) -> None:
        super().__init__(description)
        self.description = description
        self.field = field
        self.key = key  # message key of the citizens' form
        self.status = status


def _text(form: Mapping[str, Any], name: str, limit: int = MAX_SHORT) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    value = xml_safe(str(value)).strip()  # controls and the like: nothing a citizen meant, and they break XML
    if not value:
        return None
    if len(value) > limit:
        raise IntakeError(f"{name} is longer than {limit} characters", field=name, key="error_too_long")
    return value


def _coordinate(form: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    raw = _text(form, name, 40)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise IntakeError(f"{name} must be a number (got {raw!r})", field=name, key="error_coordinates") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise IntakeError(f"{name} must be between {low} and {high} (got {raw})", field=name, key="error_coordinates")
    return value


def attribute_values(form: Any) -> dict[str, list[str]]:
    """``attribute[code]`` and ``attribute[code][]`` fields of a form (a werkzeug MultiDict or a dict)."""
    values: dict[str, list[str]] = {}
    keys = form.keys() if hasattr(form, "keys") else []
    for key in keys:
        # A multipart field name with a line break reaches us as the key None.
        match = _ATTRIBUTE.match(key) if isinstance(key, str) else None
        if not match:
            continue
        items = form.getlist(key) if hasattr(form, "getlist") else _as_list(form[key])
        cleaned = (xml_safe(str(item)).strip() for item in items)
        values.setdefault(match.group(1), []).extend(item for item in cleaned if item)
    return values


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _attributes(category: Category, given: dict[str, list[str]]) -> dict[str, Any]:
    known = {attribute.code: attribute for attribute in category.attributes}
    for code in given:
        if code not in known:
            raise IntakeError(
                f"attribute[{code}] is not an attribute of {category.code}",
                field=f"attribute[{code}]",
                key="error_invalid",
            )
    result: dict[str, Any] = {}
    for attribute in category.attributes:
        field = f"attribute[{attribute.code}]"
        values = given.get(attribute.code, [])
        if not values:
            if attribute.required:
                raise IntakeError(f"{field} is required for {category.code}", field=field, key="error_required")
            continue
        if attribute.datatype != "multivaluelist" and len(values) > 1:
            raise IntakeError(f"{field} takes one value", field=field, key="error_invalid")
        if attribute.is_list:
            unknown = [value for value in values if value not in attribute.values]
            if unknown:
                choices = ", ".join(attribute.values)
                raise IntakeError(f"{field}: {unknown[0]!r} is not one of {choices}", field=field, key="error_invalid")
            result[attribute.code] = values if attribute.datatype == "multivaluelist" else values[0]
        elif attribute.datatype == "number":
            try:
                number = float(values[0])
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise IntakeError(f"{field} must be a number", field=field, key="error_invalid")
            result[attribute.code] = number
        elif attribute.datatype == "datetime":
            try:
                datetime.fromisoformat(values[0])
            except ValueError:
                raise IntakeError(
                    f"{field} must be a date and time (ISO 8601)", field=field, key="error_invalid"
                ) from None
            result[attribute.code] = values[0]
        else:
            limit = MAX_DESCRIPTION if attribute.datatype == "text" else 1000
            if len(values[0]) > limit:
                raise IntakeError(f"{field} is longer than {limit} characters", field=field, key="error_too_long")
            result[attribute.code] = values[0]
    return result


def validate_report(
    form: Any, catalogue: Catalogue, *, source: str, attributes: dict[str, list[str]] | None = None
) -> NewReport:
    """Build a NewReport from form fields named as Open311 names them; raises IntakeError."""
    code = _text(form, "service_code", 64)
    if code is None:
        raise IntakeError("service_code is required", field="service_code", key="error_category")
    category = catalogue.get(code)
    if category is None:
        raise IntakeError(f"service_code {code!r} was not found", field="service_code", key="error_category")
    lat = _coordinate(form, "lat", -90.0, 90.0)
    lon = _coordinate(form, "long", -180.0, 180.0)
    if (lat is None) != (lon is None):
        missing = "long" if lon is None else "lat"
        raise IntakeError(
            f"{missing} is required together with {'lat' if missing == 'long' else 'long'}",
            field=missing,
            key="error_coordinates",
        )
    address = _text(form, "address_string", 500)
    address_id = _text(form, "address_id", 100)
    if lat is None and address is None and address_id is None:
        raise IntakeError(
            "a location is required: lat and long, address_string or address_id", field="lat", key="error_location"
        )
    description = _text(form, "description", MAX_DESCRIPTION)
    area = _text(form, "area", 100)
    if area is not None and area not in catalogue.areas:
        raise IntakeError(
            f"area {area!r} is not a district of {catalogue.jurisdiction_name}", field="area", key="error_invalid"
        )
    email = _text(form, "email", 255)
    if email is not None and not _EMAIL.match(email):
        raise IntakeError("email is not an e-mail address", field="email", key="error_email")
    phone = _text(form, "phone", 40)
    if phone is not None and not _PHONE.match(phone):
        raise IntakeError("phone is not a phone number", field="phone", key="error_phone")
    media_url = _text(form, "media_url", 500)
    if media_url is not None and not media_url.startswith(("https://", "http://")):
        raise IntakeError("media_url must be an http(s) URL", field="media_url", key="error_invalid")
    names = [_text(form, part) for part in ("first_name", "last_name", "name")]
    reporter = " ".join(part for part in names if part) or None
    return NewReport(
        service_code=category.code,
        description=description,
        lat=lat,
        lon=lon,
        address=address,
        address_id=address_id,
        area=area,
        attributes=_attributes(category, attributes if attributes is not None else attribute_values(form)),
        media_url=media_url,
        source=source,
        reporter_name=reporter,
        reporter_email=email,
        reporter_phone=phone,
        device_id=_text(form, "device_id", 100),
        account_id=_text(form, "account_id", 100),
    )
