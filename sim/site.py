"""``siaga-sim site``: a real site's gateway configuration run without its hardware, before anyone climbs a ladder.

The technician's ``gateway.toml`` is read as it is and validated by the
gateway's own parser; what cannot run on a laptop is substituted, and said so
(:func:`prepare_site`): the data folder (an outbox of its own in a temporary
folder), the pin factory (gpiozero's mock pins), the LoRa module's serial
port (a virtual module of the same model on a pty, its nodes running the
reference firmware), the keys file when it is not readable here (temporary
keys for this dry run), and the status socket. The gateway itself is the
production one (``gateway.app.Gateway``).

Against the embedded broker (or a local Mosquitto) the site runs with a local
dashboard, board and button panel, like ``make demo``; against the broker the
configuration names (``--broker config``) it connects with the configuration's
own credentials and TLS. ``--check`` tests every button once and exits 0 only
if each reached the dashboard: a real press and its alarm on the local board,
or, on the regency's broker, a *test* event (stored by the dashboard, never an
alarm) confirmed by the dashboard's receipt.
"""

from __future__ import annotations

import copy
import logging
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from firmware_bridge.errors import ConfigError, OutboxError
from firmware_bridge.payloads import EventType
from firmware_bridge.settings import Section, read_toml
from gateway.app import Gateway
from gateway.cli import EXIT_CONFIG
from gateway.config import GatewayConfig, parse_config, read_keys
from gateway.provision import write_keys

from .demo import Demo, DemoOptions
from .loops import mock_pins
from .panel import PanelButton, PanelServer, VirtualButton, VirtualLoraButton
from .processes import stop_on_signals
from .webclient import DashboardClient, HTTPStatusError

log = logging.getLogger(__name__)

#: ``[mqtt]`` keys kept from the site's configuration when it is pointed at a local broker: how it talks,
#: not where to or as whom.
_KEPT_MQTT_KEYS = ("root", "keepalive", "reconnect_min_s", "reconnect_max_s", "max_inflight")
#: The name of the pty symlink the gateway opens instead of the LoRa module's serial port.
LORA_TTY = "tty-lora"
#: Which desk's account sees an alarm of each kind on the local board (the demo's accounts).
DESK_ACCOUNTS = {"fire": "damkar", "sapa": "sapa"}


def shipped_site(name: str) -> Path | None:
    """A site shipped in ``sim/data/sites/`` by name (``pasar-andoolo``), or None."""
    candidate = resources.files("sim.data").joinpath("sites", f"{name.removesuffix('.toml')}.toml")
    return Path(str(candidate)) if candidate.is_file() else None


def resolve_site(text: str, base: Path | None = None) -> Path:
    """A site given by path (relative to ``base`` if given) or by the name of a shipped site."""
    path = Path(text) if base is None or Path(text).is_absolute() else base / text
    if path.exists() or "/" in text:
        return path
    return shipped_site(text) or path


def poll_value(fetch: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll ``fetch`` until it returns something other than None, or None after ``timeout``.

    For another process's state, which has no event to wait on; a dashboard that is busy or restarting
    (an HTTP error, a refused connection) is asked again.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fetch()
        except (HTTPStatusError, OSError):
            value = None
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


@dataclass(frozen=True)
class Substitution:
    """One setting the simulator replaced, what it was and why."""

    key: str
    was: Any
    now: Any
    why: str

    def line(self) -> str:
        was = "(default)" if self.was is None else repr(self.was)
        return f"{self.key} {was} -> {self.now} ({self.why})"


@dataclass
class PreparedSite:
    """A site's configuration made runnable here: the document, what was substituted, and the gateway's view."""

    source: Path
    document: dict[str, Any]
    substitutions: list[Substitution]
    config: GatewayConfig
    workdir: Path
    #: Nodes whose keys were made for this dry run (the keys file was not readable or lacked them).
    temporary_keys: list[int] = field(default_factory=list)

    @property
    def lora_tty(self) -> Path:
        return self.workdir / LORA_TTY

    @property
    def gw_id(self) -> str:
        return self.config.id

    def with_mqtt(self, mqtt: dict[str, Any]) -> PreparedSite:
        """The same site against another broker: ``mqtt`` (host, port, username, password_file) replaces
        where the configuration's ``[mqtt]`` points; how it talks (root, keepalive, ...) is kept."""
        document = copy.deepcopy(self.document)
        original = document.get("mqtt") if isinstance(document.get("mqtt"), dict) else {}
        document["mqtt"] = {key: original[key] for key in _KEPT_MQTT_KEYS if key in original} | mqtt
        config = parse_config(Section(document, file=str(self.source)))
        return PreparedSite(self.source, document, self.substitutions, config, self.workdir, self.temporary_keys)


def prepare_site(source: Path, workdir: Path, *, local_broker: bool) -> PreparedSite:
    """Read ``source`` and substitute what cannot run here; raises the gateway's :class:`ConfigError`.

    ``local_broker``: the ``[mqtt]`` table is replaced by a placeholder local broker (see
    :meth:`PreparedSite.with_mqtt`), else it is kept as written, credentials and TLS included.
    """
    document = copy.deepcopy(read_toml(source).data)
    workdir.mkdir(parents=True, exist_ok=True)
    substitutions: list[Substitution] = []
    gateway = document.get("gateway")
    if isinstance(gateway, dict):
        substitutions += _substitute_gateway(gateway, workdir)
    temporary: list[int] = []
    lora = document.get("lora")
    if isinstance(lora, dict):
        substitutions += _substitute_lora(lora, document, workdir, temporary)
    if local_broker:
        gw_id = gateway.get("id") if isinstance(gateway, dict) else None
        placeholder = {"host": "127.0.0.1", "port": 1883, "username": gw_id if isinstance(gw_id, str) else None}
        original = document.get("mqtt") if isinstance(document.get("mqtt"), dict) else {}
        document["mqtt"] = {key: original[key] for key in _KEPT_MQTT_KEYS if key in original} | {
            key: value for key, value in placeholder.items() if value is not None
        }
    config = parse_config(Section(document, file=str(source)))
    return PreparedSite(source, document, substitutions, config, workdir, temporary)


def _substitute_gateway(gateway: dict[str, Any], workdir: Path) -> list[Substitution]:
    found = []
    data_dir = workdir / "data"
    if not isinstance(gateway.get("data_dir", ""), str) or not isinstance(gateway.get("outbox", ""), str):
        return found  # a wrong type: the gateway's parser names it
    found.append(Substitution("gateway.data_dir", gateway.get("data_dir"), data_dir, "an outbox of its own here"))
    gateway["data_dir"] = str(data_dir)
    if "outbox" in gateway:
        found.append(Substitution("gateway.outbox", gateway["outbox"], data_dir / "outbox.sqlite", "the same"))
        gateway["outbox"] = str(data_dir / "outbox.sqlite")
    if isinstance(gateway.get("pin_factory"), str) and gateway["pin_factory"] != "mock":
        found.append(Substitution("gateway.pin_factory", gateway["pin_factory"], "mock", "gpiozero's mock pins"))
        gateway["pin_factory"] = "mock"
    if isinstance(gateway.get("status_socket", ""), str):
        # The commissioning socket is the real gateway's; a dry run answers no `siaga-gateway commission`.
        if gateway.get("status_socket", None) != "":
            found.append(Substitution("gateway.status_socket", gateway.get("status_socket"), "none", "not served"))
        gateway["status_socket"] = ""
    return found


def _substitute_lora(
    lora: dict[str, Any], document: dict[str, Any], workdir: Path, temporary: list[int]
) -> list[Substitution]:
    found = []
    if isinstance(lora.get("port"), str):
        module = lora.get("module", "the module")
        tty = workdir / LORA_TTY
        found.append(Substitution("lora.port", lora["port"], tty, f"a virtual {module} on a pty"))
        lora["port"] = str(tty)
    keys_file = lora.get("keys_file")
    if not isinstance(keys_file, str):
        return found  # missing or of a wrong type: the gateway's parser names it
    nodes = [
        button["node"]
        for button in document.get("lora_button", [])
        if isinstance(button, dict) and isinstance(button.get("node"), int) and not isinstance(button["node"], bool)
    ]
    keys, why = _readable_keys(Path(keys_file))
    missing = [node for node in nodes if node not in keys]
    if not missing:
        return found
    import os

    keys = {**keys, **{node: os.urandom(16) for node in missing}}
    dry_run_keys = workdir / "lora-keys.dry-run.toml"
    write_keys(dry_run_keys, keys)
    temporary += missing
    reason = why or f"no key for node(s) {', '.join(map(str, missing))}"
    found.append(
        Substitution(
            "lora.keys_file",
            keys_file,
            dry_run_keys,
            f"{reason}: TEMPORARY keys made for node(s) {', '.join(map(str, missing))}, for this dry run only; "
            "real nodes will not be accepted with them",
        )
    )
    lora["keys_file"] = str(dry_run_keys)
    return found


def _readable_keys(path: Path) -> tuple[dict[int, bytes], str | None]:
    """The keys file's keys, or none and why it could not be read here."""
    if not path.exists():
        return {}, "it does not exist on this machine"
    try:
        return read_keys(path), None
    except ConfigError as exc:
        return {}, f"it cannot be read here ({exc})"
    except OSError as exc:
        return {}, f"it cannot be read here ({exc.strerror or exc})"


# -- running a site --


@dataclass
class SiteOptions:
    config: Path
    #: "embedded" (amqtt), "mosquitto" (a local one) or "config" (the broker the configuration names)
    broker: str = "embedded"
    check: bool = False
    workdir: Path | None = None
    port: int = 8000
    panel_port: int = 8001
    mqtt_port: int = 1883
    host: str = "127.0.0.1"
    #: Seconds each step of the check may take (connect, an alarm, an LED, a receipt).
    timeout_s: float = 20.0


@dataclass
class ButtonResult:
    button: str
    ok: bool
    detail: str


@dataclass
class SiteDemo(Demo):
    """The demo's broker, dashboard and panel around one site's prepared gateway instead of the sample sites."""

    prepared: PreparedSite | None = None
    gateway: Gateway | None = None
    panel_buttons: dict[str, PanelButton] = field(default_factory=dict)

    def gateway_accounts(self) -> list[str]:
        assert self.prepared is not None
        return [self.prepared.gw_id]

    def start_site_gateway(self, prepared: PreparedSite) -> Gateway:
        """The production gateway on mock pins, its LoRa module and nodes virtual; panel buttons for each."""
        config = prepared.config
        self.air = self.air or _new_air()
        self._stoppers.append(self.air.close)
        if config.lora is not None:
            self._plug_module(config, prepared.lora_tty)
        factory, loops = mock_pins(config.buttons)
        self._stoppers.append(loops.close)
        self.gateway = Gateway(config, pin_factory=factory).start()
        self.gateways.append(self.gateway)
        for button in config.buttons:
            self.panel_buttons[button.id] = VirtualButton(self.gateway, factory, button, loops)
        for lora_button in config.lora_buttons:
            node = self._node(config, lora_button)
            self.panel_buttons[lora_button.id] = VirtualLoraButton(self.gateway, node, lora_button)
        return self.gateway


def _new_air() -> Any:
    from .radio import Air, Impairments

    return Air(Impairments(), seed=None)


class SiteRun:
    """One ``siaga-sim site`` run: prepare, start, show, check, stop."""

    def __init__(self, options: SiteOptions, say: Callable[[str], None] = lambda text: print(text, flush=True)):
        self.options = options
        self.say = say
        self._own_workdir = options.workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix="siaga-site-")) if options.workdir is None else options.workdir.resolve()
        )
        self.demo: SiteDemo | None = None
        self.gateway: Gateway | None = None
        self.results: list[ButtonResult] = []
        self._link_errors: list[str] = []

    @property
    def local(self) -> bool:
        return self.options.broker != "config"

    # -- the whole run --

    def run(self, stop: threading.Event | None = None) -> int:
        self.say(f"siaga-sim site: {self.options.config}")
        try:
            prepared = prepare_site(self.options.config, self.workdir / "site", local_broker=self.local)
        except ConfigError as exc:
            print(f"siaga-sim site: configuration error: {exc}", file=sys.stderr, flush=True)
            self._cleanup()
            return EXIT_CONFIG
        self._describe(prepared)
        watcher = _LinkErrors(self._link_errors)
        logging.getLogger("gateway.link").addHandler(watcher)
        try:
            started = self._start_local(prepared) if self.local else self._start_configured(prepared)
            if not started:
                return 1
            if self.options.check:
                return self._check()
            self._wait_for_stop(stop)
            return 0
        except (ConfigError, OutboxError) as exc:
            print(f"siaga-sim site: {exc}", file=sys.stderr, flush=True)
            return EXIT_CONFIG if isinstance(exc, ConfigError) else 1
        finally:
            logging.getLogger("gateway.link").removeHandler(watcher)
            self._stop()
            self._cleanup()

    def _describe(self, prepared: PreparedSite) -> None:
        config = prepared.config
        lora = f"{len(config.lora_buttons)} LoRa button(s)"
        if config.lora is not None:
            lora += f" on a {config.lora.module}"
        self.say(
            f"  configuration valid: gateway {config.id}, {len(config.buttons)} wired button(s), {lora} "
            "(checked by the gateway's own parser)"
        )
        for substitution in prepared.substitutions:
            self.say(f"  substituted  {substitution.line()}")
        if self.local:
            self.say("  substituted  [mqtt] -> the local broker (--broker config tries the one the file names)")
        for button in config.buttons:
            extras = [f"LED GPIO{button.led_pin}"] if button.led_pin is not None else []
            if button.buzzer_pin is not None:
                extras.append(f"buzzer GPIO{button.buzzer_pin}")
            if button.hold_s:
                extras.append(f"hold {button.hold_s:g} s")
            loop = button.loop
            where = f"pin GPIO{button.pin}"
            if loop is not None:
                where = f"supervised loop on ADC {loop.device} channel {loop.channel} (virtual MCP3008)"
            self.say(f"  wired        {button.id:<28} {button.kind:<4}  {where}, {', '.join(extras) or 'no LED'}")
        for lora_button in config.lora_buttons:
            key = "temporary key" if lora_button.node in prepared.temporary_keys else "key from the keys file"
            self.say(
                f"  lora         {lora_button.id:<28} {lora_button.kind:<4}  node {lora_button.node} "
                f"(virtual node, reference firmware, {key})"
            )

    # -- against a local broker and dashboard --

    def _start_local(self, prepared: PreparedSite) -> bool:
        demo_options = DemoOptions(
            workdir=self.workdir,
            broker=self.options.broker,
            mqtt_port=self.options.mqtt_port,
            port=self.options.port,
            panel_port=self.options.panel_port,
            host=self.options.host,
        )
        self.demo = demo = SiteDemo(demo_options, prepared=prepared)
        demo.say = lambda text: self.say(text)
        demo.start_broker()
        demo.start_dashboard()
        login = demo.mqtt_password_files.get(prepared.gw_id)
        mqtt = {"host": demo.mqtt_host, "port": demo.mqtt_port}
        if login is not None:
            mqtt |= {"username": prepared.gw_id, "password_file": str(login)}
        prepared = prepared.with_mqtt(mqtt)
        self.gateway = demo.start_site_gateway(prepared)
        if not self._connected():
            return False
        board = f"http://{self.options.host}:{self.options.port}/"
        inventory = self._wait(self._inventory_on_board, self.options.timeout_s)
        if inventory is None:
            self.say(f"  ✗ inventory: the dashboard does not list the site's buttons within {self.options.timeout_s} s")
            return False
        self.say(f"  inventory accepted: the board lists {inventory} button(s) of {prepared.gw_id}")
        self._show_buttons()
        demo.panel = PanelServer(
            demo.panel_buttons, host=self.options.host, port=self.options.panel_port, board_url=board
        ).start()
        self.say(f"  panel        {demo.panel.url}   (press the site's buttons, watch their LEDs)")
        self.say(f"  board        {board}  fire post: damkar / {demo.credentials['damkar']}")
        self.say(f"               SAPA desk: sapa / {demo.credentials['sapa']}")
        self.say(f"               technician: teknisi / {demo.credentials['teknisi']}")
        return True

    def _client(self, account: str) -> DashboardClient:
        assert self.demo is not None
        client = DashboardClient(f"http://{self.options.host}:{self.options.port}", timeout=5)
        client.login(account, self.demo.credentials[account])
        return client

    def _inventory_on_board(self) -> int | None:
        """How many of the site's buttons the board's site list knows (None until all of them)."""
        assert self.gateway is not None
        wanted = set(self.gateway.config.all_button_ids)
        client = self._client("teknisi")
        sites = client.get_json("/api/sites")["sites"]
        known = {button["id"] for site in sites for button in site.get("buttons", [])}
        return len(wanted) if wanted <= known else None

    # -- against the broker the configuration names --

    def _start_configured(self, prepared: PreparedSite) -> bool:
        broker = prepared.config.broker
        self.say(f"  broker       {broker.describe()}  (the configuration's own, credentials and TLS as written)")
        self.say(
            f"  note         this connects as {prepared.gw_id}: a gateway already running with that id is pushed "
            "off the broker while this runs, and on exit the dashboard shows the gateway offline until it is back"
        )
        factory, loops = mock_pins(prepared.config.buttons)
        self.demo = SiteDemo(DemoOptions(workdir=self.workdir), prepared=prepared)
        self.demo.air = _new_air()
        self.demo._stoppers += [loops.close, self.demo.air.close]
        if prepared.config.lora is not None:
            self.demo._plug_module(prepared.config, prepared.lora_tty)
        self.gateway = Gateway(prepared.config, pin_factory=factory).start()
        self.demo.gateways.append(self.gateway)
        for lora_button in prepared.config.lora_buttons:
            node = self.demo._node(prepared.config, lora_button)
            self.demo.panel_buttons[lora_button.id] = VirtualLoraButton(self.gateway, node, lora_button)
        if not self._connected():
            return False
        if self.gateway.link.echo.wait(self.options.timeout_s):
            self.say("  inventory accepted: the broker delivers what this gateway publishes (status and inventory)")
        else:
            self.say(
                "  ✗ the broker does not deliver this gateway's own status back: its ACL drops what it publishes "
                f"(the MQTT username must be the gateway id {prepared.gw_id!r}; topic root {broker.root!r})"
            )
            return False
        if self._wait(lambda: self.gateway.link.dashboard_online or None, self.options.timeout_s):  # type: ignore[union-attr]
            self.say("  dashboard    online on this broker")
        else:
            self.say("  dashboard    not seen online on this broker (its presence is retained: is it running?)")
        self._show_buttons()
        return True

    # -- both --

    def _connected(self) -> bool:
        assert self.gateway is not None
        link = self.gateway.link
        if link.connected.wait(self.options.timeout_s):
            user = self.gateway.config.broker.username or "(anonymous)"
            client_id = self.gateway.config.broker.client_id or f"siaga-gw-{self.gateway.config.id}"
            self.say(f"  broker connected as {user} (client id {client_id})")
            return True
        why = self._link_errors[-1] if self._link_errors else "no answer (wrong host or port, or a firewall?)"
        self.say(f"  ✗ broker: not connected within {self.options.timeout_s} s: {why}")
        return False

    def _show_buttons(self) -> None:
        assert self.gateway is not None
        for button in self.gateway.config.buttons:
            self.say(f"  button       {button.id:<28} {self.gateway.pattern(button.id)}")
        if self.demo is not None:
            for button_id, panel_button in self.demo.panel_buttons.items():
                if isinstance(panel_button, VirtualLoraButton):
                    self.say(f"  button       {button_id:<28} {panel_button.node.pattern}")
        self.gateway.add_listener(lambda button_id, pattern: self.say(f"  led          {button_id:<28} -> {pattern}"))

    def _wait_for_stop(self, stop: threading.Event | None) -> None:
        self.say("Site running. Ctrl-C stops it.")
        (stop or stop_on_signals()).wait()

    # -- the check --

    def _check(self) -> int:
        assert self.gateway is not None
        what = "a real press, its alarm on the local board and its LED" if self.local else "a TEST event each"
        self.say(f"check: every button once ({what})")
        config = self.gateway.config
        for button in config.buttons:
            self.results.append(self._check_button(button.id, wired=True))
        for lora_button in config.lora_buttons:
            self.results.append(self._check_button(lora_button.id, wired=False))
        passed = sum(result.ok for result in self.results)
        verdict = "check passed" if passed == len(self.results) else "check FAILED"
        self.say(f"summary: {passed} of {len(self.results)} button(s) reached the dashboard; {verdict}")
        return 0 if passed == len(self.results) else 1

    def _check_button(self, button_id: str, *, wired: bool) -> ButtonResult:
        try:
            ok, detail = self._press_and_confirm(button_id, wired) if self.local else self._test_event(button_id, wired)
        except (HTTPStatusError, OSError) as exc:
            ok, detail = False, f"the dashboard did not answer: {exc}"
        self.say(f"  {'✓' if ok else '✗'} {button_id:<28} {detail}")
        return ButtonResult(button_id, ok, detail)

    def _press_and_confirm(self, button_id: str, wired: bool) -> tuple[bool, str]:
        assert self.demo is not None and self.gateway is not None
        panel_button = self.demo.panel_buttons[button_id]
        kind = str(panel_button.config.kind)
        client = self._client(DESK_ACCOUNTS[kind])
        pressed_at = time.time()
        held = panel_button.press()
        alarm = self._wait(lambda: _alarm_since(client, button_id, pressed_at), self.options.timeout_s + held)
        if alarm is None:
            return False, f"no alarm on the board within {self.options.timeout_s + held:g} s"
        on_board = time.time() - pressed_at
        if wired:
            led = self.gateway.wait_for_indication(button_id, "received", self.options.timeout_s)
        else:
            node = panel_button.node  # type: ignore[union-attr]
            led = node.wait_for_pattern("received", self.options.timeout_s)
        shown = time.time() - pressed_at
        if not led:
            return (
                False,
                f"alarm #{alarm['number']} on the board in {on_board:.2f} s, but the LED never showed 'received'",
            )
        return (
            True,
            f"alarm #{alarm['number']} on the {kind} board in {on_board:.2f} s, LED 'received' in {shown:.2f} s",
        )

    def _test_event(self, button_id: str, wired: bool) -> tuple[bool, str]:
        """A TEST event (no alarm on the regency's board), confirmed by the dashboard's receipt."""
        assert self.gateway is not None and self.demo is not None
        started = time.time()
        if wired:
            self.gateway.record(self.gateway.config.button(button_id), type=EventType.TEST)
        else:
            node = self.demo.panel_buttons[button_id].node  # type: ignore[union-attr]
            node.send_test()
        if not self._wait(self._all_receipted, self.options.timeout_s):
            depth = self.gateway.outbox.depth()
            return False, f"no receipt from the dashboard within {self.options.timeout_s:g} s ({depth} in the outbox)"
        return True, f"test event receipted by the dashboard in {time.time() - started:.2f} s"

    def _all_receipted(self) -> bool | None:
        """True once nothing waits in the outbox or in memory; for a LoRa test also once the node was acknowledged
        (before that the event may not be in the outbox yet)."""
        assert self.gateway is not None and self.demo is not None
        for panel_button in self.demo.panel_buttons.values():
            if isinstance(panel_button, VirtualLoraButton) and panel_button.node.node.pending is not None:
                return None
        health = self.gateway.health().outbox
        return (health.depth == 0 and health.memory_only == 0) or None

    @staticmethod
    def _wait(fetch: Callable[[], Any], timeout: float) -> Any:
        return poll_value(fetch, timeout)

    # -- the end --

    def _stop(self) -> None:
        if self.demo is not None:
            self.demo.say = lambda text: None if text.startswith("Siaga demo") else self.say(text)
            if self.demo.panel is not None:
                self.demo.panel.stop()
                self.demo.panel = None
            self.demo.shutdown()
        elif self.gateway is not None:
            self.gateway.close()

    def _cleanup(self) -> None:
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _alarm_since(client: DashboardClient, button_id: str, since: float) -> dict[str, Any] | None:
    """The button's alarm on the board with a press at or after ``since`` (wall clock), or None."""
    from firmware_bridge.timeutil import parse_ts

    for alarm in client.get_json("/api/alarms?state=all&limit=1000")["alarms"]:
        if alarm["button"] == button_id and alarm.get("last_press_at"):
            if parse_ts(alarm["last_press_at"]).timestamp() >= since - 0.5:
                return alarm
    return None


class _LinkErrors(logging.Handler):
    """Keeps what the gateway's MQTT link logs at WARNING and above (a refused login says why)."""

    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self._into = into

    def emit(self, record: logging.LogRecord) -> None:
        self._into.append(record.getMessage())


def run_site(options: SiteOptions) -> int:
    return SiteRun(options).run()
