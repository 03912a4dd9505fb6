"""An embedded MQTT broker (amqtt, pure Python) for the one-command demo.

It lets ``make demo`` run on a machine without Mosquitto. It is not the
production broker: amqtt does not queue messages for a persistent client
while it is away, so the delivery guarantees in docs/reliability.md assume
Mosquitto (``siaga-sim demo --broker mosquitto`` uses it when installed).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any


class EmbeddedBrokerError(RuntimeError):
    pass


class EmbeddedBroker:
    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._broker: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="amqtt-broker", daemon=True)

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - handed to start(), which raises it
            self.error = exc
            self._ready.set()
        finally:
            self._stopped.set()

    async def _serve(self) -> None:
        from amqtt.broker import Broker

        self._broker = Broker(self._config())
        await self._broker.start()
        self._stop_event = asyncio.Event()
        self._ready.set()
        await self._stop_event.wait()
        await self._broker.shutdown()

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            import amqtt  # noqa: F401
        except ImportError:
            raise EmbeddedBrokerError(
                "the embedded broker needs amqtt: pip install 'siaga[demo]' (make demo does this)"
            ) from None
        self._thread.start()
        if not self._ready.wait(timeout):
            raise EmbeddedBrokerError("the embedded broker did not start")
        if self.error is not None:
            raise EmbeddedBrokerError(f"the embedded broker failed: {self.error}") from self.error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive() and self._broker is not None:
            self._loop.call_soon_threadsafe(self._stop_event.set)
            self._stopped.wait(timeout)
