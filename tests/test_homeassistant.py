"""Home Assistant MQTT discovery: every payload checked against HA's own schema, and the whole path on a real Mosquitto.

The schema is HA's voluptuous schemas of the ``event`` and ``binary_sensor``
platforms transcribed into JSON Schema, with its provenance, in
``tests/data/homeassistant/mqtt-discovery.schema.json`` (HA itself cannot be
installed here cheaply). :class:`HomeAssistantLike` does with Siaga's
messages what HA's MQTT integration does: it subscribes to the discovery
topics as HA does, validates each configuration against that schema, then
follows each entity's state and availability topics, renders their value
templates with Jinja2 (HA's template language) and fires events from
non-retained messages only.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import fastjsonschema
import jinja2
import paho.mqtt.client as mqtt
import pytest
from gpiozero.pins.mock import MockFactory

from dashboard.alarms.changes import AlarmChanges, Change
from dashboard.config import parse_config
from dashboard.homeassistant.discovery import (
    EVENT_TYPES,
    STATE_TEMPLATE,
    ButtonFacts,
    Discovery,
    Facts,
    GatewayFacts,
    Happening,
    HomeAssistantSettings,
    Message,
    Models,
    object_id,
    plan,
    read_settings,
)
from dashboard.homeassistant.publisher import HomeAssistantPublisher
from dashboard.ingest.hub import Hub
from dashboard.live import EXTENSION
from firmware_bridge.broker import BrokerSettings, make_client
from firmware_bridge.errors import ConfigError
from firmware_bridge.payloads import (
    ButtonInfo,
    Event,
    EventType,
    GatewayState,
    Inventory,
    Kind,
    Presence,
    Site,
    Source,
    Status,
    StatusReason,
)
from firmware_bridge.settings import parse_toml, read_toml
from firmware_bridge.timeutil import format_epoch
from firmware_bridge.topics import Topics
from gateway.app import Gateway
from gateway.config import parse_config as parse_gateway_config
from sim.mosquitto import Mosquitto
from sim.natscluster import HOME_ASSISTANT_USER, NatsCluster
from sim.servers import DashboardServer, dashboard_config
from sim.stores import postgresql_store_at

from .conftest import press
from .mqttprobe import Probe
from .test_broker_cluster import CONNECT_S, cluster_gateway, settings_for
from .test_gateway import loaded
from .test_ingest import new_id
from .test_supervision import gateway_process
from .waiting import poll_until

SCHEMA = json.loads((Path(__file__).parent / "data" / "homeassistant" / "mqtt-discovery.schema.json").read_text())
VALIDATORS = {
    name: fastjsonschema.compile({**SCHEMA, "$ref": f"#/definitions/{name}"})
    for name in ("event", "binary_sensor", "event_message", "discovery_topic")
}
ROOT = "siaga/v1"
TOPICS = Topics(ROOT)
PREFIX = "homeassistant"
MODELS = Models(fire_button="Fire alarm button", sapa_button="SAPA button", gateway="Panic button gateway")
WAIT_S = 15.0
ON = HomeAssistantSettings(enabled=True, refresh_s=0.5)


def render(template: str, payload: bytes) -> str:
    """HA's ``MqttValueTemplate.async_render_with_possible_json_value``, as far as Siaga's templates need it:
    ``value`` is the payload's text, ``value_json`` its JSON; the result is stripped."""
    text = payload.decode("utf-8")
    try:
        value_json: Any = json.loads(text)
    except ValueError:
        value_json = jinja2.Undefined(name="value_json")
    environment = jinja2.Environment(autoescape=False)  # noqa: S701 - text, not HTML (as in HA)
    return environment.from_string(template).render(value=text, value_json=value_json).strip()


def schema_errors(topic: str, payload: bytes, prefix: str = PREFIX) -> str | None:
    """Why HA would refuse this discovery message (None: it takes it)."""
    trimmed = topic.removeprefix(prefix + "/")
    try:
        VALIDATORS["discovery_topic"](trimmed)
        VALIDATORS[trimmed.split("/")[0]](json.loads(payload))
    except (fastjsonschema.JsonSchemaValueException, KeyError, ValueError) as exc:
        return f"{topic}: {exc}"
    return None


# -- an HA-like subscriber ----------------------------------------------------------------


@dataclass
class Entity:
    component: str
    config: dict[str, Any]


class HomeAssistantLike:
    """Siaga's entities as HA's MQTT integration would see them (discovery prefix ``homeassistant``)."""

    def __init__(self, settings: BrokerSettings, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self.client = make_client(settings, f"ha-like-{uuid.uuid4().hex[:8]}", persistent=False)
        self.settings = settings
        self.entities: dict[str, Entity] = {}  # by config topic
        self.values: dict[str, bytes] = {}  # last payload of every state and availability topic
        self.events: list[tuple[str, dict[str, Any]]] = []  # (unique id, event data)
        self.refused: list[str] = []  # configurations HA's schema would refuse
        self.retained_configs: set[str] = set()  # config topics that came as retained messages
        self._subscribed: set[str] = set()
        self._changed = threading.Condition()
        self._connected = threading.Event()
        self.client.on_connect = lambda *args: self._connected.set()
        self.client.on_message = self._on_message

    def __enter__(self) -> HomeAssistantLike:
        self.client.connect(self.settings.host, self.settings.port)
        self.client.loop_start()
        assert self._connected.wait(10), "the HA-like client could not connect"
        # What HA's discovery subscribes to (mqtt/discovery.py, async_start).
        for topic in (f"{self.prefix}/+/+/config", f"{self.prefix}/+/+/+/config"):
            self.client.subscribe(topic, 0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            if message.topic.startswith(self.prefix + "/") and message.topic.endswith("/config"):
                self._discovered(message)
            else:
                self.values[message.topic] = bytes(message.payload)
                self._maybe_event(message)
            self._changed.notify_all()

    def _discovered(self, message: mqtt.MQTTMessage) -> None:
        if not message.payload:
            self.entities.pop(message.topic, None)
            return
        error = schema_errors(message.topic, message.payload, self.prefix)
        if error:
            self.refused.append(error)
            return
        if message.retain:
            self.retained_configs.add(message.topic)
        component = message.topic.removeprefix(self.prefix + "/").split("/")[0]
        config = json.loads(message.payload)
        self.entities[message.topic] = Entity(component, config)
        topics = [config["state_topic"], *(item["topic"] for item in config.get("availability", []))]
        for topic in topics:
            if topic not in self._subscribed:
                self._subscribed.add(topic)
                self.client.subscribe(topic, config.get("qos", 0))

    def _maybe_event(self, message: mqtt.MQTTMessage) -> None:
        for entity in self.entities.values():
            if entity.component != "event" or entity.config["state_topic"] != message.topic:
                continue
            if message.retain:  # mqtt/event.py: replayed retained payloads are discarded
                return
            data = json.loads(message.payload)
            VALIDATORS["event_message"](data)
            assert data["event_type"] in entity.config["event_types"], data
            self.events.append((entity.config["unique_id"], data))

    # -- what a test asks ---------------------------------------------------------

    def wait(self, predicate: Callable[[HomeAssistantLike], object], timeout: float = WAIT_S, what: str = "") -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(f"HA never saw {what or predicate}: entities {sorted(self.unique_ids())}")

    def unique_ids(self) -> set[str]:
        return {entity.config.get("unique_id", "") for entity in self.entities.values()}

    def entity(self, unique_id: str) -> Entity | None:
        return next((e for e in self.entities.values() if e.config.get("unique_id") == unique_id), None)

    def available(self, unique_id: str) -> bool | None:
        """HA's availability (``availability_mode`` all / any / latest as HA reads them); None before any message."""
        entity = self.entity(unique_id)
        if entity is None:
            return None
        items = entity.config.get("availability")
        if not items:
            return True
        states = []
        for item in items:
            payload = self.values.get(item["topic"])
            if payload is None:
                continue
            text = render(item["value_template"], payload) if "value_template" in item else payload.decode()
            if text == item.get("payload_available", "online"):
                states.append(True)
            elif text == item.get("payload_not_available", "offline"):
                states.append(False)
        if not states:
            return None
        mode = entity.config.get("availability_mode", "latest")
        return any(states) if mode == "any" else all(states) if mode == "all" else states[-1]

    def state(self, unique_id: str) -> str | None:
        """A binary sensor's state: ``on``, ``off``, or None (unknown)."""
        entity = self.entity(unique_id)
        if entity is None or entity.component != "binary_sensor":
            return None
        payload = self.values.get(entity.config["state_topic"])
        if payload is None:
            return None
        template = entity.config.get("value_template")
        text = render(template, payload) if template else payload.decode()
        if text == entity.config.get("payload_on", "ON"):
            return "on"
        if text == entity.config.get("payload_off", "OFF"):
            return "off"
        return None

    def events_of(self, unique_id: str) -> list[dict[str, Any]]:
        return [data for uid, data in self.events if uid == unique_id]


# -- fixtures and helpers ------------------------------------------------------------------


def ha_dashboard(
    workdir: Path, broker: BrokerSettings, settings: HomeAssistantSettings = ON, **extra: Any
) -> DashboardServer:
    return DashboardServer(dashboard_config(workdir, broker, SIAGA_HOMEASSISTANT=settings, **extra))


def publisher_of(dashboard: DashboardServer) -> HomeAssistantPublisher:
    publisher = dashboard.app.extensions[EXTENSION].homeassistant
    assert publisher is not None
    return publisher


def button(
    button_id: str, kind: Kind = Kind.FIRE, transport: Source = Source.GPIO, label: str | None = None
) -> ButtonInfo:
    return ButtonInfo(button_id, kind, transport, Site("Pasar Andoolo", -4.3497, 122.3786), label)


def announce(probe: Probe, gw: str, *buttons: ButtonInfo, online: bool = True) -> None:
    """What a gateway retains: its inventory and its status (published here as a gateway would)."""
    now = format_epoch(time.time())
    probe.publish(TOPICS.inventory(gw), Inventory(gw, now, tuple(buttons)).encode(), retain=True)
    state = GatewayState.ONLINE if online else GatewayState.OFFLINE
    probe.publish(TOPICS.status(gw), Status(gw, state, now, "0.1.0", StatusReason.CONNECTED).encode(), retain=True)


def retained_under(settings: BrokerSettings, *filters: str) -> dict[str, bytes]:
    """Every retained message under ``filters`` now: a fresh subscriber's view, up to a marker sent after them."""
    marker = f"test/marker/{uuid.uuid4().hex}"
    with Probe(settings) as probe:
        for topic in (*filters, marker):
            probe.subscribe(topic)
        probe.publish(marker, b"end")  # Mosquitto sends a client's retained messages before a later publish
        held: dict[str, bytes] = {}
        while True:
            message = probe.wait_for(lambda m: True)
            if message.topic == marker:
                return held
            if message.retain and message.payload:
                held[message.topic] = message.payload


def unique(kind: str, identifier: str, suffix: str = "") -> str:
    return f"siaga_{kind}_{object_id(identifier)}{suffix}"


# -- the payloads, against HA's schema (no broker) ---------------------------------------------


def _facts() -> Facts:
    gateways = {
        "gw-a": GatewayFacts("gw-a", "online", "0.1.0"),
        "gw-b": GatewayFacts("gw-b", "offline"),
        "gw-sapa": GatewayFacts("gw-sapa", "online"),
    }
    buttons = [
        ButtonFacts("fire-1", "fire", "gpio", "Pasar Andoolo", "Blok A", "gw-a", (("gw-a", "fire"),)),
        # a LoRa button heard by two gateways, with a '.' in its id
        ButtonFacts("lora.7", "fire", "lora", "SD 3 Konda", None, "gw-b", (("gw-a", "fire"), ("gw-b", "fire"))),
        ButtonFacts("lora_7", "fire", "lora", "SD 3 Konda", "Gerbang", "gw-b", (("gw-b", "fire"),), missing=True),
        ButtonFacts("sapa-1", "sapa", "gpio", "Rumah Aman", "Ruang tamu", "gw-sapa", (("gw-sapa", "sapa"),)),
        # two inventories disagree on its kind: SAPA wins, it stays out
        ButtonFacts("both-1", "fire", "gpio", "Pasar Andoolo", None, "gw-a", (("gw-a", "fire"), ("gw-b", "sapa"))),
        # in no inventory any more
        ButtonFacts("gone-1", "fire", "gpio", "Pasar Andoolo", None, "gw-a", ()),
    ]
    return Facts(gateways, buttons)


def _discovery(settings: HomeAssistantSettings = ON) -> Discovery:
    return Discovery(settings, ROOT, version="0.1.0", models=MODELS)


def test_every_configuration_passes_home_assistants_discovery_schema() -> None:
    messages = _discovery().retained(_facts())
    configs = [m for m in messages if m.topic.endswith("/config")]
    assert configs and all(m.retain for m in messages)
    errors = [error for m in configs if (error := schema_errors(m.topic, m.payload))]
    assert errors == []
    parsed = [json.loads(m.payload) for m in configs]
    unique_ids = [config["unique_id"] for config in parsed]
    assert len(unique_ids) == len(set(unique_ids)), "unique ids must be unique"
    for config in parsed:
        assert config["origin"] == {"name": "Siaga", "sw_version": "0.1.0"}
        assert config["device"]["manufacturer"] == "Siaga"
    events = [json.loads(m.payload) for m in configs if "/event/" in m.topic]
    assert {tuple(e["event_types"]) for e in events} == {EVENT_TYPES}
    assert "heartbeat" not in EVENT_TYPES and {"press", "test", "tamper", "low_battery"} <= set(EVENT_TYPES)


def test_the_schema_refuses_what_home_assistant_refuses() -> None:
    """The transcription has teeth: each of these is refused by HA's voluptuous schema too."""
    good = json.loads(_discovery().retained(_facts())[1].payload)  # fire-1's event configuration
    assert VALIDATORS["event"](good)
    bad = [
        {k: v for k, v in good.items() if k != "state_topic"},  # MQTT_RO_SCHEMA: state_topic is required
        {k: v for k, v in good.items() if k != "event_types"},  # event: event_types is required
        {**good, "device_class": "fire"},  # not an EventDeviceClass
        {**good, "device": {"name": "no identifier"}},  # validate_device_has_at_least_one_identifier
        {**good, "device": {**good["device"], "colour": "red"}},  # the device schema refuses unknown keys
        {**good, "origin": {"sw_version": "1"}},  # origin needs a name
        {**good, "availability_topic": "a/b"},  # vol.Exclusive with availability
        {**good, "availability": [{"topic": "a/b", "retain": True}]},  # unknown key in an availability entry
        {**good, "availability_mode": "most"},
        {**good, "qos": 3},
        {**good, "state_topic": "a/#/b"},  # '#' only as the last level
        {**good, "state_topic": "a/b+/c"},  # '+' fills a whole level
        {**good, "icon": "fire"},  # cv.icon: prefix:name
    ]
    for payload in bad:
        with pytest.raises(fastjsonschema.JsonSchemaValueException):
            VALIDATORS["event"](payload)
    sensor = json.loads(_discovery().retained(_facts())[2].payload)
    assert VALIDATORS["binary_sensor"](sensor)
    for payload in ({**sensor, "entity_category": "config"}, {**sensor, "device_class": "door_bell"}):
        with pytest.raises(fastjsonschema.JsonSchemaValueException):
            VALIDATORS["binary_sensor"](payload)
    for topic in ("event/siaga/a.b/config", "event/siaga/x/y/z/config", "event/si aga/x/config"):
        with pytest.raises(fastjsonschema.JsonSchemaValueException):
            VALIDATORS["discovery_topic"](topic)


def test_topics_and_ids_fit_home_assistants_discovery_topic() -> None:
    messages = _discovery().retained(_facts())
    for message in messages:
        if message.topic.endswith("/config"):
            VALIDATORS["discovery_topic"](message.topic.removeprefix(PREFIX + "/"))
            assert message.topic.split("/")[2] == "siaga"  # the node id: what a restart learns and cleans
    # '.' is not allowed in a discovery topic (nor by a nats-server cluster): two ids never meet
    assert object_id("lora.7") != object_id("lora_7") and "." not in object_id("lora.7")
    assert object_id("fire-1") == "fire-1"


def test_sapa_buttons_stay_out_by_default_and_need_a_purpose() -> None:
    def names(settings: HomeAssistantSettings) -> str:
        return " ".join(m.topic + m.payload.decode() for m in _discovery(settings).retained(_facts()))

    default = names(ON)
    for secret in ("sapa-1", "Rumah Aman", "gw-sapa", "both-1", "gone-1"):
        assert secret not in default
    included = names(replace(ON, include_sapa=True, sapa_purpose="the SAPA desk's own wall display"))
    assert "sapa-1" in included and "Rumah Aman" in included
    assert "gone-1" not in included  # in no inventory, whatever the settings

    section = parse_toml("[homeassistant]\nenabled = true\ninclude_sapa = true\n", "dashboard.toml")
    with pytest.raises(ConfigError, match=r"dashboard.toml: key 'homeassistant.sapa_purpose'"):
        read_settings(section.section("homeassistant"), mqtt_root=ROOT)


def test_availability_follows_the_gateways_status_and_connectivity_what_reaches_the_button() -> None:
    discovery = _discovery()
    by_topic = {m.topic: m.payload for m in discovery.retained(_facts())}
    lora = json.loads(by_topic[discovery.config_topic("event", f"button_{object_id('lora.7')}")])
    assert [item["topic"] for item in lora["availability"]] == [TOPICS.status("gw-a"), TOPICS.status("gw-b")]
    assert lora["availability_mode"] == "any"
    assert lora["device"]["via_device"] == f"siaga_gateway_{object_id('gw-b')}"
    item = lora["availability"][0]
    lost = Status("gw-a", GatewayState.OFFLINE, format_epoch(time.time()), reason=StatusReason.LOST).encode()
    online = Status("gw-a", GatewayState.ONLINE, format_epoch(time.time())).encode()
    assert render(item["value_template"], online) == item["payload_available"] == "online"
    assert render(item["value_template"], lost) == item["payload_not_available"] == "offline"
    gateway = json.loads(by_topic[discovery.config_topic("binary_sensor", "gateway_gw-a_connectivity")])
    assert gateway["state_topic"] == TOPICS.status("gw-a") and gateway["value_template"] == STATE_TEMPLATE
    assert render(gateway["value_template"], lost) == gateway["payload_off"]
    assert render(STATE_TEMPLATE, Presence(GatewayState.ONLINE, format_epoch(time.time())).encode()) == "online"
    # connectivity: gw-a is online and registers lora.7; lora_7 is missing; both gateways down: off
    assert by_topic[discovery.connectivity_topic("lora.7")] == b"ON"
    assert by_topic[discovery.connectivity_topic("lora_7")] == b"OFF"
    down = Facts({gw: replace(g, state="offline") for gw, g in _facts().gateways.items()}, _facts().buttons)
    assert {m.topic: m.payload for m in discovery.retained(down)}[discovery.connectivity_topic("fire-1")] == b"OFF"
    silent = Facts({**_facts().gateways, "gw-a": GatewayFacts("gw-a", "online", silent=True)}, _facts().buttons)
    assert {m.topic: m.payload for m in discovery.retained(silent)}[discovery.connectivity_topic("fire-1")] == b"OFF"


def _event(button_id: str = "fire-1", kind: Kind = Kind.FIRE, type: EventType = EventType.PRESS) -> Event:
    return Event(new_id(), "gw-a", button_id, kind, type, format_epoch(time.time()), Source.GPIO)


def test_each_event_message_carries_its_event_type_and_nothing_of_sapa() -> None:
    discovery = _discovery()
    fire = frozenset({"fire"})
    press_event = _event()
    message = discovery.event_message(Happening(press_event, "fire", alarm=17), fire)
    assert message is not None and not message.retain and message.topic == discovery.event_topic("fire-1")
    data = json.loads(message.payload)
    VALIDATORS["event_message"](data)
    assert data == {"event_type": "press", "event_id": press_event.id, "button": "fire-1", "ts": press_event.ts,
                    "alarm": 17}  # fmt: skip
    test_press = discovery.event_message(Happening(_event(), "fire", alarm=33, test=True), fire)
    assert test_press is not None and json.loads(test_press.payload)["event_type"] == "test"
    for kind in (EventType.TAMPER, EventType.LOW_BATTERY, EventType.TEST):
        other = discovery.event_message(Happening(_event(type=kind), "fire"), fire)
        assert other is not None and json.loads(other.payload)["event_type"] == str(kind)
    refused = [
        (Happening(_event(type=EventType.HEARTBEAT), "fire"), fire),
        (Happening(_event(), "fire", alarm=None), fire),  # out of service: no alarm anywhere
        (Happening(_event(), "fire", alarm=1), None),  # in no inventory
        (Happening(_event("sapa-1", Kind.SAPA), "sapa", alarm=2), frozenset({"sapa"})),
        (Happening(_event("sapa-1", Kind.FIRE), "fire", alarm=2), frozenset({"fire", "sapa"})),
        (Happening(_event("x", Kind.SAPA), "fire", alarm=2), fire),  # its own word says SAPA
    ]
    for happening, registered in refused:
        assert discovery.event_message(happening, registered) is None, happening


def test_the_plan_sends_only_what_differs_and_clears_what_left_in_home_assistants_order() -> None:
    desired = _discovery().retained(_facts())
    believed = {m.topic: m.payload for m in desired}
    assert plan(desired, believed) == []
    stale_config = f"{PREFIX}/event/siaga/button_gone-1/config"
    stale_state = f"{ROOT}/ha/button/gone-1/connectivity"
    changed = Message(desired[0].topic, b"OFF" if desired[0].payload == b"ON" else b"ON", True)
    steps = plan([changed, *desired[1:]], {**believed, stale_config: b"{}", stale_state: b"ON"})
    assert steps == [changed, Message(stale_config, b"", True), Message(stale_state, b"", True)]
    first = plan(desired, {})
    states = [i for i, m in enumerate(first) if not m.topic.endswith("/config")]
    configs = [i for i, m in enumerate(first) if m.topic.endswith("/config")]
    assert max(states) < min(configs), "a state is retained before the configuration that names it"


def test_the_section_is_off_by_default_and_checked_at_start(tmp_path: Path) -> None:
    base = f'[dashboard]\ndata_dir = "{tmp_path}"\ncookie_secure = false\n[mqtt]\nhost = "127.0.0.1"\n'
    config = parse_config(parse_toml(base, "dashboard.toml"), create_secret=False)
    assert config["SIAGA_HOMEASSISTANT"] == HomeAssistantSettings()
    assert not config["SIAGA_HOMEASSISTANT"].enabled
    cases = {
        'node_id = "si.aga"': "homeassistant.node_id",
        'discovery_prefix = "siaga/v1/ha"': "homeassistant.discovery_prefix",
        'discovery_prefix = "home/#"': "homeassistant.discovery_prefix",
        'include_sapa = true\nsapa_purpose = "short"': "homeassistant.sapa_purpose",
        "refresh_s = 0": "homeassistant.refresh_s",
        "colour = 1": "homeassistant.colour",
    }
    for text, key in cases.items():
        with pytest.raises(ConfigError) as raised:
            parse_config(parse_toml(f"{base}[homeassistant]\n{text}\n", "dashboard.toml"), create_secret=False)
        assert raised.value.key == key and "dashboard.toml" in str(raised.value)
    on = parse_config(
        parse_toml(f'{base}[homeassistant]\nenabled = true\nnode_id = "siaga_konsel"\n', "dashboard.toml"),
        create_secret=False,
    )["SIAGA_HOMEASSISTANT"]
    assert on == HomeAssistantSettings(enabled=True, node_id="siaga_konsel")


def test_a_watcher_that_fails_never_reaches_the_committer() -> None:
    changes = AlarmChanges(Hub())
    heard: list[int] = []

    def broken(alarms: list[dict[str, Any]], change: Change, events: Any) -> None:
        raise RuntimeError("an integration's bug")

    changes.watch(broken)
    changes.watch(lambda alarms, change, events: heard.append(len(events)))
    changes.committed([], Change.PRESSED, events=[(_event(), "fire")])
    assert heard == [1]


# -- on a real Mosquitto -----------------------------------------------------------------------


@pytest.fixture
def hass(broker_settings: BrokerSettings) -> Iterator[HomeAssistantLike]:
    with HomeAssistantLike(broker_settings) as client:
        yield client
    assert client.refused == [], "HA would have refused these configurations"


def test_configurations_are_retained_and_each_press_reaches_home_assistant_once(
    tmp_path: Path, broker_settings: BrokerSettings, gateway: Gateway, pin_factory: MockFactory, probe: Probe
) -> None:
    probe.subscribe(f"{ROOT}/ha/#")
    probe.subscribe(f"{PREFIX}/#")
    with ha_dashboard(tmp_path / "dashboard", broker_settings) as dashboard:
        publisher = publisher_of(dashboard)
        filters = publisher.discovery.learn_filters()
        poll_until(lambda: retained_under(broker_settings, *filters), lambda held: len(held) == 4, what="retained")
        # HA starting after the dashboard finds everything retained
        with HomeAssistantLike(broker_settings) as hass:
            event_id, sensor_id = unique("button", "fire-1"), unique("button", "fire-1", "_connectivity")
            gateway_id = unique("gateway", "gw-test", "_connectivity")
            hass.wait(lambda h: h.available(event_id) and h.state(sensor_id) == "on" and h.state(gateway_id) == "on")
            assert set(hass.entities) <= hass.retained_configs  # every configuration came retained
            assert hass.unique_ids() == {event_id, sensor_id, gateway_id}  # and nothing of the SAPA button
            assert hass.entity(event_id).config["device"]["via_device"] == "siaga_gateway_gw-test"  # type: ignore[union-attr]

            press(pin_factory, 17)
            hass.wait(lambda h: len(h.events_of(event_id)) == 1, what="the press")
            press(pin_factory, 23)  # the SAPA button: its alarm is stored, HA hears nothing
            poll_until(lambda: dashboard.ingest.counters.get("events_stored.sapa"), what="the SAPA press stored")
            press(pin_factory, 17)
            hass.wait(lambda h: len(h.events_of(event_id)) == 2, what="the second press")
            first, second = hass.events_of(event_id)
            assert first["event_type"] == second["event_type"] == "press"
            assert first["event_id"] != second["event_id"] and first["alarm"] == second["alarm"]
            # Counted once paho has taken it, which may be after Home Assistant already has it.
            poll_until(lambda: publisher.counters.get("ha_events_sent.fire"), lambda n: n == 2, what="two sent")
            assert publisher.counters.get("ha_events_sent.sapa") == 0
            assert hass.refused == []
    seen = " ".join(m.topic + m.payload.decode() for m in probe.seen + list(probe.messages.queue))
    assert "sapa-1" not in seen and "Pos keamanan" not in seen


def test_availability_flips_with_the_gateways_status_and_its_last_will(
    tmp_path: Path, mosquitto: Mosquitto, broker_settings: BrokerSettings, hass: HomeAssistantLike
) -> None:
    event_id, gateway_id = unique("button", "fire-1"), unique("gateway", "gw-proc", "_connectivity")
    with ha_dashboard(tmp_path / "dashboard", broker_settings):
        process = gateway_process(tmp_path, mosquitto)
        try:
            hass.wait(lambda h: h.available(event_id) is True and h.state(gateway_id) == "on", what="online")
            process.send_signal(signal.SIGKILL)  # dead: the broker publishes its last will
            hass.wait(lambda h: h.available(event_id) is False and h.state(gateway_id) == "off", what="the will")
        finally:
            process.kill()
            process.wait()
        again = gateway_process(tmp_path, mosquitto)
        try:
            hass.wait(lambda h: h.available(event_id) is True and h.state(gateway_id) == "on", what="back")
            again.terminate()  # a clean stop says offline too
            again.wait(10)
            hass.wait(lambda h: h.available(event_id) is False, what="the clean stop")
        finally:
            again.kill()
            again.wait()


def test_a_button_that_leaves_the_inventory_is_removed_from_home_assistant(
    tmp_path: Path, broker_settings: BrokerSettings, probe: Probe, hass: HomeAssistantLike
) -> None:
    a, b = unique("button", "a-1"), unique("button", "b.2")
    with ha_dashboard(tmp_path / "dashboard", broker_settings) as dashboard:
        announce(probe, "gw-x", button("a-1"), button("b.2", transport=Source.LORA))
        hass.wait(lambda h: {a, b} <= h.unique_ids(), what="both buttons")
        announce(probe, "gw-x", button("a-1"))
        hass.wait(lambda h: b not in h.unique_ids() and f"{b}_connectivity" not in h.unique_ids(), what="b removed")
        assert a in hass.unique_ids()
        discovery = publisher_of(dashboard).discovery
        filters = discovery.learn_filters()
        held = poll_until(  # its state goes after its configurations (HA's order)
            lambda: retained_under(broker_settings, *filters),
            lambda held: discovery.connectivity_topic("b.2") not in held,
            what="b's state cleared",
            interval=0.1,
        )
        assert discovery.connectivity_topic("a-1") in held
        announce(probe, "gw-x")  # the gateway serves no button: it leaves HA too
        hass.wait(lambda h: h.unique_ids() == set(), what="everything removed")
        poll_until(lambda: retained_under(broker_settings, *filters), lambda held: held == {}, what="all cleared")


def test_a_restarted_dashboard_clears_what_left_the_inventory_while_it_was_away(
    tmp_path: Path, broker_settings: BrokerSettings, probe: Probe
) -> None:
    config_of = _discovery().config_topic
    other_integration = {f"{PREFIX}/binary_sensor/zigbee2mqtt/door/config": b'{"state_topic": "z/door"}',
                         f"{PREFIX}/sensor/kitchen/config": b'{"state_topic": "k"}'}  # fmt: skip
    for topic, payload in other_integration.items():
        probe.publish(topic, payload, retain=True)
    # Left from an earlier run: a button long gone, and a SAPA button from a run with include_sapa
    probe.publish(config_of("event", "button_old-9"), b'{"state_topic": "x"}', retain=True)
    probe.publish(config_of("event", "button_sapa-1"), b'{"state_topic": "y"}', retain=True)
    probe.publish(f"{ROOT}/ha/button/old-9/connectivity", b"ON", retain=True)
    announce(probe, "gw-x", button("a-1"), button("c-3"))
    workdir = tmp_path / "dashboard"
    with ha_dashboard(workdir, broker_settings) as dashboard:
        filters = publisher_of(dashboard).discovery.learn_filters()
        poll_until(
            lambda: retained_under(broker_settings, *filters),
            lambda held: (
                config_of("event", "button_a-1") in held
                and not {config_of("event", "button_old-9"), config_of("event", "button_sapa-1")} & held.keys()
                and f"{ROOT}/ha/button/old-9/connectivity" not in held
                and f"{ROOT}/ha/button/c-3/connectivity" in held
            ),
            what="the stale configurations cleared",
            interval=0.2,
        )
    announce(probe, "gw-x", button("a-1"))  # c-3 leaves while no dashboard runs
    with ha_dashboard(workdir, broker_settings) as dashboard:
        poll_until(
            lambda: retained_under(broker_settings, *filters),
            lambda held: not any("c-3" in topic for topic in held),
            what="c-3 cleared after the restart",
            interval=0.2,
        )
    held = retained_under(broker_settings, *filters)
    assert {topic.split("/")[3] for topic in held if topic.endswith("/config")} == {
        "button_a-1",
        "button_a-1_connectivity",
        "gateway_gw-x_connectivity",
    }
    assert set(held) - {t for t in held if t.endswith("/config")} == {f"{ROOT}/ha/button/a-1/connectivity"}
    assert retained_under(broker_settings, f"{PREFIX}/#").keys() >= other_integration.keys()  # not Siaga's


def test_the_dashboard_keeps_ingesting_while_home_assistant_publishing_fails_or_hangs(
    tmp_path: Path, broker_settings: BrokerSettings, gateway: Gateway, pin_factory: MockFactory
) -> None:
    with ha_dashboard(tmp_path / "dashboard", broker_settings) as dashboard:
        publisher = publisher_of(dashboard)
        stored = dashboard.ingest.counters

        def failing(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("the HA link is broken")

        real = publisher.client.publish
        publisher.client.publish = failing  # type: ignore[method-assign]
        press(pin_factory, 17)
        poll_until(lambda: stored.get("events_stored.fire"), lambda n: n == 1, what="the press stored")
        poll_until(lambda: publisher.counters.get("ha_events_dropped.fire"), what="the failure counted")
        assert publisher.is_alive() and dashboard.ingest.is_alive()

        release = threading.Event()

        def hanging(*args: Any, **kwargs: Any) -> Any:
            release.wait(WAIT_S)
            return real(*args, **kwargs)

        publisher.client.publish = hanging  # type: ignore[method-assign]
        for _ in range(3):
            press(pin_factory, 17)
        poll_until(lambda: stored.get("events_stored.fire"), lambda n: n == 4, what="presses stored while HA hangs")
        assert gateway.pump.wait_drained(WAIT_S), "the gateway's receipts waited for Home Assistant"
        release.set()
        poll_until(lambda: publisher.counters.get("ha_events_sent.fire"), lambda n: n == 3, what="sent once free")


def test_with_several_dashboard_processes_each_press_reaches_home_assistant_once(
    tmp_path: Path, broker_settings: BrokerSettings, gateway: Gateway, pin_factory: MockFactory, hass: HomeAssistantLike
) -> None:
    database = postgresql_store_at(tmp_path / "shared.db")
    servers = [
        ha_dashboard(tmp_path / name, broker_settings, client_id=f"siaga-dashboard-{name}", DATABASE=database)
        for name in ("a", "b")
    ]
    with servers[0], servers[1]:
        event_id = unique("button", "fire-1")
        hass.wait(lambda h: h.available(event_id), what="the button")
        presses = 5
        for _ in range(presses):
            press(pin_factory, 17)
        for server in servers:  # both ingest every event; the store keeps each once
            poll_until(
                lambda server=server: server.ingest.counters.snapshot(),
                lambda c: c.get("events_stored.fire", 0) + c.get("events_duplicate.fire", 0) == presses,
                what="every press seen by both processes",
            )
        hass.wait(lambda h: len(h.events_of(event_id)) >= presses, what="the presses")
        publishers = [publisher_of(server) for server in servers]
        sent = poll_until(
            lambda: (
                sum(p.counters.get("ha_events_sent.fire") for p in publishers),
                sum(p.pending for p in publishers),
            ),
            lambda counts: counts[0] >= presses and counts[1] == 0,
            what="every press handed over and sent",
        )[0]
        ids = [data["event_id"] for data in hass.events_of(event_id)]
        assert sent == presses and len(ids) == presses == len(set(ids))


# -- the broker's accounts: the dashboard publishes, Home Assistant only reads ---------------------

HA_USER = HOME_ASSISTANT_USER
USERS = {"dashboard": "dashboard-password-1", "gw-a": "gw-a-password-1", HA_USER: "ha-password-123"}


@contextmanager
def account(broker: Mosquitto, user: str) -> Iterator[Probe]:
    with Probe(BrokerSettings(port=broker.port, username=user, password=USERS[user])) as probe:
        yield probe


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "secured", users=USERS, acl=True) as broker:
        yield broker


def test_the_home_assistant_account_reads_only_its_topics_and_writes_none_of_siagas(secured: Mosquitto) -> None:
    config = f"{PREFIX}/event/siaga/button_x/config"
    with account(secured, "dashboard") as dashboard, account(secured, HA_USER) as ha, account(secured, "gw-a") as gw:
        for topic in (f"{PREFIX}/#", f"{ROOT}/ha/#", f"{ROOT}/gw/+/status", f"{ROOT}/gw/+/inventory",
                      f"{ROOT}/gw/+/event", f"{ROOT}/gw/+/health", f"{ROOT}/dashboard/status"):  # fmt: skip
            ha.subscribe(topic)
        dashboard.subscribe(f"{PREFIX}/+/siaga/+/config")
        dashboard.subscribe(f"{ROOT}/ha/#")
        # Refused (MQTT 3.1.1: acknowledged and dropped): HA writing Siaga's discovery and events
        ha.publish(config, b'{"forged": true}', retain=True)
        ha.publish(f"{ROOT}/ha/button/x/event", b'{"event_type": "press"}')
        ha.publish(f"{ROOT}/gw/gw-a/event", b"forged")
        ha.publish(f"{PREFIX}/status", b"online")  # HA's own birth message: allowed
        # A gateway's inventory, event and health stay the dashboard's; its status HA may read
        gw.publish(f"{ROOT}/gw/gw-a/inventory", b"inventory", retain=True)
        gw.publish(f"{ROOT}/gw/gw-a/event", b"event")
        gw.publish(f"{ROOT}/gw/gw-a/health", b"health", qos=0)
        gw.publish(f"{ROOT}/gw/gw-a/status", b'{"state": "online"}', retain=True)
        dashboard.publish(config, b'{"from": "dashboard"}', retain=True)
        dashboard.publish(f"{ROOT}/ha/button/x/event", b'{"event_type": "press"}')
        dashboard.publish(f"{ROOT}/dashboard/status", b'{"state": "online"}', retain=True)
        got = [ha.wait_for(lambda m: True).topic for _ in range(5)]
        assert got == [f"{PREFIX}/status", f"{ROOT}/gw/gw-a/status", config, f"{ROOT}/ha/button/x/event",
                       f"{ROOT}/dashboard/status"]  # fmt: skip
        first = dashboard.wait_for(lambda m: True)
        assert (first.topic, first.payload) == (config, b'{"from": "dashboard"}')  # not HA's forgery


def test_under_the_shipped_acl_home_assistant_sees_the_buttons_and_the_presses(
    tmp_path: Path, secured: Mosquitto, start_gateway: Callable[..., Gateway], pin_factory: MockFactory
) -> None:
    secret = tmp_path / "gw-a.secret"
    secret.write_text(USERS["gw-a"] + "\n")
    gateway_config = loaded(
        tmp_path / "a.toml",
        port=secured.port,
        gw_id="gw-a",
        mqtt_extra=f'username = "gw-a"\npassword_file = "{secret}"\n',
    )
    dashboard_broker = BrokerSettings(port=secured.port, username="dashboard", password=USERS["dashboard"])
    ha_broker = BrokerSettings(port=secured.port, username=HA_USER, password=USERS[HA_USER])
    with (
        ha_dashboard(tmp_path / "dashboard", dashboard_broker) as dashboard,
        HomeAssistantLike(ha_broker) as ha,
    ):
        start_gateway(gateway_config)
        event_id = unique("button", "fire-1")
        ha.wait(lambda h: h.available(event_id) and h.state(f"{event_id}_connectivity") == "on", what="the button")
        press(pin_factory, 17)
        ha.wait(lambda h: len(h.events_of(event_id)) == 1, what="the press")
        assert ha.refused == [] and not any("sapa" in uid for uid in ha.unique_ids())
        assert publisher_of(dashboard).counters.get("ha_retained_failed") == 0


def test_nothing_is_announced_and_no_session_opened_when_it_is_off(
    tmp_path: Path, broker_settings: BrokerSettings, probe: Probe
) -> None:
    probe.subscribe(f"{PREFIX}/#")
    probe.subscribe(f"{ROOT}/ha/#")
    announce(probe, "gw-x", button("a-1"))
    with DashboardServer(dashboard_config(tmp_path / "dashboard", broker_settings)) as dashboard:
        assert dashboard.app.extensions[EXTENSION].homeassistant is None
        poll_until(lambda: dashboard.ingest.counters.get("ingest_commits"), what="the inventory stored")
        probe.publish(f"{ROOT}/ha/marker", b"end")
        assert probe.wait_for(lambda m: True).topic == f"{ROOT}/ha/marker"  # nothing came before it


def test_on_a_nats_cluster_under_its_accounts_home_assistant_sees_the_buttons_and_the_presses(
    tmp_path: Path, start_gateway: Callable[..., Gateway], pin_factory: MockFactory
) -> None:
    """The same rights as nats-server permissions (deploy/nats/siaga-nats-auth.conf.example, sim/natscluster.py)."""
    users = {"dashboard": "dashboard-password-1", "gw-test": "gw-test-password-1", HOME_ASSISTANT_USER: "ha-pass-1"}
    with NatsCluster(tmp_path / "nats", users=users) as cluster:
        account = {"username": "dashboard", "password": users["dashboard"]}
        dashboard = ha_dashboard(tmp_path / "dashboard", settings_for(cluster, 1, 2, 0, **account))
        dashboard.start(wait_mqtt=CONNECT_S)
        ha_broker = settings_for(cluster, 2, username=HOME_ASSISTANT_USER, password=users[HOME_ASSISTANT_USER])
        try:
            with HomeAssistantLike(ha_broker) as ha:
                path = cluster_gateway(tmp_path, cluster, (0, 1, 2), username="gw-test", password=users["gw-test"])
                gateway = start_gateway(parse_gateway_config(read_toml(path)), wait_connected=False)
                assert gateway.link.echo.wait(CONNECT_S), "the gateway's own status never came back under the ACL"
                event_id = unique("button", "fire-1")
                ha.wait(lambda h: h.available(event_id), timeout=CONNECT_S, what="the button, available")
                press(pin_factory, 17)
                ha.wait(lambda h: len(h.events_of(event_id)) == 1, timeout=CONNECT_S, what="the press")
                assert ha.refused == [] and not any("sapa" in uid for uid in ha.unique_ids())
                assert publisher_of(dashboard).counters.get("ha_retained_failed") == 0
        finally:
            dashboard.stop()
