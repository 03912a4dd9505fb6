"""Rendering the evaluation report: cells in both languages, the SVG charts, the PDF's text, and the pages."""

from __future__ import annotations

import io
import json
import re
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dashboard.accounts.auth import create_user
from dashboard.db import connect
from dashboard.evaluation import charts, present
from dashboard.evaluation.model import (
    SUPPRESSED,
    Chart,
    Column,
    ColumnType,
    Report,
    Section,
    Series,
    Table,
    Unit,
)
from dashboard.evaluation.pdf import render_pdf
from dashboard.evaluation.period import Granularity, Period
from dashboard.evaluation.present import cell, heading, moment, period_name
from dashboard.i18n import translate_to

from .reports_helpers import csrf, make_app, sign_in

pypdf = pytest.importorskip("pypdf")

SVG = "{http://www.w3.org/2000/svg}"
EVALUATOR = ("evaluator", "evaluator-password-1")
THRESHOLD = 5
NAMES = {
    "sampah": {"id": "Membuang sampah sembarangan di tempat umum", "en": "Littering in public places"},
    "ternak": {"id": "Ternak berkeliaran", "en": "Roaming livestock"},
}


# -- a report made by hand: every kind of value the renderers meet ---------------------------------------


def kecamatan_by_month(period: Period, first: int = 1234) -> Table:
    """Alarms by kecamatan and month: a wide table for a year (kecamatan, 12 months, total)."""
    months = period.month_keys()
    columns = (
        Column("kecamatan", "evaluation_fire_col_kecamatan", ColumnType.STRING),
        *(Column(month, month, literal=True) for month in months),
        Column("total", "evaluation_fire_col_total", unit=Unit.ALARMS),
    )
    table = Table("fire-alarms-by-kecamatan", "evaluation_table_fire_alarms_by_kecamatan",
                  "evaluation_def_fire_alarms_by_kecamatan", columns, total=True)  # fmt: skip
    andoolo = [first + n for n in range(len(months))]
    palangga = list(range(len(months)))
    table.add("Andoolo", *andoolo, sum(andoolo))
    table.add("Palangga Selatan", *palangga, sum(palangga))
    table.add("unknown", *[0] * len(months), 0)
    table.add("total", *[a + p for a, p in zip(andoolo, palangga, strict=True)], sum(andoolo) + sum(palangga))
    return table


def sample_report(key: str = "2026", *, first: int = 1234) -> Report:
    period = Period.parse(key)
    months = period.month_keys()
    wide = kecamatan_by_month(period, first)
    times = Table(
        "fire-response-times",
        "evaluation_table_fire_response_times",
        "evaluation_def_fire_response_times",
        (
            Column("measure", "evaluation_fire_col_measure", ColumnType.STRING, code_prefix="evaluation_ui_unit_"),
            Column("alarms", "evaluation_fire_col_alarms", unit=Unit.ALARMS),
            Column("median_min", "evaluation_fire_col_median_min", ColumnType.NUMBER, Unit.MINUTES),
            Column("share", "evaluation_fire_col_false_alarm_rate", ColumnType.NUMBER, Unit.PERCENT),
        ),
    )
    times.add("minutes", 12, 1.5, 12.5)
    times.add("hours", 0, None, None)
    sapa = Table(
        "sapa-alarms-by-month",
        "evaluation_table_sapa_alarms_by_month",
        "evaluation_def_sapa_alarms_by_month",
        (
            Column("month", "evaluation_fire_col_month", ColumnType.STRING),
            Column("alarms", "evaluation_fire_col_alarms", unit=Unit.ALARMS),
        ),
        total=True,
        note_keys=("evaluation_ui_chart_gap",),
    )
    sapa.add(months[0], 7)
    sapa.add(months[1], SUPPRESSED)
    sapa.add(months[2], 0)
    sapa.add("total", SUPPRESSED)
    perda = Table(
        "perda-reports-by-category",
        "evaluation_table_perda_reports_by_category",
        "evaluation_def_perda_reports_by_category",
        (
            Column("category", "evaluation_fire_col_type", ColumnType.STRING, names=NAMES),
            Column("received", "evaluation_fire_col_alarms", unit=Unit.REPORTS),
            Column("within_target_share", "evaluation_fire_col_false_alarm_rate", ColumnType.NUMBER, Unit.PERCENT),
        ),
        total=True,
    )
    perda.add("sampah", 1500, 87.5)
    perda.add("ternak", 3, 100.0)
    perda.add("total", 1503, 87.5)
    by_month = Chart("fire-alarms-by-month", "evaluation_chart_fire_alarms_by_month", tuple(months),
                     (Series("evaluation_series_alarms", tuple(float(v) for v in wide.rows[-1][1:-1])),), Unit.ALARMS,
                     table_id="fire-alarms-by-kecamatan")  # fmt: skip
    by_category = Chart("perda-reports-by-category-chart", "evaluation_chart_fire_alarms_by_kecamatan_chart",
                        ("sampah", "ternak"), (Series("evaluation_series_alarms", (87.5, None)),), Unit.PERCENT,
                        horizontal=True, table_id="perda-reports-by-category")  # fmt: skip
    return Report(
        period=period,
        generated_at=period.end + 3600.0,
        data_until=period.end,
        version="9.8.7",
        suppression_threshold=THRESHOLD,
        sections=[
            Section("fire", "evaluation_fire_title", "evaluation_fire_intro", [wide, times], [by_month]),
            Section("sapa", "evaluation_sapa_title", "evaluation_sapa_intro", [sapa]),
            Section("perda", "evaluation_perda_title", "evaluation_perda_intro", [perda], [by_category]),
        ],
        meta={
            "producer": "Pemerintah Kabupaten Konawe Selatan",
            "region_code": "74.05",
            "region_name": "Kabupaten Konawe Selatan",
            "licence": "CC-BY-4.0",
        },
    )


def flat(text: str) -> str:
    """Text with every run of white space as one space: the PDF wraps lines where the page ends."""
    return " ".join(text.split())


def pdf_pages(body: bytes) -> list[str]:
    return [flat(page.extract_text()) for page in pypdf.PdfReader(io.BytesIO(body)).pages]


# -- cells ----------------------------------------------------------------------------------------------

INTEGER = Column("n", "evaluation_fire_col_alarms")
NUMBER = Column("x", "evaluation_fire_col_median_min", ColumnType.NUMBER, Unit.MINUTES)
PERCENT = Column("p", "evaluation_fire_col_false_alarm_rate", ColumnType.NUMBER, Unit.PERCENT)
TEXT = Column("k", "evaluation_fire_col_kecamatan", ColumnType.STRING)
CODED = Column("u", "evaluation_fire_col_measure", ColumnType.STRING, code_prefix="evaluation_ui_unit_")
NAMED = Column("c", "evaluation_fire_col_type", ColumnType.STRING, names=NAMES)


@pytest.mark.parametrize(
    ("value", "column", "indonesian", "english"),
    [
        (1234, INTEGER, "1.234", "1,234"),
        (1234567, INTEGER, "1.234.567", "1,234,567"),
        (0, INTEGER, "0", "0"),
        (1234.5, NUMBER, "1.234,5", "1,234.5"),
        (12, NUMBER, "12,0", "12.0"),  # a number column keeps its one decimal
        (12.5, PERCENT, "12,5%", "12.5%"),
        (100.0, PERCENT, "100,0%", "100.0%"),
        (None, NUMBER, "\u2013", "\u2013"),  # no figure: a dash, never 0
        (SUPPRESSED, INTEGER, "<5", "<5"),
        ("Andoolo", TEXT, "Andoolo", "Andoolo"),
        ("2026-07", TEXT, "2026-07", "2026-07"),
        ("total", TEXT, "Jumlah", "Total"),
        ("unknown", TEXT, "Tidak diketahui", "Unknown"),
        ("minutes", CODED, "menit", "minutes"),  # code_prefix + code is the key
        ("sampah", NAMED, "Membuang sampah sembarangan di tempat umum", "Littering in public places"),
        ("gone-code", NAMED, "gone-code", "gone-code"),  # a code no longer named stays as it is
    ],
)
def test_a_cell_reads_the_same_figure_in_each_language(value, column, indonesian: str, english: str) -> None:
    assert cell(value, column, "id", threshold=THRESHOLD) == indonesian
    assert cell(value, column, "en", threshold=THRESHOLD) == english


def test_the_suppressed_mark_follows_the_reports_threshold_and_says_what_it_hides() -> None:
    assert cell(SUPPRESSED, INTEGER, "id", threshold=10) == "<10"
    shown = present.show(SUPPRESSED, INTEGER, "en", threshold=10)
    assert shown.html() == (
        '<span aria-hidden="true">&lt;10</span><span class="visually-hidden">hidden: fewer than 10</span>'
    )
    nothing = present.show(None, NUMBER, "id", threshold=THRESHOLD)
    assert nothing.html() == (
        '<span aria-hidden="true">\u2013</span><span class="visually-hidden">tidak ada angka</span>'
    )
    assert present.show(1234, INTEGER, "en", threshold=THRESHOLD).html() == "1,234"


def test_a_yes_or_no_is_refused_as_a_figure() -> None:
    with pytest.raises(TypeError, match="column n"):
        cell(True, INTEGER, "id", threshold=THRESHOLD)


def test_headings_name_a_times_unit_once_and_show_literal_months_as_they_are() -> None:
    assert heading(Column("2026-07", "2026-07", literal=True), "en") == "2026-07"
    period = Column("d", "evaluation_ui_period", ColumnType.NUMBER, Unit.DAYS)
    assert heading(period, "id") == "Periode (hari)"
    assert heading(period, "en") == "Period (days)"
    already = Column("m", "evaluation_ui_unit_minutes", ColumnType.NUMBER, Unit.MINUTES)
    assert heading(already, "en") == "minutes"
    assert heading(Column("n", "evaluation_ui_period", unit=Unit.ALARMS), "en") == "Period"


def test_periods_are_named_in_each_language() -> None:
    assert period_name(Period.parse("2026-Q3"), "id") == "Triwulan III 2026"
    assert period_name(Period.parse("2026-Q3"), "en") == "Q3 2026"
    assert period_name(Period.parse("2026-07"), "id") == "Juli 2026"
    assert period_name(Period.parse("2026-07"), "en") == "July 2026"
    assert period_name(Period.parse("2026"), "id") == "Tahun 2026"
    assert period_name(Period.parse("2026"), "en") == "Year 2026"


def test_moments_are_written_in_wita() -> None:
    # 2026-07-31 16:00 UTC is 2026-08-01 00:00 WITA (UTC+8).
    instant = datetime(2026, 7, 31, 16, 0, tzinfo=UTC).timestamp()
    assert moment(instant, "id") == "1 Agustus 2026, 00:00"
    assert moment(instant, "en") == "1 August 2026, 00:00"
    assert moment(instant + 5, "en", seconds=True) == "1 August 2026, 00:00:05"


# -- charts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("top", "integers", "step", "end"),
    [
        (1256, True, 500, 1500),  # 1256 / 5 = 251.2: the next round step is 500, and 3 of them pass 1256
        (87.5, False, 20, 100),  # 87.5 / 5 = 17.5 -> 20; 5 x 20 = 100
        (3, True, 1, 3),  # 3 / 5 = 0.6, but a count's step is at least 1
        (0, True, 1, 1),  # nothing to chart: an axis of one
        (12, False, 2.5, 12.5),  # 12 / 5 = 2.4 -> 2.5; 5 x 2.5 = 12.5
    ],
)
def test_axes_take_round_steps(top: float, integers: bool, step: float, end: float) -> None:
    assert charts.nice_scale(top, integers=integers) == (step, end)


def parse_svg(markup: str) -> ET.Element:
    assert "<script" not in markup and "style=" not in markup
    assert re.findall(r"https?://[^\"]+", markup) == ["http://www.w3.org/2000/svg"]  # no outside resource
    return ET.fromstring(markup)  # noqa: S314 - our own output, parsed to check it is well-formed


def test_a_chart_is_well_formed_svg_with_a_text_alternative() -> None:
    report = sample_report("2026-Q3")
    chart = report.sections[0].charts[0]
    root = parse_svg(str(charts.svg(chart, "id", THRESHOLD, report)))
    assert root.tag == SVG + "svg" and root.get("role") == "img"
    title, desc = root.find(SVG + "title"), root.find(SVG + "desc")
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert title.text == translate_to("id", "evaluation_chart_fire_alarms_by_month")
    table_title = translate_to("id", "evaluation_table_fire_alarms_by_kecamatan")
    assert f"“{table_title}”" in desc.text
    # Three months: Andoolo 1234, 1235, 1236 plus Palangga Selatan 0, 1, 2 -> 1234, 1236, 1238.
    assert "2026-07: 1.234; 2026-08: 1.236; 2026-09: 1.238" in desc.text
    assert len(root.findall(f"{SVG}rect[@class='bar series-0']")) == 3
    texts = [text.text for text in root.iter(SVG + "text")]
    assert {"1.234", "1.236", "1.238", "2026-07", "2026-08", "2026-09", "alarm"} <= set(texts)


def test_a_horizontal_chart_names_its_bars_and_marks_a_missing_figure() -> None:
    report = sample_report("2026-Q3")
    chart = report.sections[2].charts[0]
    root = parse_svg(str(charts.svg(chart, "en", THRESHOLD, report)))
    texts = [text.text for text in root.iter(SVG + "text")]
    assert "87.5%" in texts and "Roaming livestock" in texts
    assert "\u2013" in texts  # the bar with no figure shows a dash where it would stand
    assert any("below 5" in (text or "") for text in texts)  # and the note says what the dash means
    assert len(root.findall(f"{SVG}rect[@class='bar series-0']")) == 1
    desc = root.find(SVG + "desc").text
    assert "Roaming livestock: \u2013" in desc and "below 5" in desc
    # The long name wraps or shortens inside the label column, never across the bars.
    geometry = charts.layout(present.show_chart(chart, "en", report), "en")
    left = geometry.plot[0]
    assert all(text.x <= left for text in geometry.texts if text.anchor == "end")


# -- the PDF --------------------------------------------------------------------------------------------


def test_the_pdf_holds_the_titles_definitions_figures_and_a_footer_on_every_page() -> None:
    report = sample_report("2026-Q3")
    body = render_pdf(report, "id")
    assert body.startswith(b"%PDF-")
    pages = pdf_pages(body)
    text = " ".join(pages)
    for key in ("evaluation_fire_title", "evaluation_sapa_title", "evaluation_perda_title"):
        assert flat(translate_to("id", key)) in text
    assert flat(translate_to("id", "evaluation_def_fire_alarms_by_kecamatan")) in text
    assert "Andoolo 1.234 1.235 1.236 3.705" in text  # 1234 + 1235 + 1236 = 3705
    assert "Membuang sampah sembarangan di tempat umum 1.500 87,5%" in text
    assert "<5" in text  # the hidden SAPA month and its total
    assert "Jumlah <5" in text
    assert flat(translate_to("id", "evaluation_ui_chart_gap", threshold=THRESHOLD)) in text  # the SAPA table's note
    data_range = "Data dari 1 Juli 2026, 00:00 sampai sebelum 1 Oktober 2026, 00:00 WITA"
    for number, page in enumerate(pages, start=1):
        assert data_range in page, number
        assert "Siaga versi 9.8.7" in page, number
        assert f"Halaman {number} dari {len(pages)}" in page, number
        assert flat(present.generated(report, "id")) in page, number


def test_the_pdf_says_who_made_it_when_and_in_which_language() -> None:
    report = sample_report("2026-Q3")
    reader = pypdf.PdfReader(io.BytesIO(render_pdf(report, "en")))
    assert reader.metadata.title == "Smart City evaluation: Q3 2026"
    assert reader.metadata.author == "Pemerintah Kabupaten Konawe Selatan"
    assert reader.metadata.creation_date.timestamp() == report.generated_at
    assert reader.trailer["/Root"]["/Lang"] == "en"
    assert "Page 1 of" in reader.pages[0].extract_text()


def test_a_year_by_month_table_fits_with_every_month_heading_whole() -> None:
    report = sample_report("2026")
    pages = pdf_pages(render_pdf(report, "id"))
    page = next(page for page in pages if flat(translate_to("id", "evaluation_def_fire_alarms_by_kecamatan")) in page)
    headings = " ".join(f"2026-{month:02d}" for month in range(1, 13))
    assert headings + " Jumlah" in page or headings in page
    # Andoolo's row: 1234 .. 1245, and their sum 12 * 1234 + (0 + 1 + ... + 11) = 14808 + 66 = 14874.
    row = " ".join(f"{1234 + n:,}".replace(",", ".") for n in range(12))
    assert f"Andoolo {row} 14.874" in page


def test_a_table_too_wide_for_a_portrait_page_goes_on_a_landscape_one_whole() -> None:
    report = sample_report("2026", first=1_234_567)
    reader = pypdf.PdfReader(io.BytesIO(render_pdf(report, "en")))
    definition = flat(translate_to("en", "evaluation_def_fire_alarms_by_kecamatan"))
    index = next(n for n, page in enumerate(reader.pages) if definition[:80] in flat(page.extract_text()))
    box = reader.pages[index].mediabox
    assert box.width > box.height  # landscape
    text = flat(reader.pages[index].extract_text())
    # Andoolo: 1,234,567 .. 1,234,578; sum = 12 * 1,234,567 + 66 = 14,814,870.
    row = " ".join(f"{1_234_567 + n:,}" for n in range(12))
    assert f"Andoolo {row} 14,814,870" in text
    assert all(f"2026-{month:02d}" in text for month in range(1, 13))


def test_a_long_table_repeats_its_headings_on_every_page_it_runs_onto() -> None:
    report = sample_report("2026-Q3")
    long = Table(
        "perda-reports-by-kecamatan",
        "evaluation_table_perda_reports_by_kecamatan",
        "evaluation_def_perda_reports_by_kecamatan",
        (Column("kecamatan", "evaluation_ui_region", ColumnType.STRING), Column("received", "evaluation_ui_period")),
        total=True,
    )
    for n in range(150):
        long.add(f"Desa {n:03d}", n)
    long.add("total", sum(range(150)))  # 0 + 1 + ... + 149 = 149 * 150 / 2 = 11175
    report.sections[2].tables.append(long)
    pages = pdf_pages(render_pdf(report, "en"))
    holding = [page for page in pages if re.search(r"Desa \d{3} \d+", page)]
    assert len(holding) >= 3  # 150 rows of about 4 mm do not fit on two pages
    title = flat(translate_to("en", "evaluation_table_perda_reports_by_kecamatan"))
    assert f"{title} Region Period Desa 000 0" in holding[0]
    for page in holding[1:]:
        assert f"{title} (continued) Region Period Desa" in page
    assert "Total 11,175" in holding[-1]
    assert all(f"Desa {n:03d} {n}" in " ".join(holding) for n in range(150))


def test_the_same_report_gives_the_same_text() -> None:
    report = sample_report("2026-Q3")
    assert pdf_pages(render_pdf(report, "id")) == pdf_pages(render_pdf(report, "id"))


# -- the pages ------------------------------------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    made = make_app(tmp_path)
    conn = connect(made.config["DATABASE"])
    try:
        create_user(conn, *EVALUATOR, "evaluator")
    finally:
        conn.close()
    return made


@pytest.fixture
def evaluator(app: Flask) -> FlaskClient:
    client = app.test_client()
    response = client.post(
        "/login", data={"username": EVALUATOR[0], "password": EVALUATOR[1], "csrf_token": csrf(client, "/login")}
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/evaluation")
    return client


def last_quarter() -> Period:
    return Period.containing(time.time(), Granularity.QUARTER).previous()


def test_the_evaluators_home_makes_last_quarters_report_in_one_click(evaluator: FlaskClient) -> None:
    quarter = last_quarter()
    page = evaluator.get("/evaluation").get_data(as_text=True)
    assert f'id="last-quarter" href="/evaluation/{quarter.key}"' in page
    assert f'href="/evaluation/{quarter.key}.pdf"' in page
    assert f'<option value="{quarter.key}" selected>' in page
    response = evaluator.get(f"/evaluation?period={quarter.key}&format=pdf")
    assert response.status_code == 302 and response.headers["Location"] == f"/evaluation/{quarter.key}.pdf"


@pytest.mark.parametrize("role", ["fire_operator", "sapa_desk", "satpol"])
def test_other_roles_may_not_read_the_evaluation(app: Flask, role: str) -> None:
    client = sign_in(app, role)
    for path in ("/evaluation", f"/evaluation/{last_quarter().key}", f"/evaluation/{last_quarter().key}.pdf"):
        assert client.get(path).status_code == 403, path
    assert "/login" in app.test_client().get("/evaluation").headers["Location"]


def test_the_report_page_has_real_tables_definitions_and_charts(app: Flask) -> None:
    client = sign_in(app, "admin")
    quarter = last_quarter()
    response = client.get(f"/evaluation/{quarter.key}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'class="provisional"' not in page  # a closed quarter: its numbers are final
    for key in ("evaluation_fire_title", "evaluation_sapa_title", "evaluation_perda_title"):
        assert translate_to("id", key) in page
    tables = re.findall(r"<table .*?</table>", page, re.S)
    assert tables
    for table in tables:
        assert "<caption" in table and '<th scope="col"' in table
    assert '<th scope="row">' in page and "<tfoot>" in page
    assert page.count('<details class="definition" open>') == len(tables)
    assert 'role="img"' in page
    assert f'href="/evaluation/{quarter.key}.pdf"' in page
    assert present.period_name(quarter, "id") in page
    assert "Siaga versi" in page and "WITA" in page


def test_the_pdf_is_an_attachment_in_the_readers_language(app: Flask) -> None:
    client = sign_in(app, "admin")
    quarter = last_quarter()
    response = client.get(f"/evaluation/{quarter.key}.pdf?lang=en")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == f'attachment; filename="siaga-evaluasi-{quarter.key}-en.pdf"'
    text = " ".join(pdf_pages(response.data))
    assert f"Smart City evaluation: {present.period_name(quarter, 'en')}" in text


@pytest.mark.parametrize("period", ["2026-Q5", "2026-13", "26", "nonsense"])
def test_a_bad_period_is_not_found_and_says_how_to_write_one(evaluator: FlaskClient, period: str) -> None:
    for path in (f"/evaluation/{period}", f"/evaluation/{period}.pdf", f"/evaluation?period={period}"):
        response = evaluator.get(path)
        assert response.status_code == 404, path
        assert "YYYY-Qn" in response.get_data(as_text=True), path


def test_a_period_not_begun_is_not_found(evaluator: FlaskClient) -> None:
    coming = Period.containing(time.time(), Granularity.YEAR).following()
    response = evaluator.get(f"/evaluation/{coming.key}?lang=en")
    assert response.status_code == 404
    assert f"The period {coming.key} has not begun" in response.get_data(as_text=True)


def test_a_period_under_way_is_marked_provisional(evaluator: FlaskClient) -> None:
    current = Period.containing(time.time(), Granularity.QUARTER)
    page = evaluator.get(f"/evaluation/{current.key}?lang=en").get_data(as_text=True)
    assert '<p class="provisional" role="status">Provisional: this period is not over yet. Data up to' in page


def test_every_report_made_is_in_the_audit_log(app: Flask, evaluator: FlaskClient) -> None:
    quarter = last_quarter()
    assert evaluator.get(f"/evaluation/{quarter.key}").status_code == 200
    assert evaluator.get(f"/evaluation/{quarter.key}.pdf?lang=en").status_code == 200
    conn = connect(app.config["DATABASE"])
    try:
        rows = conn.execute(
            "SELECT actor, role, subject, kind, after FROM audit_log WHERE action = 'evaluation.generated' ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [("evaluator", "evaluator", f"period:{quarter.key}", None)] * 2
    assert [json.loads(r[4]) for r in rows] == [
        {"format": "html", "language": "id", "complete": True},
        {"format": "pdf", "language": "en", "complete": True},
    ]
