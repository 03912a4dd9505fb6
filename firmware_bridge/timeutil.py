"""UTC timestamps as they travel on the wire: ISO 8601 with milliseconds and ``Z``."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from .errors import BadPayload

_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")


def format_ts(moment: datetime) -> str:
    """Format an aware datetime as UTC ISO 8601 with milliseconds, e.g. ``2026-11-28T04:05:06.789Z``."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def format_epoch(seconds: float) -> str:
    """Format a Unix time as a wire timestamp (what :func:`format_ts` gives, by a shorter way: it is on every press)."""
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_ts(text: str, *, field: str = "ts") -> datetime:
    """Parse a wire timestamp; a timezone is mandatory. Raises :class:`BadPayload`."""
    if not isinstance(text, str) or not _ISO_RE.match(text):
        raise BadPayload(
            f"{field}: expected an ISO 8601 timestamp with timezone, got {text!r}",
            field=field,
            reason="bad_timestamp",
        )
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:  # e.g. month 13
        raise BadPayload(f"{field}: {exc}", field=field, reason="bad_timestamp") from None
