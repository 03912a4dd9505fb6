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
        )
    )


def _gateway(args: argparse.Namespace) -> int:
    from .gatewayproc import run

    return run(args.config, args.control_host, args.control_port)


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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
