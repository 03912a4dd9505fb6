"""The texts of webhook notices (Bahasa Indonesia and English), for message gateways to forward."""

from __future__ import annotations

from typing import Any

from ..i18n import MESSAGES


def _alarm_named(alarm: dict[str, Any]) -> dict[str, str]:
    """ "Alarm KEBAKARAN #12 di Pasar Andoolo" / "FIRE alarm #12 at Pasar Andoolo", in the board's own words."""
    place = (alarm.get("site") or {}).get("name") or alarm["button"]
    kind = {language: MESSAGES[language].get(f"kind_{alarm['kind']}", alarm["kind"]) for language in ("id", "en")}
    return {
        "id": f"Alarm {kind['id']} #{alarm['number']} di {place}",
        "en": f"{kind['en']} alarm #{alarm['number']} at {place}",
    }


def settled_texts(alarm: dict[str, Any]) -> dict[str, str]:
    """Short human texts (Bahasa Indonesia and English) for a message gateway to forward."""
    named = _alarm_named(alarm)
    if alarm["state"] == "acknowledged":
        who = alarm.get("acknowledged_by") or "-"
        return {"id": f"{named['id']} sudah diakui oleh {who}.", "en": f"{named['en']} was acknowledged by {who}."}
    resolution = alarm.get("resolution") or "-"
    return {"id": f"{named['id']} sudah ditutup ({resolution}).", "en": f"{named['en']} was resolved ({resolution})."}


def escalated_texts(alarm: dict[str, Any], waited_s: float) -> dict[str, str]:
    named = _alarm_named(alarm)
    minutes = max(int(waited_s // 60), 0)
    waited_id = f"{minutes} menit" if minutes else f"{int(waited_s)} detik"
    waited_en = f"{minutes} min" if minutes else f"{int(waited_s)} s"
    return {
        "id": f"{named['id']} belum diakui selama {waited_id} ({alarm['press_count']} tekan).",
        "en": f"{named['en']} not acknowledged for {waited_en} ({alarm['press_count']} press(es)).",
    }
