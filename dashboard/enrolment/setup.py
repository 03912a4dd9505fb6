"""``siaga-dashboard broker-setup``: the broker's shared accounts and default access, made through dynsec."""

from __future__ import annotations

import sys
from typing import Any

from firmware_bridge.broker import BrokerSettings

from . import accounts, dynsec
from .brokeradmin import BrokerAdmin
from .dynsec import DynsecError
from .settings import EnrolmentSettings

EXIT_CONFIG = 78


def broker_setup(config: dict[str, Any], ha_password_file: str | None) -> int:
    """Idempotent: run it after ``mosquitto_ctrl dynsec init``, and again whenever a shared password changes."""
    settings: EnrolmentSettings = config["SIAGA_ENROLMENT"]
    broker: BrokerSettings = config["SIAGA_BROKER"]
    if not settings.enabled or settings.admin is None:
        print("siaga-dashboard: broker-setup needs [enrolment] enabled (its dynsec administrator)", file=sys.stderr)
        return EXIT_CONFIG
    if broker.password is None:
        print("siaga-dashboard: broker-setup needs the dashboard's own [mqtt] password_file", file=sys.stderr)
        return EXIT_CONFIG
    ha_password = None
    if ha_password_file:
        try:
            with open(ha_password_file, encoding="utf-8") as handle:
                ha_password = handle.read().strip()
        except OSError as exc:
            print(f"siaga-dashboard: cannot read {ha_password_file}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    admin = BrokerAdmin(settings.admin, timeout_s=settings.broker_timeout_s)
    print(f"broker {broker.describe()}: dynsec administrator {settings.admin.username!r}")
    try:
        done = accounts.shared_accounts(
            admin,
            broker.root,
            dashboard_password=broker.password,
            ha_password=ha_password,
            dashboard_user=broker.username or dynsec.DASHBOARD_USER,
        )
    except DynsecError as exc:
        print(f"siaga-dashboard: broker-setup: {exc}", file=sys.stderr)
        return 1
    for line in done:
        print(f"  {line}")
    print("broker-setup done; gateways get their own accounts when they enrol")
    return 0
