"""The one writer of gateway configuration files (``gateway.toml``) for the simulator, the benchmarks and the tests.

A configuration is built as plain data (tables are dicts, ``[[button]]`` and
``[[lora_button]]`` are lists of dicts) and written by :func:`toml_text`,
``firmware_bridge/tomlwrite.py``'s TOML emitter, which the dashboard's
enrolment writes gateway configurations with too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from firmware_bridge.tomlwrite import toml_text, toml_value

__all__ = [
    "fill_template",
    "gateway_document",
    "gateway_toml",
    "site",
    "toml_text",
    "toml_value",
    "write_gateway_config",
]

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
