"""The evaluation report in a real browser: an evaluator makes last quarter's report in one click, the page
passes axe-core's accessibility rules, and its PDF link downloads the PDF.

axe-core comes bundled in the axe-playwright-python wheel (``axe.min.js``), injected into the page by
Playwright: nothing is fetched from the network, and the page's CSP is left as it is.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("playwright", reason="Playwright has no wheels for this machine (32-bit ARM)")
pytest.importorskip("axe_playwright_python", reason="axe-playwright-python (the test extras) is not installed")

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect
from pypdf import PdfReader

from dashboard.db import connect
from dashboard.evaluation.period import Granularity, Period
from sim.servers import DashboardServer

pytestmark = pytest.mark.browser

EVALUATOR = ("evaluator", "evaluator-password-1")
WAIT_MS = 10_000
HOUR = 3600.0
DAY = 86400.0


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page of its own (its own cookies), whose script errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="id-ID", accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    opened = context.new_page()
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == []


def seed_quarter(dashboard: DashboardServer, quarter: Period) -> None:
    """Fire and SAPA alarms in ``quarter``: enough that every kind of cell, a total row and the charts show."""
    conn = connect(dashboard.config["DATABASE"])
    try:
        conn.execute("BEGIN")
        for button, kind, kecamatan in (("fire-a", "fire", "Andoolo"), ("sapa-a", "sapa", "Andoolo")):
            conn.execute(
                "INSERT INTO buttons (id, gw, kind, transport, site_name, lat, lon, updated_at, kecamatan)"
                " VALUES (?, 'gw-1', ?, 'gpio', 'Pasar', -4.35, 122.38, ?, ?)",
                (button, kind, quarter.start, kecamatan),
            )
        numbers = {"fire": 0, "sapa": 0}
        for day, kind, resolution in ((3, "fire", "real"), (10, "fire", "false_alarm"), (40, "fire", None),
                                      (41, "sapa", "real"), (42, "sapa", "real")):  # fmt: skip
            numbers[kind] += 1
            opened = quarter.start + day * DAY
            resolved = opened + HOUR if resolution else None
            conn.execute(
                "INSERT INTO alarms (id, number, button, gw, kind, state, first_event_id, last_event_id,"
                " first_press_ts, opened_at, last_press_at, acknowledged_at, resolved_at, resolution)"
                " VALUES (?, ?, ?, 'gw-1', ?, ?, ?, ?, '2026-01-01T00:00:00+08:00', ?, ?, ?, ?, ?)",
                (16 * numbers[kind] + (1 if kind == "fire" else 2), numbers[kind], f"{kind}-a", kind,
                 "resolved" if resolution else "acknowledged", f"ev-{kind}-{day}", f"ev-{kind}-{day}",
                 opened, opened, opened + 120, resolved, resolution),
            )  # fmt: skip
        conn.execute("COMMIT")
    finally:
        conn.close()


def sign_in(page: Page, dashboard: DashboardServer) -> None:
    page.goto(dashboard.url + "/login")
    form = page.locator("form.login")
    form.locator("input[name=username]").fill(EVALUATOR[0])
    form.locator("input[name=password]").fill(EVALUATOR[1])
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(re.escape(dashboard.url + "/evaluation") + r"$"))


def accessibility_problems(page: Page) -> str:
    """axe-core's violations on ``page``, one readable paragraph each; empty when there are none."""
    results: Any = Axe().run(page)
    return "" if results.violations_count == 0 else results.generate_report()


def test_an_evaluator_makes_last_quarters_report_in_one_click_and_it_is_accessible(
    dashboard: DashboardServer, page: Page
) -> None:
    dashboard.create_user(*EVALUATOR, "evaluator")
    quarter = Period.containing(time.time(), Granularity.QUARTER).previous()
    seed_quarter(dashboard, quarter)
    sign_in(page, dashboard)
    assert accessibility_problems(page) == ""

    page.locator("#last-quarter").click()
    page.wait_for_url(dashboard.url + f"/evaluation/{quarter.key}")
    expect(page.locator("table#table-fire-alarms-by-kecamatan tbody th[scope=row]")).to_have_text(["Andoolo"])
    expect(page.locator("table#table-sapa-alarms-by-month")).to_contain_text("<5")  # two SAPA alarms: hidden
    expect(page.locator("svg.chart[role=img]").first).to_be_visible()
    assert accessibility_problems(page) == ""

    with page.expect_download() as download:
        page.locator("#pdf-link").click()
    assert download.value.suggested_filename == f"siaga-evaluasi-{quarter.key}-id.pdf"
    body = open(download.value.path(), "rb").read()
    assert body.startswith(b"%PDF-")
    text = " ".join(page_.extract_text() for page_ in PdfReader(io.BytesIO(body)).pages)
    assert "Andoolo" in " ".join(text.split())


def test_the_report_in_english_is_accessible_too(dashboard: DashboardServer, page: Page) -> None:
    dashboard.create_user(*EVALUATOR, "evaluator")
    current = Period.containing(time.time(), Granularity.QUARTER)
    sign_in(page, dashboard)
    page.goto(dashboard.url + f"/evaluation/{current.key}?lang=en")
    expect(page.locator("p.provisional")).to_contain_text("Provisional")
    assert accessibility_problems(page) == ""
