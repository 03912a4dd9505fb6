"""The texts of webhook notices (Bahasa Indonesia and English), for message gateways to forward."""

from __future__ import annotations

from typing import Any

from ..i18n import LANGUAGES, translate_to
from .lifecycle import AlarmState


def _alarm_named(alarm: dict[str, Any]) -> dict[str, str]:
    """ "Alarm KEBAKARAN #12 di Pasar Andoolo" / "FIRE alarm #12 at Pasar Andoolo", in the board's own words."""
    place = (alarm.get("site") or {}).get("name") or alarm["button"]
    number, kind = alarm["number"], alarm["kind"]
    return {
        lang: translate_to(lang, "notice_alarm", kind=translate_to(lang, f"kind_{kind}"), number=number, place=place)
        for lang in LANGUAGES
    }


def settled_texts(alarm: dict[str, Any]) -> dict[str, str]:
    """Short human texts (Bahasa Indonesia and English) for a message gateway to forward."""
    named = _alarm_named(alarm)
    if alarm["state"] == AlarmState.ACKNOWLEDGED:
        who = alarm.get("acknowledged_by") or "-"
        return {lang: translate_to(lang, "notice_acknowledged", alarm=named[lang], who=who) for lang in LANGUAGES}
    code = alarm.get("resolution")
    return {
        lang: translate_to(lang, "notice_resolved", alarm=named[lang], resolution=_resolution(lang, code))
        for lang in LANGUAGES
    }


def _resolution(lang: str, code: str | None) -> str:
    """The board's label of a resolution ("Alarm palsu" for ``false_alarm``); "-" for none."""
    return translate_to(lang, f"resolution_{code}") if code else "-"


def _waited(lang: str, waited_s: float) -> str:
    """ "3 menit" / "3 min", or seconds under a minute."""
    minutes = max(int(waited_s // 60), 0)
    if minutes:
        return translate_to(lang, "notice_waited_minutes", n=minutes)
    return translate_to(lang, "notice_waited_seconds", n=int(waited_s))


def escalated_texts(alarm: dict[str, Any], waited_s: float) -> dict[str, str]:
    """The escalation notice, in the board's words: "… belum ditanggapi selama 2 menit (3 tekanan)."."""
    named = _alarm_named(alarm)
    presses = alarm["press_count"]
    return {
        lang: translate_to(lang, "notice_escalated", alarm=named[lang], waited=_waited(lang, waited_s), presses=presses)
        for lang in LANGUAGES
    }
