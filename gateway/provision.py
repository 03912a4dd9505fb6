"""``siaga-gateway --config gateway.toml provision-node NODE``: a key for a new LoRa button.

Creates a random key, stores it in the gateway's keys file (mode 0600) and
writes the node's ``node_config.py`` with the radio settings of this
gateway's module, ready to copy to the board with the firmware.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from firmware_bridge import radio
from firmware_bridge.errors import ConfigError
from firmware_bridge.payloads import Kind
from firmware_bridge.settings import read_toml

from .config import RYLR_MODULES, read_keys


def write_keys(path: Path, keys: dict[int, bytes]) -> None:
    """Write the keys file atomically: readable by its owner only, or, replacing a file, with that file's
    owner, group and mode (enrolment makes it 0640 root:siaga so that the service, run as ``siaga``, reads it;
    ``sudo siaga-gateway provision-node`` must not take that away)."""
    text = "# Siaga LoRa node keys: node id = 16-byte key (hex). Secret: mode 0600, never in a repository.\n[keys]\n"
    text += "".join(f'"{node}" = "{key.hex()}"\n' for node, key in sorted(keys.items()))
    try:
        before: os.stat_result | None = path.stat()
    except FileNotFoundError:
        before = None
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        if before is not None:
            if os.geteuid() == 0:
                os.fchown(handle.fileno(), before.st_uid, before.st_gid)
            os.fchmod(handle.fileno(), stat.S_IMODE(before.st_mode) & 0o640)  # never wider than owner rw, group r
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


def node_config(node: int, key: bytes, kind: str, lora: dict, gateway_address: int = 0) -> str:
    module = lora.get("module", "rylr998")
    lines = [
        f"# node_config.py for Siaga LoRa button {node}: copy to the board with the firmware.",
        "# The key is secret: whoever has it can raise alarms in this button's name.",
        f"NODE_ID = {node}",
        f'KEY = "{key.hex()}"',
        f'KIND = "{kind}"',
        f'MODULE = "{module}"',
        "UART_ID = 1",
        "UART_TX = 17",
        "UART_RX = 16",
        "BUTTON_PIN = 4",
        "LED_PIN = 2",
        "BATTERY_PIN = None",
        f"HOLD_MS = {1000 if kind == Kind.SAPA else 0}",
    ]
    if module in RYLR_MODULES:
        lines += [
            "BAUDRATE = 115200",
            f"MODULE_ADDRESS = {node % 65535 or 1}",
            f"GATEWAY_ADDRESS = {gateway_address}  # 0: every gateway in range hears it",
            f"NETWORK_ID = {lora.get('network_id', 18)}",
            f"BAND = {lora.get('band', 923_000_000)}",
            f'PARAMETER = "{lora.get("parameter", "9,7,1,12")}"',
        ]
    else:
        fixed = lora.get("mode") == "fixed"
        address = int(lora.get("e32_address", 1))
        target = f"({address >> 8}, {address & 0xFF}, {lora.get('channel', 23)})" if fixed else "None"
        lines += ["BAUDRATE = 9600", f"FIXED_TARGET = {target}"]
    return "\n".join(lines) + "\n"


def provision(config_path: str, node: int, kind: str, *, force: bool = False) -> str:
    """Create and store a key for ``node``; return the node's config file text."""
    if not 1 <= node <= radio.MAX_COUNTER:
        raise ConfigError(f"node id {node} is not a number from 1 to 4294967295")
    root = read_toml(config_path)
    lora = root.section("lora").data
    if not lora.get("keys_file"):
        raise ConfigError(f"{config_path}: key 'lora.keys_file': missing (where the node keys are kept)")
    keys_file = Path(lora["keys_file"])
    keys = read_keys(keys_file) if keys_file.exists() else {}
    if node in keys and not force:
        raise ConfigError(f"{keys_file}: node {node} already has a key (--force gives it a new one)")
    keys[node] = os.urandom(radio.KEY_LEN)
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    write_keys(keys_file, keys)
    return node_config(node, keys[node], kind, lora)
