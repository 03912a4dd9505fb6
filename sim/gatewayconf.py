"""The one writer of gateway configuration files (``gateway.toml``) for the simulator, the benchmarks and the tests.

A configuration is built as plain data (tables are dicts, ``[[button]]`` and
``[[lora_button]]`` are lists of dicts) and written by :func:`toml_text`, a
small TOML emitter for strings, numbers, booleans, paths, arrays and tables:
the standard library reads TOML but does not write it, and quoting paths and
labels by hand in f-strings is how a ``"`` or ``\\`` in a temporary folder's
name breaks a file.
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


_PLACEHOLDER = re.compile(r"@([A-Z_]+)@")


def fill_template(template: str, values: Mapping[str, Any]) -> str:
    """A commented sample configuration (``sim/data/*.toml``) with each ``@NAME@`` replaced by
    ``values["NAME"]`` written as TOML: a path with a quote in it cannot break the file."""

    def value(match: re.Match[str]) -> str:
        return toml_value(values[match.group(1)])

    return _PLACEHOLDER.sub(value, template)


def site(name: str, lat: float, lon: float) -> dict[str, Any]:
    """A button's ``[button.site]`` table."""
    return {"name": name, "lat": lat, "lon": lon}


def gateway_document(
    gw_id: str,
    *,
    mqtt: Mapping[str, Any],
    buttons: Iterable[Mapping[str, Any]] = (),
    lora: Mapping[str, Any] | None = None,
    lora_buttons: Iterable[Mapping[str, Any]] = (),
    **gateway: Any,
) -> dict[str, Any]:
    """A gateway configuration as data: ``gateway`` holds the other keys of ``[gateway]`` (data_dir, ...)."""
    return {
        "gateway": {"id": gw_id, **gateway},
        "mqtt": dict(mqtt),
        "lora": dict(lora) if lora is not None else None,
        # An empty list is left out: TOML has no header for an array of no tables.
        "button": list(buttons) or None,
        "lora_button": list(lora_buttons) or None,
    }


def gateway_toml(gw_id: str, **kwargs: Any) -> str:
    """The text of a ``gateway.toml``; the arguments are :func:`gateway_document`'s."""
    return toml_text(gateway_document(gw_id, **kwargs))


def write_gateway_config(path: Path, gw_id: str, **kwargs: Any) -> Path:
    """Write :func:`gateway_toml` to ``path``; returns ``path``."""
    path.write_text(gateway_toml(gw_id, **kwargs), "utf-8")
    return path
