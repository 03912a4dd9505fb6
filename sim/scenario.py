"""The drill scenario format (``siaga-sim drill``): a site, a timeline of actions and faults, expected outcomes.

Read and validated once, like the daemons' configuration, with
:class:`firmware_bridge.settings.Section`: a mistake is a
:class:`~firmware_bridge.errors.ConfigError` naming the file, the step and the
key (``drill.toml: key 'step[3].within_s': must be at least 0.1 (got 0)``).
No I/O but reading the file; ``docs/simulator.md`` describes every key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_bridge.errors import ConfigError
from firmware_bridge.settings import Section, read_toml
from firmware_bridge.topics import ID_PATTERN

#: Actions (``do = ...``) and the keys each takes besides ``at``: key -> (type, required).
ACTIONS: dict[str, dict[str, tuple[str, bool]]] = {
    "press": {"button": ("str", True), "hold_s": ("float", False)},
    "acknowledge": {"button": ("str", True)},
    "broker_down": {"for_s": ("float", False)},
    "broker_up": {},
    "gateway_unplug": {"for_s": ("float", False)},
    "gateway_plug": {},
    "network_cut": {"for_s": ("float", False)},
    "network_restore": {},
    "dashboard_network_cut": {"for_s": ("float", False)},
    "dashboard_network_restore": {},
    "radio_loss": {"loss": ("float", False), "for_s": ("float", False)},
    "battery": {"button": ("str", True), "mv": ("int", True)},
    "cable": {"button": ("str", True), "state": ("str", True), "for_s": ("float", False)},
}
#: Expectations (``expect = ...``) and their keys besides ``at`` and ``within_s``.
EXPECTATIONS: dict[str, dict[str, tuple[str, bool]]] = {
    "alarm": {"button": ("str", True)},
    "trouble": {"type": ("str", True), "subject": ("str", True)},
    "trouble_cleared": {"type": ("str", True), "subject": ("str", True)},
    "escalation": {"button": ("str", True), "step": ("int", False)},
    "led": {"button": ("str", True), "shows": ("str", True)},
    "no_alarm_lost": {},
}
#: What a supervised button's cable can be made (``sim/loops.py``); ``for_s`` mends it (``idle``) afterwards.
CABLE_STATES = ("cut", "shorted", "idle")
#: What a LoRa node's LED can show (the reference firmware's patterns).
LED_PATTERNS = ("off", "sending", "received", "help_coming")
#: The trouble types a drill may expect (dashboard/devices/supervision.py's TroubleType values).
TROUBLE_TYPES = (
    "gateway_offline",
    "gateway_silent",
    "gateway_backlog",
    "radio_missing",
    "button_missing",
    "button_stuck",
    "button_wiring",
    "low_battery",
    "tamper",
    "webhook_failing",
)
#: ``[drill.supervision]`` keys passed on to the dashboard's ``[supervision]`` (shorter windows, to drill in minutes).
SUPERVISION_KEYS = {
    "gateway_silent_s": 5.0,
    "radio_button_silent_s": 10.0,
    "button_stuck_s": 5.0,
    "check_interval_s": 0.5,
}
#: ``[drill.nodes]`` keys: the virtual LoRa nodes' firmware settings, in seconds.
NODE_KEYS = {"heartbeat_s": "HEARTBEAT_S", "battery_check_s": "BATTERY_CHECK_S", "alarm_poll_s": "ALARM_POLL_S"}
DEFAULT_SITE = "pasar-andoolo"
MAX_DRILL_S = 3600.0


@dataclass(frozen=True)
class Step:
    """One line of the timeline: an action (``do``) or an expectation (``expect``) at ``at`` seconds."""

    number: int  # its place in the file, 1-based, as errors and the report name it
    at: float
    do: str | None = None
    expect: str | None = None
    within_s: float = 0.0
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"step {self.number}"

    def describe(self) -> str:
        name = self.do or self.expect or ""
        details = " ".join(f"{key}={value}" for key, value in self.args.items())
        return f"{name} {details}".strip()


@dataclass(frozen=True)
class Scenario:
    file: str
    name: str
    about: str
    site: Path
    steps: tuple[Step, ...]
    supervision: dict[str, float]
    escalation: dict[str, list[float]]
    nodes: dict[str, float]
    health_interval_s: float = 2.0
    time_limit_s: float = 300.0

    @property
    def actions(self) -> list[Step]:
        return [step for step in self.steps if step.do is not None]

    @property
    def expectations(self) -> list[Step]:
        return [step for step in self.steps if step.expect is not None]


def load_scenario(path: Path, find_site: Any) -> Scenario:
    """Read and validate a scenario; ``find_site(text, base)`` turns its ``site`` into a gateway.toml path."""
    return parse_scenario(read_toml(path), find_site, base=path.parent)


def parse_scenario(root: Section, find_site: Any, *, base: Path) -> Scenario:
    drill = root.section("drill", required=True)
    name = drill.str("name")
    about = drill.str("about", "")
    site_text = drill.str("site", DEFAULT_SITE)
    site = find_site(site_text, base)
    if not Path(site).is_file():
        raise drill.error("site", f"{site_text!r} is neither a gateway.toml nor a shipped site (pasar-andoolo)")
    health = drill.float("health_interval_s", 2.0, min=1.0, max=60.0)
    limit = drill.float("time_limit_s", 300.0, min=1.0, max=MAX_DRILL_S)
    supervision = _numbers(drill.section("supervision"), SUPERVISION_KEYS)
    nodes = _numbers(drill.section("nodes"), dict.fromkeys(NODE_KEYS, 1.0))
    escalation = _escalation(drill.section("escalation"))
    drill.done()
    steps = tuple(_step(section, number) for number, section in enumerate(root.sections("step", required=True), 1))
    root.done()
    ordered = tuple(sorted(steps, key=lambda step: step.at))  # stable: steps at one time keep the file's order
    last = max(step.at + step.within_s for step in steps)
    if last > limit:
        raise drill.error("time_limit_s", f"the timeline runs to {last:g} s, past the limit of {limit:g} s")
    return Scenario(root.file, name, about, Path(site), ordered, supervision, escalation, nodes, health, limit)


def _numbers(section: Section, minimums: dict[str, float]) -> dict[str, float]:
    found = {key: section.float(key, min=low, max=86400.0) for key, low in minimums.items() if section.has(key)}
    section.done()
    return found


def _escalation(section: Section) -> dict[str, list[float]]:
    found = {}
    for key in ("fire_after_s", "sapa_after_s"):
        if not section.has(key):
            continue
        value = section.raw(key)
        if not isinstance(value, list) or not all(
            isinstance(item, int | float) and not isinstance(item, bool) and 1 <= item <= 86400 for item in value
        ):
            raise section.error(key, f"must be a list of seconds from 1 to 86400, e.g. [10, 30] (got {value!r})")
        found[key] = [float(item) for item in value]
    section.done()
    return found


def _step(section: Section, number: int) -> Step:
    at = section.float("at", min=0.0, max=MAX_DRILL_S)
    if section.has("do") == section.has("expect"):
        raise section.error("do", "each step is either an action (do = ...) or an expectation (expect = ...)")
    if section.has("do"):
        name = section.str("do", choices=ACTIONS)
        within = 0.0
        keys = ACTIONS[name]
    else:
        name = section.str("expect", choices=EXPECTATIONS)
        within = section.float("within_s", min=0.1, max=MAX_DRILL_S)
        keys = EXPECTATIONS[name]
    args = {key: _value(section, key, kind, required) for key, (kind, required) in keys.items()}
    args = {key: value for key, value in args.items() if value is not None}
    _check_values(section, name, args)
    section.done()
    if section.has("do"):
        return Step(number, at, do=name, args=args)
    return Step(number, at, expect=name, within_s=within, args=args)


def _value(section: Section, key: str, kind: str, required: bool) -> Any:
    read = {"str": section.str, "int": section.int, "float": section.float}[kind]
    return read(key) if required else read(key, None)


def _check_values(section: Section, name: str, args: dict[str, Any]) -> None:
    if "button" in args and not re.match(ID_PATTERN, args["button"]):
        raise section.error("button", f"{args['button']!r} is not a button id")
    if "for_s" in args and not 0.1 <= args["for_s"] <= MAX_DRILL_S:
        raise section.error("for_s", f"must be from 0.1 to {MAX_DRILL_S:g} s (got {args['for_s']!r})")
    if "hold_s" in args and not 0.05 <= args["hold_s"] <= 60:
        raise section.error("hold_s", f"must be from 0.05 to 60 s (got {args['hold_s']!r})")
    if "loss" in args and not 0.0 <= args["loss"] <= 1.0:
        raise section.error("loss", f"a fraction of packets lost, 0 to 1 (got {args['loss']!r})")
    if "mv" in args and not 2000 <= args["mv"] <= 4500:
        raise section.error("mv", f"a battery voltage in millivolts, 2000 to 4500 (got {args['mv']!r})")
    if "step" in args and not 1 <= args["step"] <= 10:
        raise section.error("step", f"an escalation step, 1 to 10 (got {args['step']!r})")
    if name.startswith("trouble") and args["type"] not in TROUBLE_TYPES:
        raise section.error("type", f"must be one of {', '.join(TROUBLE_TYPES)} (got {args['type']!r})")
    if name == "cable" and args["state"] not in CABLE_STATES:
        raise section.error("state", f"must be one of {', '.join(CABLE_STATES)} (got {args['state']!r})")
    if name == "led" and args["shows"] not in LED_PATTERNS:
        raise section.error("shows", f"must be one of {', '.join(LED_PATTERNS)} (got {args['shows']!r})")


def check_against_site(
    scenario: Scenario, wired: set[str], lora: set[str], gw_id: str, supervised: frozenset[str] = frozenset()
) -> None:
    """Every button a step names is on the site, of the transport the step needs; raises :class:`ConfigError`."""

    def fail(step: Step, key: str, message: str) -> ConfigError:
        full = f"step[{step.number}].{key}"
        return ConfigError(f"{scenario.file}: key '{full}': {message}", file=scenario.file, key=full)

    for step in scenario.steps:
        button = step.args.get("button")
        name = step.do or step.expect
        if button is not None and button not in wired | lora:
            known = ", ".join(sorted(wired | lora))
            raise fail(step, "button", f"{button!r} is not a button of {scenario.site} (known: {known})")
        if name == "cable" and button not in supervised:
            raise fail(step, "button", f'cable needs a supervised button (supervision = "eol"); {button!r} is not')
        if name in ("battery", "led") and button not in lora:
            raise fail(step, "button", f"{name} needs a LoRa button; {button!r} is wired")
        if name == "press" and "hold_s" in step.args and button in wired:
            raise fail(step, "hold_s", "a wired button is held as long as its own hold_s needs; hold_s is for LoRa")
        subject = step.args.get("subject")
        if subject is not None and subject not in wired | lora | {gw_id}:
            raise fail(step, "subject", f"{subject!r} is neither the gateway {gw_id!r} nor one of its buttons")
