"""One owner for the alarm rows, and one path by which an alarm change is told to the others."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dashboard.alarms.changes import AlarmChanges, Change
from dashboard.ingest.hub import Hub

DASHBOARD = Path(__file__).resolve().parent.parent / "dashboard"
#: The one module that reads and writes alarm rows; the schema and its migrations create them.
OWNER = DASHBOARD / "alarms" / "store.py"
EXEMPT = {OWNER, DASHBOARD / "db.py", DASHBOARD / "schema.sql"}
ALARM_SQL = re.compile(r"\b(FROM|UPDATE|INTO|JOIN)\s+alarms\b")


def _modules() -> list[Path]:
    return sorted(path for path in DASHBOARD.rglob("*.py") if path not in EXEMPT)


def test_only_the_alarm_store_holds_sql_over_the_alarms_table() -> None:
    offenders = [
        f"{path.relative_to(DASHBOARD)}: {match.group(0)}"
        for path in _modules()
        for match in ALARM_SQL.finditer(path.read_text(encoding="utf-8"))
    ]
    assert len(_modules()) > 10  # the walk did find the dashboard's modules
    assert offenders == []


def test_the_revision_is_moved_on_in_one_place() -> None:
    elsewhere = [path.relative_to(DASHBOARD) for path in _modules() if "rev = rev + 1" in path.read_text("utf-8")]
    assert elsewhere == []
    assert OWNER.read_text(encoding="utf-8").count("rev = rev + 1") == 1


class _Notifier:
    def __init__(self, said: list[str]) -> None:
        self.said = said

    def wake(self) -> None:
        self.said.append("notifier")


def _alarm(escalation: int = 0) -> dict[str, Any]:
    return {"id": 17, "kind": "fire", "button": "fire-1", "gw": "gw-a", "state": "acknowledged"} | {
        "escalation": escalation
    }


def _recorder(escalation: int, change: Change) -> list[str]:
    said: list[str] = []
    hub = Hub()
    board = hub.subscribe({"fire"})
    changes = AlarmChanges(hub, _Notifier(said))  # type: ignore[arg-type]
    changes.link_buttons(lambda alarm: said.append(f"button {alarm['button']}"))
    changes.committed([_alarm(escalation)], change, before_buttons=lambda: said.append("broker"))
    message = board.get(0)
    assert message is not None and message.event == "alarm" and message.data["id"] == 17
    return said


def test_an_answer_to_an_escalated_alarm_tells_the_notifier_then_the_button() -> None:
    assert _recorder(2, Change.ACTED) == ["notifier", "broker", "button fire-1"]


def test_an_answer_to_an_alarm_nobody_was_notified_of_leaves_the_notifier_asleep() -> None:
    assert _recorder(0, Change.ACTED) == ["broker", "button fire-1"]


def test_a_press_tells_the_button_after_the_broker_and_never_wakes_the_notifier() -> None:
    assert _recorder(1, Change.PRESSED) == ["broker", "button fire-1"]


def test_an_escalation_step_wakes_the_notifier_and_leaves_the_button_as_it_is() -> None:
    assert _recorder(1, Change.ESCALATED) == ["notifier", "broker"]


def test_without_an_mqtt_link_the_boards_are_still_told() -> None:
    hub = Hub()
    board = hub.subscribe({"fire"})
    AlarmChanges(hub).committed([_alarm()], Change.ACTED)
    message = board.get(0)
    assert message is not None and message.data["state"] == "acknowledged"
