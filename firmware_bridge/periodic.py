"""A background thread that does one job every few seconds and outlives any one failure.

Supervision, escalation and the systemd watchdog are such jobs. A failing
round (a busy database, one odd row) is logged and counted, and the next
round comes as usual: the job that warns of silence must not fall silent
itself. Only what escapes as a non-``Exception`` (a ``SystemExit`` from a
bug, say) ends the thread; it is kept in ``failure`` for the health check.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class Periodic:
    """Calls :meth:`turn` every ``interval`` seconds in a daemon thread named ``name``."""

    def __init__(self, name: str, interval: float) -> None:
        self.name = name
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.failure: BaseException | None = None
        self.errors = 0
        self.last_error: str | None = None

    def turn(self) -> None:
        raise NotImplementedError

    def setup(self) -> None:
        """Runs in the thread before the first turn (e.g. opens its own database connection)."""

    def teardown(self) -> None:
        """Runs in the thread after the last turn."""

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        try:
            self.setup()
            while not self._stop.is_set():
                try:
                    self.turn()
                except Exception as exc:  # the next round may well succeed: count, say, go on
                    self.errors += 1
                    self.last_error = repr(exc)
                    log.error("%s: a round failed: %r", self.name, exc, exc_info=True)
                self._stop.wait(self.interval)
        except BaseException as exc:
            self.failure = exc
            log.critical("%s stopped: %r", self.name, exc, exc_info=True)
            raise
        finally:
            self.teardown()
