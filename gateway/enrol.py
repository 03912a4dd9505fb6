"""``siaga-gateway enrol URL CODE``: fetch this gateway's configuration, broker password and CAs once, and write them.

The code is spent by the dashboard the moment it answers, so everything that
can be checked here is checked before the request: the URL (HTTPS, or plain
HTTP to this machine only), whether a configuration is there already
(``--force`` to replace it), and whether the folder can be written. The
answer is validated as the daemon would read it (``gateway.config``) before
any file is written; the files are then written each atomically (temporary
file, fsync, rename), the secret ones readable by root and the ``siaga``
group only, the configuration last.

Exit codes: 0 enrolled; 2 the dashboard refused the code (unknown, used,
revoked, expired, or too many wrong codes from here); 78 the configuration
it sent does not validate; 1 network or TLS errors (nothing was written);
64 a wrong URL; 73 a configuration is there already (without ``--force``).
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_bridge.errors import ConfigError, SiagaError
from firmware_bridge.settings import parse_toml
from firmware_bridge.tomlwrite import toml_text

from .cli import DEFAULT_CONFIG
from .config import GatewayConfig, parse_config, read_keys

EXIT_REFUSED = 2
EXIT_NETWORK = 1
EXIT_CONFIG = 78
EXIT_USAGE = 64
EXIT_EXISTS = 73

PASSWORD_NAME = "mqtt-password"  # noqa: S105 - a file name
BROKER_CA_NAME = "ca.crt"
DASHBOARD_CA_NAME = "dashboard-ca.crt"
#: The LoRa nodes' keys: made here by ``provision-node``, never sent by (or to) the dashboard.
KEYS_NAME = "lora-keys.toml"
EMPTY_KEYS = (
    "# Siaga LoRa node keys: node id = 16-byte key (hex), added by siaga-gateway provision-node.\n"
    "# Secret: never copy it off this gateway.\n[keys]\n"
)
#: The group the service runs as; it may read the secrets.
SERVICE_GROUP = "siaga"
SERVICE = "siaga-gateway"
TIMEOUT_S = 30.0
MAX_ANSWER = 1024 * 1024


class EnrolError(SiagaError, RuntimeError):
    """Enrolment could not be completed; ``exit_code`` says how (see the module's docstring)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Answer:
    gateway_id: str
    config: str
    password: str
    broker_ca: str | None
    dashboard_ca: str | None
    replaced_account: bool


def say(text: str) -> None:
    print(text, flush=True)


def run_enrol(args: argparse.Namespace) -> int:
    try:
        return _enrol(args)
    except EnrolError as exc:
        print(f"siaga-gateway enrol: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code


def _enrol(args: argparse.Namespace) -> int:
    url = check_url(args.url)
    config_path = Path(args.config).absolute()
    folder = config_path.parent
    _check_target(config_path, force=args.force)
    say(f"enrolling with {url} (configuration into {folder})")
    context = tls_context(args.ca_file)
    answer = request_enrolment(url, args.code, context)
    say(f"the dashboard accepted the code: this is gateway {answer.gateway_id}")
    document = _validated(answer, folder)
    say(f"configuration checked: {len(document.get('button') or [])} button(s)")
    written = write_files(answer, document, config_path)
    for path, mode in written:
        say(f"  wrote {path} (mode {mode:04o})")
    if answer.replaced_account:
        say("the gateway's broker account was there already: its old password no longer works")
    unkeyed = nodes_without_keys(document)
    if unkeyed:
        for line in next_steps(unkeyed, config_path, document):
            say(line)
        say(f"enrolled gateway {answer.gateway_id}; not started: {len(unkeyed)} LoRa node(s) have no key yet")
        return 0
    started = _start(args, config_path)
    say(f"enrolled gateway {answer.gateway_id}; {started}")
    return 0


# -- before the request ----------------------------------------------------------------------------


def check_url(url: str) -> str:
    """The dashboard's base URL; HTTPS, or plain HTTP to this machine only (the code and a password cross it)."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise EnrolError(f"{url!r} is not the dashboard's address (https://...)", EXIT_USAGE)
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise EnrolError(f"{url!r}: use https:// (plain http is allowed only to this machine)", EXIT_USAGE)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _check_target(config_path: Path, *, force: bool) -> None:
    if config_path.exists() and not force:
        raise EnrolError(
            f"{config_path} exists already; add --force to replace it (the code is not spent)", EXIT_EXISTS
        )
    folder = config_path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnrolError(f"cannot create {folder}: {exc.strerror or exc} (run as root?)", EXIT_EXISTS) from None
    if not os.access(folder, os.W_OK):
        raise EnrolError(f"cannot write in {folder} (run as root?); the code is not spent", EXIT_EXISTS)


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Certificates verified: against ``--ca-file`` if given, else the system's trusted CAs."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise EnrolError(f"cannot read the CA file {ca_file!r}: {exc}", EXIT_USAGE) from None


# -- the request -----------------------------------------------------------------------------------


def request_enrolment(url: str, code: str, context: ssl.SSLContext) -> Answer:
    body = json.dumps({"code": code}).encode()
    request = urllib.request.Request(  # noqa: S310 - check_url allowed https (and http to loopback) only
        f"{url}/api/enrol", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as response:  # noqa: S310 - checked
            raw = response.read(MAX_ANSWER + 1)
    except urllib.error.HTTPError as exc:
        raise _refusal(exc) from None
    except urllib.error.URLError as exc:
        raise EnrolError(_network_problem(url, exc.reason), EXIT_NETWORK) from None
    except (OSError, TimeoutError) as exc:
        raise EnrolError(_network_problem(url, exc), EXIT_NETWORK) from None
    if len(raw) > MAX_ANSWER:
        raise EnrolError("the dashboard's answer is too large", EXIT_CONFIG)
    return parse_answer(raw)


def _network_problem(url: str, reason: object) -> str:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return (
            f"the certificate of {url} is not trusted ({reason.verify_message}); if the dashboard uses a "
            "private CA, give it with --ca-file. Nothing was written."
        )
    return f"cannot reach {url}: {reason}. Nothing was written; the code is not spent."


def _refusal(exc: urllib.error.HTTPError) -> EnrolError:
    try:
        detail = json.loads(exc.read(65536) or b"{}")
    except ValueError:
        detail = {}
    message = detail.get("message") if isinstance(detail, dict) else None
    error = detail.get("error") if isinstance(detail, dict) else None
    if exc.code in (403, 404, 429) and error in ("code_refused", "enrolment_disabled", "too_many_wrong_codes"):
        return EnrolError(f"the dashboard refused: {message or error}", EXIT_REFUSED)
    return EnrolError(f"the dashboard answered {exc.code}: {message or exc.reason}", EXIT_NETWORK)


def parse_answer(raw: bytes) -> Answer:
    try:
        data = json.loads(raw)
        answer = Answer(
            gateway_id=_text(data, "gateway_id"),
            config=_text(data, "config"),
            password=_text(data, "mqtt_password"),
            broker_ca=data.get("broker_ca"),
            dashboard_ca=data.get("dashboard_ca"),
            replaced_account=bool(data.get("replaced_account")),
        )
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise EnrolError(f"the dashboard's answer is not an enrolment: {exc}", EXIT_CONFIG) from None
    for name, pem in (("broker_ca", answer.broker_ca), ("dashboard_ca", answer.dashboard_ca)):
        if pem is not None and (not isinstance(pem, str) or "-----BEGIN CERTIFICATE-----" not in pem):
            raise EnrolError(f"the dashboard's {name} is not a PEM certificate", EXIT_CONFIG)
    if not answer.password or any(c in answer.password for c in "\r\n"):
        raise EnrolError("the dashboard's MQTT password is empty or not one line", EXIT_CONFIG)
    return answer


def _text(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} is not text")
    return value


# -- validation and files ---------------------------------------------------------------------------


def placed(answer: Answer, folder: Path) -> dict[str, Any]:
    """The configuration sent, its secrets' and CAs' paths pointing into ``folder`` (where they are written)."""
    try:
        document = tomllib.loads(answer.config)
    except tomllib.TOMLDecodeError as exc:
        raise EnrolError(f"the configuration the dashboard sent is not TOML: {exc}", EXIT_CONFIG) from None
    mqtt = document.setdefault("mqtt", {})
    if not isinstance(mqtt, dict):
        raise EnrolError("the configuration the dashboard sent has no [mqtt] table", EXIT_CONFIG)
    mqtt.pop("password", None)
    mqtt["password_file"] = str(folder / PASSWORD_NAME)
    tls = mqtt.get("tls")
    if isinstance(tls, dict):
        if answer.broker_ca is not None:
            tls["ca_file"] = str(folder / BROKER_CA_NAME)
        else:
            tls.pop("ca_file", None)  # the broker's certificate is one the system trusts
    lora = document.get("lora")
    if isinstance(lora, dict):
        lora["keys_file"] = str(folder / KEYS_NAME)
    dashboard = document.get("dashboard")
    if isinstance(dashboard, dict):
        if answer.dashboard_ca is not None:
            dashboard["ca_file"] = str(folder / DASHBOARD_CA_NAME)
        else:
            dashboard.pop("ca_file", None)
    return document


def _validated(answer: Answer, folder: Path) -> dict[str, Any]:
    """The document, checked by the daemon's own reader against the files staged in a private folder."""
    staging = Path(tempfile.mkdtemp(prefix=".enrol-", dir=folder))
    try:
        _stage(answer, staging)
        staged = placed(answer, staging)
        _stage_throwaway_keys(staged, staging)
        config = check_config(staged, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if config.id != answer.gateway_id:
        raise EnrolError(f"the configuration is for {config.id!r}, not {answer.gateway_id!r}", EXIT_CONFIG)
    return placed(answer, folder)


def _stage(answer: Answer, staging: Path) -> None:
    os.chmod(staging, 0o700)
    (staging / PASSWORD_NAME).write_text(answer.password + "\n")
    if answer.broker_ca is not None:
        (staging / BROKER_CA_NAME).write_text(answer.broker_ca)
    if answer.dashboard_ca is not None:
        (staging / DASHBOARD_CA_NAME).write_text(answer.dashboard_ca)


def lora_nodes(document: dict[str, Any]) -> list[tuple[int, str]]:
    """(node, kind) of each planned LoRa button, as the document has them (the parser checks them)."""
    tables = document.get("lora_button") or []
    return [
        (table["node"], str(table.get("kind")))
        for table in tables
        if isinstance(table, dict) and isinstance(table.get("node"), int)
    ]


def _stage_throwaway_keys(document: dict[str, Any], staging: Path) -> None:
    """A keys file in the staging folder with a random key per planned node: the configuration is checked
    as the daemon reads it without the real keys, which do not exist yet (provision-node makes them after)."""
    lora = document.get("lora")
    if not isinstance(lora, dict):
        return
    keys = "".join(f'"{node}" = "{os.urandom(16).hex()}"\n' for node, _ in lora_nodes(document))
    (staging / KEYS_NAME).write_text("[keys]\n" + keys)


def check_config(document: dict[str, Any], where: Path) -> GatewayConfig:
    text = toml_text(document)
    try:
        return parse_config(parse_toml(text, str(where / "gateway.toml")))
    except ConfigError as exc:
        raise EnrolError(f"the configuration the dashboard sent does not validate: {exc}", EXIT_CONFIG) from None


def secret_owner() -> tuple[int, int | None]:
    """(mode, group) for secret files: 0640 root:siaga when run as root and the group exists, else 0600."""
    if os.geteuid() == 0:
        try:
            return 0o640, grp.getgrnam(SERVICE_GROUP).gr_gid
        except KeyError:
            pass
    return 0o600, None


def write_files(answer: Answer, document: dict[str, Any], config_path: Path) -> list[tuple[Path, int]]:
    """Secrets and CAs first, the configuration last (its presence says the enrolment is complete)."""
    folder = config_path.parent
    secret_mode, group = secret_owner()
    files: list[tuple[Path, str, int, int | None]] = [
        (folder / PASSWORD_NAME, answer.password + "\n", secret_mode, group)
    ]
    if answer.broker_ca is not None:
        files.append((folder / BROKER_CA_NAME, answer.broker_ca, 0o644, None))
    if answer.dashboard_ca is not None:
        files.append((folder / DASHBOARD_CA_NAME, answer.dashboard_ca, 0o644, None))
    keys_file = _keys_file(document)
    if keys_file is not None and create_exclusively(keys_file, EMPTY_KEYS, secret_mode, group):
        files_made = [(keys_file, secret_mode)]
    else:
        files_made = []
    header = f"# Siaga gateway {answer.gateway_id}, written by siaga-gateway enrol (docs/configuration.md).\n"
    files.append((config_path, header + toml_text(document), 0o644, None))  # no secret in it
    written = files_made
    for path, text, mode, gid in files:
        write_atomically(path, text, mode, gid)
        written.append((path, mode))
    _sync_folder(folder)
    return written


def _keys_file(document: dict[str, Any]) -> Path | None:
    lora = document.get("lora")
    return Path(lora["keys_file"]) if isinstance(lora, dict) and lora.get("keys_file") else None


def create_exclusively(path: Path, text: str, mode: int, gid: int | None = None) -> bool:
    """Write ``path`` complete (temporary file, fsync, hard link) only if it does not exist: never replaces one.

    Returns False when it existed (its keys are kept; re-enrolment must not cost the nodes their keys)."""
    temporary = _staged(path, text, mode, gid)
    try:
        try:
            os.link(temporary, path)  # fails if the path exists, unlike a rename
        except FileExistsError:
            return False
        return True
    finally:
        Path(temporary).unlink(missing_ok=True)


def nodes_without_keys(document: dict[str, Any]) -> list[tuple[int, str]]:
    """The planned LoRa nodes the keys file has no key for (all of them on a first enrolment)."""
    keys_file = _keys_file(document)
    if keys_file is None:
        return []
    try:
        keys = read_keys(keys_file)
    except ConfigError as exc:
        raise EnrolError(f"the files are written but the keys file cannot be read: {exc}", EXIT_CONFIG) from None
    return [(node, kind) for node, kind in lora_nodes(document) if node not in keys]


def next_steps(unkeyed: list[tuple[int, str]], config_path: Path, document: dict[str, Any]) -> list[str]:
    """The commands that finish a gateway with LoRa buttons: a key and node_config.py per node, then the service."""
    default = Path(os.environ.get("SIAGA_GATEWAY_CONFIG", DEFAULT_CONFIG)).absolute()
    config = "" if config_path == default else f" --config {config_path}"
    lora = document.get("lora") or {}
    lines = [
        f"the LoRa module is planned on {lora.get('port')} ({lora.get('module')}); if it is elsewhere, "
        f"edit [lora] port in {config_path} first (best its /dev/serial/by-id/... link)",
        "each LoRa node needs its key, made here and never sent anywhere; run:",
    ]
    lines += [
        f"  siaga-gateway{config} provision-node {node} --kind {kind} --output node-{node}.py" for node, kind in unkeyed
    ]
    lines += [
        "  copy each node-<node>.py to its board as node_config.py (docs/field.md), then start the gateway:",
        f"  systemctl enable {SERVICE} && systemctl restart {SERVICE}",
    ]
    return lines


def write_atomically(path: Path, text: str, mode: int, gid: int | None = None) -> None:
    """A temporary file in the same folder, with its mode before any byte is in it, fsynced, then renamed."""
    temporary = _staged(path, text, mode, gid)
    try:
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _staged(path: Path, text: str, mode: int, gid: int | None) -> str:
    """``text`` in a temporary file beside ``path``: its mode (and group) set before any byte, fsynced."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        if gid is not None:
            os.fchown(fd, 0, gid)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return temporary


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the service ------------------------------------------------------------------------------------


def _start(args: argparse.Namespace, config_path: Path) -> str:
    how = f"siaga-gateway --config {config_path}"
    if args.no_start:
        return (
            f"not started (--no-start); start it with: systemctl enable {SERVICE} && systemctl restart {SERVICE} "
            f"(restart: a running gateway still has the old password), or {how}"
        )
    if not Path("/run/systemd/system").exists():
        return f"systemd is not running here: start the gateway with: {how}"
    # restart, not just --now: a gateway enrolled again is running with the password the dashboard just
    # replaced, and would be locked out of the broker until restarted.
    say(f"starting the service: systemctl enable {SERVICE} && systemctl restart {SERVICE}")
    for command in (["systemctl", "enable", SERVICE], ["systemctl", "restart", SERVICE]):
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            problem = (result.stderr or result.stdout).strip()
            return f"the files are written but {' '.join(command)} failed ({problem}); see: journalctl -u {SERVICE}"
    return f"service {SERVICE} enabled and (re)started (journalctl -u {SERVICE} -f to follow it)"
