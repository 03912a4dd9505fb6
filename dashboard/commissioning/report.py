"""A finished session's report as text rows (for the page) and as a PDF (fpdf2), in the reader's language.

The PDF is made once, when the session finishes, and stored with the results:
the record handed over to the site's owner never changes afterwards. It is
drawn with DejaVu Sans where the system has it (Debian's ``fonts-dejavu-core``:
any site name in any script), else with the PDF's own Helvetica, whose
Latin-1 takes Indonesian names; a character it lacks becomes ``?``.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

from ..i18n import translate_to

#: Where Debian and Raspberry Pi OS keep DejaVu Sans (``fonts-dejavu-core``).
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)

_RESULT_KEYS = {
    "passed": "commissioning_result_passed",
    "failed": "commissioning_result_failed",
    "pending": "commissioning_result_pending",
}
_CHECK_KEYS = {
    "passed": "commissioning_check_passed",
    "failed": "commissioning_check_failed",
    "waiting": "commissioning_check_waiting",
    "not_measured": "commissioning_check_not_measured",
    "not_applicable": "commissioning_check_not_applicable",
    "not_reported": "commissioning_check_not_reported",
}
_ANSWER_KEYS = {
    "yes": "commissioning_answer_yes",
    "no": "commissioning_answer_no",
    "not_asked": "commissioning_answer_not_asked",
    "none": "commissioning_answer_none",
}
_REASON_KEYS = {
    "no_press": "commissioning_reason_no_press",
    "not_a_test_alarm": "commissioning_reason_not_a_test_alarm",
    "weak_radio": "commissioning_reason_weak_radio",
    "indication_not_shown": "commissioning_reason_indication_not_shown",
    "led_not_seen": "commissioning_reason_led_not_seen",
    "buzzer_not_heard": "commissioning_reason_buzzer_not_heard",
    "led_unconfirmed": "commissioning_reason_led_unconfirmed",
}
_STATE_KEYS = {
    "open": "commissioning_state_open",
    "finished": "commissioning_state_finished",
    "abandoned": "commissioning_state_abandoned",
    "expired": "commissioning_state_expired",
}


def result_text(language: str, code: str | None) -> str:
    return translate_to(language, _RESULT_KEYS.get(code or "", "commissioning_result_pending"))


def check_text(language: str, code: str) -> str:
    return translate_to(language, _CHECK_KEYS.get(code, "commissioning_check_waiting"))


def answer_text(language: str, code: str) -> str:
    return translate_to(language, _ANSWER_KEYS.get(code, "commissioning_answer_not_asked"))


def state_text(language: str, code: str) -> str:
    return translate_to(language, _STATE_KEYS.get(code, "commissioning_state_open"))


def reasons_text(language: str, codes: list[str]) -> str:
    return "; ".join(translate_to(language, _REASON_KEYS.get(code, "commissioning_reason_led_unconfirmed"))
                     for code in codes)  # fmt: skip


def _radio(button: dict[str, Any], language: str) -> str:
    if button["rssi"] is None and button["snr"] is None:
        return check_text(language, button["checks"]["radio"])
    rssi = "?" if button["rssi"] is None else f"{button['rssi']:g} dBm"
    snr = "?" if button["snr"] is None else f"{button['snr']:g} dB"
    return f"{rssi} / {snr} ({check_text(language, button['checks']['radio'])})"


def button_rows(results: dict[str, Any], language: str) -> list[dict[str, str]]:
    """Each button's line of the report, as texts (the page and the PDF show the same)."""
    rows = []
    for button in results["buttons"]:
        press = (
            translate_to(language, "commissioning_event", id=button["event_id"]) + f" @ {button['pressed_at']}"
            if button["event_id"]
            else check_text(language, button["checks"]["press"])
        )
        rows.append(
            {
                "id": button["id"],
                "what": f"{button['kind']} / {button['transport']} — {button['site'] or ''}"
                + (f" — {button['label']}" if button["label"] else ""),
                "press": press,
                "alarm": check_text(language, button["checks"]["test_alarm"]),
                "radio": _radio(button, language),
                "indication": check_text(language, button["checks"]["indication"]),
                "led": answer_text(language, button["led_seen"]),
                "buzzer": answer_text(language, button["buzzer_heard"]),
                "firmware": button["node_firmware"] or "—",
                "result": result_text(language, button["result"]),
                "result_code": button["result"],
                "reasons": reasons_text(language, button["reasons"]),
            }
        )
    return rows


def summary_rows(results: dict[str, Any], language: str) -> list[tuple[str, str]]:
    """The report's head: who, when, which gateway and site, the versions, the margins, the verdict."""
    margins = results["margins"]

    def t(key: str, **values: object) -> str:
        return translate_to(language, key, **values)

    return [
        (t("commissioning_gateway"), results["gw"]),
        (t("commissioning_sites"), ", ".join(results["sites"]) or "—"),
        (t("commissioning_technician"), results["started_by"]),
        (t("commissioning_finished_by"), results["finished_by"] or "—"),
        (t("commissioning_started_at"), results["started_at"] or "—"),
        (t("commissioning_finished_at"), results["finished_at"] or "—"),
        (t("commissioning_gateway_version"), results["gateway_version"] or "—"),
        ("LoRa", t("commissioning_margins", rssi=f"{margins['min_rssi_dbm']:g}", snr=f"{margins['min_snr_db']:g}")),
        (t("commissioning_verdict"), result_text(language, results["verdict"])),
    ]


def _font(pdf: Any) -> tuple[str, bool]:
    """DejaVu Sans if the system has it (Unicode), else Helvetica (Latin-1)."""
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            pdf.add_font("DejaVu", "", str(regular))
            pdf.add_font("DejaVu", "B", str(bold))
            return "DejaVu", True
    return "Helvetica", False


def _latin1(text: str) -> str:
    """What Helvetica can draw: dashes and quotes as ASCII, accents kept, anything else as '?'."""
    text = text.replace("\u2014", "-").replace("\u2013", "-").replace("\u2265", ">=").replace("\u2019", "'")
    text = unicodedata.normalize("NFC", text)
    return text.encode("latin-1", "replace").decode("latin-1")


def render_pdf(results: dict[str, Any], language: str) -> bytes:
    """The report as an A4 PDF."""
    from fpdf import FPDF  # imported when a report is made: the dashboard starts without it loaded

    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_title(f"Siaga {translate_to(language, 'commissioning_report_title', id=results['id'])}")
    pdf.set_creator("Siaga")
    family, unicode = _font(pdf)
    clean = (lambda text: text) if unicode else _latin1
    pdf.add_page()
    pdf.set_font(family, "B", 15)
    pdf.cell(0, 9, clean(f"Siaga — {translate_to(language, 'commissioning_report_title', id=results['id'])}"),
             new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    pdf.ln(2)
    for label, value in summary_rows(results, language):
        pdf.set_font(family, "B", 9)
        pdf.cell(55, 5.5, clean(label))
        pdf.set_font(family, "", 9)
        pdf.multi_cell(0, 5.5, clean(str(value)), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    headers = {
        "press": "commissioning_col_press", "alarm": "commissioning_col_alarm", "radio": "commissioning_col_radio",
        "indication": "commissioning_col_indication", "led": "commissioning_col_led",
        "buzzer": "commissioning_col_buzzer", "firmware": "commissioning_col_firmware",
    }  # fmt: skip
    for row in button_rows(results, language):
        pdf.set_font(family, "B", 10)
        pdf.multi_cell(0, 6, clean(f"{row['id']}: {row['result']}"), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(family, "", 8.5)
        pdf.multi_cell(0, 4.5, clean(row["what"]), new_x="LMARGIN", new_y="NEXT")
        for field, key in headers.items():
            pdf.set_font(family, "B", 8.5)
            pdf.cell(55, 4.5, clean(translate_to(language, key)))
            pdf.set_font(family, "", 8.5)
            pdf.multi_cell(0, 4.5, clean(row[field]), new_x="LMARGIN", new_y="NEXT")
        if row["reasons"]:
            pdf.set_font(family, "B", 8.5)
            pdf.multi_cell(0, 4.5, clean(row["reasons"]), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    return bytes(pdf.output())
