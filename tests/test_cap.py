"""The CAP 1.2 feed: every alert valid against the OASIS schema, the Atom index, the token, and never SAPA.

Every alert the feed produces in these tests is validated against the
official OASIS ``CAP-v1.2.xsd`` (``tests/data/cap/``, provenance in its
README) with lxml: open, acknowledged, dispatched and resolved alarms, a test
alarm (Exercise), a site without coordinates and texts that need escaping.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import urlopen

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from dashboard.accounts import audit
from dashboard.alarms import store
from dashboard.alarms.lifecycle import Action
from dashboard.cap.messages import CapSettings, FireAlarm, NotAFireAlarm, messages
from dashboard.config import parse_config
from dashboard.db import connect, transaction
from dashboard.devices import registry, service
from firmware_bridge.broker import BrokerSettings
from firmware_bridge.errors import ConfigError
from firmware_bridge.payloads import ButtonInfo, Inventory, Kind, Site, Source
from firmware_bridge.settings import parse_toml
from firmware_bridge.timeutil import format_epoch
from gateway.app import Gateway
from sim.gatewayconf import site
from sim.servers import DashboardServer, dashboard_config

from .conftest import OPERATOR, SAPA_DESK, press, signed_in
from .reports_helpers import make_app
from .test_costs import plans
from .test_ingest import make_event

SCHEMA_FILE = Path(__file__).parent / "data" / "cap" / "CAP-v1.2.xsd"
CAP = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM = "http://www.w3.org/2005/Atom"
NS = {"cap": CAP, "atom": ATOM}
SENDER = "siaga@damkar.konaweselatankab.go.id"
SETTINGS = CapSettings(enabled=True, sender=SENDER, region_codes={"Andoolo": "74.05.01"})
TOKEN = "cap-feed-token-" + "k" * 40

NOW = time.time()
HOUR = 3600.0
#: A site whose name needs escaping in XML (and holds a character XML 1.0 cannot carry at all).
AWKWARD_SITE = 'Pasar "Baru" <Blok C> & Los\x07 Ikan'
#: Sites with SAPA buttons only: their names alone would say that a SAPA alarm happened there.
SAPA_SITE = "Rumah Aman Perempuan Tinanggea"


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    document = etree.parse(str(SCHEMA_FILE))
    assert document.getroot().get("targetNamespace") == CAP  # the official schema's namespace, not a look-alike
    return etree.XMLSchema(document)


def cap_app(tmp_path: Path, **settings: object) -> Flask:
    return make_app(tmp_path, SIAGA_CAP=replace(SETTINGS, **settings))


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return cap_app(tmp_path)


@pytest.fixture
def conn(app: Flask) -> Iterator[sqlite3.Connection]:
    connection = connect(app.config["DATABASE"])
    yield connection
    connection.close()


def register(conn: sqlite3.Connection, gw: str, kind: Kind, *buttons: tuple[str, str, str | None, str | None]) -> None:
    """``gw``'s inventory: (button, site, kecamatan, label) of one kind."""
    infos = tuple(
        ButtonInfo(button, kind, Source.GPIO, Site(name, -4.3497, 122.3786, kecamatan), label)
        for button, name, kecamatan, label in buttons
    )
    with transaction(conn):
        registry.store_inventory(conn, Inventory(gw=gw, ts=format_epoch(NOW - 10 * HOUR), buttons=infos), NOW)


def open_alarm(conn: sqlite3.Connection, button: str, at: float, kind: str = "fire", gw: str = "gw-a") -> int:
    with transaction(conn):
        outcome = store.store_events(conn, [(make_event(button=button, kind=kind, gw=gw), at)])
    [alarm_id] = outcome.alarms
    return alarm_id


def act(conn: sqlite3.Connection, alarm_id: int, action: Action, at: float, **fields: object) -> None:
    current = store.get_alarm(conn, alarm_id, kinds=("fire", "sapa"))
    assert current is not None
    store.act_on_alarm(
        conn, alarm_id, action, actor="dina", kinds=[Kind.FIRE, Kind.SAPA], now=at, seen_rev=current["rev"], **fields
    )


FIRE_BUTTONS = (
    ("fire-1", "Pasar Andoolo", "Andoolo", "Blok A"),
    ("fire-2", AWKWARD_SITE, "Konda", 'Kios "7" & <dapur>'),
    ("fire-3", "SMP Negeri 1 Konda", "Konda", None),
    ("fire-4", "Kantor Camat Tinanggea", None, "Lobi"),
    ("fire-5", "Puskesmas Andoolo", "Andoolo", "Dapur"),
)


def every_kind_of_fire_alarm(conn: sqlite3.Connection) -> dict[str, int]:
    """One fire alarm in each state the feed tells apart, and one of every odd sort; SAPA alarms around them."""
    register(conn, "gw-a", Kind.FIRE, *FIRE_BUTTONS)
    register(conn, "gw-s", Kind.SAPA, ("sapa-1", SAPA_SITE, "Tinanggea", "Kamar konseling"))
    start = NOW - 2 * HOUR
    alarms = {}
    open_alarm(conn, "sapa-1", start - 60, kind="sapa", gw="gw-s")  # before any fire alarm: fire numbers stay 1, 2, ...
    alarms["open"] = open_alarm(conn, "fire-1", start)
    alarms["acknowledged"] = open_alarm(conn, "fire-2", start + 60)
    act(conn, alarms["acknowledged"], Action.ACKNOWLEDGED, start + 90)
    alarms["dispatched"] = open_alarm(conn, "fire-3", start + 120)
    act(conn, alarms["dispatched"], Action.ACKNOWLEDGED, start + 150)
    act(conn, alarms["dispatched"], Action.DISPATCHED, start + 160, unit='Damkar "Pos" Konda & <Regu 2>')
    alarms["resolved"] = open_alarm(conn, "fire-4", start + 180)
    act(conn, alarms["resolved"], Action.ACKNOWLEDGED, start + 200)
    act(conn, alarms["resolved"], Action.DISPATCHED, start + 210, unit="Damkar Pos Tinanggea")
    act(conn, alarms["resolved"], Action.RESOLVED, start + 900, resolution="real")
    alarms["unregistered"] = open_alarm(conn, "fire-9", start + 1100)  # in no inventory: no site, no point
    act(conn, alarms["unregistered"], Action.RESOLVED, start + 1200, resolution="false_alarm")
    with transaction(conn):  # a technician's test of fire-5: its press is a test alarm
        service.set_mode(conn, "fire-5", "test", "Uji berkala", 2, audit.Who("teknisi"), start + 1300)
    alarms["exercise"] = open_alarm(conn, "fire-5", start + 1400)
    act(conn, alarms["exercise"], Action.RESOLVED, start + 1500, resolution="test")
    sapa = open_alarm(conn, "sapa-1", start + 1600, kind="sapa", gw="gw-s")
    act(conn, sapa, Action.ACKNOWLEDGED, start + 1610)
    act(conn, sapa, Action.DISPATCHED, start + 1620, unit="UPTD PPA Konsel")
    return alarms


def number_of(conn: sqlite3.Connection, alarm_id: int) -> int:
    alarm = store.get_alarm(conn, alarm_id, kinds=["fire"])
    assert alarm is not None
    return alarm["number"]


def index(client: FlaskClient, **headers: str) -> etree._Element:
    response = client.get("/cap/alerts.atom", headers=headers)
    assert response.status_code == 200, response.data[:300]
    assert response.mimetype == "application/atom+xml"
    return etree.fromstring(response.data)  # raises on anything not well-formed


def fetch_alert(client: FlaskClient, identifier: str, **headers: str) -> tuple[bytes, etree._Element]:
    response = client.get(f"/cap/alerts/{identifier}.xml", headers=headers)
    assert response.status_code == 200, (identifier, response.status_code)
    assert response.mimetype == "application/cap+xml"
    return response.data, etree.fromstring(response.data)


def identifier_of(entry: etree._Element) -> str:
    """The identifier of the message an index entry links to (its id is the message's address)."""
    return entry.findtext("atom:id", namespaces=NS).rsplit("/", 1)[1].removesuffix(".xml")


def every_alert(client: FlaskClient, **headers: str) -> dict[str, etree._Element]:
    """Each entry's alert, and every earlier message its ``references`` name (so all of each alarm's)."""
    found: dict[str, etree._Element] = {}
    waiting = [identifier_of(entry) for entry in entries(index(client, **headers))]
    while waiting:
        identifier = waiting.pop()
        if identifier in found:
            continue
        _, alert = fetch_alert(client, identifier, **headers)
        found[identifier] = alert
        waiting += [reference.split(",")[1] for reference in text(alert, "cap:references").split()]
    return found


def entries(feed: etree._Element) -> list[etree._Element]:
    return feed.findall("atom:entry", NS)


def text(alert: etree._Element, path: str) -> str:
    return alert.findtext(path, namespaces=NS) or ""


def infos(alert: etree._Element) -> dict[str, etree._Element]:
    return {info.findtext("cap:language", namespaces=NS): info for info in alert.findall("cap:info", NS)}


# -- the alerts -------------------------------------------------------------------------------------


def test_every_alert_of_every_kind_of_fire_alarm_is_valid_cap_1_2(
    app: Flask, conn: sqlite3.Connection, schema: etree.XMLSchema
) -> None:
    every_kind_of_fire_alarm(conn)
    alerts = every_alert(app.test_client())
    invalid = {identifier: str(schema.error_log) for identifier, alert in alerts.items() if not schema.validate(alert)}
    assert invalid == {}
    # Every sort of message was among them, so every sort was validated.
    assert {text(a, "cap:msgType") for a in alerts.values()} == {"Alert", "Update", "Cancel"}
    assert {text(a, "cap:status") for a in alerts.values()} == {"Actual", "Exercise"}
    assert len(alerts) == 1 + 2 + 3 + 4 + 2 + 2  # open, acknowledged, dispatched, resolved, unregistered, exercise
    areas = [area for a in alerts.values() for area in a.iterfind("cap:info/cap:area", NS)]
    assert any(area.find("cap:circle", NS) is None for area in areas)  # the unregistered button's
    assert any(area.find("cap:geocode", NS) is not None for area in areas)  # Andoolo's region code
    for alert in alerts.values():
        assert set(infos(alert)) == {"id-ID", "en-US"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", text(alert, "cap:sent"))  # WITA, with its offset
        assert text(alert, "cap:sender") == SENDER and text(alert, "cap:scope") == "Public"


def test_the_schema_refuses_what_cap_1_2_forbids(app: Flask, conn: sqlite3.Connection, schema: etree.XMLSchema) -> None:
    """The control: the validator is not one that passes anything."""
    every_kind_of_fire_alarm(conn)
    client = app.test_client()
    good, _ = fetch_alert(client, identifier_of(entries(index(client))[0]))
    assert schema.validate(etree.fromstring(good))
    sent = re.search(rb"<sent>([^<]+)</sent>", good)[1]
    for broken in (
        good.replace(b"<sent>" + sent, b"<sent>" + sent[:-6] + b"Z"),  # CAP 1.2 wants the offset, never Z
        good.replace(b"<category>Fire</category>", b"<category>Kebakaran</category>"),
        re.sub(rb"<scope>\w+</scope>", b"", good),
        good.replace(b"<language>id-ID</language><category>", b"<category>").replace(b"</category>", b"</category>"
                     b"<language>id-ID</language>", 1),  # out of order
    ):  # fmt: skip
        assert broken != good and not schema.validate(etree.fromstring(broken))


def test_texts_that_need_escaping_arrive_as_written(app: Flask, conn: sqlite3.Connection) -> None:
    alarms = every_kind_of_fire_alarm(conn)
    client = app.test_client()
    number = number_of(conn, alarms["dispatched"])
    alerts = every_alert(client)
    [dispatched] = [a for i, a in alerts.items() if i.endswith("-dispatched") and f"-fire-{number}-" in i]
    readable = AWKWARD_SITE.replace("\x07", "")
    awkward = [a for a in alerts.values() if readable in text(a, "cap:info/cap:headline")]
    assert len(awkward) == 2  # its alarm's Alert and the Update of its acknowledgement
    for language, info in infos(dispatched).items():
        assert 'Damkar "Pos" Konda & <Regu 2>' in text(info, "cap:description"), language
    for info in [info for alert in awkward for info in infos(alert).values()]:
        area = text(info, "cap:area/cap:areaDesc")
        assert area.startswith('Pasar "Baru" <Blok C> & Los Ikan, ')  # the bell character is dropped, nothing else
        assert 'Kios "7" & <dapur>' in text(info, "cap:description")


def test_an_alarm_is_a_series_of_messages_each_naming_the_ones_before(app: Flask, conn: sqlite3.Connection) -> None:
    alarms = every_kind_of_fire_alarm(conn)
    client = app.test_client()
    number = number_of(conn, alarms["resolved"])
    series = {i: a for i, a in every_alert(client).items() if f"-fire-{number}-" in i}
    stages = ["opened", "acknowledged", "dispatched", "resolved"]
    ordered = sorted(series.values(), key=lambda a: stages.index(text(a, "cap:identifier").rsplit("-", 1)[1]))
    assert [text(a, "cap:msgType") for a in ordered] == ["Alert", "Update", "Update", "Cancel"]
    for position, alert in enumerate(ordered):
        earlier = [f"{SENDER},{text(a, 'cap:identifier')},{text(a, 'cap:sent')}" for a in ordered[:position]]
        assert (alert.findtext("cap:references", namespaces=NS) or "").split() == earlier
        assert text(alert, "cap:incidents") == text(ordered[0], "cap:identifier").removesuffix("-opened")
    cancel = ordered[-1]
    for info in infos(cancel).values():
        assert [text(info, f"cap:{name}") for name in ("category", "urgency", "severity", "certainty")] == [
            "Fire", "Past", "Severe", "Observed"  # resolved as a real fire
        ]  # fmt: skip
        assert text(info, "cap:responseType") == "AllClear"
    assert "Kejadian nyata" in text(cancel, "cap:note")  # the board's own word for the resolution
    for alert in ordered[:-1]:
        for info in infos(alert).values():
            assert (text(info, "cap:urgency"), text(info, "cap:certainty")) == ("Immediate", "Likely")
    # Stable: the same message asked again is the same bytes, and a conditional request is answered 304.
    path = f"/cap/alerts/{text(ordered[0], 'cap:identifier')}.xml"
    first = client.get(path)
    assert client.get(path, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    assert client.get(path).data == first.data


def test_a_test_alarm_is_an_exercise_and_a_false_alarm_is_unlikely(app: Flask, conn: sqlite3.Connection) -> None:
    alarms = every_kind_of_fire_alarm(conn)
    alerts = every_alert(app.test_client())
    numbers = {name: number_of(conn, alarm_id) for name, alarm_id in alarms.items()}
    for identifier, alert in alerts.items():
        exercise = f"-fire-{numbers['exercise']}-" in identifier
        assert text(alert, "cap:status") == ("Exercise" if exercise else "Actual"), identifier
        if exercise:
            assert text(infos(alert)["id-ID"], "cap:headline").startswith("LATIHAN: ")
            assert text(infos(alert)["en-US"], "cap:headline").startswith("EXERCISE: ")
        if f"-fire-{numbers['unregistered']}-" in identifier and identifier.endswith("-resolved"):
            assert {text(i, "cap:certainty") for i in infos(alert).values()} == {"Unlikely"}
            assert [area.find("cap:circle", NS) for area in alert.iterfind("cap:info/cap:area", NS)] == [None, None]


# -- the index ----------------------------------------------------------------------------------------


def test_the_index_lists_open_alarms_and_recent_cancels_newest_first(tmp_path: Path) -> None:
    app = cap_app(tmp_path, keep_resolved_s=3 * HOUR, sender_name="Damkar Konawe Selatan")
    with closing(connect(app.config["DATABASE"])) as conn:
        every_kind_of_fire_alarm(conn)
        old = open_alarm(conn, "fire-4", NOW - 9 * HOUR)  # resolved 8 hours ago: out of the index
        act(conn, old, Action.RESOLVED, NOW - 8 * HOUR, resolution="real")
        old_number = number_of(conn, old)
    client = app.test_client()
    feed = index(client)
    assert feed.tag == f"{{{ATOM}}}feed" and feed.get("{http://www.w3.org/XML/1998/namespace}lang") == "id"
    assert feed.findtext("atom:id", namespaces=NS) == "http://localhost/cap/alerts.atom"
    assert feed.findtext("atom:author/atom:name", namespaces=NS) == "Damkar Konawe Selatan"
    assert "Damkar Konawe Selatan" in feed.findtext("atom:title", namespaces=NS)
    assert feed.find("atom:link[@rel='self']", NS).get("href") == "http://localhost/cap/alerts.atom"
    listed = entries(feed)
    updated = [entry.findtext("atom:updated", namespaces=NS) for entry in listed]
    assert feed.findtext("atom:updated", namespaces=NS) == updated[0] == max(updated)
    assert updated == sorted(updated, reverse=True)
    stages = sorted(identifier_of(entry).rsplit("-", 1)[1] for entry in listed)
    assert stages == ["acknowledged", "dispatched", "opened", "resolved", "resolved", "resolved"]
    for entry in listed:
        [link] = entry.findall("atom:link", NS)
        assert (link.get("rel"), link.get("type")) == ("alternate", "application/cap+xml")
        assert link.get("href") == entry.findtext("atom:id", namespaces=NS)
        assert entry.findtext("atom:title", namespaces=NS) and entry.findtext("atom:summary", namespaces=NS)
        assert client.get(urlsplit(link.get("href")).path).status_code == 200
    assert f"-fire-{old_number}-" not in etree.tostring(feed).decode()
    # A message is served only while its alarm is in the index.
    old_messages = messages(FireAlarm(number=old_number, opened_at=NOW - 9 * HOUR))
    assert client.get(f"/cap/alerts/{old_messages[0].identifier}.xml").status_code == 404


def test_an_empty_index_is_still_a_valid_feed(app: Flask) -> None:
    feed = index(app.test_client())
    assert entries(feed) == [] and feed.findtext("atom:updated", namespaces=NS)


def test_the_feed_does_not_exist_unless_enabled(tmp_path: Path) -> None:
    app = make_app(tmp_path)  # no [cap]: off
    assert not [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/cap/")]
    assert app.test_client().get("/cap/alerts.atom").status_code == 404


# -- never SAPA -----------------------------------------------------------------------------------------


def test_no_sapa_alarm_is_in_the_index_or_any_alert(app: Flask, conn: sqlite3.Connection) -> None:
    every_kind_of_fire_alarm(conn)
    client = app.test_client()
    body = client.get("/cap/alerts.atom").data.decode()
    everything = [body] + [etree.tostring(alert).decode() for alert in every_alert(client).values()]
    sapa_words = (SAPA_SITE, "Kamar konseling", "UPTD PPA", "sapa", "SAPA", "Kecamatan Tinanggea", "Tinanggea district")
    for document in everything:
        assert [word for word in sapa_words if word in document] == []
    # Fire alarms are numbered on their own: the SAPA alarm opened first does not shift them.
    numbers = sorted({int(number) for number in re.findall(r"siaga-fire-(\d+)-\d{8}-\d{6}-\w+", body)})
    assert numbers == [1, 2, 3, 4, 5, 6]


def test_a_sapa_alarms_would_be_identifiers_are_not_found_like_any_made_up_one(
    app: Flask, conn: sqlite3.Connection
) -> None:
    every_kind_of_fire_alarm(conn)
    client = app.test_client()
    made_up = client.get("/cap/alerts/siaga-fire-999-20200101-000000-opened.xml")
    assert made_up.status_code == 404
    sapa_rows = conn.execute("SELECT * FROM alarms WHERE kind = 'sapa'").fetchall()
    assert sapa_rows, "the scenario made no SAPA alarm"
    for row in sapa_rows:
        as_if_fire = FireAlarm.from_row({**dict(row), "kind": "fire", "site_name": None, "label": None,
                                         "kecamatan": None, "lat": None, "lon": None})  # fmt: skip
        names = [m.identifier for m in messages(as_if_fire)]
        names += [name.replace("siaga-fire-", "siaga-sapa-") for name in names]
        names += [str(row["id"]), f"siaga-fire-{row['id']}", f"siaga-sapa-{row['number']}"]
        for name in names:
            response = client.get(f"/cap/alerts/{name}.xml")
            assert (response.status_code, response.data) == (404, made_up.data), name
    with pytest.raises(NotAFireAlarm):
        FireAlarm.from_row(dict(sapa_rows[0]))


# -- the token ---------------------------------------------------------------------------------------------


def test_a_token_protected_feed_refuses_every_request_without_the_right_token(
    tmp_path: Path, schema: etree.XMLSchema
) -> None:
    app = cap_app(tmp_path, access="token", token=TOKEN)
    with closing(connect(app.config["DATABASE"])) as conn:
        every_kind_of_fire_alarm(conn)
    client = app.test_client()
    good = {"Authorization": f"Bearer {TOKEN}"}
    alerts = every_alert(client, **good)
    some = next(iter(alerts))
    wrong = [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer " + TOKEN[:-1]},
        {"Authorization": "Bearer " + TOKEN + "x"},
        {"Authorization": f"Bearer  {TOKEN}"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"X-Token": TOKEN},
    ]
    paths = ["/cap/alerts.atom", f"/cap/alerts/{some}.xml", "/cap/alerts/siaga-fire-999-20200101-000000-opened.xml"]
    for headers in wrong:
        for path in paths:
            for method in ("GET", "HEAD", "OPTIONS"):
                response = client.open(path, method=method, headers=headers)
                assert response.status_code == 401, (headers, path, method)
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
                assert b"siaga-fire" not in response.data
    assert client.get(f"/cap/alerts.atom?token={TOKEN}").status_code == 401  # never from the URL (logs keep URLs)
    assert client.get("/cap/alerts.atom", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200
    for identifier, alert in alerts.items():
        assert schema.validate(alert), (identifier, str(schema.error_log))
        assert text(alert, "cap:scope") == "Restricted" and text(alert, "cap:restriction")
    response = client.get("/cap/alerts.atom", headers=good)
    assert "private" in response.headers["Cache-Control"]


def test_token_access_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        cap_app(tmp_path, access="token", token=None)


# -- configuration -----------------------------------------------------------------------------------------

MINIMAL = '[dashboard]\ndata_dir = "{data}"\n[mqtt]\nhost = "127.0.0.1"\n'


def config_of(tmp_path: Path, cap: str) -> dict:
    return parse_config(parse_toml(MINIMAL.format(data=tmp_path) + cap, "dashboard.toml"), create_secret=False)


def test_the_cap_section_is_read_and_off_by_default(tmp_path: Path) -> None:
    assert config_of(tmp_path, "")["SIAGA_CAP"].enabled is False
    token_file = tmp_path / "cap.token"
    token_file.write_text(TOKEN + "\n")
    section = (
        f'[cap]\nenabled = true\nsender = "{SENDER}"\naccess = "token"\ntoken_file = "{token_file}"\n'
        'sender_name = "Damkar Konsel"\nkeep_resolved_s = 7200\nradius_km = 0.3\n'
        'region_codes = { Andoolo = "74.05.01" }\n'
    )
    settings = config_of(tmp_path, section)["SIAGA_CAP"]
    assert (settings.enabled, settings.access, settings.token, settings.sender) == (True, "token", TOKEN, SENDER)
    assert (settings.sender_name, settings.keep_resolved_s, settings.radius_km) == ("Damkar Konsel", 7200.0, 0.3)
    assert dict(settings.region_codes) == {"Andoolo": "74.05.01"}
    assert TOKEN not in repr(settings)


@pytest.mark.parametrize(
    ("cap", "key", "words"),
    [
        ("[cap]\nenabled = true\n", "cap.sender", "required"),
        ('[cap]\nenabled = true\nsender = "siaga damkar"\n', "cap.sender", "does not match"),
        ('[cap]\nenabled = true\nsender = "a,b"\n', "cap.sender", "does not match"),
        ('[cap]\nenabled = true\nsender = "s@x"\naccess = "token"\n', "cap.token_file", "needs token_file"),
        ('[cap]\nenabled = true\nsender = "s@x"\ntoken_file = "/etc/passwd"\n', "cap.token_file", "only with"),
        ('[cap]\naccess = "open"\n', "cap.access", "must be one of"),
        ("[cap]\nkeep_resolved_s = 1\n", "cap.keep_resolved_s", "at least"),
        ("[cap]\nradius_km = 0\n", "cap.radius_km", "at least"),
        ('[cap]\nregion_codes = { Konda = "74 05" }\n', "cap.region_codes", "codes"),
        ("[cap]\nradius = 1\n", "cap.radius", "unknown key"),
    ],
)
def test_a_wrong_cap_section_names_the_key(tmp_path: Path, cap: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_of(tmp_path, cap)
    assert caught.value.key == key and words in str(caught.value)


def test_a_short_token_is_refused(tmp_path: Path) -> None:
    token_file = tmp_path / "cap.token"
    token_file.write_text("too-short")
    with pytest.raises(ConfigError, match="at least 32"):
        config_of(tmp_path, f'[cap]\nenabled = true\nsender = "s@x"\naccess = "token"\ntoken_file = "{token_file}"\n')


# -- costs -------------------------------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_the_feed_reads_alarms_through_indexes_only(conn: sqlite3.Connection) -> None:
    every_kind_of_fire_alarm(conn)
    found = plans(conn, lambda: store.alarms_open_or_resolved_since(conn, Kind.FIRE, NOW - HOUR))
    assert found and all(re.search(r"\bSCAN (a|alarms)\b(?! USING)", plan) is None for plan in found), found
    assert all("alarms_kind_resolved" in plan for plan in found), found


# -- end to end ----------------------------------------------------------------------------------------------


@pytest.fixture
def cap_dashboard(tmp_path: Path, broker_settings: BrokerSettings) -> Iterator[DashboardServer]:
    config = dashboard_config(tmp_path / "dashboard", broker_settings, SIAGA_CAP=SETTINGS)
    server = DashboardServer(config).start()
    server.create_user(*OPERATOR, "fire_operator")
    server.create_user(*SAPA_DESK, "sapa_desk")
    yield server
    server.stop()


def read(server: DashboardServer, path: str) -> bytes:
    """Over HTTP, from the dashboard as it serves (uvicorn), as a feed reader would."""
    with urlopen(server.url + path, timeout=10) as response:
        return response.read()


def test_a_press_reaches_the_feed_and_its_resolution_becomes_a_cancel(
    cap_dashboard: DashboardServer, make_gateway_config, start_gateway, pin_factory, schema: etree.XMLSchema
) -> None:
    buttons = [
        {"id": "fire-1", "kind": "fire", "label": "Blok A", "pin": 17, "led_pin": 27,
         "site": {**site("Pasar Andoolo", -4.3497, 122.3786), "kecamatan": "Andoolo"}},
        {"id": "sapa-1", "kind": "sapa", "label": "Pos keamanan", "pin": 23, "led_pin": 24,
         "site": site(SAPA_SITE, -4.4561, 122.2167)},
    ]  # fmt: skip
    gateway: Gateway = start_gateway(make_gateway_config(buttons=buttons))
    operator, desk = signed_in(cap_dashboard, OPERATOR), signed_in(cap_dashboard, SAPA_DESK)
    with operator.stream() as fire_board, desk.stream() as sapa_board:
        fire_board.wait_for(lambda e: e.event == "snapshot", 5)
        sapa_board.wait_for(lambda e: e.event == "snapshot", 5)
        press(pin_factory, 23)
        sapa_board.wait_for(lambda e: e.event == "alarm", 10)
        press(pin_factory, 17)
        alarm = fire_board.wait_for(lambda e: e.event == "alarm" and e.json().get("site"), 10).json()
    assert gateway.wait_for_indication("fire-1", "received", 10)

    [entry] = entries(etree.fromstring(read(cap_dashboard, "/cap/alerts.atom")))
    alert = etree.fromstring(read(cap_dashboard, f"/cap/alerts/{identifier_of(entry)}.xml"))
    assert schema.validate(alert), str(schema.error_log)
    assert (text(alert, "cap:msgType"), text(alert, "cap:status")) == ("Alert", "Actual")
    area = infos(alert)["id-ID"].find("cap:area", NS)
    assert text(area, "cap:areaDesc") == "Pasar Andoolo, Kecamatan Andoolo"
    assert text(area, "cap:circle") == "-4.349700,122.378600 0.5"
    assert text(area, "cap:geocode/cap:value") == "74.05.01"

    acknowledged = operator.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {})["alarm"]
    operator.post_json(f"/api/alarms/{alarm['id']}/resolve", {"resolution": "real", "rev": acknowledged["rev"]})
    feed = read(cap_dashboard, "/cap/alerts.atom")
    [entry] = entries(etree.fromstring(feed))
    cancel = etree.fromstring(read(cap_dashboard, f"/cap/alerts/{identifier_of(entry)}.xml"))
    assert schema.validate(cancel), str(schema.error_log)
    assert text(cancel, "cap:msgType") == "Cancel"
    assert len(text(cancel, "cap:references").split()) == 2  # the Alert and the acknowledgement's Update
    assert SAPA_SITE.encode() not in feed and b"Pos keamanan" not in feed
