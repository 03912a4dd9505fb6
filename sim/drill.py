"""``siaga-sim drill``: a scripted drill on a site run as separate processes, reported as a pass/fail timeline.

The site's gateway configuration (:mod:`sim.site` makes it runnable here) runs
as the production gateway in its own process (``siaga-sim gateway``), with a
real Mosquitto (accounts and the project's ACL) and the dashboard as its own
process, each link through a :class:`~sim.relay.TcpRelay` so that it can be
cut (:class:`DrillStack`, a :class:`~sim.stack.Stack` around one site). The
LoRa module sits on a pty the gateway opens; the air and the nodes (running
the reference firmware) live in this process, so they outlive an unplugged
gateway as real nodes do.

The scenario (:mod:`sim.scenario`) is a timeline of actions and faults and of
expectations, each with a deadline. Actions run at their time; each
expectation is watched from its time until it holds or its deadline passes.
The run prints the timeline as it goes, a summary, optionally a JSON report,
and exits 0 only if every expectation held (1 if one did not, 2 if the system
could not start, 78 for a malformed scenario or site).
"""

from __future__ import annotations

import copy
import json
import secrets
import shutil
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from firmware_bridge.errors import ConfigError
from firmware_bridge.timeutil import format_epoch, parse_ts
from gateway.cli import EXIT_CONFIG

from .demo import DemoOptions
from .gatewayconf import toml_text
from .mosquitto import Mosquitto, free_port
from .radio import VirtualNode
from .relay import TcpRelay
from .scenario import NODE_KEYS, Scenario, Step, check_against_site, load_scenario
from .site import PreparedSite, SiteDemo, poll_value, prepare_site, resolve_site
from .stack import DashboardProcess, GatewayProcess, Stack, StackError, StoreUnreadable
from .webclient import DashboardClient, HTTPStatusError
from .webhook import WebhookReceiver

#: Exit status when the system under drill could not be started (not the drill's verdict).
EXIT_NOT_RUN = 2
#: The drill's gateway talks faster than a site's: its loss is noticed in seconds (last will after 1.5 x keepalive).
DRILL_KEEPALIVE_S = 5
#: The dashboard's supervision for drills, unless the scenario says otherwise: a trouble is seen within a second.
DRILL_SUPERVISION = {"check_interval_s": 1.0}
#: The virtual nodes' firmware for drills, unless the scenario says otherwise: a heartbeat every few seconds.
DRILL_NODES = {"heartbeat_s": 3.0, "battery_check_s": 2.0}
#: The accounts the drill signs in with: each desk sees only its own alarms; the technician sees troubles.
ACCOUNTS = {"fire": ("damkar", "fire_operator"), "sapa": ("sapa", "sapa_desk"), "troubles": ("teknisi", "technician")}
#: How long the stack may take to be ready before t = 0.
READY_TIMEOUT_S = 60.0
POLL_S = 0.1


def shipped_drill(name: str) -> Path | None:
    candidate = resources.files("sim.data").joinpath("drills", f"{name.removesuffix('.toml')}.toml")
    return Path(str(candidate)) if candidate.is_file() else None


def shipped_drills() -> list[Path]:
    folder = resources.files("sim.data").joinpath("drills")
    return sorted(Path(str(item)) for item in folder.iterdir() if item.name.endswith(".toml"))


# -- the system under drill --


@dataclass
class DrillStack(Stack):
    """A :class:`Stack` around one site: its gateway process, the dashboard's link through a relay too,
    the site's LoRa module and nodes in this process, and a webhook receiver for escalations."""

    prepared: PreparedSite | None = None
    scenario: Scenario | None = None
    dashboard_relay: TcpRelay | None = None
    webhook: WebhookReceiver | None = None
    radio: SiteDemo | None = None
    nodes: dict[str, VirtualNode] = field(default_factory=dict)

    def start(self) -> DrillStack:
        assert self.prepared is not None and self.scenario is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        gw_id = self.prepared.gw_id
        users = {"dashboard": secrets.token_hex(12), gw_id: secrets.token_hex(12)}
        self.broker = Mosquitto(self.workdir / "broker", users=users, acl=True).start()
        self.dashboard_relay = TcpRelay(self.broker.host, self.broker.port).start()
        self.webhook = WebhookReceiver(host="127.0.0.1", secret=self._webhook_secret()).start()
        self.escalation = self._escalation()
        dashboard = self._make_dashboard(0, users["dashboard"])
        self.dashboard_procs.append(dashboard)
        self.start_dashboard(dashboard)
        self._start_radio()
        gw = self._make_site_gateway(users[gw_id])
        self.gws.append(gw)
        self.start_gateway(gw)
        self._start_nodes()
        return self

    def close(self) -> None:
        super().close()
        if self.radio is not None:
            for stopper in reversed(self.radio._stoppers):
                stopper()
        for part in (self.dashboard_relay, self.webhook):
            if part is not None:
                part.close() if isinstance(part, TcpRelay) else part.stop()

    @property
    def gw(self) -> GatewayProcess:
        return self.gws[0]

    # -- the dashboard --

    def _webhook_secret(self) -> bytes:
        secret = secrets.token_hex(24)
        path = self.workdir / "webhook-secret"
        path.write_text(secret + "\n")
        return secret.encode()

    def _escalation(self) -> dict[str, Any]:
        assert self.scenario is not None and self.webhook is not None
        receiver = {
            "name": "drill",
            "url": f"{self.webhook.url}/drill",
            "kinds": ["fire", "sapa"],
            "secret_file": self.workdir / "webhook-secret",
        }
        return {**self.scenario.escalation, "webhook": [receiver]}

    def _make_dashboard(self, index: int, password: str) -> DashboardProcess:
        dashboard = super()._make_dashboard(index, password)
        assert self.scenario is not None
        document = tomllib.loads(dashboard.config.read_text())
        document["supervision"] = {**DRILL_SUPERVISION, **self.scenario.supervision}
        document["commissioning"] = {"required": False}  # as in the demo: a drill's buttons are never commissioned
        dashboard.config.write_text(toml_text(document))
        return dashboard

    def _dashboard_mqtt(self, index: int, folder: Path, password: str, client_id: str) -> dict[str, Any]:
        """The dashboard reaches the broker through its own relay, so that its network can be cut."""
        assert self.dashboard_relay is not None
        return {**super()._dashboard_mqtt(index, folder, password, client_id), "port": self.dashboard_relay.port}

    # -- the gateway and its radio --

    def _make_site_gateway(self, password: str) -> GatewayProcess:
        assert self.prepared is not None and self.broker is not None and self.scenario is not None
        folder = self.workdir / "gateway"
        folder.mkdir(exist_ok=True)
        secret = folder / "mqtt-password"
        secret.write_text(password + "\n")
        relay = TcpRelay(self.broker.host, self.broker.port).start()
        mqtt = {
            "host": "127.0.0.1",
            "port": relay.port,
            "username": self.prepared.gw_id,
            "password_file": str(secret),
            "keepalive": DRILL_KEEPALIVE_S,
        }
        document = copy.deepcopy(self.prepared.with_mqtt(mqtt).document)
        document["gateway"]["health_interval_s"] = self.scenario.health_interval_s
        config = folder / "gateway.toml"
        config.write_text(toml_text(document))
        data_dir = Path(document["gateway"]["data_dir"])
        buttons = [button.id for button in self.prepared.config.buttons]
        return GatewayProcess(
            self.prepared.gw_id, config, data_dir, relay, free_port(), buttons, folder / "gateway.log"
        )

    def _start_radio(self) -> None:
        """The site's LoRa module on the pty the gateway opens (before the gateway starts, as on a Pi)."""
        assert self.prepared is not None
        from .site import _new_air

        self.radio = SiteDemo(DemoOptions(workdir=self.workdir), prepared=self.prepared)
        self.radio.air = _new_air()
        self.radio._stoppers.append(self.radio.air.close)
        if self.prepared.config.lora is not None:
            self.radio._plug_module(self.prepared.config, self.prepared.lora_tty)

    def _start_nodes(self) -> None:
        assert self.prepared is not None and self.scenario is not None and self.radio is not None
        seconds = {**DRILL_NODES, **self.scenario.nodes}
        settings = {NODE_KEYS[key]: int(value) for key, value in seconds.items()}
        for button in self.prepared.config.lora_buttons:
            self.nodes[button.id] = self.radio._node(self.prepared.config, button, settings)

    @property
    def air(self) -> Any:
        assert self.radio is not None
        return self.radio.air

    def wait_nodes_heard(self, timeout: float) -> bool:
        """Until the gateway has heard every LoRa node (a heartbeat), so that none starts the drill missing."""
        wanted = set(self.nodes)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = self.gateway_health(self.gw) or {}
            nodes = ((health.get("radio") or {}).get("nodes") or {}).values()
            if wanted <= {node["button"] for node in nodes if node.get("age_s") is not None}:
                return True
            time.sleep(POLL_S)  # another process's state: polled
        return False


# -- the run --


@dataclass
class Outcome:
    step: Step
    ok: bool
    at: float  # seconds since t = 0 when it was decided
    detail: str
    took_s: float | None = None


@dataclass
class TimelineEntry:
    t: float
    text: str
    ok: bool | None = None  # None: an action or a note; True/False: an expectation's verdict


@dataclass
class PressRecord:
    button: str
    t: float
    wall: float
    event_id: str | None = None
    lora: bool = False
    answered: bool = False


class DrillRun:
    """Runs one scenario: start the stack, play the timeline, watch the expectations, report."""

    def __init__(
        self, scenario: Scenario, workdir: Path, say: Callable[[str], None] = lambda text: print(text, flush=True)
    ) -> None:
        self.scenario = scenario
        self.workdir = workdir
        self.say = say
        self.stack: DrillStack | None = None
        self.timeline: list[TimelineEntry] = []
        self.outcomes: list[Outcome] = []
        self.presses: list[PressRecord] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._clients: dict[str, DashboardClient] = {}
        self._passwords: dict[str, str] = {}
        self._seen_troubles: set[tuple[str, str]] = set()
        self._t0 = 0.0
        self._wall0 = 0.0
        self.started_at = ""
        self.duration_s = 0.0

    # -- output --

    def now(self) -> float:
        return time.monotonic() - self._t0

    def note(self, text: str, ok: bool | None = None, t: float | None = None) -> None:
        entry = TimelineEntry(round(self.now() if t is None else t, 3), text, ok)
        with self._lock:
            self.timeline.append(entry)
        mark = "" if ok is None else ("✓ " if ok else "✗ ")
        self.say(f"t+{entry.t:6.2f} s  {mark}{text}")

    # -- start --

    def start(self, prepared: PreparedSite) -> None:
        self.stack = DrillStack(self.workdir / "stack", prepared=prepared, scenario=self.scenario)
        began = time.monotonic()
        self.say("  starting     Mosquitto, the dashboard and the gateway, each its own process ...")
        try:
            self.stack.start()
        except BaseException:
            self.stack.close()
            raise
        for desk, (user, role) in ACCOUNTS.items():
            self._passwords[desk] = secrets.token_urlsafe(12)
            self.stack.create_user(user, self._passwords[desk], role)
        if not self._wait(self._inventory_known, READY_TIMEOUT_S):
            raise StackError("the dashboard never listed the site's buttons (is the gateway connected?)")
        if self.stack.nodes and not self.stack.wait_nodes_heard(READY_TIMEOUT_S):
            raise StackError("the gateway never heard its LoRa nodes")
        # A LoRa button is "missing" until its first heartbeat: let such a start-up trouble clear before t = 0,
        # so that no expectation sees it (other troubles, such as buttons never commissioned, are only noted).
        expected = {step.args["type"] for step in self.scenario.expectations if "type" in step.args}
        expected |= {"button_missing"} if self.stack.nodes else set()
        self._wait(lambda: not any(t["type"] in expected for t in self._open_troubles()) or None, 15.0)
        left = [f"{t['type']} {t.get('button') or t.get('gw')}" for t in self._open_troubles()]
        if left:
            self.say(f"  note         troubles open at the start: {', '.join(left)}")
        self.say(f"  ready        in {time.monotonic() - began:.1f} s (board {self.stack.dashboard_procs[0].url}/)")

    def _client(self, desk: str) -> DashboardClient:
        client = self._clients.get(desk)
        if client is None:
            assert self.stack is not None
            client = DashboardClient(self.stack.dashboard_procs[0].url, timeout=5)
            client.login(ACCOUNTS[desk][0], self._passwords[desk])
            self._clients[desk] = client
        return client

    def _inventory_known(self) -> bool | None:
        assert self.stack is not None and self.stack.prepared is not None
        wanted = set(self.stack.prepared.config.all_button_ids)
        sites = self._client("troubles").get_json("/api/sites")["sites"]
        known = {button["id"] for site in sites for button in site.get("buttons", [])}
        return (wanted <= known) or None

    def _open_troubles(self) -> list[dict[str, Any]]:
        try:
            return self._client("troubles").get_json("/api/troubles")["troubles"]
        except (HTTPStatusError, OSError):
            return []

    # -- the timeline --

    def play(self) -> None:
        """Every step at its time; expectations watched in threads; then wait for every verdict."""
        self._t0 = time.monotonic()
        self._wall0 = time.time()
        self.started_at = format_epoch(self._wall0)
        self.note(f"drill starts: {self.scenario.name}")
        for at, step, action in self._schedule():
            self._sleep_until(at)
            if step.expect is not None:
                self._spawn(self._watch, step)
            else:
                action(step)
        for thread in self._threads:
            thread.join(max(0.0, self.scenario.time_limit_s - self.now()) + 30)
        self.duration_s = round(self.now(), 3)

    def _schedule(self) -> list[tuple[float, Step, Callable[[Step], None]]]:
        """The steps in time order, with the automatic end of each fault given ``for_s``."""
        entries: list[tuple[float, int, Step, Callable[[Step], None]]] = []
        for order, step in enumerate(self.scenario.steps):
            entries.append((step.at, order, step, self._act))
            if step.do is not None and "for_s" in step.args:
                entries.append((step.at + step.args["for_s"], order, step, self._end_fault))
        entries.sort(key=lambda entry: (entry[0], entry[1]))
        return [(at, step, action) for at, _, step, action in entries]

    def _sleep_until(self, at: float) -> None:
        delay = at - self.now()
        if delay > 0:
            threading.Event().wait(delay)  # the timeline's own clock: the drill is played in real time

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    # -- actions --

    def _act(self, step: Step) -> None:
        name = step.do
        assert name is not None and self.stack is not None
        stack, args = self.stack, step.args
        if name == "press":
            self._press(step)
        elif name == "acknowledge":
            self._spawn(self._acknowledge, step)
        elif name == "broker_down":
            self.note("broker down (Mosquitto killed)")
            stack.kill_broker()
        elif name == "broker_up":
            self._broker_up()
        elif name == "gateway_unplug":
            self.note(f"gateway {stack.gw.gw_id} unplugged (its process killed)")
            stack.kill_gateway(stack.gw)
        elif name == "gateway_plug":
            self._spawn(self._gateway_plug)
        elif name == "network_cut":
            self.note(f"network between gateway {stack.gw.gw_id} and the broker cut")
            stack.cut_network(stack.gw)
        elif name == "network_restore":
            self._network_restore()
        elif name == "dashboard_network_cut":
            self.note("network between the dashboard and the broker cut")
            assert stack.dashboard_relay is not None
            stack.dashboard_relay.refuse(True)
            stack.dashboard_relay.cut()
        elif name == "dashboard_network_restore":
            self._dashboard_network_restore()
        elif name == "radio_loss":
            loss = args.get("loss", 1.0)
            stack.air.impairments.loss = loss
            self.note(f"radio: the air loses {loss:.0%} of packets")
        elif name == "battery":
            stack.nodes[args["button"]].battery.millivolts = args["mv"]
            self.note(f"battery of {args['button']} falls to {args['mv']} mV")
        elif name == "cable":
            self._cable(args["button"], args["state"])

    def _end_fault(self, step: Step) -> None:
        """What a fault with ``for_s`` does when its time is up."""
        ends = {
            "broker_down": self._broker_up,
            "gateway_unplug": lambda: self._spawn(self._gateway_plug),
            "network_cut": self._network_restore,
            "dashboard_network_cut": self._dashboard_network_restore,
            "radio_loss": self._radio_back,
            "cable": lambda: self._cable(step.args["button"], "idle"),
        }
        assert step.do is not None
        ends[step.do]()

    def _broker_up(self) -> None:
        assert self.stack is not None
        self.stack.start_broker()
        self.note("broker up again")

    def _gateway_plug(self) -> None:
        assert self.stack is not None
        self.note(f"gateway {self.stack.gw.gw_id} plugged back in (starting)")
        try:
            self.stack.start_gateway(self.stack.gw)
        except StackError as exc:
            self.note(f"gateway did not start: {exc}")
            return
        self.note(f"gateway {self.stack.gw.gw_id} running again")

    def _network_restore(self) -> None:
        assert self.stack is not None and self.stack.gw.relay is not None
        self.stack.gw.relay.refuse(False)
        self.note(f"network between gateway {self.stack.gw.gw_id} and the broker restored")

    def _dashboard_network_restore(self) -> None:
        assert self.stack is not None and self.stack.dashboard_relay is not None
        self.stack.dashboard_relay.refuse(False)
        self.note("network between the dashboard and the broker restored")

    def _radio_back(self) -> None:
        assert self.stack is not None
        self.stack.air.impairments.loss = 0.0
        self.note("radio: the air is clear again")

    def _cable(self, button: str, state: str) -> None:
        """Cut, short or mend a supervised button's cable, through the gateway process's control API."""
        assert self.stack is not None
        words = {"cut": "cut", "shorted": "shorted", "idle": "mended"}
        self.note(f"cable of {button} {words[state]}")
        request = urllib.request.Request(f"{self.stack.gw.url}/cable/{button}/{state}", data=b"", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5):
                pass
        except OSError as exc:  # an unplugged gateway has no cables to cut: said, the drill goes on
            self.note(f"the gateway did not take the cable change of {button}: {exc}")

    def _press(self, step: Step) -> None:
        assert self.stack is not None
        button = step.args["button"]
        node = self.stack.nodes.get(button)
        record = PressRecord(button, self.now(), time.time(), lora=node is not None)
        with self._lock:
            self.presses.append(record)
        if node is not None:
            hold = step.args.get("hold_s")
            held = f" (held {hold:g} s)" if hold else ""
            self.note(f"press {button}{held}")
            self._spawn(node.press, hold)
            return
        self.note(f"press {button}")
        self._spawn(self._press_wired, record)

    def _press_wired(self, record: PressRecord) -> None:
        assert self.stack is not None
        press = self.stack.press(self.stack.gw, record.button)
        record.event_id, record.answered = press.event_id, True
        if press.event_id is None:
            self.note(f"the gateway did not answer the press of {record.button} (unplugged?): not accepted")

    def _acknowledge(self, step: Step) -> None:
        button = step.args["button"]
        desk = self._desk_of(button)
        self.note(f"the {desk} desk acknowledges the alarm of {button}")
        try:
            client = self._client(desk)
            alarm = _open_alarm(client, button)
            if alarm is None:
                self.note(f"no open alarm of {button} to acknowledge")
                return
            client.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {"rev": alarm["rev"]})
        except (HTTPStatusError, OSError) as exc:
            self.note(f"acknowledging failed: {exc}")

    # -- expectations --

    def _watch(self, step: Step) -> None:
        """Watch one expectation from now until it holds or its deadline passes; record the verdict."""
        assert step.expect is not None
        check = getattr(self, f"_expect_{step.expect}")
        armed = self.now()
        deadline = step.at + step.within_s
        state: dict[str, Any] = {}
        while True:
            try:
                verdict = check(step, state)
            except (HTTPStatusError, OSError, StoreUnreadable):
                verdict = None  # the dashboard busy or cut off: look again
            if verdict is not None:
                reference = state.get("since_t", armed)
                took = max(0.0, self.now() - reference)
                self._decide(Outcome(step, True, self.now(), f"{verdict} ({took:.2f} s)", round(took, 3)))
                return
            if self.now() >= deadline:
                why = state.get("why", "")
                text = f"expected {self._wanted(step)} within {step.within_s:g} s ({step.label}){why}"
                self._decide(Outcome(step, False, self.now(), text))
                return
            threading.Event().wait(min(POLL_S, max(0.0, deadline - self.now())))

    def _decide(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)
        self.note(outcome.detail, ok=outcome.ok, t=outcome.at)

    @staticmethod
    def _wanted(step: Step) -> str:
        args = step.args
        texts = {
            "alarm": lambda: f"an alarm for {args['button']} on the board",
            "trouble": lambda: f"trouble {args['type']} for {args['subject']}",
            "trouble_cleared": lambda: f"trouble {args['type']} for {args['subject']} cleared",
            "escalation": lambda: f"escalation step {args.get('step', 'any')} of {args['button']} at the webhook",
            "led": lambda: f"the LED of {args['button']} showing {args['shows']}",
            "no_alarm_lost": lambda: "every press the gateway accepted on the board",
        }
        assert step.expect is not None
        return texts[step.expect]()

    def _desk_of(self, button: str) -> str:
        assert self.stack is not None and self.stack.prepared is not None
        config = self.stack.prepared.config
        kinds = {b.id: str(b.kind) for b in (*config.buttons, *config.lora_buttons)}
        return kinds[button]

    def _last_press(self, button: str, before: float) -> PressRecord | None:
        with self._lock:
            found = [press for press in self.presses if press.button == button and press.t <= before + 0.001]
        return found[-1] if found else None

    def _expect_alarm(self, step: Step, state: dict[str, Any]) -> str | None:
        button = step.args["button"]
        press = self._last_press(button, step.at)
        since_wall = press.wall if press is not None else self._wall0 + step.at
        if press is not None:
            state["since_t"] = press.t
        alarm = _alarm_since(self._client(self._desk_of(button)), button, since_wall)
        if alarm is None:
            return None
        return f"alarm #{alarm['number']} for {button} on the {alarm['kind']} board"

    def _trouble_open(self, step: Step) -> bool:
        kind, subject = step.args["type"], step.args["subject"]
        for trouble in self._client("troubles").get_json("/api/troubles")["troubles"]:
            if trouble["type"] != kind:
                continue
            if trouble.get("button") == subject or (not trouble.get("button") and trouble.get("gw") == subject):
                return True
        return False

    def _expect_trouble(self, step: Step, state: dict[str, Any]) -> str | None:
        if not self._trouble_open(step):
            return None
        self._seen_troubles.add((step.args["type"], step.args["subject"]))
        return f"trouble {step.args['type']} for {step.args['subject']} on the board"

    def _expect_trouble_cleared(self, step: Step, state: dict[str, Any]) -> str | None:
        key = (step.args["type"], step.args["subject"])
        if self._trouble_open(step):
            self._seen_troubles.add(key)
            return None
        if key not in self._seen_troubles:
            state["why"] = ": it was never raised"
            return None
        return f"trouble {key[0]} for {key[1]} cleared"

    def _expect_escalation(self, step: Step, state: dict[str, Any]) -> str | None:
        assert self.stack is not None and self.stack.webhook is not None
        button, wanted = step.args["button"], step.args.get("step")
        for item in list(self.stack.webhook.received):
            body = item.body
            if body.get("event") != "alarm.escalated" or (body.get("alarm") or {}).get("button") != button:
                continue
            if wanted is not None and body.get("step") != wanted:
                continue
            signed = "signed" if item.signed else "UNSIGNED"
            return f"escalation step {body.get('step')} of {button} received by the webhook ({signed})"
        return None

    def _expect_led(self, step: Step, state: dict[str, Any]) -> str | None:
        assert self.stack is not None
        node = self.stack.nodes[step.args["button"]]
        shows = step.args["shows"]
        return f"the LED of {step.args['button']} shows {shows}" if node.pattern == shows else None

    def _expect_no_alarm_lost(self, step: Step, state: dict[str, Any]) -> str | None:
        assert self.stack is not None
        with self._lock:
            presses = [press for press in self.presses if press.t <= step.at + 0.001]
        wired = [press for press in presses if not press.lora]
        if any(not press.answered for press in wired):
            state["why"] = ": a press was still being answered"
            return None
        accepted = [press for press in wired if press.event_id is not None] + [p for p in presses if p.lora]
        stored = self.stack.stored_ids()
        missing = [press.button for press in accepted if not press.lora and press.event_id not in stored]
        for press in accepted:
            if press.button in missing:
                continue
            if _alarm_since(self._client(self._desk_of(press.button)), press.button, press.wall) is None:
                missing.append(press.button)
        if missing:
            state["why"] = f": not on the board: {', '.join(missing)}"
            return None
        refused = len(wired) - sum(1 for press in wired if press.event_id is not None)
        extra = f"; {refused} press(es) the gateway could not accept (unplugged)" if refused else ""
        return f"all {len(accepted)} accepted press(es) on the board, none lost{extra}"

    # -- waiting --

    @staticmethod
    def _wait(fetch: Callable[[], Any], timeout: float) -> Any:
        return poll_value(fetch, timeout, POLL_S)

    # -- the verdict --

    @property
    def passed(self) -> bool:
        return len(self.outcomes) == len(self.scenario.expectations) and all(o.ok for o in self.outcomes)

    def summary(self) -> str:
        held = sum(outcome.ok for outcome in self.outcomes)
        total = len(self.scenario.expectations)
        failed = sorted((o for o in self.outcomes if not o.ok), key=lambda o: o.step.number)
        verdict = "PASSED" if self.passed else "FAILED"
        text = f"summary: {held} of {total} expectation(s) held in {self.duration_s:.1f} s; drill {verdict}"
        for outcome in failed:
            text += f"\n  failed {outcome.step.label} (at {outcome.step.at:g} s): {outcome.step.describe()}"
        return text

    def report(self) -> dict[str, Any]:
        stack = self.stack
        return {
            "drill": self.scenario.name,
            "file": self.scenario.file,
            "site": str(self.scenario.site),
            "gateway": stack.prepared.gw_id if stack is not None and stack.prepared is not None else None,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "passed": self.passed,
            "expectations": [
                {
                    "step": outcome.step.number,
                    "at": outcome.step.at,
                    "expect": outcome.step.expect,
                    "args": outcome.step.args,
                    "within_s": outcome.step.within_s,
                    "ok": outcome.ok,
                    "decided_at": round(outcome.at, 3),
                    "took_s": outcome.took_s,
                    "detail": outcome.detail,
                }
                for outcome in sorted(self.outcomes, key=lambda o: o.step.number)
            ],
            "timeline": [{"t": entry.t, "text": entry.text, "ok": entry.ok} for entry in self.timeline],
        }

    def close(self) -> None:
        if self.stack is not None:
            self.stack.close()


def _alarm_since(client: DashboardClient, button: str, since: float) -> dict[str, Any] | None:
    """The button's alarm on this desk's board with a press at or after ``since`` (wall clock), or None."""
    for alarm in client.get_json("/api/alarms?state=all&limit=1000")["alarms"]:
        pressed = alarm.get("last_press_at")
        if alarm["button"] == button and pressed and parse_ts(pressed).timestamp() >= since - 0.5:
            return alarm
    return None


def _open_alarm(client: DashboardClient, button: str) -> dict[str, Any] | None:
    for alarm in client.get_json("/api/alarms")["alarms"]:
        if alarm["button"] == button and alarm.get("open"):
            return alarm
    return None


# -- the command --


def resolve_drill(text: str) -> Path:
    path = Path(text)
    if path.exists() or "/" in text:
        return path
    return shipped_drill(text) or path


def run_drill(
    scenario_path: Path,
    *,
    json_file: Path | None = None,
    workdir: str | None = None,
    say: Callable[[str], None] = lambda text: print(text, flush=True),
) -> int:
    scenario_path = resolve_drill(str(scenario_path))
    own_workdir = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="siaga-drill-")) if workdir is None else Path(workdir).resolve()
    try:
        scenario, prepared = _load(scenario_path, folder)
    except ConfigError as exc:
        print(f"siaga-sim drill: {exc}", file=sys.stderr, flush=True)
        if own_workdir:
            shutil.rmtree(folder, ignore_errors=True)
        return EXIT_CONFIG
    say(f"drill: {scenario.name} ({scenario_path})")
    if scenario.about:
        say(f"  about        {scenario.about}")
    config = prepared.config
    say(
        f"  site         {config.id} from {scenario.site}: {len(config.buttons)} wired, "
        f"{len(config.lora_buttons)} LoRa button(s); {len(scenario.actions)} action(s), "
        f"{len(scenario.expectations)} expectation(s)"
    )
    run = DrillRun(scenario, folder, say)
    status = 1
    try:
        try:
            run.start(prepared)
        except (StackError, OSError, RuntimeError) as exc:
            print(f"siaga-sim drill: the system under drill did not start: {exc}", file=sys.stderr, flush=True)
            return EXIT_NOT_RUN
        run.play()
        say(run.summary())
        if json_file is not None:
            json_file.write_text(json.dumps(run.report(), indent=2, default=str) + "\n")
            say(f"report written to {json_file}")
        status = 0 if run.passed else 1
        return status
    finally:
        run.close()
        if own_workdir and status == 0:
            shutil.rmtree(folder, ignore_errors=True)
        elif status != 0:
            say(f"logs of the drill's processes kept in {folder / 'stack'}")


def _load(path: Path, workdir: Path) -> tuple[Scenario, PreparedSite]:
    """The scenario, its site made runnable here, and the two checked against each other."""
    scenario = load_scenario(path, resolve_site)
    prepared = prepare_site(scenario.site, workdir / "site", local_broker=True)
    config = prepared.config
    supervised = frozenset(b.id for b in config.buttons if b.loop is not None)
    wired, lora = {b.id for b in config.buttons}, {b.id for b in config.lora_buttons}
    check_against_site(scenario, wired, lora, config.id, supervised)
    return scenario, prepared
