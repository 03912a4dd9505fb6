"""MQTT topics of the gateway <-> dashboard contract.

All topics live under a configurable root (default ``siaga/v1``)::

    {root}/gw/{gw}/status          QoS 1, retained, last will "offline"
    {root}/gw/{gw}/inventory       QoS 1, retained
    {root}/gw/{gw}/event           QoS 1
    {root}/gw/{gw}/health          QoS 0
    {root}/gw/{gw}/cmd/indicate    QoS 1 (dashboard -> gateway)
    {root}/gw/{gw}/cmd/receipt     QoS 1 (dashboard -> gateway)
    {root}/dashboard/status        QoS 1, retained, last will "offline"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from .errors import BadTopic

DEFAULT_ROOT = "siaga/v1"

#: Identifiers that appear inside topics (gateway ids) and payloads (button
#: ids). No ``/``, ``+`` or ``#``, so an id can never change a topic's shape.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)


class Channel(StrEnum):
    """The per-gateway topics; the value is the topic suffix after ``gw/{gw}/``."""

    STATUS = "status"
    INVENTORY = "inventory"
    EVENT = "event"
    HEALTH = "health"
    INDICATE = "cmd/indicate"
    RECEIPT = "cmd/receipt"

    @property
    def qos(self) -> int:
        return 0 if self is Channel.HEALTH else 1

    @property
    def retain(self) -> bool:
        return self in (Channel.STATUS, Channel.INVENTORY)


_SUFFIXES = {channel.value: channel for channel in Channel}


def is_valid_id(text: object) -> bool:
    """True if ``text`` may be used as a gateway or button id."""
    return isinstance(text, str) and bool(_ID_RE.match(text))


def check_root(root: str) -> str:
    """Validate a topic root; returns it unchanged or raises :class:`BadTopic`."""
    if not root or root.startswith("/") or root.endswith("/"):
        raise BadTopic(f"topic root {root!r} must be non-empty without leading or trailing '/'")
    if any(char in root for char in "+#\x00"):
        raise BadTopic(f"topic root {root!r} must not contain wildcards or NUL")
    if "" in root.split("/"):
        raise BadTopic(f"topic root {root!r} has an empty level")
    return root


@dataclass(frozen=True)
class Topics:
    """Builds and parses the contract's topics under one root."""

    root: str = DEFAULT_ROOT

    def __post_init__(self) -> None:
        check_root(self.root)

    def topic(self, gw: str, channel: Channel) -> str:
        if not is_valid_id(gw):
            raise BadTopic(f"gateway id {gw!r} is not a valid id ({ID_PATTERN})")
        return f"{self.root}/gw/{gw}/{channel.value}"

    def status(self, gw: str) -> str:
        return self.topic(gw, Channel.STATUS)

    def inventory(self, gw: str) -> str:
        return self.topic(gw, Channel.INVENTORY)

    def event(self, gw: str) -> str:
        return self.topic(gw, Channel.EVENT)

    def health(self, gw: str) -> str:
        return self.topic(gw, Channel.HEALTH)

    def indicate(self, gw: str) -> str:
        return self.topic(gw, Channel.INDICATE)

    def receipt(self, gw: str) -> str:
        return self.topic(gw, Channel.RECEIPT)

    def dashboard_status(self) -> str:
        """The dashboard's presence (retained): gateways resend unreceipted events only while it is online."""
        return f"{self.root}/dashboard/status"

    def subscription(self, channel: Channel, gw: str = "+") -> str:
        """A subscription filter for one channel of one gateway (default: all gateways)."""
        if gw != "+" and not is_valid_id(gw):
            raise BadTopic(f"gateway id {gw!r} is not a valid id")
        return f"{self.root}/gw/{gw}/{channel.value}"

    def parse(self, topic: str) -> tuple[str, Channel]:
        """Split a concrete topic into ``(gateway id, channel)``; raises :class:`BadTopic`."""
        prefix = self.root + "/gw/"
        if not topic.startswith(prefix):
            raise BadTopic(f"topic {topic!r} is not under {prefix!r}")
        rest = topic[len(prefix) :]
        gw, sep, suffix = rest.partition("/")
        if not sep or not is_valid_id(gw):
            raise BadTopic(f"topic {topic!r} has no valid gateway id")
        channel = _SUFFIXES.get(suffix)
        if channel is None:
            raise BadTopic(f"topic {topic!r} has unknown channel {suffix!r}")
        return gw, channel
