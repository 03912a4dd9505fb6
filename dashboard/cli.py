"""``siaga-dashboard --config dashboard.toml [serve | check | create-user ...]``."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from firmware_bridge import __version__
from firmware_bridge.errors import ConfigError

from . import create_app, live
from .accounts.auth import AccountError, Role, create_user
from .config import load_config
from .db import Connection, Error, connect, init_schema

log = logging.getLogger("siaga.dashboard")

EXIT_CONFIG = 78


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="siaga-dashboard", description="Siaga dashboard (live board, ingest)")
    parser.add_argument("--config", "-c", default=os.environ.get("SIAGA_DASHBOARD_CONFIG"), help="dashboard.toml")
    parser.add_argument("--log-level", default=os.environ.get("SIAGA_LOG_LEVEL", "INFO"))
    parser.add_argument("--version", action="version", version=f"siaga-dashboard {__version__}")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the web server and MQTT ingest (default)")
    commands.add_parser("check", help="validate the configuration and exit")
    commands.add_parser("migrate", help="bring the store's schema to this version's and print its revision")
    copy = commands.add_parser(
        "copy-store", help="copy an SQLite store's rows into the (new, empty) PostgreSQL store configured"
    )
    copy.add_argument("sqlite_file", help="the SQLite store to copy from (at this version's schema)")
    setup = commands.add_parser(
        "broker-setup",
        help="create or update the broker's shared accounts (dashboard, ha@siaga) and default ACL through dynsec",
    )
    setup.add_argument("--ha-password-file", help="also the Home Assistant account ha@siaga, with this password")
    user = commands.add_parser("create-user", help="create an account (e.g. the first administrator)")
    user.add_argument("username")
    user.add_argument("--role", required=True, choices=[role.value for role in Role])
    user.add_argument("--display-name")
    secret = user.add_mutually_exclusive_group()
    secret.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    secret.add_argument("--password-file", help="read the password from this file")
    args = parser.parse_args(argv)
    if not args.config:
        parser.error("--config is required (or set SIAGA_DASHBOARD_CONFIG)")
    return args


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as handle:
            return handle.read().strip()
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat: ") != first:
        raise AccountError("the passwords differ")
    return first


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        config = load_config(args.config, create_secret=args.command in (None, "serve"))
    except ConfigError as exc:
        print(f"siaga-dashboard: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check":
        print(f"{args.config}: OK")
        return 0
    if args.command == "create-user":
        return _create_user(config, args)
    if args.command == "migrate":
        return _migrate(config)
    if args.command == "copy-store":
        return _copy_store(config, args.sqlite_file)
    if args.command == "broker-setup":
        from .enrolment.setup import broker_setup

        return broker_setup(config, args.ha_password_file)
    return serve(config)


def _migrate(config: dict[str, Any]) -> int:
    """What every start does first, on its own: for an upgrade run before the new version's processes."""

    def revision(conn: Connection) -> str:
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return f"store at revision {version}"

    return _on_store(config, revision)


def _copy_store(config: dict[str, Any], source: str) -> int:
    """An SQLite store's history into the PostgreSQL store configured (with no dashboard running on it)."""
    from .storecopy import CopyRefused, copy_store

    try:
        report = copy_store(source, str(config["DATABASE"]))
    except (CopyRefused, OSError, *Error) as exc:
        print(f"siaga-dashboard: copy-store: {exc}", file=sys.stderr)
        return 1
    for line in report.lines():
        print(line)
    print(f"copied {sum(report.rows.values())} row(s) from {source}")
    return 0


def _create_user(config: dict[str, Any], args: argparse.Namespace) -> int:
    def create(conn: Connection) -> str:
        create_user(conn, args.username, _read_password(args), args.role, args.display_name)
        return f"created {args.role} account {args.username!r}"

    return _on_store(config, create)


def _on_store(config: dict[str, Any], work: Callable[[Connection], str]) -> int:
    """``work`` on the store brought to this version's schema: its report printed, or the error and 1."""
    conn = connect(config["DATABASE"])
    try:
        init_schema(conn)
        done = work(conn)
    except (AccountError, OSError, *Error) as exc:
        print(f"siaga-dashboard: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    print(done)
    return 0


def serve(config: dict[str, Any]) -> int:
    from .asgi import Server

    app = create_app(config)
    live.start(app)
    server = Server(app, host=config["SIAGA_HOST"], port=config["SIAGA_PORT"], threads=config["SIAGA_THREADS"])
    print(
        f"siaga-dashboard listening on {'https' if config.get('SIAGA_TLS_CERT_FILE') else 'http'}://"
        f"{config['SIAGA_HOST']}:{config['SIAGA_PORT']}/",
        file=sys.stderr,
        flush=True,
    )
    # uvicorn handles SIGTERM and SIGINT while it runs, then raises the signal again under the
    # handlers it found: let that be a no-op, so that the ingest and the threads stop cleanly below.
    for stopping in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stopping, lambda *_: None)
    try:
        server.run()
    finally:
        live.stop(app)
        server.asgi.close()
    return 0 if server.started else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
