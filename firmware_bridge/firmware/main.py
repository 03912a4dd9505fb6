# Siaga LoRa button: MicroPython entry point (ESP32 or RP2040 board + RYLR998 or E32).
#
# Copy siaga_proto.py, siaga_radio.py, siaga_node.py, main.py and your
# node_config.py (see node_config_example.py) to the board's flash.

import os
import time

import machine
import node_config as cfg
import siaga_node
import siaga_radio


class Battery:
    def __init__(self, pin, divider):
        self.adc = machine.ADC(machine.Pin(pin))
        self.divider = divider

    def mv(self):
        if hasattr(self.adc, "read_uv"):  # ESP32
            microvolts = self.adc.read_uv()
        else:  # RP2040: 16-bit reading of 0..3.3 V
            microvolts = self.adc.read_u16() * 3300000 // 65535
        return int(microvolts / 1000 * self.divider)


def make_rng():
    try:
        import random

        random.seed(int.from_bytes(os.urandom(4), "big"))
        return random.random
    except (ImportError, AttributeError, NotImplementedError):
        return lambda: (int.from_bytes(os.urandom(2), "big") & 0xFFFF) / 65536


def wake_on_button(button, node):
    """Let a press wake the board from light sleep, and remember it for poll().
    Returns True where the port supports it (ESP32); elsewhere the board does not sleep."""
    try:
        import esp32

        esp32.wake_on_ext0(pin=button, level=esp32.WAKEUP_ALL_LOW)
    except (ImportError, AttributeError, ValueError, OSError):
        return False
    button.irq(trigger=machine.Pin.IRQ_FALLING, handler=lambda pin: node.button_woke())
    return True


def main():
    uart = machine.UART(cfg.UART_ID, baudrate=getattr(cfg, "BAUDRATE", 115200), tx=cfg.UART_TX, rx=cfg.UART_RX)
    button = machine.Pin(cfg.BUTTON_PIN, machine.Pin.IN, machine.Pin.PULL_UP)
    led = machine.Pin(cfg.LED_PIN, machine.Pin.OUT)
    tamper = None
    if getattr(cfg, "TAMPER_PIN", None) is not None:
        tamper = machine.Pin(cfg.TAMPER_PIN, machine.Pin.IN, machine.Pin.PULL_UP)
    battery = None
    if getattr(cfg, "BATTERY_PIN", None) is not None:
        battery = Battery(cfg.BATTERY_PIN, getattr(cfg, "BATTERY_DIVIDER", 2.0))
    if cfg.MODULE in ("rylr896", "rylr998"):
        radio = siaga_radio.RylrRadio(uart, cfg.GATEWAY_ADDRESS)
        for command in radio.setup_commands(cfg.MODULE_ADDRESS, cfg.NETWORK_ID, cfg.BAND, cfg.PARAMETER):
            radio.command(command)
            time.sleep_ms(200)
            uart.read()  # +OK
    else:
        radio = siaga_radio.E32Radio(uart, getattr(cfg, "FIXED_TARGET", None))
    node = siaga_node.Node(
        cfg,
        radio,
        button,
        led,
        siaga_node.UnwrappingClock(time.ticks_ms, time.ticks_diff),
        siaga_node.file_counter("counter"),
        memo=siaga_node.FileStorage("pending_press"),
        battery=battery,
        tamper=tamper,
        rng=make_rng(),
    )
    can_sleep = wake_on_button(button, node)
    watchdog = machine.WDT(timeout=60000) if hasattr(machine, "WDT") else None
    failures = 0
    while True:
        if watchdog is not None:
            watchdog.feed()
        try:
            wait = node.poll()
            failures = 0
        except Exception as exc:
            failures += 1
            print("siaga: error", exc)
            if failures > 10:
                machine.reset()  # the counter, and an unacknowledged press, survive the reset
            time.sleep_ms(1000)
            continue
        if can_sleep and node.may_sleep() and wait > 200:
            # The radio module stays in receive mode; the MCU sleeps until the
            # next heartbeat (at most 10 s, well inside the watchdog) or a press.
            machine.lightsleep(min(wait, 10000))
        else:
            time.sleep_ms(min(wait, 20))


main()
