"""The gateway's health report: built from typed parts, and a failed report never stops the next one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from firmware_bridge.payloads import ButtonHealth, Health, decode_health
from gateway.app import Gateway
from gateway.config import GatewayConfig
from gateway.system import cpu_temperature, read_system

from .waiting import poll_until


def test_the_gateway_reports_typed_health_that_validates(gateway: Gateway) -> None:
    health = gateway.health()
    assert isinstance(health, Health) and health.gw == gateway.config.id
    assert health.outbox.depth == 0 and health.outbox.memory_only == 0 and health.outbox_ok is True
    assert health.mqtt_connected is True and health.pump_alive is True and health.radio is None
    assert health.buttons == tuple(
        ButtonHealth(b.id, pressed=False, pressed_for_s=None) for b in gateway.config.buttons
    )
    assert decode_health(health.encode()) == health
    assert health.system is not None and health.system.disk_free_mb is not None and health.system.disk_free_mb > 0
    assert health.system.disk_used_pct is not None and 0 <= health.system.disk_used_pct <= 100


def test_the_machine_figures_are_read_where_the_machine_has_them(tmp_path: Path) -> None:
    zone = tmp_path / "temp"
    zone.write_text("48312\n")  # what a Pi's /sys/class/thermal/thermal_zone0/temp holds: millidegrees
    system = read_system(tmp_path / "not-made-yet" / "outbox.sqlite", zone)
    assert system.cpu_temp_c == 48.3
    assert system.disk_free_mb is not None and system.disk_free_mb > 0  # the nearest existing folder's disk
    assert read_system(tmp_path, tmp_path / "no-such-zone").cpu_temp_c is None
    zone.write_text("garbage")
    assert cpu_temperature(zone) is None


def test_a_failed_health_report_is_counted_and_logged_and_the_next_one_goes_out(
    make_gateway_config: Callable[..., GatewayConfig],
    start_gateway: Callable[..., Gateway],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = start_gateway(replace(make_gateway_config(), health_interval_s=0.05))
    publish = gateway.link.publish_health
    published = threading.Event()
    failures = iter([RuntimeError("broker hiccup")])

    def flaky(payload: bytes) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        publish(payload)
        published.set()

    with caplog.at_level(logging.ERROR):
        monkeypatch.setattr(gateway.link, "publish_health", flaky)
        assert published.wait(10), "no health went out after the failed one"
    assert gateway.counters.get("health_errors") == 1
    assert any("could not publish health" in record.getMessage() for record in caplog.records)
    assert poll_until(gateway.liveness, lambda problem: problem is None, what="the gateway stayed live") is None
