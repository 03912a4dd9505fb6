"""``siaga-sim gateway``: the real gateway in its own process, its wired buttons on mock pins.

Everything is the production gateway (``gateway.cli.serve``: systemd
readiness and watchdog, signals, the outbox, the MQTT link); only the pins are
gpiozero's MockFactory, pressed through a small HTTP control API, so that
fault tests and the chaos benchmark can kill it with SIGKILL like any process:

    POST /press/<button>   drive the button's pin to ground (or close its supervised loop's
                           contact) and release it; 200 {"id": event id} once the event is committed
    POST /cable/<button>/<idle|pressed|cut|shorted>
                           set a supervised button's cable (``sim/loops.py``): cut or short it
    GET  /health           the gateway's health message (JSON)
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gpiozero.pins.mock import MockFactory

from firmware_bridge.errors import ConfigError, OutboxError
from firmware_bridge.payloads import Event
from gateway.app import Gateway
from gateway.cli import EXIT_CONFIG, serve
from gateway.config import ButtonConfig, load_config

from .loops import Cable, VirtualLoops, drive, mock_pins
from .processes import stop_on_signals

log = logging.getLogger(__name__)


class ControlledGateway:
    """A gateway on mock pins whose presses report the event they committed."""

    #: How long a supervised loop's press may take to be read (the reader's debounce, plus a busy machine).
    LOOP_PRESS_TIMEOUT_S = 5.0

    def __init__(self, gateway: Gateway, factory: MockFactory, loops: VirtualLoops) -> None:
        self.gateway = gateway
        self.factory = factory
        self.loops = loops
        self._buttons: dict[str, ButtonConfig] = {button.id: button for button in gateway.config.buttons}
        self._lock = threading.Lock()
        self._recorded: list[Event] = []
        self._arrived = threading.Condition()
        gateway.add_record_listener(self._record)

    def _record(self, event: Event) -> None:
        with self._arrived:
            self._recorded.append(event)
            self._arrived.notify_all()

    def press(self, button_id: str) -> str | None:
        """Press and release; the id of the event it committed (None if it made none)."""
        button = self._buttons[button_id]
        with self._lock:  # one press at a time, so the event recorded is this press's
            with self._arrived:
                self._recorded.clear()
            drive(self.factory, self.loops, button, True)
            # A wired pin's edge records the event before drive() returns; a loop is read by the
            # gateway's reader thread, so its press is held until the event is there; so is a
            # hold-to-confirm press, recorded by gpiozero's hold thread after hold_s.
            wait_s = (0.0 if button.loop is None else self.LOOP_PRESS_TIMEOUT_S) + (
                button.hold_s + 2.0 if button.hold_s else 0.0
            )
            with self._arrived:
                self._arrived.wait_for(lambda: self._mine(button_id), timeout=wait_s)
            drive(self.factory, self.loops, button, False)
            with self._arrived:
                events = self._mine(button_id)
        return events[0].id if events else None

    def _mine(self, button_id: str) -> list[Event]:
        return [event for event in self._recorded if event.button == button_id]

    def set_cable(self, button_id: str, cable: str) -> bool:
        """Cut, short or mend a supervised button's cable; False if it has no supervised loop."""
        if not self.loops.supervises(button_id) or cable not in set(Cable):
            return False
        self.loops.set(button_id, cable)
        return True

    def knows(self, button_id: str) -> bool:
        return button_id in self._buttons


def _handler(control: ControlledGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            parts = self.path.strip("/").split("/")
            if len(parts) == 3 and parts[0] == "cable":
                ok = control.set_cable(parts[1], parts[2])
                self._reply(200 if ok else 404, {"cable": parts[2]} if ok else {"error": "no_supervised_loop"})
                return
            if len(parts) != 2 or parts[0] != "press" or not control.knows(parts[1]):
                self._reply(404, {"error": "unknown_button"})
                return
            event_id = control.press(parts[1])
            if event_id is None:
                self._reply(503, {"error": "no_event"})
            else:
                self._reply(200, {"id": event_id})

        def do_GET(self) -> None:
            if self.path != "/health":
                self._reply(404, {"error": "not_found"})
                return
            self._reply(200, control.gateway.health().to_dict())

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def run(config_path: str, host: str, port: int) -> int:
    try:
        config = load_config(config_path)
        factory, loops = mock_pins(config.buttons)
        gateway = Gateway(config, pin_factory=factory).start()
    except (ConfigError, OutboxError) as exc:
        return _refused(exc)
    control = ControlledGateway(gateway, factory, loops)
    server = ThreadingHTTPServer((host, port), _handler(control))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="control", daemon=True)
    thread.start()
    stop = stop_on_signals()
    print(f"siaga-sim gateway {config.id} ready; control on http://{host}:{server.server_port}/", flush=True)
    try:
        serve(gateway, stop)
    finally:
        server.shutdown()
        server.server_close()
    return 0


def _refused(exc: ConfigError | OutboxError) -> int:
    """Say why the gateway did not start; the exit code is siaga-gateway's for the same failure."""
    if isinstance(exc, ConfigError):
        print(f"siaga-sim gateway: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"siaga-sim gateway: {exc}", file=sys.stderr)
    return 1
