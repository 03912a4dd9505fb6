"""A small Server-Sent Events client for the board's live stream (tests, benchmarks, tools).

A reader thread parses events as they arrive and stamps each with
``time.perf_counter()`` the moment its blank line is read, so benchmarks
measure arrival, not when the test got around to looking.
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class SSEEvent:
    event: str
    data: str
    arrived: float

    def json(self) -> Any:
        return json.loads(self.data)


class SSEClient:
    def __init__(
        self, url: str, *, headers: dict[str, str] | None = None, timeout: float = 10.0, idle_timeout: float = 60.0
    ) -> None:
        parts = urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self._conn.connect()
        self._conn.sock.settimeout(idle_timeout)  # the server sends a keepalive every 15 s
        self._sock = self._conn.sock
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._conn.request("GET", path, headers={"Accept": "text/event-stream", **(headers or {})})
        self.response = self._conn.getresponse()
        if self.response.status != 200:
            body = self.response.read(500)
            self._conn.close()
            raise ConnectionError(f"stream {url} answered {self.response.status}: {body!r}")
        self.events: queue.Queue[SSEEvent | None] = queue.Queue()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, name="sse-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        event, data = "message", []
        try:
            while True:
                raw = self.response.readline()
                if not raw:
                    break
                line = raw.decode("utf-8").rstrip("\r\n")
                if not line:
                    if data:
                        self.events.put(SSEEvent(event, "\n".join(data), time.perf_counter()))
                    event, data = "message", []
                elif line.startswith(":"):
                    continue
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "event":
                        event = value
                    elif name == "data":
                        data.append(value)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            self.error = exc
        finally:
            self.events.put(None)

    def next(self, timeout: float) -> SSEEvent | None:
        """The next event, or None at the end of the stream; raises TimeoutError."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no stream event within {timeout} s") from None

    def wait_for(self, predicate: Callable[[SSEEvent], bool], timeout: float) -> SSEEvent:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching stream event within {timeout} s")
            event = self.next(remaining)
            if event is None:
                raise EOFError(f"stream ended ({self.error!r})")
            if predicate(event):
                return event

    def close(self) -> None:
        try:
            self._sock.shutdown(2)  # unblocks the reader
        except OSError:
            pass
        self._thread.join(5)  # before closing: the reader must not find its response closed under it
        self._conn.close()

    def __enter__(self) -> SSEClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
