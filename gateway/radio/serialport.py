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

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state, self.since = state, time.time()

    def _run(self) -> None:
        announced_missing = False
        while not self._stopping.is_set():
            try:
                port = self._opener(self.url, baudrate=self.baudrate, timeout=0.5)
            except (OSError, ValueError, serial.SerialException) as exc:
                self.last_error = str(exc)
                if not announced_missing:
                    self._counters.add(f"{self.name}_missing")
                    log.error("%s: cannot open %s (%s); retrying every %.1f s", self.name, self.url, exc, self.reopen_s)
                    announced_missing = True
                self._stopping.wait(self.reopen_s)
                self.last_loop = time.monotonic()
                continue
            announced_missing = False
            self._serve(port)
            if not self._stopping.is_set():
                self._stopping.wait(self.reopen_s)

    def _serve(self, port: serial.SerialBase) -> None:
        with self._write_lock:
            self._port = port
        self._set_state("open")
        self.connected.set()
        self._counters.add(f"{self.name}_opened")
        log.info("%s: %s open", self.name, self.url)
        error: BaseException | None = None
        try:
            self.protocol.connection_made(self)
            while not self._stopping.is_set():
                data = port.read(port.in_waiting or 1)
                self.last_loop = time.monotonic()
                if data:
                    self.protocol.data_received(data)
        except (OSError, serial.SerialException) as exc:
            error = exc  # unplugged, reset, or gone: reported, then reopened
        except Exception as exc:  # a protocol bug must not end the link; report it and start over
            error = exc
            log.exception("%s: error while handling data from %s", self.name, self.url)
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
        try:
            self.protocol.connection_lost(error)
        except Exception:  # the protocol's own cleanup must not end the link either
            log.exception("%s: connection_lost failed", self.name)
