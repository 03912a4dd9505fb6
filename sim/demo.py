"""``siaga-sim demo``: the whole system on one machine, without hardware.

Starts a broker (embedded amqtt or a local Mosquitto, both with the
production accounts and ACL, or an existing one), the dashboard as its own
process, two gateways on gpiozero mock pins with Konawe Selatan sample sites
(wired buttons, and LoRa buttons whose nodes run the reference firmware over
a virtual radio to virtual modules on ptys), and the virtual button panel.
Ctrl-C stops everything.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from firmware_bridge.settings import parse_toml
from gateway.app import Gateway
from gateway.config import GatewayConfig, LoraButtonConfig, parse_config, read_keys
from gateway.provision import write_keys

from .gatewayconf import fill_template, toml_text
from .loops import mock_pins
from .mosquitto import Mosquitto, free_port, wait_for_port
from .panel import PanelButton, PanelServer, VirtualButton, VirtualLoraButton
from .processes import stop_on_signals, stop_process
from .radio import Air, Impairments, NodeSpec, PtyHost, VirtualE32, VirtualNode, VirtualRylr

SAMPLE_GATEWAYS = ("gw-pasar-andoolo.toml", "gw-smpn1-konda.toml")
#: The dashboard's MQTT account (deploy/mosquitto/siaga.acl names it); each gateway's is its id.
DASHBOARD_MQTT_USER = "dashboard"
#: The E32 address of the demo's E32 gateway module (fixed mode targets it).
GATEWAY_E32_ADDRESS = 0x0001


def _mqtt_password_files(folder: Path, usernames: list[str]) -> dict[str, Path]:
    """One random MQTT password per account, in ``folder/<user>.password`` (mode 0600), made once.

    The broker gets the passwords, the dashboard's and gateways' configs
    the file names (``password_file``); no password is written anywhere else.
    """
    folder.mkdir(mode=0o700, exist_ok=True)
    files = {}
    for user in usernames:
        path = files[user] = folder / f"{user}.password"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(24) + "\n")
    return files


def _provision_demo_keys(text: str, keys_file: Path) -> None:
    """Give every LoRa button of a sample gateway a key (kept in the demo folder, made once)."""
    nodes = [button["node"] for button in tomllib.loads(text).get("lora_button", [])]
    keys = read_keys(keys_file) if keys_file.exists() else {}
    missing = [node for node in nodes if node not in keys]
    if missing:
        keys.update({node: os.urandom(16) for node in missing})
        write_keys(keys_file, keys)


DEMO_USERS = (
    ("damkar", "fire_operator", "Pos Pemadam (damkar)"),
    ("sapa", "sapa_desk", "Meja SAPA"),
    ("satpol", "satpol", "Satpol PP"),
    ("teknisi", "technician", "Teknisi"),
    ("admin", "admin", "Administrator"),
)


def _sim_command() -> str:
    """How to run siaga-sim from here: the virtualenv's script, relative if it is below the current folder."""
    script = Path(sys.executable).parent / "siaga-sim"
    if not script.exists():
        return "siaga-sim"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _port_free(host: str, port: int) -> bool:
    return not wait_for_port(host, port, 0.05)


@dataclass
class DemoOptions:
    workdir: Path
    broker: str = "embedded"
    mqtt_port: int = 1883
    port: int = 8000
    panel_port: int = 8001
    host: str = "127.0.0.1"
    radio_loss: float = 0.0
    #: Time series: None (off), "local" (Debian's victoria-metrics started here) or an InfluxDB 2 URL.
    influxdb: str | None = None
    #: The API token of an InfluxDB 2 given by URL.
    influxdb_token_file: Path | None = None


@dataclass
class Demo:
    options: DemoOptions
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 0
    credentials: dict[str, str] = field(default_factory=dict)
    #: MQTT username -> its password file; empty for an existing broker (mqtt://), whose accounts we do not know.
    mqtt_password_files: dict[str, Path] = field(default_factory=dict)
    gateways: list[Gateway] = field(default_factory=list)
    _stoppers: list[Any] = field(default_factory=list)
    dashboard: subprocess.Popen[bytes] | None = None
    panel: PanelServer | None = None
    air: Air | None = None
    webhook: Any = None
    #: Where the time series go (``[influxdb] url``), once known.
    influxdb_url: str | None = None

    def say(self, text: str) -> None:
        print(text, flush=True)

    # -- pieces --------------------------------------------------------------

    def start_broker(self) -> None:
        choice = self.options.broker
        if choice.startswith("mqtt://"):
            parts = urlsplit(choice)
            self.mqtt_host, self.mqtt_port = parts.hostname or "127.0.0.1", parts.port or 1883
            self.say(f"  broker     existing, {choice} (no accounts: the demo logs in anonymously)")
            return
        port = self.options.mqtt_port
        if not port or not _port_free(self.options.host, port):
            port = free_port(self.options.host)
        self.mqtt_host, self.mqtt_port = self.options.host, port
        folder = self.options.workdir / "mqtt"
        users = [DASHBOARD_MQTT_USER, *self.gateway_accounts()]
        self.mqtt_password_files = _mqtt_password_files(folder, users)
        accounts = {user: path.read_text().strip() for user, path in self.mqtt_password_files.items()}
        if choice == "mosquitto":
            mosquitto_dir = self.options.workdir / "mosquitto"
            # Mosquitto's password file is made from the accounts at each start.
            (mosquitto_dir / "passwd").unlink(missing_ok=True)
            broker = Mosquitto(mosquitto_dir, port=port, users=accounts, acl=True).start()
            self._stoppers.append(broker.stop)
            self.say(f"  broker     Mosquitto with deploy/mosquitto/conf.d, mqtt://{self.mqtt_host}:{port}")
        else:
            try:
                from .broker import EmbeddedBroker
            except ImportError as exc:
                raise SystemExit(
                    f"siaga-sim: the embedded broker needs amqtt ({exc}): pip install 'siaga[demo]' "
                    "(make demo does this), or use --broker mosquitto"
                ) from None
            broker = EmbeddedBroker(self.options.host, port, accounts=accounts, state_dir=folder).start()
            self._stoppers.append(broker.stop)
            self.say(f"  broker     embedded (amqtt), mqtt://{self.mqtt_host}:{port}")
        self.say(f"  mqtt       accounts {', '.join(users)}; anonymous refused; ACL deploy/mosquitto/siaga.acl")
        self.say(f"             passwords in {folder}/<account>.password (mode 0600)")

    def gateway_accounts(self) -> list[str]:
        """The gateways' MQTT accounts (each its gateway id): the sample sites' (``siaga-sim site`` names its own)."""
        return [name.removesuffix(".toml") for name in SAMPLE_GATEWAYS]

    def _mqtt_login(self, user: str) -> str:
        """The ``[mqtt]`` lines that log ``user`` in (none for an existing broker)."""
        path = self.mqtt_password_files.get(user)
        return toml_text({"username": user, "password_file": path}) if path else ""

    def write_dashboard_config(self) -> Path:
        workdir = self.options.workdir
        path = workdir / "dashboard.toml"
        login = self.mqtt_password_files.get(DASHBOARD_MQTT_USER)
        document = {
            "dashboard": {
                "data_dir": workdir / "dashboard",
                "host": self.options.host,
                "port": self.options.port,
                "cookie_secure": False,  # plain http on this machine only
                "demo_panel_url": f"http://{self.options.host}:{self.options.panel_port}/",
            },
            "mqtt": {
                "host": self.mqtt_host,
                "port": self.mqtt_port,
                "username": DASHBOARD_MQTT_USER if login else None,
                "password_file": login,
                "client_id": "siaga-dashboard-demo",
            },
            "commissioning": {"required": False},  # the demo's buttons are never commissioned
            "escalation": self._escalation_config(),
            "influxdb": self._influxdb_config(),
        }
        path.write_text("# Written by siaga-sim demo.\n" + toml_text(document))
        return path

    def _influxdb_config(self) -> dict[str, Any] | None:
        if self.influxdb_url is None:
            return None
        token = self.options.influxdb_token_file
        return {"url": self.influxdb_url, "org": "siaga", "bucket": "siaga", "token_file": token}

    def start_timeseries(self) -> None:
        """``--influxdb local``: a VictoriaMetrics (the InfluxDB 2 write API) in the workdir; else the URL given."""
        if self.options.influxdb is None:
            return
        if self.options.influxdb != "local":
            self.influxdb_url = self.options.influxdb
            self.say(f"  time series {self.influxdb_url} (org siaga, bucket siaga)")
            return
        from .victoria import VictoriaMetrics

        server = VictoriaMetrics(self.options.workdir / "victoria").start()
        self._stoppers.append(server.stop)
        self.influxdb_url = server.url
        self.say(f"  time series {server.url}  (VictoriaMetrics; query it at {server.url}/vmui/)")

    def _escalation_config(self) -> dict[str, Any] | None:
        """Escalation to the demo's own webhook receiver, which prints what it is sent."""
        if self.webhook is None:
            return None
        secret = self.options.workdir / "webhook-secret"
        return {
            "fire_after_s": [60, 180],
            "sapa_after_s": [120],
            "board_url": f"http://{self.options.host}:{self.options.port}/",
            "webhook": [
                {"name": name, "url": f"{self.webhook.url}/{name}", "kinds": [kind], "secret_file": secret}
                for name, kind in (("pusdalops", "fire"), ("meja-sapa", "sapa"))
            ],
        }

    def start_webhook_receiver(self) -> None:
        from .webhook import WebhookReceiver

        secret_file = self.options.workdir / "webhook-secret"
        if not secret_file.exists():
            fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(24) + "\n")
        secret = secret_file.read_text().strip().encode()

        def show(item: Any) -> None:
            text = (item.body.get("text") or {}).get("id") or item.body.get("event")
            self.say(f"  [webhook {item.path}] {item.status}: {text}")

        self.webhook = WebhookReceiver(host=self.options.host, secret=secret, on_receive=show).start()
        self._stoppers.append(self.webhook.stop)
        self.say(f"  webhooks   {self.webhook.url} (escalation notices are printed here)")

    def _dashboard_cmd(self, config: Path, *args: str) -> list[str]:
        return [sys.executable, "-m", "dashboard", "--config", str(config), *args]

    def ensure_users(self, config: Path) -> None:
        """The demo's accounts: made once, kept in the work folder (mode 0600) with their passwords."""
        store = self.options.workdir / "credentials.txt"
        if store.exists():
            for line in store.read_text().splitlines():
                user, _, password = line.partition(" ")
                self.credentials[user] = password
        for user, role, display in DEMO_USERS:
            if user in self.credentials:
                continue  # made by an earlier run of the demo
            password = f"{user}-{secrets.token_hex(4)}"
            subprocess.run(
                self._dashboard_cmd(
                    config, "create-user", user, "--role", role, "--display-name", display, "--password-stdin"
                ),
                input=(password + "\n").encode(),
                check=True,
                capture_output=True,
            )
            self.credentials[user] = password
        fd = os.open(store, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("".join(f"{user} {password}\n" for user, password in self.credentials.items()))

    def start_dashboard(self) -> None:
        if not _port_free(self.options.host, self.options.port):
            raise SystemExit(f"siaga-sim: port {self.options.port} is in use; stop what runs there or use --port")
        config = self.write_dashboard_config()
        self.ensure_users(config)
        log = open(self.options.workdir / "dashboard.log", "ab")
        self.dashboard = subprocess.Popen(self._dashboard_cmd(config, "serve"), stdout=log, stderr=log)
        log.close()
        url = f"http://{self.options.host}:{self.options.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.dashboard.poll() is not None:
                raise SystemExit(f"siaga-sim: the dashboard stopped; see {self.options.workdir / 'dashboard.log'}")
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                    if b'"mqtt_connected":true' in response.read():
                        break
            except OSError:
                pass
            time.sleep(0.1)  # polling a child process we cannot wait on otherwise
        else:
            raise SystemExit("siaga-sim: the dashboard did not become ready within 30 s")
        self.say(f"  dashboard  {url}/   (log: {self.options.workdir / 'dashboard.log'})")

    def start_gateways(self) -> dict[str, PanelButton]:
        buttons: dict[str, PanelButton] = {}
        self.air = Air(Impairments(loss=self.options.radio_loss), seed=None)
        self._stoppers.append(self.air.close)
        for name in SAMPLE_GATEWAYS:
            template = resources.files("sim.data").joinpath(name).read_text("utf-8")
            gw_id = name.removesuffix(".toml")
            tty = self.options.workdir / f"tty-{gw_id}"
            keys_file = self.options.workdir / f"{gw_id}-lora-keys.toml"
            values = {
                "DATA_DIR": self.options.workdir / gw_id,
                "MQTT_HOST": self.mqtt_host,
                "MQTT_PORT": self.mqtt_port,
                "LORA_PORT": tty,
                "KEYS_FILE": keys_file,
            }
            text = fill_template(template, values).replace("\n[mqtt]\n", "\n[mqtt]\n" + self._mqtt_login(gw_id), 1)
            path = self.options.workdir / f"{gw_id}.toml"
            path.write_text(text)
            _provision_demo_keys(text, keys_file)
            config = parse_config(parse_toml(text, str(path)))
            if config.lora is not None:
                self._plug_module(config, tty)
            factory, loops = mock_pins(config.buttons)
            gateway = Gateway(config, pin_factory=factory).start()
            self.gateways.append(gateway)
            for button in config.buttons:
                buttons[button.id] = VirtualButton(gateway, factory, button, loops)
            for lora_button in config.lora_buttons:
                node = self._node(config, lora_button)
                buttons[lora_button.id] = VirtualLoraButton(gateway, node, lora_button)
            radio = f", {len(config.lora_buttons)} LoRa ({config.lora.module} on {tty.name})" if config.lora else ""
            self.say(f"  gateway    {config.id}: {len(config.buttons)} wired on mock GPIO{radio} ({path.name})")
        return buttons

    def _plug_module(self, config: GatewayConfig, tty: Path) -> None:
        lora = config.lora
        assert lora is not None and self.air is not None
        host = PtyHost(tty)
        if lora.is_rylr:
            VirtualRylr(self.air, host, address=lora.address, network_id=lora.network_id, band=lora.band)
        else:
            VirtualE32(self.air, host, address=GATEWAY_E32_ADDRESS, channel=lora.channel, mode=lora.mode)
        host.plug()
        self._stoppers.append(host.close)

    def _node(
        self, config: GatewayConfig, button: LoraButtonConfig, settings: dict[str, Any] | None = None
    ) -> VirtualNode:
        """A virtual node for ``button``; ``settings``: firmware settings (``HEARTBEAT_S``...) over its defaults."""
        lora = config.lora
        assert lora is not None and self.air is not None
        fixed = not lora.is_rylr and lora.mode == "fixed"
        spec = NodeSpec(
            button.node,
            lora.keys[button.node],
            kind=str(button.kind),
            module=lora.module,
            address=button.node % 65535 if lora.is_rylr else 0x0100 + button.node % 256,
            gateway_address=lora.address,
            network_id=lora.network_id,
            channel=lora.channel,
            e32_mode=lora.mode,
            gateway_e32_target=(GATEWAY_E32_ADDRESS >> 8, GATEWAY_E32_ADDRESS & 0xFF, lora.channel) if fixed else None,
            hold_ms=1000 if str(button.kind) == "sapa" else 0,
            settings=dict(settings or {}),
        )
        node = VirtualNode(self.air, spec, self.options.workdir / "nodes")
        self._stoppers.append(node.close)
        return node

    # -- whole -----------------------------------------------------------------

    def run(self, stop: threading.Event) -> int:
        self.options.workdir.mkdir(parents=True, exist_ok=True)
        self.say("Siaga demo starting:")
        try:
            self.start_broker()
            self.start_webhook_receiver()
            self.start_timeseries()
            self.start_dashboard()
            buttons = self.start_gateways()
            board = f"http://{self.options.host}:{self.options.port}/"
            self.panel = PanelServer(
                buttons, host=self.options.host, port=self.options.panel_port, board_url=board
            ).start()
            self.say(f"  panel      {self.panel.url}   (press virtual buttons, watch their LEDs)")
            self.say("")
            self.say(f"Open {board} and sign in:")
            self.say(f"  fire post (pos damkar):  damkar / {self.credentials['damkar']}")
            self.say(f"  SAPA desk:               sapa / {self.credentials['sapa']}")
            self.say(f"  Satpol PP (reports):     satpol / {self.credentials['satpol']}")
            self.say(f"  technician (devices):    teknisi / {self.credentials['teknisi']}")
            self.say(f"  administrator (audit):   admin / {self.credentials['admin']}")
            self.say(f"Citizens report Perda violations at {board}lapor")
            self.say(f"Press a button:   {_sim_command()} press pasar-andoolo-fire-1")
            self.say(f"Buttons:          {', '.join(sorted(buttons))}")
            self.say(f"Data is kept in {self.options.workdir} (delete it to start afresh).")
            self.say("Siaga demo ready. Ctrl-C stops it.")
            stop.wait()
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        self.say("Siaga demo stopping...")
        if self.panel is not None:
            self.panel.stop()
        for gateway in reversed(self.gateways):
            gateway.close()
        stop_process(self.dashboard, 15)
        for stopper in reversed(self._stoppers):
            stopper()


def run_demo(options: DemoOptions) -> int:
    return Demo(options).run(stop_on_signals())
