"""The citizens' report form and tracking page: what a person with a phone sees and sends."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from dashboard.db import connect, dialect
from dashboard.reports import store

from .reports_helpers import csrf, jpeg, make_app, png, report_fields, sign_in

SVG = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"
GPS_IFD = 0x8825
MAKE, ORIENTATION = 0x010F, 0x0112


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_app(tmp_path)


def send(client: FlaskClient, photos: list[tuple[bytes, str]] | None = None, **fields: Any):
    data: dict[str, Any] = {**report_fields(**fields), "csrf_token": csrf(client)}
    if photos:
        data["photos"] = [(io.BytesIO(content), name) for content, name in photos]
    return client.post("/lapor", data=data, content_type="multipart/form-data")


def reports_in(app: Flask) -> list[Any]:
    conn = connect(app.config["DATABASE"])
    try:
        return conn.execute("SELECT * FROM reports ORDER BY id").fetchall()
    finally:
        conn.close()


def stored_photos(app: Flask) -> list[Path]:
    return sorted(Path(app.config["SIAGA_PHOTOS_DIR"]).rglob("*.jpg"))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge image: a decompression bomb's first step."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (20, 20)).save(out, "GIF")
    return out.getvalue()


# -- the form ------------------------------------------------------------------------------------


def test_the_form_speaks_bahasa_indonesia_by_default_and_english_on_request(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/lapor").get_data(as_text=True)
    assert "Laporkan Pelanggaran Perda/Perkada" in page and "Kirim laporan" in page
    assert '<html lang="id">' in page
    english = client.get("/lapor?lang=en").get_data(as_text=True)
    assert "Report a violation of a regional regulation" in english and "Send the report" in english
    # The choice sticks for the rest of the visit.
    assert "Send the report" in client.get("/lapor").get_data(as_text=True)


def test_the_form_offers_every_category_its_questions_and_every_district(app: Flask) -> None:
    page = app.test_client().get("/lapor").get_data(as_text=True)
    catalogue = app.config["SIAGA_CATALOGUE"]
    for category in catalogue.categories:
        assert f'<option value="{category.code}"' in page
        for attribute in category.attributes:
            assert f'name="attribute[{attribute.code}]' in page
    for area in catalogue.areas:
        assert f"<option >{area}</option>" in page or f"<option>{area}</option>" in page
    assert 'accept="image/jpeg,image/png,image/webp"' in page
    assert 'enctype="multipart/form-data"' in page


def test_a_post_without_the_csrf_token_is_refused(app: Flask) -> None:
    response = app.test_client().post("/lapor", data=report_fields())
    assert response.status_code == 400
    assert reports_in(app) == []


# -- a good report ---------------------------------------------------------------------------------


def test_a_report_with_photos_gets_a_ticket_only_once_stored(app: Flask) -> None:
    client = app.test_client()
    exif = {MAKE: "SpyCam", ORIENTATION: 6, GPS_IFD: {1: "S", 2: (4.0, 20.0, 59.0), 3: "E", 4: (122.0, 22.0, 43.0)}}
    response = send(
        client,
        photos=[(jpeg(640, 480, exif=exif), "IMG_0001.jpg"), (png(300, 200), "layar.png")],
        name="Wa Ode Siti",
        email="siti@example.id",
        phone="0812-3456-7890",
    )
    assert response.status_code == 303
    (row,) = reports_in(app)
    ticket = row["ticket"]
    assert ticket.startswith("LAP-") and response.headers["Location"].endswith(f"/lapor/{ticket}?new=1")
    assert row["status"] == "received" and row["source"] == "web"
    assert row["reporter_name"] == "Wa Ode Siti" and row["reporter_phone"] == "0812-3456-7890"
    assert row["lat"] == pytest.approx(-4.3497) and row["area"] == "Andoolo"

    receipt = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Terima kasih. Laporan Anda sudah tersimpan." in receipt
    assert f'<p class="ticket" id="ticket">{ticket}</p>' in receipt
    assert "Diterima" in receipt


def test_photos_are_stored_as_plain_jpegs_without_location_or_camera(app: Flask) -> None:
    exif = {MAKE: "SpyCam", ORIENTATION: 6, GPS_IFD: {1: "S", 2: (4.0, 20.0, 59.0), 3: "E", 4: (122.0, 22.0, 43.0)}}
    big = jpeg(4000, 3000)
    response = send(
        app.test_client(), photos=[(jpeg(640, 480, exif=exif), "a.jpg"), (png(300, 200), "b.png"), (big, "c.jpg")]
    )
    assert response.status_code == 303
    files = stored_photos(app)
    assert [f.name for f in files] == ["1.jpg", "2.jpg", "3.jpg"]
    sizes = []
    for path in files:
        data = path.read_bytes()
        assert b"SpyCam" not in data and b"Exif" not in data
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert not image.getexif() and "icc_profile" not in image.info
            sizes.append(image.size)
    # Turned the way the camera was held, then EXIF dropped; large photos scaled to 1600 px.
    assert sizes == [(480, 640), (300, 200), (1600, 1200)]
    conn = connect(app.config["DATABASE"])
    rows = conn.execute("SELECT position, width, height, bytes FROM report_photos ORDER BY position").fetchall()
    conn.close()
    assert [(r["width"], r["height"]) for r in rows] == sizes
    assert [r["bytes"] for r in rows] == [f.stat().st_size for f in files]


def test_answers_to_another_categorys_questions_are_dropped_not_refused(app: Flask) -> None:
    # Without JavaScript every question is on the page; the citizen first chose buildings.
    response = send(app.test_client(), **{"attribute[jenis_bangunan]": "ruko", "attribute[jumlah]": "3"})
    assert response.status_code == 303
    (row,) = reports_in(app)
    assert store.json.loads(row["attributes"]) == {"jenis_ternak": ["sapi"], "jumlah": 3.0}


def test_an_address_alone_is_enough_and_the_reporter_may_stay_anonymous(app: Flask) -> None:
    response = send(app.test_client(), lat=None, long=None, address_string="Depan pasar Lapuko")
    assert response.status_code == 303
    (row,) = reports_in(app)
    assert row["lat"] is None and row["address"] == "Depan pasar Lapuko"
    assert row["reporter_name"] is None and row["reporter_email"] is None and row["reporter_phone"] is None


# -- bad input: a clear message, the form back as it was, nothing stored ---------------------------


@pytest.mark.parametrize(
    ("fields", "message", "counter"),
    [
        ({"service_code": None}, "Pilih jenis pelanggaran.", "error_category"),
        ({"service_code": "judi-online"}, "Pilih jenis pelanggaran.", "error_category"),
        ({"lat": None, "long": None}, "Lokasi wajib diisi", "error_location"),
        ({"lat": "91", "long": "122.4"}, "Koordinat tidak valid", "error_coordinates"),
        ({"lat": "-4.3", "long": "abc"}, "Koordinat tidak valid", "error_coordinates"),
        ({"lat": "nan", "long": "122.4"}, "Koordinat tidak valid", "error_coordinates"),
        ({"long": None}, "Koordinat tidak valid", "error_coordinates"),
        ({"description": "x" * 4001}, "Isian terlalu panjang.", "error_too_long"),
        ({"email": "bukan-email"}, "Alamat e-mail tidak valid.", "error_email"),
        ({"phone": "telepon saya"}, "Nomor HP tidak valid.", "error_phone"),
        ({"attribute[jenis_ternak][]": None}, "Ada pertanyaan wajib yang belum dijawab.", "error_required"),
        ({"attribute[jenis_ternak][]": ["unta"]}, "Ada isian yang tidak valid.", "error_invalid"),
        ({"area": "Jakarta Selatan"}, "Ada isian yang tidak valid.", "error_invalid"),
        ({"attribute[jumlah]": "banyak"}, "Ada isian yang tidak valid.", "error_invalid"),
    ],
)
def test_a_bad_field_is_named_and_the_form_comes_back_filled(
    app: Flask, fields: dict[str, Any], message: str, counter: str
) -> None:
    fields.setdefault("description", "Sapi di jalan <b>poros</b>")
    response = send(app.test_client(), **fields)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page and 'role="alert"' in page
    if len(fields["description"]) < 100:
        assert "Sapi di jalan &lt;b&gt;poros&lt;/b&gt;</textarea>" in page  # kept, and escaped
    assert reports_in(app) == []
    assert app.extensions["siaga.reports"].counters.get(f"form.refused.{counter.removeprefix('error_')}") == 1


def test_the_error_speaks_english_to_an_english_reader(app: Flask) -> None:
    client = app.test_client()
    client.get("/lapor?lang=en")
    response = send(client, lat=None, long=None)
    assert response.status_code == 400
    assert "A location is required" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("content", "name", "message", "reason"),
    [
        (b"", "kosong.jpg", "Berkas foto kosong.jpg kosong.", "photo_empty"),
        (gif(), "animasi.gif", "animasi.gif bukan foto JPEG, PNG atau WebP.", "photo_format"),
        (
            b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
            "x.svg",
            "x.svg bukan foto yang",
            "photo_not_image",
        ),
        (b"%PDF-1.7\n" + b"0" * 2000, "surat.jpg", "surat.jpg bukan foto yang dapat dibaca.", "photo_not_image"),
        (jpeg(800, 600)[:1500], "putus.jpg", "Foto putus.jpg rusak atau tidak lengkap.", "photo_damaged"),
        (
            png_claiming(7000, 7000),
            "besar-piksel.png",
            "Foto besar-piksel.png terlalu besar (jumlah piksel).",
            "photo_too_many_pixels",
        ),
        (png_claiming(20000, 20000), "bom.png", "Foto bom.png terlalu besar (jumlah piksel).", "photo_too_many_pixels"),
        (
            b"\xff\xd8\xff" + b"\0" * (8 * 1024 * 1024),
            "besar.jpg",
            "Foto besar.jpg lebih dari 8 MB.",
            "photo_too_large",
        ),
    ],
    ids=["empty", "gif", "svg", "pdf", "truncated", "many-pixels", "bomb", "too-large"],
)
def test_a_file_that_is_not_a_usable_photo_is_refused_by_name(
    app: Flask, content: bytes, name: str, message: str, reason: str
) -> None:
    response = send(app.test_client(), photos=[(jpeg(), "baik.jpg"), (content, name)])
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert reports_in(app) == [] and stored_photos(app) == []
    assert app.extensions["siaga.reports"].counters.get(f"form.refused.{reason}") == 1


def test_at_most_three_photos(app: Flask) -> None:
    response = send(app.test_client(), photos=[(jpeg(), f"{n}.jpg") for n in range(4)])
    assert response.status_code == 400
    assert "Paling banyak 3 foto." in response.get_data(as_text=True)
    assert reports_in(app) == []


def test_a_form_too_large_to_read_gets_a_message_in_the_citizens_language(app: Flask) -> None:
    client = app.test_client()
    token = csrf(client)
    huge = [(io.BytesIO(b"\0" * (9 * 1024 * 1024)), f"{n}.jpg") for n in range(3)]
    response = client.post(
        "/lapor", data={**report_fields(), "csrf_token": token, "photos": huge}, content_type="multipart/form-data"
    )
    assert response.status_code == 413
    assert "Foto-foto terlalu besar" in response.get_data(as_text=True)
    assert reports_in(app) == []
    # Elsewhere the ordinary, small limit still applies.
    assert client.post("/login", data={"username": "x" * (2 * 1024 * 1024)}).status_code == 413


def test_the_form_is_rate_limited_per_device(tmp_path: Path) -> None:
    app = make_app(tmp_path, SIAGA_FORM_RATE=(3, 600))
    client = app.test_client()
    assert [send(client).status_code for _ in range(3)] == [303, 303, 303]
    refused = send(client)
    assert refused.status_code == 429
    assert "Terlalu banyak laporan dari perangkat ini" in refused.get_data(as_text=True)
    assert len(reports_in(app)) == 3
    assert app.extensions["siaga.reports"].counters.get("form.rate_limited") == 1


# -- tracking ----------------------------------------------------------------------------------------


def submit(app: Flask, **fields: Any) -> str:
    response = send(app.test_client(), **fields)
    assert response.status_code == 303
    return response.headers["Location"].split("/lapor/")[1].split("?")[0]


def test_the_tracking_page_never_shows_who_reported_or_internal_notes(app: Flask) -> None:
    ticket = submit(app, name="Wa Ode Siti", email="siti@example.id", phone="081234567890")
    conn = connect(app.config["DATABASE"])
    store.move_report(
        conn, ticket, "verified", resolution=None, actor="petugas", note="Pelapor tetangga pemilik", public=False
    )
    store.move_report(
        conn, ticket, "in_action", resolution="warning", actor="petugas", note="Pemilik sudah ditegur.", public=True
    )
    conn.close()
    page = app.test_client().get(f"/lapor/{ticket}").get_data(as_text=True)
    for secret in ("Wa Ode Siti", "siti@example.id", "081234567890", "Pelapor tetangga", "petugas"):
        assert secret not in page
    assert "Pemilik sudah ditegur." in page
    # Every status change is listed, even one whose note was internal.
    assert page.count("<li>") == 3 and "Terverifikasi" in page


def test_what_the_citizen_wrote_is_shown_as_text_not_markup(app: Flask) -> None:
    ticket = submit(app, description='<script>alert("x")</script><img src=x onerror=alert(1)>')
    page = app.test_client().get(f"/lapor/{ticket}").get_data(as_text=True)
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


def test_looking_up_a_ticket(app: Flask) -> None:
    ticket = submit(app)
    client = app.test_client()
    found = client.get(f"/lacak?ticket=%20{ticket.lower()}%20")
    assert found.status_code == 302 and found.headers["Location"].endswith(f"/lapor/{ticket}")
    missing = client.get("/lapor/LAP-2026-999999")
    assert missing.status_code == 404 and "LAP-2026-999999" in missing.get_data(as_text=True)
    assert client.get("/lacak").status_code == 200


def test_photos_are_for_staff_unless_the_regency_publishes_them(tmp_path: Path) -> None:
    private = make_app(tmp_path / "private")
    ticket = submit_with_photo(private)
    assert private.test_client().get("/lapor/foto/1").status_code == 404
    assert "/foto/" not in private.test_client().get(f"/lapor/{ticket}").get_data(as_text=True)
    assert private.test_client().get("/satpol/foto/1").status_code == 302  # to the sign-in page

    public = make_app(tmp_path / "public", SIAGA_PUBLIC_PHOTOS=True)
    ticket = submit_with_photo(public)
    page = public.test_client().get(f"/lapor/{ticket}").get_data(as_text=True)
    assert 'src="/lapor/foto/1"' in page
    photo = public.test_client().get("/lapor/foto/1")
    assert photo.status_code == 200 and photo.mimetype == "image/jpeg" and photo.data.startswith(b"\xff\xd8")


def submit_with_photo(app: Flask) -> str:
    response = send(app.test_client(), photos=[(jpeg(), "a.jpg")])
    assert response.status_code == 303
    return response.headers["Location"].split("/lapor/")[1].split("?")[0]


def test_reports_and_photos_survive_a_restart(tmp_path: Path) -> None:
    first = make_app(tmp_path)
    ticket = submit_with_photo(first)
    again = make_app(tmp_path)
    page = again.test_client().get(f"/lapor/{ticket}").get_data(as_text=True)
    assert ticket in page
    staff = sign_in(again, "satpol")
    photo = staff.get("/satpol/foto/1")
    assert photo.status_code == 200 and photo.data == stored_photos(again)[0].read_bytes()
    # Numbering continues instead of reusing the ticket.
    assert submit(again) > ticket


def test_administrators_see_the_form_counters(app: Flask) -> None:
    submit(app)
    send(app.test_client(), photos=[(gif(), "a.gif")])
    diagnostics = sign_in(app, "admin").get("/api/diagnostics").json
    assert diagnostics["reports"]["form.received"] == 1
    assert diagnostics["reports"]["form.refused.photo_format"] == 1


def test_behind_a_trusted_proxy_each_citizen_has_their_own_limit(tmp_path: Path) -> None:
    direct = make_app(tmp_path / "direct", SIAGA_FORM_RATE=(1, 600))
    client = direct.test_client()
    assert send(client).status_code == 303
    # Without a trusted proxy a forged header buys nothing.
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.9"
    assert send(client).status_code == 429

    proxied = make_app(tmp_path / "proxied", SIAGA_FORM_RATE=(1, 600), SIAGA_TRUSTED_PROXIES=1)
    statuses = []
    for address in ("203.0.113.7", "203.0.113.8", "203.0.113.7"):
        client = proxied.test_client()
        client.environ_base["HTTP_X_FORWARDED_FOR"] = address
        statuses.append(send(client).status_code)
    assert statuses == [303, 303, 429]


def test_a_report_that_cannot_be_stored_leaves_no_photo_behind(app: Flask) -> None:
    from dashboard.reports.intake import validate_report
    from dashboard.reports.photos import clean_photo

    report = validate_report(report_fields(), app.config["SIAGA_CATALOGUE"], source="web")
    report.photos.extend([clean_photo(jpeg()), clean_photo(png())])
    conn = connect(app.config["DATABASE"])
    if dialect(conn) == "sqlite":
        conn.execute("CREATE TEMP TRIGGER fail BEFORE INSERT ON report_history BEGIN SELECT RAISE(ABORT, 'disk'); END")
    else:  # the test's own schema: dropped with it
        conn.execute("CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE 'disk'; END $$")
        conn.execute("CREATE TRIGGER fail BEFORE INSERT ON report_history FOR EACH ROW EXECUTE FUNCTION fail()")
    with pytest.raises(Exception, match="disk"):
        store.create_report(conn, report, photos_dir=app.config["SIAGA_PHOTOS_DIR"])
    conn.close()
    assert reports_in(app) == []
    photos = Path(app.config["SIAGA_PHOTOS_DIR"])
    assert [p for p in photos.rglob("*") if p.is_file() or p.parent != photos] == []
