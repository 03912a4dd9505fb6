"""The dashboard's background parts (hub, MQTT ingest, supervisor, escalator, notifier, peers), attached to the app."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from flask import Flask, current_app

from firmware_bridge.counters import Counters

from .alarms.changes import AlarmChanges
from .alarms.escalation import EscalationSettings, Escalator
from .alarms.notify import Notifier
from .devices.supervision import SupervisionSettings, Supervisor
from .homeassistant.publisher import HomeAssistantPublisher
from .homeassistant.publisher import from_config as homeassistant_from_config
from .ingest.hub import Hub
from .ingest.mqtt import Ingest
from .peers import Leadership, Relay
from .pg import is_url
from .timeseries.writer import InfluxSettings, SeriesWriter

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
    #: Whether this process runs the supervisor, escalator and webhook senders now (one process at a time).
    leadership: Leadership | None = None
    #: The other dashboard processes on a PostgreSQL store (None on SQLite).
    relay: Relay | None = None
    #: Writes the time series to InfluxDB (``[influxdb]``); None when they are off. Not in /healthz either:
    #: failing writes are a trouble on the board, and a load balancer must not drop the board for them.
    series: SeriesWriter | None = None
    #: Home Assistant MQTT discovery (``[homeassistant]``); None when it is off. Not in /healthz: an
    #: integration's failure must not make a dashboard look dead (its counters show it).
    homeassistant: HomeAssistantPublisher | None = None
    started: bool = False

    def background(self) -> list[Any]:
        """Every thread-owning part this process started, for /healthz."""
        parts = (self.supervisor, self.escalator, self.notifier, self.leadership, self.relay)
        return [part for part in parts if part is not None]


def init_app(app: Flask) -> None:
    hub = Hub(streams_per_owner=app.config["SIAGA_STREAMS_PER_ACCOUNT"])
    counters = Counters()
    broker = app.config.get("SIAGA_BROKER")
    supervision = app.config.get("SIAGA_SUPERVISION") or SupervisionSettings()
    escalation = app.config.get("SIAGA_ESCALATION") or EscalationSettings()
    influx: InfluxSettings | None = app.config.get("SIAGA_INFLUXDB")
    if influx is not None:  # the supervisor turns failing writes into a trouble
        supervision = replace(supervision, timeseries_trouble_after_s=influx.trouble_after_s)
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
            series=None if influx is None else influx.policy,
        )
    supervisor = Supervisor(app.config["DATABASE"], hub, supervision, counters=counters)
    escalator = Escalator(app.config["DATABASE"], changes, escalation)
    leadership = Leadership(app.config["DATABASE"], counters)
    series = SeriesWriter(app.config["DATABASE"], influx, counters) if influx is not None else None
    for job in (supervisor, escalator, notifier, series):
        if job is not None:
            job.gate = leadership.holds
    relay = Relay(app.config["DATABASE"], hub, counters) if is_url(app.config["DATABASE"]) else None
    homeassistant = homeassistant_from_config(app.config, changes=changes, counters=counters, gate=leadership.holds)
    app.extensions[EXTENSION] = Live(
        hub, ingest, changes, supervisor, escalator, notifier, counters,
        leadership=leadership, relay=relay, series=series, homeassistant=homeassistant,
    )  # fmt: skip


def live() -> Live:
    return current_app.extensions[EXTENSION]


def start(app: Flask) -> None:
    """Start MQTT ingest (the CLI and the test fixtures call this; create_app does not)."""
    state: Live = app.extensions[EXTENSION]
    if state.ingest is not None and not state.started:
        if state.relay is not None:
            state.relay.start()  # before the ingest: nothing this process publishes misses the others' boards
        state.ingest.start()
        if state.leadership is not None:
            state.leadership.start()
        # The notifier before the escalator, whose first round may queue notices.
        for worker in (state.supervisor, state.notifier, state.escalator, state.series, state.homeassistant):
            if worker is not None:
                worker.start()
        state.started = True


def stop(app: Flask) -> None:
    state: Live = app.extensions[EXTENSION]
    state.hub.close()
    if state.ingest is not None and state.started:
        for worker in (state.homeassistant, state.series, state.escalator, state.notifier, state.supervisor):
            if worker is not None:
                worker.stop()
        state.ingest.stop()
        for peer in (state.leadership, state.relay):
            if peer is not None:
                peer.stop()
        state.started = False
