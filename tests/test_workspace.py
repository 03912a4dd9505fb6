"""The Satpol PP workspace: the queue, a report's details, the workflow, and the API key page."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dashboard.db import connect
from dashboard.reports import store
from dashboard.reports.intake import validate_report
from dashboard.reports.photos import clean_photo

from .reports_helpers import csrf, jpeg, make_app, report_fields, sign_in

DAY = 86400.0
BUILDING = {
    "service_code": "bangunan-tanpa-izin",
    "attribute[jenis_bangunan]": "ruko",
    "attribute[jenis_ternak][]": None,  # not a question of this category
}


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_app(tmp_path)


@pytest.fixture
def officer(app: Flask) -> FlaskClient:
    return sign_in(app, "satpol")


def seed(app: Flask, *, days_ago: float = 0.0, photo: bool = False, **fields: Any) -> str:
    report = validate_report(report_fields(**fields), app.config["SIAGA_CATALOGUE"], source="web")
    if photo:
        report.photos.append(clean_photo(jpeg()))
    conn = connect(app.config["DATABASE"])
    try:
        ticket, _ = store.create_report(
            conn, report, photos_dir=app.config["SIAGA_PHOTOS_DIR"], now=time.time() - days_ago * DAY
        )
    finally:
        conn.close()
    return ticket


def status_of(app: Flask, ticket: str) -> str:
    conn = connect(app.config["DATABASE"])
    try:
        return store.get_report(conn, ticket)["status"]
    finally:
        conn.close()


def queue_tickets(client: FlaskClient, query: str = "") -> list[str]:
    page = client.get(f"/satpol/{query}")
    assert page.status_code == 200
    return re.findall(r'data-ticket="([^"]+)"', page.get_data(as_text=True))


def move(client: FlaskClient, ticket: str, to: str, **fields: Any):
    page = client.get(f"/satpol/laporan/{ticket}").get_data(as_text=True)
    step = re.search(r'name="step" value="(\d+)"', page)
    data = {"to_status": to, "csrf_token": csrf(client, f"/satpol/laporan/{ticket}"), **fields}
    if step and "step" not in fields:
        data["step"] = step.group(1)
    return client.post(f"/satpol/laporan/{ticket}", data=data, follow_redirects=True)


# -- who may enter ------------------------------------------------------------------------------------


def test_officers_land_on_the_queue_after_signing_in(app: Flask) -> None:
    client = app.test_client()
    response = client.post(
        "/login", data={"username": "petugas", "password": "satpol-password-1", "csrf_token": csrf(client, "/login")}
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/satpol/")


@pytest.mark.parametrize("path", ["/satpol/", "/satpol/laporan/LAP-2026-000001", "/satpol/foto/1", "/admin/api-keys/"])
def test_anonymous_visitors_are_sent_to_sign_in(app: Flask, path: str) -> None:
    seed(app, photo=True)
    response = app.test_client().get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("role", ["fire_operator", "sapa_desk", "admin"])
def test_other_roles_never_see_reporters(app: Flask, role: str) -> None:
    ticket = seed(app, photo=True, name="Wa Ode Siti")
    client = sign_in(app, role)
    for path in ("/satpol/", f"/satpol/laporan/{ticket}", "/satpol/foto/1"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert b"Wa Ode Siti" not in response.data


# -- the queue ------------------------------------------------------------------------------------------


def test_the_queue_shows_open_reports_oldest_overdue_first(app: Flask, officer: FlaskClient) -> None:
    fresh = seed(app, days_ago=0.1)
    late_livestock = seed(app, days_ago=3)  # livestock: target 2 days
    late_building = seed(app, days_ago=20, **BUILDING)  # target 14 days
    not_late_building = seed(app, days_ago=5, **BUILDING)
    closed = seed(app, days_ago=30)
    conn = connect(app.config["DATABASE"])
    store.move_report(conn, closed, "rejected", resolution="duplicate", actor="t", note=None, public=False)
    conn.close()

    tickets = queue_tickets(officer)
    assert set(tickets) == {fresh, late_livestock, late_building, not_late_building}
    # Overdue first, the most overdue (age / target) at the top.
    assert tickets[:2] == [late_livestock, late_building]
    page = officer.get("/satpol/").get_data(as_text=True)
    assert page.count('class="overdue"') == 2 and page.count("⚠ LEWAT TARGET") == 2


def test_the_queue_filters(app: Flask, officer: FlaskClient) -> None:
    andoolo = seed(app, days_ago=1, area="Andoolo")
    konda = seed(app, days_ago=4, area="Konda")
    building = seed(app, area="Konda", **BUILDING)
    rejected = seed(app, area="Konda")
    conn = connect(app.config["DATABASE"])
    store.move_report(conn, rejected, "rejected", resolution="not_a_violation", actor="t", note=None, public=False)
    conn.close()

    assert set(queue_tickets(officer, "?area=Konda")) == {konda, building}
    assert queue_tickets(officer, "?category=bangunan-tanpa-izin") == [building]
    assert set(queue_tickets(officer, "?min_age_days=0.5")) == {andoolo, konda}
    assert queue_tickets(officer, "?overdue=1") == [konda]
    assert queue_tickets(officer, "?status=rejected") == [rejected]
    assert set(queue_tickets(officer, "?status=received&status=rejected")) == {andoolo, konda, building, rejected}
    # Nonsense filters are ignored, not errors.
    assert set(queue_tickets(officer, "?status=deleted&min_age_days=abc")) == {andoolo, konda, building}


# -- a report -----------------------------------------------------------------------------------------------


def test_an_officer_sees_everything_about_a_report(app: Flask, officer: FlaskClient) -> None:
    ticket = seed(
        app,
        photo=True,
        name="Wa Ode Siti",
        email="siti@example.id",
        phone="081234567890",
        description="Sapi <b>lepas</b>",
        **{"attribute[jenis_ternak][]": ["sapi", "kambing"], "attribute[jumlah]": "3"},
    )
    page = officer.get(f"/satpol/laporan/{ticket}").get_data(as_text=True)
    for fact in ("Wa Ode Siti", "siti@example.id", "081234567890", "Sapi &lt;b&gt;lepas&lt;/b&gt;", "Andoolo"):
        assert fact in page
    assert "Sapi, Kambing" in page  # answers by their names, not their codes
    assert "-4.349700, 122.378600" in page
    assert 'src="/satpol/foto/1"' in page
    photo = officer.get("/satpol/foto/1")
    assert photo.status_code == 200 and photo.mimetype == "image/jpeg"
    assert officer.get("/satpol/foto/99").status_code == 404
    assert officer.get("/satpol/laporan/LAP-2026-999999").status_code == 404


def test_an_anonymous_report_says_so(app: Flask, officer: FlaskClient) -> None:
    page = officer.get(f"/satpol/laporan/{seed(app)}").get_data(as_text=True)
    assert "Tanpa nama" in page


# -- the workflow ----------------------------------------------------------------------------------------------


def test_a_report_is_worked_to_done_with_an_audit_trail(app: Flask, officer: FlaskClient) -> None:
    ticket = seed(app)
    assert "Laporan diperbarui." in move(officer, ticket, "verified", note="Dicek di lokasi").get_data(as_text=True)
    assert status_of(app, ticket) == "verified"
    move(officer, ticket, "in_action", action="warning", note="Pemilik ditegur lisan.", public="1")
    move(officer, ticket, "in_action", action="written_warning", note="Surat teguran 1 diserahkan.", public="1")
    page = move(officer, ticket, "done", note="Sapi sudah dikandangkan.", public="1").get_data(as_text=True)
    assert status_of(app, ticket) == "done"
    # The officer's history: every step, who did it, internal notes marked.
    assert page.count("oleh petugas") == 4 and page.count("oleh web") == 1
    assert "Dicek di lokasi" in page and "(internal)" in page
    assert 'id="move"' not in page  # a closed report takes no more moves

    conn = connect(app.config["DATABASE"])
    row = store.get_report(conn, ticket)
    steps = store.history(conn, row["id"], public_only=False)
    conn.close()
    assert [(s["from_status"], s["to_status"], s["resolution"], s["actor"]) for s in steps] == [
        (None, "received", None, "web"),
        ("received", "verified", None, "petugas"),
        ("verified", "in_action", "warning", "petugas"),
        ("in_action", "in_action", "written_warning", "petugas"),
        ("in_action", "done", None, "petugas"),
    ]
    assert row["resolution"] == "written_warning"

    # The citizen sees each status and the public notes only.
    public = app.test_client().get(f"/lapor/{ticket}").get_data(as_text=True)
    assert "Surat teguran 1 diserahkan." in public and "Sapi sudah dikandangkan." in public
    assert "Dicek di lokasi" not in public and "petugas" not in public
    # Open311 apps see it closed, with the last public note.
    (request,) = app.test_client().get(f"/open311/v2/requests/{ticket}.json").json
    assert request["status"] == "closed" and request["status_notes"] == "Sapi sudah dikandangkan."


@pytest.mark.parametrize(
    ("to", "fields", "message"),
    [
        ("done", {}, "Perubahan status ini tidak diperbolehkan"),
        ("deleted", {}, "Perubahan status ini tidak diperbolehkan"),
        ("rejected", {}, "Pilih alasan penolakan."),
        ("rejected", {"rejection": "tidak_suka"}, "Pilih alasan penolakan."),
        ("verified", {"public": "1"}, "Catatan untuk pelapor tidak boleh kosong."),
        ("verified", {"note": "x" * 2001}, "Catatan paling panjang 2000 karakter."),
        ("verified", {"step": "0"}, "baru saja diubah petugas lain"),
    ],
)
def test_a_move_that_does_not_apply_is_refused_and_changes_nothing(
    app: Flask, officer: FlaskClient, to: str, fields: dict[str, str], message: str
) -> None:
    ticket = seed(app)
    page = move(officer, ticket, to, **fields).get_data(as_text=True)
    assert message in page and 'class="flash error"' in page
    assert status_of(app, ticket) == "received"
    conn = connect(app.config["DATABASE"])
    assert len(store.history(conn, store.get_report(conn, ticket)["id"], public_only=False)) == 1
    conn.close()


def test_a_second_officer_working_from_a_stale_page_is_stopped(app: Flask) -> None:
    ticket = seed(app)
    first, second = sign_in(app, "satpol"), sign_in(app, "satpol")
    stale = re.search(
        r'name="step" value="(\d+)"', second.get(f"/satpol/laporan/{ticket}").get_data(as_text=True)
    ).group(1)
    move(first, ticket, "verified", note="Benar, sapi di jalan.")
    # verified -> rejected is a legal move: only the stale page stops it.
    page = move(second, ticket, "rejected", rejection="duplicate", step=stale).get_data(as_text=True)
    assert "baru saja diubah petugas lain" in page
    assert status_of(app, ticket) == "verified"


def test_moves_need_the_csrf_token_and_an_existing_report(app: Flask, officer: FlaskClient) -> None:
    ticket = seed(app)
    assert officer.post(f"/satpol/laporan/{ticket}", data={"to_status": "verified"}).status_code == 400
    assert status_of(app, ticket) == "received"
    token = csrf(officer, f"/satpol/laporan/{ticket}")
    missing = officer.post("/satpol/laporan/LAP-2026-999999", data={"to_status": "verified", "csrf_token": token})
    assert missing.status_code == 404


def test_the_workspace_speaks_english_on_request(app: Flask, officer: FlaskClient) -> None:
    ticket = seed(app)
    page = officer.get(f"/satpol/laporan/{ticket}?lang=en").get_data(as_text=True)
    assert "Livestock roaming the roads" in page
    assert "Received" in page
    refused = move(officer, ticket, "rejected").get_data(as_text=True)
    assert "Choose the reason for rejecting." in refused


# -- API keys ---------------------------------------------------------------------------------------------------


def test_an_administrator_issues_a_key_shown_once_and_revokes_it(app: Flask) -> None:
    admin = sign_in(app, "admin")
    token = csrf(admin, "/admin/api-keys/")
    page = admin.post("/admin/api-keys/", data={"name": "Aplikasi LAPOR Konsel", "csrf_token": token})
    assert page.status_code == 200
    key = re.search(r'id="new-key">([^<]+)<', page.get_data(as_text=True)).group(1)
    assert key.startswith("siaga_")
    listing = admin.get("/admin/api-keys/").get_data(as_text=True)
    assert "Aplikasi LAPOR Konsel" in listing and key not in listing and key[:12] in listing

    citizen_app = app.test_client()
    fields = {**report_fields(), "api_key": key}
    assert citizen_app.post("/open311/v2/requests.json", data=fields).status_code == 201

    duplicate = admin.post(
        "/admin/api-keys/", data={"name": "Aplikasi LAPOR Konsel", "csrf_token": token}, follow_redirects=True
    )
    assert "Nama kunci itu sudah dipakai." in duplicate.get_data(as_text=True)
    empty = admin.post("/admin/api-keys/", data={"name": "  ", "csrf_token": token}, follow_redirects=True)
    assert "Nama kunci wajib diisi" in empty.get_data(as_text=True)

    key_id = re.search(r"/admin/api-keys/(\d+)/revoke", listing).group(1)
    admin.post(f"/admin/api-keys/{key_id}/revoke", data={"csrf_token": token})
    refused = citizen_app.post("/open311/v2/requests.json", data=fields)
    assert refused.status_code == 403


@pytest.mark.parametrize("role", ["satpol", "fire_operator", "sapa_desk"])
def test_only_administrators_manage_keys(app: Flask, role: str) -> None:
    client = sign_in(app, role)
    assert client.get("/admin/api-keys/").status_code == 403
    token = csrf(client, "/lapor")
    assert client.post("/admin/api-keys/", data={"name": "x", "csrf_token": token}).status_code == 403


def test_an_upload_on_the_move_form_is_not_accepted(app: Flask, officer: FlaskClient) -> None:
    # The workspace takes no files: a large body to a move is refused before it is read.
    ticket = seed(app)
    token = csrf(officer, f"/satpol/laporan/{ticket}")
    response = officer.post(
        f"/satpol/laporan/{ticket}",
        data={"to_status": "verified", "csrf_token": token, "f": (io.BytesIO(b"\0" * (2 * 1024 * 1024)), "a.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    assert status_of(app, ticket) == "received"
