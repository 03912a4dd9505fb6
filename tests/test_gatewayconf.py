"""The gateway-config writer (sim.gatewayconf): what it writes, the gateway reads back as meant."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest

from firmware_bridge.payloads import Kind
from firmware_bridge.settings import parse_toml
from gateway.config import load_config, parse_config
from sim.gatewayconf import gateway_toml, site, toml_text, write_gateway_config

WIRED = {"id": "fire-1", "kind": "fire", "pin": 17, "led_pin": 27, "bounce_s": 0, "site": site("Pasar", -4.35, 122.37)}


def test_a_wired_gateway_reads_back_with_every_key(tmp_path: Path) -> None:
    path = write_gateway_config(
        tmp_path / "gateway.toml",
        "gw-a",
        data_dir=tmp_path / "data",
        health_interval_s=5,
        receipt_timeout_s=2.5,
        mqtt={"host": "127.0.0.1", "port": 1884, "username": "gw-a", "password": "pw", "keepalive": 5},
        buttons=[WIRED, {**WIRED, "id": "sapa-1", "kind": "sapa", "pin": 23, "led_pin": None, "hold_s": 0.3}],
    )
    config = load_config(path)
    assert (config.id, config.outbox_path) == ("gw-a", tmp_path / "data" / "outbox.sqlite")
    assert (config.health_interval_s, config.receipt_timeout_s) == (5.0, 2.5)
    assert (config.broker.host, config.broker.port, config.broker.username) == ("127.0.0.1", 1884, "gw-a")
    fire, sapa = config.buttons
    assert (fire.id, fire.kind, fire.pin, fire.led_pin, fire.bounce_s) == ("fire-1", Kind.FIRE, 17, 27, None)
    assert (sapa.kind, sapa.pin, sapa.led_pin, sapa.hold_s) == (Kind.SAPA, 23, None, 0.3)
    assert (fire.site.name, fire.site.lat, fire.site.lon) == ("Pasar", -4.35, 122.37)


def test_a_lora_gateway_with_a_nested_mqtt_table_reads_back(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text(toml_text({"keys": {"1001": bytes(16).hex()}}))
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("not checked until connect\n")
    text = gateway_toml(
        "gw-b",
        data_dir=tmp_path,
        mqtt={"port": 1883, "tls": {"ca_file": ca_file}},
        lora={"port": "loop://", "module": "e32", "keys_file": keys, "mode": "fixed", "channel": 23},
        lora_buttons=[{"id": "lora-1001", "node": 1001, "kind": "sapa", "label": "Los", "site": site("D", 1.0, 2.0)}],
    )
    config = parse_config(parse_toml(text, "lora.toml"))
    assert config.buttons == () and [b.id for b in config.lora_buttons] == ["lora-1001"]
    assert config.lora is not None
    assert (config.lora.port, config.lora.module, config.lora.mode, config.lora.keys) == (
        "loop://",
        "e32",
        "fixed",
        {1001: bytes(16)},
    )
    assert config.broker.tls is not None


@pytest.mark.parametrize(
    "awkward",
    ['a "quoted" label', "back\\slash C:\\tmp\\", "line\nbreak\ttab", "bell\x07 and del\x7f", "Kantor Camat ñ 東"],
)
def test_strings_are_quoted_so_that_they_read_back_unchanged(tmp_path: Path, awkward: str) -> None:
    button = {**WIRED, "label": awkward, "site": site(awkward, 0.0, 0.0)}
    data_dir = tmp_path / awkward.replace("\n", "_").replace("\x00", "_")
    config = parse_config(parse_toml(gateway_toml("gw-c", data_dir=data_dir, mqtt={}, buttons=[button]), "x"))
    assert (config.buttons[0].label, config.buttons[0].site.name) == (awkward, awkward)
    assert config.outbox_path == data_dir / "outbox.sqlite"


def test_values_of_every_kind_and_awkward_keys_round_trip() -> None:
    document = {
        "top": 1,
        "t": {"yes": True, "no": False, "big": 2**40, "neg": -3, "f": 0.1, "list": [1, "two", 3.5], "empty": []},
        "odd keys": {"a.b": "dotted", "": "blank", "1002": "digits"},
        "rows": [{"n": 1, "sub": {"x": "y"}}, {"n": 2}],
    }
    assert tomllib.loads(toml_text(document)) == document
    infinite = tomllib.loads(toml_text({"a": math.inf, "b": -math.inf, "c": math.nan}))
    assert infinite["a"] == math.inf and infinite["b"] == -math.inf and math.isnan(infinite["c"])


def test_a_none_value_is_left_out_and_an_unwritable_value_is_refused() -> None:
    assert tomllib.loads(toml_text({"t": {"kept": 1, "dropped": None}})) == {"t": {"kept": 1}}
    with pytest.raises(TypeError, match="no TOML form"):
        toml_text({"when": object()})


def test_a_gateway_id_with_a_dot_is_refused_with_a_clustered_broker_and_kept_with_one(tmp_path: Path) -> None:
    """nats-server 2.9 closes the connection on a topic with a '.': no press of that gateway would get through."""
    cluster = {"brokers": ["mqtt://10.0.0.1:1883", "mqtt://10.0.0.2:1883", "mqtt://10.0.0.3:1883"]}
    text = gateway_toml("pasar.andoolo", data_dir=tmp_path, mqtt=cluster, buttons=[WIRED])
    with pytest.raises(ValueError, match=r"key 'gateway.id'.*contains '\.'.*nats-server"):
        parse_config(parse_toml(text, "cluster.toml"))
    single = parse_config(parse_toml(gateway_toml("pasar.andoolo", data_dir=tmp_path, mqtt={}, buttons=[WIRED]), "x"))
    assert single.id == "pasar.andoolo"
