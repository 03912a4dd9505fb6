"""One-time enrolment codes without I/O: made, shown, typed back, and hashed for the store.

A code is 16 symbols of a 32-symbol alphabet without the pairs people confuse
(no 0 or O, no 1 or I), so 80 random bits, shown in four groups of four
(``7XK4-M9QP-...``). What is typed back is read forgivingly (lower case,
spaces, dashes); the store keeps only its SHA-256: with 80 random bits there
is nothing to guess offline.
"""

from __future__ import annotations

import hashlib
import math
import secrets

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
SYMBOLS = 16
GROUP = 4


def entropy_bits() -> float:
    return SYMBOLS * math.log2(len(ALPHABET))


def new_code() -> str:
    symbols = "".join(secrets.choice(ALPHABET) for _ in range(SYMBOLS))
    return "-".join(symbols[i : i + GROUP] for i in range(0, SYMBOLS, GROUP))


def normalise(typed: str) -> str | None:
    """The code in its shown form, or None when what was typed cannot be one."""
    symbols = "".join(typed.split()).replace("-", "").upper()
    if len(symbols) != SYMBOLS or not symbols.isascii():
        return None
    if any(symbol not in ALPHABET for symbol in symbols):
        return None
    return "-".join(symbols[i : i + GROUP] for i in range(0, SYMBOLS, GROUP))


def digest(code: str) -> str:
    return hashlib.sha256(code.encode("ascii")).hexdigest()


def hint(code: str) -> str:
    """The last group, which lists show so that an administrator can tell codes apart."""
    return code[-GROUP:]
