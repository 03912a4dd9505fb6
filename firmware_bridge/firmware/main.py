# Siaga LoRa button: MicroPython entry point (ESP32 or RP2040 board + RYLR998 or E32).
#
# Copy siaga_proto.py, siaga_radio.py, siaga_node.py, main.py and your
# node_config.py (see node_config_example.py) to the board's flash.

import time

import machine
import node_config as cfg
import siaga_node
import siaga_radio


class Clock:
    """Milliseconds that never wrap: ticks_ms() wraps (after ~12 days on ESP32), so
    add up ticks_diff() steps into an unbounded integer."""

    def __init__(self):
        self.last = time.ticks_ms()
        self.total = 0

    def ms(self):
        now = time.ticks_ms()
        self.total += time.ticks_diff(now, self.last)
        self.last = now
        return self.total


class Battery:
    def __init__(self, pin, divider):
        self.adc = machine.ADC(machine.Pin(pin))
        self.divider = divider

    def mv(self):
        return int(self.adc.read_uv() / 1000 * self.divider)


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
        Clock(),
        siaga_node.FileStorage("counter.txt"),
        battery,
        tamper,
        rng=lambda: (machine.rng() if hasattr(machine, "rng") else 0x7FFF) / 0xFFFFFF,
    )
    # A press must wake the board from light sleep.
    button.irq(trigger=machine.Pin.IRQ_FALLING, wake=getattr(machine, "SLEEP", None) or 0)
    while True:
        wait = node.poll()
        if node.may_sleep() and wait > 200 and hasattr(machine, "lightsleep"):
            # The radio module stays in receive mode; the MCU sleeps until the
            # next heartbeat or a button press.
            machine.lightsleep(wait)
        else:
            time.sleep_ms(min(wait, 20))


main()
