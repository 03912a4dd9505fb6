"""systemd integration: readiness and the watchdog (``Type=notify``, ``WatchdogSec=``).

The watchdog is told the gateway is alive only while every loop that a press
depends on is turning: the outbox pump, paho's network thread, the health
loop and, with a LoRa module, its serial reader. A gateway with one loop hung
stops pinging, and systemd kills and restarts it; the outbox keeps what was
pressed meanwhile.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

from firmware_bridge.periodic import Periodic

log = logging.getLogger(__name__)


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send an sd_notify message if systemd asked for them; True if it was sent."""
    address = (environ if environ is not None else os.environ).get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(message.encode(), address)
        except OSError as exc:
            log.warning("sd_notify failed: %s", exc)
            return False
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``), or None if systemd set no watchdog for us."""
    environ = environ if environ is not None else os.environ
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.error("WATCHDOG_USEC=%r is not a number; no watchdog", usec)
        return None
    return value / 2e6 if value > 0 else None


class Watchdog(Periodic):
    """Pings systemd every ``interval`` while ``check()`` finds nothing wrong."""

    def __init__(
        self, check: Callable[[], str | None], interval: float, environ: Mapping[str, str] | None = None
    ) -> None:
        super().__init__("siaga-watchdog", interval)
        self._check = check
        self._environ = environ
        #: Why the last ping was withheld (None while healthy).
        self.trouble: str | None = None
        self.pings = 0

    def turn(self) -> None:
        try:
            trouble = self._check()
        except Exception as exc:  # noqa: BLE001 - a failing check is itself a reason not to ping
            trouble = f"health check failed: {exc!r}"
        previous, self.trouble = self.trouble, trouble  # set before pinging: a ping means healthy
        if trouble is None:
            if previous is not None:
                log.warning("watchdog: healthy again")
            if notify("WATCHDOG=1", self._environ):
                self.pings += 1
        elif trouble != previous:
            log.critical("watchdog: not pinging systemd (%s); it will restart the gateway", trouble)


def stale(last: float, limit: float, now: float | None = None) -> bool:
    return (time.monotonic() if now is None else now) - last > limit
