"""The gateway machine's own figures for its health report: disk, CPU temperature and load, read tolerantly."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from firmware_bridge.payloads import SystemHealth

#: Where Linux (and so Raspberry Pi OS) reports the SoC's temperature, in millidegrees Celsius.
THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


def read_system(data_path: str | Path, thermal_zone: Path = THERMAL_ZONE) -> SystemHealth:
    """The figures of the disk holding ``data_path`` and of the machine; a figure that cannot be read is None.

    A health report must go out even when the disk or ``/sys`` misbehaves, so no error here is raised.
    """
    disk_free_mb = disk_used_pct = None
    try:
        usage = shutil.disk_usage(_existing(Path(data_path)))
        disk_free_mb = round(usage.free / 2**20, 1)
        disk_used_pct = round(100 * usage.used / usage.total, 1) if usage.total else None
    except OSError:
        pass
    return SystemHealth(disk_free_mb, disk_used_pct, cpu_temperature(thermal_zone), _load_1m())


def cpu_temperature(thermal_zone: Path = THERMAL_ZONE) -> float | None:
    try:
        return round(int(thermal_zone.read_text().strip()) / 1000, 1)
    except (OSError, ValueError):
        return None


def _load_1m() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (an outbox not made yet still has a disk)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
