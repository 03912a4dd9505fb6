"""The dashboard as one ASGI application: Flask in a thread pool, the boards' live streams in the event loop.

An open board costs a socket and a small queue, not a request thread: with
thread-per-request serving, eight wall displays per account held every
worker and an operator could not acknowledge. Every request still goes
through the whole Flask application (sessions, roles, CSRF, audit, error
pages, security headers, ``ProxyFix``) in a worker thread. For the live
stream the view answers with headers only and hands its subscription back
(:data:`dashboard.board.api.ASYNC_STREAM`); this module then writes the
stream's body from the event loop, for as long as the board stays.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn
from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi import Body, build_environ
from flask import Flask

from firmware_bridge.counters import Counters

from . import live
from .board.api import ASYNC_STREAM, STREAM_PATH, LiveStream, StreamOffer
from .ingest.hub import CLOSED, LiveMessage, LoopBridge

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class SiagaASGI:
    """``app`` served over ASGI: requests in ``threads`` worker threads, live streams in the loop."""

    def __init__(self, app: Flask, *, threads: int) -> None:
        self.flask = app
        self.wsgi = WSGIMiddleware(app, workers=threads)  # type: ignore[arg-type]
        #: Re-checks that a stream's account is still signed in, apart from the request workers.
        self.checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="siaga-stream-check")
        self._bridge: LoopBridge | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == STREAM_PATH and scope["method"] == "GET":
            await self._stream(scope, receive, send)
        else:
            await self.wsgi(scope, receive, send)  # type: ignore[arg-type]

    def close(self) -> None:
        self.checks.shutdown(wait=False, cancel_futures=True)
        self.wsgi.executor.shutdown(wait=False, cancel_futures=True)

    def _bridge_for(self, loop: asyncio.AbstractEventLoop) -> LoopBridge:
        if self._bridge is None or self._bridge.loop is not loop:
            self._bridge = LoopBridge(loop)
        return self._bridge

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        offer = StreamOffer(self._bridge_for(loop))
        environ = build_environ(scope, Body(loop, receive))  # type: ignore[arg-type]
        environ[ASYNC_STREAM] = offer
        status, headers, body = await loop.run_in_executor(self.wsgi.executor, self._run_view, environ)
        if offer.stream is None:  # not signed in, not allowed, an error page: an ordinary answer
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        headers = [(name, value) for name, value in headers if name != b"content-length"]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await self._write_stream(offer.stream, receive, send)

    def _run_view(self, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The whole WSGI application, in a worker thread: status, headers and the (short) body."""
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
            answer["status"] = int(status.split(" ", 1)[0])
            answer["headers"] = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]

        chunks = self.flask(environ, start_response)
        try:
            body = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        return answer["status"], answer["headers"], body

    async def _write_stream(self, stream: LiveStream, receive: Receive, send: Send) -> None:
        """Write until the board goes, the server ends the stream, or its account is signed out."""
        loop = asyncio.get_running_loop()
        counters = self.flask.extensions[live.EXTENSION].counters
        writer = BoardWriter(send, loop, backlog=stream.subscription.maxsize, counters=counters)
        gone = loop.create_task(_disconnected(receive))
        try:
            await send(_chunk(b"retry: 1000\n\n" + stream.snapshot.sse()))
            stream.subscription.attach(writer)
            if stream.subscription.overflowed:  # it fell behind while its snapshot was being written
                counters.add("streams_behind")
            writer.keep_alive(stream.keepalive_s, stream.still_signed_in, self.checks)
            await asyncio.wait({writer.ended, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stream.subscription.close()
            client_gone = gone.done()
            writer.stop()
            gone.cancel()
        if not client_gone:  # the server ended it: say so, and the browser reconnects
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def _chunk(data: bytes) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": True}


class BoardWriter:
    """Writes one board's stream from the event loop: at once while its socket takes the bytes.

    A broadcast to a thousand boards used to wake a task per board (a queue
    read, a timer, a ``send``), about 25 µs each, all of it while requests
    waited. Now each board's ``send`` is run on the spot, as Python 3.12's
    eager tasks would run it: it completes without suspending unless the
    board's socket buffer is full. Only then does the rest of that write
    become a task, and the board's next messages wait behind it in order, at
    most ``backlog`` of them; a board further behind is ended and resyncs.
    """

    def __init__(self, send: Send, loop: asyncio.AbstractEventLoop, *, backlog: int, counters: Counters) -> None:
        self._send = send
        self._counters = counters
        self._loop = loop
        self._backlog = backlog
        self._waiting: deque[bytes] = deque()
        self._draining: asyncio.Task[None] | None = None
        self._closing = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_write = loop.time()
        #: Done when the stream is over: ended by the server, behind, signed out, or its connection gone.
        self.ended: asyncio.Future[None] = loop.create_future()

    def offer(self, message: LiveMessage) -> None:
        """A message for this board, in the loop's thread (``AsyncSubscription.deliver``)."""
        if self.ended.done():
            return
        if message is CLOSED:
            self._closing = True
            if self._draining is None:
                self._end()
            return
        self._write(message.sse())

    def _write(self, data: bytes) -> None:
        if self._draining is not None:
            if len(self._waiting) >= self._backlog:
                log.info("a board fell %d messages behind; it resyncs", len(self._waiting))
                self._counters.add("streams_behind")
                self._end()
            else:
                self._waiting.append(data)
            return
        self._last_write = self._loop.time()
        sending = self._send(_chunk(data))
        try:
            awaited = sending.send(None)  # type: ignore[attr-defined]
        except StopIteration:
            return  # written: the usual case
        except Exception:  # the connection broke under the write: the board reconnects
            log.debug("a board's write failed", exc_info=True)
            self._end()
            return
        self._counters.add("stream_writes_waited")
        self._draining = self._loop.create_task(self._drain(sending, awaited))

    async def _drain(self, sending: Any, awaited: Any) -> None:
        """The write that had to wait for the board's socket, then those queued behind it."""
        try:
            await _carry_on(sending, awaited)
            while self._waiting:
                self._last_write = self._loop.time()
                await self._send(_chunk(self._waiting.popleft()))
        except Exception:  # as in _write
            log.debug("a board's write failed", exc_info=True)
            self._end()
            return
        self._draining = None
        if self._closing:
            self._end()

    def keep_alive(self, every_s: float, still_signed_in: Callable[[], bool], checks: ThreadPoolExecutor) -> None:
        """After ``every_s`` without a message: if the account is still signed in a comment, else the end."""

        def due() -> None:
            idle = self._loop.time() - self._last_write
            if self.ended.done():
                return
            if idle < every_s:
                self._timer = self._loop.call_later(every_s - idle, due)
                return
            self._loop.run_in_executor(checks, still_signed_in).add_done_callback(checked)

        def checked(answer: asyncio.Future[bool]) -> None:
            if self.ended.done() or answer.cancelled():
                return
            if answer.exception() is not None or not answer.result():
                self._end()  # signed out, disabled, or not known to be signed in: it stops receiving
                return
            self._write(b": keepalive\n\n")
            self._timer = self._loop.call_later(every_s, due)

        self._timer = self._loop.call_later(every_s, due)

    def _end(self) -> None:
        if not self.ended.done():
            self.ended.set_result(None)

    def stop(self) -> None:
        self._end()
        if self._timer is not None:
            self._timer.cancel()
        if self._draining is not None:
            self._draining.cancel()


async def _carry_on(coroutine: Any, awaited: Any) -> None:
    """Finishes a coroutine that was started by hand and suspended on ``awaited``, as its task would have."""
    while True:
        try:
            if awaited is None:  # a bare yield: give the loop one turn
                await asyncio.sleep(0)
            else:
                # Taken over from the first yield, as a task takes it (else it reads as awaited twice).
                awaited._asyncio_future_blocking = False
                await awaited
        except BaseException as exc:  # noqa: BLE001 - cancelled or failed: the coroutine hears it where it waits
            try:
                awaited = coroutine.throw(exc)
            except StopIteration:
                return
            continue
        try:
            awaited = coroutine.send(None)
        except StopIteration:
            return


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone (the board was closed, the network cut)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class Server(uvicorn.Server):
    """The dashboard's HTTP server (uvicorn): it ends the live streams first when it stops.

    Open streams would otherwise hold the graceful shutdown for its whole
    timeout; ended, each board reconnects to whichever dashboard comes back.
    Proxy headers are left to ``ProxyFix`` (``trusted_proxies``), the one
    place that decides whose ``X-Forwarded-For`` is believed.
    """

    def __init__(self, app: Flask, *, host: str, port: int, threads: int) -> None:
        self.asgi = SiagaASGI(app, threads=threads)
        # [dashboard] tls_cert_file/tls_key_file: uvicorn's own TLS, so a small site needs no reverse proxy.
        tls = {
            "ssl_certfile": app.config.get("SIAGA_TLS_CERT_FILE"),
            "ssl_keyfile": app.config.get("SIAGA_TLS_KEY_FILE"),
        }
        config = uvicorn.Config(
            self.asgi,
            host=host,
            port=port,
            lifespan="off",
            proxy_headers=False,
            server_header=False,
            access_log=False,
            log_config=None,
            ws="none",
            timeout_graceful_shutdown=5,
            **tls,
        )
        super().__init__(config)

    async def shutdown(self, sockets: Any = None) -> None:
        self.asgi.flask.extensions[live.EXTENSION].hub.close()
        await super().shutdown(sockets)
