"""Fail open, and never to the wrong desk (issue 9, findings 1, 2, 3, 8 and 9).

A press reaches a person even when something is wrong with it: its button is
in no inventory, its event claims another kind than the button's registered
one, or the normal ingest path fails on it. The doubt becomes a trouble, and
a SAPA press never shows on the fire post's board or a technician's view.
"""

from __future__ import annotations

import json
import time

import pytest

from dashboard.accounts import audit
from dashboard.alarms import store
from dashboard.alarms.lifecycle import Action
from dashboard.db import connect, transaction
from dashboard.devices import registry, service
from dashboard.live import EXTENSION
from firmware_bridge.payloads import ButtonInfo, GatewayState, Inventory, Kind, Presence, Site, Source
from firmware_bridge.timeutil import format_epoch
from sim.servers import DashboardServer
from sim.webclient import DashboardClient

from .conftest import ADMIN, signed_in
from .mqttprobe import Probe
from .test_ingest import TOPICS, make_event, send, wait_alarm
from .waiting import poll_until

TECHNICIAN = ("teknisi", "technician-password-1")


def register(probe: Probe, gw: str = "gw-a", **buttons: str) -> None:
    """Publish ``gw``'s inventory: button id -> kind."""
    inventory = Inventory(
        gw=gw,
        ts=format_epoch(time.time()),
        buttons=tuple(
            ButtonInfo(button, Kind(kind), Source.GPIO, Site("Pasar Andoolo", -4.35, 122.38), None)
            for button, kind in buttons.items()
        ),
    )
    probe.publish(TOPICS.inventory(gw), inventory.encode(), retain=True)


def registered(dashboard: DashboardServer, button: str, kind: str | None = None, gw: str = "gw-a") -> None:
    """Wait until ``gw``'s stored inventory registers ``button`` (as ``kind``, if given): no event says so."""
    conn = connect(dashboard.config["DATABASE"])
    try:
        poll_until(
            lambda: registry.registered_kind(conn, gw, button),
            lambda found: found is not None and kind in (None, found),
            interval=0.01,
            what=f"{gw} registering {button} as {kind or 'anything'}",
        )
    finally:
        conn.close()


def supervise(dashboard: DashboardServer) -> None:
    """One supervisor round now (its thread runs every few seconds; tests do not wait for it)."""
    conn = connect(dashboard.config["DATABASE"])
    try:
        dashboard.app.extensions[EXTENSION].supervisor.check(conn)
    finally:
        conn.close()


def troubles(client: DashboardClient) -> set[tuple[str, str]]:
    return {(t["type"], t["subject"]) for t in client.get_json("/api/troubles")["troubles"]}


@pytest.fixture
def technician(dashboard: DashboardServer) -> DashboardClient:
    dashboard.create_user(*TECHNICIAN, "technician")
    return signed_in(dashboard, TECHNICIAN)


def no_alarm_of(client: DashboardClient, event_id: str) -> bool:
    return all(a["last_event_id"] != event_id for a in client.get_json("/api/alarms?state=all")["alarms"])


# -- finding 2: the registered kind decides the desk -------------------------------------------


def test_a_press_claiming_fire_from_a_sapa_button_reaches_only_the_sapa_desk(
    dashboard: DashboardServer, operator: DashboardClient, sapa_desk: DashboardClient, technician, probe: Probe
) -> None:
    register(probe, **{"fire-1": "fire", "sapa-1": "sapa"})
    registered(dashboard, "sapa-1")
    fire = send(probe, make_event(button="fire-1"))
    fire_alarm = wait_alarm(operator, lambda a: a["last_event_id"] == fire.id)
    # The old code took the event's word: a fire alarm for a SAPA button, on the fire post's board.
    forged = send(probe, make_event(button="sapa-1", kind="fire"))
    alarm = wait_alarm(sapa_desk, lambda a: a["last_event_id"] == forged.id)
    assert (alarm["kind"], alarm["anomaly"], alarm["button"]) == ("sapa", "kind_mismatch", "sapa-1")
    assert no_alarm_of(operator, forged.id)
    assert [a["id"] for a in operator.get_json("/api/alarms")["alarms"]] == [fire_alarm["id"]]
    supervise(dashboard)
    assert ("kind_mismatch", "sapa-1") in troubles(sapa_desk)
    assert ("kind_mismatch", "sapa-1") not in troubles(technician)  # it would tell them somebody pressed
    assert ("kind_mismatch", "sapa-1") not in troubles(operator)


def test_a_press_claiming_sapa_from_a_fire_button_does_not_join_a_sapa_alarm(
    dashboard: DashboardServer, operator: DashboardClient, sapa_desk: DashboardClient, probe: Probe
) -> None:
    register(probe, **{"fire-1": "fire"})
    registered(dashboard, "fire-1")
    claimed_sapa = send(probe, make_event(button="fire-1", kind="sapa"))
    alarm = wait_alarm(operator, lambda a: a["last_event_id"] == claimed_sapa.id)
    assert (alarm["kind"], alarm["anomaly"]) == ("fire", "kind_mismatch")
    assert sapa_desk.get_json("/api/alarms?state=all")["alarms"] == []
    # A later, matching press joins the same fire alarm and puts the button in order again.
    good = send(probe, make_event(button="fire-1"))
    joined = wait_alarm(operator, lambda a: a["last_event_id"] == good.id)
    assert (joined["id"], joined["press_count"]) == (alarm["id"], 2)
    supervise(dashboard)
    assert ("kind_mismatch", "fire-1") not in troubles(sapa_desk) | troubles(operator)


def test_a_mismatch_is_a_trouble_until_the_button_is_registered_with_its_kind(
    dashboard: DashboardServer,
    operator: DashboardClient,
    sapa_desk: DashboardClient,
    technician: DashboardClient,
    probe: Probe,
) -> None:
    register(probe, **{"fire-7": "fire"})
    registered(dashboard, "fire-7")
    heartbeat = send(probe, make_event(button="fire-7", type="heartbeat", kind="sapa"))
    marker = send(probe, make_event(button="fire-8"))  # stored after the heartbeat: the ingest keeps order
    wait_alarm(operator, lambda a: a["last_event_id"] == marker.id)
    supervise(dashboard)
    assert ("kind_mismatch", "fire-7") in troubles(sapa_desk), heartbeat.id
    # SAPA is involved (the claim): only the SAPA desk learns of it.
    assert ("kind_mismatch", "fire-7") not in troubles(technician) | troubles(operator)
    register(probe, **{"fire-7": "sapa"})  # the gateway's inventory corrected
    registered(dashboard, "fire-7", "sapa")
    supervise(dashboard)
    assert ("kind_mismatch", "fire-7") not in troubles(sapa_desk)


def test_a_press_from_an_unregistered_button_still_raises_its_alarm_and_a_trouble(
    dashboard: DashboardServer, operator: DashboardClient, sapa_desk: DashboardClient, technician, probe: Probe
) -> None:
    fire = send(probe, make_event(button="fire-nowhere"))
    alarm = wait_alarm(operator, lambda a: a["last_event_id"] == fire.id)
    assert (alarm["kind"], alarm["anomaly"], alarm["state"]) == ("fire", "unregistered", "unacknowledged")
    sapa = send(probe, make_event(button="sapa-nowhere", kind="sapa"))
    sapa_alarm = wait_alarm(sapa_desk, lambda a: a["last_event_id"] == sapa.id)
    assert (sapa_alarm["kind"], sapa_alarm["anomaly"]) == ("sapa", "unregistered")
    assert no_alarm_of(operator, sapa.id)
    supervise(dashboard)
    assert ("button_unregistered", "fire-nowhere") in troubles(technician)
    assert ("button_unregistered", "fire-nowhere") in troubles(operator)
    assert ("button_unregistered", "sapa-nowhere") in troubles(sapa_desk)
    assert ("button_unregistered", "sapa-nowhere") not in troubles(technician) | troubles(operator)
    # Registering the button clears its trouble; the alarm keeps its mark.
    register(probe, **{"fire-nowhere": "fire"})
    registered(dashboard, "fire-nowhere")
    supervise(dashboard)
    assert ("button_unregistered", "fire-nowhere") not in troubles(technician)
    assert operator.get_json(f"/api/alarms/{alarm['id']}")["alarm"]["anomaly"] == "unregistered"


# -- finding 1: /api/sites attaches only the alarms a role may see --------------------------------


def test_sites_never_show_a_sapa_alarm_to_technicians_or_the_fire_post(
    dashboard: DashboardServer, operator: DashboardClient, sapa_desk: DashboardClient, technician, probe: Probe
) -> None:
    register(probe, **{"fire-1": "fire", "sapa-1": "sapa"})
    registered(dashboard, "sapa-1")
    press = send(probe, make_event(button="sapa-1", kind="sapa"))
    alarm = wait_alarm(sapa_desk, lambda a: a["last_event_id"] == press.id)

    def buttons(client: DashboardClient) -> dict[str, dict]:
        sites = client.get_json("/api/sites")["sites"]
        return {b["id"]: {**b, "site_state": s["state"]} for s in sites for b in s["buttons"]}

    seen_by_technician = buttons(technician)["sapa-1"]
    assert (seen_by_technician["alarm"], seen_by_technician["state"]) == (None, "ok")
    assert seen_by_technician["site_state"] == "ok"
    assert str(alarm["id"]) not in json.dumps(technician.get_json("/api/sites"))
    assert "sapa-1" not in buttons(operator)
    assert buttons(sapa_desk)["sapa-1"]["alarm"] == alarm["id"]


# -- finding 8: diagnostics count nothing of SAPA for roles that may not know of it -----------------


def test_diagnostics_counters_are_the_same_with_and_without_a_sapa_press(
    dashboard: DashboardServer, sapa_desk: DashboardClient, technician: DashboardClient, probe: Probe
) -> None:
    admin = signed_in(dashboard, ADMIN)
    register(probe, **{"sapa-1": "sapa"})
    registered(dashboard, "sapa-1")
    before = {who: client.get_json("/api/diagnostics")["counters"] for who, client in (("a", admin), ("t", technician))}
    press = send(probe, make_event(button="sapa-1", kind="sapa"))
    alarm = wait_alarm(sapa_desk, lambda a: a["last_event_id"] == press.id)
    sapa_desk.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {})
    assert dashboard.ingest.counters.get("events_stored.sapa") == 1
    after = {who: client.get_json("/api/diagnostics")["counters"] for who, client in (("a", admin), ("t", technician))}
    assert after == before


def test_a_counter_nobody_classified_stays_hidden() -> None:
    from dashboard.board.api import counters_for

    counters = {"mqtt_connects": 1, "events_stored.fire": 2, "events_stored.sapa": 3, "brand_new_total": 4}
    assert counters_for(frozenset({"fire"}), counters) == {"mqtt_connects": 1, "events_stored.fire": 2}
    assert counters_for(frozenset(), counters) == {"mqtt_connects": 1}


# -- finding 9: a press the ingest fails on still reaches its desk ------------------------------------


#: A bug may raise anything: each of these once made the writer drop the whole batch.
BUGS = (TypeError, AttributeError, RuntimeError, AssertionError, NameError, KeyError)


@pytest.fixture(params=BUGS, ids=[bug.__name__ for bug in BUGS])
def poisoned(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
    """Make the normal path fail (a bug of each type) on the events whose ids are added to the returned set."""
    poison: set[str] = set()
    real = store.store_events

    def store_events(conn, events):
        if any(event.id in poison for event, _ in events):
            raise request.param("injected bug")
        return real(conn, events)

    monkeypatch.setattr(store, "store_events", store_events)
    return poison


@pytest.mark.parametrize("kind", ["fire", "sapa"])
def test_a_press_the_ingest_fails_on_raises_a_degraded_alarm_for_its_desk(
    dashboard: DashboardServer,
    operator: DashboardClient,
    sapa_desk: DashboardClient,
    technician: DashboardClient,
    probe: Probe,
    poisoned: set[str],
    kind: str,
) -> None:
    button = f"{kind}-1"
    register(probe, **{button: kind})
    registered(dashboard, button)
    probe.subscribe(TOPICS.receipt("gw-a"))
    event = make_event(button=button, kind=kind)
    poisoned.add(event.id)
    send(probe, event)
    desk, other = (operator, sapa_desk) if kind == "fire" else (sapa_desk, operator)
    alarm = wait_alarm(desk, lambda a: a["last_event_id"] == event.id)
    assert (alarm["anomaly"], alarm["state"], alarm["kind"]) == ("degraded", "unacknowledged", kind)
    assert no_alarm_of(other, event.id)
    # Stored, so it is receipted: the gateway may forget it.
    probe.wait_for(lambda m: m.topic == TOPICS.receipt("gw-a") and event.id in json.loads(m.payload)["ids"])
    supervise(dashboard)
    assert ("press_set_aside", button) in troubles(desk)
    if kind == "fire":
        assert ("press_set_aside", button) in troubles(technician)
    else:
        assert ("press_set_aside", button) not in troubles(technician) | troubles(operator)
    # The next press of the button joins the degraded alarm normally.
    again = send(probe, make_event(button=button, kind=kind))
    joined = wait_alarm(desk, lambda a: a["last_event_id"] == again.id)
    assert (joined["id"], joined["press_count"]) == (alarm["id"], 2)


def test_a_press_that_cannot_be_stored_at_all_is_not_receipted_and_is_a_trouble(
    dashboard: DashboardServer,
    operator: DashboardClient,
    technician: DashboardClient,
    probe: Probe,
    poisoned: set[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(conn, event, received_at):  # the minimal path has a bug too
        raise RuntimeError("injected: the minimal path fails too")

    monkeypatch.setattr(store, "raise_degraded_alarm", broken)
    probe.subscribe(TOPICS.receipt("gw-a"))
    lost = make_event(button="fire-3")
    poisoned.add(lost.id)
    send(probe, lost)
    good = send(probe, make_event(button="fire-4"))
    wait_alarm(operator, lambda a: a["last_event_id"] == good.id)
    receipt = probe.wait_for(lambda m: m.topic == TOPICS.receipt("gw-a") and good.id in json.loads(m.payload)["ids"])
    receipted = [m for m in probe.seen if m.topic == TOPICS.receipt("gw-a")]
    assert all(lost.id not in json.loads(m.payload)["ids"] for m in receipted), "the gateway would forget it"
    assert receipt
    supervise(dashboard)
    details = {t["subject"]: t["detail"] for t in technician.get_json("/api/troubles")["troubles"]}
    assert "not stored" in details["fire-3"]
    assert dashboard.ingest.counters.get("press_not_stored.fire") == 1


# -- finding 3, the dashboard's side --------------------------------------------------------------------


def test_a_forged_offline_presence_of_the_dashboard_is_corrected(dashboard: DashboardServer, probe: Probe) -> None:
    probe.subscribe(TOPICS.dashboard_status())
    probe.wait_for(lambda m: json.loads(m.payload)["state"] == "online")
    forged = Presence(state=GatewayState.OFFLINE, ts=format_epoch(time.time()), started=format_epoch(time.time()))
    probe.publish(TOPICS.dashboard_status(), forged.encode(), retain=True)
    probe.wait_for(lambda m: json.loads(m.payload)["state"] == "offline")
    probe.wait_for(lambda m: json.loads(m.payload)["state"] == "online")
    assert dashboard.ingest.counters.get("presence_restored") >= 1


def test_open_alarms_are_indicated_again_periodically(tmp_path, broker_settings, probe: Probe) -> None:
    from dashboard.devices.supervision import SupervisionSettings
    from firmware_bridge.payloads import decode_indication
    from sim.servers import dashboard_config

    config = dashboard_config(
        tmp_path / "resync", broker_settings, SIAGA_SUPERVISION=SupervisionSettings(indication_resync_s=0.3)
    )
    with DashboardServer(config) as server:
        probe.subscribe(TOPICS.indicate("gw-a"))
        press = send(probe, make_event(button="fire-1"))
        first = probe.wait_for(lambda m: decode_indication(m.payload).state == "received")
        alarm_id = decode_indication(first.payload).alarm
        # Nothing else happens to the alarm, and yet the button hears it again.
        again = probe.wait_for(lambda m: m is not first and decode_indication(m.payload).alarm == alarm_id)
        assert decode_indication(again.payload).state == "received"
        assert server.ingest.is_alive() and press.id


def test_a_button_whose_alarm_was_resolved_lately_is_told_resolved_again(
    tmp_path, broker_settings, probe: Probe
) -> None:
    """A forged `received` on a button whose alarm is closed does not stay lit: the re-sync says resolved."""
    from dashboard.devices.supervision import SupervisionSettings
    from firmware_bridge.payloads import decode_indication
    from sim.servers import dashboard_config

    from .conftest import OPERATOR

    config = dashboard_config(
        tmp_path / "resync", broker_settings, SIAGA_SUPERVISION=SupervisionSettings(indication_resync_s=0.3)
    )
    with DashboardServer(config) as server:
        server.create_user(*OPERATOR, "fire_operator")
        operator = signed_in(server, OPERATOR)
        press = send(probe, make_event(button="fire-1"))
        alarm = wait_alarm(operator, lambda a: a["last_event_id"] == press.id)
        operator.post_json(f"/api/alarms/{alarm['id']}/resolve", {"resolution": "false_alarm", "rev": alarm["rev"]})
        probe.subscribe(TOPICS.indicate("gw-a"))
        for _ in range(2):  # not only the answer to the resolve: the periodic re-sync repeats it
            told = probe.wait_for(lambda m: decode_indication(m.payload).alarm == alarm["id"])
            assert decode_indication(told.payload).state == "resolved"


def test_a_json_body_that_is_not_an_object_acts_on_nothing(
    dashboard: DashboardServer, operator: DashboardClient, probe: Probe
) -> None:
    from sim.webclient import HTTPStatusError

    press = send(probe, make_event(button="fire-1"))
    alarm = wait_alarm(operator, lambda a: a["last_event_id"] == press.id)
    for body in (None, [], "acknowledge", 1):
        with pytest.raises(HTTPStatusError) as refused:
            operator.post_json(f"/api/alarms/{alarm['id']}/acknowledge", body)  # type: ignore[arg-type]
        assert refused.value.status == 400
    assert operator.get_json(f"/api/alarms/{alarm['id']}")["alarm"]["state"] == "unacknowledged"


def test_another_gateways_inventory_cannot_send_a_press_to_another_desk(
    dashboard: DashboardServer, operator: DashboardClient, sapa_desk: DashboardClient, technician, probe: Probe
) -> None:
    """A copied configuration or a stolen gateway names gw-a's fire button as SAPA: gw-a's presses stay fire."""
    register(probe, "gw-a", **{"fire-1": "fire"})
    registered(dashboard, "fire-1")
    register(probe, "gw-b", **{"fire-1": "sapa"})
    registered(dashboard, "fire-1", "sapa", gw="gw-b")
    press = send(probe, make_event(button="fire-1", gw="gw-a"))
    alarm = wait_alarm(operator, lambda a: a["last_event_id"] == press.id)
    assert (alarm["kind"], alarm["anomaly"]) == ("fire", None)
    assert sapa_desk.get_json("/api/alarms?state=all")["alarms"] == []
    sites = operator.get_json("/api/sites")["sites"]
    assert "fire-1" in {b["id"] for site in sites for b in site["buttons"]}  # still on the fire post's map
    supervise(dashboard)
    assert ("button_conflict", "fire-1") in troubles(technician)
    assert ("button_conflict", "fire-1") in troubles(sapa_desk)
    assert ("button_conflict", "fire-1") not in troubles(operator)  # SAPA is involved


def test_an_unregistered_buttons_trouble_follows_its_kind_to_the_right_audience(
    dashboard: DashboardServer, operator: DashboardClient, sapa_desk: DashboardClient, probe: Probe
) -> None:
    """First heard as fire, then as SAPA: the fire post's trouble closes and never shows the SAPA event."""
    fire = send(probe, make_event(button="odd-1"))
    wait_alarm(operator, lambda a: a["last_event_id"] == fire.id)
    supervise(dashboard)
    assert ("button_unregistered", "odd-1") in troubles(operator)
    sapa = send(probe, make_event(button="odd-1", kind="sapa"))
    wait_alarm(sapa_desk, lambda a: a["last_event_id"] == sapa.id)
    supervise(dashboard)
    assert ("button_unregistered", "odd-1") not in troubles(operator)
    assert ("button_unregistered", "odd-1") in troubles(sapa_desk)


def test_a_schema_3_database_is_upgraded_to_route_by_registration(tmp_path) -> None:
    """The last released schema (kept in tests/data) gains schema 4: one open alarm per button *and kind*,
    registrations from the buttons it knew, anomaly columns. Without the dropped index, a press routed to
    the other kind's desk while an alarm is open would fail every path and be resent for ever."""
    from pathlib import Path

    from dashboard.db import SCHEMA_VERSION, init_schema
    from firmware_bridge.payloads import Event as Ev
    from firmware_bridge.payloads import EventType, Source

    conn = connect(tmp_path / "v3.sqlite")
    conn.executescript((Path(__file__).parent / "data" / "schema-v3.sql").read_text())
    conn.executescript(
        "INSERT INTO buttons (id, gw, kind, transport, site_name, lat, lon, updated_at) "
        "VALUES ('b', 'g', 'sapa', 'gpio', 'Pasar', 1, 1, 1);"
        "INSERT INTO alarms (id, number, button, gw, kind, state, first_event_id, last_event_id, first_press_ts, "
        "opened_at, last_press_at) VALUES (17, 1, 'b', 'g', 'fire', 'unacknowledged', 'e', 'e', 't', 1, 1);"
        "INSERT INTO events (id, gw, button, kind, type, ts, src, received_at, alarm_id, payload) "
        "VALUES ('e', 'g', 'b', 'fire', 'press', 't', 'gpio', 1, 17, '{}');"
        "PRAGMA user_version=3;"
    )
    init_schema(conn)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    indexes = {row[1] for row in conn.execute("PRAGMA index_list(alarms)")}
    assert "alarms_open_button_kind" in indexes and "alarms_open_button" not in indexes
    assert registry.registered_kind(conn, "g", "b") == "sapa"
    assert conn.execute("SELECT anomaly FROM alarms WHERE id = 17").fetchone()[0] is None
    # The button is SAPA now, its old fire alarm still open: a new press opens a SAPA alarm beside it.
    event = Ev(id="01M8N8WQMRR53SX1BWDFSSDFWZ", gw="g", button="b", kind=Kind.SAPA, type=EventType.PRESS,
               ts=format_epoch(time.time()), src=Source.GPIO)  # fmt: skip
    conn.execute("BEGIN IMMEDIATE")
    outcome = store.store_events(conn, [(event, time.time())])
    conn.execute("COMMIT")
    (alarm_id,) = outcome.alarms
    assert alarm_id != 17 and alarm_id % 16 == 2  # a SAPA alarm
    init_schema(conn)  # and again: nothing happens twice
    conn.close()


def test_a_receiver_failing_for_both_desks_is_a_trouble_for_each_with_its_own_count(
    dashboard: DashboardServer, operator: DashboardClient, sapa_desk: DashboardClient, technician, probe: Probe
) -> None:
    """One number over both kinds would tell the fire post how many SAPA notices failed."""
    fire = send(probe, make_event(button="fire-1"))
    fire_alarm = wait_alarm(operator, lambda a: a["last_event_id"] == fire.id)
    sapa = send(probe, make_event(button="sapa-1", kind="sapa"))
    sapa_alarm = wait_alarm(sapa_desk, lambda a: a["last_event_id"] == sapa.id)
    conn = connect(dashboard.config["DATABASE"])
    try:
        with conn:
            now = time.time()
            for alarm, kind, copies in ((fire_alarm, "fire", 1), (sapa_alarm, "sapa", 2)):
                for _ in range(copies):
                    conn.execute(
                        "INSERT INTO notifications (alarm_id, kind, event, step, webhook, payload, status, "
                        "created_at, attempts, next_at, finished_at, last_error) "
                        "VALUES (?, ?, 'alarm.escalated', 1, 'pusat', '{}', 'failed', ?, 3, ?, ?, 'HTTP 503')",
                        (alarm["id"], kind, now, now, now),
                    )
    finally:
        conn.close()
    supervise(dashboard)

    def failing(client: DashboardClient) -> list[str]:
        return [t["detail"] for t in client.get_json("/api/troubles")["troubles"] if t["type"] == "webhook_failing"]

    assert [d.split(";")[0] for d in failing(operator)] == ["1 notification(s) not delivered"]
    assert [d.split(";")[0] for d in failing(sapa_desk)] == ["2 notification(s) not delivered"]
    assert [d.split(";")[0] for d in failing(technician)] == ["1 notification(s) not delivered"]


@pytest.mark.parametrize("kind", ["fire", "sapa"])
def test_a_real_press_never_joins_a_test_alarm_still_open(conn, kind: str) -> None:
    """After a technician's test (test mode ended, the test alarm not yet closed), a real press is a real alarm:
    joining the muted test alarm would have it closed with the test, a minute after, and never escalated."""
    now = time.time()
    button = f"{kind}-1"
    inventory = Inventory(
        gw="gw-1",
        ts=format_epoch(now),
        buttons=(ButtonInfo(button, Kind(kind), Source.GPIO, Site("Pasar", -4.3, 122.3)),),
    )
    with transaction(conn):
        registry.store_inventory(conn, inventory, now)
        service.set_mode(conn, button, "test", "uji bulanan", 1, audit.Who("teknisi"), now)
    with transaction(conn):
        [test_alarm] = store.store_events(conn, [(make_event(button=button, kind=kind), now + 1)]).alarms
    test = store.get_alarm(conn, test_alarm, kinds=[kind])
    assert test["test"]
    # An operator acknowledged the test: its LED says "help is coming", which a real press must not inherit.
    store.act_on_alarm(
        conn, test_alarm, Action.ACKNOWLEDGED, actor="op", kinds=[kind], now=now + 2, seen_rev=test["rev"]
    )
    with transaction(conn):
        service.set_mode(conn, button, "in_service", "selesai", 0, audit.Who("teknisi"), now + 10)
    with transaction(conn):
        outcome = store.store_events(conn, [(make_event(button=button, kind=kind), now + 20)])
    alarm = store.get_alarm(conn, test_alarm, kinds=[kind])
    assert outcome.alarms == {test_alarm: Action.OPENED}  # told as an alarm opened: sounded, notified
    assert not alarm["test"] and alarm["press_count"] == 2 and alarm["opened_at"] == format_epoch(now + 20)
    assert (alarm["state"], alarm["acknowledged_by"], alarm["acknowledged_at"]) == ("unacknowledged", None, None)
    opened = [a for a in store.alarm_actions(conn, test_alarm) if a["action"] == "opened"]
    assert len(opened) == 2 and opened[-1]["from_state"] == "acknowledged"  # the history says what happened
    assert test_alarm in {row["id"] for row in store.escalation_candidates(conn)}
    assert not store.expired_test_alarms(conn, opened_before=now + 1000)  # the test alarms' closing leaves it
