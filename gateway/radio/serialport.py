"""A serial port that stays open: reopened whenever the device comes back.

In the style of pyserial's ``serial.threaded.ReaderThread``: a protocol object
gets ``connection_made(port)``, ``data_received(bytes)`` and
``connection_lost(exc)``; errors are handed to it, never swallowed. Unlike
ReaderThread it does not stop when the device goes away (a USB adapter pulled
out, a module reset): it reports the loss, waits, and opens the port again,
so the rest of the gateway keeps working meanwhile.

Ports are opened with ``serial.serial_for_url``: a device path, a pty, a
``/dev/serial/by-id/...`` link, ``loop://`` or ``spy://`` all work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import serial

from firmware_bridge.counters import Counters
from firmware_bridge.periodic import Guard

log = logging.getLogger(__name__)


class SerialProtocol(Protocol):
    def connection_made(self, port: SerialLink) -> None: ...

    def data_received(self, data: bytes) -> None: ...

    def connection_lost(self, exc: BaseException | None) -> None: ...


class SerialLink:
    def __init__(
        self,
        url: str,
        protocol: SerialProtocol,
        *,
        baudrate: int,
        counters: Counters,
        reopen_s: float = 2.0,
        name: str = "serial",
        opener: Callable[..., serial.SerialBase] = serial.serial_for_url,
    ) -> None:
        self.url = url
        self.protocol = protocol
        self.baudrate = baudrate
        self.reopen_s = reopen_s
        self.name = name
        self._counters = counters
        self._opener = opener
        self._port: serial.SerialBase | None = None
        self._write_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"siaga-{name}", daemon=True)
        self.connected = threading.Event()
        #: "open" or "missing", and since when (Unix time)
        self.state = "missing"
        self.since = time.time()
        self.last_error: str | None = None
        self.last_loop = time.monotonic()
        self._guard = Guard(name)

    def start(self) -> SerialLink:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        port = self._port
        if port is not None:
            try:
                port.cancel_read()
            except (AttributeError, OSError, serial.SerialException):
                pass
        self._thread.join(timeout)

    def write(self, data: bytes) -> bool:
        """Write to the port if it is open; False (and counted) if it is not."""
        with self._write_lock:
            port = self._port
            if port is None:
                self._counters.add(f"{self.name}_write_while_missing")
                return False
            try:
                port.write(data)
                return True
            except (OSError, serial.SerialException) as exc:
                self._counters.add(f"{self.name}_write_errors")
                log.warning("%s: write to %s failed: %s", self.name, self.url, exc)
                return False

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def failure(self) -> BaseException | None:
        """What ended the reader thread, if anything did (a protocol's bug does not)."""
        return self._guard.failure

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state, self.since = state, time.time()

    def _run(self) -> None:
        with self._guard.lifetime():
            announced_missing = False
            while not self._stopping.is_set():
                port = self._open(announced_missing)
                announced_missing = port is None
                if port is not None:
                    self._serve(port)
                self._stopping.wait(self.reopen_s)
                self.last_loop = time.monotonic()

    def _open(self, announced_missing: bool) -> serial.SerialBase | None:
        """The port, or None (counted and logged once per absence) while it cannot be opened."""
        try:
            return self._opener(self.url, baudrate=self.baudrate, timeout=0.5)
        except (OSError, ValueError, serial.SerialException) as exc:
            self.last_error = str(exc)
            if not announced_missing:
                self._counters.add(f"{self.name}_missing")
                log.error("%s: cannot open %s (%s); retrying every %.1f s", self.name, self.url, exc, self.reopen_s)
            return None

    def _serve(self, port: serial.SerialBase) -> None:
        with self._write_lock:
            self._port = port
        self._set_state("open")
        self.connected.set()
        self._counters.add(f"{self.name}_opened")
        log.info("%s: %s open", self.name, self.url)
        try:
            error = self._read(port)
        finally:
            with self._write_lock:
                self._port = None
            self.connected.clear()
            try:
                port.close()
            except (OSError, serial.SerialException):
                pass
        if self._stopping.is_set() and error is None:
            return
        self._set_state("missing")
        self.last_error = str(error) if error else "closed"
        self._counters.add(f"{self.name}_lost")
        log.error("%s: lost %s (%s); reopening", self.name, self.url, self.last_error)
        with self._guard.round("connection_lost failed"):  # the protocol's own cleanup must not end the link
            self.protocol.connection_lost(error)

    def _read(self, port: serial.SerialBase) -> BaseException | None:
        """Hand what the port reads to the protocol until we stop; what ended it early, if anything."""
        # A protocol bug must not end the link either: it is reported, and the port reopened.
        with self._guard.round(f"error while handling data from {self.url}") as handling:
            try:
                self.protocol.connection_made(self)
                while not self._stopping.is_set():
                    data = port.read(port.in_waiting or 1)
                    self.last_loop = time.monotonic()
                    if data:
                        self.protocol.data_received(data)
            except (OSError, serial.SerialException) as exc:
                return exc  # unplugged, reset, or gone: reported, then reopened
        return handling.failed
