"""``siaga-sim load`` against a real Mosquitto and a real dashboard: its numbers are the dashboard's numbers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dashboard.db import connect
from firmware_bridge.broker import BrokerSettings
from sim.cli import main
from sim.load import LoadError, LoadSettings, parse_broker_url, run_load
from sim.mosquitto import Mosquitto
from sim.servers import DashboardServer, dashboard_config

from .waiting import poll_until

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]


def broker_url(broker: Mosquitto) -> str:
    return f"mqtt://{broker.host}:{broker.port}"


def stored(dashboard: DashboardServer, sql: str, *params: object) -> list[tuple]:
    conn = connect(dashboard.config["DATABASE"])
    try:
        return [tuple(row) for row in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


def in_own_thread(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a thread of its own: ``asyncio.run`` refuses a thread whose loop runs
    (the browser tests' Playwright keeps one running in the main thread for the whole session)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result(timeout=120)


def gateway_states(dashboard: DashboardServer, prefix: str) -> dict[str, tuple[str, str]]:
    rows = stored(dashboard, "SELECT gw, state, reason FROM gateways WHERE gw LIKE ?", f"{prefix}-%")
    return {gw: (state, reason) for gw, state, reason in rows}


def test_the_generators_counts_are_the_dashboards(mosquitto: Mosquitto, dashboard: DashboardServer) -> None:
    settings = LoadSettings(
        gateways=5, buttons=4, rate=10, duration_s=2.5, broker=broker_url(mosquitto), grace_s=10, seed=11
    )
    report = in_own_thread(asyncio.run, run_load(settings))

    assert report.connected == 5 and report.buttons == 20
    assert report.presses_sent > 5
    assert report.ok and report.missing_receipts == 0 and report.missing_receipt_ids == ()
    assert report.receipts == report.presses_sent
    assert report.presses_indicated == report.presses_sent and report.missing_indications == 0
    assert report.indications >= 1 and report.publish_errors == 0 and report.reconnects == 0
    for latency in (report.receipt_latency, report.indication_latency):
        assert latency.count == report.presses_sent
        assert 0 < latency.p50_ms <= latency.p95_ms <= latency.p99_ms <= latency.max_ms
    # every receipt follows the dashboard's commit, so the store already holds each press
    assert stored(dashboard, "SELECT COUNT(*) FROM events WHERE gw LIKE 'load-gw-%' AND type = 'press'") == [
        (report.presses_sent,)
    ]
    assert dashboard.ingest.counters.get("events_stored") == report.presses_sent
    kinds = dict(stored(dashboard, "SELECT kind, COUNT(*) FROM buttons WHERE gw LIKE 'load-gw-%' GROUP BY kind"))
    assert kinds == {"fire": 15, "sapa": 5}
    assert report.to_dict()["presses_sent"] == report.presses_sent
    # a clean stop announces itself
    poll_until(
        lambda: gateway_states(dashboard, "load-gw"),
        lambda states: len(states) == 5 and set(states.values()) == {("offline", "shutdown")},
        what="every virtual gateway offline after a clean stop",
    )


def test_a_press_without_a_receipt_fails_the_run(mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]) -> None:
    """No dashboard behind the broker: nothing is receipted, the run says which presses and exits 1."""
    argv = ["load", "--broker", broker_url(mosquitto), "--gateways", "2", "--buttons", "2", "--rate", "20"]
    status = in_own_thread(main, [*argv, "--duration", "0.5", "--grace-s", "0.3", "--seed", "3", "--json"])

    out, err = capsys.readouterr()
    result = json.loads(out)
    assert status == 1 and err == ""
    assert result["presses_sent"] > 0 and result["receipts"] == 0 and not result["ok"]
    assert result["missing_receipts"] == result["presses_sent"]
    assert len(result["missing_receipt_ids"]) == min(20, result["presses_sent"])
    assert result["receipt_ms"] == {"p50": None, "p95": None, "p99": None, "max": None}


def test_a_broker_url_must_be_mqtt_or_mqtts() -> None:
    assert parse_broker_url("mqtts://broker.example:8884").port == 8884
    assert parse_broker_url("mqtts://broker.example").port == 8883
    assert parse_broker_url("mqtt://broker.example").port == 1883
    with pytest.raises(LoadError):
        parse_broker_url("http://broker.example")
    assert in_own_thread(main, ["load", "--broker", "tcp://127.0.0.1:1", "--duration", "1"]) == 2


# -- accounts of the project's ACL, and the last will ------------------------------------------------------

GATEWAYS = ("acl-gw-0001", "acl-gw-0002")
ACCOUNTS = {"dashboard": "dashboard-secret-1", **{gw: f"{gw}-secret" for gw in GATEWAYS}}


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[Mosquitto, DashboardServer]]:
    """Mosquitto with the project's ACL and an account per gateway, and a dashboard logged in as ``dashboard``."""
    with Mosquitto(tmp_path / "secured", users=ACCOUNTS, acl=True) as broker:
        login = BrokerSettings(broker.host, broker.port, username="dashboard", password=ACCOUNTS["dashboard"])
        with DashboardServer(dashboard_config(tmp_path / "dashboard", login)) as dashboard:
            yield broker, dashboard


def test_gateways_log_in_as_themselves_and_their_last_will_says_offline(
    tmp_path: Path, secured: tuple[Mosquitto, DashboardServer]
) -> None:
    broker, dashboard = secured
    passwords = tmp_path / "passwords"
    passwords.mkdir()
    for gw in GATEWAYS:
        (passwords / f"{gw}.password").write_text(ACCOUNTS[gw] + "\n")
    command = [sys.executable, "-m", "sim", "load", "--broker", broker_url(broker), "--password-dir", str(passwords)]
    command += ["--prefix", "acl-gw", "--gateways", "2", "--buttons", "3", "--rate", "4", "--json"]
    generator = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # the ACL lets each one publish only as itself: its inventory and its presses reach the store
        poll_until(
            lambda: stored(dashboard, "SELECT gw, COUNT(*) FROM events WHERE gw LIKE 'acl-gw-%' GROUP BY gw"),
            lambda rows: len(rows) == 2,
            timeout=20,
            what="presses of both gateways stored",
        )
        assert stored(dashboard, "SELECT COUNT(*) FROM buttons WHERE gw LIKE 'acl-gw-%'") == [(6,)]
        assert gateway_states(dashboard, "acl-gw") == {gw: ("online", "connected") for gw in GATEWAYS}
    finally:
        os.kill(generator.pid, signal.SIGKILL)  # a crash: no clean stop, no DISCONNECT
        _, err = generator.communicate(timeout=10)
    assert generator.returncode == -signal.SIGKILL, err.decode()
    poll_until(
        lambda: gateway_states(dashboard, "acl-gw"),
        lambda states: set(states.values()) == {("offline", "lost")},
        what="the broker published both last wills",
    )
