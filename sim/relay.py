"""A TCP relay between a client and a server that a test can hold, release and cut.

Real sockets on loopback, used to put a real MQTT client and a real broker in
the awkward moments a field link produces: bytes that reach neither end (a
link that dies with data in flight), a connection whose handshake answer is
late, a connection cut under both ends.

``hold("up")`` keeps what the client sends, ``hold("down")`` what the server
sends; ``release`` forwards what was kept, in order; ``cut`` closes every
connection and drops whatever was kept; ``refuse(True)`` closes every new
connection at once (a network that is down), until ``refuse(False)``.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

UP, DOWN = "up", "down"


@dataclass
class _Pair:
    client: socket.socket
    server: socket.socket
    kept: dict[str, bytearray] = field(default_factory=lambda: {UP: bytearray(), DOWN: bytearray()})

    def close(self) -> None:
        for sock in (self.client, self.server):
            try:
                sock.close()
            except OSError:
                pass


class TcpRelay:
    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server((host, 0))
        self.host, self.port = self._listener.getsockname()[:2]
        self._lock = threading.Condition()
        self._held = {UP: False, DOWN: False}
        self._pairs: list[_Pair] = []
        self.connections = 0
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._closed = False
        self._refusing = False
        self.refused = 0
        self._thread = threading.Thread(target=self._run, name="tcp-relay", daemon=True)
        #: The exception that stopped the relay, if any.
        self.failure: BaseException | None = None

    def start(self) -> TcpRelay:
        self._thread.start()
        return self

    # -- controls -----------------------------------------------------------

    def hold(self, direction: str) -> None:
        with self._lock:
            self._held[direction] = True

    def release(self, direction: str) -> None:
        with self._lock:
            self._held[direction] = False
        self._wake()

    def refuse(self, refusing: bool) -> None:
        """While refusing, connections are closed as soon as they are accepted."""
        with self._lock:
            self._refusing = refusing

    def cut(self) -> None:
        """Close every connection; whatever was held is lost, as on a dead link."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            self._unregister(pair)
            pair.close()

    def wait_refused(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` connections were refused in all (a client that keeps trying)."""
        with self._lock:
            return self._lock.wait_for(lambda: self.refused >= count, timeout)

    def wait_connections(self, count: int, timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self.connections >= count, timeout)

    def wait_kept(self, direction: str, size: int, timeout: float) -> bool:
        """Wait until at least ``size`` held bytes wait in ``direction`` (on the newest connection)."""
        with self._lock:
            return self._lock.wait_for(
                lambda: bool(self._pairs) and len(self._pairs[-1].kept[direction]) >= size, timeout
            )

    def close(self) -> None:
        self._closed = True
        self._wake()
        self._thread.join(5)
        self.cut()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def __enter__(self) -> TcpRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the relay thread -------------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass

    def _unregister(self, pair: _Pair) -> None:
        for sock in (pair.client, pair.server):
            try:
                self._selector.unregister(sock)
            except (KeyError, ValueError, OSError):
                pass

    def _run(self) -> None:
        try:
            while not self._closed:
                for key, _ in self._selector.select(timeout=0.5):
                    if key.data == "wake":
                        self._wake_r.recv(4096)
                    elif key.fileobj is self._listener:
                        self._accept()
                    else:
                        pair, direction = key.data
                        self._read(pair, direction)
                self._flush_released()
        except BaseException as exc:  # report, never vanish silently
            self.failure = exc
            log.exception("TCP relay stopped")
            raise

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        with self._lock:
            refusing = self._refusing
        if refusing:
            client.close()
            with self._lock:
                self.refused += 1
                self._lock.notify_all()
            return
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = _Pair(client, server)
        self._selector.register(client, selectors.EVENT_READ, (pair, UP))
        self._selector.register(server, selectors.EVENT_READ, (pair, DOWN))
        with self._lock:
            self._pairs.append(pair)
            self.connections += 1
            self._lock.notify_all()

    def _read(self, pair: _Pair, direction: str) -> None:
        source = pair.client if direction == UP else pair.server
        try:
            data = source.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(pair)
            return
        with self._lock:
            if self._held[direction] or pair.kept[direction]:
                pair.kept[direction] += data
                self._lock.notify_all()
                return
        self._send(pair, direction, data)

    def _flush_released(self) -> None:
        with self._lock:
            work = [
                (pair, direction, bytes(pair.kept[direction]))
                for pair in self._pairs
                for direction in (UP, DOWN)
                if not self._held[direction] and pair.kept[direction]
            ]
            for pair, direction, _ in work:
                pair.kept[direction].clear()
        for pair, direction, data in work:
            self._send(pair, direction, data)

    def _send(self, pair: _Pair, direction: str, data: bytes) -> None:
        target = pair.server if direction == UP else pair.client
        try:
            target.sendall(data)
        except OSError:
            self._drop(pair)

    def _drop(self, pair: _Pair) -> None:
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)
        self._unregister(pair)
        pair.close()
