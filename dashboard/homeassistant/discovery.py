"""Home Assistant MQTT discovery without I/O: inventory and settings in, (topic, payload, retain) messages out.

What Home Assistant (HA) is told, and where (``{prefix}`` is the discovery
prefix, ``homeassistant``; ``{node}`` the node id, ``siaga``; ``{root}``
Siaga's MQTT root, ``siaga/v1``; ``{b}`` and ``{g}`` a button's and a
gateway's id made fit for a discovery topic by :func:`object_id`):

- ``{prefix}/event/{node}/button_{b}/config`` (retained): the button as an
  ``event`` entity; its state topic ``{root}/ha/button/{b}/event`` carries
  one JSON message ``{"event_type": "press", ...}`` per press, test, tamper
  or low battery (QoS 1, never retained: HA discards replayed retained
  events), sent by the dashboard process that stored the event;
- ``{prefix}/binary_sensor/{node}/button_{b}_connectivity/config``
  (retained): the button's ``connectivity`` sensor, whose state ``ON`` /
  ``OFF`` the dashboard keeps retained on ``{root}/ha/button/{b}/connectivity``
  (off while no gateway that registers it can reach it, or while a LoRa
  button is missing);
- ``{prefix}/binary_sensor/{node}/gateway_{g}_connectivity/config``
  (retained): the gateway's ``connectivity`` sensor, which HA reads straight
  from the gateway's retained status (and the last will the broker
  publishes for it) with a value template.

A button's entities are *available* while one of the gateways that register
it says ``online`` on its retained status topic: HA reads the status itself
(``availability`` with ``value_template``), so a gateway's last will makes
them unavailable at once, whether or not the dashboard runs.

Privacy: a button appears only while every inventory that names it
registers it as a kind the settings show (fire; SAPA only with
``include_sapa`` and a stated purpose), and a gateway only while it
registers such a button. An event message is made only for such a button,
of such a kind.

The payloads follow HA's discovery schema (``homeassistant/components/mqtt``:
``event.py``, ``binary_sensor.py``, ``schemas.py``, ``config.py``), with
full key names (HA expands abbreviations before it validates), and only keys
HA has accepted since the ``event`` platform came (2023.8): an older HA's
device schema refuses keys it does not know. ``tests/test_homeassistant.py``
checks every payload against that schema, transcribed in ``tests/data/``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from firmware_bridge.access import stated_purpose
from firmware_bridge.payloads import Event, EventType, GatewayState, Kind, Source
from firmware_bridge.settings import Section
from firmware_bridge.topics import Topics

#: What an event entity fires: every event type of the contract but the heartbeat (a sign of life, not news).
EVENT_TYPES: tuple[str, ...] = tuple(str(kind) for kind in EventType if kind is not EventType.HEARTBEAT)

DEFAULT_PREFIX = "homeassistant"
DEFAULT_NODE_ID = "siaga"
DEFAULT_REFRESH_S = 10.0
#: A discovery prefix: topic levels without wildcards, and without '.' (a nats-server cluster refuses it).
PREFIX_PATTERN = r"^[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,3}$"
#: HA's discovery topic allows only these characters in a node id and an object id (its TOPIC_MATCHER).
NODE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"

#: HA's value template for the contract's status and presence payloads: ``state`` is online or offline.
STATE_TEMPLATE = "{{ value_json.state }}"
ONLINE, OFFLINE = str(GatewayState.ONLINE), str(GatewayState.OFFLINE)
#: HA's binary sensor defaults, written out.
ON, OFF = "ON", "OFF"
MANUFACTURER = "Siaga"
#: QoS of everything sent to HA, and of HA's subscriptions (``qos`` in each configuration).
QOS = 1

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class HomeAssistantSettings:
    """``[homeassistant]``: whether and how Siaga announces itself to Home Assistant."""

    enabled: bool = False
    discovery_prefix: str = DEFAULT_PREFIX
    node_id: str = DEFAULT_NODE_ID
    #: SAPA buttons too: only with ``sapa_purpose`` stated (refused at start otherwise).
    include_sapa: bool = False
    sapa_purpose: str | None = None
    #: How often the retained configurations and states are brought in line with the inventory (seconds).
    refresh_s: float = DEFAULT_REFRESH_S

    def shows(self, kind: str) -> bool:
        """Whether buttons (and events) of ``kind`` may go to HA."""
        return kind == Kind.FIRE or (self.include_sapa and kind == Kind.SAPA)


def read_settings(section: Section, *, mqtt_root: str) -> HomeAssistantSettings:
    """Read ``[homeassistant]``; raises ConfigError naming the file and key."""
    enabled = section.bool("enabled", False)
    prefix = section.str("discovery_prefix", DEFAULT_PREFIX, pattern=PREFIX_PATTERN)
    if prefix == mqtt_root or prefix.startswith(mqtt_root + "/"):
        # Gateways' topics live under the root: configurations there would be read as gateway traffic.
        raise section.error("discovery_prefix", f"must lie outside Siaga's MQTT root {mqtt_root!r}")
    node_id = section.str("node_id", DEFAULT_NODE_ID, pattern=NODE_ID_PATTERN)
    include_sapa = section.bool("include_sapa", False)
    purpose = stated_purpose(section, "include_sapa", include_sapa)
    settings = HomeAssistantSettings(
        enabled=enabled,
        discovery_prefix=prefix,
        node_id=node_id,
        include_sapa=include_sapa,
        sapa_purpose=purpose,
        refresh_s=section.float("refresh_s", DEFAULT_REFRESH_S, min=1.0, max=3600.0),
    )
    section.done()
    return settings


class Message(NamedTuple):
    """One MQTT message to publish (QoS :data:`QOS`); an empty retained payload removes a retained message."""

    topic: str
    payload: bytes
    retain: bool


@dataclass(frozen=True)
class GatewayFacts:
    """What the store knows of a gateway that HA's entities depend on."""

    gw: str
    state: str  # online / offline / unknown
    version: str | None = None
    #: online, but its health stopped: a hung gateway reaches no button
    silent: bool = False
    #: its LoRa module is unplugged or dead: it reaches no LoRa button
    radio_missing: bool = False

    def reaches(self, transport: str) -> bool:
        if self.state != ONLINE or self.silent:
            return False
        return transport != Source.LORA or not self.radio_missing


@dataclass(frozen=True)
class ButtonFacts:
    """A button as the store knows it."""

    id: str
    #: the kind, transport, site and label its row shows (the first inventory that named it)
    kind: str
    transport: str
    site_name: str
    label: str | None
    #: its row's gateway
    gw: str
    #: (gateway, kind) for every inventory that registers it now; empty: it left every inventory
    registrations: tuple[tuple[str, str], ...]
    #: a LoRa button not heard within its window (a ``button_missing`` trouble)
    missing: bool = False

    @property
    def gateways(self) -> tuple[str, ...]:
        return tuple(sorted({gw for gw, _kind in self.registrations}))


@dataclass(frozen=True)
class Facts:
    """Everything HA's retained configurations and states are built from."""

    gateways: Mapping[str, GatewayFacts]
    buttons: Sequence[ButtonFacts]


@dataclass(frozen=True)
class Models:
    """The device models HA shows, in the dashboard's language (from the catalogue)."""

    fire_button: str
    sapa_button: str
    gateway: str


@dataclass(frozen=True)
class Happening:
    """An event the store took (not a redelivery), as HA hears of it."""

    event: Event
    #: the desk it went to: its gateway's registration of the button
    kind: str
    #: the alarm a press opened or joined; None for a press that raised none (button out of service)
    alarm: int | None = None
    #: that alarm is a test (the button is in test mode): HA hears ``test``, not ``press``
    test: bool = False


def object_id(identifier: str) -> str:
    """``identifier`` as HA's discovery topic allows (``[a-zA-Z0-9_-]``).

    An id with another character (``.`` is allowed in Siaga's ids) gets a
    short hash of itself, so that ``a.b`` and ``a_b`` stay two objects.
    """
    safe = _UNSAFE.sub("_", identifier)
    if safe == identifier:
        return identifier
    return f"{safe}_{hashlib.sha256(identifier.encode('utf-8')).hexdigest()[:8]}"


def encode(payload: Mapping[str, Any]) -> bytes:
    """Stable bytes (sorted keys): the same configuration is the same payload, so it is not sent again."""
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def is_config(topic: str) -> bool:
    return topic.endswith("/config")


class Discovery:
    """The discovery messages of one installation: its settings, MQTT root, version and device models."""

    def __init__(self, settings: HomeAssistantSettings, root: str, *, version: str, models: Models) -> None:
        self.settings = settings
        self.root = root
        self.version = version
        self.models = models
        self._topics = Topics(root)

    # -- topics ------------------------------------------------------------------

    def config_topic(self, component: str, object_name: str) -> str:
        return f"{self.settings.discovery_prefix}/{component}/{self.settings.node_id}/{object_name}/config"

    def event_topic(self, button: str) -> str:
        return f"{self.root}/ha/button/{object_id(button)}/event"

    def connectivity_topic(self, button: str) -> str:
        return f"{self.root}/ha/button/{object_id(button)}/connectivity"

    def learn_filters(self) -> tuple[str, ...]:
        """Where every retained message Siaga keeps for HA lives: what a (re)started dashboard learns, and clears
        where it no longer matches the inventory."""
        return (
            f"{self.settings.discovery_prefix}/+/{self.settings.node_id}/+/config",
            f"{self.root}/ha/button/+/connectivity",
        )

    # -- who is shown ------------------------------------------------------------

    def shows_button(self, button: ButtonFacts) -> bool:
        """In an inventory now, and every inventory that names it registers a kind HA may see."""
        kinds = {kind for _gw, kind in button.registrations} | {button.kind}
        return bool(button.registrations) and all(self.settings.shows(kind) for kind in kinds)

    def shown_buttons(self, facts: Facts) -> list[ButtonFacts]:
        return sorted((button for button in facts.buttons if self.shows_button(button)), key=lambda b: b.id)

    # -- the retained state ------------------------------------------------------

    def retained(self, facts: Facts) -> list[Message]:
        """Every retained message HA should find now: per shown button its connectivity state and its two
        configurations, per gateway that registers a shown button its configuration."""
        messages: list[Message] = []
        gateways: set[str] = set()
        for button in self.shown_buttons(facts):
            gateways.update(button.gateways)
            messages += self._button_messages(button, facts.gateways)
        for gw in sorted(gateways):
            gateway = facts.gateways.get(gw) or GatewayFacts(gw, "unknown")
            topic = self.config_topic("binary_sensor", f"gateway_{object_id(gw)}_connectivity")
            messages.append(Message(topic, encode(self.gateway_connectivity_config(gateway)), True))
        return messages

    def _button_messages(self, button: ButtonFacts, gateways: Mapping[str, GatewayFacts]) -> list[Message]:
        oid = object_id(button.id)
        reached = any(gw in gateways and gateways[gw].reaches(button.transport) for gw in button.gateways)
        state = ON if reached and not button.missing else OFF
        return [
            Message(self.connectivity_topic(button.id), state.encode("ascii"), True),
            Message(self.config_topic("event", f"button_{oid}"), encode(self.event_config(button)), True),
            Message(
                self.config_topic("binary_sensor", f"button_{oid}_connectivity"),
                encode(self.button_connectivity_config(button)),
                True,
            ),
        ]

    def event_config(self, button: ButtonFacts) -> dict[str, Any]:
        """The button as an ``event`` entity: its main feature, so it is named after its device (``name: null``)."""
        return {
            "name": None,
            "unique_id": f"{self.settings.node_id}_button_{object_id(button.id)}",
            "state_topic": self.event_topic(button.id),
            "qos": QOS,
            "event_types": list(EVENT_TYPES),
            "device_class": "button",
            "icon": "mdi:fire-alert" if button.kind == Kind.FIRE else "mdi:account-alert",
            **self._availability(button.gateways),
            "device": self._button_device(button),
            "origin": self._origin(),
        }

    def button_connectivity_config(self, button: ButtonFacts) -> dict[str, Any]:
        """Its ``connectivity`` sensor, a diagnostic one; unnamed, so HA names it after its device class."""
        return {
            "unique_id": f"{self.settings.node_id}_button_{object_id(button.id)}_connectivity",
            "state_topic": self.connectivity_topic(button.id),
            "qos": QOS,
            "device_class": "connectivity",
            "entity_category": "diagnostic",
            "payload_on": ON,
            "payload_off": OFF,
            **self._availability(button.gateways),
            "device": self._button_device(button),
            "origin": self._origin(),
        }

    def gateway_connectivity_config(self, gateway: GatewayFacts) -> dict[str, Any]:
        """The gateway's ``connectivity`` sensor, read from its retained status (and last will) by HA itself."""
        return {
            "unique_id": f"{self.settings.node_id}_gateway_{object_id(gateway.gw)}_connectivity",
            "state_topic": self._topics.status(gateway.gw),
            "value_template": STATE_TEMPLATE,
            "qos": QOS,
            "device_class": "connectivity",
            "payload_on": ONLINE,
            "payload_off": OFFLINE,
            "device": self._gateway_device(gateway),
            "origin": self._origin(),
        }

    def _availability(self, gateways: Iterable[str]) -> dict[str, Any]:
        """Available while any gateway that registers the button says online (its status, or its last will)."""
        return {
            "availability": [
                {
                    "topic": self._topics.status(gw),
                    "value_template": STATE_TEMPLATE,
                    "payload_available": ONLINE,
                    "payload_not_available": OFFLINE,
                }
                for gw in sorted(gateways)
            ],
            "availability_mode": "any",
        }

    def _device_id(self, what: str, identifier: str) -> str:
        return f"{self.settings.node_id}_{what}_{object_id(identifier)}"

    def _button_device(self, button: ButtonFacts) -> dict[str, Any]:
        gateways = button.gateways
        via = button.gw if button.gw in gateways else gateways[0]
        transport = "LoRa" if button.transport == Source.LORA else "GPIO"
        model = self.models.fire_button if button.kind == Kind.FIRE else self.models.sapa_button
        return {
            "identifiers": [self._device_id("button", button.id)],
            "name": f"{button.site_name} · {button.label or button.id}",
            "manufacturer": MANUFACTURER,
            "model": f"{model} ({transport})",
            "via_device": self._device_id("gateway", via),
            "suggested_area": button.site_name,
        }

    def _gateway_device(self, gateway: GatewayFacts) -> dict[str, Any]:
        device: dict[str, Any] = {
            "identifiers": [self._device_id("gateway", gateway.gw)],
            "name": gateway.gw,
            "manufacturer": MANUFACTURER,
            "model": self.models.gateway,
        }
        if gateway.version:
            device["sw_version"] = gateway.version
        return device

    def _origin(self) -> dict[str, Any]:
        return {"name": MANUFACTURER, "sw_version": self.version}

    # -- events ------------------------------------------------------------------

    def event_message(self, happening: Happening, registered: frozenset[str] | None) -> Message | None:
        """The message HA's event entity fires on, or None when HA must not hear of it.

        ``registered``: the kinds the inventories register the button as now
        (None: in no inventory). Not sent: heartbeats; events of a button HA
        does not show (unregistered, or registered as a kind it may not see);
        events whose desk or own word is such a kind; a press that raised no
        alarm (its button is out of service).
        """
        event = happening.event
        if event.type is EventType.HEARTBEAT or not registered:
            return None
        kinds = set(registered) | {happening.kind, str(event.kind)}
        if not all(self.settings.shows(kind) for kind in kinds):
            return None
        event_type = str(event.type)
        if event.type is EventType.PRESS:
            if happening.alarm is None:
                return None
            if happening.test:
                event_type = str(EventType.TEST)
        payload: dict[str, Any] = {
            "event_type": event_type,
            "event_id": event.id,
            "button": event.button,
            "ts": event.ts,
        }
        if happening.alarm is not None:
            payload["alarm"] = happening.alarm
        return Message(self.event_topic(event.button), encode(payload), False)


def plan(desired: Sequence[Message], believed: Mapping[str, bytes]) -> list[Message]:
    """What to publish so that the retained messages under :meth:`Discovery.learn_filters` become ``desired``.

    ``believed``: what the broker holds there now, as far as is known (what
    it delivered on subscribing, and what was published since). HA's order:
    states before the configurations that name them, configurations removed
    before the states they named.
    """
    wanted = {message.topic for message in desired}
    changed = [message for message in desired if believed.get(message.topic) != message.payload]
    stale = sorted(topic for topic, payload in believed.items() if payload and topic not in wanted)
    return (
        [message for message in changed if not is_config(message.topic)]
        + [message for message in changed if is_config(message.topic)]
        + [Message(topic, b"", True) for topic in stale if is_config(topic)]
        + [Message(topic, b"", True) for topic in stale if not is_config(topic)]
    )
