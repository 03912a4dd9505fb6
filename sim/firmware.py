"""Load the reference node firmware (MicroPython code) into CPython, as the simulator runs it.

The firmware's modules import each other by their bare names, as they do on
a board's flash, so their folder goes on ``sys.path``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

FIRMWARE_DIR = Path(__file__).resolve().parent.parent / "firmware_bridge" / "firmware"
MODULES = ("siaga_proto", "siaga_radio", "siaga_node")


def load_firmware() -> SimpleNamespace:
    """The firmware's modules (``siaga_proto``, ``siaga_radio``, ``siaga_node``)."""
    folder = str(FIRMWARE_DIR)
    if folder not in sys.path:
        sys.path.append(folder)
    modules: dict[str, ModuleType] = {name: importlib.import_module(name) for name in MODULES}
    return SimpleNamespace(**modules)
