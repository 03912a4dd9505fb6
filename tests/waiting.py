"""Waiting for state that has no event to wait on: poll it until it is what the test needs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class PollTimeout(AssertionError, TimeoutError):
    """The polled value never satisfied the predicate: a test failure, and a timeout."""


def poll_until(
    fetch: Callable[[], T],
    predicate: Callable[[T], object] = bool,
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
    pause: Callable[[float], object] = time.sleep,
) -> T:
    """Call ``fetch`` until ``predicate`` holds for its value, and return that value.

    Between tries, ``pause(interval)`` (``time.sleep`` unless an event's ``wait`` can
    cut it short). After ``timeout`` seconds, raise :class:`PollTimeout` naming ``what``
    and the last value fetched.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if predicate(value):
            return value
        if time.monotonic() >= deadline:
            raise PollTimeout(f"{what}: not within {timeout} s (last: {value!r})")
        pause(interval)
