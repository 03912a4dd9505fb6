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
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn
from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi import Body, build_environ
from flask import Flask

from . import live
from .board.api import ASYNC_STREAM, STREAM_PATH, LiveStream, StreamOffer
from .ingest.hub import LoopBridge

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
        writing = loop.create_task(self._pump(stream, send))
        gone = loop.create_task(_disconnected(receive))
        try:
            await asyncio.wait({writing, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stream.subscription.close()
            client_gone = gone.done()
            writing.cancel()
            gone.cancel()
        if not client_gone:  # the server ended it: say so, and the browser reconnects
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, stream: LiveStream, send: Send) -> None:
        loop = asyncio.get_running_loop()

        async def write(chunk: bytes) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

        await write(b"retry: 1000\n\n")
        await write(stream.snapshot.sse())
        while True:
            try:
                message = await stream.subscription.next(stream.keepalive_s)
            except EOFError:  # ended by the server, replaced, or too slow: the board reconnects
                return
            if message is not None:
                await write(message.sse())
            elif await loop.run_in_executor(self.checks, stream.still_signed_in):
                await write(b": keepalive\n\n")
            else:  # a signed-out or disabled account stops receiving
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
        )
        super().__init__(config)

    async def shutdown(self, sockets: Any = None) -> None:
        self.asgi.flask.extensions[live.EXTENSION].hub.close()
        await super().shutdown(sockets)
