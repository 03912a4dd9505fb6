"""Event identifiers: ULIDs (time-ordered, 128 bit, Crockford base32).

A ULID is 48 bits of milliseconds since the Unix epoch followed by 80 random
bits. Sorting ULIDs sorts events by creation time, which keeps database
indexes append-mostly. The caller supplies the time and the random bits, so
this module stays free of I/O and is trivially testable.
"""

from __future__ import annotations

import re

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ULID_RE = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def make_ulid(millis: int, randomness: bytes) -> str:
    """Build a ULID from a millisecond timestamp and 10 random bytes."""
    if not 0 <= millis < 1 << 48:
        raise ValueError("millis out of range for a ULID")
    if len(randomness) != 10:
        raise ValueError("a ULID needs exactly 10 random bytes")
    value = (millis << 80) | int.from_bytes(randomness, "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def ulid_millis(ulid: str) -> int:
    """The creation time (ms since epoch) encoded in a ULID."""
    value = 0
    for char in ulid[:10]:
        value = value * 32 + _CROCKFORD.index(char)
    return value


def is_event_id(text: object) -> bool:
    """True for a ULID or a lowercase canonical UUID."""
    return isinstance(text, str) and bool(ULID_RE.match(text) or UUID_RE.match(text))
