#!/usr/bin/env python3
"""What the rate limits kept in the store cost a sign-in and a report form post, beside floors.

    .venv/bin/python bench/ratelimit.py [--rounds 2000]
    SIAGA_TEST_DATABASE=postgresql://... .venv/bin/python bench/ratelimit.py   # on PostgreSQL

On a fresh store (an SQLite file, or a PostgreSQL schema with ``SIAGA_TEST_DATABASE`` set) it times,
on one connection as a request has it: the limiter work of a failed sign-in (``LoginLimits.wait``
then ``failed``), of a successful one (``wait`` then ``succeeded``), and of a report form post
(``allow``), each from a new address; and the floors measured in the same run: one ``SELECT 1``
round trip, opening the request's connection (every request pays it), and the password check
(every sign-in pays it). Prints one JSON line: medians and 99th percentiles in microseconds.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

from dashboard.accounts.auth import LoginLimits
from dashboard.accounts.ratelimit import RateLimiter
from dashboard.db import connect, init_schema
from sim.stores import drop_made, server, store_at


def timed(action: Callable[[int], object], rounds: int) -> dict[str, float]:
    samples = []
    for n in range(rounds):
        start = time.perf_counter()
        action(n)
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    return {"p50_us": round(statistics.median(samples), 1), "p99_us": round(samples[int(len(samples) * 0.99)], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        target = store_at(Path(folder) / "dashboard.sqlite")
        conn = connect(target)
        try:
            init_schema(conn)
            key = secrets.token_hex(32)  # the app's SECRET_KEY
            limits = LoginLimits.create(secret=key)
            for limiter in vars(limits).values():
                limiter.connection = lambda: conn
            form = RateLimiter("reports.form", 10, 600.0, secret=key, connection=lambda: conn)
            password_hash = generate_password_hash("operator-password-1")
            rounds = args.rounds

            def failed(n: int) -> None:
                address = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
                limits.wait(f"akun{n}", address)
                limits.failed(f"akun{n}", address)

            def succeeded(n: int) -> None:
                address = f"10.1{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
                limits.wait(f"user{n % 50}", address)
                limits.succeeded(f"user{n % 50}", address)

            def opened(_n: int) -> None:
                connect(target).close()

            result = {
                "engine": "postgresql" if server() else "sqlite",
                "rounds": rounds,
                "sign_in_failed": timed(failed, rounds),
                "sign_in_succeeded": timed(succeeded, rounds),
                "form_post": timed(lambda n: form.allow(f"form:10.2.{n >> 8 & 255}.{n & 255}"), rounds),
                "floor_select_1": timed(lambda _n: conn.execute("SELECT 1").fetchone(), rounds),
                "floor_open_connection": timed(opened, min(rounds, 200)),
                "floor_password_check": timed(lambda _n: check_password_hash(password_hash, "wrong"), 20),
                "rows_left": conn.execute("SELECT count(*) FROM rate_limit_events").fetchone()[0],
            }
        finally:
            conn.close()
            drop_made()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
