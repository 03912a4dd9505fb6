"""The periodic jobs (supervision, escalation, the watchdog) and every guarded thread outlive a failing round."""

from __future__ import annotations

import threading

import pytest

from firmware_bridge.periodic import Guard, Periodic

from .waiting import poll_until


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
    poll_until(job.is_alive, lambda alive: not alive, what="the job never ended")
    assert not job.is_alive() and isinstance(job.failure, SystemExit)


# -- Guard: the policy, for a thread that runs its own loop ------------------------------------------


def test_a_guarded_round_that_raises_is_counted_reported_and_absorbed() -> None:
    reported: list[str] = []
    guard = Guard("reader", on_error=lambda: reported.append("counted"))
    with guard.round("cannot read") as ok:
        pass
    with guard.round("cannot read") as broken:
        raise RuntimeError("port gone")
    assert ok.failed is None
    assert isinstance(broken.failed, RuntimeError)  # the caller learns it failed, and may wait before the next
    assert guard.errors == 1 and guard.last_error == "RuntimeError('port gone')"
    assert reported == ["counted"]
    assert guard.failure is None


def test_a_guarded_round_lets_what_is_not_an_exception_through() -> None:
    guard = Guard("reader", on_error=lambda: pytest.fail("only an Exception is a failed round"))
    with pytest.raises(KeyboardInterrupt), guard.round():
        raise KeyboardInterrupt
    assert guard.errors == 0


def test_a_guarded_round_absorbs_only_what_it_is_told_to() -> None:
    """A webhook sender retries a busy store, but a bug after a post must not repost it forever."""
    counted: list[str] = []
    guard = Guard("sender", on_error=lambda: counted.append("error"))
    with guard.round(absorb=(OSError,)) as busy:
        raise TimeoutError("store busy")  # an OSError: absorbed
    assert isinstance(busy.failed, TimeoutError) and guard.errors == 1 and counted == ["error"]
    with pytest.raises(KeyError), guard.lifetime(), guard.round(absorb=(OSError,)):
        raise KeyError("a bug")
    assert isinstance(guard.failure, KeyError) and guard.errors == 1 and counted == ["error"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # re-raised on purpose
def test_what_ends_a_guarded_thread_is_kept_in_failure() -> None:
    guard = Guard("reader")
    rounds: list[int] = []

    def body() -> None:
        with guard.lifetime():
            for n in range(3):
                with guard.round():
                    rounds.append(n)
                    if n == 0:
                        raise ValueError("one odd line")  # absorbed: the next round comes
                    if n == 1:
                        raise SystemExit(3)  # a bug's exit: ends the thread

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert rounds == [0, 1]
    assert isinstance(guard.failure, SystemExit) and guard.errors == 1
