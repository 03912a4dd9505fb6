"""The board's web side: sign-in, roles (SAPA privacy), CSRF, operator actions and their audit, language."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest

from dashboard.db import connect
from dashboard.defaults import STREAMS_PER_ACCOUNT
from dashboard.live import EXTENSION
from sim.servers import DashboardServer
from sim.webclient import DashboardClient, HTTPStatusError

from .conftest import ADMIN, OPERATOR, SAPA_DESK, signed_in
from .mqttprobe import Probe
from .test_fail_open import TECHNICIAN, register, registered
from .test_ingest import make_event, send, wait_alarm


def test_signing_in_takes_each_desk_to_its_board(dashboard: DashboardServer) -> None:
    operator = signed_in(dashboard, OPERATOR)
    status, page = operator.get_page("/")
    assert status == 200 and "Papan Alarm Pos Pemadam Kebakaran" in page
    sapa = signed_in(dashboard, SAPA_DESK)
    status, page = sapa.get_page("/")
    assert status == 200 and "Meja SAPA" in page


def test_a_wrong_password_is_refused(dashboard: DashboardServer) -> None:
    client = DashboardClient(dashboard.url)
    with pytest.raises(HTTPStatusError) as caught:
        client.login(OPERATOR[0], "not-the-password")
    assert caught.value.status == 401
    assert "Nama pengguna atau kata sandi salah" in caught.value.body
    with pytest.raises(HTTPStatusError) as caught:
        client.get_json("/api/alarms")
    assert caught.value.status == 401


def test_pages_need_a_signed_in_user(dashboard: DashboardServer) -> None:
    client = DashboardClient(dashboard.url)
    status, page = client.get_page("/board")
    assert status == 200 and 'name="password"' in page  # redirected to the sign-in form
    with pytest.raises(HTTPStatusError) as caught:
        client.get_json("/api/stream")
    assert caught.value.status == 401


def test_state_changes_need_the_csrf_token(dashboard: DashboardServer, operator: DashboardClient, probe: Probe) -> None:
    event = send(probe, make_event())
    alarm = wait_alarm(operator, lambda a: a["last_event_id"] == event.id)
    token, operator.csrf = operator.csrf, "forged-token"
    with pytest.raises(HTTPStatusError) as caught:
        operator.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {})
    assert caught.value.status == 400 and json.loads(caught.value.body)["error"] == "csrf"
    operator.csrf = ""
    with pytest.raises(HTTPStatusError):
        operator.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {})
    operator.csrf = token
    operator.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {})
    # The sign-in form is protected too: a login without the form's token is refused.
    request = urllib.request.Request(
        dashboard.url + "/login", data=b"username=operator&password=operator-password-1", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 400


def test_sapa_alarms_are_only_for_the_sapa_desk(
    dashboard: DashboardServer, operator: DashboardClient, sapa_desk: DashboardClient, probe: Probe
) -> None:
    admin = signed_in(dashboard, ADMIN)
    with operator.stream() as fire_stream, sapa_desk.stream() as sapa_stream:
        fire_stream.wait_for(lambda e: e.event == "snapshot", 5)
        sapa_stream.wait_for(lambda e: e.event == "snapshot", 5)
        sapa_event = send(probe, make_event(button="sapa-1", kind="sapa"))
        sapa_alarm = sapa_stream.wait_for(lambda e: e.event == "alarm", 5).json()
        assert sapa_alarm["kind"] == "sapa" and sapa_alarm["last_event_id"] == sapa_event.id
        fire_event = send(probe, make_event())
        # Streams keep order: the fire board's first alarm is the fire one; the SAPA one never came.
        first = fire_stream.wait_for(lambda e: e.event == "alarm", 5).json()
        assert first["kind"] == "fire" and first["last_event_id"] == fire_event.id
    alarm_id = sapa_alarm["id"]
    for client in (operator, admin):
        assert all(a["kind"] == "fire" for a in client.get_json("/api/alarms?state=all")["alarms"])
        with pytest.raises(HTTPStatusError) as caught:
            client.get_json(f"/api/alarms/{alarm_id}")
        assert caught.value.status == 404  # not even its existence is revealed
        with pytest.raises(HTTPStatusError) as caught:
            client.post_json(f"/api/alarms/{alarm_id}/acknowledge", {})
        assert caught.value.status == 404
        status, _ = client.get_page("/sapa")
        assert status == 403
    assert [a["kind"] for a in sapa_desk.get_json("/api/alarms")["alarms"]] == ["sapa"]
    status, _ = sapa_desk.get_page("/board")
    assert status == 403
    sapa_desk.post_json(f"/api/alarms/{alarm_id}/acknowledge", {})


def test_acknowledge_and_resolve_are_stored_with_who_when_and_note(
    dashboard: DashboardServer, operator: DashboardClient, probe: Probe
) -> None:
    event = send(probe, make_event())
    alarm = wait_alarm(operator, lambda a: a["last_event_id"] == event.id)
    acked = operator.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {"note": "Regu 1 berangkat"})["alarm"]
    assert (acked["state"], acked["acknowledged_by"], acked["rev"]) == ("acknowledged", "operator", 1)
    done = operator.post_json(
        f"/api/alarms/{alarm['id']}/resolve",
        {"resolution": "false_alarm", "note": "Tersenggol pedagang", "rev": acked["rev"]},
    )["alarm"]
    assert (done["state"], done["resolution"], done["resolved_by"], done["open"]) == (
        "resolved",
        "false_alarm",
        "operator",
        False,
    )
    details = operator.get_json(f"/api/alarms/{alarm['id']}")
    trail = [(a["action"], a["actor"], a["from_state"], a["to_state"], a["note"]) for a in details["actions"]]
    assert trail == [
        ("opened", "gw:gw-a", None, "unacknowledged", None),
        ("acknowledged", "operator", "unacknowledged", "acknowledged", "Regu 1 berangkat"),
        ("resolved", "operator", "acknowledged", "resolved", "Tersenggol pedagang"),
    ]
    assert all(a["at"].endswith("Z") for a in details["actions"])
    assert operator.get_json("/api/alarms")["alarms"] == []


@pytest.mark.parametrize(
    ("action", "body", "status"),
    [
        ("resolve", {"resolution": "maybe", "rev": 0}, 400),
        ("resolve", {"rev": 0}, 400),
        ("resolve", {"resolution": "real"}, 400),  # without the revision the operator saw
        ("resolve", {"resolution": "real", "rev": "0"}, 400),
        ("acknowledge", {"note": "x" * 2001}, 400),
        ("acknowledge", {"note": 42}, 400),
        ("dispatch", {"unit": ""}, 400),
        ("dispatch", {"unit": "x" * 101}, 400),
        ("dispatch", {"note": "tanpa unit"}, 400),
        ("dispatch", {"unit": "Damkar Pos Andoolo"}, 409),  # not acknowledged yet: acknowledge first
    ],
)
def test_bad_actions_are_refused_with_a_reason(
    dashboard: DashboardServer, operator: DashboardClient, probe: Probe, action: str, body: dict, status: int
) -> None:
    event = send(probe, make_event())
    alarm = wait_alarm(operator, lambda a: a["last_event_id"] == event.id)
    with pytest.raises(HTTPStatusError) as caught:
        operator.post_json(f"/api/alarms/{alarm['id']}/{action}", body)
    assert caught.value.status == status
    assert json.loads(caught.value.body)["message"]
    assert operator.get_json(f"/api/alarms/{alarm['id']}")["alarm"]["rev"] == 0


def test_dispatch_names_the_unit_tells_the_button_and_resolves_from_there(
    dashboard: DashboardServer, operator: DashboardClient, probe: Probe
) -> None:
    event = send(probe, make_event())
    alarm = wait_alarm(operator, lambda a: a["last_event_id"] == event.id)
    probe.subscribe("siaga/v1/gw/gw-a/cmd/indicate")
    operator.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {})
    sent = operator.post_json(
        f"/api/alarms/{alarm['id']}/dispatch", {"unit": "  Damkar   Pos Andoolo ", "note": "2 regu"}
    )["alarm"]
    assert (sent["state"], sent["dispatch_unit"], sent["dispatched_by"], sent["open"]) == (
        "dispatched",
        "Damkar Pos Andoolo",
        "operator",
        True,
    )
    told = probe.wait_for(lambda m: json.loads(m.payload).get("state") == "dispatched")
    assert json.loads(told.payload)["rev"] == sent["rev"]
    assert [a["id"] for a in operator.get_json("/api/alarms")["alarms"]] == [alarm["id"]]  # still open
    with pytest.raises(HTTPStatusError) as caught:
        operator.post_json(f"/api/alarms/{alarm['id']}/dispatch", {"unit": "lagi"})
    assert caught.value.status == 409
    done = operator.post_json(f"/api/alarms/{alarm['id']}/resolve", {"resolution": "real", "rev": sent["rev"]})
    assert done["alarm"]["state"] == "resolved" and done["alarm"]["dispatch_unit"] == "Damkar Pos Andoolo"


def test_an_action_that_no_longer_applies_is_a_conflict(
    dashboard: DashboardServer, operator: DashboardClient, probe: Probe
) -> None:
    event = send(probe, make_event())
    alarm = wait_alarm(operator, lambda a: a["last_event_id"] == event.id)
    operator.post_json(f"/api/alarms/{alarm['id']}/resolve", {"resolution": "test", "rev": alarm["rev"]})
    for action in ("acknowledge", "resolve"):
        with pytest.raises(HTTPStatusError) as caught:
            operator.post_json(f"/api/alarms/{alarm['id']}/{action}", {"resolution": "real", "rev": 1})
        assert caught.value.status == 409
    with pytest.raises(HTTPStatusError) as caught:
        operator.post_json("/api/alarms/999999/acknowledge", {})
    assert caught.value.status == 404


def test_bahasa_indonesia_by_default_and_english_on_request(dashboard: DashboardServer) -> None:
    client = DashboardClient(dashboard.url)
    status, page = client.get_page("/login")
    assert '<html lang="id">' in page and "Kata sandi" in page
    status, page = client.get_page("/login?lang=en")
    assert '<html lang="en">' in page and "Password" in page
    client.login(*OPERATOR)  # the choice survives signing in
    status, page = client.get_page("/board")
    assert status == 200 and "Fire Post Alarm Board" in page


def test_pages_carry_security_headers_and_health_is_public(dashboard: DashboardServer) -> None:
    with urllib.request.urlopen(dashboard.url + "/login", timeout=5) as response:
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    with urllib.request.urlopen(dashboard.url + "/healthz", timeout=5) as response:
        assert json.loads(response.read()) == {"ok": True, "mqtt_connected": True}


def test_diagnostics_are_for_administrators(dashboard: DashboardServer, operator: DashboardClient) -> None:
    with pytest.raises(HTTPStatusError) as caught:
        operator.get_json("/api/diagnostics")
    assert caught.value.status == 403
    report = signed_in(dashboard, ADMIN).get_json("/api/diagnostics")
    assert report["mqtt_connected"] and report["ingest_alive"]


def test_alarm_numbers_run_per_kind_so_gaps_reveal_nothing(
    dashboard: DashboardServer, operator: DashboardClient, sapa_desk: DashboardClient, probe: Probe
) -> None:
    for button, kind in [("fire-1", "fire"), ("sapa-1", "sapa"), ("sapa-2", "sapa"), ("fire-2", "fire")]:
        event = send(probe, make_event(button=button, kind=kind))
        client = operator if kind == "fire" else sapa_desk
        wait_alarm(client, lambda a, e=event: a["last_event_id"] == e.id)
    fire = sorted((a["number"], a["id"]) for a in operator.get_json("/api/alarms")["alarms"])
    sapa = sorted((a["number"], a["id"]) for a in sapa_desk.get_json("/api/alarms")["alarms"])
    assert [number for number, _ in fire] == [1, 2] and [number for number, _ in sapa] == [1, 2]
    # The fire post's ids are consecutive in its own sequence: no hint of the SAPA alarms in between.
    assert fire[1][1] - fire[0][1] == sapa[1][1] - sapa[0][1]
    assert {i for _, i in fire}.isdisjoint({i for _, i in sapa})


def test_resolving_refuses_to_close_presses_the_operator_has_not_seen(
    dashboard: DashboardServer, operator: DashboardClient, probe: Probe
) -> None:
    first = send(probe, make_event())
    seen = wait_alarm(operator, lambda a: a["last_event_id"] == first.id)
    again = send(probe, make_event())  # someone presses again while the operator decides
    wait_alarm(operator, lambda a: a["last_event_id"] == again.id)
    for sent in ({"rev": seen["rev"]}, {"rev": seen["rev"], "presses": seen["press_count"]}):
        with pytest.raises(HTTPStatusError) as caught:
            operator.post_json(f"/api/alarms/{seen['id']}/resolve", {"resolution": "false_alarm", **sent})
        assert caught.value.status == 409
    body = json.loads(caught.value.body)
    assert body["error"] == "changed" and body["alarm"]["press_count"] == 2
    assert operator.get_json(f"/api/alarms/{seen['id']}")["alarm"]["open"] is True
    operator.post_json(f"/api/alarms/{seen['id']}/resolve", {"resolution": "real", "rev": body["alarm"]["rev"]})


def test_a_change_without_new_presses_does_not_stop_a_resolve_that_names_the_presses_seen(
    dashboard: DashboardServer, operator: DashboardClient, probe: Probe
) -> None:
    event = send(probe, make_event())
    seen = wait_alarm(operator, lambda a: a["last_event_id"] == event.id)
    signed_in(dashboard, OPERATOR).post_json(f"/api/alarms/{seen['id']}/acknowledge", {})  # a colleague, meanwhile
    with pytest.raises(HTTPStatusError) as caught:  # the revision alone cannot tell what changed
        operator.post_json(f"/api/alarms/{seen['id']}/resolve", {"resolution": "real", "rev": seen["rev"]})
    assert caught.value.status == 409
    done = operator.post_json(
        f"/api/alarms/{seen['id']}/resolve", {"resolution": "real", "rev": seen["rev"], "presses": 1}
    )
    assert done["alarm"]["state"] == "resolved"
    with pytest.raises(HTTPStatusError) as caught:
        operator.post_json(f"/api/alarms/{seen['id']}/resolve", {"resolution": "real", "rev": 0, "presses": "1"})
    assert caught.value.status == 400


def test_an_absurd_alarm_number_is_simply_not_found(dashboard: DashboardServer, operator: DashboardClient) -> None:
    with pytest.raises(HTTPStatusError) as caught:
        operator.get_json("/api/alarms/99999999999999999999")
    assert caught.value.status == 404


def test_signing_out_ends_the_session_even_for_a_copied_cookie(dashboard: DashboardServer) -> None:
    client = signed_in(dashboard, OPERATOR)
    stolen = DashboardClient(dashboard.url)
    for cookie in client.cookies:
        stolen.cookies.set_cookie(cookie)
    assert stolen.get_json("/api/alarms") == {"alarms": []}
    status, _ = client.get_page("/board")  # the page carries the CSRF token for the sign-out form
    assert status == 200
    request = urllib.request.Request(
        dashboard.url + "/logout",
        data=urllib.parse.urlencode({"csrf_token": client.csrf}).encode(),
        method="POST",
        headers={"Cookie": client.cookie_header()},
    )
    urllib.request.urlopen(request, timeout=5)
    with pytest.raises(HTTPStatusError) as caught:
        stolen.get_json("/api/alarms")
    assert caught.value.status == 401


def test_a_live_stream_ends_when_its_session_does(tmp_path, broker_settings) -> None:
    from sim.servers import dashboard_config

    config = dashboard_config(tmp_path / "quick", broker_settings, SIAGA_STREAM_KEEPALIVE_S=0.05)
    with DashboardServer(config) as server:
        server.create_user(*OPERATOR, "fire_operator")
        client = signed_in(server, OPERATOR)
        with client.stream() as stream:
            stream.wait_for(lambda e: e.event == "snapshot", 5)
            conn = connect(config["DATABASE"])
            conn.execute("UPDATE users SET active = 0 WHERE username = ?", (OPERATOR[0],))
            conn.close()
            with pytest.raises(EOFError):
                stream.wait_for(lambda e: False, 5)


def test_one_account_cannot_hold_unbounded_streams_nor_lock_itself_out(
    dashboard: DashboardServer, operator: DashboardClient
) -> None:
    """One stream over the account's limit replaces the oldest (which is told why): the streams stay
    bounded, and a PC that reconnects quickly (its old streams not yet noticed as gone) is never refused."""
    limit = STREAMS_PER_ACCOUNT
    streams = [operator.stream() for _ in range(limit)]
    try:
        for stream in streams:
            stream.wait_for(lambda e: e.event == "snapshot", 5)
        one_more = operator.stream()
        streams.append(one_more)
        assert one_more.wait_for(lambda e: e.event == "snapshot", 5)
        replaced = streams[0].wait_for(lambda e: e.event == "replaced", 5)  # the oldest is told, then ended
        assert replaced.json() == {"streams_per_account": limit}
        with pytest.raises(EOFError):
            streams[0].wait_for(lambda e: False, 5)
        assert dashboard.app.extensions["siaga"].hub.subscribers == limit
        for _ in range(20):  # a flaky PC: quick reconnects, none of them refused
            again = operator.stream()
            streams.append(again)
            assert again.wait_for(lambda e: e.event == "snapshot", 5)
        assert dashboard.app.extensions["siaga"].hub.subscribers == limit
    finally:
        for stream in streams:
            stream.close()


def test_diagnostics_do_not_reveal_sapa_activity(
    dashboard: DashboardServer, sapa_desk: DashboardClient, probe: Probe
) -> None:
    event = send(probe, make_event(button="sapa-1", kind="sapa"))
    wait_alarm(sapa_desk, lambda a: a["last_event_id"] == event.id)
    counters = signed_in(dashboard, ADMIN).get_json("/api/diagnostics")["counters"]
    assert dashboard.ingest.counters.get("events_stored.sapa") == 1
    assert not any(name.endswith(".sapa") or name == "events_stored" for name in counters)


@pytest.fixture
def technician(dashboard: DashboardServer) -> DashboardClient:
    dashboard.create_user(*TECHNICIAN, "technician")
    return signed_in(dashboard, TECHNICIAN)


def test_diagnostics_show_how_long_the_supervisors_rounds_take(
    dashboard: DashboardServer, technician: DashboardClient
) -> None:
    conn = connect(dashboard.config["DATABASE"])
    try:
        dashboard.app.extensions[EXTENSION].supervisor.check(conn)  # one round now, whatever its thread did
    finally:
        conn.close()
    for client in (signed_in(dashboard, ADMIN), technician):
        rounds = client.get_json("/api/diagnostics")["supervisor_round"]
        assert 0 < rounds["last_s"] <= rounds["max_s"] and 0 < rounds["p50_s"] <= rounds["max_s"]
        assert rounds["interval_s"] > 0


def test_the_boards_sites_summary_and_one_site_keep_sapa_alarms_to_the_sapa_desk(
    dashboard: DashboardServer,
    probe: Probe,
    operator: DashboardClient,
    sapa_desk: DashboardClient,
    technician: DashboardClient,
) -> None:
    register(probe, **{"fire-1": "fire", "fire-2": "fire", "sapa-1": "sapa"})
    registered(dashboard, "sapa-1")
    press = send(probe, make_event(button="sapa-1", kind="sapa"))
    alarm = wait_alarm(sapa_desk, lambda a: a["last_event_id"] == press.id)

    def summary(client: DashboardClient) -> dict[str, dict]:
        return {s["name"]: s for s in client.get_json("/api/sites?view=summary")["sites"]}

    (desk,) = summary(sapa_desk).values()
    assert desk["state"] == "unacknowledged" and [b["alarm"] for b in desk["buttons"]] == [alarm["id"]]
    (fire,) = summary(operator).values()
    assert fire["state"] == "ok" and fire["buttons"] == [] and fire["count"] == 2  # no SAPA button, no alarm
    (seen,) = summary(technician).values()
    assert seen["state"] == "ok" and seen["count"] == 3 and str(alarm["id"]) not in json.dumps(seen)
    whole = technician.get_json(f"/api/sites?site={urllib.parse.quote(seen['name'])}")["site"]
    assert {b["id"]: b["alarm"] for b in whole["buttons"]} == {"fire-1": None, "fire-2": None, "sapa-1": None}
    fire_site = operator.get_json(f"/api/sites?site={urllib.parse.quote(seen['name'])}")["site"]
    assert {b["id"] for b in fire_site["buttons"]} == {"fire-1", "fire-2"}
    with pytest.raises(HTTPStatusError) as caught:
        operator.get_json("/api/sites?site=nowhere")
    assert caught.value.status == 404


def test_a_board_opened_during_a_mass_event_shows_every_open_alarm(
    dashboard: DashboardServer, operator: DashboardClient, probe: Probe
) -> None:
    """More open alarms than any page of the API: a new or reconnecting board must still see the oldest."""
    from dashboard.alarms.store import OPEN_STATES

    from .test_ingest import TOPICS, drained

    count = 230  # past the 200 that /api/alarms (and once the snapshot) returns
    sent = [
        probe.client.publish(TOPICS.event("gw-a"), make_event(button=f"fire-{n}").encode(), qos=1) for n in range(count)
    ]
    for info in sent:
        info.wait_for_publish(10)
    drained(dashboard, count)
    with operator.stream() as board:
        snapshot = board.wait_for(lambda e: e.event == "snapshot", 10).json()
    buttons = {alarm["button"] for alarm in snapshot["alarms"]}
    assert buttons == {f"fire-{n}" for n in range(count)}  # the first press's alarm among them
    assert all(alarm["state"] in OPEN_STATES for alarm in snapshot["alarms"])


def test_boards_share_a_snapshot_until_something_is_published(
    dashboard: DashboardServer, operator: DashboardClient, probe: Probe
) -> None:
    """A thousand boards reconnecting read the store once; a change in between is never missed."""
    state = dashboard.app.extensions[EXTENSION]
    with operator.stream() as first:
        first.wait_for(lambda e: e.event == "snapshot", 5)
    generation, reads = state.hub.generation, state.counters.get("snapshots_read")
    with operator.stream() as second:
        shared = second.wait_for(lambda e: e.event == "snapshot", 5).json()
    assert shared["alarms"] == [] and shared["server_time"]  # each board gets its own server time
    if state.hub.generation == generation:  # nothing was published between the two boards
        assert state.counters.get("snapshots_read") == reads
    press = send(probe, make_event())
    wait_alarm(operator, lambda a: a["last_event_id"] == press.id)
    with operator.stream() as third:
        after = third.wait_for(lambda e: e.event == "snapshot", 5).json()
    assert [alarm["last_event_id"] for alarm in after["alarms"]] == [press.id]
