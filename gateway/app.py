"""The gateway daemon: wired buttons -> durable outbox -> MQTT, and indications back to LEDs."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gpiozero import DigitalOutputDevice
from gpiozero.exc import GPIOZeroError
from gpiozero.pins import Factory

from firmware_bridge import __version__
from firmware_bridge.counters import Counters
from firmware_bridge.errors import ConfigError, OutboxError
from firmware_bridge.ids import make_ulid
from firmware_bridge.payloads import (
    ButtonHealth,
    ButtonInfo,
    Event,
    EventType,
    Health,
    Indication,
    Inventory,
    OutboxHealth,
    Source,
)
from firmware_bridge.periodic import Guard
from firmware_bridge.timeutil import format_epoch
from firmware_bridge.topics import Topics

from .buttons import WiredButton
from .config import ButtonConfig, GatewayConfig
from .indicator import IndicatorState, Pattern
from .link import GatewayLink
from .loops import LoopPoller, SupervisedButton
from .outbox import UnavailableOutbox, open_outbox
from .pump import MAX_RESEND_INTERVAL_S, Pump
from .radio import RadioService
from .status import StatusServer
from .system import read_system
from .systemd import stale

if TYPE_CHECKING:
    from .metrics import MetricsListener

log = logging.getLogger(__name__)


def new_event_id(now: float | None = None) -> str:
    return make_ulid(int((time.time() if now is None else now) * 1000), os.urandom(10))


class Gateway:
    """Everything one Raspberry Pi runs. Use as a context manager, or ``start()``/``close()``.

    Threads: press handlers (gpiozero's), paho's network loop (indications,
    receipts, presence), the health loop, and the pump's and radio's own
    (see ``Pump`` and ``RadioService`` for theirs). Here ``_lock`` guards the
    buttons, their ``IndicatorState`` and the listeners' view of them; what
    paho's thread hands the pump goes through the pump's own methods.
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        pin_factory: Factory | None = None,
        version: str = __version__,
        pump_window: int = 500,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        max_resend_interval_s: float = MAX_RESEND_INTERVAL_S,
    ) -> None:
        self.config = config
        self.version = version
        #: The wall clock stamped on events and health (a Pi without a real-time
        #: clock may be far off until NTP syncs); intervals use time.monotonic.
        self.clock = clock
        self.counters = Counters()
        self.started_at = time.time()
        self.topics = Topics(config.broker.root)
        self._pin_factory = pin_factory
        self._event_topic = self.topics.event(config.id)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._listeners: list[Callable[[str, Pattern], None]] = []
        self.buttons: dict[str, WiredButton] = {}
        # ``monotonic`` times the indications' reorder window (tests move it by hand).
        self._indicators: dict[str, IndicatorState] = {
            button.id: IndicatorState(clock=monotonic) for button in config.buttons
        }
        self.outbox = open_outbox(config.outbox_path)
        # A failing (or recovering) outbox is news for the dashboard now, not at the next interval.
        self._health_now = threading.Event()
        self.outbox.on_write_state = self._health_now.set
        self.link = GatewayLink(
            config.broker,
            config.id,
            version=version,
            inventory=self.inventory_payload,
            on_indication=self._on_indication,
            on_publish=self._on_publish,
            counters=self.counters,
            started_at=self.started_at,
            on_link=self._on_link,
            on_receipt=self._on_receipt,
            on_dashboard=self._on_dashboard,
        )
        self.pump = Pump(
            self.outbox,
            self._publish_event,
            self.counters,
            window=pump_window,
            receipt_timeout_s=config.receipt_timeout_s,
            max_resend_interval_s=max_resend_interval_s,
        )
        self.radio: RadioService | None = None
        self._mode_pins: list[DigitalOutputDevice] = []
        if config.lora is not None:
            self.radio = RadioService(
                config,
                outbox=self.outbox,
                pump=self.pump,
                counters=self.counters,
                event_topic=self._event_topic,
                clock=monotonic,
            )
        self._health_thread = threading.Thread(target=self._health_loop, name="siaga-health", daemon=True)
        #: Button id -> when (this clock) the dashboard's latest indication for it was applied (status socket).
        self.indicated_at: dict[str, float] = {}
        #: The local status socket (``gateway/status.py``), when ``[gateway] status_socket`` names one.
        self.status: StatusServer | None = None
        #: Reads the supervised loops, when any button has one (``gateway/loops.py``).
        self.loops: LoopPoller | None = None
        self._record_listeners: list[Callable[[Event], None]] = []
        self.ready = threading.Event()
        #: The optional Prometheus listener (``[metrics]``), started last and stopped first.
        self.metrics: MetricsListener | None = None
        #: A loop that has not turned for this long is hung: the watchdog stops pinging.
        self.stale_after_s = 15.0

    # -- life cycle -------------------------------------------------------

    def start(self) -> Gateway:
        backlog = self.outbox.depth()
        if backlog:
            log.warning("outbox holds %d event(s) from before; they go out first", backlog)
        self.pump.start()
        self.link.start()
        if self.radio is not None:
            self._hold_module_in_normal_mode()
            self.radio.start()
        try:
            for button in self.config.buttons:
                if button.loop is None:
                    self.buttons[button.id] = WiredButton(
                        button, self._pin_factory, self._on_press, file=self.config.file
                    )
                else:
                    supervised = SupervisedButton(button, self._pin_factory, self._on_press, file=self.config.file)
                    supervised.on_wiring_change = self._health_now.set
                    self.buttons[button.id] = supervised
            if any(isinstance(button, SupervisedButton) for button in self.buttons.values()):
                self.loops = LoopPoller(self._supervised_buttons, self.counters).start()
        except BaseException:
            self.close()
            raise
        self._health_thread.start()
        if self.config.status_socket is not None:
            self.status = StatusServer(self, self.config.status_socket).start()  # never fails the start
        if self.config.metrics.enabled:
            # Imported only when asked for: prometheus_client would cost every other gateway memory.
            from .metrics import start_metrics

            self.metrics = start_metrics(self.config, self.health, self.counters)  # never fails the start
        self.ready.set()
        log.info(
            "gateway %s ready: %d button(s), broker %s",
            self.config.id,
            len(self.buttons),
            self.config.broker.describe(),
        )
        return self

    def _hold_module_in_normal_mode(self) -> None:
        """E32/E22 mode pins, if wired to the Pi: both low is normal (transmit and receive) mode."""
        lora = self.config.lora
        assert lora is not None
        for key, pin in (("m0_pin", lora.m0_pin), ("m1_pin", lora.m1_pin)):
            if pin is None:
                continue
            try:
                self._mode_pins.append(DigitalOutputDevice(pin, initial_value=False, pin_factory=self._pin_factory))
            except GPIOZeroError as exc:
                raise ConfigError(
                    f"{self.config.file}: key 'lora.{key}': cannot use pin {pin}: {exc}",
                    file=self.config.file,
                    key=f"lora.{key}",
                ) from None

    def close(self) -> None:
        self._stopping.set()
        if self.metrics is not None:
            self.metrics.stop()
        if self.status is not None:
            self.status.stop()
        self._health_now.set()
        for device in self._mode_pins:
            device.close()
        if self.loops is not None:
            self.loops.stop()  # before the buttons close: no read of a closed ADC
        with self._lock:
            # Under the lock: an indication arriving now finds no button to drive.
            buttons = list(self.buttons.values())
            self.buttons.clear()
        for button in buttons:
            button.close()
        if self.radio is not None:
            self.radio.stop()
        if self._health_thread.is_alive():
            self._health_thread.join(5)
        self.link.stop()
        self.pump.stop()
        self.outbox.close()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- events -----------------------------------------------------------

    def record(self, button: ButtonConfig, *, type: EventType = EventType.PRESS, held_ms: int | None = None) -> Event:
        """Create an event, commit it to the outbox, and let the pump publish it."""
        event = Event(
            id=new_event_id(),
            gw=self.config.id,
            button=button.id,
            kind=button.kind,
            type=type,
            ts=format_epoch(self.clock()),
            src=Source.GPIO,
            held_ms=held_ms,
        )
        payload = event.encode()
        try:
            stored = self.outbox.put(event.id, self._event_topic, payload, now=self.clock())
        except OutboxError as exc:
            # Never lose the press: send it from memory and say so loudly.
            self.counters.add("outbox_errors")
            log.error("outbox failed, sending event %s from memory only: %s", event.id, exc)
            self.pump.publish_unstored(event.id, self._event_topic, payload)
        else:
            fast = stored.previous is not None and self.pump.publish_now(
                stored.seq, stored.previous, event.id, self._event_topic, payload
            )
            if not fast:
                self.pump.wake()
        self.counters.add("events_recorded")
        for listener in self._record_listeners:
            listener(event)
        return event

    def add_record_listener(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener(event)`` after each event is committed (or, if the disk failed, handed on)."""
        self._record_listeners.append(listener)

    def _button_health(self) -> tuple[ButtonHealth, ...]:
        with self._lock:
            buttons = list(self.buttons.values())
        return tuple(ButtonHealth.from_dict(button.view()) for button in buttons)

    def _supervised_buttons(self) -> list[SupervisedButton]:
        with self._lock:
            return [button for button in self.buttons.values() if isinstance(button, SupervisedButton)]

    def liveness(self) -> str | None:
        """None while every loop a press depends on is turning, else what is wrong (for the watchdog)."""
        now = time.monotonic()
        if not self.pump.is_alive():
            return f"the outbox pump stopped ({self.pump.failure!r})"
        if stale(self.pump.last_loop, self.stale_after_s, now):
            return f"the outbox pump has not turned for {now - self.pump.last_loop:.0f} s"
        if not self.link.loop_alive():
            return "the MQTT network loop stopped"
        if not self._health_thread.is_alive():
            return "the health loop stopped"
        if self.loops is not None:
            if not self.loops.is_alive():
                return f"the supervised loops' reader stopped ({self.loops.guard.failure!r})"
            if stale(self.loops.last_loop, self.stale_after_s, now):
                return f"the supervised loops have not been read for {now - self.loops.last_loop:.0f} s"
        if self.radio is not None:
            return self.radio.liveness(self.stale_after_s, now)
        return None

    def _publish_event(self, topic: str, payload: bytes):
        return self.link.publish(topic, payload, qos=1)

    def _on_publish(self, mid: int) -> None:
        self.pump.acknowledged(mid)

    def _on_receipt(self, event_ids: tuple[str, ...]) -> None:
        self.pump.receipted(event_ids)

    def _on_dashboard(self, online: bool, resync: str | None) -> None:
        self.pump.dashboard_presence(online, resync)

    def _on_link(self, up: bool) -> None:
        if up:
            self.pump.link_up()
        else:
            self.pump.link_down()

    def _on_press(self, button: ButtonConfig, held_ms: int | None) -> None:
        # Runs in gpiozero's callback thread: report every failure, never raise into it.
        try:
            self.counters.add("presses")
            with self._lock:
                # "sending" is decided before publishing, so that a very fast
                # "received" from the dashboard is never overwritten by it...
                self._indicators[button.id].pressed()
            self.record(button, held_ms=held_ms)
            with self._lock:
                # ...and the LED follows after the commit, off the alarm's path.
                self._show(button.id, self._indicators[button.id].pattern)
        except Exception:
            self.counters.add("press_errors")
            log.exception("press of %s could not be recorded", button.id)

    # -- indications --------------------------------------------------------

    def _on_indication(self, indication: Indication) -> None:
        if self.radio is not None and self.radio.handles(indication.button):
            self.radio.indicate(indication)
            if self.radio.kept_indication(self.radio.node_of[indication.button]) is indication:
                self.indicated_at[indication.button] = self.clock()
            return
        state = self._indicators.get(indication.button)
        if state is None:
            self.counters.add("indications_unknown_button")
            log.warning("indication for unknown button %s", indication.button)
            return
        with self._lock:
            pattern = state.indicate(indication)
            if pattern is None:
                self.counters.add("indications_stale")
                return
            self.counters.add("indications_applied")
            self.indicated_at[indication.button] = self.clock()
            self._show(indication.button, pattern)

    def _show(self, button_id: str, pattern: Pattern) -> None:
        button = self.buttons.get(button_id)
        if button is not None:
            button.show(pattern)
        for listener in list(self._listeners):
            listener(button_id, pattern)
        self._changed.notify_all()

    def add_listener(self, listener: Callable[[str, Pattern], None]) -> None:
        """Call ``listener(button_id, pattern)`` whenever a button's indication changes."""
        self._listeners.append(listener)

    def pattern(self, button_id: str) -> Pattern:
        with self._lock:
            return self._indicators[button_id].pattern

    def last_indication(self, button_id: str) -> Indication | None:
        with self._lock:
            return self._indicators[button_id].last

    def wait_for_pattern(self, button_id: str, pattern: Pattern, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._indicators[button_id].pattern is pattern, timeout)

    def wait_for_indication(self, button_id: str, state: str, timeout: float) -> bool:
        """Wait until the dashboard's latest indication for a wired button is ``state``."""

        def arrived() -> bool:
            last = self._indicators[button_id].last
            return last is not None and last.state == state

        with self._changed:
            return self._changed.wait_for(arrived, timeout)

    # -- inventory and health ---------------------------------------------------

    def inventory_payload(self) -> bytes:
        return Inventory(
            gw=self.config.id,
            ts=format_epoch(self.clock()),
            buttons=tuple(
                ButtonInfo(id=b.id, kind=b.kind, transport=Source.GPIO, site=b.site, label=b.label)
                for b in self.config.buttons
            )
            + tuple(
                ButtonInfo(id=b.id, kind=b.kind, transport=Source.LORA, site=b.site, label=b.label)
                for b in self.config.lora_buttons
            ),
        ).encode()

    def health(self) -> Health:
        return Health(
            gw=self.config.id,
            ts=format_epoch(self.clock()),
            uptime_s=round(time.time() - self.started_at, 3),
            outbox=self._outbox_health(),
            counters=self.counters.snapshot(),
            version=self.version,
            outbox_ok=not isinstance(self.outbox, UnavailableOutbox),
            outbox_error=self.outbox.write_error,
            delivery_verified=self.link.echo.is_set(),
            mqtt_connected=self.link.connected.is_set(),
            dashboard_online=self.link.dashboard_online,
            pump_alive=self.pump.is_alive(),
            buttons=self._button_health(),
            radio=self.radio.health() if self.radio is not None else None,
            system=read_system(self.config.outbox_path),
        )

    def _outbox_health(self) -> OutboxHealth:
        oldest = self.outbox.oldest_created_at()
        return OutboxHealth(
            depth=self.outbox.depth(),
            oldest_ts=None if oldest is None else format_epoch(oldest),
            memory_only=self.pump.unstored_waiting,
            inflight=self.pump.inflight,
            awaiting_receipt=self.pump.awaiting_receipt,
        )

    def _health_loop(self) -> None:
        # Health must never take the gateway down: a failed report is counted and logged, the next one comes.
        guard = Guard("siaga-health", on_error=lambda: self.counters.add("health_errors"))
        with guard.lifetime():
            while not self._stopping.is_set():
                self._health_now.wait(self.config.health_interval_s)
                self._health_now.clear()
                if self._stopping.is_set():
                    break
                with guard.round("could not publish health"):
                    self.link.publish_health(self.health().encode())
