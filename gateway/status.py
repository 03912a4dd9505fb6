"""The gateway's local status socket: what each button was last told by the dashboard and what its LED shows.

``siaga-gateway commission`` reads it on the Pi to confirm that a test press's
indication came back and reached the LED (docs/operators.md, "Commissioning").
A Unix socket at ``[gateway] status_socket`` (mode 0660: the ``siaga`` group
may read it) answers every connection with one JSON document and closes it;
it reads nothing from the client, so a client can neither slow it with a
request nor send it anything to parse. One thread of its own serves the
connections one after another, each bounded by a short send timeout; a failed
answer is counted (``status_errors``) and logged, never felt by the buttons,
the outbox or the MQTT link.

The document (``v`` 1)::

    {"v": 1, "gw": "gw-pasar", "version": "0.9.0", "ts": "...", "mqtt_connected": true,
     "buttons": [{"id": "pasar-fire-1", "kind": "fire", "transport": "gpio", "site": "Pasar", "label": null,
                  "indication": {"state": "received", "alarm": 33, "rev": 0, "ts": "..."} | null,
                  "indicated_at": "..." | null, "led": "received", "led_blink": [0.5, 0.5] | null,
                  "has_led": true, "has_buzzer": true},
                 {"id": "pasar-lora-1", "transport": "lora", "node": 1101, "led": "received", "has_led": true,
                  "radio": {"rssi": -92, "snr": 7.5, "battery_mv": 3900, "last_heard": "...", "age_s": 3.1},
                  "firmware": null, ...}]}

For a LoRa button ``led`` is what the node was told to show (it drives its own
LED); ``firmware`` is null while the radio protocol does not carry the node's
firmware version.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import stat
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware_bridge.errors import SiagaError
from firmware_bridge.payloads import Indication
from firmware_bridge.periodic import Guard
from firmware_bridge.timeutil import format_epoch

from .indicator import BLINK_TIMES, Pattern

if TYPE_CHECKING:
    from .app import Gateway

log = logging.getLogger(__name__)

STATUS_VERSION = 1
#: How long one client may take to receive its answer before the next one is served.
SEND_TIMEOUT_S = 1.0
#: The most a reader accepts (a gateway's document is a few kB; a runaway one is refused, not read).
MAX_DOCUMENT = 1024 * 1024
#: Who may connect: the owner and the ``siaga`` group (the technician's sudo, or membership).
SOCKET_MODE = 0o660

_PATTERN_OF_STATE = {"received": Pattern.RECEIVED, "acknowledged": Pattern.HELP_COMING,
                     "dispatched": Pattern.HELP_COMING, "resolved": Pattern.OFF}  # fmt: skip


class StatusUnavailable(SiagaError, OSError):
    """The status socket cannot be read (the gateway is not running, or not serving it)."""


def _indication(indication: Indication | None) -> dict[str, Any] | None:
    if indication is None:
        return None
    return {"state": str(indication.state), "alarm": indication.alarm, "rev": indication.rev, "ts": indication.ts}


def _when(at: float | None) -> str | None:
    return None if at is None else format_epoch(at)


def status_document(gateway: Gateway) -> dict[str, Any]:
    """What the socket answers, read from the gateway's own state (its locks held only to copy)."""
    config = gateway.config
    wired = dict(gateway.buttons)  # a copy: close() may clear it meanwhile
    buttons: list[dict[str, Any]] = []
    for button in config.buttons:
        device = wired.get(button.id)
        pattern = gateway.pattern(button.id)
        buttons.append(
            {
                "id": button.id,
                "kind": str(button.kind),
                "transport": "gpio",
                "site": button.site.name,
                "label": button.label,
                "indication": _indication(gateway.last_indication(button.id)),
                "indicated_at": _when(gateway.indicated_at.get(button.id)),
                "led": str(pattern),
                "led_blink": list(BLINK_TIMES[pattern]) if pattern in BLINK_TIMES else None,
                "has_led": device is not None and device.led is not None,
                "has_buzzer": device is not None and device.buzzer is not None,
            }
        )
    radio = gateway.radio
    nodes = radio.health().nodes if radio is not None else {}
    for lora in config.lora_buttons:
        kept = radio.kept_indication(lora.node) if radio is not None else None
        node = nodes.get(str(lora.node))
        buttons.append(
            {
                "id": lora.id,
                "kind": str(lora.kind),
                "transport": "lora",
                "node": lora.node,
                "site": lora.site.name,
                "label": lora.label,
                "indication": _indication(kept),
                "indicated_at": _when(gateway.indicated_at.get(lora.id)),
                "led": str(_PATTERN_OF_STATE.get(str(kept.state), Pattern.OFF)) if kept else str(Pattern.OFF),
                "led_blink": None,
                "has_led": True,
                "has_buzzer": False,
                "radio": None
                if node is None
                else {
                    "rssi": node.rssi,
                    "snr": node.snr,
                    "battery_mv": node.battery_mv,
                    "last_heard": node.last_heard,
                    "age_s": node.age_s,
                },
                "firmware": None,
            }
        )
    return {
        "v": STATUS_VERSION,
        "gw": config.id,
        "version": gateway.version,
        "ts": format_epoch(time.time()),
        "mqtt_connected": gateway.link.connected.is_set(),
        "buttons": buttons,
    }


class StatusServer:
    """Serves :func:`status_document` on a Unix socket in its own thread (``siaga-status``)."""

    def __init__(self, gateway: Gateway, path: Path) -> None:
        self.gateway = gateway
        self.path = path
        self.guard = Guard("siaga-status", on_error=lambda: gateway.counters.add("status_errors"))
        self._socket: socket.socket | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="siaga-status", daemon=True)

    def start(self) -> StatusServer:
        """Bind and serve; a socket that cannot be bound is logged and counted, and the gateway goes on."""
        try:
            self._socket = self._bind()
        except OSError as exc:
            self.gateway.counters.add("status_errors")
            log.warning("status socket %s not served: %s", self.path, exc)
            return self
        self._thread.start()
        return self

    def _bind(self) -> socket.socket:
        if not self.path.parent.is_dir():
            # Made by systemd (RuntimeDirectory=siaga): not created here, so that a gateway started by hand
            # never takes the path of the one the service runs.
            raise FileNotFoundError(errno.ENOENT, "its folder does not exist", str(self.path.parent))
        self._clear_stale()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            server.bind(str(self.path))
            os.chmod(self.path, SOCKET_MODE)
            server.listen(8)
            server.settimeout(0.5)  # wakes to notice stop()
        except BaseException:
            server.close()
            raise
        return server

    def _clear_stale(self) -> None:
        """A socket left by a gateway that died is removed; one another gateway serves, or a file, is not."""
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise FileExistsError(errno.EEXIST, "a file that is not a socket is there", str(self.path))
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(0.5)
        try:
            probe.connect(str(self.path))
        except (ConnectionRefusedError, FileNotFoundError):
            self.path.unlink(missing_ok=True)
            return
        finally:
            probe.close()
        raise FileExistsError(errno.EADDRINUSE, "another process serves it", str(self.path))

    def _serve(self) -> None:
        server = self._socket
        assert server is not None
        with self.guard.lifetime():
            while not self._stopping.is_set():
                with self.guard.round("could not answer on the status socket") as outcome:
                    try:
                        client, _ = server.accept()
                    except TimeoutError:
                        continue
                    with client:
                        self._answer(client)
                if outcome.failed is not None:
                    self._stopping.wait(0.5)  # a failing accept (no file descriptors left) must not spin

    def _answer(self, client: socket.socket) -> None:
        client.settimeout(SEND_TIMEOUT_S)
        client.sendall(json.dumps(status_document(self.gateway), separators=(",", ":")).encode("utf-8"))
        self.gateway.counters.add("status_served")

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stopping.set()
        server, self._socket = self._socket, None
        if server is None:
            return
        if self._thread.is_alive():
            self._thread.join(2)
        server.close()
        try:
            self.path.unlink()
        except OSError:
            pass


def read_status(path: Path | str, timeout: float = 3.0) -> dict[str, Any]:
    """The document a running gateway's status socket answers (``siaga-gateway commission``)."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout)
    chunks: list[bytes] = []
    size = 0
    try:
        client.connect(str(path))
        while chunk := client.recv(65536):
            size += len(chunk)
            if size > MAX_DOCUMENT:
                raise StatusUnavailable(f"{path}: the answer is larger than {MAX_DOCUMENT} bytes")
            chunks.append(chunk)
    except StatusUnavailable:
        raise
    except OSError as exc:
        raise StatusUnavailable(f"{path}: {exc.strerror or exc}") from None
    finally:
        client.close()
    try:
        document = json.loads(b"".join(chunks))
    except ValueError as exc:
        raise StatusUnavailable(f"{path}: not a status document ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("buttons"), list):
        raise StatusUnavailable(f"{path}: not a status document")
    return document
