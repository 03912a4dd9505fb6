"""A signed-in HTTP client for the dashboard (tests, benchmarks, ``siaga-sim``)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from typing import Any

from .sse import SSEClient

_TOKEN = re.compile(r'name="csrf[-_]token"\s+(?:value|content)="([^"]+)"')


class HTTPStatusError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body


class DashboardClient:
    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.cookies = CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.csrf = ""

    def _request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
        request = urllib.request.Request(self.base_url + path, data=body, method=method, headers=headers or {})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status, response.read().decode("utf-8"), response.geturl()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace"), exc.geturl()

    def get_page(self, path: str) -> tuple[int, str]:
        status, text, _ = self._request("GET", path)
        match = _TOKEN.search(text)
        if match:
            self.csrf = match.group(1)
        return status, text

    def login(self, username: str, password: str) -> None:
        self.get_page("/login")
        form = urllib.parse.urlencode({"username": username, "password": password, "csrf_token": self.csrf}).encode()
        status, text, url = self._request("POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 200 or url.endswith("/login"):
            raise HTTPStatusError(status, text)
        self.get_page(urllib.parse.urlsplit(url).path)  # the new session's CSRF token

    def get_json(self, path: str) -> Any:
        status, text, _ = self._request("GET", path, headers={"Accept": "application/json"})
        if status != 200:
            raise HTTPStatusError(status, text)
        return json.loads(text)

    def post_json(self, path: str, body: dict[str, Any], *, expect: int = 200) -> Any:
        status, text, _ = self._request(
            "POST",
            path,
            json.dumps(body).encode(),
            {"Content-Type": "application/json", "X-CSRF-Token": self.csrf},
        )
        if status != expect:
            raise HTTPStatusError(status, text)
        return json.loads(text) if text else None

    def post_form(self, path: str, fields: dict[str, str]) -> tuple[int, str]:
        """POST a form (with this session's CSRF token) as a browser would; follows redirects."""
        body = urllib.parse.urlencode({**fields, "csrf_token": self.csrf}).encode()
        status, text, _ = self._request("POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})
        match = _TOKEN.search(text)
        if match:
            self.csrf = match.group(1)
        return status, text

    def get_text(self, path: str) -> tuple[int, str]:
        status, text, _ = self._request("GET", path)
        return status, text

    def cookie_header(self) -> str:
        return "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.cookies)

    def stream(self) -> SSEClient:
        return SSEClient(self.base_url + "/api/stream", headers={"Cookie": self.cookie_header()})
