"""Run a real nats-server cluster with MQTT and JetStream on loopback (tests, benchmarks): Siaga's clustered broker.

Every node runs the operators' own ``deploy/nats/siaga-nats.conf``; what
differs per node (name, ports, store directory, routes) goes in through the
environment, as systemd's ``EnvironmentFile`` does in production. Its
``siaga-nats-auth.conf`` is written here: empty (anyone, every right), or
accounts with Siaga's ACL as ``deploy/nats/siaga-nats-auth.conf.example``
sets it out. Nodes can be SIGKILLed and started again on the same ports and store.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .mosquitto import BrokerStartError, free_port
from .processes import kill_process, stop_process

REPO = Path(__file__).resolve().parent.parent
NATS_CONF = REPO / "deploy" / "nats" / "siaga-nats.conf"


class ClusterStartError(BrokerStartError):
    """A node did not start, or the cluster did not become ready in time."""


def nats_binary() -> str:
    for candidate in (shutil.which("nats-server"), "/usr/sbin/nats-server", "/usr/bin/nats-server"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ClusterStartError("nats-server is not installed (Debian: sudo apt-get install nats-server)")


@dataclass
class NatsNode:
    """One cluster member: its ports, store and process."""

    name: str
    workdir: Path
    host: str
    client_port: int
    monitor_port: int
    mqtt_port: int
    cluster_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://{self.host}:{self.mqtt_port}"

    @property
    def route_url(self) -> str:
        return f"nats-route://{self.host}:{self.cluster_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def environment(self, routes: list[str]) -> dict[str, str]:
        """The per-node values ``siaga-nats.conf`` reads (see its header)."""
        return {
            "SIAGA_NATS_NAME": self.name,
            "SIAGA_NATS_CLIENT": f"{self.host}:{self.client_port}",
            "SIAGA_NATS_MONITOR": f"{self.host}:{self.monitor_port}",
            "SIAGA_NATS_MQTT": f"{self.host}:{self.mqtt_port}",
            "SIAGA_NATS_CLUSTER": f"{self.host}:{self.cluster_port}",
            "SIAGA_NATS_ROUTES": "[" + ", ".join(routes) + "]",
            "SIAGA_NATS_STORE": str(self.workdir / "jetstream"),
        }

    def monitor(self, path: str, timeout: float = 1.0) -> tuple[int, dict[str, object]]:
        """(HTTP status, JSON body) of a monitoring endpoint; (0, {}) when nothing answers."""
        url = f"http://{self.host}:{self.monitor_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read() or b"{}")
            except ValueError:
                body = {}
            return exc.code, body
        except (OSError, ValueError):
            return 0, {}

    def healthy(self) -> bool:
        """``/healthz`` says ok and the node knows the JetStream meta leader (it can create MQTT sessions)."""
        status, body = self.monitor("/healthz")
        if status != 200 or body.get("status") != "ok":
            return False
        status, jsz = self.monitor("/jsz")
        meta = jsz.get("meta_cluster")
        return status == 200 and isinstance(meta, dict) and bool(meta.get("leader"))


def config_text(overrides: dict[str, str] | None = None) -> str:
    """``siaga-nats.conf`` with the value of each key in ``overrides`` replaced (e.g. a short ``ack_wait``)."""
    text = NATS_CONF.read_text("utf-8")
    for key, value in (overrides or {}).items():
        text, found = re.subn(
            rf"^(\s*{re.escape(key)}:\s*).*$", lambda m, value=value: m.group(1) + value, text, count=1, flags=re.M
        )
        if not found:
            raise KeyError(f"{key!r} is not set in {NATS_CONF}")
    return text


def _subjects(subjects: list[str]) -> str:
    return "[" + ", ".join(json.dumps(subject) for subject in subjects) + "]"


#: Home Assistant's account (docs/integrations.md): not a valid gateway id, so it can never act as one.
HOME_ASSISTANT_USER = "ha@siaga"


def auth_config(users: dict[str, str], root: str = "siaga/v1") -> str:
    """``siaga-nats-auth.conf`` for these accounts: ``dashboard`` gets the dashboard's rights, ``ha@siaga``
    Home Assistant's, any other the rights of the gateway whose id is its name
    (deploy/nats/siaga-nats-auth.conf.example)."""
    base = root.replace("/", ".")
    blocks = []
    for user, password in users.items():
        if user == "dashboard":
            discovery = ["homeassistant.*.siaga.*.config", f"{base}.ha.>"]
            publish = [f"{base}.gw.*.cmd.indicate", f"{base}.gw.*.cmd.receipt", f"{base}.dashboard.status", *discovery]
            subscribe = [f"{base}.gw.*.{channel}" for channel in ("status", "inventory", "event", "health")]
            subscribe += [f"{base}.dashboard.status", *discovery]
        elif user == HOME_ASSISTANT_USER:
            publish = ["homeassistant.status"]
            subscribe = ["homeassistant.>", f"{base}.ha.>", f"{base}.gw.*.status", f"{base}.dashboard.status"]
        else:
            own = f"{base}.gw.{user}"
            publish = [f"{own}.{channel}" for channel in ("status", "inventory", "event", "health")]
            subscribe = [f"{own}.status", f"{own}.cmd.indicate", f"{own}.cmd.receipt", f"{base}.dashboard.status"]
        blocks.append(
            f"    {{user: {json.dumps(user)}, password: {json.dumps(password)}, permissions: {{"
            f"publish: {_subjects(publish)}, subscribe: {_subjects(['$MQTT.sub.>', *subscribe])}}}}}"
        )
    return "authorization {\n  users = [\n" + "\n".join(blocks) + "\n  ]\n}\n" if blocks else ""


@dataclass
class NatsCluster:
    """An N-node nats-server cluster on free loopback ports, each node with MQTT and its own JetStream store.

    ``overrides`` replaces values of the shipped configuration for this
    cluster only (tests that would otherwise wait out a production timeout).
    ``users`` (name: password) turns on Siaga's ACL (:func:`auth_config`).
    """

    workdir: Path
    size: int = 3
    host: str = "127.0.0.1"
    overrides: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    nodes: list[NatsNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("a cluster needs at least one node")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "siaga-nats.conf"
        self.config_path.write_text(config_text(self.overrides), "utf-8")
        auth = self.workdir / "siaga-nats-auth.conf"  # included by the config, from its own folder
        auth.write_text(auth_config(self.users), "utf-8")
        auth.chmod(0o600)
        if not self.nodes:
            self.nodes = [
                NatsNode(
                    name=f"siaga-{index + 1}",
                    workdir=self.workdir / f"node{index + 1}",
                    host=self.host,
                    client_port=free_port(self.host),
                    monitor_port=free_port(self.host),
                    mqtt_port=free_port(self.host),
                    cluster_port=free_port(self.host),
                )
                for index in range(self.size)
            ]

    # -- addresses ----------------------------------------------------------

    @property
    def mqtt_urls(self) -> list[str]:
        """Every node's MQTT URL, in node order (what a client's ``[mqtt] brokers`` lists)."""
        return [node.mqtt_url for node in self.nodes]

    @property
    def mqtt_addresses(self) -> list[tuple[str, int]]:
        return [(node.host, node.mqtt_port) for node in self.nodes]

    def node_at(self, port: int) -> NatsNode:
        """The node whose MQTT listener is on ``port``."""
        for node in self.nodes:
            if node.mqtt_port == port:
                return node
        raise KeyError(f"no node listens for MQTT on port {port}")

    # -- life cycle -----------------------------------------------------------

    def start(self, timeout: float = 30.0) -> NatsCluster:
        """Start every node and wait until all of them report healthy."""
        for node in self.nodes:
            self._spawn(node)
        self.wait_healthy(timeout)
        return self

    def _spawn(self, node: NatsNode) -> None:
        node.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **node.environment([peer.route_url for peer in self.nodes])}
        log_path = node.workdir / "nats.log"
        with open(log_path, "ab") as log:
            node.process = subprocess.Popen(
                [nats_binary(), "-c", str(self.config_path), "-l", str(log_path)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_healthy(self, timeout: float = 30.0, nodes: list[NatsNode] | None = None) -> None:
        """Wait (polling the monitoring endpoint: nats-server offers nothing to block on) until nodes are healthy."""
        waiting = list(nodes if nodes is not None else [node for node in self.nodes if node.process is not None])
        deadline = time.monotonic() + timeout
        while waiting:
            for node in list(waiting):
                if node.process is not None and node.process.poll() is not None:
                    raise ClusterStartError(f"{node.name} exited ({node.process.returncode}): {self.log_tail(node)}")
                if node.healthy():
                    waiting.remove(node)
            if not waiting:
                return
            if time.monotonic() >= deadline:
                names = ", ".join(node.name for node in waiting)
                raise ClusterStartError(f"not healthy within {timeout} s: {names}: {self.log_tail(waiting[0])}")
            time.sleep(0.05)  # polling an HTTP endpoint; there is no event to wait on

    def log_tail(self, node: NatsNode, chars: int = 2000) -> str:
        path = node.workdir / "nats.log"
        return path.read_text(errors="replace")[-chars:].strip() if path.exists() else "no log"

    def kill(self, node: NatsNode | int) -> NatsNode:
        """SIGKILL one node: what a power cut or crash does to it. Returns the node."""
        target = self._node(node)
        kill_process(target.process)
        target.process = None
        return target

    def restart(self, node: NatsNode | int, timeout: float = 30.0) -> NatsNode:
        """Start a stopped or killed node again on its ports and store, and wait until it is healthy."""
        target = self._node(node)
        if target.running:
            raise RuntimeError(f"{target.name} is running")
        self._spawn(target)
        self.wait_healthy(timeout, [target])
        return target

    def stop(self, timeout: float = 10.0) -> None:
        """A clean shutdown of every node (SIGTERM; all signalled first, so none waits for the others)."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            stop_process(node.process, timeout)
            node.process = None

    def _node(self, node: NatsNode | int) -> NatsNode:
        return self.nodes[node] if isinstance(node, int) else node

    def __enter__(self) -> NatsCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
