"""Faults under load: every process killed with SIGKILL, the network cut, the disk full.

Each test runs the real broker, dashboard and gateway as separate processes
(``sim.stack``), presses 1,000 times across 20 buttons, breaks one thing in
the middle of the burst and mends it, then checks the dashboard's database:
every press the gateway accepted (answered with an event id: committed to its
outbox, or kept in memory when the disk was full) is stored exactly once, has
its alarm, and no button's presses were split over two alarms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sim.stack import GatewayProcess, SmallDisk, Stack

from .waiting import poll_until

pytestmark = pytest.mark.timeout(240)

BURST = 1000


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(tmp_path / "stack") as running:
        yield running


def burst(stack: Stack, faults: dict[int, Callable[[], None]]) -> None:
    """Press BURST times round the buttons; run ``faults[n]`` just before press n."""
    gw = stack.gws[0]
    for n in range(BURST):
        if n in faults:
            faults[n]()
        stack.press(gw, gw.buttons[n % len(gw.buttons)])


def broker_back(stack: Stack, gw: GatewayProcess) -> Callable[[], None]:
    """A fault step: start the broker again once ``gw`` has seen it gone, so the presses meanwhile really went in."""

    def back() -> None:
        stack.wait_gateway_disconnected(gw)
        stack.start_broker()

    return back


def summary(audit: dict) -> dict:
    """The audit with each list cut to its length and first ids, for a readable failure."""
    return {key: (f"{len(value)}: {value[:3]}" if isinstance(value, list) else value) for key, value in audit.items()}


def assert_nothing_lost_or_doubled(stack: Stack, *, min_accepted: int) -> dict:
    assert stack.wait_stored(60), f"not every accepted press reached the dashboard: {summary(stack.audit())}"
    assert stack.wait_gateways_drained(60), f"a gateway still holds events: {stack.gateway_health(stack.gws[0])}"
    audit = stack.audit()
    assert audit["lost"] == []
    assert audit["duplicate_rows"] == 0
    assert audit["without_alarm"] == []
    assert audit["buttons_with_two_alarms"] == []
    assert audit["alarms_miscounted"] == []
    assert audit["accepted"] >= min_accepted, summary(audit)
    return audit


def counters(stack: Stack) -> dict[str, int]:
    health = stack.gateway_health(stack.gws[0])
    assert health is not None
    return health["counters"]


def test_the_broker_killed_mid_burst(stack: Stack) -> None:
    # presses 300..449 really go in while the broker is gone
    burst(stack, {300: stack.kill_broker, 450: broker_back(stack, stack.gws[0])})
    assert_nothing_lost_or_doubled(stack, min_accepted=BURST)  # the outbox took every press meanwhile
    assert counters(stack)["mqtt_connects"] >= 2


def test_the_broker_killed_while_the_dashboard_is_away(stack: Stack) -> None:
    """The broker acknowledged presses 200..399 and queued them for the absent dashboard;
    its SIGKILL loses that queue (saved every 30 s). The gateways' receipts bring them back."""
    back = broker_back(stack, stack.gws[0])
    burst(stack, {200: stack.kill_dashboard, 400: stack.kill_broker, 450: back, 600: stack.start_dashboard})
    assert_nothing_lost_or_doubled(stack, min_accepted=BURST)
    assert counters(stack).get("events_resent", 0) >= 1  # the broker's loss was real, and made good


def test_presses_a_broker_without_its_state_dropped_go_again_when_the_dashboard_is_back(tmp_path: Path) -> None:
    """The broker comes back without its state while the dashboard is away; the gateway reconnects first and
    the broker acknowledges its presses with no session to give them to. The dashboard's return in a new
    session (``resync`` in its presence) brings them at once: with a 10 min receipt timeout nothing else
    would within this test's time."""
    with Stack(tmp_path / "stack", buttons_per_gateway=2, receipt_timeout_s=600) as stack:
        gw = stack.gws[0]
        assert stack.broker is not None
        stack.kill_dashboard()
        stack.kill_broker()
        stack.broker.forget_state()
        stack.wait_gateway_disconnected(gw)
        for button in gw.buttons:
            stack.press(gw, button)
        stack.start_broker()
        # The broker took them, and had no one to give them to.
        poll_until(lambda: counters(stack).get("events_acknowledged", 0), lambda n: n >= 2, timeout=30)
        assert stack.stored_ids() == set()
        stack.start_dashboard()
        assert stack.wait_stored(60), summary(stack.audit())
        assert counters(stack)["dashboard_resyncs"] >= 1
        assert counters(stack)["events_resent"] >= 2


def test_the_gateway_killed_mid_burst(stack: Stack) -> None:
    gw = stack.gws[0]
    burst(stack, {300: lambda: stack.kill_gateway(gw), 301: lambda: stack.start_gateway(gw)})
    audit = assert_nothing_lost_or_doubled(stack, min_accepted=BURST - 2)
    assert audit["unanswered"] <= 2  # at most the press it died in (and the one during its restart)


def test_the_dashboard_killed_mid_burst(stack: Stack) -> None:
    burst(stack, {300: stack.kill_dashboard, 450: stack.start_dashboard})
    assert_nothing_lost_or_doubled(stack, min_accepted=BURST)


def test_the_network_between_gateway_and_broker_cut_mid_burst(stack: Stack) -> None:
    gw = stack.gws[0]
    burst(stack, {300: lambda: stack.cut_network(gw), 600: lambda: stack.restore_network(gw)})
    assert_nothing_lost_or_doubled(stack, min_accepted=BURST)
    assert gw.relay.refused >= 1  # it really tried to reconnect while the network was down


@pytest.mark.skipif(SmallDisk.available() is not None, reason=str(SmallDisk.available()))
def test_the_gateways_disk_full_mid_burst(tmp_path: Path) -> None:
    with Stack(tmp_path / "stack", small_disk=True) as stack:
        disk = stack.disks[stack.gws[0].gw_id]
        burst(stack, {300: disk.fill, 600: disk.free})
        assert_nothing_lost_or_doubled(stack, min_accepted=BURST)
        seen = counters(stack)
        assert seen["events_unstored"] >= 1 and seen["outbox_errors"] >= 1  # the disk really was full


@pytest.mark.skipif(SmallDisk.available() is not None, reason=str(SmallDisk.available()))
def test_a_full_disk_while_the_broker_is_down_keeps_presses_in_memory(tmp_path: Path) -> None:
    """The limit of what can be promised: these presses live only in the gateway's memory
    (docs/reliability.md); they arrive once the broker is back, as long as the gateway is not restarted."""
    with Stack(tmp_path / "stack", small_disk=True) as stack:
        disk = stack.disks[stack.gws[0].gw_id]
        burst(stack, {300: disk.fill, 350: stack.kill_broker, 500: broker_back(stack, stack.gws[0]), 700: disk.free})
        assert_nothing_lost_or_doubled(stack, min_accepted=BURST)
        assert counters(stack)["events_unstored"] >= 150
