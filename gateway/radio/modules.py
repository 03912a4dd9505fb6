"""Drivers for the LoRa modules a gateway's serial port may hold.

Each driver is a serial protocol (``connection_made`` / ``data_received`` /
``connection_lost``) that turns the module's byte stream into received frames
and sends frames out. The parsing is sans-io (``RylrParser``,
``firmware_bridge.radio.StreamDeframer``), apart from the threads that talk
to the port.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from firmware_bridge import radio
from firmware_bridge.counters import Counters
from firmware_bridge.periodic import Guard

from .serialport import SerialLink

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Received:
    """A frame heard by the module, with what the module knows about it."""

    frame: bytes
    rssi: int | None = None
    snr: float | None = None
    #: the sending module's address (RYLR), where a reply goes
    source: int | None = None


@dataclass(frozen=True, slots=True)
class RylrStatus:
    """An RYLR driver's view of its module, for health."""

    #: the module accepted its settings (AT+PARAMETER answered +OK) since the port opened
    configured: bool
    #: the module's last +ERR answer: an RYLR's errors are its own, not the port's
    last_error: str | None
    #: commands waiting for the module
    queued: int


@dataclass(frozen=True, slots=True)
class E32Status:
    """An E32/E22 driver's view of its module, for health."""

    #: "transparent" or "fixed"
    mode: str
    #: bytes skipped to find the next frame in the stream (garbage, damaged frames)
    skipped_bytes: int
    #: frames whose CRC did not match
    bad_crc: int


OnFrame = Callable[[Received], None]
OnBad = Callable[[radio.RadioError], None]


# -- REYAX RYLR896 / RYLR998 ---------------------------------------------------------------


class Said(Enum):
    """The RYLR's lines that carry nothing but themselves."""

    OK = "+OK"
    #: The module (re)started: after power-up, a power dip or its reset pin.
    READY = "+READY"


@dataclass(frozen=True, slots=True)
class Err:
    code: int


@dataclass(frozen=True, slots=True)
class Rcv:
    address: int
    data: str
    rssi: int
    snr: float


@dataclass(frozen=True, slots=True)
class Unparsed:
    line: str


RylrMessage = Said | Err | Rcv | Unparsed
#: What answers a command: +OK or +ERR.
Answer = Said | Err


class RylrParser:
    """Lines from an RYLR module -> messages (sans-io).

    ``+RCV=<address>,<length>,<data>,<rssi>,<snr>`` is read by its length:
    the data may contain commas.
    """

    MAX_LINE = 512

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[RylrMessage]:
        self._buffer += data
        messages: list[RylrMessage] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > self.MAX_LINE:  # no line end in sight: garbage
                    messages.append(Unparsed(self._buffer[:80].decode("ascii", "replace")))
                    self._buffer.clear()
                return messages
            line = bytes(self._buffer[:end]).strip(b"\r\n\x00 ")
            del self._buffer[: end + 1]
            if line:
                messages.append(self.parse_line(line.decode("ascii", "replace")))

    @staticmethod
    def parse_line(line: str) -> RylrMessage:
        if line in _SAID:
            return Said(line)
        if line.startswith("+ERR="):
            try:
                return Err(int(line[5:]))
            except ValueError:
                return Unparsed(line)
        if line.startswith("+RCV="):
            try:
                address, length, rest = line[5:].split(",", 2)
                size = int(length)
                data, tail = rest[:size], rest[size:]
                if len(data) != size or not tail.startswith(","):
                    return Unparsed(line)
                rssi, snr = tail[1:].split(",")
                return Rcv(int(address), data, int(rssi), float(snr))
            except ValueError:
                return Unparsed(line)
        return Unparsed(line)


_SAID = frozenset(said.value for said in Said)

#: An RYLR +ERR code's meaning (REYAX AT command guide).
RYLR_ERRORS = {
    1: "no line end (\\r\\n) after the command",
    2: "command does not start with AT",
    4: "unknown command",
    5: "data length does not match",
    10: "transmit timeout",
    12: "CRC error",
    13: "data longer than 240 bytes",
    14: "failed to write flash",
    15: "unknown failure",
    17: "last transmission not finished",
    18: "preamble value not allowed",
    19: "RX failed, header error",
    20: "smart receiving power mode time setting error",
}


@dataclass
class _Command:
    text: str
    created: float
    is_send: bool = False


class RylrDriver:
    """REYAX RYLR896 / RYLR998: AT commands; frames travel as base64 text.

    The module handles one command at a time and answers each with +OK or
    +ERR, so commands go through a queue and a writer thread that waits for
    the answer. An ack that waited longer than ``stale_s`` (the port was away)
    is dropped: the node has retried meanwhile and will be acknowledged again.
    """

    #: Commands waiting at most; more means the module is gone or stuck (the oldest sends go first).
    QUEUE_LIMIT = 256

    def __init__(
        self,
        *,
        address: int,
        network_id: int,
        band: int,
        parameter: str,
        counters: Counters,
        stale_s: float = 5.0,
    ) -> None:
        self.settings = (address, network_id, band, parameter)
        self._counters = counters
        self._stale_s = stale_s
        self._parser = RylrParser()
        self._commands: queue.Queue[_Command | None] = queue.Queue(self.QUEUE_LIMIT)
        self._answer: queue.Queue[Answer] = queue.Queue()
        self._port: SerialLink | None = None
        self._stopping = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="siaga-rylr", daemon=True)
        self._guard = Guard("LoRa writer", on_error=lambda: self._counters.add("lora_writer_errors"))
        self.on_frame: OnFrame = lambda received: None
        self.on_bad: OnBad = lambda error: None
        self.configured = False
        self.last_error: str | None = None

    # -- life cycle --------------------------------------------------------------

    def start(self) -> None:
        self._writer.start()

    def stop(self) -> None:
        self._stopping.set()
        self._commands.put(None)
        self._answer.put(Err(-1))  # release a writer waiting for an answer
        self._writer.join(5)

    def setup_commands(self) -> list[str]:
        address, network_id, band, parameter = self.settings
        return [
            "AT",
            f"AT+ADDRESS={address}",
            f"AT+NETWORKID={network_id}",
            f"AT+BAND={band}",
            f"AT+PARAMETER={parameter}",
        ]

    # -- serial protocol -------------------------------------------------------------

    def connection_made(self, port: SerialLink) -> None:
        self._port = port
        self.configured = False
        self._drain_answers()
        for text in self.setup_commands():
            self._enqueue(_Command(text, time.monotonic()))

    def data_received(self, data: bytes) -> None:
        for message in self._parser.feed(data):
            if isinstance(message, Rcv):
                self._received(message)
            elif message is Said.OK or isinstance(message, Err):
                self._answer.put(message)
            elif message is Said.READY:
                # The module restarted (power dip, reset pin): configure it again.
                self._counters.add("lora_module_resets")
                log.warning("LoRa module reset (+READY); configuring it again")
                if self._port is not None:
                    self.connection_made(self._port)
            else:
                self._counters.add("lora_unparsed_lines")
                log.debug("LoRa module said %r", message.line)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._port = None
        self.configured = False
        self._answer.put(Err(-1))  # a command in flight will never be answered now

    # -- sending -------------------------------------------------------------------------

    def send(self, frame: bytes, to: int | None) -> None:
        text = radio.to_text(frame)
        self._enqueue(_Command(f"AT+SEND={to or 0},{len(text)},{text}", time.monotonic(), is_send=True))

    def _enqueue(self, command: _Command) -> None:
        try:
            self._commands.put_nowait(command)
        except queue.Full:
            self._counters.add("lora_queue_full")  # dropped: a node retries, setup runs again on reopen

    def _answer_timeout(self, command: _Command) -> float:
        """How long the module may take: a send answers after its airtime."""
        if not command.is_send:
            return 2.0
        payload = len(command.text.split(",", 2)[-1])
        return radio.rylr_airtime_s(self.settings[3], payload) * 1.5 + 1.0

    def _received(self, message: Rcv) -> None:
        try:
            frame = radio.from_text(message.data)
        except radio.RadioError as exc:
            self.on_bad(exc)
            return
        self.on_frame(Received(frame, message.rssi, message.snr, message.address))

    def _drain_answers(self) -> None:
        while True:
            try:
                self._answer.get_nowait()
            except queue.Empty:
                return

    @property
    def failure(self) -> BaseException | None:
        """What ended the writer thread, if anything did (one failed command does not)."""
        return self._guard.failure

    def _write_loop(self) -> None:
        with self._guard.lifetime():
            while not self._stopping.is_set():
                command = self._commands.get()
                if command is None:
                    return
                with self._guard.round(f"command {command.text[:40]!r} failed"):
                    self._write(command)

    def _write(self, command: _Command) -> None:
        """Send one command and wait for the module's answer to it."""
        if command.is_send and time.monotonic() - command.created > self._stale_s:
            self._counters.add("lora_stale_sends_dropped")
            return
        port = self._port
        self._drain_answers()  # a late answer to an earlier command must not pass for this one's
        if port is None or not port.write((command.text + "\r\n").encode("ascii")):
            if command.is_send:  # setup runs again when the port is back
                self._counters.add("lora_sends_failed")
            return
        try:
            answer = self._answer.get(timeout=self._answer_timeout(command))
        except queue.Empty:
            self._counters.add("lora_answer_timeouts")
            log.warning("LoRa module did not answer %r", command.text[:40])
            return
        if isinstance(answer, Err) and answer.code < 0:
            return  # the port went away (or we are stopping) before the module answered
        if isinstance(answer, Err):
            meaning = RYLR_ERRORS.get(answer.code, "unknown error")
            self.last_error = f"+ERR={answer.code} ({meaning}) to {command.text[:40]}"
            self._counters.add(f"lora_err_{answer.code}")
            log.error("LoRa module: %s", self.last_error)
        elif command.is_send:
            self._counters.add("lora_frames_sent")
        if command.text.startswith("AT+PARAMETER"):
            self.configured = answer is Said.OK

    def status(self) -> RylrStatus:
        return RylrStatus(configured=self.configured, last_error=self.last_error, queued=self._commands.qsize())


# -- Ebyte E32 / E22 ---------------------------------------------------------------------------


class E32Driver:
    """Ebyte E32 / E22 in transparent or fixed mode: frames wrapped for the byte stream.

    In fixed mode the gateway answers to the broadcast address FF FF on its
    channel (each node checks the node id in the frame).
    """

    def __init__(self, *, mode: str, channel: int, counters: Counters) -> None:
        self.mode = mode
        self.channel = channel
        self._counters = counters
        self._deframer = radio.StreamDeframer()
        self._port: SerialLink | None = None
        self.on_frame: OnFrame = lambda received: None
        self.on_bad: OnBad = lambda error: None

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def connection_made(self, port: SerialLink) -> None:
        self._port = port
        self._deframer = radio.StreamDeframer()  # nothing half-read survives a reopen

    def data_received(self, data: bytes) -> None:
        bad_before = self._deframer.bad_crc
        for frame in self._deframer.feed(data):
            self.on_frame(Received(frame))
        for _ in range(self._deframer.bad_crc - bad_before):
            self.on_bad(radio.BadCrc("stream frame with a bad CRC (damaged on the air or the wire)"))

    def connection_lost(self, exc: BaseException | None) -> None:
        self._port = None

    def send(self, frame: bytes, to: int | None) -> None:
        prefix = bytes([0xFF, 0xFF, self.channel]) if self.mode == "fixed" else b""
        port = self._port
        if port is None or not port.write(prefix + radio.to_stream(frame)):
            self._counters.add("lora_sends_failed")
        else:
            self._counters.add("lora_frames_sent")

    def status(self) -> E32Status:
        return E32Status(mode=self.mode, skipped_bytes=self._deframer.skipped_bytes, bad_crc=self._deframer.bad_crc)
