"""A board that reads slowly gets every message in order; one that stops reading is ended, and costs no one else.

The event loop writes each board's messages on the spot while its socket
takes them (``dashboard/asgi.py``, ``BoardWriter``). These tests open real
streams on a real dashboard (uvicorn) with raw sockets, so that one of them
can stop reading, and publish numbered messages far larger than the kernel's
socket buffers through the dashboard's own hub.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.ingest.hub import Hub, LiveMessage
from firmware_bridge.broker import BrokerSettings
from firmware_bridge.counters import Counters
from sim.servers import DashboardServer, dashboard_config

from .conftest import OPERATOR, signed_in
from .waiting import poll_until

#: Each message is padded to this size: a few thousand of them are far more than any socket buffers.
MESSAGE_BYTES = 8192
#: The dashboard's hub keeps at most this many messages waiting for one board (its default).
BACKLOG = 2000
ANSWER_S = 30.0
_SEQ = re.compile(rb'"seq":(\d+)')


@pytest.fixture
def server(tmp_path: Path, broker_settings: BrokerSettings) -> Iterator[DashboardServer]:
    server = DashboardServer(dashboard_config(tmp_path / "dashboard", broker_settings)).start()
    server.create_user(*OPERATOR, "fire_operator")
    yield server
    server.stop()


class RawBoard:
    """A board's stream on a plain socket, so that a test decides when (and whether) it reads."""

    def __init__(self, server: DashboardServer, cookie: str, *, receive_buffer: int | None = None) -> None:
        self.sock = socket.socket()
        if receive_buffer is not None:  # a small window: the dashboard's side fills up sooner
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(ANSWER_S)
        self.sock.connect((server.config["SIAGA_HOST"], server.config["SIAGA_PORT"]))
        request = f"GET /api/stream HTTP/1.1\r\nHost: siaga\r\nAccept: text/event-stream\r\nCookie: {cookie}\r\n\r\n"
        self.sock.sendall(request.encode())
        self.received = bytearray()
        self.ended = False
        self.read_until(b"event: snapshot")

    def read_until(self, marker: bytes) -> None:
        """Reads until ``marker`` has arrived (or the server closes the stream)."""
        while marker not in self.received[-(len(marker) + 65536) :]:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                self.ended = True
                return
            self.received += chunk
            if self.received.endswith(b"0\r\n\r\n"):  # the server's last chunk: it ended the stream
                self.ended = True
                return

    def numbers(self) -> list[int]:
        return [int(n) for n in _SEQ.findall(self.received)]

    def close(self) -> None:
        self.sock.close()


def publish_numbered(hub: Hub, count: int) -> None:
    padding = "x" * MESSAGE_BYTES
    for seq in range(count):
        hub.publish(LiveMessage("alarm", {"seq": seq, "pad": padding}, kind="fire"))


def last_marker(count: int) -> bytes:
    return f'"seq":{count - 1},'.encode()


def _parts(server: DashboardServer) -> tuple[Hub, Counters]:
    state = server.app.extensions["siaga"]
    return state.hub, state.counters


def test_a_board_that_stops_reading_is_ended_and_the_others_get_every_message_in_order(
    server: DashboardServer,
) -> None:
    cookie = signed_in(server, OPERATOR).cookie_header()
    hub, counters = _parts(server)
    reading, stalled = RawBoard(server, cookie), RawBoard(server, cookie, receive_buffer=4096)
    count = 3 * BACKLOG  # 48 MB: beyond any socket buffers plus the backlog a board may hold
    try:
        assert hub.subscribers == 2
        publisher = threading.Thread(target=publish_numbered, args=(hub, count))
        publisher.start()
        reading.read_until(last_marker(count))
        publisher.join(ANSWER_S)
        assert reading.numbers() == list(range(count))  # all of them, in order, none twice
        assert not reading.ended
        poll_until(lambda: hub.subscribers, lambda n: n == 1, timeout=ANSWER_S, what="the stalled board let go")
        assert counters.get("streams_behind") == 1
        stalled.read_until(b"0\r\n\r\n")  # and told so: its stream ends, and its browser resyncs
        assert stalled.ended
        assert stalled.numbers() == list(range(len(stalled.numbers())))  # what it did get came in order
    finally:
        reading.close()
        stalled.close()


def test_a_board_that_pauses_then_reads_on_gets_every_message_in_order(server: DashboardServer) -> None:
    cookie = signed_in(server, OPERATOR).cookie_header()
    hub, counters = _parts(server)
    paused = RawBoard(server, cookie, receive_buffer=4096)
    count = BACKLOG * 3 // 4  # 12 MB: more than the socket buffers take, less than the backlog allowed
    try:
        publish_numbered(hub, count)
        poll_until(lambda: counters.get("stream_writes_waited"), timeout=ANSWER_S, what="a write that waited")
        paused.read_until(last_marker(count))
        assert paused.numbers() == list(range(count))
        assert not paused.ended
        assert counters.get("streams_behind") == 0
        assert hub.subscribers == 1
    finally:
        paused.close()
