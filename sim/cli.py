"""``siaga-sim``: run and test Siaga without hardware."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from firmware_bridge import __version__
from firmware_bridge.topics import DEFAULT_ROOT

DEFAULT_PANEL = "http://127.0.0.1:8001"


def _press(args: argparse.Namespace) -> int:
    url = f"{args.panel.rstrip('/')}/api/buttons/{args.button}/press"
    request = urllib.request.Request(url, data=b"{}", method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}")
        known = ", ".join(detail.get("known", []))
        print(f"siaga-sim: no button {args.button!r} on the demo panel. Known: {known}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"siaga-sim: cannot reach the demo panel at {args.panel} ({exc}). Is `make demo` running?", file=sys.stderr
        )
        return 1
    print(f"pressed {body['pressed']} (held {body['held_s']:.1f} s)")
    return 0


def _buttons(args: argparse.Namespace) -> int:
    try:
        with urllib.request.urlopen(f"{args.panel.rstrip('/')}/api/buttons", timeout=5) as response:
            buttons = json.loads(response.read())["buttons"]
    except OSError as exc:
        print(f"siaga-sim: cannot reach the demo panel at {args.panel} ({exc})", file=sys.stderr)
        return 1
    for button in buttons:
        print(f"{button['id']:<24} {button['kind']:<5} {button['pattern']:<12} {button['site']} — {button['label']}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import DemoOptions, run_demo

    return run_demo(
        DemoOptions(
            workdir=Path(args.workdir).resolve(),
            broker=args.broker,
            mqtt_port=args.mqtt_port,
            port=args.port,
            panel_port=args.panel_port,
            radio_loss=args.radio_loss,
            influxdb=args.influxdb,
            influxdb_token_file=Path(args.influxdb_token_file).resolve() if args.influxdb_token_file else None,
        )
    )


def _site(args: argparse.Namespace) -> int:
    from .site import SiteOptions, resolve_site, run_site

    return run_site(
        SiteOptions(
            config=resolve_site(args.config),
            broker=args.broker,
            check=args.check,
            workdir=Path(args.workdir) if args.workdir else None,
            port=args.port,
            panel_port=args.panel_port,
            mqtt_port=args.mqtt_port,
            timeout_s=args.timeout,
        )
    )


def _drill(args: argparse.Namespace) -> int:
    from .drill import run_drill

    return run_drill(Path(args.scenario), json_file=Path(args.json) if args.json else None, workdir=args.workdir)


def _gateway(args: argparse.Namespace) -> int:
    from .gatewayproc import run

    return run(args.config, args.control_host, args.control_port)


def _load(args: argparse.Namespace) -> int:
    import asyncio

    from .load import LoadError, LoadSettings, run_load_until_interrupted

    try:
        settings = LoadSettings(
            gateways=args.gateways,
            buttons=args.buttons,
            rate=args.rate,
            duration_s=args.duration,
            broker=args.broker,
            root=args.root,
            prefix=args.prefix,
            health_s=args.health_s,
            grace_s=args.grace_s,
            username=args.username,
            password=_read_password(args.password_file),
            password_dir=Path(args.password_dir) if args.password_dir else None,
            ca_file=args.ca_file,
            clean_session=args.clean_session,
            seed=args.seed,
        )
        report = asyncio.run(run_load_until_interrupted(settings))
    except LoadError as exc:
        print(f"siaga-sim load: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict()), flush=True)
    if not args.json:
        print(report.summary(), file=sys.stderr)
    return 0 if report.ok else 1


def _read_password(path: str | None) -> str | None:
    if path is None:
        return None
    from .load import LoadError

    try:
        return Path(path).read_text("utf-8").strip()
    except OSError as exc:
        raise LoadError(f"cannot read the password file {path}: {exc.strerror or exc}") from None


def _webhook(args: argparse.Namespace) -> int:
    from .webhook import run

    return run(args.host, args.port, args.secret_file)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="siaga-sim", description="Siaga simulator: the system without hardware")
    parser.add_argument("--version", action="version", version=f"siaga-sim {__version__}")
    parser.add_argument("--log-level", default=os.environ.get("SIAGA_LOG_LEVEL", "WARNING"))
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run broker, dashboard, gateways and a button panel on this machine")
    demo.add_argument("--workdir", default=".siaga-demo", help="where the demo keeps its data (default .siaga-demo)")
    demo.add_argument(
        "--broker",
        default="embedded",
        help="'embedded' (amqtt, default), 'mosquitto' (a local Mosquitto with the project's config) "
        "or an existing broker as mqtt://host:port",
    )
    demo.add_argument("--mqtt-port", type=int, default=1883, help="port for the started broker (a free one if taken)")
    demo.add_argument("--port", type=int, default=8000, help="dashboard port (default 8000)")
    demo.add_argument("--panel-port", type=int, default=8001, help="button panel port (default 8001)")
    demo.add_argument(
        "--radio-loss", type=float, default=0.0, help="fraction of LoRa packets the virtual air loses (0..1)"
    )
    demo.add_argument(
        "--influxdb",
        default=None,
        help="write time series: 'local' (starts Debian's victoria-metrics) or an InfluxDB 2 URL",
    )
    demo.add_argument("--influxdb-token-file", default=None, help="the API token of the InfluxDB given by URL")
    demo.set_defaults(run=_demo)

    press = commands.add_parser("press", help="press a virtual button of the running demo")
    press.add_argument("button", help="button id, e.g. pasar-andoolo-fire-1")
    press.add_argument("--panel", default=DEFAULT_PANEL, help=f"demo panel URL (default {DEFAULT_PANEL})")
    press.set_defaults(run=_press)

    listing = commands.add_parser("buttons", help="list the running demo's buttons and their LEDs")
    listing.add_argument("--panel", default=DEFAULT_PANEL)
    listing.set_defaults(run=_buttons)

    gateway = commands.add_parser(
        "gateway", help="run one real gateway process with its wired buttons on mock pins and a control API"
    )
    gateway.add_argument("--config", "-c", required=True, help="path of gateway.toml")
    gateway.add_argument("--control-host", default="127.0.0.1")
    gateway.add_argument("--control-port", type=int, default=0, help="port of the control API (default: any free)")
    gateway.set_defaults(run=_gateway)

    _add_site(commands)
    _add_drill(commands)
    _add_load(commands)

    webhook = commands.add_parser(
        "webhook", help="receive escalation notifications, check their signatures and print them"
    )
    webhook.add_argument("--host", default="127.0.0.1")
    webhook.add_argument("--port", type=int, default=9000)
    webhook.add_argument("--secret-file", help="the webhook's secret_file, to check signatures")
    webhook.set_defaults(run=_webhook)

    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.run(args)


def _add_site(commands: argparse._SubParsersAction) -> None:
    site = commands.add_parser(
        "site",
        help="run a real site's gateway.toml on mock pins and virtual radios, against a local or its own broker",
        description="Runs the production gateway with a site's configuration: wired buttons on gpiozero's mock "
        "pins, LoRa buttons as virtual nodes running the reference firmware on a virtual module. What cannot run "
        "on this machine is substituted, and said so. See docs/simulator.md.",
    )
    site.add_argument("config", help="the site's gateway.toml, or the name of a shipped site (pasar-andoolo)")
    site.add_argument(
        "--broker",
        default="embedded",
        choices=("embedded", "mosquitto", "config"),
        help="'embedded' (default: a local broker, dashboard, board and panel, like the demo), 'mosquitto' (the "
        "same on a local Mosquitto) or 'config' (the broker the configuration names, its credentials and TLS)",
    )
    site.add_argument(
        "--check",
        action="store_true",
        help="test every button once, confirm each reached the dashboard, print a summary and exit 0 or 1",
    )
    site.add_argument("--workdir", help="keep the run's data here (default: a temporary folder, removed at exit)")
    site.add_argument("--port", type=int, default=8000, help="the local dashboard's port (default 8000)")
    site.add_argument("--panel-port", type=int, default=8001, help="the button panel's port (default 8001)")
    site.add_argument("--mqtt-port", type=int, default=1883, help="the local broker's port (a free one if taken)")
    site.add_argument("--timeout", type=float, default=20.0, help="seconds each step of the check may take (20)")
    site.set_defaults(run=_site)


def _add_drill(commands: argparse._SubParsersAction) -> None:
    drill = commands.add_parser(
        "drill",
        help="run a scripted drill: timed presses and faults, expected outcomes, a pass/fail timeline",
        description="Runs a site on separate processes (Mosquitto, the dashboard, the gateway) and a scenario's "
        "timeline against it. Exit status 0 only if every expectation held, 1 if one did not, 78 for a malformed "
        "scenario. See docs/simulator.md for the format and the shipped drills.",
    )
    drill.add_argument("scenario", help="the scenario's TOML file, or the name of a shipped drill (market-fire)")
    drill.add_argument("--json", help="also write the report as JSON to this file")
    drill.add_argument("--workdir", help="keep the drill's processes' data and logs here (default: temporary)")
    drill.set_defaults(run=_drill)


def _add_load(commands: argparse._SubParsersAction) -> None:
    load = commands.add_parser(
        "load",
        help="run N virtual gateways against a broker, press their buttons and time the dashboard's answers",
        description="Virtual gateways speaking the real MQTT contract. Every press raises a REAL alarm on the "
        "dashboard behind the broker: point it at a test dashboard. Prints one JSON line; exit status 1 if a "
        "press got no receipt within the grace period. See docs/load.md.",
    )
    load.add_argument("--gateways", type=_positive_int, default=10, help="virtual gateways (default 10)")
    load.add_argument("--buttons", type=_positive_int, default=20, help="buttons per gateway (default 20)")
    load.add_argument("--rate", type=float, default=10.0, help="presses per second over all gateways (default 10)")
    load.add_argument("--duration", type=float, default=None, help="seconds of pressing (default: until Ctrl-C)")
    load.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="mqtt://host:port or mqtts://host:port")
    load.add_argument("--ca-file", help="CA certificate to verify an mqtts:// broker (default: the system's)")
    load.add_argument("--root", default=DEFAULT_ROOT, help=f"topic root (default {DEFAULT_ROOT})")
    load.add_argument("--prefix", default="load-gw", help="gateway ids are PREFIX-0001... (default load-gw)")
    load.add_argument("--health-s", type=float, default=30.0, help="seconds between health reports (default 30)")
    load.add_argument("--grace-s", type=float, default=10.0, help="wait this long for late receipts (default 10)")
    load.add_argument("--username", help="one account shared by every virtual gateway (a test broker)")
    load.add_argument("--password-file", help="the shared account's password, in a file")
    load.add_argument(
        "--password-dir",
        help="a folder of GATEWAY-ID.password files; each gateway logs in as its id (the project's ACL)",
    )
    load.add_argument(
        "--clean-session", action="store_true", help="let the broker forget the virtual gateways when they leave"
    )
    load.add_argument("--seed", type=int, help="seed of the press schedule and the sites (repeatable runs)")
    load.add_argument("--json", action="store_true", help="only the JSON line, no summary on stderr")
    load.set_defaults(run=_load)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
