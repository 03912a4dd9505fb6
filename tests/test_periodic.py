"""The periodic jobs (supervision, escalation, the watchdog) outlive a failing round."""

from __future__ import annotations

import threading

import pytest

from firmware_bridge.periodic import Periodic


class Flaky(Periodic):
    def __init__(self) -> None:
        super().__init__("flaky", 0.01)
        self.turns = 0
        self.recovered = threading.Event()
        self.torn_down = threading.Event()

    def turn(self) -> None:
        self.turns += 1
        if self.turns <= 2:
            raise RuntimeError(f"round {self.turns} failed")
        self.recovered.set()

    def teardown(self) -> None:
        self.torn_down.set()


def test_a_failing_round_is_counted_and_the_next_one_comes() -> None:
    job = Flaky().start()
    try:
        assert job.recovered.wait(5), "the job stopped after a failing round"
        assert job.errors == 2 and job.last_error == "RuntimeError('round 2 failed')"
        assert job.is_alive() and job.failure is None
    finally:
        job.stop()
    assert job.torn_down.is_set() and not job.is_alive()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # re-raised on purpose
def test_what_is_not_an_exception_ends_the_job_and_is_kept() -> None:
    class Exiting(Periodic):
        def turn(self) -> None:
            raise SystemExit(3)

    job = Exiting("exiting", 0.01).start()
    job._thread.join(5)
    assert not job.is_alive() and isinstance(job.failure, SystemExit)
