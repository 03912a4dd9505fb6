"""``siaga-gateway --config gateway.toml``: the entry point, where the environment is read."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from importlib.metadata import entry_points

from gpiozero.pins import Factory

from firmware_bridge import __version__
from firmware_bridge.errors import ConfigError, OutboxError
from firmware_bridge.payloads import Kind

from .app import Gateway
from .config import load_config
from .systemd import Watchdog, notify, watchdog_interval

log = logging.getLogger("siaga.gateway")

#: sysexits.h EX_CONFIG: systemd shows it, and Restart= policies can skip it.
EXIT_CONFIG = 78


def make_pin_factory(name: str | None) -> Factory | None:
    """The gpiozero pin factory named in the config, else ``GPIOZERO_PIN_FACTORY``, else gpiozero's default."""
    name = name or os.environ.get("GPIOZERO_PIN_FACTORY")
    if not name:
        return None
    for entry in entry_points(group="gpiozero_pin_factories"):
        if entry.name == name.lower():
            return entry.load()()
    raise ConfigError(f"unknown gpiozero pin factory {name!r}", key="gateway.pin_factory")


#: Where the package installs, enrolment writes and the service reads the configuration.
DEFAULT_CONFIG = "/etc/siaga/gateway.toml"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="siaga-gateway", description="Siaga panic-button gateway")
    parser.add_argument(
        "--config",
        "-c",
        default=os.environ.get("SIAGA_GATEWAY_CONFIG", DEFAULT_CONFIG),
        help=f"path of gateway.toml (default {DEFAULT_CONFIG}, or SIAGA_GATEWAY_CONFIG)",
    )
    parser.add_argument("--check", action="store_true", help="validate the configuration and exit")
    parser.add_argument("--log-level", default=os.environ.get("SIAGA_LOG_LEVEL", "INFO"))
    parser.add_argument("--version", action="version", version=f"siaga-gateway {__version__}")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="run the gateway (default)")
    provision = commands.add_parser("provision-node", help="create the key and node_config.py of a LoRa button")
    provision.add_argument("node", type=int, help="the node id (1..4294967295), unique in the regency")
    provision.add_argument("--kind", required=True, choices=[kind.value for kind in Kind])
    provision.add_argument("--output", "-o", help="write node_config.py here (mode 0600) instead of printing it")
    provision.add_argument("--force", action="store_true", help="replace the key of a node that has one")
    enrol = commands.add_parser(
        "enrol", help="fetch this gateway's configuration, broker account and CA from the dashboard, once"
    )
    enrol.add_argument("url", help="the dashboard's address, https://...")
    enrol.add_argument("code", help="the one-time enrolment code an administrator issued")
    enrol.add_argument("--ca-file", help="trust this CA for the dashboard's certificate (else the system's)")
    enrol.add_argument("--no-start", action="store_true", help="write the files but do not start the service")
    enrol.add_argument("--force", action="store_true", help="replace a configuration that is already there")
    commission = commands.add_parser(
        "commission", help="test every button with the dashboard, as a test, and record the report"
    )
    commission.add_argument("--user", help="the technician's dashboard account (asked if not given)")
    commission.add_argument(
        "--password-file", help="read the technician's password from this file (else asked on the terminal)"
    )
    commission.add_argument("--button", action="append", help="commission only this button (repeatable)")
    commission.add_argument(
        "--yes", action="store_true", help="do not ask whether the LED and buzzer were seen; record them as not asked"
    )
    commission.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each press (120)")
    return parser.parse_args(argv)


def _provision(args: argparse.Namespace) -> int:
    from .provision import provision

    try:
        text = provision(args.config, args.node, args.kind, force=args.force)
    except ConfigError as exc:
        print(f"siaga-gateway: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.output:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # also when the file was already there: it holds a key
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        print(f"node {args.node}: key stored; node config written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if args.command == "provision-node":
        return _provision(args)
    if args.command == "enrol":
        from .enrol import run_enrol

        return run_enrol(args)
    if args.command == "commission":
        from .commission import run_commission

        return run_commission(args)
    try:
        config = load_config(args.config)
        if args.check:
            print(f"{args.config}: OK ({len(config.buttons)} button(s), gateway {config.id})")
            return 0
        gateway = Gateway(config, pin_factory=make_pin_factory(config.pin_factory))
        gateway.start()
    except ConfigError as exc:
        print(f"siaga-gateway: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OutboxError as exc:
        print(f"siaga-gateway: {exc}", file=sys.stderr)
        return 1

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"siaga-gateway {config.id} ready", file=sys.stderr, flush=True)
    serve(gateway, stop)
    return 0


def serve(gateway: Gateway, stop: threading.Event) -> None:
    """Tell systemd the gateway is ready, keep its watchdog fed while healthy, and close on ``stop``."""
    notify("READY=1")
    interval = watchdog_interval()
    watchdog = Watchdog(gateway.liveness, interval).start() if interval else None
    try:
        stop.wait()
    finally:
        notify("STOPPING=1")
        if watchdog is not None:
            watchdog.stop()
        gateway.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
