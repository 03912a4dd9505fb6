"""Issue 12: two dashboard processes on one store share sessions, CSRF tokens and rate limits, so a
board or an operator can move between them behind any load balancer, and a guesser or a flood
spread over them meets the limits of one."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest

from dashboard.accounts.auth import ATTACK_TRIES_PER_WINDOW, LOGIN_FAILURES_PER_PAIR, LoginLimits
from dashboard.accounts.ratelimit import CLOCK_SKEW_S, SWEEP_S, RateLimiter
from dashboard.db import Connection, connect, database_file
from dashboard.reports import store
from firmware_bridge.broker import BrokerSettings
from sim.servers import DashboardServer, dashboard_config
from sim.webclient import DashboardClient, HTTPStatusError

from .conftest import ADMIN, OPERATOR, SAPA_DESK
from .mqttprobe import Probe
from .reports_helpers import report_fields
from .test_ingest import make_event, send, wait_alarm

TOKEN = re.compile(r'name="csrf[-_]token"\s+(?:value|content)="([^"]+)"')
DESK, ELSEWHERE = "198.51.100.7", "192.0.2.10"
FORM_POSTS, API_POSTS = 3, 3


@pytest.fixture
def pair(tmp_path: Path, broker_settings: BrokerSettings) -> Iterator[tuple[DashboardServer, DashboardServer]]:
    """Dashboards A and B: one store, one secret key, one photo folder; each its own port and MQTT client."""
    shared: dict[str, Any] = {
        "SIAGA_TRUSTED_PROXIES": 1,  # the tests name each client's address in X-Forwarded-For
        "SIAGA_FORM_RATE": (FORM_POSTS, 600.0),
        "SIAGA_API_RATE": (API_POSTS, 60.0),
        "SIAGA_PHOTOS_DIR": tmp_path / "photos",
    }
    a_config = dashboard_config(tmp_path / "a", broker_settings, client_id="siaga-dashboard-a", **shared)
    b_config = dashboard_config(
        tmp_path / "b",
        broker_settings,
        client_id="siaga-dashboard-b",
        DATABASE=a_config["DATABASE"],
        SECRET_KEY=a_config["SECRET_KEY"],
        **shared,
    )
    a = DashboardServer(a_config).start()
    try:
        b = DashboardServer(b_config).start()
        try:
            for account, role in ((OPERATOR, "fire_operator"), (SAPA_DESK, "sapa_desk"), (ADMIN, "admin")):
                a.create_user(*account, role)
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


class _Unredirected(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the test reads the 302 or 303 itself


class Browser:
    """One browser (one cookie jar) whose requests a load balancer sends to whichever dashboard a call
    names, from the client address it names (X-Forwarded-For, one trusted proxy)."""

    def __init__(self) -> None:
        self.cookies = CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies), _Unredirected)
        self.csrf = ""

    def request(
        self, server: DashboardServer, method: str, path: str, fields: dict[str, str] | None = None, address: str = ""
    ) -> tuple[int, str]:
        body = urllib.parse.urlencode(fields).encode() if fields is not None else None
        headers = {"X-Forwarded-For": address} if address else {}
        request = urllib.request.Request(server.url + path, data=body, method=method, headers=headers)
        try:
            with self._opener.open(request, timeout=10) as response:
                status, text = response.status, response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode("utf-8", "replace")
        match = TOKEN.search(text)
        if match:
            self.csrf = match.group(1)
        return status, text

    def sign_in(self, server: DashboardServer, account: tuple[str, str], address: str = "") -> int:
        self.request(server, "GET", "/login", address=address)  # the form's CSRF token
        fields = {"username": account[0], "password": account[1], "csrf_token": self.csrf}
        return self.request(server, "POST", "/login", fields, address)[0]

    def report(self, server: DashboardServer, address: str) -> int:
        self.request(server, "GET", "/lapor", address=address)
        fields = {**report_form(), "csrf_token": self.csrf}
        return self.request(server, "POST", "/lapor", fields, address)[0]


def report_form() -> dict[str, str]:
    """A valid report's fields as a browser posts them (one value per field)."""
    return {**report_fields(), "attribute[jenis_ternak][]": "sapi"}


def moved_to(client: DashboardClient, server: DashboardServer) -> DashboardClient:
    """The same browser, its requests now sent to ``server`` (the load balancer's choice)."""
    client.base_url = server.url
    return client


def copy_of(client: DashboardClient, server: DashboardServer) -> DashboardClient:
    """Another browser holding ``client``'s cookies, talking to ``server``."""
    copy = DashboardClient(server.url)
    for cookie in client.cookies:
        copy.cookies.set_cookie(cookie)
    return copy


def rows(server: DashboardServer, query: str, *params: Any) -> list[Any]:
    conn = connect(server.config["DATABASE"])
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def wrong(account: tuple[str, str]) -> tuple[str, str]:
    return account[0], "wrong-password"


# -- sessions and CSRF ------------------------------------------------------------------------------


def test_a_session_made_by_one_process_is_honoured_by_the_other_until_signed_out_on_either(
    pair: tuple[DashboardServer, DashboardServer],
) -> None:
    a, b = pair
    client = DashboardClient(a.url)
    client.login(*OPERATOR)
    copied = copy_of(client, b)
    status, page = moved_to(client, b).get_page("/board")
    assert status == 200 and "Papan Alarm Pos Pemadam Kebakaran" in page
    assert client.get_json("/api/alarms") == {"alarms": []}
    assert copied.get_json("/api/alarms") == {"alarms": []}
    # Signed out on A: B refuses the same cookie (the session row is revoked, whoever asks).
    status, page = moved_to(client, a).post_form("/logout", {})
    assert status == 200 and 'name="password"' in page
    with pytest.raises(HTTPStatusError) as caught:
        copied.get_json("/api/alarms")
    assert caught.value.status == 401
    status, page = copied.get_page("/board")
    assert status == 200 and 'name="password"' in page  # sent to sign in again


def test_a_csrf_token_from_one_process_is_accepted_by_the_other_and_needed_there(
    pair: tuple[DashboardServer, DashboardServer], probe: Probe
) -> None:
    a, b = pair
    client = DashboardClient(a.url)
    client.login(*OPERATOR)
    token = client.csrf  # from A's board page; B has served this browser no page at all
    assert token
    event = send(probe, make_event())
    alarm = wait_alarm(moved_to(client, b), lambda found: found["last_event_id"] == event.id)
    for presented in ("", "forged-token"):
        client.csrf = presented
        with pytest.raises(HTTPStatusError) as caught:
            client.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {})
        assert caught.value.status == 400 and json.loads(caught.value.body)["error"] == "csrf"
    client.csrf = token
    acknowledged = client.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {})["alarm"]
    assert acknowledged["state"] == "acknowledged"
    # A sees what B did, and takes the same token for the next change.
    seen = moved_to(client, a).get_json("/api/alarms?state=all")["alarms"]
    assert [(found["id"], found["state"]) for found in seen] == [(alarm["id"], "acknowledged")]
    resolution = {"resolution": "real", "rev": seen[0]["rev"]}
    assert client.post_json(f"/api/alarms/{alarm['id']}/resolve", resolution)["alarm"]["state"] == "resolved"


# -- sign-in limits ----------------------------------------------------------------------------------


def test_sign_in_failures_split_over_two_processes_meet_the_limit_of_one(
    pair: tuple[DashboardServer, DashboardServer],
) -> None:
    a, b = pair
    browser = Browser()
    tries = LOGIN_FAILURES_PER_PAIR + 1
    # One process: the operator's name guessed from one address.
    alone = [browser.sign_in(a, wrong(SAPA_DESK), "203.0.113.1") for _ in range(tries)]
    assert alone == [401] * LOGIN_FAILURES_PER_PAIR + [429]
    # Two: the same guesses, sent by turns to A and to B, are refused at the same count ...
    split = [browser.sign_in((a, b)[n % 2], wrong(OPERATOR), "203.0.113.2") for n in range(tries)]
    assert split == alone
    # ... by both, even with the right password, while the desk's own address signs in on either.
    assert [browser.sign_in(server, OPERATOR, "203.0.113.2") for server in (a, b)] == [429, 429]
    assert [Browser().sign_in(server, OPERATOR, DESK) for server in (a, b)] == [302, 302]


def test_an_account_under_attack_across_two_processes_has_one_budget_and_one_memory_of_known_addresses(
    pair: tuple[DashboardServer, DashboardServer],
) -> None:
    """The attack budget and the addresses that signed in lately (the "pair" memory) are the store's:
    B lets in the desk that signed in on A, and counts the tries A admitted."""
    a, b = pair
    threshold = 6  # a small account-wide threshold: fewer password checks
    now = [1_000_000.0]  # one hand-held clock for both, as the wall clock is one for every host

    for server in (a, b):
        limits = LoginLimits.create(clock=lambda: now[0], secret=server.config["SECRET_KEY"])
        limits.account = dataclasses.replace(limits.account, limit=threshold)
        server.app.extensions["siaga.login_limits"] = limits

    assert Browser().sign_in(a, OPERATOR, DESK) == 302  # the post's desk, yesterday, on A
    now[0] += 86400
    attacker = Browser()
    guesses = [
        attacker.sign_in((a, b)[n % 2], wrong(OPERATOR), f"203.0.113.{n}")
        for n in range(threshold + ATTACK_TRIES_PER_WINDOW)
    ]
    assert guesses == [401] * (threshold + ATTACK_TRIES_PER_WINDOW)  # under attack, then the budget spent
    assert [attacker.sign_in(server, wrong(OPERATOR), f"203.0.113.{200 + n}") for n, server in enumerate((a, b))] == [
        429,
        429,
    ]
    assert Browser().sign_in(b, OPERATOR, ELSEWHERE) == 429  # a new address waits for the minute
    assert Browser().sign_in(a, OPERATOR, "203.0.113.1") == 429  # B saw it guess wrong: A makes it wait
    assert Browser().sign_in(b, OPERATOR, DESK) == 302  # B knows the desk A let in
    reasons = [
        json.loads(row[0])["reason"]
        for row in rows(a, "SELECT after FROM audit_log WHERE action = 'login.throttled' ORDER BY id")
    ]
    assert reasons == ["account_rate"] * 3 + ["account"]


# -- report limits -----------------------------------------------------------------------------------


def test_report_form_posts_split_over_two_processes_meet_the_limit_of_one(
    pair: tuple[DashboardServer, DashboardServer],
) -> None:
    a, b = pair
    tries = FORM_POSTS + 1
    alone = [Browser().report(a, "203.0.113.1") for _ in range(tries)]
    assert alone == [303] * FORM_POSTS + [429]
    split = [Browser().report((a, b)[n % 2], "203.0.113.2") for n in range(tries)]
    assert split == alone
    assert [Browser().report(server, "203.0.113.2") for server in (a, b)] == [429, 429]
    assert rows(a, "SELECT count(*) FROM reports")[0][0] == 2 * FORM_POSTS


def test_open311_posts_of_one_key_split_over_two_processes_meet_the_limit_of_one(
    pair: tuple[DashboardServer, DashboardServer],
) -> None:
    a, b = pair
    conn = connect(a.config["DATABASE"])
    try:
        key = store.create_api_key(conn, "LaporApp", "admin")
    finally:
        conn.close()
    statuses = [
        Browser().request((a, b)[n % 2], "POST", "/open311/v2/requests.json", {**report_form(), "api_key": key})[0]
        for n in range(API_POSTS + 2)
    ]
    assert statuses == [201] * API_POSTS + [429, 429]


# -- the limiter on the store ------------------------------------------------------------------------


def test_the_store_limiter_keeps_the_sliding_window_of_the_in_memory_one(conn: Connection) -> None:
    limiter = RateLimiter("test.window", 2, 10.0, secret="s" * 32, connection=lambda: conn)
    assert limiter.allow("k", now=100.0) == (True, 0.0)
    assert limiter.allow("k", now=101.0) == (True, 0.0)
    assert limiter.allow("k", now=102.0) == (False, 8.0)  # until the event of 100 leaves the window
    assert (limiter.count("k", now=102.0), limiter.retry_after("k", now=102.0)) == (2, 8.0)
    assert limiter.clear_after("k", now=102.0) == 9.0
    assert limiter.allow("other", now=102.0) == (True, 0.0)  # each key its own
    assert limiter.allow("k", now=110.0) == (True, 0.0)  # 110 - 100 >= 10: that one left
    limiter.hit("k", now=110.5)  # counted even over the limit (a failed sign-in)
    assert limiter.count("k", now=110.5) == 3
    limiter.forget("k")
    assert limiter.count("k", now=110.5) == 0
    keys = {row[0] for row in conn.execute("SELECT key FROM rate_limit_events")}
    assert keys and not keys & {"k", "other"}  # digests, never the keys themselves


def test_old_events_are_deleted_so_the_table_stays_bounded(conn: Connection) -> None:
    now = [1000.0]
    limiter = RateLimiter("test.sweep", 5, 60.0, clock=lambda: now[0], connection=lambda: conn)
    other = RateLimiter("test.other", 5, 3600.0, clock=lambda: now[0], connection=lambda: conn)
    other.hit("kept")
    for n in range(500):  # one event per address, addresses that never come back
        limiter.hit(f"10.0.{n >> 8}.{n & 255}")
    assert conn.execute("SELECT count(*) FROM rate_limit_events").fetchone()[0] == 501
    now[0] += 60.0 + CLOCK_SKEW_S + SWEEP_S + 1
    limiter.hit("a newcomer")
    limiter.allow("another")
    left = conn.execute("SELECT limiter, count(*) FROM rate_limit_events GROUP BY limiter ORDER BY limiter")
    assert [tuple(row) for row in left] == [("test.other", 1), ("test.sweep", 2)]  # the other's window is longer


def test_concurrent_checks_of_one_key_admit_exactly_the_limit(conn: Connection) -> None:
    """Processes (here: threads, each with its own connection) checking one key at once never admit
    more than the limit between them: a check-and-count is one locked step."""
    target = database_file(conn)
    limit, workers, tries = 20, 6, 10
    admitted: list[bool] = []
    start = threading.Barrier(workers)

    def worker() -> None:
        own = connect(target)
        try:
            limiter = RateLimiter("test.race", limit, 600.0, connection=lambda: own)
            start.wait(10)
            results = [limiter.allow("one key")[0] for _ in range(tries)]
        finally:
            own.close()
        admitted.extend(results)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(admitted) == workers * tries
    assert admitted.count(True) == limit


def test_signed_out_sessions_are_deleted_a_month_on_and_live_ones_are_kept(conn) -> None:
    from dashboard.accounts.auth import REVOKED_SESSIONS_KEPT_S, create_user, end_session, session_user, start_session

    create_user(conn, "petugas", "a-long-password-1", "fire_operator")
    user_id = conn.execute("SELECT id FROM users WHERE username = 'petugas'").fetchone()[0]
    old_revoked, recent_revoked, old_live = (start_session(conn, user_id) for _ in range(3))
    for session_id in (old_revoked, recent_revoked):
        end_session(conn, session_id)
    month_ago = time.time() - REVOKED_SESSIONS_KEPT_S - 60
    conn.execute("UPDATE sessions SET revoked_at = ? WHERE id = ?", (month_ago, old_revoked))
    conn.execute("UPDATE sessions SET created_at = ? WHERE id = ?", (month_ago - 86400, old_live))
    new = start_session(conn, user_id)
    left = {row[0] for row in conn.execute("SELECT id FROM sessions").fetchall()}
    assert left == {recent_revoked, old_live, new}
    assert session_user(conn, old_live) is not None and session_user(conn, recent_revoked) is None
