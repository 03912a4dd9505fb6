"""How both ends reach the MQTT broker: settings, and a configured paho client.

This is the one place that knows how Siaga configures paho-mqtt (callback
API version 2, MQTT 3.1.1 persistent sessions, credentials, TLS, capped
exponential reconnect). It reads the ``[mqtt]`` table of either side's TOML
and builds an unconnected client; connecting and looping stay with the caller.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

from .errors import BadTopic, ConfigError
from .settings import Section
from .topics import DEFAULT_ROOT, check_root


@dataclass(frozen=True)
class TlsSettings:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    #: Skip hostname verification (only for a broker reached by IP with a
    #: private CA). The certificate chain is still verified.
    insecure_hostname: bool = False


@dataclass(frozen=True)
class BrokerSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    root: str = DEFAULT_ROOT
    username: str | None = None
    password: str | None = None
    keepalive: int = 30
    client_id: str | None = None
    tls: TlsSettings | None = None
    reconnect_min_s: float = 0.25
    reconnect_max_s: float = 2.0
    #: Messages paho may have in flight (sent, PUBACK pending) at once.
    max_inflight: int = 100

    def describe(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port} (root {self.root})"


def read_broker_settings(section: Section) -> BrokerSettings:
    """Read an ``[mqtt]`` table. The password comes from ``password_file`` (preferred) or ``password``."""
    root = section.str("root", DEFAULT_ROOT)
    try:
        check_root(root)
    except BadTopic as exc:
        raise section.error("root", str(exc)) from None
    tls_section = section.section("tls")
    tls = None
    if tls_section.bool("enabled", bool(tls_section.data)):
        tls = TlsSettings(
            ca_file=_existing_file(tls_section, "ca_file"),
            cert_file=_existing_file(tls_section, "cert_file"),
            key_file=_existing_file(tls_section, "key_file"),
            insecure_hostname=tls_section.bool("insecure_hostname", False),
        )
        if (tls.cert_file is None) != (tls.key_file is None):
            raise tls_section.error("cert_file", "cert_file and key_file go together (client certificate)")
    tls_section.done()
    password = section.str("password", None, nonempty=False)
    password_file = section.str("password_file", None)
    if password is not None and password_file is not None:
        raise section.error("password", "give either password or password_file, not both")
    if password_file is not None:
        password = read_secret_file(section, "password_file", password_file)
    settings = BrokerSettings(
        host=section.str("host", "127.0.0.1"),
        port=section.int("port", 8883 if tls else 1883, min=1, max=65535),
        root=root,
        username=section.str("username", None),
        password=password,
        keepalive=section.int("keepalive", 30, min=5, max=3600),
        client_id=section.str("client_id", None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$"),
        tls=tls,
        reconnect_min_s=section.float("reconnect_min_s", 0.25, min=0.05, max=60),
        reconnect_max_s=section.float("reconnect_max_s", 2.0, min=0.05, max=600),
        max_inflight=section.int("max_inflight", 100, min=1, max=65535),
    )
    if settings.password is not None and settings.username is None:
        raise section.error("username", "a password needs a username")
    if settings.reconnect_max_s < settings.reconnect_min_s:
        raise section.error("reconnect_max_s", "must not be below reconnect_min_s")
    section.done()
    return settings


def _existing_file(section: Section, key: str) -> str | None:
    value = section.str(key, None)
    if value is not None and not Path(value).is_file():
        raise section.error(key, f"file {value!r} does not exist")
    return value


def read_secret_file(section: Section, key: str, path: str) -> str:
    try:
        return Path(path).read_text("utf-8").strip()
    except OSError as exc:
        raise section.error(key, f"cannot read {path!r}: {exc.strerror or exc}") from None


def _no_delay(client: mqtt.Client, userdata: object, sock: socket.socket) -> None:
    """Send every MQTT packet at once.

    paho leaves Nagle's algorithm on: a small publish right after a PUBACK
    then waits for the broker's delayed ACK, about 40 ms on Linux.
    """
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not a TCP socket (e.g. a unix socket or websocket wrapper)
        pass


def make_client(
    settings: BrokerSettings,
    client_id: str,
    *,
    persistent: bool = True,
    manual_ack: bool = False,
) -> mqtt.Client:
    """An unconnected paho client configured from ``settings``.

    ``persistent`` asks the broker to keep the session (subscriptions and
    queued QoS 1 messages) while the client is away; that needs a stable id.
    """
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=settings.client_id or client_id,
        clean_session=not persistent,
        protocol=mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls is not None:
        try:
            client.tls_set(
                ca_certs=settings.tls.ca_file,
                certfile=settings.tls.cert_file,
                keyfile=settings.tls.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"mqtt.tls: cannot load TLS material: {exc}", key="mqtt.tls") from None
        client.tls_insecure_set(settings.tls.insecure_hostname)
    client.on_socket_open = _no_delay
    client.reconnect_delay_set(settings.reconnect_min_s, settings.reconnect_max_s)  # type: ignore[arg-type]
    client.max_inflight_messages_set(settings.max_inflight)
    return client
