"""Enrolment: plans, one-time codes, broker accounts through Mosquitto's dynsec plugin, and ``siaga-gateway enrol``.

The integration tests run everything for real: Mosquitto with the dynamic
security plugin behind TLS (a trustme CA), the dashboard served over HTTPS by
uvicorn, the administrator's pages with their CSRF tokens, ``siaga-gateway
enrol`` and ``siaga-sim gateway`` as processes. The parts without I/O
(codes, plans, the dynsec commands, the gateway's reading of the answer)
have unit tests of their own.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import re
import ssl
import stat
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from dashboard.db import connect, transaction
from dashboard.enrolment import codes, dynsec, plans
from dashboard.enrolment.accounts import gateway_account, shared_accounts
from dashboard.enrolment.brokeradmin import BrokerAdmin
from dashboard.enrolment.plans import PlanError
from dashboard.enrolment.settings import EnrolmentSettings, read_enrolment
from dashboard.i18n import read_catalogue
from firmware_bridge.broker import BrokerSettings, TlsSettings, make_client
from firmware_bridge.errors import ConfigError
from firmware_bridge.payloads import Kind
from firmware_bridge.settings import parse_toml
from firmware_bridge.tomlwrite import toml_text
from gateway import enrol
from sim.mosquitto import ACL_FILE, CONF_D, DynsecAdmin, Mosquitto, TlsFiles, dynsec_plugin, free_port, wait_for_port
from sim.servers import DashboardServer, dashboard_config
from sim.stores import store_at
from sim.webclient import DashboardClient

from .conftest import ADMIN, OPERATOR
from .mqttprobe import Probe
from .waiting import poll_until

REPO = Path(__file__).resolve().parent.parent
ROOT = "siaga/v1"
SITE = {"site_name": "Pasar Andoolo", "kecamatan": "Andoolo", "lat": "-4.3497", "lon": "122.3786"}
FIRE = {
    "button_id": "andoolo-fire-1",
    "kind": "fire",
    "label": "Blok A",
    "pin": "17",
    "led_pin": "27",
    "buzzer_pin": "22",
}
SAPA = {"button_id": "andoolo-sapa-1", "kind": "sapa", "label": "Pos", "pin": "23", "led_pin": "24", "hold_s": "0.5"}


# -- codes ------------------------------------------------------------------------------------------


def test_a_code_carries_at_least_60_bits_and_reads_back_however_it_is_typed() -> None:
    assert codes.entropy_bits() >= 80 and len(set(codes.ALPHABET)) == 32
    assert not set("01IO") & set(codes.ALPHABET)  # no pair a person confuses
    code = codes.new_code()
    assert re.fullmatch(r"[2-9A-HJ-NP-Z]{4}(-[2-9A-HJ-NP-Z]{4}){3}", code)
    assert codes.normalise(code.lower().replace("-", " ")) == code
    assert codes.normalise(" " + code.replace("-", "") + "\n") == code
    assert codes.normalise(code[:-1]) is None and codes.normalise(code[:-1] + "0") is None
    assert codes.normalise(code[:-1] + "é") is None
    assert codes.digest(code) != codes.digest(codes.new_code()) and len(codes.digest(code)) == 64


# -- plans ------------------------------------------------------------------------------------------


def test_each_wrong_field_of_a_site_is_named() -> None:
    with pytest.raises(PlanError) as caught:
        plans.read_site({"site_name": "", "kecamatan": "x\x07", "lat": "91", "lon": "east"})
    assert {name: error.key for name, error in caught.value.by_field().items()} == {
        "site_name": "enrol_err_required",
        "kecamatan": "enrol_err_text",
        "lat": "enrol_err_number",
        "lon": "enrol_err_number",
    }
    site = plans.read_site({**SITE, "lat": "-4,3497"})  # a decimal comma, as Indonesian keyboards type it
    assert (site.name, site.kecamatan, site.lat, site.lon) == ("Pasar Andoolo", "Andoolo", -4.3497, 122.3786)


def test_buttons_are_checked_as_the_gateway_checks_them() -> None:
    fire = plans.read_button(FIRE)
    assert (fire.kind, fire.pin, fire.led_pin, fire.buzzer_pin, fire.hold_s) == (Kind.FIRE, 17, 27, 22, 0.0)

    def wrong(form: dict[str, str], others: tuple[plans.Button, ...] = (fire,)) -> dict[str, str]:
        with pytest.raises(PlanError) as caught:
            plans.read_button(form, others)
        return {name: error.key for name, error in caught.value.by_field().items()}

    assert wrong({**SAPA, "buzzer_pin": "5"}) == {"buzzer_pin": "enrol_err_buzzer_sapa"}
    assert wrong({**SAPA, "pin": "27"}) == {"pin": "enrol_err_pin_taken"}  # fire-1's LED
    assert wrong({**SAPA, "pin": "9", "led_pin": "9"}) == {"led_pin": "enrol_err_pin_taken"}
    assert wrong({**SAPA, "pin": "28", "led_pin": "-1"}) == {"pin": "enrol_err_pin", "led_pin": "enrol_err_pin"}
    assert wrong({**SAPA, "button_id": FIRE["button_id"]}) == {"button_id": "enrol_err_exists"}
    assert wrong({**SAPA, "button_id": "-bad id"}) == {"button_id": "enrol_err_id"}
    assert wrong({**SAPA, "kind": "flood"}) == {"kind": "enrol_err_kind"}
    assert wrong({**SAPA, "hold_s": "31"}) == {"hold_s": "enrol_err_number"}
    assert wrong({**SAPA, "pin": ""}) == {"pin": "enrol_err_required"}
    assert plans.check_gateway_id("dashboard")[0].key == "enrol_err_reserved"
    assert plans.check_gateway_id("siaga-admin", reserved={"siaga-admin"})[0].key == "enrol_err_reserved"
    assert plans.check_gateway_id("gw.a", clustered=True)[0].key == "enrol_err_dot_cluster"
    assert plans.check_gateway_id("gw.a") == [] and plans.check_gateway_id("")[0].key == "enrol_err_required"


def test_every_message_a_plan_check_can_give_has_a_text_in_both_languages() -> None:
    source = (REPO / "dashboard" / "enrolment" / "plans.py").read_text() + (
        REPO / "dashboard" / "enrolment" / "pages.py"
    ).read_text()
    keys = set(re.findall(r'"(enrol_err_[a-z_]+)"', source))
    assert len(keys) >= 10
    for language in ("id", "en"):
        assert keys <= set(read_catalogue(language)), language


def _settings(tmp_path: Path, **overrides: Any) -> EnrolmentSettings:
    ca = tmp_path / "broker-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nnot read here\n-----END CERTIFICATE-----\n")
    values: dict[str, Any] = {
        "enabled": True,
        "admin": BrokerSettings(username="siaga-admin", password="x"),
        "brokers": ("mqtts://broker.example:8883",),
        "broker_ca_file": ca,
        "public_url": "https://siaga.example",
    }
    return EnrolmentSettings(**{**values, **overrides})


def test_the_configuration_a_plan_makes_is_one_the_gateway_reads(tmp_path: Path) -> None:
    site = plans.read_site(SITE)
    buttons = (plans.read_button(FIRE), plans.read_button(SAPA, (plans.read_button(FIRE),)))
    text = plans.gateway_toml("gw-andoolo", site, buttons, _settings(tmp_path))
    assert "password =" not in text and "/etc/siaga/mqtt-password" in text  # a path, never a secret
    answer = enrol.Answer("gw-andoolo", text, "pw", "-----BEGIN CERTIFICATE-----\n", None, False)
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / enrol.PASSWORD_NAME).write_text("pw\n")
    (folder / enrol.BROKER_CA_NAME).write_text("pem\n")
    config = enrol.check_config(enrol.placed(answer, folder), folder)
    assert config.id == "gw-andoolo" and config.broker.username == "gw-andoolo" and config.broker.password == "pw"
    assert config.broker.tls is not None and config.broker.tls.ca_file == str(folder / "ca.crt")
    assert config.dashboard is not None and config.dashboard.url == "https://siaga.example"
    fire, sapa = config.buttons
    assert (fire.id, fire.pin, fire.led_pin, fire.buzzer_pin, fire.site.kecamatan) == (
        "andoolo-fire-1",
        17,
        27,
        22,
        "Andoolo",
    )
    assert (sapa.kind, sapa.hold_s, sapa.buzzer_pin) == (Kind.SAPA, 0.5, None)


LORA = {"lora_module": "rylr998", "lora_port": "/dev/ttyUSB0"}
LORA_FIRE = {"button_id": "andoolo-lora-1", "kind": "fire", "label": "Kios 12", "node": "7"}


def test_a_lora_module_and_lora_buttons_are_checked_as_the_gateway_checks_them() -> None:
    lora = plans.read_lora({"lora_module": "e32"})  # the gateway's own defaults, the first USB adapter
    assert (lora.port, lora.mode, lora.channel, lora.e32_address, lora.network_id) == (
        plans.DEFAULT_PORT,
        "transparent",
        23,
        1,
        18,
    )
    with pytest.raises(PlanError) as caught:
        plans.read_lora(
            {
                "lora_module": "sx1276",
                "lora_port": "COM3; rm",
                "lora_network_id": "2",
                "lora_band": "433000000",
                "lora_parameter": "9,7",
                "lora_mode": "broadcast",
                "lora_channel": "256",
                "lora_address": "1.5",
            }
        )
    assert {name: error.key for name, error in caught.value.by_field().items()} == {
        "lora_module": "enrol_err_lora_module",
        "lora_port": "enrol_err_lora_port",
        "lora_network_id": "enrol_err_network_id",
        "lora_band": "enrol_err_integer",
        "lora_parameter": "enrol_err_lora_parameter",
        "lora_mode": "enrol_err_lora_mode",
        "lora_channel": "enrol_err_integer",
        "lora_address": "enrol_err_integer",
    }
    wired = (plans.read_button(FIRE),)
    first = plans.read_lora_button(LORA_FIRE, wired)
    assert (first.id, first.kind, first.node, first.label) == ("andoolo-lora-1", Kind.FIRE, 7, "Kios 12")

    def wrong(form: dict[str, str]) -> dict[str, str]:
        with pytest.raises(PlanError) as caught:
            plans.read_lora_button(form, wired, (first,))
        return {name: error.key for name, error in caught.value.by_field().items()}

    assert wrong({**LORA_FIRE, "button_id": "andoolo-lora-2"}) == {"node": "enrol_err_node_taken"}
    assert wrong({**LORA_FIRE, "node": "8"}) == {"button_id": "enrol_err_exists"}
    assert wrong({**LORA_FIRE, "button_id": FIRE["button_id"], "node": "8"}) == {"button_id": "enrol_err_exists"}
    for node in ("0", "4294967296", "-3", "x"):
        assert wrong({**LORA_FIRE, "button_id": "b-2", "node": node}) == {"node": "enrol_err_node"}, node
    assert wrong({"button_id": "b-2", "kind": "flood"}) == {"kind": "enrol_err_kind", "node": "enrol_err_required"}
    # A wired button may not take a LoRa button's id either.
    with pytest.raises(PlanError):
        plans.read_button({**SAPA, "button_id": "andoolo-lora-1"}, wired, (first,))


def test_a_plan_with_lora_buttons_makes_their_tables_and_validates_without_the_keys(tmp_path: Path) -> None:
    site = plans.read_site(SITE)
    lora = plans.read_lora(LORA)
    nodes = (
        plans.read_lora_button(LORA_FIRE),
        plans.read_lora_button({**LORA_FIRE, "button_id": "l-2", "node": "9", "kind": "sapa"}),
    )
    text = plans.gateway_toml("gw-andoolo", site, (), _settings(tmp_path), lora=lora, lora_buttons=nodes)
    document = tomllib.loads(text)
    assert document["lora"] == {
        "module": "rylr998",
        "port": "/dev/ttyUSB0",
        "keys_file": "/etc/siaga/lora-keys.toml",
        "address": 1,
        "network_id": 18,
        "band": 923_000_000,
        "parameter": "9,7,1,12",
    }
    assert [(b["id"], b["node"], b["kind"], b["site"]["name"]) for b in document["lora_button"]] == [
        ("andoolo-lora-1", 7, "fire", "Pasar Andoolo"),
        ("l-2", 9, "sapa", "Pasar Andoolo"),
    ]
    assert "button" not in document and not re.search(r"[0-9a-f]{32}", text)  # no key, ever
    # Without LoRa buttons no [lora] table (the gateway would ask for a keys file it does not need).
    assert "[lora]" not in plans.gateway_toml("gw-a", site, (plans.read_button(FIRE),), _settings(tmp_path), lora=lora)
    # The gateway checks it with throwaway keys in its staging folder: no keys file is written by the check.
    answer = enrol.Answer("gw-andoolo", text, "pw", "-----BEGIN CERTIFICATE-----\n", None, False)
    placed = enrol._validated(answer, tmp_path)
    assert placed["lora"]["keys_file"] == str(tmp_path / "lora-keys.toml")
    assert list(tmp_path.iterdir()) == [tmp_path / "broker-ca.pem"]
    assert enrol.lora_nodes(placed) == [(7, "fire"), (9, "sapa")]


def test_the_enrolment_section_is_checked_at_start(tmp_path: Path) -> None:
    password = tmp_path / "admin-password"
    password.write_text("secret\n")

    def read(text: str) -> EnrolmentSettings:
        return read_enrolment(parse_toml(text, "dashboard.toml").section("enrolment"), BrokerSettings(port=1884))

    assert read("[enrolment]\nbrokers = ['nonsense']\n") == EnrolmentSettings()  # off: kept, not read
    with pytest.raises(ConfigError, match="brokerz"):
        read("[enrolment]\nbrokerz = []\n")
    good = f"[enrolment]\nenabled = true\nadmin_password_file = '{password}'\npublic_url = 'https://siaga.example/'\n"
    settings = read(good + "brokers = ['mqtt://10.0.0.5:1883']\n")
    assert settings.admin is not None and (settings.admin.username, settings.admin.password) == (
        "siaga-admin",
        "secret",
    )
    assert settings.admin.port == 1884 and settings.public_url == "https://siaga.example" and settings.code_ttl_h == 24
    with pytest.raises(ConfigError, match="broker_ca_file"):
        read(good + "brokers = ['mqtts://10.0.0.5:8883']\n")
    with pytest.raises(ConfigError, match="public_url"):
        read(good.replace("https://siaga.example/", "http://siaga.example") + "brokers = ['mqtt://h:1']\n")
    with pytest.raises(ConfigError, match="mixes"):
        read(good + "brokers = ['mqtt://a:1', 'mqtts://b:2']\n")


# -- dynsec -----------------------------------------------------------------------------------------


def _acl_file_rules(user: str | None, gw_id: str = "") -> set[tuple[str, str]]:
    """(acltype, topic) of siaga.acl's lines for ``user`` (None: the pattern lines, with %u as ``gw_id``)."""
    rules: set[tuple[str, str]] = set()
    current = None
    for line in ACL_FILE.read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "user":
            current = words[1]
        elif (words[0] == "topic" and current == user) or (words[0] == "pattern" and user is None):
            access, topic = words[1], words[2].replace("%u", gw_id)
            if access in ("read", "readwrite"):
                rules |= {("subscribePattern", topic), ("publishClientReceive", topic)}
            if access in ("write", "readwrite"):
                rules.add(("publishClientSend", topic))
    return rules


def test_the_dynsec_roles_grant_exactly_what_the_acl_file_grants() -> None:
    def pairs(acls: list[dynsec.Acl]) -> set[tuple[str, str]]:
        assert all(acl.allow for acl in acls)
        return {(acl.acltype, acl.topic) for acl in acls}

    assert pairs(dynsec.gateway_acls(ROOT, "gw-7")) == _acl_file_rules(None, "gw-7")
    assert pairs(dynsec.dashboard_acls(ROOT)) == _acl_file_rules("dashboard")
    assert pairs(dynsec.ha_acls(ROOT)) == _acl_file_rules("ha@siaga")
    with pytest.raises(ValueError):
        dynsec.gateway_acls(ROOT, "gw/+")  # a topic wildcard can never become a gateway's role


def test_the_plugins_answers_are_read_and_refusals_named() -> None:
    create = dynsec.create_client("gw-1", "pw", ["r"])
    raw = json.dumps(
        {
            "responses": [
                {
                    "command": "createClient",
                    "error": "Client already exists",
                    "correlationData": create["correlationData"],
                }
            ]
        }
    ).encode()
    (answer,) = dynsec.parse_answers(raw)
    assert answer.already_there and not answer.ok
    with pytest.raises(dynsec.DynsecError, match="createClient gw-1: Client already exists"):
        dynsec.refused([create], {answer.correlation: answer})
    dynsec.refused([create], {answer.correlation: answer}, tolerated=("already exists",))
    with pytest.raises(dynsec.DynsecError, match="not understood"):
        dynsec.parse_answers(b"[1]")


# -- the gateway's side without a dashboard ---------------------------------------------------------


def test_enrol_refuses_plain_http_off_this_machine_and_an_existing_configuration(tmp_path: Path) -> None:
    assert enrol.check_url("https://siaga.example/") == "https://siaga.example"
    assert enrol.check_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    for url in ("http://siaga.example", "ftp://x", "siaga.example"):
        with pytest.raises(enrol.EnrolError) as caught:
            enrol.check_url(url)
        assert caught.value.exit_code == enrol.EXIT_USAGE
    config = tmp_path / "gateway.toml"
    config.write_text("kept\n")
    result = _enrol_process(config, "https://127.0.0.1:9", "AAAA-BBBB-CCCC-DDDD")
    assert result.returncode == enrol.EXIT_EXISTS and "--force" in result.stderr
    assert config.read_text() == "kept\n"


def test_an_answer_that_is_not_an_enrolment_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    for raw in (b"{}", b"not json", json.dumps({"gateway_id": "g", "config": "", "mqtt_password": ""}).encode()):
        with pytest.raises(enrol.EnrolError) as caught:
            enrol.parse_answer(raw)
        assert caught.value.exit_code == enrol.EXIT_CONFIG
    bad_ca = {"gateway_id": "g", "config": "", "mqtt_password": "p", "broker_ca": "<html>"}
    with pytest.raises(enrol.EnrolError, match="PEM"):
        enrol.parse_answer(json.dumps(bad_ca).encode())


def test_files_are_written_atomically_with_their_modes(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    enrol.write_atomically(path, "one\n", 0o600)
    enrol.write_atomically(path, "two\n", 0o600)
    assert path.read_text() == "two\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]  # no temporary file left behind


# -- the whole of it, for real ----------------------------------------------------------------------


@dataclass
class Site:
    tmp: Path
    ca: trustme.CA
    ca_file: Path
    broker: Mosquitto
    dashboard: DashboardServer
    url: str
    admin: DashboardClient
    operator: DashboardClient
    dashboard_password: str

    def broker_settings(self, username: str, password: str) -> BrokerSettings:
        return BrokerSettings(
            host=self.broker.host,
            port=self.broker.port,
            username=username,
            password=password,
            tls=TlsSettings(ca_file=str(self.ca_file)),
        )

    def store(self) -> Any:
        return connect(self.dashboard.config["DATABASE"])


def _https_client(url: str) -> DashboardClient:
    # SSL_CERT_FILE (set by the fixture) makes the client trust the test CA, as a system CA would be trusted.
    return DashboardClient(url)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "server.pem", tmp_path / "server.key"
    server_cert.cert_chain_pems[0].write_to_path(str(cert_file))
    server_cert.private_key_pem.write_to_path(str(key_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))

    admin_password = "dynsec-admin-password-1"
    tls = TlsFiles(str(ca_file), str(cert_file), str(key_file))
    broker = Mosquitto(tmp_path / "mosquitto", tls=tls, dynsec=DynsecAdmin("siaga-admin", admin_password)).start()
    try:
        workdir = tmp_path / "dashboard"
        workdir.mkdir()
        dashboard_password = "dashboard-broker-password-1"
        _broker_setup(workdir, broker, ca_file, admin_password, dashboard_password)
        port = free_port()
        url = f"https://127.0.0.1:{port}"
        settings = _enrolment_settings(broker, ca_file, admin_password, public_url=url)
        mqtt = BrokerSettings(
            host=broker.host,
            port=broker.port,
            username="dashboard",
            password=dashboard_password,
            tls=TlsSettings(ca_file=str(ca_file)),
        )
        config = dashboard_config(
            workdir,
            mqtt,
            port=port,
            SIAGA_TLS_CERT_FILE=str(cert_file),
            SIAGA_TLS_KEY_FILE=str(key_file),
            SIAGA_ENROLMENT=settings,
        )
        dashboard = DashboardServer(config).start()
        try:
            dashboard.create_user(*ADMIN, "admin")
            dashboard.create_user(*OPERATOR, "fire_operator")
            admin = _https_client(url)
            admin.login(*ADMIN)
            operator = _https_client(url)
            operator.login(*OPERATOR)
            yield Site(tmp_path, ca, ca_file, broker, dashboard, url, admin, operator, dashboard_password)
        finally:
            dashboard.stop()
    finally:
        broker.stop()


def _enrolment_settings(broker: Mosquitto, ca_file: Path, admin_password: str, *, public_url: str) -> EnrolmentSettings:
    return EnrolmentSettings(
        enabled=True,
        admin=BrokerSettings(
            host=broker.host,
            port=broker.port,
            username="siaga-admin",
            password=admin_password,
            tls=TlsSettings(ca_file=str(ca_file)),
        ),
        brokers=(f"mqtts://{broker.host}:{broker.port}",),
        broker_ca_file=ca_file,
        public_url=public_url,
        dashboard_ca_file=ca_file,
    )


def _broker_setup(
    workdir: Path, broker: Mosquitto, ca_file: Path, admin_password: str, dashboard_password: str
) -> None:
    """``siaga-dashboard broker-setup`` from a dashboard.toml, as an operator runs it (twice: it is idempotent)."""
    (workdir / "admin-password").write_text(admin_password + "\n")
    (workdir / "mqtt-password").write_text(dashboard_password + "\n")
    document = {
        "dashboard": {"data_dir": workdir, "database": store_at(workdir / "setup.sqlite")},
        "mqtt": {
            "brokers": [f"mqtts://{broker.host}:{broker.port}"],
            "username": "dashboard",
            "password_file": workdir / "mqtt-password",
            "tls": {"ca_file": ca_file},
        },
        "enrolment": {
            "enabled": True,
            "admin_password_file": workdir / "admin-password",
            "brokers": [f"mqtts://{broker.host}:{broker.port}"],
            "broker_ca_file": ca_file,
            "public_url": "https://127.0.0.1",
        },
    }
    path = workdir / "dashboard.toml"
    path.write_text(toml_text(document))
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "dashboard", "--config", str(path), "broker-setup"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
    assert "client 'dashboard' in role 'siaga-dashboard' (updated)" in result.stdout


def _enrol_process(
    config: Path, url: str, code: str, *extra: str, ca_file: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "SSL_CERT_FILE"}  # trust only --ca-file
    command = [sys.executable, "-m", "gateway", "--config", str(config), "enrol", url, code, "--no-start", *extra]
    if ca_file is not None:
        command += ["--ca-file", str(ca_file)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


def _plan(site: Site, gw_id: str, buttons: list[dict[str, str]]) -> None:
    status, page = site.admin.post_form("/admin/enrolment", {"gateway_id": gw_id, **SITE})
    assert status == 200 and f'data-gateway="{gw_id}"' in site.admin.get_page("/admin/enrolment")[1], page
    for button in buttons:
        status, page = site.admin.post_form(f"/admin/enrolment/{gw_id}/buttons", button)
        assert status == 200 and f'data-button="{button["button_id"]}"' in page, page


def _issue(site: Site, gw_id: str) -> str:
    site.admin.get_page(f"/admin/enrolment/{gw_id}")
    status, page = site.admin.post_form(f"/admin/enrolment/{gw_id}/codes", {})
    assert status == 200, page
    match = re.search(r'id="new-code">([A-Z0-9-]+)<', page)
    assert match, page
    return match.group(1)


def _post_code(site: Site, code: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        site.url + "/api/enrol",
        data=json.dumps({"code": code}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    context = ssl.create_default_context(cafile=str(site.ca_file))
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _audit(site: Site) -> list[tuple[str, str | None, dict[str, Any]]]:
    conn = site.store()
    try:
        rows = conn.execute(
            "SELECT action, subject, after FROM audit_log WHERE action LIKE 'enrolment.%' ORDER BY at, id"
        ).fetchall()
    finally:
        conn.close()
    return [(row[0], row[1], json.loads(row[2] or "{}")) for row in rows]


def _start_sim_gateway(config: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "sim", "gateway", "--config", str(config), "--control-port", str(port)],
            stdout=output,
            stderr=output,
        )
    if not wait_for_port("127.0.0.1", port, 30):
        process.kill()
        raise AssertionError(f"siaga-sim gateway did not start: {log.read_text()[-2000:]}")
    return process, f"http://127.0.0.1:{port}"


def test_a_planned_gateway_enrols_over_https_connects_with_its_own_account_and_its_press_reaches_the_board(
    site: Site,
) -> None:
    admin = site.admin
    # The form says what is wrong, field by field; the CSRF token is required.
    status, page = admin.post_form("/admin/enrolment", {"gateway_id": "dashboard", **SITE, "lat": "100"})
    assert status == 422 and 'id="error-gateway_id"' in page and 'id="error-lat"' in page
    forged = DashboardClient(site.url)
    forged.cookies = admin.cookies
    forged.csrf = "forged"
    assert forged.post_form("/admin/enrolment", {"gateway_id": "gw-forged", **SITE})[0] == 400
    _plan(site, "gw-andoolo", [FIRE, SAPA])
    status, page = admin.post_form("/admin/enrolment/gw-andoolo/buttons", {**FIRE, "button_id": "x-2"})
    assert status == 422 and "andoolo-fire-1 (pin)" in page  # the pin is taken, and by whom
    status, page = admin.get_page("/admin/enrolment/gw-andoolo")
    assert "password_file" in page and "mqtt-password" in page and "dynsec-admin" not in page

    code = _issue(site, "gw-andoolo")
    etc = site.tmp / "etc" / "siaga"
    config_path = etc / "gateway.toml"
    # Without the dashboard's CA the certificate is refused and nothing is written; the code is not spent.
    refused = _enrol_process(config_path, site.url, code)
    assert refused.returncode == enrol.EXIT_NETWORK and "--ca-file" in refused.stderr
    assert not config_path.exists()

    result = _enrol_process(config_path, site.url, code, ca_file=site.ca_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "enrolled gateway gw-andoolo" in result.stdout and "--no-start" in result.stdout
    secret_mode = 0o640 if os.geteuid() == 0 and _group_exists("siaga") else 0o600
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in etc.iterdir()}
    assert modes == {"gateway.toml": 0o644, "mqtt-password": secret_mode, "ca.crt": 0o644, "dashboard-ca.crt": 0o644}
    document = tomllib.loads(config_path.read_text())
    assert document["mqtt"]["password_file"] == str(etc / "mqtt-password")
    assert document["dashboard"] == {"url": site.url, "ca_file": str(etc / "dashboard-ca.crt")}
    password = (etc / "mqtt-password").read_text().strip()
    assert len(password) >= 22  # 128 bits as URL-safe base64
    conn = site.store()
    try:
        stored = " ".join(str(value) for row in conn.execute("SELECT * FROM enrolment_codes") for value in row)
        stored += " ".join(str(value) for row in conn.execute("SELECT * FROM gateway_plans") for value in row)
    finally:
        conn.close()
    assert password not in stored and code not in stored  # neither the password nor the code in clear

    # The enrolled gateway (sim's gateway on mock pins) runs from exactly these files; only its data folder moves.
    document["gateway"]["data_dir"] = str(site.tmp / "gateway-data")
    runnable = etc / "gateway-run.toml"
    runnable.write_text(toml_text(document))
    process, control = _start_sim_gateway(runnable, site.tmp / "gateway.log")
    try:
        request = urllib.request.Request(control + "/press/andoolo-fire-1", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        alarms = poll_until(
            lambda: site.operator.get_json("/api/alarms")["alarms"], lambda a: len(a) == 1, timeout=15, what="alarm"
        )
        assert (alarms[0]["button"], alarms[0]["gw"], alarms[0]["kind"]) == ("andoolo-fire-1", "gw-andoolo", "fire")
    finally:
        process.terminate()
        process.wait(10)

    # Its account may use only its own topics: a press in another gateway's name is dropped by the broker.
    with Probe(site.broker_settings("dashboard", site.dashboard_password)) as watcher:
        watcher.subscribe(f"{ROOT}/gw/+/event")
        with Probe(site.broker_settings("gw-andoolo", password)) as intruder:
            intruder.publish(f"{ROOT}/gw/gw-other/event", b"forged")
            intruder.publish(f"{ROOT}/gw/gw-andoolo/event", b"own")  # after it, on the same connection
        received = watcher.wait_for(lambda m: m.payload == b"own")
        assert [m.topic for m in watcher.seen] == [received.topic] == [f"{ROOT}/gw/gw-andoolo/event"]

    # Re-enrolment replaces the password: the old one no longer logs in.
    again = _enrol_process(config_path, site.url, _issue(site, "gw-andoolo"), "--force", ca_file=site.ca_file)
    assert again.returncode == 0 and "old password no longer works" in again.stdout, again.stderr
    new_password = (etc / "mqtt-password").read_text().strip()
    assert new_password != password
    assert _login(site.broker_settings("gw-andoolo", password)) == "Not authorized"
    assert _login(site.broker_settings("gw-andoolo", new_password)) == "Success"
    actions = [action for action, _, _ in _audit(site)]
    assert actions.count("enrolment.code_used") == 2 and actions.count("enrolment.code_issued") == 2
    assert {"enrolment.plan_created", "enrolment.button_added"} <= set(actions)


def _login(settings: BrokerSettings) -> str:
    """The broker's answer to a login with these credentials."""
    answered: list[str] = []
    client = make_client(settings, f"login-{os.getpid()}-{time.monotonic_ns()}", persistent=False)
    client.on_connect = lambda _c, _u, _f, reason, _p: answered.append(str(reason))
    client.connect(settings.host, settings.port)
    try:
        poll_until(lambda: answered, timeout=10, what="CONNACK", pause=lambda s: client.loop(s))
    finally:
        client.disconnect()
    return answered[0]


def _group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def test_a_code_works_once_expires_is_revocable_and_wrong_codes_are_counted_audited_and_throttled(site: Site) -> None:
    _plan(site, "gw-konda", [{**FIRE, "button_id": "konda-fire-1"}])
    code = _issue(site, "gw-konda")
    status, answer = _post_code(site, code.lower().replace("-", " "))
    assert status == 200 and answer["gateway_id"] == "gw-konda" and answer["mqtt_username"] == "gw-konda"
    assert answer["broker_ca"] == site.ca_file.read_text() and "[[button]]" in answer["config"]

    # Once: the same code again is refused, and the gateway's command says so plainly (exit 2).
    used = _enrol_process(site.tmp / "etc2" / "gateway.toml", site.url, code, ca_file=site.ca_file)
    assert used.returncode == enrol.EXIT_REFUSED and "used already" in used.stderr

    # Expiry: a code past its time is refused as expired.
    expiring = _issue(site, "gw-konda")
    conn = site.store()
    try:
        with transaction(conn):  # its 24 hours gone by
            conn.execute("UPDATE enrolment_codes SET expires_at = ? WHERE hint = ?", (time.time() - 1, expiring[-4:]))
    finally:
        conn.close()
    status, answer = _post_code(site, expiring)
    assert (status, answer["error"], answer["reason"]) == (403, "code_refused", "expired")
    assert "expired" in answer["message"]

    # Revocation from the page; issuing a new code also revokes the unused one before it.
    first, second = _issue(site, "gw-konda"), _issue(site, "gw-konda")
    assert _post_code(site, first)[1]["reason"] == "revoked"
    _, page = site.admin.get_page("/admin/enrolment/gw-konda")
    (code_id,) = re.findall(r'data-code="(\d+)" data-state="active"', page)
    status, page = site.admin.post_form(f"/admin/enrolment/gw-konda/codes/{code_id}/revoke", {})
    assert status == 200 and f'data-code="{code_id}" data-state="revoked"' in page
    assert _post_code(site, second)[1]["reason"] == "revoked"

    refused_so_far = 4  # used (by the enrol command), expired, and two revoked
    for _ in range(10 - refused_so_far):
        assert _post_code(site, codes.new_code())[1]["reason"] == "unknown"
    # Ten wrong codes from one address: the eleventh try waits, whatever code it carries.
    status, answer = _post_code(site, _issue(site, "gw-konda"))
    assert status == 429 and answer["error"] == "too_many_wrong_codes"
    counters = site.admin.get_json("/api/diagnostics")["enrolment"]  # where an administrator sees them
    assert counters["enrol_codes_refused"] == 10 and counters["enrol_throttled"] == 1
    assert counters["enrol_codes_refused_unknown"] == 6 and counters["enrol_codes_used"] == 1

    audit = _audit(site)
    refusals = [after["reason"] for action, _, after in audit if action == "enrolment.code_refused"]
    assert sorted(refusals) == sorted(["used", "expired", "revoked", "revoked"] + ["unknown"] * 6)
    assert ("enrolment.code_revoked", "gateway:gw-konda") in {(action, subject) for action, subject, _ in audit}
    assert any(action == "enrolment.code_used" and subject == "gateway:gw-konda" for action, subject, _ in audit)


def test_a_broker_that_cannot_make_the_account_gives_the_code_back_and_only_admins_plan(site: Site) -> None:
    assert site.operator.post_form("/admin/enrolment", {"gateway_id": "gw-x", **SITE})[0] == 403
    _plan(site, "gw-tinanggea", [{**FIRE, "button_id": "tinanggea-fire-1"}])
    code = _issue(site, "gw-tinanggea")
    site.broker.stop()
    try:
        status, answer = _post_code(site, code)
    finally:
        site.broker.start()
    assert (status, answer["error"]) == (503, "broker_unavailable")
    status, answer = _post_code(site, code)  # the same code, now that the broker is back
    assert status == 200 and answer["gateway_id"] == "gw-tinanggea"
    assert _login(site.broker_settings("gw-tinanggea", answer["mqtt_password"])) == "Success"
    failed = [after for action, _, after in _audit(site) if action == "enrolment.failed"]
    assert len(failed) == 1 and failed[0]["reason"] == "broker"


def test_the_shipped_dynsec_broker_configuration_runs_and_takes_the_accounts(tmp_path: Path) -> None:
    """deploy/mosquitto/siaga-dynsec.conf.example with only its site-specific paths and ports replaced."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    files = {name: tmp_path / name for name in ("ca.crt", "broker.crt", "broker.key")}
    ca.cert_pem.write_to_path(str(files["ca.crt"]))
    cert.cert_chain_pems[0].write_to_path(str(files["broker.crt"]))
    cert.private_key_pem.write_to_path(str(files["broker.key"]))
    state = tmp_path / "dynamic-security.json"
    subprocess.run(
        ["mosquitto_ctrl", "dynsec", "init", str(state), "siaga-admin", "admin-pw-1"], check=True, capture_output=True
    )
    plain, tls = free_port(), free_port()
    text = (REPO / "deploy" / "mosquitto" / "siaga-dynsec.conf.example").read_text()
    for shipped, here in {
        "listener 1883 127.0.0.1": f"listener {plain} 127.0.0.1",
        "listener 8883": f"listener {tls} 127.0.0.1",
        "/etc/mosquitto/certs/": f"{tmp_path}/",
        "/var/lib/mosquitto/dynsec/dynamic-security.json": str(state),
        "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so": dynsec_plugin(),
    }.items():
        assert shipped in text
        text = text.replace(shipped, here)
    directives = {line.split()[0] for line in text.splitlines() if line.strip() and not line.startswith("#")}
    assert {"plugin", "plugin_opt_config_file"} <= directives and not {"password_file", "acl_file"} & directives
    config = tmp_path / "mosquitto.conf"
    run_as = f"user {getpass.getuser()}\npersistence_location {tmp_path}/\nlog_dest file {tmp_path}/log\n"
    config.write_text(f"{run_as}{text}include_dir {CONF_D}\n")
    with open(tmp_path / "stderr", "wb") as stderr:
        process = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=stderr, stderr=stderr)
    try:
        assert wait_for_port("127.0.0.1", tls, 10), (tmp_path / "stderr").read_text()
        admin = BrokerAdmin(BrokerSettings(port=plain, username="siaga-admin", password="admin-pw-1"))
        shared_accounts(admin, ROOT, dashboard_password="dash-pw")
        account = gateway_account(admin, ROOT, "gw-shipped")
        secure = BrokerSettings(port=tls, tls=TlsSettings(ca_file=str(files["ca.crt"])))
        assert _login(dataclasses.replace(secure, username="gw-shipped", password=account.password)) == "Success"
        assert _login(dataclasses.replace(secure, username="gw-shipped", password="wrong")) == "Not authorized"
        assert _login(dataclasses.replace(secure, username="dashboard", password="dash-pw")) == "Success"
    finally:
        process.terminate()
        process.wait(10)


def test_a_gateway_with_lora_buttons_enrols_without_keys_and_runs_once_its_nodes_are_provisioned(site: Site) -> None:
    admin = site.admin
    _plan(site, "gw-lora", [])
    # A LoRa button before the module: said at the node field; a wrong module: said per field.
    status, page = admin.post_form("/admin/enrolment/gw-lora/lora-buttons", LORA_FIRE)
    assert status == 422 and 'id="error-node"' in page
    status, page = admin.post_form("/admin/enrolment/gw-lora/lora", {**LORA, "lora_network_id": "16"})
    assert status == 422 and 'id="error-lora_network_id"' in page
    status, page = admin.post_form("/admin/enrolment/gw-lora/lora", LORA)
    assert status == 200 and 'id="lora-buttons"' in page, page
    status, page = admin.post_form("/admin/enrolment/gw-lora/lora-buttons", LORA_FIRE)
    assert status == 200 and 'data-lora-button="andoolo-lora-1"' in page, page
    assert (
        "keys_file = &#34;/etc/siaga/lora-keys.toml&#34;" in page or 'keys_file = "/etc/siaga/lora-keys.toml"' in page
    )
    # Node ids and button ids are unique across plans (wired and LoRa alike).
    _plan(site, "gw-other", [])
    admin.post_form("/admin/enrolment/gw-other/lora", {"lora_module": "e22"})
    status, page = admin.post_form("/admin/enrolment/gw-other/lora-buttons", {**LORA_FIRE, "button_id": "o-1"})
    assert status == 422 and 'id="error-node"' in page and "andoolo-lora-1 (gw-lora)" in page
    status, page = admin.post_form("/admin/enrolment/gw-other/buttons", {**FIRE, "button_id": "andoolo-lora-1"})
    assert status == 422 and 'id="error-button_id"' in page
    assert ("enrolment.lora_set", "gateway:gw-lora") in {(action, subject) for action, subject, _ in _audit(site)}

    etc = site.tmp / "etc-lora"
    config_path = etc / "gateway.toml"
    result = _enrol_process(config_path, site.url, _issue(site, "gw-lora"), ca_file=site.ca_file)
    assert result.returncode == 0, result.stdout + result.stderr
    keys_file = etc / "lora-keys.toml"
    secret_mode = 0o640 if os.geteuid() == 0 and _group_exists("siaga") else 0o600
    assert stat.S_IMODE(keys_file.stat().st_mode) == secret_mode
    assert tomllib.loads(keys_file.read_text()) == {"keys": {}}  # empty: the keys are made here, next
    provision = f"siaga-gateway --config {config_path} provision-node 7 --kind fire --output node-7.py"
    lines = result.stdout.splitlines()
    assert provision in [line.strip() for line in lines], result.stdout
    assert lines.index("  " + provision) < lines.index(
        "  systemctl enable siaga-gateway && systemctl restart siaga-gateway"
    )
    assert "not started: 1 LoRa node(s) have no key yet" in result.stdout and "--no-start" not in result.stdout

    def gateway(*command: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "gateway", "--config", str(config_path), *command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=site.tmp)

    assert gateway("--check").returncode == 78  # the node has no key yet: the daemon would refuse to start
    made = gateway("provision-node", "7", "--kind", "fire", "--output", "node-7.py")
    assert made.returncode == 0, made.stderr
    assert "NODE_ID = 7" in (site.tmp / "node-7.py").read_text()
    checked = gateway("--check")
    assert checked.returncode == 0 and "gateway gw-lora" in checked.stdout, checked.stderr
    key = tomllib.loads(keys_file.read_text())["keys"]["7"]

    # Re-enrolment keeps the keys file (the nodes are flashed with their keys): nothing left to provision.
    again = _enrol_process(config_path, site.url, _issue(site, "gw-lora"), "--force", ca_file=site.ca_file)
    assert again.returncode == 0 and "provision-node" not in again.stdout, again.stdout + again.stderr
    assert "--no-start" in again.stdout and tomllib.loads(keys_file.read_text())["keys"]["7"] == key


def test_a_gateway_account_never_takes_over_another_account_of_the_broker(site: Site) -> None:
    """An id that names the dashboard's own broker account (or any account with another role) is refused before
    its password could be replaced: the dashboard would be locked out and no press would reach anyone."""
    settings = site.dashboard.config["SIAGA_ENROLMENT"]
    admin = BrokerAdmin(settings.admin, timeout_s=settings.broker_timeout_s)
    with pytest.raises(dynsec.DynsecError, match="not this gateway's"):
        gateway_account(admin, ROOT, "dashboard")
    assert _login(site.broker_settings("dashboard", site.dashboard_password)) == "Success"  # untouched
    assert gateway_account(admin, ROOT, "gw-new").username == "gw-new"  # an ordinary gateway still enrols
