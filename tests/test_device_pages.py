"""The device view a page at a time, problems first; the sites' summary; the supervisor's round (issue 11).

In process, on a real SQLite store written the way the ingest writes it
(inventories through :func:`dashboard.devices.registry.store_inventory`,
health messages as stored), with troubles found by a real supervisor round.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from dashboard.db import connect, init_schema
from dashboard.devices import registry, sites
from dashboard.devices.supervision import Audience, SupervisionSettings, Supervisor
from dashboard.devices.view import device_overview
from dashboard.ingest.hub import Hub
from firmware_bridge.payloads import ButtonInfo, Inventory, Kind, Site, Source
from firmware_bridge.timeutil import format_epoch
from sim.stores import store_at

NOW = 1_800_000_000.0
EVERYONE = frozenset({"fire", "sapa"})
FIRE = frozenset({"fire"})
TECHNICIAN = Audience(EVERYONE, FIRE)
FIRE_POST = Audience(FIRE, FIRE)
GATEWAYS = 120
PER_PAGE = 50


def gw_name(n: int) -> str:
    return f"gw-{n:03d}"


def inventory(conn: sqlite3.Connection, n: int, sapa_kind: Kind = Kind.SAPA, at: float = NOW - 3600) -> None:
    """Gateway ``n``: a fire radio button and a SAPA wired one, at a site of its own."""
    gw = gw_name(n)
    site = Site(f"Desa {n:03d}", -4.3 + n / 1000, 122.3)
    buttons = (
        ButtonInfo(f"{gw}-fire", Kind.FIRE, Source.LORA, site, "pintu depan"),
        ButtonInfo(f"{gw}-sapa", sapa_kind, Source.GPIO, site),
    )
    registry.store_inventory(conn, Inventory(gw, format_epoch(at), buttons), at)


def health(conn: sqlite3.Connection, n: int, *, at: float = NOW - 5, nodes: dict | None = None) -> None:
    gw = gw_name(n)
    heard = {gw_name(n) + "-fire": {"button": gw + "-fire", "age_s": 3, "battery_mv": 3300, "rssi": -80, "snr": 7}}
    payload = {
        "v": 1,
        "gw": gw,
        "ts": format_epoch(at),
        "uptime_s": 100,
        "outbox": {"depth": 0, "oldest_ts": None, "memory_only": 0},
        "counters": {},
        "radio": {
            "module": {"type": "rylr998", "port": "/dev/x", "state": "open"},
            "nodes": heard if nodes is None else nodes,
        },
        "buttons": [{"id": gw + "-sapa", "pressed": False}],
    }
    conn.execute(
        "UPDATE gateways SET state = 'online', updated_at = ?, health = ?, health_at = ? WHERE gw = ?",
        (at, json.dumps(payload), at, gw),
    )


@pytest.fixture
def store(tmp_path: Path) -> sqlite3.Connection:
    conn = connect(store_at(tmp_path / "store.db"))
    init_schema(conn)
    for n in range(GATEWAYS):
        inventory(conn, n)
        health(conn, n)
    return conn


def supervised(conn: sqlite3.Connection) -> Supervisor:
    supervisor = Supervisor(":memory:", Hub(), SupervisionSettings())
    supervisor.check(conn, NOW)
    return supervisor


def every_page(conn: sqlite3.Connection, audience: Audience, **options: object) -> list[dict]:
    first = device_overview(conn, audience, NOW, per_page=PER_PAGE, **options)
    pages = [first]
    for page in range(2, first["pages"] + 1):
        pages.append(device_overview(conn, audience, NOW, page=page, per_page=PER_PAGE, **options))
    return pages


def test_gateways_with_a_problem_come_first_and_the_pages_together_list_everything_once(
    store: sqlite3.Connection,
) -> None:
    conn = store
    conn.execute("UPDATE gateways SET state = 'offline' WHERE gw = ?", (gw_name(100),))
    health(conn, 50, at=NOW - 600)  # its health stopped: stale
    low = {"n": {"button": gw_name(110) + "-fire", "age_s": 3, "battery_mv": 2900, "low_battery": True}}
    health(conn, 110, nodes=low)
    supervisor = supervised(conn)

    pages = every_page(conn, TECHNICIAN, heard=supervisor.heard)
    first = pages[0]
    problems = [gw_name(50), gw_name(100), gw_name(110)]
    assert [g["gw"] for g in first["gateways"][:3]] == problems
    assert first["problem_gateways"] == 3 and first["gateways_total"] == GATEWAYS
    assert [p["pages"] for p in pages] == [3, 3, 3] and [len(p["gateways"]) for p in pages] == [50, 50, 20]
    listed = [g["gw"] for p in pages for g in p["gateways"]]
    assert sorted(listed) == [gw_name(n) for n in range(GATEWAYS)]  # each once
    assert listed[3:] == sorted(listed[3:])  # the rest by name
    for page in pages:
        on_page = {g["gw"] for g in page["gateways"]}
        assert {b["gw"] for b in page["buttons"]} == on_page
        assert len(page["buttons"]) == 2 * len(on_page)  # technicians see SAPA buttons too
    buttons = {b["id"]: b for b in first["buttons"]}
    weak = buttons[gw_name(110) + "-fire"]
    assert [t["type"] for t in weak["troubles"]] == ["low_battery"] and weak["battery_mv"] == 2900
    assert first["buttons"][0]["id"] == weak["id"]  # buttons in trouble first
    gateways = {g["gw"]: g for g in first["gateways"]}
    assert [t["type"] for t in gateways[gw_name(100)]["troubles"]] == ["gateway_offline"]
    assert [t["type"] for t in gateways[gw_name(50)]["troubles"]] == ["gateway_silent"]
    assert buttons[gw_name(0) + "-fire"]["heard_s"] == 8 and buttons[gw_name(0) + "-fire"]["rssi"] == -80
    assert buttons[gw_name(0) + "-sapa"]["pressed"] is False
    past_the_end = device_overview(conn, TECHNICIAN, NOW, page=99, per_page=PER_PAGE)
    assert past_the_end["page"] == 3 and past_the_end["gateways"] == pages[2]["gateways"]


def test_a_search_finds_gateways_buttons_labels_and_sites_of_the_kinds_a_role_sees(store: sqlite3.Connection) -> None:
    conn = store
    by_gateway = device_overview(conn, TECHNICIAN, NOW, query="GW-007")
    assert [g["gw"] for g in by_gateway["gateways"]] == [gw_name(7)]
    assert {b["id"] for b in by_gateway["buttons"]} == {gw_name(7) + "-fire", gw_name(7) + "-sapa"}
    by_button = device_overview(conn, TECHNICIAN, NOW, query=gw_name(8) + "-sapa")
    assert [b["id"] for b in by_button["buttons"]] == [gw_name(8) + "-sapa"]  # only what matched
    by_site = device_overview(conn, TECHNICIAN, NOW, query="desa 009")
    assert [g["gw"] for g in by_site["gateways"]] == [gw_name(9)] and len(by_site["buttons"]) == 2
    by_label = device_overview(conn, TECHNICIAN, NOW, query="PINTU")
    assert by_label["gateways_total"] == GATEWAYS and all(b["kind"] == "fire" for b in by_label["buttons"])
    # The fire post learns nothing of SAPA buttons by searching for them.
    hidden = device_overview(conn, FIRE_POST, NOW, query="-sapa")
    assert hidden["gateways"] == [] and hidden["buttons"] == [] and hidden["gateways_total"] == 0
    nothing = device_overview(conn, TECHNICIAN, NOW, query="tidak-ada")
    assert (nothing["gateways"], nothing["pages"], nothing["page"]) == ([], 1, 1)


def test_a_button_heard_by_a_gateway_on_another_page_shows_what_that_gateway_heard(store: sqlite3.Connection) -> None:
    conn = store
    button = gw_name(0) + "-fire"
    health(conn, 0, nodes={})  # its own gateway no longer hears it ...
    far = {"a": {"button": button, "age_s": 2, "battery_mv": 3100, "rssi": -110, "snr": -3}}
    far["b"] = {"button": gw_name(119) + "-fire", "age_s": 3, "battery_mv": 3300, "rssi": -80, "snr": 7}
    health(conn, 119, nodes=far)  # ... a gateway three pages away does
    supervisor = supervised(conn)
    view = device_overview(conn, TECHNICIAN, NOW, per_page=PER_PAGE, heard=supervisor.heard)
    assert gw_name(119) not in {g["gw"] for g in view["gateways"]}
    shown = {b["id"]: b for b in view["buttons"]}[button]
    assert (shown["via"], shown["battery_mv"], shown["rssi"], shown["heard_s"]) == (gw_name(119), 3100, -110, 7)
    assert shown["troubles"] == []  # not missing: supervision heard it too


def test_the_sites_summary_agrees_with_the_full_list_and_one_site_lists_every_button(
    store: sqlite3.Connection,
) -> None:
    conn = store
    low = {"n": {"button": gw_name(3) + "-fire", "age_s": 3, "battery_mv": 2900, "low_battery": True}}
    health(conn, 3, nodes=low)
    conn.execute(
        "INSERT INTO button_service (button, mode, reason, until, set_by, set_at) VALUES (?, 'test', 'uji', ?, 't', ?)",
        (gw_name(5) + "-sapa", NOW + 3600, NOW),
    )
    supervised(conn)
    for audience in (TECHNICIAN, FIRE_POST):
        full = sites.sites(conn, audience, frozenset(), NOW)
        summary = sites.summary(conn, audience, frozenset(), NOW)
        assert [(s["name"], s["state"]) for s in summary] == [(s["name"], s["state"]) for s in full]
        for whole, short in zip(full, summary, strict=True):
            assert short["buttons"] == [b for b in whole["buttons"] if b["state"] != "ok"]
            assert short["count"] == len(whole["buttons"])
            assert sites.site(conn, audience, frozenset(), NOW, whole["name"]) == whole
    summary = sites.summary(conn, TECHNICIAN, frozenset(), NOW)
    assert [(s["name"], s["state"]) for s in summary[:2]] == [("Desa 003", "trouble"), ("Desa 005", "test")]
    assert summary[0]["states"] == {"trouble": 1} and not summary[0]["complete"]
    assert all(b["kind"] == "fire" for s in sites.summary(conn, FIRE_POST, frozenset(), NOW) for b in s["buttons"])
    assert sites.site(conn, FIRE_POST, frozenset(), NOW, "Desa 005")["buttons"][0]["state"] == "ok"  # no SAPA
    assert sites.site(conn, TECHNICIAN, frozenset(), NOW, "Nowhere") is None


def test_the_sites_summary_is_reused_until_something_it_shows_changes(store: sqlite3.Connection) -> None:
    conn = store
    supervised(conn)
    first = sites.summary(conn, TECHNICIAN, frozenset(), NOW)
    assert sites.summary(conn, TECHNICIAN, frozenset(), NOW) is first  # a thousand boards, one answer
    low = {"n": {"button": gw_name(4) + "-fire", "age_s": 3, "battery_mv": 2900, "low_battery": True}}
    health(conn, 4, nodes=low)
    supervised(conn)
    troubled = sites.summary(conn, TECHNICIAN, frozenset(), NOW)
    assert troubled[0]["name"] == "Desa 004" and troubled[0]["state"] == "trouble"
    site = Site("Desa baru", -4.2, 122.2)
    moved = (ButtonInfo(gw_name(4) + "-fire", Kind.FIRE, Source.LORA, site),)
    registry.store_inventory(conn, Inventory(gw_name(4), format_epoch(NOW), moved), NOW)  # a new place
    after = sites.summary(conn, TECHNICIAN, frozenset(), NOW)
    assert after[0]["name"] == "Desa baru" and after[0]["state"] == "trouble"


def test_the_supervisor_times_its_rounds_and_follows_a_changed_inventory(store: sqlite3.Connection) -> None:
    conn = store
    supervisor = Supervisor(":memory:", Hub(), SupervisionSettings())
    assert supervisor.round_times()["last_s"] is None
    low = {"n": {"button": gw_name(2) + "-sapa", "age_s": 3, "battery_mv": 2900, "low_battery": True}}
    health(conn, 2, nodes=low)
    for _ in range(3):
        supervisor.check(conn, NOW)
    times = supervisor.round_times()
    assert 0 < times["p50_s"] <= times["max_s"] and 0 < times["last_s"] <= times["max_s"]
    assert times["interval_s"] == SupervisionSettings().check_interval_s

    def kind_of_trouble() -> str:
        (kind,) = conn.execute("SELECT kind FROM troubles WHERE cleared_at IS NULL AND type = 'low_battery'")
        return kind[0]

    assert kind_of_trouble() == "sapa"
    # The gateway now says its second button is a fire button (received, as every message, at its own time).
    inventory(conn, 2, sapa_kind=Kind.FIRE, at=NOW - 60)
    supervisor.check(conn, NOW)
    assert kind_of_trouble() == "fire"  # the next round knows, whatever it kept from earlier rounds


def test_the_device_page_pages_searches_and_keeps_its_place_after_a_service_change(tmp_path: Path) -> None:
    from .reports_helpers import make_app, sign_in

    app = make_app(tmp_path)
    conn = connect(app.config["DATABASE"])
    for n in range(60):
        inventory(conn, n)
        health(conn, n, at=NOW)
    conn.close()
    admin = sign_in(app, "admin")  # a maintainer, as technicians are; of fire buttons only
    page = admin.get("/devices?page=2").get_data(as_text=True)
    assert "Halaman 2 dari 2" in page and 'rel="prev"' in page and 'rel="next"' not in page
    assert page.count('<tr data-gw="') == 10 and 'name="page" value="2"' in page
    found = admin.get("/devices?q=gw-059").get_data(as_text=True)
    assert found.count('<tr data-gw="') == 1 and found.count("<tr data-button=") == 1
    assert 'data-button="gw-059-fire"' in found and "gw-059-sapa" not in found and 'id="pager-top"' not in found
    token = re.search(r'name="csrf_token" value="([^"]+)"', found)
    assert token is not None
    form = {"csrf_token": token.group(1), "mode": "test", "reason": "uji", "hours": "1", "page": "1", "q": "gw-059"}
    moved = admin.post("/devices/buttons/gw-059-fire/service", data=form)
    assert moved.status_code == 303 and moved.headers["Location"].endswith("/devices?page=1&q=gw-059")
    listed = admin.get("/api/devices?q=gw-059&page=abc").get_json()
    assert listed["page"] == 1 and [(b["id"], b["service"]["mode"]) for b in listed["buttons"]] == [
        ("gw-059-fire", "test")
    ]
