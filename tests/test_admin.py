"""Administrators manage accounts and read the audit log; sign-in is rate limited; SAPA reads are logged."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from sim.servers import DashboardServer
from sim.webclient import DashboardClient, HTTPStatusError

from .conftest import ADMIN, OPERATOR, SAPA_DESK, signed_in
from .mqttprobe import Probe
from .test_ingest import make_event, send, wait_alarm


@pytest.fixture
def admin(dashboard: DashboardServer) -> DashboardClient:
    return signed_in(dashboard, ADMIN)


def account_row(page: str, username: str) -> str:
    match = re.search(rf'<tr data-username="{username}" data-active="(\d)">(.*?)</tr>', page, re.S)
    assert match, f"no row for {username}"
    return match.group(0)


def account_id(page: str, username: str) -> str:
    match = re.search(r'action="/admin/users/(\d+)"', account_row(page, username))
    assert match
    return match.group(1)


def test_an_administrator_creates_changes_and_deactivates_an_account(
    dashboard: DashboardServer, admin: DashboardClient
) -> None:
    status, page = admin.post_form(
        "/admin/users",
        {"username": "dina", "display_name": "Dina (malam)", "role": "fire_operator", "password": "dina-password-1"},
    )
    assert status == 200 and "Akun dina dibuat." in page
    assert "Operator pos damkar" in account_row(page, "dina")
    dina = signed_in(dashboard, ("dina", "dina-password-1"))
    assert dina.get_json("/api/alarms")["alarms"] == []

    user_id = account_id(page, "dina")
    status, page = admin.post_form(f"/admin/users/{user_id}", {"role": "technician", "active": "1"})
    assert "Teknisi" in account_row(page, "dina")
    with pytest.raises(HTTPStatusError) as caught:  # a changed role ends the old session
        dina.get_json("/api/alarms")
    assert caught.value.status == 401

    admin.post_form(f"/admin/users/{user_id}", {"active": "0"})
    with pytest.raises(HTTPStatusError):
        signed_in(dashboard, ("dina", "dina-password-1"))  # a deactivated account cannot sign in

    admin.post_form(f"/admin/users/{user_id}", {"active": "1", "password": "a-new-password-2"})
    signed_in(dashboard, ("dina", "a-new-password-2"))

    _, text = admin.get_text("/admin/audit.csv?action=user.")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["action"] for row in rows] == ["user.updated", "user.updated", "user.updated", "user.created"]
    assert all(row["actor"] == ADMIN[0] and row["subject"] == "user:dina" for row in rows)
    assert json.loads(rows[2]["before"]) == {"role": "fire_operator"} and json.loads(rows[2]["after"]) == {
        "role": "technician"
    }
    assert "password_hash" not in text and "a-new-password-2" not in text


def test_an_administrator_makes_an_evaluator_who_reads_the_evaluation_and_nothing_else(
    dashboard: DashboardServer, admin: DashboardClient
) -> None:
    _status, page = admin.get_text("/admin/users")
    assert '<option value="evaluator">Evaluator</option>' in page  # offered in the form, named in the language
    status, page = admin.post_form(
        "/admin/users", {"username": "eva", "role": "evaluator", "password": "eva-password-12"}
    )
    assert status == 200 and "Evaluator" in account_row(page, "eva")
    eva = signed_in(dashboard, ("eva", "eva-password-12"))
    assert eva.get_text("/evaluation")[0] == 200 and eva.get_text("/open-data/")[0] == 200
    for path in ("/board", "/sapa", "/devices", "/stats", "/satpol/", "/admin/users", "/admin/audit", "/api/alarms"):
        assert eva.get_text(path)[0] == 403, path
    _, text = admin.get_text("/admin/audit.csv?action=user.created")
    [row] = [row for row in csv.DictReader(io.StringIO(text)) if row["subject"] == "user:eva"]
    assert json.loads(row["after"])["role"] == "evaluator"


def test_bad_account_changes_are_refused_with_a_reason(dashboard: DashboardServer, admin: DashboardClient) -> None:
    _status, page = admin.post_form("/admin/users", {"username": "x", "role": "fire_operator", "password": "short"})
    assert "at least 10 characters" in page
    _status, page = admin.post_form(
        "/admin/users", {"username": OPERATOR[0], "role": "fire_operator", "password": "long-enough-pw"}
    )
    assert "is taken" in page
    _status, page = admin.post_form("/admin/users", {"username": "y", "role": "king", "password": "long-enough-pw"})
    assert "unknown role" in page
    own = account_id(page, ADMIN[0])
    _, page = admin.post_form(f"/admin/users/{own}", {"role": "fire_operator"})
    assert "tidak dapat mengubah peran" in page
    _, page = admin.post_form(f"/admin/users/{own}", {"active": "0"})
    assert "tidak dapat menonaktifkan" in page
    assert admin.get_text("/admin/users/999999")[0] == 405
    assert admin.post_form("/admin/users/999999", {"active": "0"})[0] == 404


def test_only_administrators_reach_accounts_and_the_audit_log(
    dashboard: DashboardServer, operator: DashboardClient
) -> None:
    for path in ("/admin/users", "/admin/audit", "/admin/audit.csv"):
        assert operator.get_text(path)[0] == 403
        assert DashboardClient(dashboard.url).get_page(path)[1].count('name="password"') == 1  # to sign-in
    assert (
        operator.post_form("/admin/users", {"username": "z", "role": "admin", "password": "long-enough-pw"})[0] == 403
    )


def test_every_operator_action_is_audited_with_before_and_after(
    dashboard: DashboardServer, operator: DashboardClient, admin: DashboardClient, probe: Probe
) -> None:
    event = send(probe, make_event())
    alarm = wait_alarm(operator, lambda a: a["last_event_id"] == event.id)
    operator.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {"note": '=HYPERLINK("x")'})
    operator.post_json(f"/api/alarms/{alarm['id']}/dispatch", {"unit": "Damkar Pos Konda"})
    operator.post_json(f"/api/alarms/{alarm['id']}/resolve", {"resolution": "real", "rev": 2})
    _, text = admin.get_text("/admin/audit.csv?action=alarm.")
    rows = list(reversed(list(csv.DictReader(io.StringIO(text)))))
    assert [(r["action"], r["actor"], r["role"], r["subject"]) for r in rows] == [
        ("alarm.acknowledged", "operator", "fire_operator", f"alarm:{alarm['id']}"),
        ("alarm.dispatched", "operator", "fire_operator", f"alarm:{alarm['id']}"),
        ("alarm.resolved", "operator", "fire_operator", f"alarm:{alarm['id']}"),
    ]
    assert [json.loads(r["before"])["state"] for r in rows] == ["unacknowledged", "acknowledged", "dispatched"]
    assert [json.loads(r["after"])["state"] for r in rows] == ["acknowledged", "dispatched", "resolved"]
    assert json.loads(rows[1]["after"])["dispatch_unit"] == "Damkar Pos Konda"
    assert rows[0]["ip"] == "127.0.0.1"
    assert "'=HYPERLINK" not in rows[0]["after"]  # inside JSON the note cannot start a cell
    _, page = admin.get_text("/admin/audit?action=alarm.dispatched")
    assert page.count('data-action="alarm.dispatched"') == 1


def test_reads_of_sapa_data_are_logged_and_their_content_hidden_from_the_administrator(
    dashboard: DashboardServer, admin: DashboardClient, probe: Probe
) -> None:
    desk = signed_in(dashboard, SAPA_DESK)
    event = send(probe, make_event(button="sapa-btn", kind="sapa"))
    alarm = wait_alarm(desk, lambda a: a["last_event_id"] == event.id)
    desk.get_json(f"/api/alarms/{alarm['id']}")
    desk.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {"note": "korban anak, alamat rumah"})
    _, text = admin.get_text("/admin/audit.csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    reads = [r for r in rows if r["action"] == "sapa.read"]
    assert {r["subject"] for r in reads} >= {"alarms?state=all", "alarm (SAPA)"}  # which one: the desk's to know
    assert all(r["actor"] == SAPA_DESK[0] for r in reads)
    [ack] = [r for r in rows if r["action"] == "alarm.acknowledged"]
    assert ack["subject"] == "alarm (SAPA)" and "korban" not in text and "SAPA: hanya" in ack["after"]


def test_sign_in_is_rate_limited_per_account_and_names_the_wait(dashboard: DashboardServer) -> None:
    client = DashboardClient(dashboard.url)
    for _ in range(5):
        with pytest.raises(HTTPStatusError) as caught:
            client.login(OPERATOR[0], "wrong-password")
        assert caught.value.status == 401
    with pytest.raises(HTTPStatusError) as caught:
        client.login(OPERATOR[0], OPERATOR[1])  # even the right password waits now
    assert caught.value.status == 429 and "Terlalu banyak percobaan" in caught.value.body
    signed_in(dashboard, SAPA_DESK)  # another account is not locked out by it
    admin = signed_in(dashboard, ADMIN)
    _, text = admin.get_text("/admin/audit.csv?action=login.")
    actions = [row["action"] for row in csv.DictReader(io.StringIO(text)) if row["subject"] == "user:operator"]
    assert actions.count("login.failed") == 5 and actions.count("login.throttled") == 1


def test_anyone_changes_their_own_password_and_other_sessions_end(dashboard: DashboardServer) -> None:
    here = signed_in(dashboard, OPERATOR)
    elsewhere = signed_in(dashboard, OPERATOR)
    for fields, message in (
        ({"current": "wrong-password", "new": "a-new-password-9", "again": "a-new-password-9"}, "sekarang salah"),
        ({"current": OPERATOR[1], "new": "short", "again": "short"}, "minimal 10 karakter"),
        ({"current": OPERATOR[1], "new": "a-new-password-9", "again": "another-one-99"}, "tidak sama"),
    ):
        status, page = here.post_form("/account/password", fields)
        assert status == 400 and message in page
    status, page = here.post_form(
        "/account/password", {"current": OPERATOR[1], "new": "a-new-password-9", "again": "a-new-password-9"}
    )
    assert status == 200 and "Kata sandi diganti" in page
    assert here.get_json("/api/alarms")["alarms"] == []  # this session goes on
    with pytest.raises(HTTPStatusError) as caught:
        elsewhere.get_json("/api/alarms")  # the others end: a stolen session dies with the old password
    assert caught.value.status == 401
    with pytest.raises(HTTPStatusError):
        signed_in(dashboard, OPERATOR)
    signed_in(dashboard, (OPERATOR[0], "a-new-password-9"))
    _, text = signed_in(dashboard, ADMIN).get_text("/admin/audit.csv?action=user.password")
    assert [row["subject"] for row in csv.DictReader(io.StringIO(text))] == ["user:operator"]
