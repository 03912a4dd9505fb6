"""The gateway's Prometheus metrics (``[metrics]``): its health report's figures, served by an optional listener.

The figures are the ones the health report already carries (outbox, links,
counters, radio, machine), read when Prometheus asks, never counted twice. The
listener is a small threaded HTTP server of its own, off the alarm path: a press
never waits for it, a scrape that fails is counted (``metrics_scrape_errors``)
and logged, and a port that cannot be opened leaves the gateway running without
metrics (``metrics_listen_errors``).

What moves with presses (the outbox, events, receipts, indications, LoRa event
frames and sends) is left out on a gateway that carries a SAPA button unless
``[metrics] sapa = true``: there those counts would tell SAPA's activity to
whoever can scrape. No label names a button, node, site or the gateway itself.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from socketserver import TCPServer, ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from firmware_bridge.counters import Counters
from firmware_bridge.errors import SiagaError
from firmware_bridge.metrics import CounterRule, MetricsSettings, counter_families, counter_rule
from firmware_bridge.payloads import Health, Kind
from firmware_bridge.timeutil import parse_ts

from .config import GatewayConfig

log = logging.getLogger(__name__)

PREFIX = "siaga_gateway_"


def _rule(pattern: str, family: str, help: str, **fixed: str) -> CounterRule:
    return counter_rule(pattern, PREFIX + family, help, **fixed)


_CODE = r"[a-z0-9_]+"

#: Counters that say nothing of presses: links, failures, the radio's noise and refusals, heartbeats.
QUIET_RULES: tuple[CounterRule, ...] = (
    _rule(r"mqtt_connects", "mqtt_connects_total", "MQTT sessions opened."),
    _rule(r"mqtt_disconnects", "mqtt_disconnects_total", "MQTT sessions lost."),
    _rule(r"mqtt_connect_refused", "mqtt_connect_refused_total", "MQTT connections the broker refused."),
    _rule(r"status_echo_missing", "status_echo_missing_total",
          "Sessions whose own status did not come back from the broker (its ACL may refuse the gateway)."),
    _rule(r"pump_errors", "pump_errors_total", "Failed rounds of the outbox pump."),
    _rule(r"health_errors", "health_errors_total", "Health reports that could not be sent."),
    _rule(r"downlink_foreign_topic", "downlink_foreign_topic_total", "Messages on a topic not this gateway's."),
    _rule(r"presence_rejected", "presence_rejected_total", "Dashboard presence messages refused."),
    _rule(rf"radio_rejected\.(?P<reason>{_CODE})", "radio_rejections_total", "LoRa frames refused, by reason."),
    _rule(r"radio_heartbeats", "radio_frames_total", "LoRa frames accepted, by what they were.",
          outcome="heartbeat"),
    _rule(r"radio_frame_errors", "radio_frame_errors_total", "LoRa frames whose handling failed (a bug; logged)."),
    _rule(r"lora_module_resets", "lora_module_resets_total", "Times the LoRa module restarted on its own."),
    _rule(r"lora_unparsed_lines", "lora_unparsed_lines_total", "Lines from the LoRa module that were not understood."),
    _rule(r"lora_writer_errors", "lora_writer_errors_total", "Failed rounds of the LoRa writer thread."),
    _rule(r"lora_(?P<event>missing|opened|lost)", "lora_port_events_total",
          "The LoRa module's serial port: found missing, opened, lost."),
    _rule(r"metrics_scrape_errors", "metrics_scrape_errors_total", "Scrapes that failed (logged)."),
    _rule(r"metrics_listen_errors", "metrics_listen_errors_total", "Times the metrics port could not be opened."),
)  # fmt: skip

#: Counters that move with presses, and with the indications the dashboard sends about their alarms.
PRESS_RULES: tuple[CounterRule, ...] = (
    _rule(r"presses", "presses_total", "Presses of wired buttons."),
    _rule(r"press_errors", "press_errors_total", "Presses that could not be recorded (logged)."),
    _rule(r"events_(?P<stage>recorded|published|acknowledged|receipted)", "events_total",
          "Events by stage: recorded in the outbox, published, taken by the broker, receipted by the dashboard."),
    _rule(r"events_resent", "events_resent_total", "Events sent again for want of a receipt."),
    _rule(r"events_unstored", "events_unstored_total", "Events sent from memory because the outbox failed."),
    _rule(r"outbox_errors", "outbox_errors_total", "Writes to the outbox that failed."),
    _rule(r"publish_refused", "publish_refused_total", "Publishes the MQTT client refused (retried)."),
    _rule(r"receipts", "receipts_total", "Receipts from the dashboard."),
    _rule(r"receipts_ignored", "receipts_ignored_total", "Receipted event ids the outbox did not hold."),
    _rule(r"receipts_rejected", "receipts_rejected_total", "Receipt messages refused."),
    _rule(r"presence_inferred", "presence_inferred_total", "Dashboard presence inferred from its receipts."),
    _rule(r"dashboard_resyncs", "dashboard_resyncs_total",
          "Dashboard sessions found new (a broker that lost its state): unreceipted events sent again at once."),
    _rule(r"indications_(?P<outcome>applied|stale|unknown_button|unsendable)", "indications_total",
          "Indications from the dashboard, by what became of them."),
    _rule(r"indications_rejected", "indications_rejected_total", "Indication messages refused."),
    _rule(r"indication_errors", "indication_errors_total", "Indications whose handling failed (logged)."),
    _rule(r"radio_events", "radio_frames_total", "LoRa frames accepted, by what they were.", outcome="event"),
    _rule(r"radio_duplicates", "radio_frames_total", "LoRa frames accepted, by what they were.",
          outcome="duplicate"),
    _rule(r"radio_kind_mismatch", "radio_kind_mismatch_total", "LoRa events whose kind differs from the button's."),
    _rule(r"radio_acks_sent", "radio_acks_sent_total", "Acknowledgements sent to LoRa nodes."),
    _rule(r"radio_indications_sent", "radio_indications_sent_total", "Indications sent to LoRa nodes."),
    _rule(r"lora_frames_sent", "lora_frames_sent_total", "Frames the LoRa module sent."),
    _rule(r"lora_(?P<reason>sends_failed|answer_timeouts|queue_full|stale_sends_dropped|write_errors|"
          r"write_while_missing)", "lora_send_failures_total", "Sends to LoRa nodes that failed, by reason."),
    _rule(r"lora_err_(?P<code>[0-9]+)", "lora_module_errors_total", "+ERR answers of an RYLR module, by code."),
)  # fmt: skip


def carries_sapa(config: GatewayConfig) -> bool:
    return any(button.kind is Kind.SAPA for button in (*config.buttons, *config.lora_buttons))


def shows_presses(config: GatewayConfig, settings: MetricsSettings) -> bool:
    """Whether press counts may be exposed: on a gateway without SAPA buttons, or with ``sapa = true``."""
    return settings.sapa or not carries_sapa(config)


def gateway_families(health: Health, *, presses: bool) -> list[Metric]:
    """The families of one scrape, from a health report (no I/O)."""
    rules = QUIET_RULES + (PRESS_RULES if presses else ())
    plain = {rule.pattern.pattern: 0 for rule in rules if rule.plain and _applies(rule, health)}
    seed = {PREFIX + "events_total": [{"stage": s} for s in ("recorded", "published", "acknowledged", "receipted")]}
    found = counter_families(rules, plain | dict(health.counters), seed=seed if presses else None)
    found += list(_state_families(health))
    if presses:
        found += list(_outbox_families(health))
    return found


def _applies(rule: CounterRule, health: Health) -> bool:
    """LoRa counters at 0 only on a gateway with a LoRa module (elsewhere they would say nothing)."""
    return health.radio is not None or not rule.family.startswith((PREFIX + "lora_", PREFIX + "radio_"))


def _flag(name: str, help: str, value: bool | None) -> Iterator[Metric]:
    if value is not None:
        yield GaugeMetricFamily(PREFIX + name, help, value=int(value))


def _state_families(health: Health) -> Iterator[Metric]:
    info = GaugeMetricFamily(PREFIX + "info", "The gateway's software version (the value is 1).", labels=["version"])
    info.add_metric([health.version or ""], 1)
    yield info
    if health.uptime_s is not None:
        yield GaugeMetricFamily(PREFIX + "uptime_seconds", "Time since the daemon started.", value=health.uptime_s)
    yield from _flag("mqtt_connected", "1 while the MQTT session is up.", health.mqtt_connected)
    yield from _flag("dashboard_online", "1 while the dashboard's presence says online.", health.dashboard_online)
    yield from _flag("delivery_verified", "1 once the gateway's own status came back from the broker.",
                     health.delivery_verified)  # fmt: skip
    yield from _flag("outbox_ok", "1 while the outbox is on disk (0: events live only in memory).", health.outbox_ok)
    yield from _flag("pump_alive", "1 while the outbox pump runs.", health.pump_alive)
    system = health.system
    if system is not None and system.disk_free_mb is not None:
        yield GaugeMetricFamily(
            PREFIX + "disk_free_bytes", "Free space on the outbox's disk.", value=system.disk_free_mb * 2**20
        )
    if system is not None and system.disk_used_pct is not None:
        yield GaugeMetricFamily(
            PREFIX + "disk_used_ratio", "Used share of the outbox's disk (0-1).", value=system.disk_used_pct / 100
        )
    if system is not None and system.cpu_temp_c is not None:
        yield GaugeMetricFamily(PREFIX + "cpu_temperature_celsius", "The SoC's temperature.", value=system.cpu_temp_c)
    radio = health.radio
    if radio is not None and radio.module is not None:
        yield GaugeMetricFamily(
            PREFIX + "radio_module_up",
            "1 while the LoRa module's serial port is open.",
            value=int(str(radio.module.state) == "open"),
        )
    if radio is not None:
        nodes = list(radio.nodes.values())
        yield GaugeMetricFamily(PREFIX + "radio_nodes", "LoRa nodes this gateway serves.", value=len(nodes))
        yield GaugeMetricFamily(
            PREFIX + "radio_nodes_low_battery",
            "LoRa nodes whose battery is low.",
            value=sum(n.low_battery for n in nodes),
        )
        yield GaugeMetricFamily(
            PREFIX + "radio_nodes_tamper", "LoRa nodes whose case is open.", value=sum(n.tamper for n in nodes)
        )


def _outbox_families(health: Health) -> Iterator[Metric]:
    outbox = health.outbox
    if outbox.depth is not None:
        yield GaugeMetricFamily(
            PREFIX + "outbox_events", "Events in the outbox (not yet receipted).", value=outbox.depth
        )
    age = _age_s(outbox.oldest_ts, health.ts)
    yield GaugeMetricFamily(
        PREFIX + "outbox_oldest_age_seconds", "Age of the oldest event in the outbox (0: empty).", value=age
    )
    for name, value, help in (
        ("events_memory_only", outbox.memory_only, "Events held only in memory (the outbox failed)."),
        ("events_inflight", outbox.inflight, "Events published and not yet taken by the broker."),
        ("events_awaiting_receipt", outbox.awaiting_receipt, "Events taken by the broker, not yet receipted."),
    ):
        if value is not None:
            yield GaugeMetricFamily(PREFIX + name, help, value=value)


def _age_s(oldest: str | None, now: str | None) -> float:
    if oldest is None or now is None:
        return 0.0
    try:
        return max(0.0, (parse_ts(now) - parse_ts(oldest)).total_seconds())
    except ValueError:
        return 0.0


class GatewayCollector(Collector):
    """Reads the health report at scrape time; scrapes closer than ``min_interval_s`` share one read,
    so that a scraper asking too often cannot keep the outbox busy (its depth is read under the outbox's lock)."""

    def __init__(
        self,
        read_health: Callable[[], Health],
        *,
        presses: bool,
        min_interval_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read_health = read_health
        self._presses = presses
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, Health] | None = None

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        return gateway_families(self._health(), presses=self._presses)

    def _health(self) -> Health:
        with self._lock:
            now = self._clock()
            if self._last is None or now - self._last[0] >= self._min_interval_s:
                self._last = (now, self._read_health())
            return self._last[1]


class MetricsListenError(SiagaError, OSError):
    """The metrics port could not be opened (in use, or an address this machine does not have)."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in progress never holds the gateway's exit
    allow_reuse_address = True

    def server_bind(self) -> None:
        """As ``WSGIServer``'s, without asking DNS for this address's name (``socket.getfqdn``): on a Pi
        without a network that lookup can take seconds, and the gateway's start would wait for it."""
        TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])
        self.setup_environ()


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not news; failures are logged where they happen."""


class MetricsListener:
    """``GET /metrics`` (and ``/``) on ``address:port``, for a token holder or an allowed address."""

    def __init__(self, settings: MetricsSettings, registry: CollectorRegistry, counters: Counters) -> None:
        self.settings = settings
        self._counters = counters
        self._metrics = make_wsgi_app(registry)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int | None:
        """The port listened on (the configured one, or the one chosen for port 0), None while not listening."""
        return self._server.server_port if self._server is not None else None

    def start(self) -> bool:
        """Listen; on failure say so, count it and go on without metrics (False): never a reason to stop the gateway."""
        try:
            self._server = self._bind()
        except MetricsListenError as exc:
            self._counters.add("metrics_listen_errors")
            log.error("metrics: %s; the gateway runs on without metrics", exc)
            return False
        self._thread = threading.Thread(target=self._serve, name="siaga-metrics", daemon=True)
        self._thread.start()
        log.info("metrics: listening on %s port %d", self.settings.address, self.port)
        return True

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def _bind(self) -> _Server:
        server_class = _Server6 if ipaddress.ip_address(self.settings.address).version == 6 else _Server
        try:
            return make_server(
                self.settings.address, self.settings.port, self._app, server_class, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise MetricsListenError(
                f"cannot listen on {self.settings.address} port {self.settings.port}: {exc.strerror or exc}"
            ) from exc

    def _serve(self) -> None:
        server = self._server
        if server is None:
            return
        try:
            server.serve_forever(poll_interval=0.5)
        except Exception:  # the listener's end, not the gateway's: the rest runs on
            self._counters.add("metrics_listen_errors")
            log.exception("metrics: the listener stopped; the gateway runs on without metrics")

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Refuse before reading anything; a collector that fails is a 500 here, counted and logged."""
        refused = self.settings.access.refusal(environ.get("HTTP_AUTHORIZATION"), environ.get("REMOTE_ADDR"))
        if refused is not None:
            status, text = refused
            headers = [("Content-Type", "text/plain; charset=utf-8")]
            if status == 401:
                headers.append(("WWW-Authenticate", 'Bearer realm="siaga-gateway-metrics"'))
            start_response(f"{status} {'Unauthorized' if status == 401 else 'Forbidden'}", headers)
            return [text.encode()]
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"404 Not Found: the metrics are at /metrics\n"]
        try:
            return self._metrics(environ, start_response)
        except Exception:  # a scrape that fails must not take anything else with it
            self._counters.add("metrics_scrape_errors")
            log.exception("metrics: a scrape failed")
            start_response("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")], sys.exc_info())
            return [b"500 Internal Server Error: see the gateway's log\n"]


def start_metrics(
    config: GatewayConfig, read_health: Callable[[], Health], counters: Counters
) -> MetricsListener | None:
    """The listener of ``[metrics]``, listening; None when metrics are off or the port could not be opened."""
    settings = config.metrics
    if not settings.enabled:
        return None
    presses = shows_presses(config, settings)
    if not presses:
        log.info("metrics: this gateway carries SAPA buttons; counts that move with presses are left out")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(read_health, presses=presses))
    listener = MetricsListener(settings, registry, counters)
    return listener if listener.start() else None
