"""The gateway's Prometheus listener: presses, receipts and radio frames move it; it never stops the gateway.

Real Mosquitto, the dashboard under uvicorn, gateways on mock pins and a
virtual LoRa module on a pty; every scrape is parsed whole by
prometheus_client's own parser.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from firmware_bridge import radio
from firmware_bridge.counters import Counters
from firmware_bridge.errors import ConfigError
from firmware_bridge.metrics import MetricsSettings, ScrapeAccess
from firmware_bridge.settings import parse_toml
from gateway.app import Gateway
from gateway.config import GatewayConfig, parse_config
from gateway.metrics import start_metrics
from sim.gatewayconf import gateway_document, toml_text
from sim.mosquitto import Mosquitto
from sim.radio import Air, Impairments, NodeSpec, VirtualNode
from sim.servers import DashboardServer

from .conftest import FIRE_1, SAPA_1, press
from .test_lora import FAST, KEYS, lora_parts, make_config, plugged_rylr, rylr_network
from .waiting import poll_until

TOKEN = "gateway-metrics-token-" + "g" * 32
Scrape = dict[str, list[Sample]]


def with_metrics(config: GatewayConfig, **settings: Any) -> GatewayConfig:
    """``config`` with its listener on a free port of this machine (0: chosen when it binds)."""
    access = settings.pop("access", ScrapeAccess(token=TOKEN))
    return dataclasses.replace(config, metrics=MetricsSettings(enabled=True, port=0, access=access, **settings))


def fetch(gateway: Gateway, token: str | None = TOKEN, path: str = "/metrics") -> tuple[int, str]:
    assert gateway.metrics is not None and gateway.metrics.port is not None
    request = urllib.request.Request(f"http://127.0.0.1:{gateway.metrics.port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape_text(gateway: Gateway) -> str:
    status, text = fetch(gateway)
    assert status == 200, text
    return text


def parse(text: str) -> Scrape:
    return {family.name: list(family.samples) for family in text_string_to_metric_families(text)}


def value(found: Scrape, family: str, sample: str | None = None, **labels: str) -> float | None:
    for item in found.get(family, []):
        if item.name == (sample or family) and all(item.labels.get(k) == v for k, v in labels.items()):
            return item.value
    return None


def eventually(gateway: Gateway, check: Callable[[Scrape], bool], what: str) -> Scrape:
    """Scrape until ``check`` holds: the gateway's counters move in its threads, nothing to wait on from outside."""
    return poll_until(lambda: parse(scrape_text(gateway)), check, timeout=15, interval=0.1, what=what)


def events(found: Scrape, stage: str) -> float | None:
    return value(found, "siaga_gateway_events", "siaga_gateway_events_total", stage=stage)


# -- what the listener shows -------------------------------------------------------------------------


def test_a_press_is_counted_from_the_outbox_to_the_dashboards_receipt(
    dashboard: DashboardServer,
    make_gateway_config: Callable[..., GatewayConfig],
    start_gateway: Callable[..., Gateway],
    pin_factory: MockFactory,
) -> None:
    gateway = start_gateway(with_metrics(make_gateway_config(buttons=[FIRE_1])))
    before = parse(scrape_text(gateway))
    assert events(before, "recorded") == 0 and value(before, "siaga_gateway_outbox_events") == 0
    assert value(before, "siaga_gateway_mqtt_connected") == 1
    uptime = value(before, "siaga_gateway_uptime_seconds")
    assert uptime is not None and uptime >= 0

    press(pin_factory, 17)
    after = eventually(gateway, lambda found: events(found, "receipted") == 1, "the press receipted by the dashboard")
    assert events(after, "recorded") == 1 and events(after, "published") == 1
    assert value(after, "siaga_gateway_presses", "siaga_gateway_presses_total") == 1
    assert value(after, "siaga_gateway_outbox_events") == 0
    assert value(after, "siaga_gateway_outbox_oldest_age_seconds") == 0
    receipts = value(after, "siaga_gateway_receipts", "siaga_gateway_receipts_total")
    assert receipts is not None and receipts >= 1
    assert value(after, "siaga_gateway_metrics_scrape_errors", "siaga_gateway_metrics_scrape_errors_total") == 0


def test_the_token_is_required(
    make_gateway_config: Callable[..., GatewayConfig], start_gateway: Callable[..., Gateway]
) -> None:
    gateway = start_gateway(with_metrics(make_gateway_config(buttons=[FIRE_1])))
    for token in (None, TOKEN[:-1], TOKEN + "x"):
        status, text = fetch(gateway, token)
        assert status == 401 and "siaga_" not in text
    assert fetch(gateway, path="/other")[0] == 404
    assert fetch(gateway)[0] == 200


def test_an_address_outside_the_allow_list_is_refused(
    make_gateway_config: Callable[..., GatewayConfig], start_gateway: Callable[..., Gateway]
) -> None:
    elsewhere = ScrapeAccess(allow=(ipaddress.ip_network("10.99.0.0/16"),))
    gateway = start_gateway(with_metrics(make_gateway_config(buttons=[FIRE_1]), access=elsewhere))
    assert fetch(gateway, token=None)[0] == 403


@pytest.fixture
def air() -> Iterator[Air]:
    medium = Air(Impairments(time_scale=0.1), seed=11)
    yield medium
    medium.close()


def test_radio_frames_and_rejections_are_counted_by_reason(
    dashboard: DashboardServer, tmp_path: Path, air: Air, mosquitto: Mosquitto, start_gateway: Callable[..., Gateway]
) -> None:
    host = plugged_rylr(air, tmp_path / "ttyLORA0")
    parts = lora_parts(tmp_path, host.path, nodes=(1001,), buttons=[FIRE_1])
    gateway = start_gateway(with_metrics(make_config(tmp_path, mosquitto, parts)))
    assert gateway.radio is not None and gateway.radio.link.connected.wait(10)
    stranger = radio.encode_uplink(radio.Uplink(4242, 1, 1, radio.FrameType.PRESS, radio.Kind.FIRE), bytes(16))
    for data in (radio.to_text(stranger).encode(), b"not*base64!"):
        air.inject(data, rylr_network(), source=666, destination=1)
    node = VirtualNode(air, NodeSpec(1001, KEYS[1001], kind="fire", settings=FAST), tmp_path / "nodes", seed=1)
    try:
        node.press()
        assert node.wait_for_pattern("received", 10)
    finally:
        node.close()

    def counted(found: Scrape) -> bool:
        rejections = [value(found, "siaga_gateway_radio_rejections", "siaga_gateway_radio_rejections_total", reason=r)
                      for r in ("unknown_node", "bad_encoding")]  # fmt: skip
        frames = value(found, "siaga_gateway_radio_frames", "siaga_gateway_radio_frames_total", outcome="event")
        return rejections == [1, 1] and frames == 1

    found = eventually(gateway, counted, "the refused frames by reason and the press's frame")
    assert value(found, "siaga_gateway_radio_module_up") == 1
    assert value(found, "siaga_gateway_radio_nodes") == 1
    host.close()


# -- privacy -----------------------------------------------------------------------------------------


def quiet(text: str) -> list[str]:
    """A scrape without what moves by itself (time, the machine's figures)."""
    moving = ("uptime", "disk", "cpu_temperature")
    return sorted(
        f"{sample.name}{sorted(sample.labels.items())} {sample.value}"
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not any(word in family.name for word in moving)
    )


def test_on_a_gateway_with_sapa_buttons_presses_leave_no_trace(
    dashboard: DashboardServer,
    make_gateway_config: Callable[..., GatewayConfig],
    start_gateway: Callable[..., Gateway],
    pin_factory: MockFactory,
) -> None:
    gateway = start_gateway(with_metrics(make_gateway_config(buttons=[FIRE_1, SAPA_1])))
    before = scrape_text(gateway)
    for family in ("siaga_gateway_events", "siaga_gateway_outbox_events", "siaga_gateway_presses"):
        assert family not in parse(before), family

    press(pin_factory, 23)  # the SAPA button, and the fire button too: a count over both would tell
    press(pin_factory, 17)
    assert gateway.pump.wait_drained(10)
    assert gateway.wait_for_indication("sapa-1", "received", 10)
    assert gateway.wait_for_indication("fire-1", "received", 10)
    after = scrape_text(gateway)
    assert quiet(after) == quiet(before)
    for text in (before, after):
        for name in ("sapa", SAPA_1["id"], SAPA_1["label"], SAPA_1["site"]["name"], FIRE_1["id"], "gw-test"):
            assert name not in text.lower() if name == "sapa" else name not in text


def test_with_sapa_configured_a_mixed_gateway_shows_its_presses(
    make_gateway_config: Callable[..., GatewayConfig], start_gateway: Callable[..., Gateway], pin_factory: MockFactory
) -> None:
    config = with_metrics(make_gateway_config(), sapa=True, sapa_purpose="site survey of response load")
    gateway = start_gateway(config)
    press(pin_factory, 23)
    found = eventually(gateway, lambda f: events(f, "recorded") == 1, "the SAPA press counted")
    assert SAPA_1["id"] not in scrape_text(gateway)
    assert value(found, "siaga_gateway_presses", "siaga_gateway_presses_total") == 1


# -- never in the way --------------------------------------------------------------------------------


def test_a_port_in_use_leaves_the_gateway_running_without_metrics(
    make_gateway_config: Callable[..., GatewayConfig], start_gateway: Callable[..., Gateway], pin_factory: MockFactory
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config = dataclasses.replace(
            make_gateway_config(buttons=[FIRE_1]),
            metrics=MetricsSettings(enabled=True, port=port, access=ScrapeAccess(token=TOKEN)),
        )
        gateway = start_gateway(config)
    assert gateway.metrics is None
    assert gateway.counters.get("metrics_listen_errors") == 1
    press(pin_factory, 17)
    assert gateway.counters.get("events_recorded") == 1  # the press went into the outbox all the same
    assert gateway.outbox.depth() == 1


def test_a_failing_scrape_is_a_500_counted_and_the_next_one_answers(
    make_gateway_config: Callable[..., GatewayConfig], start_gateway: Callable[..., Gateway], caplog: Any
) -> None:
    gateway = start_gateway(make_gateway_config(buttons=[FIRE_1]))
    config = with_metrics(gateway.config, access=ScrapeAccess())
    failing = [True]

    def read_health() -> Any:
        if failing[0]:
            raise OSError("the disk went away")
        return gateway.health()

    counters = Counters()
    listener = start_metrics(config, read_health, counters)
    assert listener is not None and listener.port is not None
    try:
        url = f"http://127.0.0.1:{listener.port}/metrics"
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(url, timeout=10)
        assert failed.value.code == 500
        assert counters.get("metrics_scrape_errors") == 1
        assert "a scrape failed" in caplog.text
        failing[0] = False
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            assert "siaga_gateway_uptime_seconds" in response.read().decode()
    finally:
        listener.stop()


# -- configuration -----------------------------------------------------------------------------------


def read_gateway(tmp_path: Path, metrics: dict[str, Any]) -> GatewayConfig:
    document = gateway_document("gw-test", mqtt={"host": "127.0.0.1", "port": 1883}, buttons=[FIRE_1])
    document["gateway"]["data_dir"] = str(tmp_path / "data")
    document["metrics"] = metrics
    return parse_config(parse_toml(toml_text(document), "gateway.toml"))


def test_the_metrics_section_is_read_and_defaults_to_this_machine(tmp_path: Path) -> None:
    assert read_gateway(tmp_path, {}).metrics == MetricsSettings()
    token = tmp_path / "metrics.token"
    token.write_text(TOKEN)
    settings = read_gateway(tmp_path, {"enabled": True, "token_file": str(token), "port": 9400}).metrics
    assert (settings.enabled, settings.address, settings.port, settings.access.token) == (
        True,
        "127.0.0.1",
        9400,
        TOKEN,
    )


@pytest.mark.parametrize(
    ("metrics", "key"),
    [
        ({"enabled": True, "address": "localhost"}, "metrics.address"),
        ({"enabled": True, "port": 0}, "metrics.port"),
        ({"enabled": True, "allow": ["not-an-address"]}, "metrics.allow"),
        ({"enabled": True, "sapa": True}, "metrics.sapa_purpose"),
        ({"enabled": True, "token_file": "/nonexistent/token"}, "metrics.token_file"),
    ],
)
def test_a_wrong_metrics_section_names_the_key(tmp_path: Path, metrics: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        read_gateway(tmp_path, metrics)
    assert error.value.key == key and "gateway.toml" in str(error.value)
