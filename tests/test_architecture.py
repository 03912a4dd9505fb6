"""The map matches the house: every module says its purpose, the architecture names it, and the packages keep apart."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("firmware_bridge", "gateway", "dashboard", "sim")
FIRMWARE = ROOT / "firmware_bridge" / "firmware"  # MicroPython: a leading comment, not a docstring


def python_modules(package: str) -> list[Path]:
    return sorted(path for path in (ROOT / package).rglob("*.py") if FIRMWARE not in path.parents)


def purpose(path: Path) -> str:
    docstring = ast.get_docstring(ast.parse(path.read_text("utf-8")))
    return (docstring or "").strip().splitlines()[0] if docstring else ""


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_starts_with_its_purpose(package: str) -> None:
    modules = python_modules(package)
    assert modules, f"no modules found under {package}/"
    silent = [str(path.relative_to(ROOT)) for path in modules if len(purpose(path)) < 10]
    assert silent == [], "modules without a one-line docstring saying what they are for"


def test_every_firmware_file_starts_with_its_purpose() -> None:
    files = sorted(FIRMWARE.glob("*.py"))
    assert files
    silent = [path.name for path in files if not re.match(r"# \S.{9,}", path.read_text("utf-8"))]
    assert silent == []


@pytest.mark.parametrize("package", ("dashboard", "gateway", "firmware_bridge"))
def test_the_architecture_names_every_module(package: str) -> None:
    """A reader finds the room for any change from docs/ARCHITECTURE.md in one step."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text("utf-8")
    unnamed = [
        str(path.relative_to(ROOT))
        for path in python_modules(package)
        if path.name not in ("__init__.py", "__main__.py") and str(path.relative_to(ROOT)) not in text
    ]
    assert unnamed == []


def imported_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("firmware_bridge", {"gateway", "dashboard", "sim"}),
        ("gateway", {"dashboard", "sim"}),
        ("dashboard", {"gateway", "sim"}),
    ],
)
def test_gateway_and_dashboard_meet_only_on_the_broker(package: str, forbidden: set[str]) -> None:
    crossing = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & forbidden) for path in python_modules(package)
    }
    assert {module: names for module, names in crossing.items() if names} == {}
