"""A webhook receiver for escalation notifications: for tests, and for technicians checking a set-up.

It listens on a real HTTP port, checks each POST's signature when it knows
the secret, records what arrived, and answers with the statuses it is told to
(``answers``: e.g. ``[500, 200]`` fails the first POST, then takes the rest),
so a test can watch the dashboard retry. ``siaga-sim webhook`` runs one and
prints each notification.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dashboard.alarms.notify import signature

#: A signature older than this is refused (a replayed POST).
MAX_AGE_S = 300


@dataclass(frozen=True)
class Received:
    path: str
    delivery: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int  # what the receiver answered
    signed: bool | None  # None when the receiver has no secret to check with


class WebhookReceiver:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        secret: bytes | None = None,
        answers: Iterable[int] = (),
        on_receive: Callable[[Received], None] | None = None,
    ) -> None:
        self.secret = secret
        self._answers = list(answers)
        self._on_receive = on_receive
        self.received: list[Received] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self, count: int, timeout: float = 15.0, *, delivered: bool = False) -> list[Received]:
        """Block until ``count`` POSTs arrived (``delivered``: answered 2xx); returns them."""

        def enough() -> bool:
            return len(self._matching(delivered)) >= count

        with self._changed:
            if not self._changed.wait_for(enough, timeout):
                raise TimeoutError(f"{len(self._matching(delivered))} of {count} notification(s) arrived")
            return self._matching(delivered)

    def _matching(self, delivered: bool) -> list[Received]:
        return [item for item in self.received if not delivered or 200 <= item.status < 300]

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(min(length, 1_000_000))
        signed = self._verify(request.headers, raw)
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        with self._changed:
            status = self._answers.pop(0) if self._answers else 200
            if signed is False or not isinstance(body, dict):
                status = 401 if signed is False else 400
            item = Received(
                request.path.strip("/"),
                request.headers.get("X-Siaga-Delivery", ""),
                dict(request.headers),
                body,
                status,
                signed,
            )
            self.received.append(item)
            self._changed.notify_all()
        request.send_response(status)
        request.send_header("Content-Length", "0")
        request.end_headers()
        if self._on_receive is not None:
            self._on_receive(item)

    def _verify(self, headers: Any, raw: bytes) -> bool | None:
        if self.secret is None:
            return None
        stamp = headers.get("X-Siaga-Timestamp", "")
        given = headers.get("X-Siaga-Signature", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > MAX_AGE_S:
            return False
        return hmac.compare_digest(given, signature(self.secret, stamp, raw))


def run(host: str, port: int, secret_file: str | None) -> int:
    """``siaga-sim webhook``: receive and print notifications until interrupted."""
    secret = None
    if secret_file:
        secret = open(secret_file, encoding="utf-8").read().strip().encode()

    def show(item: Received) -> None:
        checked = {True: "signature ok", False: "BAD SIGNATURE", None: "unsigned"}[item.signed]
        print(f"{item.status} /{item.path} delivery {item.delivery} ({checked})", flush=True)
        print(json.dumps(item.body, indent=2, ensure_ascii=False), flush=True)

    receiver = WebhookReceiver(host=host, port=port, secret=secret, on_receive=show).start()
    print(f"siaga-sim webhook: listening on {receiver.url}/<name>; Ctrl-C stops", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
    return 0
