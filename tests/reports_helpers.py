"""Helpers for the report tests: a fresh dashboard app per test, signed-in test clients, real images."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from dashboard import create_app
from dashboard.accounts.auth import create_user
from dashboard.db import connect, init_schema
from dashboard.reports import store
from sim.stores import store_at

ACCOUNTS = {
    "satpol": ("petugas", "satpol-password-1"),
    "admin": ("admin", "admin-password-123"),
    "fire_operator": ("operator", "operator-password-1"),
    "sapa_desk": ("sapadesk", "sapa-desk-password-1"),
}
TOKEN = re.compile(rb'name="csrf[-_]token"\s+(?:value|content)="([^"]+)"')


def make_app(tmp_path: Path, **config: Any) -> Flask:
    app = create_app(
        {
            "DATABASE": store_at(tmp_path / "dashboard.sqlite"),
            "SECRET_KEY": "test-secret-" + "x" * 40,
            "SIAGA_PHOTOS_DIR": tmp_path / "photos",
            "TESTING": True,
            **config,
        }
    )
    conn = connect(app.config["DATABASE"])
    init_schema(conn)
    for role, (username, password) in ACCOUNTS.items():
        if conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone() is None:
            create_user(conn, username, password, role)  # not there yet: the first app on this database
    conn.close()
    return app


def csrf(client: FlaskClient, path: str = "/lapor") -> str:
    page = client.get(path).data
    match = TOKEN.search(page)
    assert match, f"no CSRF token on {path}"
    return match.group(1).decode()


def sign_in(app: Flask, role: str) -> FlaskClient:
    client = app.test_client()
    username, password = ACCOUNTS[role]
    response = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": csrf(client, "/login")}
    )
    assert response.status_code == 302, response.data[:300]
    return client


def api_key(app: Flask, name: str = "LaporApp") -> str:
    conn = connect(app.config["DATABASE"])
    try:
        return store.create_api_key(conn, name, "admin")
    finally:
        conn.close()


def jpeg(width: int = 640, height: int = 480, *, exif: dict[int, Any] | None = None, color=(180, 40, 40)) -> bytes:
    image = Image.new("RGB", (width, height), color)
    out = io.BytesIO()
    exif_data = Image.Exif()
    for tag, value in (exif or {}).items():
        exif_data[tag] = value
    image.save(out, "JPEG", exif=exif_data.tobytes() if exif else b"")
    return out.getvalue()


def png(width: int = 300, height: int = 200) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (10, 200, 10, 128)).save(out, "PNG")
    return out.getvalue()


def report_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "service_code": "ternak-berkeliaran",
        "attribute[jenis_ternak][]": ["sapi"],
        "description": "Tiga ekor sapi di jalan poros Andoolo setiap pagi.",
        "lat": "-4.3497",
        "long": "122.3786",
        "area": "Andoolo",
    }
    fields.update(overrides)
    return {key: value for key, value in fields.items() if value is not None}
