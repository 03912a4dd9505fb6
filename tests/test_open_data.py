"""Open data: a closed period's datasets as CSV and JSON whose Data Package validates them, at stable URLs."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import frictionless
import pytest
from flask import Flask
from flask.testing import FlaskClient

from dashboard.accounts.auth import create_user
from dashboard.db import connect
from dashboard.evaluation import build, opendata
from dashboard.evaluation.model import SUPPRESSED, Column, ColumnType, Report, Section, Table, Unit
from dashboard.evaluation.period import Granularity, Period
from dashboard.evaluation.settings import EvaluationSettings
from dashboard.reports import store as reports

from .reports_helpers import csrf, make_app, sign_in
from .waiting import poll_until

WITA = ZoneInfo("Asia/Makassar")
QUARTER = "2025-Q3"
EVALUATOR = ("penilai", "evaluator-password-1")
SAPA_BUTTON, SAPA_GATEWAY, SAPA_KECAMATAN = "sapa-qv7-button", "gw-qv7-gateway", "Kecamatan Qv7"


def wita(month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(2025, month, day, hour, minute, tzinfo=WITA).timestamp()


# -- the serialisation, on a report made by hand ------------------------------------------------------


def hand_made_report() -> Report:
    """Two tables: counts with a suppressed cell and a total row, and times with no figure and a float."""
    counts = Table(
        "sapa-test-counts",
        "evaluation_open_data_col_dataset",
        "evaluation_open_data_empty_cells",
        (
            Column("month", "evaluation_open_data_months", ColumnType.STRING),
            Column("alarms", "evaluation_open_data_col_files", unit=Unit.ALARMS),
        ),
        rows=[("2025-07", 7), ("2025-08", SUPPRESSED), ("2025-09", 0), ("total", SUPPRESSED)],
        total=True,
        note_keys=("evaluation_note_suppressed",),
    )
    times = Table(
        "fire-test-times",
        "evaluation_open_data_col_title",
        "evaluation_open_data_col_definition",
        (
            Column("place", "evaluation_open_data_col_title", ColumnType.STRING),
            Column("median_min", "evaluation_open_data_col_definition", ColumnType.NUMBER, Unit.MINUTES),
            Column("alarms", "evaluation_open_data_col_files", unit=Unit.ALARMS),
        ),
        rows=[("Andoolo", 2.5, 3), ("=cmd|' /C calc'!A0", None, 0), ("Konda, Utara", 12345678.0, 10)],
    )
    hidden = Table("fire-not-open", "evaluation_open_data_title", "evaluation_open_data_intro", (), open_data=False)
    period = Period.parse(QUARTER)
    return Report(
        period=period,
        generated_at=period.end + 86400,
        data_until=period.end,
        version="9.9.9",
        suppression_threshold=5,
        sections=[Section("x", "evaluation_open_data_title", "evaluation_open_data_intro", [counts, times, hidden])],
        meta={
            "producer": "Pemerintah Kabupaten Konawe Selatan",
            "region_code": "74.05",
            "region_name": "Kabupaten Konawe Selatan",
            "licence": "CC-BY-4.0",
            "licence_url": "https://creativecommons.org/licenses/by/4.0/",
        },
    )


def test_a_csv_is_rfc_4180_with_codes_dots_and_empty_cells() -> None:
    report = hand_made_report()
    assert [table.id for table in opendata.datasets(report)] == ["sapa-test-counts", "fire-test-times"]
    counts, times = opendata.datasets(report)
    assert opendata.csv_text(counts) == "month,alarms\r\n2025-07,7\r\n2025-08,\r\n2025-09,0\r\ntotal,\r\n"
    # A comma is quoted, a float has a dot and no exponent, None is empty, a formula is defused.
    assert opendata.csv_text(times) == (
        "place,median_min,alarms\r\nAndoolo,2.5,3\r\n'=cmd|' /C calc'!A0,,0\r\n\"Konda, Utara\",12345678.0,10\r\n"
    )
    assert opendata.json_rows(counts)[1] == {"month": "2025-08", "alarms": None}
    assert opendata.suppressed_positions(counts) == [[1, "alarms"], [3, "alarms"]]
    assert opendata.suppressed_positions(times) == []


def test_a_value_not_of_its_column_type_is_an_error_not_a_bad_file() -> None:
    table = Table("t", "a", "b", (Column("n", "c"),), rows=[(1.5,)])
    with pytest.raises(TypeError, match="dataset t, column n"):
        opendata.csv_text(table)
    with pytest.raises(TypeError):
        opendata.json_rows(Table("t", "a", "b", (Column("n", "c"),), rows=[(True,)]))


def test_the_metadata_of_a_dataset_names_its_fields_units_and_hidden_cells() -> None:
    report = hand_made_report()
    published = opendata.publish(report)
    assert sorted(published.files) == [
        "datapackage.json",
        "fire-test-times.csv",
        "fire-test-times.json",
        "sapa-test-counts.csv",
        "sapa-test-counts.json",
    ]
    package = json.loads(published.files["datapackage.json"])
    assert package["name"] == "siaga-evaluation-2025-q3" and package["profile"] == "tabular-data-package"
    assert package["licenses"] == [{"name": "CC-BY-4.0", "path": "https://creativecommons.org/licenses/by/4.0/"}]
    assert package["kode_wilayah"] == "74.05" and package["produsen_data"] == "Pemerintah Kabupaten Konawe Selatan"
    # 2025-Q3 is 2025-07-01 to 2025-09-30; its figures are final from 2025-10-01 00:00 WITA, and its files are
    # served from a day later, 2025-10-02 00:00 WITA: the day they are made.
    assert package["periode"] == {
        "kode": "2025-Q3",
        "granularitas": "quarter",
        "mulai": "2025-07-01",
        "selesai": "2025-09-30",
        "zona_waktu": "Asia/Makassar",
    }
    assert package["tanggal_pembuatan"] == "2025-10-02" and package["created"] == "2025-10-02T00:00:00+08:00"
    counts = package["resources"][0]
    assert counts["path"] == "sapa-test-counts.csv" and counts["suppressed_cells"] == 2 and counts["total_row"]
    assert counts["schema"]["missingValues"] == [""]
    assert [(f["name"], f["type"], f.get("unit")) for f in counts["schema"]["fields"]] == [
        ("month", "string", None),
        ("alarms", "integer", "alarms"),
    ]
    assert "1 to 4" in counts["schema"]["fields"][1]["description"] and "1 sampai 4" in counts["catatan"]
    times = package["resources"][1]
    assert times["suppressed_cells"] == 0 and "hidden" not in times["note"]
    assert times["judul"] == "Judul" and times["title"] == "Title"  # the table's title key, in both languages
    document = json.loads(published.files["sapa-test-counts.json"])
    assert document["metadata"] == counts
    assert document["suppressed"] == [[1, "alarms"], [3, "alarms"]]


def test_a_hand_made_package_validates_with_frictionless(tmp_path: Path) -> None:
    for name, body in opendata.publish(hand_made_report()).files.items():
        (tmp_path / name).write_bytes(body)
    result = frictionless.validate(str(tmp_path / "datapackage.json"))
    assert result.valid, result.flatten(["rowNumber", "fieldName", "type", "note"])
    # The validator is not lenient: a CSV changed after its metadata was written fails.
    (tmp_path / "sapa-test-counts.csv").write_bytes(b"month,alarms\r\n2025-07,7.5\r\n")
    assert not frictionless.validate(str(tmp_path / "datapackage.json")).valid


# -- a seeded store, through HTTP ----------------------------------------------------------------------


def seed(conn: sqlite3.Connection, photos: Path) -> None:
    """2025-Q3: fire alarms in two kecamatan, SAPA alarms 7 / 2 / 0 by month, a gateway outage, two reports."""
    buttons = [
        ("fire-a", "gw-a", "fire", "Andoolo"),
        ("fire-b", "gw-a", "fire", "Konda"),
        (SAPA_BUTTON, SAPA_GATEWAY, "sapa", SAPA_KECAMATAN),
    ]
    for button, gw, kind, kecamatan in buttons:
        conn.execute(
            "INSERT INTO buttons (id, gw, kind, transport, site_name, lat, lon, label, updated_at, kecamatan)"
            " VALUES (?, ?, ?, 'gpio', 'Pasar', -4.35, 122.38, 'Blok', ?, ?)",
            (button, gw, kind, wita(6, 1), kecamatan),
        )
    numbers = {"fire": 0, "sapa": 0}

    def alarm(button: str, kind: str, opened: float, acknowledged: float | None = None, test: int = 0) -> None:
        """Resolved an hour after opening (one button has one open alarm at most)."""
        numbers[kind] += 1
        number = numbers[kind]
        conn.execute(
            "INSERT INTO alarms (id, number, button, gw, kind, state, first_event_id, last_event_id, first_press_ts,"
            " opened_at, last_press_at, acknowledged_at, test, resolved_at, resolution)"
            " VALUES (?, ?, ?, 'gw-a', ?, 'resolved', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                16 * number + (1 if kind == "fire" else 2),
                number,
                button,
                kind,
                f"ev-{kind}-{number}",
                f"ev-{kind}-{number}",
                "2025-07-01T00:00:00+08:00",
                opened,
                opened,
                acknowledged,
                test,
                opened + 3600,
                "test" if test else "real",
            ),
        )

    alarm("fire-a", "fire", wita(7, 3, 9), wita(7, 3, 9, 2))
    alarm("fire-a", "fire", wita(7, 20, 9))
    alarm("fire-b", "fire", wita(8, 5, 14), wita(8, 5, 14, 4))
    alarm("fire-b", "fire", wita(8, 6, 14), test=1)  # a test: counted in no kecamatan
    for day in range(1, 8):
        alarm(SAPA_BUTTON, "sapa", wita(7, day, 10), wita(7, day, 10, 3))
    alarm(SAPA_BUTTON, "sapa", wita(8, 10, 10))
    alarm(SAPA_BUTTON, "sapa", wita(8, 11, 10))
    conn.execute(
        "INSERT INTO troubles (key, type, gw, kind, detail, began_at, detected_at, cleared_at)"
        " VALUES ('gateway_offline:gw-a', 'gateway_offline', 'gw-a', NULL, 'offline', ?, ?, ?)",
        (wita(8, 1, 10), wita(8, 1, 10), wita(8, 1, 12)),
    )
    conn.commit()
    for day, area in ((4, "Andoolo"), (9, "Konda")):
        new = reports.NewReport("ternak-berkeliaran", "Sapi di jalan", -4.35, 122.38, "Jl. Poros", area=area)
        reports.create_report(conn, new, photos_dir=photos, now=wita(7, day, 8))


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    app = make_app(tmp_path)
    conn = connect(app.config["DATABASE"])
    try:
        seed(conn, tmp_path / "photos")
    finally:
        conn.close()
    return app


def fetch_all(client: FlaskClient, period: str = QUARTER) -> dict[str, bytes]:
    """The period's data package and every file it lists, CSV and JSON."""
    response = client.get(f"/open-data/{period}/datapackage.json")
    assert response.status_code == 200, response.data[:300]
    files = {"datapackage.json": response.data}
    for resource in json.loads(response.data)["resources"]:
        for suffix in (".csv", ".json"):
            name = resource["name"] + suffix
            got = client.get(f"/open-data/{period}/{name}")
            assert got.status_code == 200, (name, got.data[:300])
            files[name] = got.data
    return files


def csv_rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))


def typed(value: str, field: dict[str, Any]) -> Any:
    """A CSV cell read as its schema field says: empty is null, else an integer, a number or a string."""
    if value == "":
        return None
    return {"integer": int, "number": float}.get(field["type"], str)(value)


def test_every_file_of_a_closed_quarter_validates_against_its_own_metadata(app: Flask, tmp_path: Path) -> None:
    files = fetch_all(app.test_client())
    folder = tmp_path / "harvested"
    folder.mkdir()
    for name, body in files.items():
        (folder / name).write_bytes(body)
    package = json.loads(files["datapackage.json"])
    names = [resource["name"] for resource in package["resources"]]
    assert {"fire-alarms-by-kecamatan", "sapa-alarms-by-month", "perda-reports-by-category"} <= set(names)
    assert all(name.startswith(("fire-", "sapa-", "perda-")) for name in names)
    assert "fire-availability" not in names, "its rows name gateways: the signed-in report only"
    result = frictionless.validate(str(folder / "datapackage.json"))
    assert result.valid, result.flatten(["resourceName", "rowNumber", "fieldName", "type", "note"])
    # Each JSON's metadata is its resource's; its data is the CSV read by the schema's types.
    for resource in package["resources"]:
        document = json.loads(files[resource["name"] + ".json"])
        assert document["metadata"] == resource
        fields = resource["schema"]["fields"]
        header = next(csv.reader(io.StringIO(files[resource["name"] + ".csv"].decode("utf-8"), newline="")))
        assert header == [field["name"] for field in fields]
        rows = csv_rows(files[resource["name"] + ".csv"])
        assert document["data"] == [{f["name"]: typed(row[f["name"]], f) for f in fields} for row in rows]
        assert resource["suppressed_cells"] == len(document["suppressed"])


def test_the_figures_are_the_seeded_ones(app: Flask) -> None:
    files = fetch_all(app.test_client())
    sapa = csv_rows(files["sapa-alarms-by-month.csv"])
    # July 7 alarms, all acknowledged (7 of 7, none left: shown); August 2 (1 to 4: hidden, and so are its
    # acknowledged 0, whose rest is 2); September 0; the total includes August, so it is hidden too.
    assert [(r["month"], r["alarms"], r["acknowledged"]) for r in sapa] == [
        ("2025-07", "7", "7"),
        ("2025-08", "", ""),
        ("2025-09", "0", "0"),
        ("total", "", ""),
    ]
    document = json.loads(files["sapa-alarms-by-month.json"])
    assert document["suppressed"] == [[1, "alarms"], [1, "acknowledged"], [3, "alarms"], [3, "acknowledged"]]
    assert document["metadata"]["suppressed_cells"] == 4
    fire = {r["kecamatan"]: r for r in csv_rows(files["fire-alarms-by-kecamatan.csv"])}
    # Andoolo: two in July; Konda: one in August (its test alarm is in no kecamatan); total 2 + 1 = 3.
    assert (fire["Andoolo"]["2025-07"], fire["Andoolo"]["2025-08"], fire["Andoolo"]["total"]) == ("2", "0", "2")
    assert (fire["Konda"]["2025-07"], fire["Konda"]["2025-08"], fire["Konda"]["total"]) == ("0", "1", "1")
    assert fire["total"]["total"] == "3"
    perda = {r["category"]: r for r in csv_rows(files["perda-reports-by-category.csv"])}
    assert perda["ternak-berkeliaran"]["received"] == "2" and perda["total"]["received"] == "2"
    # Each kecamatan named in a dataset has its Kemendagri code in the metadata (dashboard/data/wilayah.toml).
    package = json.loads(files["datapackage.json"])
    (resource,) = [r for r in package["resources"] if r["name"] == "fire-alarms-by-kecamatan"]
    (field,) = [f for f in resource["schema"]["fields"] if f["name"] == "kecamatan"]
    assert field["kode_wilayah"] == {"Andoolo": "74.05.03", "Konda": "74.05.07"}
    # Nothing of a SAPA site or button, and codes rather than translated names.
    text = b"".join(files.values()).decode("utf-8")
    assert SAPA_BUTTON not in text and SAPA_GATEWAY not in text and SAPA_KECAMATAN not in text
    assert "2025-07,7,7\r\n" in files["sapa-alarms-by-month.csv"].decode("utf-8")


def test_headers_etag_and_one_build_for_a_whole_harvest(app: Flask) -> None:
    client = app.test_client()
    files = fetch_all(client)
    cache = app.extensions["siaga.opendata"]
    assert cache.builds == 1, "a harvest of every file builds the period's report once"
    response = client.get(f"/open-data/{QUARTER}/fire-outcomes.csv")
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == f'attachment; filename="siaga-fire-outcomes-{QUARTER}.csv"'
    assert response.headers["Cache-Control"] == "public, max-age=3600"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    etag = response.headers["ETag"]
    again = client.get(f"/open-data/{QUARTER}/fire-outcomes.csv", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    other = client.get(f"/open-data/{QUARTER}/fire-outcomes.json", headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["ETag"] != etag
    assert len(files) == 1 + 2 * len(json.loads(files["datapackage.json"])["resources"])


def test_a_closed_period_gives_the_same_bytes_in_another_process(app: Flask, tmp_path: Path) -> None:
    first = fetch_all(app.test_client())
    another = make_app(tmp_path)  # the same store, a cache of its own: as a second dashboard process
    assert fetch_all(another.test_client()) == first
    assert another.extensions["siaga.opendata"] is not app.extensions["siaga.opendata"]


def test_periods_not_published_or_listed_unknown_datasets_and_bad_periods_are_404_with_a_reason(
    app: Flask,
) -> None:
    client = app.test_client()
    now = time.time()
    current = Period.containing(now, Granularity.QUARTER).key
    listed = opendata.closed_periods(now)
    too_old = [listed[granularity][-1].previous().key for granularity in Granularity]
    for path, reason in (
        (f"/open-data/{current}/datapackage.json", "belum diterbitkan"),
        (f"/open-data/{Period.containing(now, Granularity.YEAR).key}/fire-outcomes.csv", "belum diterbitkan"),
        ("/open-data/2999-01/fire-outcomes.json", "belum diterbitkan: datanya diterbitkan mulai 2999-02-02"),
        # Older than the index lists (the last 24 months, 8 quarters, 3 years): not served, not built.
        *((f"/open-data/{key}/datapackage.json", f"Periode {key} tidak lagi tersedia") for key in too_old),
        ("/open-data/2000/fire-outcomes.csv", "hanya 24 bulan, 8 triwulan dan 3 tahun terakhir"),
        (f"/open-data/{QUARTER}/no-such-dataset.csv", "Tidak ada dataset no-such-dataset"),
        (f"/open-data/{QUARTER}/fire-not-open.json", "Tidak ada dataset"),
        (f"/open-data/{QUARTER}/fire-availability.csv", "Tidak ada dataset fire-availability"),
        ("/open-data/2025-Q5/datapackage.json", "Periode tidak dikenal: 2025-Q5"),
        ("/open-data/2025-7/fire-outcomes.csv", "Periode tidak dikenal"),
        ("/open-data/1999/fire-outcomes.csv", "Periode tidak dikenal"),
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["Cache-Control"] == "no-store"
        assert reason in response.get_json()["message"], (path, response.get_json())
    english = client.get(f"/open-data/{current}/datapackage.json?lang=en").get_json()["message"]
    assert "are not published yet" in english
    assert app.extensions["siaga.opendata"].builds == 1, "only the listed quarter was built"


def test_a_period_is_listed_and_served_from_the_day_after_its_end() -> None:
    """2025-Q3 ends 2025-10-01 00:00 WITA; its files are served, and listed, from 2025-10-02 00:00 WITA."""
    quarter = Period.parse("2025-Q3")
    assert opendata.published_from(quarter) == wita(10, 2)
    the_day_after = opendata.closed_periods(wita(10, 1, 23, 59))
    assert the_day_after[Granularity.QUARTER][0].key == "2025-Q2"
    assert the_day_after[Granularity.MONTH][0].key == "2025-08"  # September's files wait a day too
    listed = opendata.closed_periods(wita(10, 2))
    assert listed[Granularity.QUARTER][0] == quarter and listed[Granularity.MONTH][0].key == "2025-09"
    # 8 quarters back from 2025-Q3: 2023-Q4 is the oldest; years: 2024, 2023, 2022 (2025 is not over).
    assert listed[Granularity.QUARTER][-1].key == "2023-Q4"
    assert [p.key for p in listed[Granularity.YEAR]] == ["2024", "2023", "2022"]


def test_the_index_lists_the_datasets_and_the_closed_periods(app: Flask) -> None:
    client = app.test_client()
    now = time.time()
    page = client.get(f"/open-data/?period={QUARTER}").get_data(as_text=True)
    assert f'href="/open-data/{QUARTER}/fire-alarms-by-kecamatan.csv"' in page
    assert f'href="/open-data/{QUARTER}/sapa-alarms-by-month.json"' in page
    assert f'href="/open-data/{QUARTER}/datapackage.json"' in page
    published = now - opendata.PUBLICATION_DELAY_S  # a period's files are served a day after its end
    last_month = Period.containing(published, Granularity.MONTH).previous()
    last_year = Period.containing(published, Granularity.YEAR).previous()
    assert f'href="/open-data/?period={last_month.key}"' in page and f"?period={last_year.key}" in page
    current = Period.containing(now, Granularity.MONTH).key
    assert f"?period={current}" not in page, "a month not over yet is not listed"
    listed = opendata.closed_periods(now)
    assert [len(listed[g]) for g in (Granularity.MONTH, Granularity.QUARTER, Granularity.YEAR)] == [24, 8, 3]
    assert "Data terbuka" in page and "Open data" in client.get("/open-data/?lang=en").get_data(as_text=True)
    assert client.get(f"/open-data/?period={current}").status_code == 404
    assert client.get("/open-data/?period=nonsense").status_code == 404


def test_one_report_is_built_at_a_time_and_a_waiting_request_takes_the_one_built(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = build.report_for
    built: list[str] = []
    started, gate = threading.Event(), threading.Event()

    def held_report_for(period: Period, **kwargs: Any) -> Report:
        """The real build, held at the quarter's until the test opens the gate."""
        built.append(period.key)
        if period.key == QUARTER:
            started.set()
            assert gate.wait(30), "the test never let the build go on"
        return real(period, **kwargs)

    monkeypatch.setattr(build, "report_for", held_report_for)
    cache = app.extensions["siaga.opendata"]
    assert app.test_client().get("/open-data/2025-08/datapackage.json").status_code == 200  # cached now
    replies: dict[str, Any] = {}

    def fetch(name: str, path: str) -> None:
        replies[name] = app.test_client().get(path)

    def start(name: str, path: str) -> threading.Thread:
        thread = threading.Thread(target=fetch, args=(name, path), name=name, daemon=True)
        thread.start()
        return thread

    try:
        first = start("first", f"/open-data/{QUARTER}/datapackage.json")
        assert started.wait(10), "the quarter's build began"
        same = start("same", f"/open-data/{QUARTER}/sapa-alarms-by-month.csv")
        other = start("other", "/open-data/2025-07/datapackage.json")
        # Both wait for the build under way: the other period is not built beside it.
        poll_until(lambda: cache.waiting, lambda n: n == 2, what="two requests waiting for the build")
        assert built == ["2025-08", QUARTER]
        # A cached period is served while the build is held: no lock of the build is taken for it.
        cached = start("cached", "/open-data/2025-08/fire-outcomes.csv")
        cached.join(10)
        assert not cached.is_alive() and replies["cached"].status_code == 200
    finally:
        gate.set()
    for thread in (first, same, other):
        thread.join(30)
        assert not thread.is_alive(), thread.name
    assert [replies[name].status_code for name in ("first", "same", "other")] == [200, 200, 200]
    # The quarter built once: the request that waited took its files; then the other period, alone.
    assert built == ["2025-08", QUARTER, "2025-07"] and cache.builds == 3 and cache.waiting == 0
    package = json.loads(replies["first"].data)
    (resource,) = [r for r in package["resources"] if r["name"] == "sapa-alarms-by-month"]
    assert resource["bytes"] == len(replies["same"].data), "the waiting request served the build's file"


def sign_in_evaluator(app: Flask) -> FlaskClient:
    conn = connect(app.config["DATABASE"])
    try:
        create_user(conn, *EVALUATOR, "evaluator")
        conn.commit()
    finally:
        conn.close()
    client = app.test_client()
    response = client.post(
        "/login",
        data={"username": EVALUATOR[0], "password": EVALUATOR[1], "csrf_token": csrf(client, "/login")},
    )
    assert response.status_code == 302
    return client


def test_open_data_kept_private_is_for_administrators_and_evaluators_only(tmp_path: Path) -> None:
    app = make_app(tmp_path, SIAGA_EVALUATION=EvaluationSettings(open_data_public=False))
    path = f"/open-data/{QUARTER}/fire-outcomes.csv"
    anonymous = app.test_client()
    for wanted in ("/open-data/", path):
        response = anonymous.get(wanted)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert sign_in(app, "satpol").get(path).status_code == 403
    assert sign_in(app, "fire_operator").get("/open-data/").status_code == 403
    for client in (sign_in(app, "admin"), sign_in_evaluator(app)):
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "private, max-age=3600"
        assert "Access-Control-Allow-Origin" not in response.headers
        assert client.get("/open-data/").status_code == 200
