"""A virtual LoRa radio: the air, modules on either end, and nodes running the reference firmware.

- :class:`Air` carries packets between virtual modules after their airtime
  (Semtech's formula for the spreading factor), with configurable loss,
  duplication, corruption and extra delay. It records what it carried, so a
  test can replay a capture, and lets an attacker inject frames.
- :class:`VirtualRylr` speaks the REYAX AT protocol, :class:`VirtualE32` the
  Ebyte byte protocol (transparent or fixed mode), to a host: either a real
  pty (:class:`PtyHost`: the gateway opens the tty exactly as on a Pi, through
  a stable symlink that survives an unplug and replug) or an in-process UART
  (:class:`UartShim`, for a node's firmware).
- :class:`VirtualNode` runs the firmware (``firmware_bridge/firmware``) under
  CPython with small shims for the pins, the UART and the clock.
"""

from __future__ import annotations

import collections
import errno
import heapq
import itertools
import logging
import os
import random
import select
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from firmware_bridge.radio import airtime_s

from .firmware import load_firmware

log = logging.getLogger(__name__)

#: How long a virtual finger stays on a button whose firmware has not confirmed the press: past it the
#: press is let go unconfirmed, logged and counted (``VirtualNode.unconfirmed``).
PRESS_CONFIRM_TIMEOUT_S = 10.0


@dataclass
class Impairments:
    loss: float = 0.0  # probability that one receiver misses a packet
    duplicate: float = 0.0  # probability that a packet arrives twice
    corrupt: float = 0.0  # probability that a packet arrives with a byte changed
    extra_delay_s: float = 0.0  # added to the airtime
    time_scale: float = 1.0  # < 1 runs the air faster than real time (tests)


@dataclass
class Packet:
    """What goes over the air: the bytes, and the module-level addressing."""

    data: bytes
    network: tuple  # modules hear only their own network (RYLR network id, E32 channel)
    source: int
    destination: int | None  # None: everyone on the network
    sent_at: float = 0.0


class VirtualModule:
    network: tuple = ()
    address: int = 0

    def hears(self, packet: Packet) -> bool:
        raise NotImplementedError

    def receive(self, packet: Packet, rssi: int, snr: float) -> None:
        raise NotImplementedError


class Air:
    def __init__(self, impairments: Impairments | None = None, *, sf: int = 9, seed: int | None = None) -> None:
        self.impairments = impairments or Impairments()
        self.sf = sf
        self._random = random.Random(seed)
        self._modules: list[VirtualModule] = []
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._stopping = False
        self.captured: list[Packet] = []
        self.delivered = 0
        self.lost = 0
        self._thread = threading.Thread(target=self._run, name="air", daemon=True)
        self._thread.start()

    def attach(self, module: VirtualModule) -> None:
        with self._changed:
            self._modules.append(module)

    def detach(self, module: VirtualModule) -> None:
        with self._changed:
            if module in self._modules:
                self._modules.remove(module)

    def later(self, delay_s: float, action: Callable[[], None]) -> None:
        with self._changed:
            heapq.heappush(self._queue, (time.monotonic() + delay_s, next(self._order), action))
            self._changed.notify()

    def airtime(self, length: int) -> float:
        return airtime_s(length, self.sf) * self.impairments.time_scale

    def transmit(self, sender: VirtualModule, packet: Packet) -> float:
        """Send a packet; returns its airtime (when the sender is free again)."""
        packet.sent_at = time.time()
        duration = self.airtime(len(packet.data))
        with self._changed:
            self.captured.append(packet)
            receivers = [m for m in self._modules if m is not sender and m.hears(packet)]
        for receiver in receivers:
            self._deliver(receiver, packet, duration)
        return duration

    def inject(self, data: bytes, network: tuple, source: int = 0, destination: int | None = None) -> None:
        """An attacker's transmitter: anyone can put bytes on the air."""
        packet = Packet(data, network, source, destination, time.time())
        duration = self.airtime(len(data))
        with self._changed:
            receivers = [m for m in self._modules if m.hears(packet)]
        for receiver in receivers:
            self._deliver(receiver, packet, duration, impaired=False)

    def _deliver(self, receiver: VirtualModule, packet: Packet, duration: float, impaired: bool = True) -> None:
        imp = self.impairments
        copies = 1
        if impaired:
            if self._random.random() < imp.loss:
                self.lost += 1
                return
            if self._random.random() < imp.duplicate:
                copies = 2
        for copy in range(copies):
            data = packet.data
            if impaired and self._random.random() < imp.corrupt and data:
                position = self._random.randrange(len(data))
                data = (
                    data[:position] + bytes([data[position] ^ (1 << self._random.randrange(8))]) + data[position + 1 :]
                )
            rssi = -60 - self._random.randrange(40)
            snr = round(self._random.uniform(-5, 11), 1)
            delivered = Packet(data, packet.network, packet.source, packet.destination, packet.sent_at)
            delay = duration + imp.extra_delay_s + copy * duration
            self.later(delay, lambda r=receiver, p=delivered, s=rssi, n=snr: self._arrive(r, p, s, n))

    def _arrive(self, receiver: VirtualModule, packet: Packet, rssi: int, snr: float) -> None:
        self.delivered += 1
        receiver.receive(packet, rssi, snr)

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._stopping and (not self._queue or self._queue[0][0] > time.monotonic()):
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._changed.wait(timeout)
                if self._stopping:
                    return
                _, _, action = heapq.heappop(self._queue)
            try:
                action()
            except Exception:  # a receiver's fault must not stop the air
                log.exception("virtual air: delivery failed")

    def close(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join(5)


# -- hosts: what a module's UART is connected to -------------------------------------------------


class UartShim:
    """A MicroPython-style UART for the firmware under CPython: write(), read() -> bytes | None, any()."""

    def __init__(self) -> None:
        self._incoming = bytearray()
        self._lock = threading.Lock()
        self.module: Any = None
        self.on_data: Callable[[], None] = lambda: None

    # firmware side
    def write(self, data: bytes) -> int:
        if self.module is not None:
            self.module.from_host(bytes(data))
        return len(data)

    def read(self, size: int | None = None) -> bytes | None:
        with self._lock:
            if not self._incoming:
                return None
            data = bytes(self._incoming)
            self._incoming.clear()
            return data

    def any(self) -> int:
        with self._lock:
            return len(self._incoming)

    # module side
    def to_host(self, data: bytes) -> None:
        with self._lock:
            self._incoming += data
        self.on_data()


class PtyHost:
    """The far end of a pty pair: the gateway opens ``path`` (a symlink to the tty) as a serial port."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.module: Any = None
        self._master: int | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.plugged = threading.Event()

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        tty_name = os.ttyname(slave)
        os.close(slave)  # the gateway opens it by name, as on a Pi
        temporary = self.path.with_name(self.path.name + ".new")
        if temporary.is_symlink() or temporary.exists():
            temporary.unlink()
        temporary.symlink_to(tty_name)
        temporary.replace(self.path)  # atomically, like udev's /dev/serial/by-id links
        os.set_blocking(master, False)  # a full tty buffer drops bytes, as a UART would, never blocks the air
        with self._lock:
            self._master = master
        self._thread = threading.Thread(target=self._read, args=(master,), name=f"pty-{self.path.name}", daemon=True)
        self._thread.start()
        self.plugged.set()
        if self.module is not None:
            self.module.powered_up()

    def unplug(self) -> None:
        """Pull the USB adapter out: the tty disappears under the gateway's feet."""
        self.plugged.clear()
        with self._lock:
            master, self._master = self._master, None
        if master is not None:
            os.close(master)
        if self.path.is_symlink():
            self.path.unlink()
        if self._thread is not None:
            self._thread.join(5)

    def _read(self, master: int) -> None:
        while self._master == master:
            try:
                ready, _, _ = select.select([master], [], [], 0.2)
                if not ready:
                    continue
                data = os.read(master, 4096)
            except OSError as exc:
                if exc.errno == errno.EIO and self._master == master:
                    # Nobody has the tty open (the gateway is between two opens):
                    # Linux reports EIO until someone does. Nothing to wait on but time.
                    time.sleep(0.05)
                    continue
                return  # closed: unplugged
            if data and self.module is not None:
                self.module.from_host(data)

    def to_host(self, data: bytes) -> None:
        with self._lock:
            master = self._master
            if master is None:
                return  # unplugged: what the module says is lost, as on a real cable
            try:
                os.write(master, data)
            except OSError:
                pass

    def close(self) -> None:
        self.unplug()


# -- modules ------------------------------------------------------------------------------------


class VirtualRylr(VirtualModule):
    """A REYAX RYLR896/RYLR998 as its host sees it: AT commands in, +OK/+ERR/+RCV out."""

    def __init__(self, air: Air, host: Any, *, address: int = 0, network_id: int = 18, band: int = 923_000_000) -> None:
        self.air = air
        self.host = host
        self.address = address
        self.network_id = network_id
        self.band = band
        self.parameter = "9,7,1,12"
        self._line = bytearray()
        self._busy_until = 0.0
        self.commands: list[str] = []
        host.module = self
        air.attach(self)

    @property
    def network(self) -> tuple:
        return ("rylr", self.network_id, self.band)

    def powered_up(self) -> None:
        self.host.to_host(b"+READY\r\n")

    def hears(self, packet: Packet) -> bool:
        return packet.network == self.network and packet.destination in (None, 0, self.address)

    def from_host(self, data: bytes) -> None:
        self._line += data
        while b"\n" in self._line:
            end = self._line.index(b"\n")
            line = bytes(self._line[:end]).rstrip(b"\r").decode("ascii", "replace")
            del self._line[: end + 1]
            if line:
                self._command(line)

    def _reply(self, text: str) -> None:
        self.host.to_host((text + "\r\n").encode("ascii"))

    def _command(self, line: str) -> None:
        self.commands.append(line)
        if not line.startswith("AT"):
            return self._reply("+ERR=2")
        if line == "AT":
            return self._reply("+OK")
        name, _, value = line[3:].partition("=")
        setters = {"ADDRESS": "address", "NETWORKID": "network_id", "BAND": "band"}
        if name in setters and value.isdigit():
            setattr(self, setters[name], int(value))
            return self._reply("+OK")
        if name == "PARAMETER" and len(value.split(",")) == 4:
            self.parameter = value
            return self._reply("+OK")
        if name == "SEND":
            return self._send(value)
        return self._reply("+ERR=4")

    def _send(self, value: str) -> None:
        try:
            address, length, data = value.split(",", 2)
            size = int(length)
            destination = int(address)
        except ValueError:
            return self._reply("+ERR=4")
        if size != len(data):
            return self._reply("+ERR=5")
        if size > 240:
            return self._reply("+ERR=13")
        now = time.monotonic()
        if now < self._busy_until:
            return self._reply("+ERR=17")
        packet = Packet(data.encode("ascii"), self.network, self.address, destination or None)
        duration = self.air.transmit(self, packet)
        self._busy_until = now + duration
        self.air.later(duration, lambda: self._reply("+OK"))  # answered once the packet is out

    def receive(self, packet: Packet, rssi: int, snr: float) -> None:
        data = packet.data.decode("ascii", "replace")
        self._reply(f"+RCV={packet.source},{len(data)},{data},{rssi},{round(snr)}")  # the RYLR reports whole dB


class VirtualE32(VirtualModule):
    """An Ebyte E32/E22 in normal mode: bytes in are sent, bytes heard come out."""

    def __init__(self, air: Air, host: Any, *, address: int = 0, channel: int = 23, mode: str = "transparent") -> None:
        self.air = air
        self.host = host
        self.address = address
        self.channel = channel
        self.mode = mode
        host.module = self
        air.attach(self)

    @property
    def network(self) -> tuple:
        return ("e32", self.channel)

    def powered_up(self) -> None:
        pass  # an E32 says nothing when it starts

    def hears(self, packet: Packet) -> bool:
        if packet.network != self.network:
            return False
        if self.mode == "transparent":
            return packet.destination is None
        return packet.destination in (None, self.address, 0xFFFF)

    def from_host(self, data: bytes) -> None:
        # The firmware and the gateway write whole frames at once: one write, one packet.
        destination: int | None = None
        network = self.network
        if self.mode == "fixed" and len(data) > 3:
            destination = data[0] << 8 | data[1]
            network = ("e32", data[2])
            data = data[3:]
        for start in range(0, len(data), 58):  # the module's sub-packet size
            self.air.transmit(self, Packet(data[start : start + 58], network, self.address, destination))

    def receive(self, packet: Packet, rssi: int, snr: float) -> None:
        self.host.to_host(packet.data)


# -- nodes running the reference firmware --------------------------------------------------------


class VirtualPin:
    """machine.Pin as the firmware uses it: value() reads, value(x) writes."""

    def __init__(self, level: int = 0) -> None:
        self.level = level
        self.on_change: Callable[[int], None] = lambda level: None

    def value(self, level: int | None = None) -> int:
        if level is None:
            return self.level
        if level != self.level:
            self.level = level
            self.on_change(level)
        return self.level


class _Clock:
    def __init__(self) -> None:
        self._start = time.monotonic()

    def ms(self) -> int:
        return int((time.monotonic() - self._start) * 1000)


class _Battery:
    def __init__(self, mv: int) -> None:
        self.millivolts = mv

    def mv(self) -> int:
        return self.millivolts


@dataclass
class NodeSpec:
    node_id: int
    key: bytes
    kind: str = "fire"
    module: str = "rylr998"
    address: int = 0  # the node module's address (RYLR) or E32 address
    gateway_address: int = 1
    network_id: int = 18
    channel: int = 23
    e32_mode: str = "transparent"
    gateway_e32_target: tuple[int, int, int] | None = None
    hold_ms: int = 0
    battery_mv: int = 3900
    settings: dict[str, Any] = field(default_factory=dict)


class VirtualNode:
    """A LoRa button: the reference firmware, a virtual module, a button, an LED."""

    def __init__(self, air: Air, spec: NodeSpec, workdir: Path, seed: int | None = None) -> None:
        fw = load_firmware()
        self.spec = spec
        self.uart = UartShim()
        if spec.module in ("rylr896", "rylr998"):
            self.module: VirtualModule = VirtualRylr(
                air, self.uart, address=spec.address or spec.node_id % 65535, network_id=spec.network_id
            )
            radio = fw.siaga_radio.RylrRadio(self.uart, spec.gateway_address)
            for command in radio.setup_commands(self.module.address, spec.network_id, 923_000_000, "9,7,1,12"):
                radio.command(command)
            self.uart.read()  # the module's +OK answers
        else:
            self.module = VirtualE32(air, self.uart, address=spec.address, channel=spec.channel, mode=spec.e32_mode)
            radio = fw.siaga_radio.E32Radio(self.uart, spec.gateway_e32_target)
        self.button = VirtualPin(1)  # pulled up: 0 while pressed
        self._release: threading.Thread | None = None
        #: One press at a time: the demo panel and drills press from threads of their own.
        self._press_lock = threading.Lock()
        #: Presses let go after PRESS_CONFIRM_TIMEOUT_S without the firmware counting them (or seeing the release).
        self.unconfirmed = 0
        self.led = VirtualPin(0)
        #: The case switch: 1 when the case is open (``open_case``).
        self.tamper = VirtualPin(0)
        self.battery = _Battery(spec.battery_mv)
        settings = {"HOLD_MS": spec.hold_ms, **spec.settings}
        config = SimpleNamespace(NODE_ID=spec.node_id, KEY=spec.key.hex(), KIND=spec.kind, **settings)
        workdir.mkdir(parents=True, exist_ok=True)
        rng = random.Random(seed)
        stem = str(workdir / f"node-{spec.node_id}")
        self.node = fw.siaga_node.Node(
            config,
            radio,
            self.button,
            self.led,
            _Clock(),
            fw.siaga_node.file_counter(stem + ".counter"),
            memo=fw.siaga_node.FileStorage(stem + ".press"),
            battery=self.battery,
            tamper=self.tamper,
            rng=rng.random,
        )
        self._wake = threading.Event()
        self._fw = fw
        self._calls: collections.deque[Callable[[], None]] = collections.deque()
        self._changed = threading.Condition()
        self._stopping = False
        #: (LED pattern, confirmed presses, button as debounced) as last told to waiters on ``_changed``
        self._seen = (self.node.pattern, self.node.stats["presses"], self.node.button_down)
        self.uart.on_data = self._wake.set
        self.button.on_change = lambda level: self._wake.set()
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"node-{spec.node_id}", daemon=True)
        self._thread.start()

    @property
    def pattern(self) -> str:
        return self.node.pattern

    def press(self, hold_s: float | None = None, *, confirm: bool | None = None) -> None:
        """Press the button (and hold it for hold-to-confirm nodes), then release.

        Like a person, it first lets go of a press still held, and waits past
        the debounce time, so that two presses are two presses. With
        ``confirm`` (the default when no ``hold_s`` is given) the button is
        also held until the firmware has confirmed the press: the firmware
        samples the button when its thread runs, and on a starved test machine
        that thread may not run at all during a 100 ms press, which a
        microcontroller's loop never fails to do. Without it, ``hold_s`` is
        held for exactly that long (a bump that must not count).
        """
        with self._press_lock:
            previous = self._release
            if previous is not None:
                previous.join()
                time.sleep(0.08)  # a person's finger, not a wait for the system: longer than the debounce
            confirm = hold_s is None if confirm is None else confirm
            hold = max(hold_s if hold_s is not None else self.spec.hold_ms / 1000 + 0.1, 0.06)
            presses = self.node.stats["presses"]
            self.button.value(0)
            self._release = threading.Thread(
                target=self._hold_then_release, args=(hold, presses if confirm else None), daemon=True
            )
            self._release.start()

    def _hold_then_release(self, hold: float, confirm_after: int | None) -> None:
        """The finger on the button: ``hold`` seconds, and until the firmware counts a press past ``confirm_after``.

        Confirmed, it is also let go until the firmware has seen it let go: the next press must not
        look like this one held on.
        """
        released_at = time.monotonic() + hold
        confirmed = True
        if confirm_after is not None:
            with self._changed:
                confirmed = self._changed.wait_for(
                    lambda: self.node.stats["presses"] > confirm_after, PRESS_CONFIRM_TIMEOUT_S
                )
        time.sleep(max(0.0, released_at - time.monotonic()))  # the finger's time, not a wait for the system
        self.button.value(1)
        if confirm_after is not None:
            with self._changed:
                confirmed = (
                    self._changed.wait_for(lambda: not self.node.button_down, PRESS_CONFIRM_TIMEOUT_S) and confirmed
                )
        if not confirmed:
            self.unconfirmed += 1
            log.warning(
                "node %s: its firmware did not take a press within %.0f s", self.spec.node_id, PRESS_CONFIRM_TIMEOUT_S
            )

    def send_test(self) -> None:
        """Send the protocol's TEST frame (the dashboard stores it, never an alarm), from the node's own thread."""
        self._calls.append(lambda: self.node._send_event(self._fw.siaga_proto.TEST, 0, self.node.clock.ms()))
        self._wake.set()

    def open_case(self, opened: bool = True) -> None:
        """Someone opens (or closes) the button's case: its tamper switch."""
        self.tamper.value(1 if opened else 0)
        self._wake.set()

    def wait_for_pattern(self, pattern: str, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.node.pattern == pattern, timeout)

    def _run(self) -> None:
        try:
            while not self._stopping:
                while self._calls:  # what other threads asked of the firmware (send_test), run here
                    self._calls.popleft()()
                wait_ms = self.node.poll()
                seen = (self.node.pattern, self.node.stats["presses"], self.node.button_down)
                if seen != self._seen:
                    self._seen = seen
                    with self._changed:
                        self._changed.notify_all()
                self._wake.wait(min(wait_ms, 100) / 1000)
                self._wake.clear()
        except BaseException as exc:  # reported to the test or the demo
            self.failure = exc
            raise

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(5)
        self.module.air.detach(self.module)  # type: ignore[attr-defined]
