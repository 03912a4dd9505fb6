"""Validated reading of TOML configuration, shared by the gateway and the dashboard.

Configuration is parsed once at the entry point; every mistake becomes a
:class:`ConfigError` whose message names the file and the key, e.g.
``gateway.toml: key 'button[2].kind': must be one of fire, sapa (got 'smoke')``.
Unknown keys are errors too, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import ConfigError

_MISSING: Any = object()


def parse_toml(text: str, file: str) -> Section:
    """Parse TOML text; the result is the root :class:`Section`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}", file=file) from None
    return Section(data, file=file)


def read_toml(path: str | Path) -> Section:
    """Read and parse a TOML file (the only I/O in this module; call it at entry points)."""
    file = str(path)
    try:
        text = Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: configuration file not found", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read configuration: {exc}", file=file) from None
    return parse_toml(text, file)


class Section:
    """One table of a TOML document, with typed accessors that name the key on error."""

    def __init__(self, data: dict[str, Any], *, file: str, path: str = "") -> None:
        self.data = data
        self.file = file
        self.path = path
        self._used: set[str] = set()

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> ConfigError:
        full = self.key_path(key) if key else self.path
        where = f"key '{full}'" if full else "top level"
        return ConfigError(f"{self.file}: {where}: {message}", file=self.file, key=full)

    def has(self, key: str) -> bool:
        return key in self.data

    def _get(self, key: str, default: Any) -> Any:
        self._used.add(key)
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise self.error(key, "missing (this key is required)")
        return default

    def str(
        self,
        key: str,
        default: Any = _MISSING,
        *,
        pattern: str | None = None,
        choices: Iterable[str] | None = None,
        nonempty: bool = True,
    ) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str):
            raise self.error(key, f"must be a string (got {value!r})")
        if nonempty and not value.strip():
            raise self.error(key, "must not be empty")
        if choices is not None:
            allowed = list(choices)
            if value not in allowed:
                raise self.error(key, f"must be one of {', '.join(allowed)} (got {value!r})")
        if pattern is not None and not re.match(pattern, value):
            raise self.error(key, f"{value!r} does not match {pattern}")
        return value

    def int(self, key: str, default: Any = _MISSING, *, min: int | None = None, max: int | None = None) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer (got {value!r})")
        self._check_range(key, value, min, max)
        return value

    def float(self, key: str, default: Any = _MISSING, *, min: float | None = None, max: float | None = None) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(key, f"must be a finite number (got {value!r})")
        self._check_range(key, value, min, max)
        return float(value)

    def bool(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false (got {value!r})")
        return value

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        return self._get(key, default)

    def section(self, key: str, *, required: bool = False) -> Section:
        value = self._get(key, _MISSING if required else {})
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table [{self.key_path(key)}]")
        return Section(value, file=self.file, path=self.key_path(key))

    def sections(self, key: str, *, required: bool = False) -> list[Section]:
        value = self._get(key, _MISSING if required else [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.error(key, f"must be an array of tables [[{self.key_path(key)}]]")
        if required and not value:
            raise self.error(key, "needs at least one entry")
        return [
            Section(item, file=self.file, path=f"{self.key_path(key)}[{index}]")
            for index, item in enumerate(value, start=1)
        ]

    def done(self) -> None:
        """Raise for any key that no accessor asked for (a typo, or an option that does not exist)."""
        unknown = sorted(set(self.data) - self._used)
        if unknown:
            raise self.error(unknown[0], "unknown key (check the spelling; see docs/configuration.md)")

    def _check_range(self, key: str, value: float, low: float | None, high: float | None) -> None:
        if low is not None and value < low:
            raise self.error(key, f"must be at least {low} (got {value!r})")
        if high is not None and value > high:
            raise self.error(key, f"must be at most {high} (got {value!r})")
