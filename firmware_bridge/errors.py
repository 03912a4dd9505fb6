"""The project's exception hierarchy.

Every error Siaga raises on purpose derives from :class:`SiagaError` and also
from the builtin it refines, so callers can catch either the precise Siaga
type or the familiar builtin (``except ValueError`` still works).
"""

from __future__ import annotations


class SiagaError(Exception):
    """Base class of every error raised on purpose by Siaga."""


class BadPayload(SiagaError, ValueError):
    """An MQTT payload that does not follow the wire contract.

    ``field`` names the offending field as a dotted path (``"site.lat"``), or
    is empty when the payload as a whole is wrong (not JSON, not an object).
    ``reason`` is a short machine-friendly code used for counters.
    """

    def __init__(self, message: str, *, field: str = "", reason: str = "invalid") -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason


class BadTopic(SiagaError, ValueError):
    """A topic that is not one of the contract's topics."""


class BadFrame(SiagaError, ValueError):
    """A radio frame that cannot be accepted (corrupt, forged, replayed...)."""


class ConfigError(SiagaError, ValueError):
    """A configuration file that is wrong; the message names the file and key."""

    def __init__(self, message: str, *, file: str = "", key: str = "") -> None:
        super().__init__(message)
        self.file = file
        self.key = key


class OutboxError(SiagaError, OSError):
    """The gateway's durable outbox could not store or read an event."""
