"""User-facing text: Bahasa Indonesia and English both complete."""

from __future__ import annotations

import re
from pathlib import Path

from dashboard.i18n import LANGUAGES, MESSAGES

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard"


def test_every_language_has_every_key() -> None:
    keys = {language: set(MESSAGES[language]) for language in LANGUAGES}
    assert keys["id"] == keys["en"]


def test_every_key_the_pages_use_exists() -> None:
    used: set[str] = set()
    for template in (DASHBOARD / "templates").glob("*.html"):
        used |= set(re.findall(r"""_\(\s*['"]([a-z_]+)['"]""", template.read_text()))
        used |= set(re.findall(r"""_\(\s*['"]([a-z_]+)['"] if""", template.read_text()))
    script = (DASHBOARD / "static" / "board.js").read_text()
    used |= set(re.findall(r"""\bt\(\s*"([a-z_]+)"\s*[,)]""", script))
    for python in DASHBOARD.glob("*.py"):
        used |= set(re.findall(r"""translate\(\s*"([a-z_]+)"\s*[,)]""", python.read_text()))
    assert used, "found no message keys: the patterns above are out of date"
    missing = sorted(key for key in used if not key.endswith("_") and key not in MESSAGES["id"])
    assert missing == []


def test_every_status_and_resolution_has_a_label() -> None:
    from dashboard.reports.workflow import Enforcement, Rejection, Status

    for status in Status:
        assert f"status_{status.value}" in MESSAGES["id"]
    for resolution in [*Rejection, *Enforcement]:
        assert f"res_{resolution.value}" in MESSAGES["id"]


def test_placeholders_match_between_languages() -> None:
    for key, text in MESSAGES["id"].items():
        assert set(re.findall(r"\{(\w+)\}", text)) == set(re.findall(r"\{(\w+)\}", MESSAGES["en"][key])), key


def test_every_trouble_and_anomaly_has_a_label() -> None:
    from dashboard.alarms.lifecycle import Anomaly
    from dashboard.devices.supervision import TroubleType

    for language in LANGUAGES:
        missing = [t.value for t in TroubleType if f"trouble_{t.value}" not in MESSAGES[language]]
        missing += [a.value for a in Anomaly if f"anomaly_{a.value}" not in MESSAGES[language]]
        assert missing == [], language
