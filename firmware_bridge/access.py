"""Who may read an integration: bearer tokens read from files and checked in constant time, and the purpose
an administrator must state before SAPA data leaves the SAPA desk (one rule for every integration)."""

from __future__ import annotations

import hashlib
import hmac

from .broker import read_secret_file
from .settings import Section

#: Long enough that guessing is hopeless, and safe in an HTTP header.
MIN_TOKEN_LENGTH = 32
MIN_PURPOSE_LENGTH = 10


def read_bearer_token(section: Section, key: str, path: str | None) -> str | None:
    """The token in the file ``path`` (the value of ``key``), None without one; refused if it is short or
    holds what an ``Authorization`` header cannot carry."""
    if not path:
        return None
    token = read_secret_file(section, key, path)
    if len(token) < MIN_TOKEN_LENGTH or not token.isprintable() or " " in token:
        raise section.error(key, f"the token must be at least {MIN_TOKEN_LENGTH} printable characters without spaces")
    return token


def token_matches(header: str, token: str) -> bool:
    """``Bearer <token>``, exactly (one space; nothing trimmed from what is presented), compared in constant
    time (as digests: the lengths tell nothing either)."""
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(token.encode()).digest())


def stated_purpose(section: Section, flag: str, on: bool, key: str = "sapa_purpose") -> str | None:
    """The purpose given under ``key`` (stripped), required when the setting ``flag`` is ``on``: SAPA data
    leaves the SAPA desk only for a reason someone wrote down."""
    purpose = section.str(key, None)
    if on and (purpose is None or len(purpose.strip()) < MIN_PURPOSE_LENGTH):
        raise section.error(key, f"{flag} = true needs the purpose stated (at least {MIN_PURPOSE_LENGTH} characters)")
    return purpose.strip() if purpose else None
