"""Configuration files: a wrong one stops the program with the file and the key named."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from firmware_bridge import ConfigError
from firmware_bridge.payloads import Kind
from firmware_bridge.settings import parse_toml
from gateway.config import load_config, parse_config
from sim import gatewayconf
from sim.gatewayconf import fill_template, site, toml_text

from .conftest import DEFAULT_BUTTONS, FIRE_1, SAPA_1, gateway_toml


def parse(text: str):
    return parse_config(parse_toml(text, "gateway.toml"))


GOOD = gatewayconf.gateway_toml(
    "gw-a", data_dir="/tmp/siaga-test", mqtt={"host": "127.0.0.1"}, buttons=[FIRE_1, SAPA_1]
)


def with_button(**fields: object) -> str:
    """A gateway with one wired button of these fields (and a site)."""
    return gatewayconf.gateway_toml(
        "gw-a", mqtt={"host": "h"}, buttons=[{**fields, "site": site("Pasar", -4.3, 122.3)}]
    )


def test_a_good_file_is_read() -> None:
    config = parse(GOOD)
    assert config.id == "gw-a"
    assert [b.id for b in config.buttons] == ["fire-1", "sapa-1"]
    assert config.buttons[0].kind is Kind.FIRE
    assert config.buttons[1].site.name == "Pasar Andoolo"
    assert config.outbox_path == Path("/tmp/siaga-test/outbox.sqlite")
    assert config.broker.port == 1883 and config.broker.root == "siaga/v1"


@pytest.mark.parametrize("name", ["gw-pasar-andoolo.toml", "gw-smpn1-konda.toml"])
def test_the_shipped_samples_are_valid(name: str, tmp_path: Path) -> None:
    import tomllib

    text = resources.files("sim.data").joinpath(name).read_text()
    keys = tmp_path / "keys.toml"
    values = {"DATA_DIR": "/tmp/x", "MQTT_HOST": "h", "MQTT_PORT": 1883, "LORA_PORT": "/dev/ttyUSB0", "KEYS_FILE": keys}
    text = fill_template(text, values)
    nodes = [button["node"] for button in tomllib.loads(text)["lora_button"]]
    keys.write_text(toml_text({"keys": {str(node): "ab" * 16 for node in nodes}}))
    config = parse(text)
    assert {button.kind for button in config.buttons} == {Kind.FIRE, Kind.SAPA}
    # Every sample site names its kecamatan, which the inventory carries to the dashboard.
    sites = [button.site for button in (*config.buttons, *config.lora_buttons)]
    assert all(site.kecamatan in ("Andoolo", "Konda") for site in sites)
    assert all(site.to_dict()["kecamatan"] == site.kecamatan for site in sites)
    assert config.lora is not None and len(config.lora_buttons) == len(nodes)


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ('[mqtt]\nhost = "h"\n' + DEFAULT_BUTTONS, "gateway", "missing"),
        ('[gateway]\nid = "gw-a"\n' + DEFAULT_BUTTONS, "mqtt", "missing"),
        ('[gateway]\nid = "gw-a"\n[mqtt]\n', "button", "missing"),
        ("[gateway]\n[mqtt]\n" + DEFAULT_BUTTONS, "gateway.id", "missing"),
        ('[gateway]\nid = "gw/a"\n[mqtt]\n' + DEFAULT_BUTTONS, "gateway.id", "does not match"),
        ('[gateway]\nid = "gw-a"\npin_factory = "magic"\n[mqtt]\n' + DEFAULT_BUTTONS, "gateway.pin_factory", "one of"),
        ('[gateway]\nid = "gw-a"\nhold_tme = 1\n[mqtt]\n' + DEFAULT_BUTTONS, "gateway.hold_tme", "unknown key"),
        ('[gateway]\nid = "gw-a"\n[mqtt]\nport = 70000\n' + DEFAULT_BUTTONS, "mqtt.port", "at most"),
        ('[gateway]\nid = "gw-a"\n[mqtt]\npassword = "x"\n' + DEFAULT_BUTTONS, "mqtt.username", "needs a username"),
        (
            '[gateway]\nid = "gw-a"\n[mqtt]\nusername = "u"\npassword_file = "/nonexistent/pw"\n' + DEFAULT_BUTTONS,
            "mqtt.password_file",
            "cannot read",
        ),
        (
            '[gateway]\nid = "gw-a"\n[mqtt]\n[mqtt.tls]\nca_file = "/nonexistent/ca.pem"\n' + DEFAULT_BUTTONS,
            "mqtt.tls.ca_file",
            "does not exist",
        ),
        (with_button(id="b", kind="smoke", pin=17), "button[1].kind", "fire, sapa"),
        (with_button(id="b", kind="fire"), "button[1].pin", "missing"),
        (with_button(id="b", kind="fire", pin=40), "button[1].pin", "does not exist"),
        (with_button(id="b", kind="fire", pin="GPIO99"), "button[1].pin", "bad pin"),
        (with_button(id="b", kind="fire", pin="banana"), "button[1].pin", "bad pin"),
        (with_button(id="b", kind="fire", pin=True), "button[1].pin", "not a pin"),
        (with_button(id="b", kind="fire", pin="BOARD6"), "button[1].pin", "power or ground"),
        (with_button(id="b", kind="fire", pin=17, led_pin="BOARD11"), "button[1].led_pin", "already used"),
        (with_button(id="b", kind="fire", pin="GPIO17", led_pin="J8:11"), "button[1].led_pin", "already used"),
        (with_button(id="b", kind="sapa", pin=17, buzzer_pin=22), "button[1].buzzer_pin", "silent"),
        (with_button(id="b", kind="fire", pin=17, hold_s=-1), "button[1].hold_s", "at least"),
        (with_button(id="b", kind="fire", pin=17, colour="red"), "button[1].colour", "unknown key"),
        (GOOD.replace('id = "sapa-1"', 'id = "fire-1"'), "button[2].id", "duplicate"),
        (GOOD.replace("pin = 23", "pin = 17"), "button[2].pin", "already used"),
        (GOOD.replace("lat = -4.3499", "lat = -95"), "button[2].site.lat", "at least"),
        (GOOD.replace("lat = -4.3499", "lat = nan"), "button[2].site.lat", "finite"),
        (GOOD.replace("[mqtt]", "health_interval_s = inf\n[mqtt]"), "gateway.health_interval_s", "finite"),
        (GOOD.replace('name = "Pasar Andoolo"\nlat = -4.3499', "lat = -4.3499"), "button[2].site.name", "missing"),
        ("[gateway\nid=", "", "not valid TOML"),
        (GOOD.replace('id = "gw-a"', 'id = "Dashboard"'), "gateway.id", "reserved"),
    ],
)
def test_a_wrong_file_names_the_file_and_the_key(text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    message = str(caught.value)
    assert message.startswith("gateway.toml: ")
    assert caught.value.key == key
    if key:
        assert f"'{key}'" in message
    assert words in message


@pytest.mark.parametrize(
    "name", [17, "17", "GPIO17", "BCM17", "BOARD11", "J8:11", " gpio17 ", "GPIO017", "BOARD011", "J8:011"]
)
def test_every_gpiozero_name_of_a_pin_is_its_bcm_number(name: object) -> None:
    (button,) = parse(with_button(id="b", kind="fire", pin=name)).buttons
    assert button.pin == 17


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found") as caught:
        load_config(tmp_path / "nope.toml")
    assert str(tmp_path / "nope.toml") in str(caught.value)


def run_cli(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_the_gateway_stops_at_start_with_exit_78_on_a_bad_file(tmp_path: Path) -> None:
    path = gateway_toml(tmp_path / "gateway.toml", port=1883, buttons=[FIRE_1, {**SAPA_1, "kind": "smoke"}])
    result = run_cli("gateway", "--config", str(path))
    assert result.returncode == 78
    assert f"{path}: key 'button[2].kind'" in result.stderr
    assert "smoke" in result.stderr


def test_a_pin_the_factory_cannot_use_is_a_config_error(tmp_path: Path) -> None:
    # GPIO2 (I2C SDA) has a fixed pull-up: a button wired to 3V3 (pull_up = false) cannot use it.
    buttons = [FIRE_1, {**SAPA_1, "pin": 2, "pull_up": False}]
    path = gateway_toml(tmp_path / "gateway.toml", port=1, buttons=buttons)
    result = run_cli("gateway", "--config", str(path), env={"GPIOZERO_PIN_FACTORY": "mock"})
    assert result.returncode == 78, result.stderr
    assert "key 'button[2].pin'" in result.stderr


def test_check_validates_without_starting(tmp_path: Path) -> None:
    path = gateway_toml(tmp_path / "gateway.toml", port=1883)
    result = run_cli("gateway", "--config", str(path), "--check")
    assert result.returncode == 0
    assert "OK (2 button(s), gateway gw-test)" in result.stdout


def test_the_dashboard_names_key_and_file_too(tmp_path: Path) -> None:
    path = tmp_path / "dashboard.toml"
    path.write_text(toml_text({"dashboard": {"data_dir": tmp_path, "language": "fr"}, "mqtt": {}}))
    result = run_cli("dashboard", "--config", str(path), "check")
    assert result.returncode == 78
    assert f"{path}: key 'dashboard.language': must be one of id, en" in result.stderr


def test_the_dashboard_creates_its_secret_key_privately_on_first_start(tmp_path: Path) -> None:
    from dashboard.config import load_config as load_dashboard_config

    path = tmp_path / "dashboard.toml"
    path.write_text(toml_text({"dashboard": {"data_dir": tmp_path / "data"}, "mqtt": {}}))
    key_file = tmp_path / "data" / "secret_key"
    assert run_cli("dashboard", "--config", str(path), "check").returncode == 0
    assert not key_file.exists()  # a check creates nothing
    key = load_dashboard_config(path)["SECRET_KEY"]
    assert key_file.read_text().strip() == key and len(key) == 64
    assert key_file.stat().st_mode & 0o077 == 0
    assert load_dashboard_config(path)["SECRET_KEY"] == key  # and keeps it


def test_the_deploy_examples_are_valid(tmp_path: Path) -> None:
    """The files an installer copies to /etc/siaga must load once their secrets exist."""
    from dashboard.config import parse_config as parse_dashboard

    root = Path(__file__).resolve().parent.parent / "deploy"
    secret = tmp_path / "mqtt-password"
    secret.write_text("a-long-enough-password\n")
    hook_secret = tmp_path / "webhook.secret"
    hook_secret.write_text("a-webhook-signing-secret\n")
    text = (root / "dashboard.example.toml").read_text().replace("/etc/siaga/mqtt-password", str(secret))
    text = text.replace("/var/lib/siaga", str(tmp_path))
    text = text.replace("/etc/siaga/webhook-pusdalops.secret", str(hook_secret))
    config = parse_dashboard(parse_toml(text, "dashboard.toml"))
    assert config["SIAGA_TRUSTED_PROXIES"] == 1 and config["SIAGA_FORM_RATE"] == (10, 600)
    assert config["SIAGA_PHOTOS_DIR"] == tmp_path / "photos"
    assert config["SIAGA_CATALOGUE"].jurisdiction == "konaweselatankab.go.id"
    [webhook] = config["SIAGA_ESCALATION"].webhooks
    assert webhook.kinds == {"fire"} and webhook.secret == b"a-webhook-signing-secret"
    assert config["SIAGA_SUPERVISION"].radio_button_silent_s == 200


def test_the_dashboard_refuses_to_start_without_a_writable_photos_folder(tmp_path: Path) -> None:
    from dashboard.config import load_config as load_dashboard_config

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    path = tmp_path / "dashboard.toml"
    path.write_text(
        toml_text({"dashboard": {"data_dir": tmp_path}, "reports": {"photos_dir": blocker / "photos"}, "mqtt": {}})
    )
    with pytest.raises(ConfigError, match=r"key 'reports.photos_dir': cannot write to .*not-a-folder/photos"):
        load_dashboard_config(path)
    assert run_cli("dashboard", "--config", str(path), "check").returncode == 0  # a check writes nothing
    path.write_text(toml_text({"dashboard": {"data_dir": tmp_path}, "mqtt": {}}))
    load_dashboard_config(path)
    assert (tmp_path / "photos").is_dir() and list((tmp_path / "photos").iterdir()) == []


@pytest.mark.parametrize(
    ("database", "error"),
    [
        ("postgresql://siaga:hunter2@db.example/siaga", "no password in the URL: give it in a passfile"),
        ("postgresql://siaga@db.example/siaga?nosuchparam=1", "not a PostgreSQL URL libpq can read"),
        ("mysql://siaga@db.example/siaga", "an SQLite file's path, or a postgresql:// URL"),
    ],
)
def test_the_dashboard_names_what_is_wrong_with_its_database(tmp_path: Path, database: str, error: str) -> None:
    from dashboard.config import load_config as load_dashboard_config

    path = tmp_path / "dashboard.toml"
    path.write_text(toml_text({"dashboard": {"data_dir": tmp_path / "data", "database": database}, "mqtt": {}}))
    with pytest.raises(ConfigError, match=f"key 'dashboard.database': {error}"):
        load_dashboard_config(path, create_secret=False)
    good = "postgresql://siaga@db.example/siaga?passfile=/etc/siaga/pgpass&sslmode=verify-full"
    path.write_text(toml_text({"dashboard": {"data_dir": tmp_path / "data", "database": good}, "mqtt": {}}))
    assert load_dashboard_config(path, create_secret=False)["DATABASE"] == good


def test_the_dashboard_migrates_its_store_on_its_own_and_says_to_what(tmp_path: Path) -> None:
    from dashboard import migrations

    path = tmp_path / "dashboard.toml"
    path.write_text(toml_text({"dashboard": {"data_dir": tmp_path / "data"}, "mqtt": {}}))
    result = run_cli("dashboard", "--config", str(path), "migrate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"store at revision {migrations.HEAD}"
    assert (tmp_path / "data" / "dashboard.sqlite").exists()
