# Siaga LoRa button: the node's logic (MicroPython and CPython).
#
# Hardware is passed in (button and LED pins, a radio driver, a clock, a
# counter store), so the same code runs on an ESP32 / RP2040 board through
# main.py and under CPython in the simulator through small shims.
#
# The node keeps no thread: poll() does everything that is due and returns how
# many milliseconds it may wait (or sleep) before the next call.

import os

import siaga_proto as proto

OFF = "off"
SENDING = "sending"
RECEIVED = "received"
HELP_COMING = "help_coming"

# LED (on ms, off ms); None: steady.
BLINK = {SENDING: (100, 300), RECEIVED: (500, 500)}

DEFAULTS = {
    "HOLD_MS": 0,  # hold-to-confirm: the press counts only after this long
    "DEBOUNCE_MS": 30,
    "HEARTBEAT_S": 60,  # "still here", also carries the battery voltage
    "RETRY_BASE_MS": 1500,  # first retry after this, doubling...
    "RETRY_MAX_MS": 30000,  # ...up to this; an alarm is retried until acknowledged
    "ALARM_POLL_S": 30,  # while an alarm is open: ask the gateway for news this often
    "ALARM_TIMEOUT_S": 1800,  # stop waiting for "resolved" after this
    "BATTERY_CHECK_S": 600,
    "LOW_BATTERY_MV": 3400,
    "LOW_BATTERY_REPEAT_S": 86400,
    # Within this long of the last indication applied only newer news counts
    # (a guard against reordering); after it any different news does, so one
    # forged with a huge (alarm, rev) is replaced by the next genuine one.
    "REORDER_WINDOW_MS": 2000,
}


def setting(cfg, name):
    return getattr(cfg, name, DEFAULTS.get(name))


class UnwrappingClock:
    """Milliseconds that never wrap. MicroPython's ticks_ms() wraps (after about
    12 days on an ESP32), so its ticks_diff() steps are added up into an
    unbounded integer, which every deadline below can compare safely."""

    def __init__(self, ticks_ms, ticks_diff):
        self._ticks_ms = ticks_ms
        self._ticks_diff = ticks_diff
        self._last = ticks_ms()
        self._total = 0

    def ms(self):
        now = self._ticks_ms()
        self._total += self._ticks_diff(now, self._last)
        self._last = now
        return self._total


class CounterLost(Exception):
    """Both counter slots exist but neither can be read: the node must not start
    again from 0 (the gateway would refuse every frame as a replay)."""


class FileStorage:
    """A small text file, replaced whole: written to a temporary file, then renamed."""

    def __init__(self, path):
        self.path = path

    def exists(self):
        try:
            os.stat(self.path)
            return True
        except OSError:
            return False

    def read(self):
        try:
            with open(self.path) as handle:
                return handle.read().strip()
        except OSError:
            return ""

    def write(self, text):
        temporary = self.path + ".tmp"
        with open(temporary, "w") as handle:
            handle.write(text)
        try:
            os.rename(temporary, self.path)
        except OSError:  # file systems that will not rename over a file
            try:
                os.remove(self.path)
            except OSError:
                pass
            os.rename(temporary, self.path)


class CounterStore:
    """The frame counter, kept across resets without wearing out the flash.

    At start the node reads the reserved value R, continues from R and
    reserves R + BLOCK; only every BLOCK-th frame writes again. A reset skips
    at most BLOCK counters and never reuses one. Two slots, written in turn,
    so that a power cut while writing one leaves the other.
    """

    BLOCK = 16

    def __init__(self, slot_a, slot_b):
        self.slots = [slot_a, slot_b]
        self.stored = [-1, -1]  # what each slot holds (-1: nothing readable)
        existing = 0
        for index, slot in enumerate(self.slots):
            if slot.exists():
                existing += 1
                try:
                    self.stored[index] = int(slot.read())
                except ValueError:
                    pass
        if existing and max(self.stored) < 0:
            raise CounterLost("counter slots unreadable: provision this node again")
        self.value = max(max(self.stored), 0)
        self.reserved = self.value
        self._reserve()

    def _reserve(self):
        # Overwrite the older slot: the newer one keeps a value above every
        # counter used so far, whatever a power cut does to this write.
        self.reserved = self.value + self.BLOCK
        older = 0 if self.stored[0] <= self.stored[1] else 1
        self.slots[older].write(str(self.reserved))
        self.stored[older] = self.reserved

    def next(self):
        self.value += 1
        if self.value >= self.reserved:
            self._reserve()
        return self.value


def file_counter(path):
    return CounterStore(FileStorage(path + ".a"), FileStorage(path + ".b"))


class Node:
    def __init__(
        self, cfg, radio, button, led, clock, counter, memo=None, battery=None, tamper=None, rng=None, log=None
    ):
        if cfg.KIND not in ("fire", "sapa"):
            raise ValueError("KIND must be 'fire' or 'sapa'")
        self.cfg = cfg
        self.node_id = cfg.NODE_ID
        self.key = bytes.fromhex(cfg.KEY)
        self.kind = proto.SAPA if cfg.KIND == "sapa" else proto.FIRE
        self.radio = radio
        self.button = button  # .value(): 0 while pressed (wired to ground, pull-up)
        self.led = led  # .value(0/1)
        self.clock = clock  # .ms(): monotonic milliseconds
        self.battery = battery  # .mv() or None
        self.tamper = tamper  # .value(): 1 when the case is open, or None
        self.rng = rng or (lambda: 0.5)
        self.log = log or (lambda *args: None)
        self.counter = counter  # CounterStore
        self.memo = memo  # remembers an unacknowledged press across a reset (FileStorage or None)
        now = clock.ms()
        self.pending = None  # the one event in flight, waiting for an ack: dict
        self.queue = []  # events waiting for their turn: [(type, flags)]
        self.episode_start = 0  # event counter of the press that opened the current alarm (0: none)
        self.episode_until = 0
        self.last_indication = None  # (alarm, rev)
        self.last_indication_at = 0  # clock.ms() when it was applied
        self.pattern = OFF
        self.pattern_since = now
        self.next_heartbeat = now + 1000 * setting(cfg, "HEARTBEAT_S")
        self.next_poll = 0
        self.next_battery = now
        self.last_low_battery = None
        self.battery_mv = 0
        self._raw = 1
        self._raw_since = now
        self._stable = 1
        self._pressed_at = None
        self._press_fired = False
        self._tampered = False
        self._woken = False
        # presses: confirmed presses of the button, sent or not (one while a press is in flight adds nothing)
        self.stats = {"presses": 0, "sent": 0, "retries": 0, "acks": 0, "indications": 0, "rejected": 0}
        if memo is not None and memo.read() == "press":
            # A reset (a brown-out while sending?) cut a press short: send it again.
            self._send_event(proto.PRESS, 0, now)

    # -- public --------------------------------------------------------------

    def poll(self):
        now = self.clock.ms()
        self._read_button(now)
        self._read_tamper(now)
        for frame in self.radio.poll():
            self._on_frame(frame, now)
        self._retry_if_due(now)
        self._heartbeat_if_due(now)
        self._battery_if_due(now)
        self._end_episode_if_due(now)
        self._drive_led(now)
        return self._wait(now)

    def may_sleep(self):
        """True when nothing is pending and no alarm is open: sleeping loses nothing."""
        return self.pending is None and not self.queue and not self.episode_start and self.pattern == OFF

    @property
    def button_down(self):
        """The button as debounced: pressed (True) or released."""
        return self._stable == 0

    def button_woke(self):
        """From the button's interrupt: the board may have slept through a short press."""
        self._woken = True

    def press(self, held=False):
        """A confirmed press (also what the button handling calls)."""
        flags = proto.FLAG_HELD if held else 0
        self.stats["presses"] += 1
        self._send_event(proto.PRESS, flags, self.clock.ms())

    # -- button and tamper ---------------------------------------------------------

    def _read_button(self, now):
        raw = self.button.value()
        if self._woken:
            self._woken = False
            if raw == 1 and self._stable == 1 and setting(self.cfg, "HOLD_MS") == 0:
                self.press()  # pressed and released while the board slept
                return
        if raw != self._raw:
            self._raw, self._raw_since = raw, now
        if raw != self._stable and now - self._raw_since >= setting(self.cfg, "DEBOUNCE_MS"):
            self._stable = raw
            if raw == 0:
                self._pressed_at, self._press_fired = now, False
            else:
                self._pressed_at = None
        hold = setting(self.cfg, "HOLD_MS")
        if self._pressed_at is not None and not self._press_fired and now - self._pressed_at >= hold:
            self._press_fired = True
            self.press(held=hold > 0)

    def _read_tamper(self, now):
        if self.tamper is None:
            return
        opened = self.tamper.value() == 1
        was_open, self._tampered = self._tampered, opened
        if opened and not was_open:
            self._send_event(proto.TAMPER, proto.FLAG_TAMPER, now)

    # -- sending ---------------------------------------------------------------------

    def _flags(self, extra):
        flags = extra
        if self.battery_mv and self.battery_mv < setting(self.cfg, "LOW_BATTERY_MV"):
            flags |= proto.FLAG_LOW_BATTERY
        if self._tampered:
            flags |= proto.FLAG_TAMPER
        return flags

    def _transmit(self, frame_type, event_counter, flags):
        counter = self.counter.next()
        event_counter = event_counter or counter
        frame = proto.encode_uplink(
            self.key, self.node_id, counter, event_counter, frame_type, self.kind, self.battery_mv, self._flags(flags)
        )
        self.radio.send(frame)
        self.stats["sent"] += 1
        return counter, event_counter

    def _send_event(self, frame_type, flags, now):
        """Send an event, keeping one in flight: the gateway takes an event counter
        not above the last one it accepted as a retransmission, so an older event
        must never follow a newer one."""
        pending = self.pending
        if pending is not None:
            if frame_type != proto.PRESS:
                if (frame_type, flags) not in self.queue:
                    self.queue.append((frame_type, flags))
                return
            if pending["type"] == proto.PRESS:
                return  # the alarm is already on its way; this press adds nothing
            # A press goes first; the report it interrupts is sent again afterwards, as a new event.
            self.queue.insert(0, (pending["type"], pending["flags"]))
            self.pending = None
        _, event_counter = self._transmit(frame_type, 0, flags)
        self.pending = {"type": frame_type, "event": event_counter, "flags": flags, "attempt": 1}
        self.pending["due"] = now + self._retry_delay(1)
        if frame_type == proto.PRESS:
            if self.memo is not None:
                self.memo.write("press")
            self._set_pattern(SENDING, now)

    def _done(self, now):
        """The event in flight is acknowledged: the next one waiting goes."""
        finished, self.pending = self.pending, None
        if finished is not None and finished["type"] == proto.PRESS and self.memo is not None:
            self.memo.write("")
        if self.queue:
            frame_type, flags = self.queue.pop(0)
            self._send_event(frame_type, flags, now)

    def _retry_delay(self, attempt):
        base = setting(self.cfg, "RETRY_BASE_MS")
        delay = min(base * (1 << min(attempt - 1, 10)), setting(self.cfg, "RETRY_MAX_MS"))
        return int(delay * (0.75 + 0.5 * self.rng()))  # jitter: retries from many nodes do not collide again

    def _retry_if_due(self, now):
        pending = self.pending
        if pending is None or now < pending["due"]:
            return
        pending["attempt"] += 1
        self._transmit(pending["type"], pending["event"], pending["flags"] | proto.FLAG_RETRY)
        self.stats["retries"] += 1
        pending["due"] = now + self._retry_delay(pending["attempt"])

    def _heartbeat_if_due(self, now):
        in_alarm = self.episode_start and self.pending is None
        if in_alarm and now >= self.next_poll:
            self._transmit(proto.HEARTBEAT, 0, 0)  # a poll: the gateway answers with the alarm's news
            self.next_poll = now + 1000 * setting(self.cfg, "ALARM_POLL_S")
        if now >= self.next_heartbeat:
            if self.pending is None:
                self._transmit(proto.HEARTBEAT, 0, 0)
            self.next_heartbeat = now + 1000 * setting(self.cfg, "HEARTBEAT_S")

    def _battery_if_due(self, now):
        if self.battery is None or now < self.next_battery:
            return
        self.next_battery = now + 1000 * setting(self.cfg, "BATTERY_CHECK_S")
        self.battery_mv = self.battery.mv()
        low = self.battery_mv < setting(self.cfg, "LOW_BATTERY_MV")
        repeat = 1000 * setting(self.cfg, "LOW_BATTERY_REPEAT_S")
        if low and (self.last_low_battery is None or now - self.last_low_battery >= repeat):
            self.last_low_battery = now
            self._send_event(proto.LOW_BATTERY, proto.FLAG_LOW_BATTERY, now)

    # -- receiving ----------------------------------------------------------------------

    def _on_frame(self, frame, now):
        try:
            message = proto.decode_downlink(self.key, self.node_id, frame)
        except proto.FrameError:
            self.stats["rejected"] += 1  # not for us, forged, or damaged
            return
        if message[0] == "ack":
            self._on_ack(message[2], now)
        else:
            self._on_indicate(message[1], message[2], message[3], message[4], now)

    def _on_ack(self, event_counter, now):
        pending = self.pending
        if pending is None or pending["event"] != event_counter:
            return  # an ack for something already done (or replayed): nothing to do
        self.stats["acks"] += 1
        if pending["type"] == proto.PRESS:
            if not self.episode_start:
                self.episode_start = event_counter
            self.episode_until = now + 1000 * setting(self.cfg, "ALARM_TIMEOUT_S")
            self.next_poll = now + 1000 * setting(self.cfg, "ALARM_POLL_S")
        self._done(now)

    def _on_indicate(self, event_counter, alarm, rev, state, now):
        # Only news about the alarm this node raised, and never older news.
        start = self.episode_start or (self.pending or {}).get("event", 0)
        if not start or not start <= event_counter <= self.counter.value:
            return
        if not self._is_news(alarm, rev, now):
            return
        self.last_indication = (alarm, rev)
        self.last_indication_at = now
        self.stats["indications"] += 1
        if self.pending is not None and self.pending["type"] == proto.PRESS and event_counter >= self.pending["event"]:
            self._done(now)  # the dashboard has it: an implicit ack
        if not self.episode_start:
            self.episode_start = event_counter
        self.episode_until = now + 1000 * setting(self.cfg, "ALARM_TIMEOUT_S")
        if state == proto.RECEIVED:
            self._set_pattern(RECEIVED, now)
        elif state in (proto.ACKNOWLEDGED, proto.DISPATCHED):
            self._set_pattern(HELP_COMING, now)
        elif state == proto.RESOLVED:
            self._set_pattern(OFF, now)
            self.episode_start = 0

    def _is_news(self, alarm, rev, now):
        """The same (alarm, rev) again is never news (the gateway repeats it after
        every poll). Shortly after the last one only newer news counts: alarm
        numbers grow, so a late copy of an earlier state cannot end or colour
        this alarm. After REORDER_WINDOW_MS the latest news wins, so an
        indication with a forged huge (alarm, rev) cannot pin the LED."""
        last = self.last_indication
        if last is None:
            return True
        if (alarm, rev) == last:
            return False
        recent = now - self.last_indication_at < setting(self.cfg, "REORDER_WINDOW_MS")
        return (alarm, rev) > last or not recent

    def _end_episode_if_due(self, now):
        pressing = self.pending is not None and self.pending["type"] == proto.PRESS
        if self.episode_start and now >= self.episode_until and not pressing:
            self.episode_start = 0
            self._set_pattern(OFF, now)

    # -- LED --------------------------------------------------------------------------------

    def _set_pattern(self, pattern, now):
        if pattern != self.pattern:
            self.pattern, self.pattern_since = pattern, now

    def _led_on(self, now):
        if self.pattern == OFF:
            return False
        if self.pattern == HELP_COMING:
            return True
        on, off = BLINK[self.pattern]
        return (now - self.pattern_since) % (on + off) < on

    def _drive_led(self, now):
        self.led.value(1 if self._led_on(now) else 0)

    def _wait(self, now):
        """Milliseconds until poll() has something to do (button edges wake the board earlier)."""
        deadlines = [self.next_heartbeat, self.next_battery if self.battery is not None else self.next_heartbeat]
        if self.pending is not None:
            deadlines.append(self.pending["due"])
        if self.episode_start:
            deadlines.append(self.next_poll if self.pending is None else self.pending["due"])
            deadlines.append(self.episode_until)
        if self.pattern in BLINK:
            on, off = BLINK[self.pattern]
            phase = (now - self.pattern_since) % (on + off)
            deadlines.append(now + (on - phase if phase < on else on + off - phase))
        if self._raw != self._stable or (self._pressed_at is not None and not self._press_fired):
            deadlines.append(now + 10)  # debouncing or holding: look again soon
        return max(0, min(deadlines) - now)
