"""The one TOML writer (``toml_text``): gateway configurations for the dashboard's enrolment, the simulator and tests.

A document is plain data (tables are dicts, arrays of tables are lists of
dicts); strings, numbers, booleans, paths and arrays of them are written as
TOML the standard library's ``tomllib`` reads back unchanged. The standard
library reads TOML but does not write it, and quoting paths and labels by hand
in f-strings is how a ``"`` or ``\\`` in a folder's name breaks a file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
#: What a TOML basic string must escape: the quote, the backslash and the control characters but tab.
_MUST_ESCAPE = re.compile(r'["\\\x00-\x08\x0a-\x1f\x7f]')
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_text(document: Mapping[str, Any]) -> str:
    """``document`` as TOML; a ``None`` value leaves its key out (the reader's default applies)."""
    return "".join(_table(document, ()))


def _table(table: Mapping[str, Any], path: tuple[str, ...], header: str = "") -> Iterable[str]:
    scalars = {key: value for key, value in table.items() if value is not None and not _is_nested(value)}
    if header or scalars:
        yield header
        yield from (f"{_key(key)} = {toml_value(value)}\n" for key, value in scalars.items())
    for key, value in table.items():
        inner = (*path, key)
        name = ".".join(_key(part) for part in inner)
        if isinstance(value, Mapping):
            yield from _table(value, inner, f"\n[{name}]\n")
        elif _is_array_of_tables(value):
            for item in value:
                yield from _table(item, inner, f"\n[[{name}]]\n")


def _is_nested(value: Any) -> bool:
    return isinstance(value, Mapping) or _is_array_of_tables(value)


def _is_array_of_tables(value: Any) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(isinstance(item, Mapping) for item in value)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def toml_value(value: Any) -> str:
    """One value as TOML (a string quoted and escaped, a path as its string, an array of them)."""
    if isinstance(value, bool):  # before int: a bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str | Path):
        return _string(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}: {value!r}")


def _string(text: str) -> str:
    escaped = _MUST_ESCAPE.sub(lambda m: _SHORT_ESCAPES.get(m.group(), f"\\u{ord(m.group()):04x}"), text)
    return f'"{escaped}"'
