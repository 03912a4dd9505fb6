"""The dashboard's Prometheus metrics at /metrics: real presses move them, names follow Prometheus, SAPA stays out.

Real Mosquitto, a real gateway on mock pins, the dashboard under uvicorn; every
scrape is parsed whole by prometheus_client's own parser.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from dashboard import create_app
from dashboard.db import connect
from dashboard.metrics.timing import UNMATCHED, route_label
from firmware_bridge.broker import BrokerSettings
from firmware_bridge.errors import ConfigError
from firmware_bridge.metrics import MetricsSettings, ScrapeAccess, read_metrics
from firmware_bridge.settings import parse_toml
from gateway.app import Gateway
from sim.servers import DashboardServer, dashboard_config
from sim.stores import store_at

from .conftest import ADMIN, FIRE_1, OPERATOR, SAPA_1, SAPA_DESK, press, signed_in
from .test_ingest import wait_alarm
from .waiting import poll_until

TOKEN = "metrics-token-" + "k" * 40
#: What may never be in a scrape: the SAPA button's id, label and site, the gateway's id, the fire button's too.
NEVER = (SAPA_1["id"], SAPA_1["label"], SAPA_1["site"]["name"], FIRE_1["id"], FIRE_1["label"], "gw-test")

Scrape = dict[str, list[Sample]]


def metrics_settings(tmp_path: Path, text: str) -> MetricsSettings:
    """``[metrics]`` as the configuration reader reads it (with a token file in ``tmp_path``)."""
    token_file = tmp_path / "metrics.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    root = parse_toml("[metrics]\n" + text.replace("@TOKEN_FILE@", str(token_file)), "dashboard.toml")
    return read_metrics(root.section("metrics"), listener=False)


def start_dashboard(tmp_path: Path, broker: BrokerSettings, metrics: MetricsSettings) -> DashboardServer:
    server = DashboardServer(dashboard_config(tmp_path / "dashboard", broker, SIAGA_METRICS=metrics)).start()
    for (username, password), role in ((OPERATOR, "fire_operator"), (SAPA_DESK, "sapa_desk"), (ADMIN, "admin")):
        server.create_user(username, password, role)
    return server


@pytest.fixture
def served(tmp_path: Path, broker_settings: BrokerSettings) -> Iterator[Callable[[str], DashboardServer]]:
    """A dashboard with ``[metrics]`` as given (TOML text), stopped after the test."""
    servers: list[DashboardServer] = []

    def start(text: str) -> DashboardServer:
        server = start_dashboard(tmp_path, broker_settings, metrics_settings(tmp_path, text))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def metered(served: Callable[[str], DashboardServer]) -> DashboardServer:
    """The usual setup: /metrics for the holder of the token, SAPA left out."""
    return served('enabled = true\ntoken_file = "@TOKEN_FILE@"\n')


def fetch(server: DashboardServer, path: str = "/metrics", token: str | None = TOKEN) -> tuple[int, Message, str]:
    request = urllib.request.Request(server.url + path)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


def scrape_text(server: DashboardServer) -> str:
    status, _headers, text = fetch(server)
    assert status == 200, text
    return text


def parse(text: str) -> Scrape:
    """Every family of a scrape, parsed whole by prometheus_client's own parser: name -> samples."""
    return {family.name: list(family.samples) for family in text_string_to_metric_families(text)}


def scrape(server: DashboardServer) -> Scrape:
    return parse(scrape_text(server))


def value(found: Scrape, family: str, sample: str | None = None, **labels: str) -> float | None:
    """The value of the sample of ``family`` named ``sample`` (the family's own name by default) with ``labels``."""
    for item in found.get(family, []):
        if item.name == (sample or family) and all(item.labels.get(k) == v for k, v in labels.items()):
            return item.value
    return None


def eventually(server: DashboardServer, check: Callable[[Scrape], bool], what: str) -> Scrape:
    """Scrape until ``check`` holds: the counters move after the commit, with nothing to wait on from outside."""
    return poll_until(lambda: scrape(server), check, timeout=10, interval=0.05, what=what)


# -- what a press moves ------------------------------------------------------------------------------


def test_a_press_moves_the_event_counter_and_the_open_alarm_gauge(
    metered: DashboardServer, gateway: Gateway, pin_factory: MockFactory
) -> None:
    before = scrape(metered)
    stored = {"kind": "fire", "outcome": "stored"}
    assert value(before, "siaga_ingest_events", "siaga_ingest_events_total", **stored) == 0
    unacknowledged = {"kind": "fire", "state": "unacknowledged", "test": "false"}
    assert value(before, "siaga_alarms_open", **unacknowledged) == 0
    assert value(before, "siaga_mqtt_connected") == 1

    press(pin_factory, 17)
    after = eventually(
        metered,
        lambda found: (
            value(found, "siaga_ingest_events", "siaga_ingest_events_total", **stored) == 1
            and value(found, "siaga_indications_sent", "siaga_indications_sent_total", kind="fire") == 1
        ),
        "the stored fire event and its indication counted",
    )
    assert value(after, "siaga_alarms_open", **unacknowledged) == 1
    assert value(after, "siaga_ingest_batches", "siaga_ingest_batches_total") is None  # a total over every kind

    operator = signed_in(metered, OPERATOR)
    alarm = wait_alarm(operator, lambda a: a["button"] == "fire-1")
    operator.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {"note": "Regu 1"})
    acknowledged = scrape(metered)
    assert value(acknowledged, "siaga_alarms_open", **unacknowledged) == 0
    assert value(acknowledged, "siaga_alarms_open", kind="fire", state="acknowledged", test="false") == 1


def test_an_http_request_lands_in_the_histogram_under_its_route_template(metered: DashboardServer) -> None:
    operator = signed_in(metered, OPERATOR)
    for alarm_id in (17, 33, 4242):
        status, _ = operator.get_text(f"/api/alarms/{alarm_id}")
        assert status == 404
    for path in ("/no/such/page/123", "/wp-login.php", "/no/such/page/456"):
        assert operator.get_text(path)[0] == 404
    found = scrape(metered)
    family = "siaga_http_request_duration_seconds"
    count = f"{family}_count"
    route = {"route": "/api/alarms/<alarm_id>", "method": "GET", "status": "4xx"}
    assert value(found, family, count, **route) == 3
    assert value(found, family, f"{family}_bucket", le="+Inf", **route) == 3
    assert value(found, family, count, route=UNMATCHED, method="GET", status="4xx") == 3
    sign_in = value(found, family, count, route="/login", method="POST", status="3xx")
    assert sign_in is not None and sign_in >= 1
    # Bounded: every route label is a rule of the app (or "unmatched"), never a path asked for.
    templates = {route_label(rule.rule) for rule in metered.app.url_map.iter_rules()} | {UNMATCHED}
    routes = {sample.labels["route"] for sample in found[family]}
    assert routes <= templates, routes - templates
    assert not any(re.search(r"/\d+|wp-login|no/such", r) for r in routes)


def test_the_token_is_required_and_compared_whole(metered: DashboardServer) -> None:
    for token in (None, "", TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
        status, headers, body = fetch(metered, token=token)
        assert status == 401, token
        assert headers.get("WWW-Authenticate", "").startswith("Bearer")
        assert "siaga_" not in body
    request = urllib.request.Request(metered.url + "/metrics", headers={"Authorization": f"Basic {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    status, headers, _ = fetch(metered)
    assert status == 200 and headers["Cache-Control"] == "no-store"


def test_without_metrics_enabled_there_is_no_route(dashboard: DashboardServer) -> None:
    assert fetch(dashboard)[0] == 404
    assert "metrics.metrics" not in {rule.endpoint for rule in dashboard.app.url_map.iter_rules()}


def _app(where: Path, **config: Any) -> Any:
    """The app alone (no broker, no server): Flask's test client, whose client address a test sets."""
    settings = {"DATABASE": store_at(where / "store.sqlite"), "SECRET_KEY": "k" * 40, "SIAGA_BROKER": None}
    return create_app({**settings, "SIAGA_PHOTOS_DIR": where / "photos", **config}).test_client()


def test_allowed_addresses_are_the_clients_as_proxyfix_sees_them(tmp_path: Path) -> None:
    allow = MetricsSettings(enabled=True, access=ScrapeAccess(allow=(ipaddress.ip_network("10.8.0.0/24"),)))
    direct = _app(tmp_path, SIAGA_METRICS=allow)
    assert direct.get("/metrics", environ_base={"REMOTE_ADDR": "10.8.0.7"}).status_code == 200
    assert direct.get("/metrics", environ_base={"REMOTE_ADDR": "::ffff:10.8.0.7"}).status_code == 200
    assert direct.get("/metrics", environ_base={"REMOTE_ADDR": "10.9.0.7"}).status_code == 403
    # Without trusted proxies, X-Forwarded-For is anybody's word: not believed.
    forged = {"X-Forwarded-For": "10.8.0.7"}
    assert direct.get("/metrics", headers=forged, environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code == 403

    behind = _app(tmp_path, SIAGA_METRICS=allow, SIAGA_TRUSTED_PROXIES=1)
    proxy = {"REMOTE_ADDR": "127.0.0.1"}
    assert behind.get("/metrics", headers=forged, environ_base=proxy).status_code == 200
    assert behind.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, environ_base=proxy).status_code == 403
    # The proxy's own address is no pass: what counts is the client it speaks for.
    chain = {"X-Forwarded-For": "10.8.0.7, 203.0.113.9"}  # the client's own claim, then the proxy's word
    assert behind.get("/metrics", headers=chain, environ_base=proxy).status_code == 403

    both = _app(tmp_path, SIAGA_METRICS=MetricsSettings(enabled=True, access=ScrapeAccess(TOKEN, allow.access.allow)))
    inside = {"REMOTE_ADDR": "10.8.0.7"}
    assert both.get("/metrics", environ_base=inside).status_code == 401
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert both.get("/metrics", headers=good, environ_base={"REMOTE_ADDR": "10.9.0.7"}).status_code == 403
    assert both.get("/metrics", headers=good, environ_base=inside).status_code == 200


# -- privacy -----------------------------------------------------------------------------------------


def comparable(text: str) -> list[str]:
    """A scrape without what moves on its own: request times (buckets, sums, creation) and the scrapes' own count."""
    lines = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            timing = family.name == "siaga_http_request_duration_seconds" and not sample.name.endswith("_count")
            if timing or sample.labels.get("route") == "/metrics" or family.name.startswith("siaga_supervisor_"):
                continue
            lines.append(f"{sample.name}{sorted(sample.labels.items())} {sample.value}")
    return sorted(lines)


def test_sapa_activity_leaves_the_scrape_unchanged_and_nameless(
    metered: DashboardServer, gateway: Gateway, pin_factory: MockFactory
) -> None:
    desk, operator = signed_in(metered, SAPA_DESK), signed_in(metered, OPERATOR)
    operator.get_json("/api/alarms")
    before = scrape_text(metered)

    press(pin_factory, 23)  # the SAPA button; the desk sees it, acts on it, reads its board
    alarm = wait_alarm(desk, lambda a: a["button"] == "sapa-1")
    desk.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {"note": "Pendamping berangkat"})
    assert gateway.wait_for_indication("sapa-1", "acknowledged", 10)
    desk.get_json(f"/api/alarms/{alarm['id']}")
    desk.get_json("/api/alarms?state=all")
    after = scrape_text(metered)

    assert comparable(after) == comparable(before)
    for text in (before, after):
        assert "sapa" not in text.lower()
        for name in NEVER:
            assert name not in text


def test_with_sapa_configured_its_counts_appear_by_kind_and_still_nameless(
    served: Callable[[str], DashboardServer], gateway: Gateway, pin_factory: MockFactory
) -> None:
    server = served(
        'enabled = true\ntoken_file = "@TOKEN_FILE@"\nsapa = true\n'
        'sapa_purpose = "DP3A monitors the SAPA desk response load"\n'
    )
    press(pin_factory, 23)
    found = eventually(
        server,
        lambda f: value(f, "siaga_ingest_events", "siaga_ingest_events_total", kind="sapa", outcome="stored") == 1,
        "the SAPA event counted under its kind",
    )
    assert value(found, "siaga_alarms_open", kind="sapa", state="unacknowledged", test="false") == 1
    batches = value(found, "siaga_ingest_batches", "siaga_ingest_batches_total")
    assert batches is not None and batches >= 1  # with the gateway's status and inventory
    text = scrape_text(server)
    for name in NEVER:
        assert name not in text


# -- conventions -------------------------------------------------------------------------------------

#: Every label the dashboard uses, each with values from a closed set.
LABELS = {"kind", "outcome", "state", "test", "type", "reason", "anomaly", "route", "method", "status", "le", "version",
          "code", "event", "channel"}  # fmt: skip
TIME_WORDS = re.compile(r"duration|latency|_time|_age|uptime|_round|_seconds")


def test_every_name_follows_prometheus_conventions(
    metered: DashboardServer, gateway: Gateway, pin_factory: MockFactory
) -> None:
    press(pin_factory, 17)
    operator = signed_in(metered, OPERATOR)
    wait_alarm(operator, lambda a: a["button"] == "fire-1")
    text = scrape_text(metered)
    families = list(text_string_to_metric_families(text))
    assert len(families) >= 15
    names = [family.name for family in families]
    assert len(names) == len(set(names))
    for family in families:
        assert family.name.startswith("siaga_"), family.name
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", family.name), family.name
        assert family.documentation, f"{family.name} has no help"
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family.name
        else:
            assert not family.name.endswith("_total"), f"{family.name} is a {family.type} named like a counter"
        if TIME_WORDS.search(family.name) and not family.name.endswith("_created"):
            assert family.name.endswith("_seconds"), f"{family.name}: durations are in seconds, named _seconds"
        assert not re.search(r"_(ms|milliseconds|minutes|hours|percent)(_|$)", family.name), family.name
        for sample in family.samples:
            assert set(sample.labels) <= LABELS, (family.name, sample.labels)
    assert {"siaga_http_request_duration_seconds", "siaga_alarms_open", "siaga_troubles_open"} <= set(names)


def test_each_app_counts_its_own_requests(tmp_path: Path) -> None:
    """Several dashboards (processes, or apps in one process) on one store: each answers for its own requests."""
    allow = MetricsSettings(enabled=True, access=ScrapeAccess(allow=(ipaddress.ip_network("127.0.0.1"),)))
    first, second = _app(tmp_path, SIAGA_METRICS=allow), _app(tmp_path, SIAGA_METRICS=allow)
    local = {"REMOTE_ADDR": "127.0.0.1"}
    assert first.get("/healthz", environ_base=local).status_code in (200, 503)
    family = "siaga_http_request_duration_seconds"
    mine = parse(first.get("/metrics", environ_base=local).text)
    theirs = parse(second.get("/metrics", environ_base=local).text)
    assert value(mine, family, f"{family}_count", route="/healthz", method="GET") == 1
    assert value(theirs, family, f"{family}_count", route="/healthz", method="GET") is None
    assert value(mine, "siaga_alarms_open", kind="fire", state="unacknowledged", test="false") == value(
        theirs, "siaga_alarms_open", kind="fire", state="unacknowledged", test="false"
    )


# -- configuration -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("enabled = true\n", "metrics.enabled", "needs token_file or allow"),
        ('enabled = true\nallow = ["10.0.0.0/33"]\n', "metrics.allow", "not an IP address or network"),
        ('enabled = true\nallow = "10.0.0.1"\n', "metrics.allow", "must be a list"),
        ('enabled = true\nallow = ["10.0.0.1"]\nsapa = true\n', "metrics.sapa_purpose", "purpose stated"),
        ('token_file = "@SHORT@"\n', "metrics.token_file", "at least 32"),
        ('enabled = true\nallow = ["127.0.0.1"]\nport = 9100\n', "metrics.port", "unknown key"),
    ],
)
def test_a_wrong_metrics_section_stops_the_start_naming_the_key(
    tmp_path: Path, text: str, key: str, message: str
) -> None:
    short = tmp_path / "short.token"
    short.write_text("too-short\n")
    with pytest.raises(ConfigError) as error:
        metrics_settings(tmp_path, text.replace("@SHORT@", str(short)))
    assert error.value.key == key and message in str(error.value)
    assert "dashboard.toml" in str(error.value)


def test_metrics_are_off_by_default_and_read_fully(tmp_path: Path) -> None:
    assert metrics_settings(tmp_path, "") == MetricsSettings()
    settings = metrics_settings(tmp_path, 'enabled = true\ntoken_file = "@TOKEN_FILE@"\nallow = ["127.0.0.1", "::1"]\n')
    assert settings.access.token == TOKEN and len(settings.access.allow) == 2 and not settings.sapa
    assert TOKEN not in repr(settings)


def test_a_store_that_cannot_be_read_costs_only_its_own_families(tmp_path: Path) -> None:
    settings = MetricsSettings(enabled=True, access=ScrapeAccess(allow=(ipaddress.ip_network("127.0.0.1"),)))
    client = _app(tmp_path, SIAGA_METRICS=settings)
    local = {"REMOTE_ADDR": "127.0.0.1"}
    healthy = parse(client.get("/metrics", environ_base=local).text)
    assert value(healthy, "siaga_troubles_open", type="gateway_silent") == 0
    with closing(connect(client.application.config["DATABASE"])) as conn:  # a table gone; the others answer
        conn.execute("ALTER TABLE troubles RENAME TO troubles_elsewhere")
        conn.commit()
    answer = client.get("/metrics", environ_base=local)
    assert answer.status_code == 200
    broken = parse(answer.text)
    assert "siaga_troubles_open" not in broken  # left out, not shown as 0
    assert value(broken, "siaga_alarms_open", kind="fire", state="unacknowledged", test="false") == 0
    assert value(broken, "siaga_webhook_queued_notices", kind="fire") == 0  # read after the failure
    assert value(broken, "siaga_metrics_scrape_errors", "siaga_metrics_scrape_errors_total") == 1
