# The node's LoRa module drivers (MicroPython and CPython).
#
# Both take a UART-like object: write(bytes), read() -> bytes or None
# (MicroPython's non-blocking UART), and return whole frames from poll().

import siaga_proto as proto


class RylrRadio:
    """REYAX RYLR896 / RYLR998 over AT commands; frames travel as base64 text."""

    def __init__(self, uart, gateway_address, log=None):
        self.uart = uart
        self.gateway_address = gateway_address
        self.log = log or (lambda *args: None)
        self._line = b""
        self.errors = 0
        self.last_rssi = None
        self.last_snr = None

    def setup_commands(self, address, network_id, band, parameter):
        return [
            "AT+ADDRESS=%d" % address,
            "AT+NETWORKID=%d" % network_id,
            "AT+BAND=%d" % band,
            "AT+PARAMETER=%s" % parameter,
        ]

    def command(self, text):
        self.uart.write((text + "\r\n").encode())

    def send(self, frame):
        text = proto.to_text(frame)
        self.command("AT+SEND=%d,%d,%s" % (self.gateway_address, len(text), text))

    def poll(self):
        data = self.uart.read()
        frames = []
        if not data:
            return frames
        self._line += data
        if len(self._line) > 1024 and b"\n" not in self._line:
            self._line = b""  # garbage without a line end: drop it
            self.errors += 1
        while b"\n" in self._line:
            line, self._line = self._line.split(b"\n", 1)
            line = line.strip()
            if line.startswith(b"+RCV="):
                frame = self._received(line[5:])
                if frame is not None:
                    frames.append(frame)
            elif line.startswith(b"+ERR="):
                self.errors += 1
                self.log("radio error", line)
        return frames

    def _received(self, rest):
        # +RCV=<address>,<length>,<data>,<rssi>,<snr>: the data is read by its
        # length, since data may contain commas.
        try:
            _address, rest = rest.split(b",", 1)
            length, rest = rest.split(b",", 1)
            length = int(length)
            data = rest[:length]
            frame = proto.from_text(data)
            tail = rest[length + 1 :].split(b",")
            try:
                self.last_rssi = int(tail[0])
                self.last_snr = float(tail[1])
            except (ValueError, IndexError):
                pass  # signal figures are for diagnostics; the frame still counts
            return frame
        except (ValueError, IndexError, proto.FrameError):
            self.errors += 1
            return None


class E32Radio:
    """Ebyte E32 / E22 in transparent or fixed mode; frames are wrapped for the byte stream."""

    def __init__(self, uart, fixed_target=None):
        # fixed_target: (ADDH, ADDL, CHAN) of the gateway's module in fixed mode.
        self.uart = uart
        self.prefix = bytes(fixed_target) if fixed_target else b""
        self.deframer = proto.Deframer()
        self.errors = 0
        self.last_rssi = None
        self.last_snr = None

    def setup_commands(self, *args):
        return []  # configured with M0/M1 and the module's own parameter bytes, not AT commands

    def command(self, text):
        pass

    def send(self, frame):
        self.uart.write(self.prefix + proto.to_stream(frame))

    def poll(self):
        data = self.uart.read()
        if not data:
            return []
        return self.deframer.feed(data)
