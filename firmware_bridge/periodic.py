"""Background threads that outlive any one failure and say why they end.

Supervision, escalation, the outbox pump, the ingest writer, the webhook
senders and the systemd watchdog are such threads. A failing round (a busy
database, one odd row, a bug) is logged and counted, and the next round comes
as usual: the job that warns of silence must not fall silent itself. Only what
escapes as a non-``Exception`` (a ``SystemExit`` from a bug, say) ends the
thread; it is kept in ``failure`` for the health check.

:class:`Guard` is that policy for a thread that runs its own loop;
:class:`Periodic` is a thread that does one job every few seconds under it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class Round:
    """One round under :meth:`Guard.round`: ``failed`` is what it raised, if anything."""

    failed: Exception | None = None


class Guard:
    """Counts and logs the errors of one background thread and keeps what ended it.

    ``on_error`` (for example ``lambda: counters.add("pump_errors")``) is
    called for every failed round, besides the guard's own ``errors`` count.
    """

    def __init__(self, name: str, on_error: Callable[[], None] | None = None) -> None:
        self.name = name
        self._on_error = on_error
        self.failure: BaseException | None = None
        self.errors = 0
        self.last_error: str | None = None

    @contextmanager
    def lifetime(self) -> Iterator[None]:
        """Wraps the thread's whole body: whatever ends it is reported, never swallowed."""
        try:
            yield
        except BaseException as exc:
            self.failure = exc
            log.critical("%s stopped: %r", self.name, exc, exc_info=True)
            raise

    @contextmanager
    def round(
        self, what: str = "a round failed", *, absorb: tuple[type[Exception], ...] = (Exception,)
    ) -> Iterator[Round]:
        """Wraps one round: an error of the ``absorb`` types is counted, logged and absorbed
        (``Round.failed`` tells the caller); anything else ends the thread through :meth:`lifetime`."""
        outcome = Round()
        try:
            yield outcome
        except absorb as exc:  # the next round may well succeed: count, say, go on
            outcome.failed = exc
            self.errors += 1
            self.last_error = repr(exc)
            if self._on_error is not None:
                self._on_error()
            log.error("%s: %s: %r", self.name, what, exc, exc_info=True)


class Periodic:
    """Calls :meth:`turn` every ``interval`` seconds in a daemon thread named ``name``."""

    def __init__(self, name: str, interval: float) -> None:
        self.name = name
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.guard = Guard(name)

    @property
    def failure(self) -> BaseException | None:
        return self.guard.failure

    @property
    def errors(self) -> int:
        return self.guard.errors

    @property
    def last_error(self) -> str | None:
        return self.guard.last_error

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
            with self.guard.lifetime():
                self.setup()
                while not self._stop.is_set():
                    with self.guard.round():
                        self.turn()
                    self._stop.wait(self.interval)
        finally:
            self.teardown()
