"""A button's commissioning checks and the session's verdict, decided without I/O.

A button passes when its test press reached the dashboard and raised a *test*
alarm (never a real one), a LoRa button's press kept the radio margin
(``[commissioning]`` minimum RSSI, SNR floor plus margin; a module that
reports neither, as the E32, is "not measured" and does not fail), and its
LED was confirmed: by the gateway (its status socket showed the alarm's
indication on the LED) or by the technician's own eyes, and nobody said it
was not seen, nor the buzzer not heard. A session passes when every button did.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from .settings import CommissioningSettings


class Check(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    WAITING = "waiting"  # no press yet
    NOT_MEASURED = "not_measured"  # a LoRa module that reports no RSSI/SNR
    NOT_APPLICABLE = "not_applicable"  # radio of a wired button
    NOT_REPORTED = "not_reported"  # the gateway's indication (the browser flow has no status socket)


class Answer(StrEnum):
    """What the technician said they saw (LED) or heard (buzzer)."""

    YES = "yes"
    NO = "no"
    NOT_ASKED = "not_asked"
    NONE = "none"  # the button has no buzzer


class Result(StrEnum):
    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"


#: The indication states that show a test press was received (a test alarm may be closed within a minute).
RECEIVED_STATES = frozenset({"received", "acknowledged", "dispatched", "resolved"})
#: The LED patterns that show the indication reached the button ("off" once a test alarm was closed).
SHOWN_PATTERNS = frozenset({"received", "help_coming", "off"})


def radio_check(transport: str, rssi: float | None, snr: float | None, settings: CommissioningSettings) -> Check:
    if transport != "lora":
        return Check.NOT_APPLICABLE
    if rssi is None and snr is None:
        return Check.NOT_MEASURED
    if rssi is not None and rssi < settings.min_rssi_dbm:
        return Check.FAILED
    if snr is not None and snr < settings.min_snr_db:
        return Check.FAILED
    return Check.PASSED


def indication_check(alarm_id: int | None, indication: dict[str, Any] | None) -> Check:
    """Whether the gateway showed this press's alarm on the button (what its status socket said)."""
    if indication is None:
        return Check.NOT_REPORTED
    state, alarm, led = indication.get("state"), indication.get("alarm"), indication.get("led")
    if alarm_id is not None and alarm == alarm_id and state in RECEIVED_STATES and led in SHOWN_PATTERNS:
        return Check.PASSED
    return Check.FAILED


def judge(button: dict[str, Any], settings: CommissioningSettings, *, final: bool = False) -> dict[str, Any]:
    """One button's checks, result and the codes of what failed (``reasons``), from its stored record.

    A button still waiting for its press, or whose LED nobody confirmed yet, is pending until the
    technician gave up on it (``gave_up_at``) or the session is finished (``final``): then it failed."""
    pressed = button.get("event_id") is not None
    test_alarm = button.get("test_alarm")
    checks = {
        "press": Check.PASSED if pressed else Check.WAITING,
        "test_alarm": Check.WAITING if not pressed else (Check.PASSED if test_alarm else Check.FAILED),
        "radio": radio_check(button["transport"], button.get("rssi"), button.get("snr"), settings)
        if pressed
        else (Check.NOT_APPLICABLE if button["transport"] != "lora" else Check.WAITING),
        "indication": indication_check(button.get("alarm_id"), button.get("indication")),
    }
    gave_up = button.get("gave_up_at") is not None
    led = Answer(button.get("led_seen") or Answer.NOT_ASKED)
    buzzer = Answer(button.get("buzzer_heard") or Answer.NOT_ASKED)
    reasons = []
    if not pressed:
        reasons.append("no_press")
    elif not test_alarm:
        reasons.append("not_a_test_alarm")
    if checks["radio"] is Check.FAILED:
        reasons.append("weak_radio")
    if checks["indication"] is Check.FAILED:
        reasons.append("indication_not_shown")
    if led is Answer.NO:
        reasons.append("led_not_seen")
    if buzzer is Answer.NO:
        reasons.append("buzzer_not_heard")
    if pressed and checks["indication"] is not Check.PASSED and led is not Answer.YES and "led_not_seen" not in reasons:
        reasons.append("led_unconfirmed")  # neither the gateway nor the technician confirmed the LED
    if not reasons:
        result = Result.PASSED
    elif len(reasons) == 1 and reasons[0] in ("no_press", "led_unconfirmed") and not final and not gave_up:
        result = Result.PENDING  # waiting for the press, or for someone to say the LED was seen
    else:
        result = Result.FAILED
    return {
        "checks": {name: str(check) for name, check in checks.items()},
        "led_seen": str(led),
        "buzzer_heard": str(buzzer),
        "result": str(result),
        "reasons": reasons,
    }


def verdict(results: list[str]) -> str:
    """The session's: passed only if there was a button and every one passed."""
    return str(Result.PASSED) if results and all(r == Result.PASSED for r in results) else str(Result.FAILED)
