"""The dashboard's background parts (live hub, MQTT ingest, supervisor, escalator, notifier), attached to the app."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from flask import Flask, current_app

from firmware_bridge.counters import Counters

from .alarms.changes import AlarmChanges
from .alarms.escalation import EscalationSettings, Escalator
from .alarms.notify import Notifier
from .devices.supervision import SupervisionSettings, Supervisor
from .ingest.hub import Hub
from .ingest.mqtt import Ingest

log = logging.getLogger(__name__)

EXTENSION = "siaga"


@dataclass
class Live:
    hub: Hub
    ingest: Ingest | None
    #: Every part that changes an alarm tells the others through this.
    changes: AlarmChanges
    supervisor: Supervisor | None = None
    escalator: Escalator | None = None
    notifier: Notifier | None = None
    counters: Counters = field(default_factory=Counters)
    started: bool = False


def init_app(app: Flask) -> None:
    hub = Hub(streams_per_owner=app.config["SIAGA_STREAMS_PER_ACCOUNT"])
    counters = Counters()
    broker = app.config.get("SIAGA_BROKER")
    supervision = app.config.get("SIAGA_SUPERVISION") or SupervisionSettings()
    escalation = app.config.get("SIAGA_ESCALATION") or EscalationSettings()
    notifier = Notifier(app.config["DATABASE"], escalation.webhooks, escalation.retry, counters)
    changes = AlarmChanges(hub, notifier)
    ingest = None
    if broker is not None:
        ingest = Ingest(
            broker,
            app.config["DATABASE"],
            hub,
            changes=changes,
            client_id=app.config["SIAGA_MQTT_CLIENT_ID"],
            counters=counters,
            indication_resync_s=supervision.indication_resync_s,
        )
    supervisor = Supervisor(app.config["DATABASE"], hub, supervision, counters=counters)
    escalator = Escalator(app.config["DATABASE"], changes, escalation)
    app.extensions[EXTENSION] = Live(hub, ingest, changes, supervisor, escalator, notifier, counters)


def live() -> Live:
    return current_app.extensions[EXTENSION]


def start(app: Flask) -> None:
    """Start MQTT ingest (the CLI and the test fixtures call this; create_app does not)."""
    state: Live = app.extensions[EXTENSION]
    if state.ingest is not None and not state.started:
        state.ingest.start()
        # The notifier before the escalator, whose first round may queue notices.
        for worker in (state.supervisor, state.notifier, state.escalator):
            if worker is not None:
                worker.start()
        state.started = True


def stop(app: Flask) -> None:
    state: Live = app.extensions[EXTENSION]
    state.hub.close()
    if state.ingest is not None and state.started:
        for worker in (state.escalator, state.notifier, state.supervisor):
            if worker is not None:
                worker.stop()
        state.ingest.stop()
        state.started = False
