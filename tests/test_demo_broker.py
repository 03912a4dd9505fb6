"""The demo's embedded broker (amqtt) lets in only the production accounts, with the production ACL.

Every test runs against the real broker on a free port, with real MQTT
clients. "Nothing forged arrives" is bounded by a marker: a message sent
after the forgery that travels the same way, so once the marker is in,
the forgery would have been too.
"""

from __future__ import annotations

import queue
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from sim.broker import EmbeddedBroker, translate_acl
from sim.mosquitto import ACL_FILE, free_port

ROOT = "siaga/v1"
GW_A, GW_B = "gw-a", "gw-b"


def gw_topic(gw: str, channel: str) -> str:
    return f"{ROOT}/gw/{gw}/{channel}"


@dataclass
class Peer:
    """One MQTT client: what its CONNACK said, what arrived, how often it lost the connection."""

    port: int
    username: str | None = None
    password: str | None = None
    client_id: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}")
    clean: bool = True
    will: tuple[str, bytes] | None = None
    messages: queue.Queue[mqtt.MQTTMessage] = field(default_factory=queue.Queue)
    seen: list[mqtt.MQTTMessage] = field(default_factory=list)
    disconnects: int = 0

    def __post_init__(self) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=self.clean,
            protocol=mqtt.MQTTv311,
        )
        if self.username is not None:
            self.client.username_pw_set(self.username, self.password)
        if self.will is not None:
            self.client.will_set(self.will[0], self.will[1], qos=1)
        self._connack: queue.Queue[tuple[mqtt.ReasonCode, bool]] = queue.Queue()
        self._subacks: queue.Queue[list[mqtt.ReasonCode]] = queue.Queue()
        self.client.on_connect = lambda c, u, flags, rc, p: self._connack.put((rc, flags.session_present))
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = lambda c, u, mid, codes, p: self._subacks.put(codes)
        self.client.on_message = lambda c, u, message: self.messages.put(message)

    def _on_disconnect(self, *args: object) -> None:
        self.disconnects += 1

    def connect(self) -> tuple[mqtt.ReasonCode, bool]:
        """CONNECT and wait for the CONNACK: (reason code, session present). A refused client stops."""
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        reason, present = self._connack.get(timeout=10)
        if reason.is_failure:
            self.client.loop_stop()
        self.disconnects = 0
        return reason, present

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def subscribe(self, *topics: str) -> list[mqtt.ReasonCode]:
        self.client.subscribe([(topic, 1) for topic in topics])
        return self._subacks.get(timeout=10)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """QoS 1, waiting for the broker's PUBACK (under MQTT 3.1.1 a refused publish is acknowledged too)."""
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def wait_for(self, predicate: Callable[[mqtt.MQTTMessage], bool], timeout: float = 10.0) -> mqtt.MQTTMessage:
        """The first message that matches; everything up to it is in ``seen``."""
        while True:
            message = self.messages.get(timeout=timeout)
            self.seen.append(message)
            if predicate(message):
                return message

    def saw(self, payload: bytes) -> list[str]:
        return [m.topic for m in self.seen if m.payload == payload]


@dataclass
class Site:
    port: int
    passwords: dict[str, str]
    peers: list[Peer] = field(default_factory=list)

    def peer(self, username: str | None, **kwargs: object) -> Peer:
        password = kwargs.pop("password", self.passwords.get(username or ""))
        peer = Peer(self.port, username, password, **kwargs)  # type: ignore[arg-type]
        self.peers.append(peer)
        return peer

    def login(self, username: str, **kwargs: object) -> Peer:
        peer = self.peer(username, **kwargs)
        reason, _ = peer.connect()
        assert not reason.is_failure, f"{username} refused: {reason}"
        return peer


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    passwords = {user: secrets.token_urlsafe(24) for user in ("dashboard", GW_A, GW_B)}
    broker = EmbeddedBroker("127.0.0.1", free_port(), accounts=passwords, state_dir=tmp_path).start()
    result = Site(broker.port, passwords)
    try:
        yield result
    finally:
        for peer in result.peers:
            peer.close()
        broker.stop()


@pytest.mark.parametrize(
    ("username", "password"),
    [(None, None), ("dashboard", "wrong-password"), ("dashboard", None), ("nobody", "whatever"), ("", "x")],
    ids=["anonymous", "wrong-password", "no-password", "unknown-user", "empty-username"],
)
def test_only_accounts_with_their_password_get_in(site: Site, username: str | None, password: str | None) -> None:
    reason, _ = site.peer(username, password=password).connect()
    assert reason.is_failure and reason.getName() == "Not authorized"


def test_the_password_file_holds_hashes_only(site: Site, tmp_path: Path) -> None:
    stored = (tmp_path / "amqtt-passwd").read_text()
    assert (tmp_path / "amqtt-passwd").stat().st_mode & 0o777 == 0o600
    assert all(password not in stored for password in site.passwords.values())
    assert sorted(line.split(":")[0] for line in stored.splitlines()) == sorted(site.passwords)


def test_the_dashboard_and_gateways_talk_as_in_production(site: Site) -> None:
    dashboard = site.login("dashboard")
    assert all(not code.is_failure for code in dashboard.subscribe(*(f"{ROOT}/gw/+/{c}" for c in ("event", "status"))))
    gateway = site.login(GW_B)
    codes = gateway.subscribe(*(gw_topic(GW_B, c) for c in ("cmd/indicate", "cmd/receipt", "status")))
    assert all(not code.is_failure for code in codes + gateway.subscribe(f"{ROOT}/dashboard/status"))

    gateway.publish(gw_topic(GW_B, "event"), b"press")
    assert dashboard.wait_for(lambda m: m.topic == gw_topic(GW_B, "event")).payload == b"press"
    gateway.publish(gw_topic(GW_B, "status"), b"online", retain=True)
    gateway.wait_for(lambda m: m.topic == gw_topic(GW_B, "status"))  # the echo that proves delivery
    for channel in ("cmd/indicate", "cmd/receipt"):
        dashboard.publish(gw_topic(GW_B, channel), channel.encode())
        assert gateway.wait_for(lambda m, c=channel: m.topic == gw_topic(GW_B, c)).payload == channel.encode()
    dashboard.publish(f"{ROOT}/dashboard/status", b"online", retain=True)
    gateway.wait_for(lambda m: m.topic == f"{ROOT}/dashboard/status")


def test_a_gateway_cannot_speak_for_another_nor_forge_the_dashboards_commands(site: Site) -> None:
    dashboard = site.login("dashboard")
    dashboard.subscribe(*(f"{ROOT}/gw/+/{c}" for c in ("status", "inventory", "event", "health")))
    victims = {gw: site.login(gw) for gw in (GW_A, GW_B)}
    for gw, peer in victims.items():
        peer.subscribe(*(gw_topic(gw, c) for c in ("cmd/indicate", "cmd/receipt")), f"{ROOT}/dashboard/status")
    attacker = site.login(GW_A)  # gateway A's account (a stolen gateway), as a second client

    forged = [gw_topic(GW_B, c) for c in ("status", "inventory", "event", "health")]
    forged += [gw_topic(gw, c) for gw in (GW_A, GW_B) for c in ("cmd/indicate", "cmd/receipt")]
    forged.append(f"{ROOT}/dashboard/status")
    for topic in forged:
        attacker.publish(topic, b"forged", retain=topic.endswith("status"))
    # Markers: the attacker's own health goes the same way as its forgeries (one client's
    # messages are handled in order); once the dashboard has it, the dashboard's own
    # commands follow every forgery to each gateway.
    attacker.publish(gw_topic(GW_A, "health"), b"marker")
    dashboard.wait_for(lambda m: m.payload == b"marker")
    for gw, peer in victims.items():
        for channel in ("cmd/indicate", "cmd/receipt"):
            topic = gw_topic(gw, channel)
            dashboard.publish(topic, b"marker")
            peer.wait_for(lambda m, t=topic: m.topic == t and m.payload == b"marker")
    dashboard.publish(f"{ROOT}/dashboard/status", b"online", retain=True)
    for peer in victims.values():
        peer.wait_for(lambda m: m.topic == f"{ROOT}/dashboard/status" and m.payload == b"online")

    assert dashboard.saw(b"forged") == []
    assert victims[GW_A].saw(b"forged") == [] and victims[GW_B].saw(b"forged") == []
    # Nothing forged was retained either: a newcomer gets only the dashboard's own presence.
    late = site.login(GW_B)
    late.subscribe(f"{ROOT}/dashboard/status", gw_topic(GW_B, "status"))
    late.publish(gw_topic(GW_B, "status"), b"online", retain=True)
    late.wait_for(lambda m: m.topic == gw_topic(GW_B, "status") and m.payload == b"online")
    assert late.saw(b"forged") == []


def test_a_gateway_subscribes_only_to_its_own_commands(site: Site) -> None:
    gateway = site.login(GW_A)
    codes = gateway.subscribe(
        gw_topic(GW_B, "cmd/receipt"), f"{ROOT}/gw/+/cmd/indicate", f"{ROOT}/gw/{GW_B}/#", "#", gw_topic(GW_B, "event")
    )
    assert [code.is_failure for code in codes] == [True] * 5
    assert [code.is_failure for code in gateway.subscribe(gw_topic(GW_A, "cmd/receipt"))] == [False]


def test_a_last_will_the_account_may_not_publish_is_refused(site: Site) -> None:
    reason, _ = site.peer(GW_A, will=(gw_topic(GW_B, "cmd/receipt"), b"forged")).connect()
    assert reason.getName() == "Not authorized"
    reason, _ = site.peer(GW_A, will=(gw_topic(GW_A, "status"), b"offline")).connect()
    assert not reason.is_failure


def test_a_client_without_account_cannot_take_over_a_gateways_session(site: Site) -> None:
    """amqtt alone would drop the gateway and put the intruder's last will into its session."""
    gateway = site.login(GW_B, client_id=f"siaga-gw-{GW_B}", clean=False)
    gateway.subscribe(gw_topic(GW_B, "cmd/receipt"))
    for clean in (False, True):
        intruder = site.peer(
            None, client_id=f"siaga-gw-{GW_B}", clean=clean, will=(gw_topic(GW_B, "cmd/receipt"), b"forged")
        )
        assert intruder.connect()[0].getName() == "Not authorized"
    dashboard = site.login("dashboard")
    dashboard.publish(gw_topic(GW_B, "cmd/receipt"), b"marker")
    gateway.wait_for(lambda m: m.payload == b"marker")  # still subscribed
    assert gateway.saw(b"forged") == [] and gateway.disconnects == 0


def test_another_account_does_not_get_a_gateways_stored_session(site: Site) -> None:
    gateway = site.login(GW_B, client_id=f"siaga-gw-{GW_B}", clean=False)
    gateway.subscribe(gw_topic(GW_B, "cmd/receipt"))
    gateway.close()
    reason, present = site.peer(GW_A, client_id=f"siaga-gw-{GW_B}", clean=False).connect()
    assert not reason.is_failure and present is False


def test_a_gateway_gets_no_retained_message_it_may_not_read(site: Site) -> None:
    """amqtt alone replays, on every connect, what matches any client's subscriptions."""
    dashboard = site.login("dashboard")
    dashboard.subscribe(f"{ROOT}/gw/+/inventory", f"{ROOT}/gw/+/status")
    other = site.login(GW_B)
    other.publish(gw_topic(GW_B, "inventory"), b"secret", retain=True)
    other.publish(gw_topic(GW_B, "status"), b"secret", retain=True)
    dashboard.wait_for(lambda m: m.topic == gw_topic(GW_B, "status"))

    gateway = site.login(GW_A)
    gateway.subscribe(gw_topic(GW_A, "status"))
    gateway.publish(gw_topic(GW_A, "status"), b"online", retain=True)
    gateway.wait_for(lambda m: m.topic == gw_topic(GW_A, "status"))
    assert gateway.saw(b"secret") == []


def test_the_acl_is_the_production_file_written_out_per_account() -> None:
    acl = translate_acl(ACL_FILE.read_text(), ["dashboard", GW_A])
    assert sorted(acl.publish[GW_A]) == sorted(gw_topic(GW_A, c) for c in ("event", "health", "inventory", "status"))
    assert sorted(acl.read[GW_A]) == sorted(
        [*(gw_topic(GW_A, c) for c in ("cmd/indicate", "cmd/receipt", "status")), f"{ROOT}/dashboard/status"]
    )
    assert {gw_topic("+", "cmd/indicate"), gw_topic("+", "cmd/receipt")} <= set(acl.publish["dashboard"])
    assert gw_topic("+", "event") in acl.read["dashboard"]
    for text in ("user x\ntopic deny a/b\n", "pattern read a/%c\n", "auth_plugin x\n"):
        with pytest.raises(ValueError, match="ACL line"):
            translate_acl(text, ["x"])
    with pytest.raises(ValueError, match="cannot stand in a topic"):
        translate_acl("", ["a/b"])
