"""The dashboard's metric families from a snapshot of its counters and store, without I/O: names, labels, SAPA's rule.

Every family is named here, once: a counter that no rule below names is not
exposed, so a new counter never reaches a scraper by accident (and with it,
SAPA activity). Labels are only ever kinds, states, reasons and other values
from the code's own enums, never a site, a button, a gateway or a person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from firmware_bridge.metrics import CounterRule, Labels, counter_families, counter_rule

from ..alarms.lifecycle import OPEN_STATES
from ..devices.supervision import TroubleType

PREFIX = "siaga_"

#: set_aside.other: a message that was no press (a status, an inventory, unreadable): counted with no kind.
NO_KIND = "other"


def _rule(pattern: str, family: str, help: str, **fixed: str) -> CounterRule:
    return counter_rule(pattern, PREFIX + family, help, **fixed)


_KIND = r"(?P<kind>[a-z]+)"
_CODE = r"[a-z0-9_]+"

#: The counters of ``firmware_bridge.counters.Counters`` this process keeps, as Prometheus families.
RULES: tuple[CounterRule, ...] = (
    _rule(rf"events_stored\.{_KIND}", "ingest_events_total", "Events received over MQTT, by kind and outcome.",
          outcome="stored"),
    _rule(rf"events_duplicate\.{_KIND}", "ingest_events_total", "Events received over MQTT, by kind and outcome.",
          outcome="duplicate"),
    _rule(rf"events_anomaly\.(?P<anomaly>{_CODE})\.{_KIND}", "ingest_anomalies_total",
          "Events stored with an anomaly (unregistered button, kind mismatch), by kind."),
    _rule(rf"rejected\.(?P<reason>{_CODE})", "ingest_rejections_total",
          "Messages refused for good (not the contract), by reason."),
    _rule(rf"set_aside\.{_KIND}", "ingest_set_aside_total",
          "Messages the ingest could not process normally and kept aside (kind 'other': not a press)."),
    _rule(rf"degraded_alarms\.{_KIND}", "ingest_degraded_alarms_total",
          "Alarms raised by the minimal path after the normal one failed on their press."),
    _rule(rf"press_not_stored\.{_KIND}", "ingest_presses_not_stored_total",
          "Presses not even the minimal path could store (their gateway keeps and resends them)."),
    _rule(r"ingest_commits", "ingest_batches_total", "Batches of messages committed to the store."),
    _rule(r"store_errors", "ingest_store_errors_total", "Failed store transactions of the ingest (retried)."),
    _rule(r"writer_errors", "ingest_writer_errors_total", "Failed rounds of the ingest's writer thread."),
    _rule(r"mqtt_connects", "mqtt_connects_total", "MQTT sessions opened by the ingest."),
    _rule(r"mqtt_disconnects", "mqtt_disconnects_total", "MQTT sessions lost by the ingest."),
    _rule(r"mqtt_connect_refused", "mqtt_connect_refused_total", "MQTT connections the broker refused."),
    _rule(r"presence_restored", "mqtt_presence_restored_total", "The dashboard's retained presence put back."),
    _rule(r"presence_resyncs", "mqtt_presence_resyncs_total",
          "Sessions the broker had not kept, announced so that gateways resend at once."),
    _rule(rf"indications_sent\.{_KIND}", "indications_sent_total", "Indications sent to buttons, by alarm kind."),
    _rule(rf"notifications_sent\.{_KIND}", "webhook_deliveries_total",
          "Webhook notices delivered or given up, by alarm kind.", outcome="sent"),
    _rule(rf"notifications_failed\.{_KIND}", "webhook_deliveries_total",
          "Webhook notices delivered or given up, by alarm kind.", outcome="failed"),
    _rule(rf"notification_retries\.{_KIND}", "webhook_retries_total",
          "Webhook notices that failed an attempt and wait for the next, by alarm kind."),
    _rule(r"stream_writes_waited", "live_stream_writes_waited_total",
          "Writes to a board's stream that waited for its socket."),
    _rule(r"streams_behind", "live_streams_behind_total", "Board streams ended because they fell behind."),
    _rule(r"snapshots_read", "live_snapshots_read_total", "Board snapshots read from the store."),
    _rule(r"health_unreadable", "supervisor_health_unreadable_total", "Gateway health reports not readable."),
    _rule(r"http_(?P<code>5[0-9][0-9])", "http_server_errors_total", "Answers with a server error, by status code."),
    _rule(r"relay_(?P<event>[a-z_]+)", "relay_events_total", "Live messages relayed between dashboard processes."),
    _rule(r"leader_(?P<event>elected|lost|check_errors)", "leadership_events_total",
          "Changes of which process runs the supervisor, escalator and webhook senders."),
)  # fmt: skip

#: The citizens' reports' counters (``dashboard/reports/metrics.py``): no alarm, no kind.
REPORT_RULES: tuple[CounterRule, ...] = (
    _rule(r"(?P<channel>form|open311)\.received", "reports_received_total", "Citizens' reports received."),
    _rule(r"(?P<channel>form|open311)\.(?P<reason>rate_limited)", "reports_refused_total",
          "Citizens' reports refused, by reason."),
    _rule(r"(?P<channel>form)\.refused\.(?P<reason>[a-z_]+)", "reports_refused_total",
          "Citizens' reports refused, by reason."),
)  # fmt: skip


@dataclass(frozen=True)
class OpenAlarms:
    kind: str
    state: str
    test: bool
    count: int


@dataclass(frozen=True)
class IngestState:
    connected: bool
    alive: bool
    backlog: int


@dataclass(frozen=True)
class Snapshot:
    """What one scrape reads. Everything in it is already limited to what may be shown:
    ``counters`` to those a role that sees only ``kinds`` may read, the store's figures to ``kinds``."""

    kinds: frozenset[str]
    counters: Mapping[str, int]
    reports: Mapping[str, int] = field(default_factory=dict)
    #: the store's figures; None: they could not be read this time, and their family is left out
    alarms_open: Sequence[OpenAlarms] | None = ()
    troubles_open: Mapping[str, int] | None = field(default_factory=dict)
    notices_queued: Mapping[str, int] | None = field(default_factory=dict)
    streams_open: int = 0
    ingest: IngestState | None = None
    leader: bool = False
    supervisor_last_round_s: float | None = None
    supervisor_longest_round_s: float | None = None
    version: str = ""
    #: store reads that failed since this process started (each time, the rest was answered)
    scrape_errors: int = 0


def plain_names(rules: Sequence[CounterRule] = RULES) -> list[str]:
    """The counters that are one family each, without labels: shown at 0 until counted, if they may be shown."""
    return [rule.pattern.pattern for rule in rules if rule.plain]


def families(snapshot: Snapshot) -> list[Metric]:
    """Every family of one scrape, each named once (Prometheus refuses a name twice)."""
    found: list[Metric] = []
    keep = _of_kinds(snapshot.kinds)
    found += counter_families(RULES, snapshot.counters, keep=keep, seed=_seeds(snapshot.kinds))
    found += counter_families(REPORT_RULES, snapshot.reports, keep=keep)
    found += list(_store_families(snapshot))
    found += list(_process_families(snapshot))
    return found


def _of_kinds(kinds: frozenset[str]) -> Callable[[Labels], bool]:
    """A sample of another desk's kind is left out whatever the counters hold (the snapshot should not hold it)."""
    return lambda labels: labels.get("kind") in (None, NO_KIND) or labels["kind"] in kinds


def _seeds(kinds: frozenset[str]) -> dict[str, list[Labels]]:
    """Label sets shown at 0 before anything happened: a rate over a series that appears late misses its start."""
    ordered = sorted(kinds)
    return {
        PREFIX + "ingest_events_total": [{"kind": k, "outcome": o} for k in ordered for o in ("stored", "duplicate")],
        PREFIX + "webhook_deliveries_total": [{"kind": k, "outcome": o} for k in ordered for o in ("sent", "failed")],
    }


def _store_families(snapshot: Snapshot) -> Iterator[Metric]:
    if snapshot.alarms_open is not None:
        yield _open_alarms(snapshot.kinds, snapshot.alarms_open)
    if snapshot.troubles_open is not None:
        troubles = GaugeMetricFamily(PREFIX + "troubles_open", "Troubles not yet cleared, by type.", labels=["type"])
        for trouble_type in TroubleType:
            troubles.add_metric([str(trouble_type)], snapshot.troubles_open.get(str(trouble_type), 0))
        yield troubles
    if snapshot.notices_queued is not None:
        queued = GaugeMetricFamily(
            PREFIX + "webhook_queued_notices",
            "Webhook notices waiting to be delivered, by alarm kind.",
            labels=["kind"],
        )
        for kind in sorted(snapshot.kinds):
            queued.add_metric([kind], snapshot.notices_queued.get(kind, 0))
        yield queued


def _open_alarms(kinds: frozenset[str], rows: Sequence[OpenAlarms]) -> Metric:
    alarms = GaugeMetricFamily(
        PREFIX + "alarms_open",
        "Alarms not yet resolved, by kind, state and test mark.",
        labels=["kind", "state", "test"],
    )
    counts = {(row.kind, row.state, row.test): row.count for row in rows if row.kind in kinds}
    for kind in sorted(kinds):
        for state in OPEN_STATES:
            for test in (False, True):
                alarms.add_metric([kind, str(state), str(test).lower()], counts.get((kind, str(state), test), 0))
    return alarms


def _process_families(snapshot: Snapshot) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        PREFIX + "live_streams_open", "Live board streams this process serves now.", value=snapshot.streams_open
    )
    ingest = snapshot.ingest
    if ingest is not None:
        yield GaugeMetricFamily(
            PREFIX + "mqtt_connected", "1 while the ingest's MQTT session is up.", value=int(ingest.connected)
        )
        yield GaugeMetricFamily(PREFIX + "ingest_alive", "1 while the ingest's writer runs.", value=int(ingest.alive))
        yield GaugeMetricFamily(
            PREFIX + "ingest_queue_messages", "Messages received and not yet stored.", value=ingest.backlog
        )
    yield GaugeMetricFamily(
        PREFIX + "leader",
        "1 if this process runs the supervisor, escalator and webhook senders now (one process at a time).",
        value=int(snapshot.leader),
    )
    if snapshot.supervisor_last_round_s is not None:
        yield GaugeMetricFamily(
            PREFIX + "supervisor_last_round_seconds",
            "How long the supervisor's last round took.",
            value=snapshot.supervisor_last_round_s,
        )
    if snapshot.supervisor_longest_round_s is not None:
        yield GaugeMetricFamily(
            PREFIX + "supervisor_longest_round_seconds",
            "The supervisor's longest round since this process started.",
            value=snapshot.supervisor_longest_round_s,
        )
    info = GaugeMetricFamily(
        PREFIX + "dashboard_info", "This dashboard's version (the value is 1).", labels=["version"]
    )
    info.add_metric([snapshot.version], 1)
    yield info
    yield CounterMetricFamily(
        PREFIX + "metrics_scrape_errors_total",
        "Parts of scrapes that could not be read (the rest was answered); see the log.",
        value=snapshot.scrape_errors,
    )
