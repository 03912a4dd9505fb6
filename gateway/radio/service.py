"""LoRa buttons on a gateway: frames in, events out, acks and indications back.

For each frame the module hears: authenticate it (``firmware_bridge.radio``),
check its counters against what the node sent before and store its event in
the outbox, in one transaction (``Outbox.accept_uplink``), then acknowledge
it. Forged, replayed, unknown and damaged frames are refused, counted per
reason and per node, and never become events. Heartbeats are acknowledged
and kept in the node's statistics (reported in health) rather than
forwarded. The dashboard's indications for a LoRa button go to its node as
INDICATE frames, and again after each of its polls.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from firmware_bridge import radio
from firmware_bridge.counters import Counters
from firmware_bridge.errors import OutboxError
from firmware_bridge.payloads import (
    Event,
    Indication,
    Kind,
    LoraMode,
    LoraModel,
    ModuleState,
    NodeHealth,
    RadioHealth,
    RadioModule,
    Source,
)
from firmware_bridge.timeutil import format_epoch

from ..config import GatewayConfig, LoraButtonConfig
from ..indicator import REORDER_WINDOW_S, supersedes
from ..outbox import Outbox, UnavailableOutbox, Verdict
from ..pump import Pump
from .modules import E32Driver, Received, RylrDriver, RylrStatus
from .serialport import SerialLink

log = logging.getLogger(__name__)


@dataclass
class NodeStats:
    """What a gateway knows of one node, for health and the technicians' view."""

    button: str
    last_heard: float | None = None
    rssi: int | None = None
    snr: float | None = None
    battery_mv: int | None = None
    source: int | None = None
    frames: int = 0
    events: int = 0
    heartbeats: int = 0
    duplicates: int = 0
    flags: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def health(self, now: float | None = None) -> NodeHealth:
        now = time.time() if now is None else now
        return NodeHealth(
            button=self.button,
            last_heard=None if self.last_heard is None else format_epoch(self.last_heard),
            # Measured on the gateway's own clock, so a wrong clock cannot hide a silent button.
            age_s=None if self.last_heard is None else round(max(0.0, now - self.last_heard), 1),
            low_battery=bool(self.flags & radio.Flag.LOW_BATTERY),
            tamper=bool(self.flags & radio.Flag.TAMPER),
            rssi=self.rssi,
            snr=self.snr,
            battery_mv=self.battery_mv,
            frames=self.frames,
            events=self.events,
            heartbeats=self.heartbeats,
            duplicates=self.duplicates,
            rejected=dict(self.rejected),
        )

    def view(self, now: float | None = None) -> dict[str, Any]:
        """As health reports it, in JSON terms."""
        return self.health(now).to_dict()


class RadioService:
    """The gateway's side of the LoRa buttons.

    Which thread owns what:

    - The serial reader (``siaga-lora``) handles every frame (``on_frame``).
    - paho's network thread hands over the dashboard's indications (``indicate``).
    - The health thread reads ``health()``.
    - ``_lock`` guards what more than one of them touches: ``stats``,
      ``rejected`` and ``_indications`` (the latest indication per node and
      when it was kept). It is never held during disk or radio I/O;
      ``held()`` holds it for a test or a diagnostic.
    - ``buttons``, ``node_of`` and the keys are set here and never change.
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        outbox: Outbox | UnavailableOutbox,
        pump: Pump,
        counters: Counters,
        event_topic: str,
        clock: Callable[[], float] = time.monotonic,
        reorder_window_s: float = REORDER_WINDOW_S,
    ) -> None:
        assert config.lora is not None
        self.lora = config.lora
        self.gw_id = config.id
        self._outbox = outbox
        self._pump = pump
        self._counters = counters
        self._event_topic = event_topic
        self.buttons: dict[int, LoraButtonConfig] = {button.node: button for button in config.lora_buttons}
        self.node_of: dict[str, int] = {button.id: button.node for button in config.lora_buttons}
        # Only the nodes this gateway serves: another gateway's keys are not ours to use.
        self._keys = {node: self.lora.keys[node] for node in self.buttons}
        self._key_ids = {node: radio.key_id(key) for node, key in self._keys.items()}
        self.stats = {node: NodeStats(button.id) for node, button in self.buttons.items()}
        self.rejected: Counter[str] = Counter()
        #: node -> (the latest indication for it, monotonic time it was kept); under _lock
        self._indications: dict[int, tuple[Indication, float]] = {}
        self._clock = clock
        self._reorder_window_s = reorder_window_s
        self._lock = threading.Lock()
        if self.lora.is_rylr:
            self.driver: RylrDriver | E32Driver = RylrDriver(
                address=self.lora.address,
                network_id=self.lora.network_id,
                band=self.lora.band,
                parameter=self.lora.parameter,
                counters=counters,
            )
        else:
            self.driver = E32Driver(mode=self.lora.mode, channel=self.lora.channel, counters=counters)
        self.driver.on_frame = self.on_frame
        self.driver.on_bad = self._on_bad
        self.link = SerialLink(
            self.lora.port,
            self.driver,
            baudrate=self.lora.baudrate,
            counters=counters,
            reopen_s=self.lora.reopen_s,
            name="lora",
        )

    def start(self) -> None:
        self.driver.start()
        self.link.start()

    def stop(self) -> None:
        self.link.stop()
        self.driver.stop()

    # -- uplinks ----------------------------------------------------------------------------

    def on_frame(self, received: Received) -> None:
        """A frame the module heard (runs in the serial reader thread)."""
        try:
            self._handle(received)
        except Exception:
            # One frame's trouble must not cost the next ones (nor the port).
            # Not acknowledged: if it was an event, the node sends it again.
            self._counters.add("radio_frame_errors")
            log.exception("could not handle a radio frame %s", received.frame.hex())

    def _handle(self, received: Received) -> None:
        try:
            uplink = radio.decode_uplink(received.frame, self._keys.get)
        except radio.RadioError as exc:
            self._refuse(exc, received)
            return
        node = uplink.node
        now = time.time()
        stats = self.stats[node]
        button = self.buttons[node]
        kind = uplink.kind
        if uplink.kind != button.kind:
            # Either side may be the typo; privacy wins: if either says SAPA, it is SAPA.
            kind = Kind.SAPA if Kind.SAPA in (uplink.kind, button.kind) else uplink.kind
            self._counters.add("radio_kind_mismatch")
            log.warning(
                "node %s says it is a %s button, configured as %s: treated as %s", node, uplink.kind, button.kind, kind
            )
        event = None
        if uplink.type is not radio.FrameType.HEARTBEAT:
            event = self._event(uplink, button, kind, received, now)
        payload = event.encode() if event is not None else None
        try:
            acceptance = self._outbox.accept_uplink(
                node,
                self._key_ids[node],
                uplink.counter,
                uplink.event_counter,
                is_press=uplink.type is radio.FrameType.PRESS,
                event=(event.id, self._event_topic, payload) if event is not None and payload is not None else None,
                now=now,
            )
        except OutboxError as exc:
            # Without the outbox neither the event nor the counter can be kept:
            # send the event from memory and do not acknowledge, so the node
            # keeps retrying until the disk is back.
            self._counters.add("outbox_errors")
            log.error("outbox failed for node %s: %s; sending from memory, not acknowledging", node, exc)
            if event is not None and payload is not None:
                self._pump.publish_unstored(event.id, self._event_topic, payload)
            return
        if acceptance.verdict is Verdict.REPLAYED:
            self._refuse(radio.ReplayedFrame(f"node {node}: counter {uplink.counter} already used"), received)
            return
        with self._lock:
            # Only a fresh frame tells us anything: a replay must not make a
            # destroyed button look alive, nor steer our replies elsewhere.
            stats.frames += 1
            stats.last_heard, stats.rssi, stats.snr = now, received.rssi, received.snr
            stats.flags = int(uplink.flags)
            stats.source = received.source if received.source is not None else stats.source
            if uplink.battery_mv:
                stats.battery_mv = uplink.battery_mv
        if acceptance.verdict is Verdict.DUPLICATE:
            with self._lock:
                stats.duplicates += 1
            self._counters.add("radio_duplicates")
        elif event is None:
            with self._lock:
                stats.heartbeats += 1
            self._counters.add("radio_heartbeats")
        else:
            with self._lock:
                stats.events += 1
            self._counters.add("radio_events")
            if uplink.type is radio.FrameType.PRESS:
                # A new press may open a new alarm: what we kept about the last
                # one must not reach the node as news about this one.
                with self._lock:
                    self._indications.pop(node, None)
            stored = acceptance.stored
            fast = (
                stored is not None
                and stored.previous is not None
                and self._pump.publish_now(stored.seq, stored.previous, event.id, self._event_topic, payload or b"")
            )
            if not fast:
                self._pump.wake()
        self._send(node, radio.encode_ack(radio.Ack(node, uplink.counter, uplink.event_counter), self._keys[node]))
        self._counters.add("radio_acks_sent")
        indication = self.kept_indication(node)
        if indication is not None and acceptance.last_press_event:
            self._send_indication(node, indication, acceptance.last_press_event)

    def _event(
        self, uplink: radio.Uplink, button: LoraButtonConfig, kind: Kind, received: Received, now: float
    ) -> Event:
        return Event(
            id=radio.event_id(uplink.node, self._keys[uplink.node], uplink.event_counter),
            gw=self.gw_id,
            button=button.id,
            kind=kind,
            type=radio.EVENT_TYPES[uplink.type],
            ts=format_epoch(now),
            src=Source.LORA,
            radio={
                key: value
                for key, value in {
                    "node": uplink.node,
                    "counter": uplink.counter,
                    "event_counter": uplink.event_counter,
                    "rssi": received.rssi,  # not every module reports it (E32 does not)
                    "snr": received.snr,
                    "battery_mv": uplink.battery_mv or None,
                    "flags": int(uplink.flags),
                    "module": self.lora.module,
                }.items()
                if value is not None
            },
        )

    def _refuse(self, error: radio.RadioError, received: Received | None) -> None:
        reason = error.reason
        self._counters.add(f"radio_rejected.{reason}")
        with self._lock:
            self.rejected[reason] += 1
            node = error.node if error.node is not None else (radio.peek_node(received.frame) if received else None)
            if node in self.stats:
                self.stats[node].rejected[reason] += 1
            count = self.rejected[reason]
        if count <= 10 or count % 100 == 0:
            log.warning("refused radio frame (%s, #%d): %s", reason, count, error)

    def _on_bad(self, error: radio.RadioError) -> None:
        self._refuse(error, None)

    # -- downlinks ---------------------------------------------------------------------------

    def _send(self, node: int, frame: bytes) -> None:
        self.driver.send(frame, self.stats[node].source)

    def handles(self, button_id: str) -> bool:
        return button_id in self.node_of

    def indicate(self, indication: Indication) -> None:
        """The dashboard's news for a LoRa button (paho's thread): keep it, and tell the node now."""
        node = self.node_of[indication.button]
        if not self._fits_a_frame(node, indication):
            # Kept, it would make every answer to the node's polls fail; refused, the node keeps what it shows.
            self._counters.add("indications_unsendable")
            log.warning("indication for node %s does not fit an INDICATE frame: %s", node, indication)
            return
        if not self._keep(node, indication):
            self._counters.add("indications_stale")
            return
        self._counters.add("indications_applied")
        press = self._outbox.last_press_event(node) if isinstance(self._outbox, Outbox) else 0
        if press:
            self._send_indication(node, indication, press)

    def _keep(self, node: int, indication: Indication) -> bool:
        """Keep ``indication`` as the node's latest, unless it is a late reorder (see REORDER_WINDOW_S)."""
        now = self._clock()
        with self._lock:
            last, last_at = self._indications.get(node, (None, 0.0))
            if not supersedes(indication, last, now - last_at, self._reorder_window_s):
                return False
            self._indications[node] = (indication, now)
            return True

    def kept_indication(self, node: int) -> Indication | None:
        """The latest indication kept for ``node`` (what its next poll is answered with), or None."""
        with self._lock:
            return self._kept_indications().get(node)

    def _kept_indications(self) -> dict[int, Indication]:
        return {node: indication for node, (indication, _) in self._indications.items()}

    @contextmanager
    def held(self) -> Iterator[Callable[[], dict[int, Indication]]]:
        """Hold the service's lock, as the serial reader does while it updates a node (tests, diagnostics).

        Yields ``kept_indications`` (node -> latest indication) for use inside
        the block: the thread holding the lock is the one that may read what it guards.
        """
        with self._lock:
            yield self._kept_indications

    def _fits_a_frame(self, node: int, indication: Indication) -> bool:
        """The frame's fields are narrower than JSON's integers (alarm 32 bits, rev 16)."""
        try:
            frame = radio.Indicate(node, 1, indication.alarm, indication.rev, indication.state)
            radio.encode_indicate(frame, self._keys[node])
        except ValueError:
            return False
        return True

    def _send_indication(self, node: int, indication: Indication, event_counter: int) -> None:
        frame = radio.Indicate(node, event_counter, indication.alarm, indication.rev, indication.state)
        self._send(node, radio.encode_indicate(frame, self._keys[node]))
        self._counters.add("radio_indications_sent")

    # -- health ---------------------------------------------------------------------------------

    def liveness(self, stale_after_s: float, now: float) -> str | None:
        """None while the serial reader turns (reading, or waiting to reopen a missing port)."""
        if not self.link.is_alive():
            return "the LoRa serial reader stopped"
        if now - self.link.last_loop > stale_after_s:
            return f"the LoRa serial reader has not turned for {now - self.link.last_loop:.0f} s"
        return None

    def health(self) -> RadioHealth:
        with self._lock:
            nodes = {str(node): stats.health() for node, stats in self.stats.items()}
            rejected = dict(self.rejected)
        return RadioHealth(module=self._module_health(), nodes=nodes, rejected=rejected)

    def _module_health(self) -> RadioModule:
        port = RadioModule(
            type=LoraModel(self.lora.module),
            port=self.lora.port,
            state=ModuleState(self.link.state),
            since=format_epoch(self.link.since),
            last_error=self.link.last_error,
        )
        status = self.driver.status()
        if isinstance(status, RylrStatus):
            # The RYLR tracks its own last error (the module's answers): that one, not the port's.
            return replace(port, last_error=status.last_error, configured=status.configured, queued=status.queued)
        return replace(port, mode=LoraMode(status.mode), skipped_bytes=status.skipped_bytes, bad_crc=status.bad_crc)


def new_key() -> bytes:
    return os.urandom(radio.KEY_LEN)
