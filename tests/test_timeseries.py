"""Time series to a real server of the InfluxDB 2 write API (VictoriaMetrics): presses, alarms' steps, health,
troubles and SAPA's daily counts written, read back through its query API, and nothing lost or written twice
across the server's outage and a dashboard restart."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.config import parse_config
from dashboard.db import connect, transaction
from dashboard.defaults import LOCAL_TIME
from dashboard.devices import registry
from dashboard.timeseries import points, queue
from dashboard.timeseries.collect import collect
from dashboard.timeseries.points import ButtonFacts, SeriesPolicy
from dashboard.timeseries.writer import InfluxSettings
from firmware_bridge.broker import BrokerSettings
from firmware_bridge.errors import ConfigError
from firmware_bridge.ids import make_ulid
from firmware_bridge.payloads import (
    ButtonInfo,
    Event,
    EventType,
    Health,
    Inventory,
    Kind,
    NodeHealth,
    OutboxHealth,
    RadioHealth,
    Site,
    Source,
    SystemHealth,
)
from firmware_bridge.settings import parse_toml
from firmware_bridge.timeutil import format_epoch, parse_ts
from firmware_bridge.topics import Topics
from sim.servers import DashboardServer, dashboard_config
from sim.victoria import VictoriaMetrics
from sim.webclient import DashboardClient

from .conftest import OPERATOR
from .mqttprobe import Probe
from .waiting import poll_until

TOPICS = Topics()
MARKET = Site("Pasar Andoolo, Blok A", -4.1, 122.4, kecamatan="Andoolo")
SHELTER = Site("Rumah Aman Konda", -4.2, 122.5, kecamatan="Konda")
INVENTORY = Inventory(
    gw="gw-a",
    ts=format_epoch(time.time()),
    buttons=(
        ButtonInfo("pasar-fire-1", Kind.FIRE, Source.GPIO, MARKET, "Pintu utara"),
        ButtonInfo("pasar-fire-2", Kind.FIRE, Source.LORA, MARKET, "Los ikan"),
        ButtonInfo("pasar-sapa-1", Kind.SAPA, Source.GPIO, MARKET, "Pos SAPA"),
    ),
)
SHELTER_INVENTORY = Inventory(
    gw="gw-shelter",
    ts=format_epoch(time.time()),
    buttons=(ButtonInfo("rumah-aman-sapa-1", Kind.SAPA, Source.GPIO, SHELTER),),
)
#: Every label value that would tell where a SAPA button is.
SAPA_SECRETS = {"pasar-sapa-1", "rumah-aman-sapa-1", "gw-shelter", SHELTER.name, "Pos SAPA"}


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    # Without deduplication: every write is kept, so a point written twice would be seen twice.
    with VictoriaMetrics(tmp_path / "victoria", dedup=False) as server:
        yield server


def influx(server: VictoriaMetrics, **overrides: object) -> InfluxSettings:
    settings = {"url": server.url, "org": "siaga", "bucket": "siaga", "interval_s": 0.05, "retry_max_s": 0.5}
    return InfluxSettings(**{**settings, **overrides})  # type: ignore[arg-type]


def start_dashboard(workdir: Path, broker: BrokerSettings, settings: InfluxSettings) -> DashboardServer:
    server = DashboardServer(dashboard_config(workdir, broker, SIAGA_INFLUXDB=settings)).start()
    return server


@pytest.fixture
def dashboard_with_series(
    tmp_path: Path, broker_settings: BrokerSettings, victoria: VictoriaMetrics
) -> Iterator[DashboardServer]:
    server = start_dashboard(tmp_path / "dashboard", broker_settings, influx(victoria))
    server.create_user(*OPERATOR, "fire_operator")
    yield server
    server.stop()


def event(button: str, kind: Kind = Kind.FIRE, gw: str = "gw-a", at: float | None = None, **extra: object) -> Event:
    return Event(
        id=make_ulid(int(time.time() * 1000), os.urandom(10)),
        gw=gw,
        button=button,
        kind=kind,
        type=EventType.PRESS,
        ts=format_epoch(time.time() if at is None else at),
        src=Source.GPIO,
        **extra,  # type: ignore[arg-type]
    )


def registered(probe: Probe, *inventories: Inventory) -> None:
    for inventory in inventories:
        probe.publish(TOPICS.inventory(inventory.gw), inventory.encode(), retain=True)


class Samples(list):
    """Samples, shown by their count (a timeout's message names the last value fetched)."""

    def __repr__(self) -> str:
        return f"<{len(self)} sample(s)>"


def stored_points(server: VictoriaMetrics, name: str, predicate=lambda labels: True, count: int = 1, timeout=15.0):
    """The samples of measurement-field ``name`` matching ``predicate``, once there are ``count`` of them."""
    # The server offers no way to wait for a write: its query API is polled.
    return poll_until(
        lambda: Samples(s for s in server.samples(f'{{__name__="{name}"}}') if predicate(s[0])),
        lambda found: len(found) >= count,
        timeout=timeout,
        interval=0.1,
        what=f"{count} sample(s) of {name}",
    )


def no_sapa_anywhere(server: VictoriaMetrics) -> None:
    for labels, _value, _at in server.samples():
        leaked = set(labels.values()) & SAPA_SECRETS
        assert not leaked, f"{labels['__name__']} names {leaked}"
        assert labels.get("kind") != "sapa", labels


# -- through the whole system --------------------------------------------------------------


def test_a_press_and_its_alarms_life_become_points_with_site_and_kecamatan(
    dashboard_with_series: DashboardServer, probe: Probe, victoria: VictoriaMetrics
) -> None:
    registered(probe, INVENTORY)
    pressed = event("pasar-fire-2", radio={"rssi": -97, "snr": 7.5})
    probe.publish(TOPICS.event("gw-a"), pressed.encode())
    [(labels, value, at)] = stored_points(victoria, "siaga_press_presses")
    assert value == 1
    assert at == round(parse_ts(pressed.ts).timestamp() * 1000)  # when the gateway stamped it
    assert {k: labels[k] for k in ("kind", "type", "gateway", "button", "transport", "site", "kecamatan")} == {
        "kind": "fire",
        "type": "press",
        "gateway": "gw-a",
        "button": "pasar-fire-2",
        "transport": "gpio",
        "site": MARKET.name,
        "kecamatan": "Andoolo",
    }
    [(_labels, rssi, _at)] = stored_points(victoria, "siaga_press_rssi")
    assert rssi == -97.0
    [(opened, _value, _at)] = stored_points(victoria, "siaga_alarm_seconds", lambda labels: labels["step"] == "opened")
    assert (opened["button"], opened["kecamatan"], opened["test"]) == ("pasar-fire-2", "Andoolo", "false")

    operator = DashboardClient(dashboard_with_series.url)
    operator.login(*OPERATOR)
    alarm = operator.get_json("/api/alarms")["alarms"][0]
    operator.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {})
    operator.post_json(f"/api/alarms/{alarm['id']}/resolve", {"resolution": "false_alarm", "rev": alarm["rev"] + 1})
    steps = stored_points(victoria, "siaga_alarm_seconds", lambda labels: labels["step"] != "opened", count=2)
    by_step = {labels["step"]: (labels, seconds) for labels, seconds, _at in steps}
    assert set(by_step) == {"acknowledged", "resolved"}
    assert by_step["resolved"][0]["resolution"] == "false_alarm"
    assert 0 <= by_step["acknowledged"][1] <= by_step["resolved"][1] < 60


def test_health_reports_become_gateway_and_lora_node_points(
    dashboard_with_series: DashboardServer, probe: Probe, victoria: VictoriaMetrics
) -> None:
    registered(probe, INVENTORY)
    node = NodeHealth("pasar-fire-2", rssi=-101, snr=-3.5, battery_mv=2870, frames=40, rejected={"bad_mac": 2})
    health = Health(
        gw="gw-a",
        ts=format_epoch(time.time()),
        uptime_s=3600.5,
        outbox=OutboxHealth(depth=4, memory_only=0, awaiting_receipt=1),
        mqtt_connected=True,
        radio=RadioHealth(nodes={"7": node, "9": NodeHealth("pasar-sapa-1", battery_mv=2500)}, rejected={"bad_mac": 2}),
        system=SystemHealth(disk_free_mb=10240.0, disk_used_pct=31.5, cpu_temp_c=52.1, load_1m=0.4),
    )
    probe.publish(TOPICS.health("gw-a"), health.encode(), qos=0)
    [(labels, depth, _at)] = stored_points(victoria, "siaga_gateway_outbox_depth")
    assert (labels["gateway"], labels["kecamatan"], depth) == ("gw-a", "Andoolo", 4)
    assert stored_points(victoria, "siaga_gateway_cpu_temp_c")[0][1] == 52.1
    assert stored_points(victoria, "siaga_gateway_disk_free_mb")[0][1] == 10240.0
    [(node_labels, volts, _at)] = stored_points(victoria, "siaga_lora_node_battery_v")
    assert (node_labels["button"], volts) == ("pasar-fire-2", 2.87)  # the SAPA node is not written
    assert stored_points(victoria, "siaga_lora_node_rejected")[0][1] == 2
    no_sapa_anywhere(victoria)


def test_sapa_is_written_only_as_counts_per_kecamatan_after_the_day(
    dashboard_with_series: DashboardServer, probe: Probe, victoria: VictoriaMetrics
) -> None:
    registered(probe, INVENTORY, SHELTER_INVENTORY)
    for sent in (event("rumah-aman-sapa-1", Kind.SAPA, gw="gw-shelter"), event("pasar-sapa-1", Kind.SAPA)):
        probe.publish(TOPICS.event(sent.gw), sent.encode())
    probe.publish(TOPICS.event("gw-shelter"), event("rumah-aman-sapa-1", Kind.SAPA, gw="gw-shelter").encode())
    shelter = Health(gw="gw-shelter", ts=format_epoch(time.time()), uptime_s=5.0, outbox=OutboxHealth(depth=0))
    probe.publish(TOPICS.health("gw-shelter"), shelter.encode(), qos=0)
    fire = event("pasar-fire-1")
    probe.publish(TOPICS.event("gw-a"), fire.encode())
    stored_points(victoria, "siaga_press_presses", lambda labels: labels["button"] == "pasar-fire-1")
    stored_points(victoria, "siaga_alarm_seconds", lambda labels: labels["button"] == "pasar-fire-1")
    # The fire press came after the SAPA ones on the same link, so they are stored and queued by now.
    no_sapa_anywhere(victoria)
    assert not victoria.samples('{__name__=~"siaga_sapa_daily_.*"}')  # the day is not over

    conn = connect(dashboard_with_series.config["DATABASE"])
    try:
        tomorrow = time.time() + 86400
        with transaction(conn):
            collect(conn, SeriesPolicy(), tomorrow, LOCAL_TIME)
    finally:
        conn.close()
    daily = stored_points(victoria, "siaga_sapa_daily_presses", count=2)
    by_kecamatan = {labels["kecamatan"]: (value, at) for labels, value, at in daily}
    assert {k: v for k, (v, _at) in by_kecamatan.items()} == {"Konda": 2, "Andoolo": 1}
    midnight = dt.datetime.combine(dt.datetime.now(LOCAL_TIME).date(), dt.time(), LOCAL_TIME).timestamp()
    assert {at for _v, at in by_kecamatan.values()} == {round(midnight * 1000)}
    alarms = stored_points(victoria, "siaga_sapa_daily_alarms", count=2)
    assert {labels["kecamatan"]: value for labels, value, _at in alarms} == {"Konda": 1, "Andoolo": 1}
    for labels, _value, _at in daily:
        assert set(labels) == {"__name__", "kecamatan"}
    no_sapa_anywhere(victoria)


def test_an_outage_of_the_server_and_a_dashboard_restart_lose_nothing_and_write_nothing_twice(
    tmp_path: Path, broker_settings: BrokerSettings, probe: Probe, victoria: VictoriaMetrics
) -> None:
    settings = influx(victoria, trouble_after_s=0.2)
    workdir = tmp_path / "dashboard"
    dashboard = start_dashboard(workdir, broker_settings, settings)
    try:
        registered(probe, INVENTORY)
        # One button's presses a millisecond apart at least, as a real button's are (debounced).
        base = time.time() - 60
        first = [event("pasar-fire-1", at=base + i / 1000) for i in range(20)]
        for sent in first:
            probe.publish(TOPICS.event("gw-a"), sent.encode())
        stored_points(victoria, "siaga_press_presses", count=20)
        # Mid-stream. Stopped, not SIGKILLed: a killed VictoriaMetrics loses the last second it had accepted
        # (its own buffers), which would hide whether Siaga lost anything.
        victoria.stop()
        during = [event(("pasar-fire-1", "pasar-fire-2")[i % 2], at=base + 1 + i / 1000) for i in range(200)]
        for sent in during:
            probe.publish(TOPICS.event("gw-a"), sent.encode())
        conn = connect(dashboard.config["DATABASE"])
        try:
            poll_until(
                lambda: conn.execute("SELECT COUNT(*) FROM troubles WHERE type = 'timeseries_failing' "
                                     "AND cleared_at IS NULL").fetchone()[0],
                timeout=15,
                what="the failing writes becoming a trouble",
            )  # fmt: skip
            assert queue.depth(conn) >= 200
        finally:
            conn.close()
    finally:
        dashboard.stop()

    victoria.start()  # on its port again, with what it had stored
    dashboard = start_dashboard(workdir, broker_settings, settings)
    try:
        later = [event("pasar-fire-2", at=base + 2 + i / 1000) for i in range(30)]
        for sent in later:
            probe.publish(TOPICS.event("gw-a"), sent.encode())
        presses = stored_points(victoria, "siaga_press_presses", count=250, timeout=30)
        conn = connect(dashboard.config["DATABASE"])
        try:
            poll_until(lambda: queue.depth(conn), lambda depth: depth == 0, what="the queue emptied")
            poll_until(
                lambda: conn.execute("SELECT COUNT(*) FROM troubles WHERE type = 'timeseries_failing' "
                                     "AND cleared_at IS NULL").fetchone()[0],
                lambda open_now: open_now == 0,
                timeout=15,
                what="the trouble cleared",
            )  # fmt: skip
        finally:
            conn.close()
    finally:
        dashboard.stop()
    presses = victoria.samples('{__name__="siaga_press_presses"}')
    written = sorted((labels["button"], at) for labels, _value, at in presses)
    expected = sorted((sent.button, round(parse_ts(sent.ts).timestamp() * 1000)) for sent in first + during + later)
    assert written == expected  # each once: none lost, none written twice


# -- points and settings, without I/O -----------------------------------------------------


def test_line_protocol_escapes_what_sites_are_named_with() -> None:
    site = ButtonFacts("b-1", "gw-a", "fire", "gpio", 'Pasar "Baru", Blok=A', "Lainea Utara")
    line = points.press(event("b-1"), "fire", site, SeriesPolicy())
    assert line is not None
    assert r'site=Pasar\ "Baru"\,\ Blok\=A,' in line  # spaces, commas and equals signs escaped
    assert r"kecamatan=Lainea\ Utara" in line
    assert " presses=1i " in line


def test_a_measured_figure_is_always_a_float_whatever_json_spelled() -> None:
    health = Health(
        gw="gw-a",
        ts=format_epoch(time.time()),
        uptime_s=60,
        outbox=OutboxHealth(depth=0),
        system=SystemHealth(disk_free_mb=100, cpu_temp_c=50),
    )
    [line] = points.gateway(health, time.time(), [], SeriesPolicy())
    # Line protocol: a number without "i" is a float, with it an integer.
    assert "uptime_s=60 " in line and "disk_free_mb=100," in line and "cpu_temp_c=50," in line
    assert "outbox_depth=0i," in line


def test_sapa_detail_names_sapa_sites_only_when_turned_on() -> None:
    shelter = ButtonFacts("rumah-aman-sapa-1", "gw-shelter", "sapa", "gpio", SHELTER.name, "Konda")
    pressed = event("rumah-aman-sapa-1", Kind.SAPA, gw="gw-shelter")
    assert points.press(pressed, "sapa", shelter, SeriesPolicy()) is None
    health = Health(gw="gw-shelter", ts=format_epoch(time.time()), uptime_s=1.0, outbox=OutboxHealth(depth=0))
    assert points.gateway(health, time.time(), [shelter], SeriesPolicy()) == []
    detailed = points.press(pressed, "sapa", shelter, SeriesPolicy(sapa_detail=True))
    assert detailed is not None and "rumah-aman-sapa-1" in detailed


def config_with(influxdb: str, tmp_path: Path) -> dict:
    text = f"""
[dashboard]
data_dir = "{tmp_path}"
[mqtt]
host = "127.0.0.1"
[influxdb]
{influxdb}
"""
    return parse_config(parse_toml(text, "dashboard.toml"), create_secret=True)


def test_influxdb_settings_are_checked_at_start(tmp_path: Path) -> None:
    token = tmp_path / "influx-token"
    token.write_text("s3cr3t-token\n")
    token.chmod(0o600)
    settings_text = f'url = "http://127.0.0.1:8086"\norg = "konsel"\nbucket = "siaga"\ntoken_file = "{token}"'
    config = config_with(settings_text, tmp_path)
    settings = config["SIAGA_INFLUXDB"]
    assert (settings.url, settings.org, settings.bucket, settings.token) == (
        "http://127.0.0.1:8086", "konsel", "siaga", "s3cr3t-token"
    )  # fmt: skip
    assert settings.trouble_after_s == 300.0
    with pytest.raises(ConfigError, match=r"key 'influxdb.org': missing"):
        config_with('url = "http://127.0.0.1:8086"\nbucket = "siaga"', tmp_path)
    with pytest.raises(ConfigError, match=r"key 'influxdb.url'"):
        config_with('url = "influx:8086"\norg = "o"\nbucket = "b"', tmp_path)
    with pytest.raises(ConfigError, match=r"key 'influxdb.sapa_purpose'"):
        config_with('url = "http://h:8086"\norg = "o"\nbucket = "b"\nsapa_detail = true', tmp_path)
    with pytest.raises(ConfigError, match=r"key 'influxdb.bucket_name'"):
        config_with('url = "http://h:8086"\norg = "o"\nbucket = "b"\nbucket_name = "x"', tmp_path)
    off = config_with('enabled = false\nurl = "http://h:8086"\norg = "o"\nbucket = "b"', tmp_path)
    assert off["SIAGA_INFLUXDB"] is None
    assert parse_config(
        parse_toml(f'[dashboard]\ndata_dir = "{tmp_path}"\n[mqtt]\nhost = "127.0.0.1"\n', "d.toml")
    )["SIAGA_INFLUXDB"] is None  # fmt: skip


def test_the_shipped_grafana_dashboard_asks_only_for_what_siaga_writes() -> None:
    """Every measurement and field the Grafana dashboard's Flux queries filter on is one the points carry."""
    dashboard = json.loads((Path(__file__).parent.parent / "deploy/grafana/siaga-influxdb.json").read_text())
    fire = ButtonFacts("b-1", "gw-a", "fire", "lora", "Pasar", "Andoolo")
    node = NodeHealth("b-1", rssi=-90, snr=5.0, battery_mv=3000, frames=1, rejected={})
    health = Health(
        gw="gw-a",
        ts=format_epoch(time.time()),
        uptime_s=1.0,
        outbox=OutboxHealth(depth=0),
        radio=RadioHealth(nodes={"1": node}),
        system=SystemHealth(10.0, 1.0, 40.0, 0.1),
    )
    step = {"kind": "fire", "action": "resolved", "button": "b-1", "test": 0, "at": 10.0, "opened_at": 1.0,
            "number": 1, "resolution": "real", "site_name": "Pasar", "kecamatan": "Andoolo"}  # fmt: skip
    trouble = {"type": "tamper", "gw": "gw-a", "button": "b-1", "kind": "fire", "began_at": 1.0, "cleared_at": 2.0}
    lines = [
        points.press(event("b-1", radio={"rssi": -90, "snr": 1.0}), "fire", fire, SeriesPolicy()),
        points.alarm_step(step, SeriesPolicy()),
        *points.gateway(health, time.time(), [fire], SeriesPolicy()),
        points.trouble(trouble, cleared=True, policy=SeriesPolicy()),
        points.trouble(trouble, cleared=False, policy=SeriesPolicy()),
        points.sapa_day(0.0, "Andoolo", 1, 1),
    ]
    written: dict[str, set[str]] = {}
    for line in lines:
        assert line is not None
        measurement = line.split(",", 1)[0]
        fields = line.rsplit(" ", 2)[1]
        written.setdefault(measurement, set()).update(part.split("=")[0] for part in fields.split(","))
    queries = [target["query"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(queries) >= 12
    for query in queries:
        measurement = re.search(r'r\._measurement == "([^"]+)"', query)
        assert measurement is not None and measurement.group(1) in written, query
        for field in re.findall(r'r\._field == "([^"]+)"', query):
            assert field in written[measurement.group(1)], (field, query)


def test_a_gateway_of_sapa_buttons_only_is_not_named_even_by_its_troubles(conn) -> None:
    """Its health is not written (test above); its troubles (offline, silent) would tell where it is just as well."""
    now = time.time()
    with transaction(conn):
        registry.store_inventory(conn, SHELTER_INVENTORY, now)
        registry.store_inventory(conn, INVENTORY, now)
        for gw in ("gw-shelter", "gw-a"):
            conn.execute(
                "INSERT INTO troubles (key, type, gw, button, subject, kind, detail, began_at, detected_at) "
                "VALUES (?, 'gateway_offline', ?, NULL, NULL, NULL, 'offline', ?, ?)",
                (f"gateway_offline:{gw}", gw, now - 60, now),
            )
        private = collect(conn, SeriesPolicy(), now, LOCAL_TIME)
        rows = conn.execute("SELECT line FROM timeseries_points").fetchall()
    lines = [line for (text,) in rows for line in text.split("\n")]
    troubles = [line for line in lines if line.startswith("siaga_trouble")]
    assert private == len(lines) and len(troubles) == 1 and "gateway=gw-a" in troubles[0]
    assert not any("gw-shelter" in line for line in lines)
    with transaction(conn):
        conn.execute("DELETE FROM timeseries_points")
        conn.execute("DELETE FROM timeseries_state")
        collect(conn, SeriesPolicy(sapa_detail=True), now, LOCAL_TIME)
        detailed = [text for (text,) in conn.execute("SELECT line FROM timeseries_points")]
    assert any("gateway=gw-shelter" in text for text in detailed)  # an administrator's stated choice
