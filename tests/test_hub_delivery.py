"""``Hub.wait_delivered``: a committer waits for the event loop to hand on the boards' messages, never unbounded.

Real asyncio loops in their own threads, the dashboard's own hub and bridge;
the writers only record what the loop hands them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from dashboard.ingest.hub import DELIVERIES_PER_TURN, AsyncSubscription, Hub, LiveMessage, LoopBridge

#: Far longer than any drain here: a wait that returns True did not run out.
GENEROUS_S = 30.0


class Recorder:
    """A stream writer that keeps what the loop hands it."""

    def __init__(self) -> None:
        self.messages: list[LiveMessage] = []

    def offer(self, message: LiveMessage) -> None:
        self.messages.append(message)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-hub-loop", daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(GENEROUS_S)
    loop.close()


def _boards(hub: Hub, bridge: LoopBridge, count: int) -> list[Recorder]:
    """``count`` fire boards on ``bridge``'s loop, each with its writer attached (in the loop's thread)."""
    recorders = [Recorder() for _ in range(count)]
    subscriptions = [hub.subscribe({"fire"}, bridge=bridge) for _ in range(count)]

    async def attach() -> None:
        for subscription, recorder in zip(subscriptions, recorders, strict=True):
            assert isinstance(subscription, AsyncSubscription)
            subscription.attach(recorder)

    asyncio.run_coroutine_threadsafe(attach(), bridge.loop).result(GENEROUS_S)
    return recorders


def waited(hub: Hub, timeout: float) -> bool:
    """``hub.wait_delivered(timeout)`` in a thread of its own, as a committer calls it.

    Not in the test's main thread: the browser tests keep an event loop running
    there for the whole session, and in a loop's thread the wait refuses to wait.
    """
    answers: list[bool] = []
    waiter = threading.Thread(target=lambda: answers.append(hub.wait_delivered(timeout)))
    waiter.start()
    waiter.join(GENEROUS_S + timeout)
    assert not waiter.is_alive()
    return answers[0]


def _alarm(n: int) -> LiveMessage:
    return LiveMessage("alarm", {"id": n, "kind": "fire"}, kind="fire")


def test_it_returns_once_the_loop_has_handed_every_board_its_message(loop: asyncio.AbstractEventLoop) -> None:
    hub = Hub()
    recorders = _boards(hub, LoopBridge(loop), DELIVERIES_PER_TURN * 2 + 5)  # three slices of the loop's turns
    message = _alarm(1)
    hub.publish(message)
    assert waited(hub, GENEROUS_S)
    assert all(recorder.messages == [message] for recorder in recorders)


def test_it_returns_at_once_when_nothing_waits_for_a_loop(loop: asyncio.AbstractEventLoop) -> None:
    hub = Hub()
    recorders = _boards(hub, LoopBridge(loop), 1)
    hub.publish(LiveMessage("alarm", {"id": 1, "kind": "sapa"}, kind="sapa"))  # not for a fire board
    assert waited(hub, 0.0)
    assert recorders[0].messages == []
    assert waited(Hub(), 0.0)  # no board at all


def test_it_gives_up_after_its_timeout_when_no_loop_drains() -> None:
    stalled = asyncio.new_event_loop()  # never run: what is pushed to it waits forever
    try:
        hub = Hub()
        hub.subscribe({"fire"}, bridge=LoopBridge(stalled))
        hub.publish(_alarm(1))
        assert waited(hub, 0.05) is False
    finally:
        stalled.close()


def test_it_never_waits_in_an_event_loop_thread(loop: asyncio.AbstractEventLoop) -> None:
    hub = Hub()
    recorders = _boards(hub, LoopBridge(loop), 1)

    async def publish_and_wait() -> bool:
        hub.publish(_alarm(1))  # its drain can only run after this coroutine yields
        return hub.wait_delivered(GENEROUS_S)

    # Had it waited, the loop could not drain and this would run out long before the wait did.
    assert asyncio.run_coroutine_threadsafe(publish_and_wait(), loop).result(GENEROUS_S / 3) is False
    assert waited(hub, GENEROUS_S)
    assert [message.data["id"] for message in recorders[0].messages] == [1]


def test_a_closed_loop_holds_no_publisher_up() -> None:
    closed = asyncio.new_event_loop()
    closed.close()
    hub = Hub()
    hub.subscribe({"fire"}, bridge=LoopBridge(closed))
    hub.publish(_alarm(1))
    hub.publish(_alarm(2))
    assert waited(hub, 0.0)
