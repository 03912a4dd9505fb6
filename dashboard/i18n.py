"""User-facing text in Bahasa Indonesia (default) and English.

The catalogue is a plain dict so that a translator can edit it without
tooling; ``tests/test_i18n.py`` checks that both languages have every key.
"""

from __future__ import annotations

from flask import Flask, current_app, request, session

LANGUAGES = ("id", "en")

MESSAGES: dict[str, dict[str, str]] = {
    "id": {
        "app_name": "Siaga",
        "board_title": "Papan Alarm Pos Pemadam Kebakaran",
        "sapa_title": "Meja SAPA — Perlindungan Perempuan dan Anak",
        "open_alarms": "Alarm aktif",
        "no_alarms": "Tidak ada alarm aktif.",
        "kind_fire": "KEBAKARAN",
        "kind_sapa": "SAPA",
        "state_unacknowledged": "BELUM DITANGGAPI",
        "state_acknowledged": "DITANGGAPI",
        "state_resolved": "SELESAI",
        "acknowledge": "Tanggapi",
        "resolve": "Selesaikan",
        "resolution_real": "Kejadian nyata",
        "resolution_false_alarm": "Alarm palsu",
        "resolution_test": "Uji coba",
        "note": "Catatan",
        "note_placeholder": "Catatan (opsional)",
        "pressed_at": "Ditekan",
        "presses": "Tekanan",
        "ago_seconds": "{n} detik lalu",
        "ago_minutes": "{n} menit lalu",
        "ago_hours": "{n} jam lalu",
        "ago_days": "{n} hari lalu",
        "site_unknown": "Lokasi belum diketahui",
        "acknowledged_by": "Ditanggapi oleh {who}",
        "gateways": "Gateway",
        "gw_online": "daring",
        "gw_offline": "LURING",
        "gw_unknown": "belum diketahui",
        "no_gateways": "Belum ada gateway yang terhubung.",
        "stream_connected": "Tersambung langsung",
        "stream_connecting": "Menyambung ulang…",
        "sound_enable": "Suara alarm belum aktif — klik di sini untuk mengaktifkan",
        "sound_on": "Suara aktif",
        "login": "Masuk",
        "logout": "Keluar",
        "username": "Nama pengguna",
        "password": "Kata sandi",
        "login_failed": "Nama pengguna atau kata sandi salah.",
        "login_required": "Silakan masuk terlebih dahulu.",
        "forbidden": "Anda tidak berhak membuka halaman ini.",
        "csrf_failed": "Sesi formulir kedaluwarsa. Muat ulang halaman lalu coba lagi.",
        "language": "Bahasa",
        "demo_panel": "Panel tombol simulasi",
        "error_action": "Tindakan gagal",
        "map": "Peta",
        "signed_in_as": "Masuk sebagai {who}",
        "bad_request": "Permintaan tidak valid.",
        "alarm_changed": "Alarm ini berubah: kini {n} tekanan. Periksa lagi sebelum menyelesaikannya.",
        "not_found": "Halaman tidak ditemukan.",
        "back": "Kembali",
    },
    "en": {
        "app_name": "Siaga",
        "board_title": "Fire Post Alarm Board",
        "sapa_title": "SAPA Desk — Protection of Women and Children",
        "open_alarms": "Open alarms",
        "no_alarms": "No open alarms.",
        "kind_fire": "FIRE",
        "kind_sapa": "SAPA",
        "state_unacknowledged": "UNACKNOWLEDGED",
        "state_acknowledged": "ACKNOWLEDGED",
        "state_resolved": "RESOLVED",
        "acknowledge": "Acknowledge",
        "resolve": "Resolve",
        "resolution_real": "Real incident",
        "resolution_false_alarm": "False alarm",
        "resolution_test": "Test",
        "note": "Note",
        "note_placeholder": "Note (optional)",
        "pressed_at": "Pressed",
        "presses": "Presses",
        "ago_seconds": "{n} s ago",
        "ago_minutes": "{n} min ago",
        "ago_hours": "{n} h ago",
        "ago_days": "{n} days ago",
        "site_unknown": "Location not yet known",
        "acknowledged_by": "Acknowledged by {who}",
        "gateways": "Gateways",
        "gw_online": "online",
        "gw_offline": "OFFLINE",
        "gw_unknown": "unknown",
        "no_gateways": "No gateway has connected yet.",
        "stream_connected": "Live",
        "stream_connecting": "Reconnecting…",
        "sound_enable": "Alarm sound is off — click here to enable it",
        "sound_on": "Sound on",
        "login": "Sign in",
        "logout": "Sign out",
        "username": "Username",
        "password": "Password",
        "login_failed": "Wrong username or password.",
        "login_required": "Please sign in first.",
        "forbidden": "You may not open this page.",
        "csrf_failed": "The form has expired. Reload the page and try again.",
        "language": "Language",
        "demo_panel": "Simulated button panel",
        "error_action": "Action failed",
        "map": "Map",
        "signed_in_as": "Signed in as {who}",
        "bad_request": "Bad request.",
        "alarm_changed": "This alarm changed: {n} presses now. Check it again before resolving it.",
        "not_found": "Not found.",
        "back": "Back",
    },
}


def get_language() -> str:
    """The language of this request: ``?lang=``, then the session, then the site default."""
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        session["lang"] = asked
        return asked
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return chosen
    return current_app.config.get("SIAGA_LANGUAGE", "id")


def translate(key: str, **values: object) -> str:
    language = get_language()
    text = MESSAGES[language].get(key) or MESSAGES["id"].get(key) or key
    return text.format(**values) if values else text


def init_app(app: Flask) -> None:
    @app.context_processor
    def _inject() -> dict[str, object]:
        language = get_language()
        return {"_": translate, "lang": language, "messages": MESSAGES[language], "languages": LANGUAGES}
