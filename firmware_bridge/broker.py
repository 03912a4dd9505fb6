"""How both ends reach the MQTT broker: settings, and a configured paho client.

This is the one place that knows how Siaga configures paho-mqtt (callback
API version 2, MQTT 3.1.1 persistent sessions, credentials, TLS, capped
exponential reconnect, failover between the members of a clustered broker).
It reads the ``[mqtt]`` table of either side's TOML and builds an
unconnected client; :func:`connect_with_failover` points it at the brokers,
and looping stays with the caller.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from .counters import Counters
from .errors import BadTopic, ConfigError
from .settings import Section
from .topics import DEFAULT_ROOT, check_root

log = logging.getLogger(__name__)

#: Brokers one ``[mqtt] brokers`` list may name (a cluster has 3 or 5 members).
MAX_BROKERS = 16
_SCHEME_PORTS = {"mqtt": 1883, "mqtts": 8883}
#: The longest wait before a refused subscription is asked for again.
MAX_SUBSCRIBE_RETRY_S = 60.0
#: How long a reconnecting client waits for a member to accept a TCP connection before it tries the next.
PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


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
    #: The members of a clustered broker, tried in this order (``[mqtt] brokers``);
    #: empty: the one broker at ``host``:``port``. When set, ``host`` and
    #: ``port`` are its first member's.
    brokers: tuple[BrokerAddress, ...] = ()

    def __post_init__(self) -> None:
        if self.brokers:
            # host/port stay meaningful for code that names one broker (logs, probes).
            object.__setattr__(self, "host", self.brokers[0].host)
            object.__setattr__(self, "port", self.brokers[0].port)

    def addresses(self) -> tuple[BrokerAddress, ...]:
        """Every broker to try, in order: the cluster's members, or the one ``host``:``port``."""
        return self.brokers or (BrokerAddress(self.host, self.port),)

    def describe(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        where = ", ".join(f"{scheme}://{user}{address}" for address in self.addresses())
        return f"{where} (root {self.root})"


def read_broker_settings(section: Section) -> BrokerSettings:
    """Read an ``[mqtt]`` table. The password comes from ``password_file`` (preferred) or ``password``."""
    root = section.str("root", DEFAULT_ROOT)
    try:
        check_root(root)
    except BadTopic as exc:
        raise section.error("root", str(exc)) from None
    brokers, scheme = _read_brokers(section)
    tls_section = section.section("tls")
    tls = None
    tls_on = tls_section.bool("enabled", bool(tls_section.data) or scheme == "mqtts")
    if scheme == "mqtts" and not tls_on:
        raise tls_section.error("enabled", "the brokers are mqtts:// (TLS) but [mqtt.tls] enabled = false")
    if scheme == "mqtt" and tls_on:
        raise section.error(
            "brokers", "[mqtt.tls] is on but the brokers are mqtt:// (plain); write them as mqtts://host:port"
        )
    if tls_on:
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
    if brokers and (section.has("host") or section.has("port")):
        raise section.error("brokers", "give either brokers or host/port, not both")
    settings = BrokerSettings(
        host=section.str("host", "127.0.0.1"),
        port=section.int("port", 8883 if tls else 1883, min=1, max=65535),
        brokers=brokers,
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


def _read_brokers(section: Section) -> tuple[tuple[BrokerAddress, ...], str | None]:
    """``brokers = ["mqtt://10.0.0.1:1883", ...]``: the addresses, and their one scheme (None without the key)."""
    value = section.raw("brokers", None)
    if value is None:
        return (), None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise section.error("brokers", f'must be a list of URLs such as ["mqtt://10.0.0.1:1883"] (got {value!r})')
    if not 1 <= len(value) <= MAX_BROKERS:
        raise section.error("brokers", f"must name 1 to {MAX_BROKERS} brokers (got {len(value)})")
    parsed = [_parse_broker_url(section, url) for url in value]
    schemes = {scheme for scheme, _ in parsed}
    if len(schemes) > 1:
        # Falling back from TLS to plain text is what an attacker who can block
        # the TLS member would want: every member speaks the same.
        raise section.error("brokers", "mixes mqtt:// and mqtts://; every member must use the same (mqtts:// for TLS)")
    addresses = tuple(address for _, address in parsed)
    if len(set(addresses)) != len(addresses):
        raise section.error("brokers", "names a broker twice")
    return addresses, schemes.pop()


def _parse_broker_url(section: Section, url: str) -> tuple[str, BrokerAddress]:
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise section.error("brokers", f"{url!r} is not a broker URL: {exc}") from None
    if parts.scheme not in _SCHEME_PORTS:
        raise section.error("brokers", f"{url!r}: the scheme must be mqtt:// or mqtts://")
    if not parts.hostname:
        raise section.error("brokers", f"{url!r} names no host")
    if parts.username is not None or parts.password is not None:
        raise section.error("brokers", f"{url!r}: credentials go in username and password_file, not in the URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise section.error("brokers", f"{url!r}: only scheme://host:port (no path, query or fragment)")
    if port == 0:
        raise section.error("brokers", f"{url!r}: the port must be 1 to 65535")
    return parts.scheme, BrokerAddress(parts.hostname, port or _SCHEME_PORTS[parts.scheme])


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


class Failover:
    """Which broker a client dials: the same one while it serves, another member once it refused or dropped.

    paho calls :meth:`before_connect` (its ``on_pre_connect``) before every
    connection attempt, its first included; its capped exponential backoff
    paces the attempts, and is reset by every accepted connection. Before a
    reconnect, the members after the current one are dialled in turn (a bare
    TCP connection, closed at once) and the first that answers is chosen: a
    dead member costs a refused dial, not a failed attempt and a doubled
    backoff. The member that was just lost is tried last.
    """

    def __init__(self, addresses: tuple[BrokerAddress, ...], *, probe_timeout_s: float = PROBE_TIMEOUT_S) -> None:
        if not addresses:
            raise ValueError("no broker to connect to")
        self.addresses = addresses
        self.probe_timeout_s = probe_timeout_s
        self._index = 0
        self._attempts = 0

    @property
    def current(self) -> BrokerAddress:
        """The broker of the latest attempt (the one the client is connected to, if it is)."""
        return self.addresses[self._index]

    def before_connect(self, client: mqtt.Client, userdata: Any) -> None:
        # paho reconnects only after a refusal, a failed dial or a lost
        # connection: each one is a reason to try another member.
        if self._attempts and len(self.addresses) > 1:
            self._index = self._next_answering()
            log.info("connecting to broker %s", self.current)
        self._attempts += 1
        # paho's host/port setters refuse while a connection is being opened,
        # which is the state it calls us in; its reconnect() reads these two
        # attributes right after this callback, with no socket open yet.
        client._host = self.current.host
        client._port = self.current.port

    def _next_answering(self) -> int:
        """The first member after the current one that accepts a TCP connection (the current one last)."""
        count = len(self.addresses)
        for step in range(1, count + 1):
            index = (self._index + step) % count
            if self._answers(self.addresses[index]):
                return index
        return (self._index + 1) % count  # none answers: paho's attempt fails and its backoff paces the next

    def _answers(self, address: BrokerAddress) -> bool:
        try:
            with socket.create_connection((address.host, address.port), timeout=self.probe_timeout_s):
                return True
        except OSError:
            return False


def connect_with_failover(client: mqtt.Client, settings: BrokerSettings) -> Failover:
    """Point ``client`` at the settings' broker(s) without connecting yet (paho's ``connect_async``).

    ``loop_start()`` then connects, and reconnects to the next broker of the
    list whenever the current one refuses or drops the connection.
    """
    failover = Failover(settings.addresses())
    client.on_pre_connect = failover.before_connect
    first = failover.addresses[0]
    client.connect_async(first.host, first.port, settings.keepalive)
    return failover


class Subscriptions:
    """A client's subscriptions: asked for on connect unless the broker kept them, and again when it refuses one.

    A topic counts as held once a SUBACK granted it in the current session.
    On a connect whose session the broker kept (session present), only the
    topics not held are asked for: the others are still in place, and asking
    again is not free on every broker (a nats-server cluster recreates the
    JetStream consumer behind each subscription, which blocks the connection
    for seconds while a leader is elected). A session the broker did not keep
    makes every topic asked for again.

    Mosquitto never refuses a well-formed subscription. A nats-server cluster
    refuses one (SUBACK failure 0x80) when the consumer cannot be set up in
    time, as happens for seconds after a member died (docs/mqtt.md, "Clustered
    broker"); the refused topics are asked for again after 1 s, doubling up to
    a minute, rather than leaving the session deaf to them.
    """

    def __init__(
        self,
        client: mqtt.Client,
        topics: Sequence[tuple[str, int]],
        *,
        counters: Counters | None = None,
        retry_s: float = 1.0,
        on_complete: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self.topics = list(topics)
        self._counters = counters or Counters()
        self._retry_s = retry_s
        #: Called (on paho's thread) when a SUBACK makes every topic held again in a connection whose
        #: session the broker had not kept, or after a refusal: messages may have been missed meanwhile.
        self._on_complete = on_complete
        self._missed = False
        self._asked: dict[int, list[tuple[str, int]]] = {}
        self._held: set[str] = set()
        self._delays: dict[str, float] = {}
        self._lock = threading.Lock()
        client.on_subscribe = self._on_subscribe

    def connected(self, session_present: bool) -> None:
        """From ``on_connect``: ask for what the session does not hold."""
        with self._lock:
            self._asked.clear()  # the last connection's SUBACKs will never come; its mids may be reused
            if not session_present:
                self._held.clear()
                self._missed = True
            missing = [topic for topic in self.topics if topic[0] not in self._held]
        if missing:
            self.subscribe(missing)

    @property
    def held(self) -> frozenset[str]:
        """The topics the broker granted in this session."""
        with self._lock:
            return frozenset(self._held)

    @property
    def complete(self) -> bool:
        """Whether the broker granted every topic in this session (messages published before are not ours)."""
        with self._lock:
            return self._complete()

    def _complete(self) -> bool:
        """Caller holds _lock: whether the broker granted every topic in this session."""
        return all(topic in self._held for topic, _qos in self.topics)

    def subscribe(self, topics: Sequence[tuple[str, int]] | None = None) -> None:
        """Ask for ``topics`` (all of them by default)."""
        wanted = list(topics if topics is not None else self.topics)
        with self._lock:  # the SUBACK may come back before subscribe() returns its mid
            result, mid = self._client.subscribe(wanted)
            if result == mqtt.MQTT_ERR_SUCCESS and mid is not None:
                self._asked[mid] = wanted

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list[Any], properties: Any
    ) -> None:
        with self._lock:
            was_complete = self._complete()
            asked = self._asked.pop(mid, [])
            refused = [wanted for wanted, code in zip(asked, reason_codes, strict=False) if code.is_failure]
            if refused:
                self._missed = True
            for wanted in asked:
                if wanted in refused:
                    self._held.discard(wanted[0])
                else:
                    self._held.add(wanted[0])
                    self._delays.pop(wanted[0], None)
            # Each refused topic waits twice as long as last time (at most a
            # minute): a cluster recovers in seconds, an ACL that denies it never.
            delay = 0.0
            for topic, _ in refused:
                self._delays[topic] = min(self._delays.get(topic, self._retry_s / 2) * 2, MAX_SUBSCRIBE_RETRY_S)
                delay = max(delay, self._delays[topic])
            completed = not was_complete and self._complete() and self._missed
            if completed:
                self._missed = False
        if completed and self._on_complete is not None:
            self._on_complete()
        if not refused:
            return
        self._counters.add("mqtt_subscribe_refused", len(refused))
        log.warning(
            "the broker refused subscription(s) to %s; asking again in %.0f s",
            ", ".join(topic for topic, _ in refused),
            delay,
        )
        retry = threading.Timer(delay, self._retry, args=(refused,))
        retry.daemon = True
        retry.start()

    def _retry(self, topics: list[tuple[str, int]]) -> None:
        # Not connected: the next connect asks for every topic not held.
        if self._client.is_connected():
            with self._lock:
                still = [topic for topic in topics if topic[0] not in self._held]
            if still:
                self.subscribe(still)
