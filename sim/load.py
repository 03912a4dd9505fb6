"""``siaga-sim load``: many virtual gateways on one asyncio loop, speaking the real MQTT contract, timing each press.

Each virtual gateway is one asyncio MQTT client (aiomqtt), not a thread, so a
thousand of them fit on one core. It does what ``gateway/link.py`` does on the
wire: a stable client id and persistent session, a retained last will
``offline``/``lost``, ``online`` status and its inventory on every connect,
health every ``health_s``, and it reads its receipts, indications, own status
(the broker's echo) and the dashboard's presence. Every payload is built by
``firmware_bridge.payloads``, so it is exactly what a gateway sends.

Presses arrive as one Poisson process at ``rate`` per second over the whole
fleet (the sum of each gateway's share), each at a random gateway and button.
For every press the generator measures the time to the dashboard's receipt
naming its event id, and to the first indication for its button after that
receipt. Unlike a real gateway it never resends: a press without a receipt is
reported missing, not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import resource
import signal
import socket
import ssl
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiomqtt

from firmware_bridge import __version__
from firmware_bridge.errors import BadPayload, SiagaError
from firmware_bridge.ids import make_ulid
from firmware_bridge.payloads import (
    ButtonHealth,
    ButtonInfo,
    Event,
    EventType,
    GatewayState,
    Health,
    Inventory,
    Kind,
    OutboxHealth,
    Site,
    Source,
    Status,
    StatusReason,
    decode_indication,
    decode_presence,
    decode_receipt,
    decode_status,
)
from firmware_bridge.timeutil import format_epoch
from firmware_bridge.topics import DEFAULT_ROOT, Channel, Topics

log = logging.getLogger(__name__)

#: Konawe Selatan, roughly: where the virtual sites are spread (WGS 84 degrees).
REGION_LAT = (-4.65, -3.95)
REGION_LON = (121.85, 122.75)
#: Every fourth button is a SAPA button, the rest fire buttons.
SAPA_EVERY = 4
#: Connects in progress at once: a broker's listen backlog is finite.
CONNECTS_AT_ONCE = 64
#: Missing receipts listed by id in the report; the count is always whole.
MISSING_IDS_SHOWN = 20
RECONNECT_MIN_S = 0.25
RECONNECT_MAX_S = 5.0


class LoadError(SiagaError):
    """A load run that cannot start or cannot reach its broker at all."""


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://host[:port]`` (default 1883) or ``mqtts://host[:port]`` (TLS, default 8883)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise LoadError(f"broker {url!r}: expected mqtt://host:port or mqtts://host:port")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise LoadError(f"broker {url!r}: the port is not a number from 1 to 65535") from None
    return BrokerAddress(parts.hostname, port, tls)


@dataclass(frozen=True)
class LoadSettings:
    """What to run: the fleet, the press rate, the broker and how to log in to it."""

    gateways: int = 10
    buttons: int = 20
    #: presses per second over all gateways
    rate: float = 10.0
    #: how long to press; None: until ``stop`` is set (Ctrl-C)
    duration_s: float | None = 10.0
    broker: str = "mqtt://127.0.0.1:1883"
    root: str = DEFAULT_ROOT
    prefix: str = "load-gw"
    health_s: float = 30.0
    #: how long to wait, after the last press, for receipts and indications still missing
    grace_s: float = 10.0
    #: one account shared by every virtual gateway (a test broker)
    username: str | None = None
    password: str | None = None
    #: a file ``<gateway id>.password`` per gateway (as the demo keeps them); the username is the gateway id
    password_dir: Path | None = None
    ca_file: str | None = None
    #: a clean session: the broker forgets each virtual gateway when it leaves (the contract keeps it)
    clean_session: bool = False
    connect_timeout_s: float = 30.0
    keepalive: int = 30
    seed: int | None = None


@dataclass(frozen=True)
class Latency:
    """Percentiles of one delay over the presses that saw it, in milliseconds (None: no sample)."""

    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        ordered = sorted(seconds)
        return cls(len(ordered), *(_percentile_ms(ordered, q) for q in (50, 95, 99, 100)))


def _percentile_ms(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted seconds, in ms rounded to 0.01."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * q // 100))
    return round(ordered[int(rank) - 1] * 1000, 2)


@dataclass(frozen=True)
class LoadReport:
    """What was sent, what came back and how late; one JSON object via :meth:`to_dict`."""

    gateways: int
    connected: int
    buttons: int
    duration_s: float
    presses_sent: int
    receipts: int
    indications: int
    presses_indicated: int
    missing_receipts: int
    missing_receipt_ids: tuple[str, ...]
    missing_indications: int
    receipt_latency: Latency
    indication_latency: Latency
    publish_errors: int
    reconnects: int
    health_sent: int
    refused_messages: int

    @property
    def ok(self) -> bool:
        """Every press got its receipt."""
        return self.missing_receipts == 0

    @property
    def rate(self) -> float:
        return round(self.presses_sent / self.duration_s, 2) if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "gateways": self.gateways,
            "connected": self.connected,
            "buttons": self.buttons,
            "duration_s": round(self.duration_s, 3),
            "presses_sent": self.presses_sent,
            "rate": self.rate,
            "receipts": self.receipts,
            "indications": self.indications,
            "presses_indicated": self.presses_indicated,
            "missing_receipts": self.missing_receipts,
            "missing_receipt_ids": list(self.missing_receipt_ids),
            "missing_indications": self.missing_indications,
            "receipt_ms": _latency_dict(self.receipt_latency),
            "indication_ms": _latency_dict(self.indication_latency),
            "publish_errors": self.publish_errors,
            "reconnects": self.reconnects,
            "health_sent": self.health_sent,
            "refused_messages": self.refused_messages,
            "ok": self.ok,
        }

    def summary(self) -> str:
        """A few lines for a person (the JSON line is for tools)."""
        return "\n".join(
            [
                f"{self.connected}/{self.gateways} gateways connected, {self.buttons} buttons; "
                f"{self.presses_sent} presses in {self.duration_s:.1f} s ({self.rate}/s)",
                f"receipts: {self.receipts}/{self.presses_sent}  {_latency_text(self.receipt_latency)}",
                f"indications: {self.presses_indicated}/{self.presses_sent} presses "
                f"({self.indications} messages)  {_latency_text(self.indication_latency)}",
                f"missing receipts: {self.missing_receipts}, missing indications: {self.missing_indications}, "
                f"publish errors: {self.publish_errors}, reconnects: {self.reconnects}",
            ]
        )


def _latency_dict(latency: Latency) -> dict[str, float | None]:
    return {"p50": latency.p50_ms, "p95": latency.p95_ms, "p99": latency.p99_ms, "max": latency.max_ms}


def _latency_text(latency: Latency) -> str:
    if not latency.count:
        return "(no sample)"
    return f"p50 {latency.p50_ms} ms, p95 {latency.p95_ms} ms, p99 {latency.p99_ms} ms, max {latency.max_ms} ms"


@dataclass
class _Press:
    button: str
    sent_at: float
    receipt_s: float | None = None
    indication_s: float | None = None


@dataclass
class Tally:
    """Every press and what came back for it; touched only from the event loop's thread."""

    presses: dict[str, _Press] = field(default_factory=dict)
    #: receipted presses per button whose indication has not come yet
    awaiting_indication: dict[str, list[_Press]] = field(default_factory=lambda: defaultdict(list))
    unreceipted: int = 0
    unindicated: int = 0
    indications: int = 0
    publish_errors: int = 0
    reconnects: int = 0
    health_sent: int = 0
    refused: int = 0
    #: set while every press has its receipt and its indication
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.settled.set()

    def sent(self, event_id: str, button: str, now: float) -> None:
        self.presses[event_id] = _Press(button, now)
        self.unreceipted += 1
        self.unindicated += 1
        self.settled.clear()

    def receipted(self, ids: Iterable[str], now: float) -> int:
        """Record receipts; returns how many named a press of ours for the first time."""
        new = 0
        for event_id in ids:
            press = self.presses.get(event_id)
            if press is None or press.receipt_s is not None:
                continue
            press.receipt_s = now - press.sent_at
            self.awaiting_indication[press.button].append(press)
            self.unreceipted -= 1
            new += 1
        self._check_settled()
        return new

    def indicated(self, button: str, now: float) -> None:
        """An indication answers every receipted press of its button (it follows the commit that receipted them)."""
        self.indications += 1
        waiting = self.awaiting_indication.pop(button, [])
        for press in waiting:
            press.indication_s = now - press.sent_at
        self.unindicated -= len(waiting)
        self._check_settled()

    def _check_settled(self) -> None:
        if self.unreceipted == 0 and self.unindicated == 0:
            self.settled.set()

    def report(self, settings: LoadSettings, connected: int, duration_s: float) -> LoadReport:
        missing = [event_id for event_id, press in self.presses.items() if press.receipt_s is None]
        receipts = [press.receipt_s for press in self.presses.values() if press.receipt_s is not None]
        indications = [press.indication_s for press in self.presses.values() if press.indication_s is not None]
        return LoadReport(
            gateways=settings.gateways,
            connected=connected,
            buttons=settings.gateways * settings.buttons,
            duration_s=duration_s,
            presses_sent=len(self.presses),
            receipts=len(receipts),
            indications=self.indications,
            presses_indicated=len(indications),
            missing_receipts=len(missing),
            missing_receipt_ids=tuple(missing[:MISSING_IDS_SHOWN]),
            missing_indications=len(self.presses) - len(indications),
            receipt_latency=Latency.of(receipts),
            indication_latency=Latency.of(indications),
            publish_errors=self.publish_errors,
            reconnects=self.reconnects,
            health_sent=self.health_sent,
            refused_messages=self.refused,
        )


def gateway_ids(prefix: str, count: int) -> list[str]:
    """``load-gw-0001`` ... (four digits at least, more for a fleet past 9,999)."""
    width = max(4, len(str(count)))
    return [f"{prefix}-{number:0{width}d}" for number in range(1, count + 1)]


def make_buttons(gw_id: str, count: int, rng: random.Random) -> tuple[ButtonInfo, ...]:
    """A gateway's buttons at one site somewhere in Konawe Selatan, each a few metres apart."""
    lat, lon = rng.uniform(*REGION_LAT), rng.uniform(*REGION_LON)
    site_name = f"Load site {gw_id}"
    return tuple(
        ButtonInfo(
            id=f"{gw_id}-b{number:02d}",
            kind=Kind.SAPA if number % SAPA_EVERY == 0 else Kind.FIRE,
            transport=Source.GPIO,
            site=Site(site_name, round(lat + rng.uniform(-5e-4, 5e-4), 6), round(lon + rng.uniform(-5e-4, 5e-4), 6)),
            label=f"load button {number}",
        )
        for number in range(1, count + 1)
    )


def new_event_id() -> str:
    return make_ulid(int(time.time() * 1000), os.urandom(10))


def credentials(settings: LoadSettings, gw_id: str) -> tuple[str | None, str | None]:
    """A gateway's own account (``password_dir``: the project's ACL), one shared account, or none."""
    if settings.password_dir is not None:
        path = settings.password_dir / f"{gw_id}.password"
        try:
            return gw_id, path.read_text("utf-8").strip()
        except OSError as exc:
            raise LoadError(f"cannot read the password of {gw_id} from {path}: {exc.strerror or exc}") from None
    return settings.username, settings.password


def tls_context(address: BrokerAddress, ca_file: str | None) -> ssl.SSLContext | None:
    if not address.tls:
        return None
    return ssl.create_default_context(cafile=ca_file)


class VirtualGateway:
    """One gateway's MQTT session: presence with last will, inventory, health, presses; receipts and indications."""

    def __init__(
        self,
        gw_id: str,
        buttons: tuple[ButtonInfo, ...],
        settings: LoadSettings,
        tally: Tally,
        connecting: asyncio.Semaphore,
    ) -> None:
        self.gw_id = gw_id
        self.buttons = buttons
        self.settings = settings
        self.tally = tally
        self.topics = Topics(settings.root)
        self.connected = asyncio.Event()
        self.last_error: str | None = None
        self._connecting = connecting
        self._address = parse_broker_url(settings.broker)
        self._username, self._password = credentials(settings, gw_id)
        self._client: aiomqtt.Client | None = None
        self._started = time.time()
        self._presses = 0
        self._acknowledged = 0
        self._connects = 0
        self._delivery_verified = False
        self._dashboard_online: bool | None = None
        self._rng = random.Random(gw_id)

    def _status(self, state: GatewayState, reason: StatusReason) -> bytes:
        return Status(
            gw=self.gw_id,
            state=state,
            ts=format_epoch(time.time()),
            version=__version__,
            reason=reason,
            started=format_epoch(self._started),
        ).encode()

    def _make_client(self) -> aiomqtt.Client:
        client = aiomqtt.Client(
            self._address.host,
            self._address.port,
            username=self._username,
            password=self._password,
            identifier=f"siaga-gw-{self.gw_id}",
            clean_session=self.settings.clean_session,
            will=aiomqtt.Will(
                self.topics.status(self.gw_id), self._status(GatewayState.OFFLINE, StatusReason.LOST), 1, True
            ),
            keepalive=self.settings.keepalive,
            tls_context=tls_context(self._address, self.settings.ca_file),
            # paho leaves Nagle on: a small publish after a PUBACK would wait ~40 ms (firmware_bridge.broker)
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
            max_inflight_messages=100,
            timeout=self.settings.connect_timeout_s,
        )
        client.pending_calls_threshold = 1_000_000  # thousands of presses in flight are the point, not a warning
        return client

    async def run(self, shutdown: asyncio.Event) -> None:
        """Stay connected (reconnecting with capped backoff) until ``shutdown``, then leave cleanly."""
        self._client = client = self._make_client()
        delay = RECONNECT_MIN_S
        while not shutdown.is_set():
            try:
                async with contextlib.AsyncExitStack() as stack:
                    async with self._connecting:
                        await stack.enter_async_context(client)
                    delay = RECONNECT_MIN_S
                    await self._session(client, shutdown)
                    return
            except aiomqtt.MqttError as exc:
                self._lost(exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(shutdown.wait(), delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    def _lost(self, exc: Exception) -> None:
        self.last_error = str(exc) or type(exc).__name__
        if self.connected.is_set():
            self.tally.reconnects += 1
            log.warning("%s: connection lost (%s); reconnecting", self.gw_id, self.last_error)
        self.connected.clear()

    async def _session(self, client: aiomqtt.Client, shutdown: asyncio.Event) -> None:
        await self._announce(client)
        listener = asyncio.create_task(self._listen(client))
        health = asyncio.create_task(self._report_health(client))
        stopping = asyncio.create_task(shutdown.wait())
        try:
            await asyncio.wait((listener, health, stopping), return_when=asyncio.FIRST_COMPLETED)
            for task in (listener, health):
                if task.done():
                    task.result()  # a lost connection raises MqttError here: reconnect
        finally:
            for task in (listener, health, stopping):
                task.cancel()
        await self._leave(client)

    async def _announce(self, client: aiomqtt.Client) -> None:
        gw = self.gw_id
        await client.subscribe(
            [
                (self.topics.indicate(gw), Channel.INDICATE.qos),
                (self.topics.receipt(gw), Channel.RECEIPT.qos),
                (self.topics.status(gw), 1),
                (self.topics.dashboard_status(), 1),
            ]
        )
        await client.publish(
            self.topics.status(gw), self._status(GatewayState.ONLINE, StatusReason.CONNECTED), qos=1, retain=True
        )
        inventory = Inventory(gw=gw, ts=format_epoch(time.time()), buttons=self.buttons).encode()
        await client.publish(self.topics.inventory(gw), inventory, qos=1, retain=True)
        self._connects += 1
        self.connected.set()

    async def _leave(self, client: aiomqtt.Client) -> None:
        """A clean stop: retained ``offline``/``shutdown``, as the gateway's ``stop()`` says."""
        self.connected.clear()
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(
                self.topics.status(self.gw_id),
                self._status(GatewayState.OFFLINE, StatusReason.SHUTDOWN),
                qos=1,
                retain=True,
            )

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                self._handle(str(message.topic), message.payload)
            except BadPayload as exc:
                self.tally.refused += 1
                log.warning("%s: refused a message on %s: %s", self.gw_id, message.topic, exc)

    def _handle(self, topic: str, payload: Any) -> None:
        now = time.monotonic()
        if topic == self.topics.receipt(self.gw_id):
            self._acknowledged += self.tally.receipted(decode_receipt(payload).ids, now)
        elif topic == self.topics.indicate(self.gw_id):
            self.tally.indicated(decode_indication(payload).button, now)
        elif topic == self.topics.status(self.gw_id):
            self._delivery_verified |= decode_status(payload).state is GatewayState.ONLINE
        elif topic == self.topics.dashboard_status():
            self._dashboard_online = decode_presence(payload).state is GatewayState.ONLINE

    async def _report_health(self, client: aiomqtt.Client) -> None:
        while True:
            await client.publish(self.topics.health(self.gw_id), self._health().encode(), qos=Channel.HEALTH.qos)
            self.tally.health_sent += 1
            # ±10 %: a fleet that connected together must not report in lockstep for ever
            await asyncio.sleep(self.settings.health_s * self._rng.uniform(0.9, 1.1))

    def _health(self) -> Health:
        waiting = self._presses - self._acknowledged
        return Health(
            gw=self.gw_id,
            ts=format_epoch(time.time()),
            uptime_s=round(time.time() - self._started, 3),
            outbox=OutboxHealth(depth=waiting, oldest_ts=None, memory_only=0, inflight=0, awaiting_receipt=waiting),
            counters={
                "presses": self._presses,
                "events_acknowledged": self._acknowledged,
                "mqtt_connects": self._connects,
            },
            version=__version__,
            outbox_ok=True,
            delivery_verified=self._delivery_verified,
            mqtt_connected=True,
            dashboard_online=self._dashboard_online,
            pump_alive=True,
            buttons=tuple(ButtonHealth(button.id, pressed=False) for button in self.buttons),
        )

    async def press(self, button: ButtonInfo) -> None:
        """One press of ``button``: an event published at QoS 1, timed from here."""
        client = self._client
        if client is None or not self.connected.is_set():
            self.tally.publish_errors += 1  # a real gateway would keep it in its outbox; we only count it
            return
        self._presses += 1
        event = Event(
            id=new_event_id(),
            gw=self.gw_id,
            button=button.id,
            kind=button.kind,
            type=EventType.PRESS,
            ts=format_epoch(time.time()),
            src=Source.GPIO,
            seq=self._presses,
        )
        payload = event.encode()
        self.tally.sent(event.id, button.id, time.monotonic())
        try:
            await client.publish(self.topics.event(self.gw_id), payload, qos=Channel.EVENT.qos)
        except aiomqtt.MqttError as exc:
            self.tally.publish_errors += 1
            log.warning("%s: publishing a press failed: %s", self.gw_id, exc)


def raise_fd_limit(needed: int) -> None:
    """Each gateway holds a socket: lift the soft limit on open files towards the hard one if need be."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def build_fleet(settings: LoadSettings, tally: Tally) -> list[VirtualGateway]:
    rng = random.Random(settings.seed)
    connecting = asyncio.Semaphore(CONNECTS_AT_ONCE)
    return [
        VirtualGateway(gw_id, make_buttons(gw_id, settings.buttons, rng), settings, tally, connecting)
        for gw_id in gateway_ids(settings.prefix, settings.gateways)
    ]


async def wait_connected(fleet: Sequence[VirtualGateway], timeout: float, stop: asyncio.Event) -> int:
    """Wait until every gateway is connected, ``timeout`` passed or ``stop`` is set; returns how many are."""
    everyone = asyncio.gather(*(gateway.connected.wait() for gateway in fleet))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait((everyone, stopping), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    everyone.cancel()
    stopping.cancel()
    return sum(gateway.connected.is_set() for gateway in fleet)


async def press_until_stopped(
    fleet: Sequence[VirtualGateway], rate: float, stop: asyncio.Event, rng: random.Random
) -> None:
    """Poisson presses at ``rate`` per second over the fleet until ``stop``; returns when all are published."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()
    next_at = loop.time()
    while rate > 0 and not stop.is_set():
        next_at += rng.expovariate(rate)
        if not await _sleep_until(next_at, stop):
            break
        gateway = rng.choice(fleet)
        task = asyncio.create_task(gateway.press(rng.choice(gateway.buttons)))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if rate <= 0:
        await stop.wait()
    if pending:
        await asyncio.wait(pending)


async def _sleep_until(moment: float, stop: asyncio.Event) -> bool:
    """Sleep until the loop's clock reads ``moment`` (late presses go at once); False if ``stop`` came first."""
    delay = moment - asyncio.get_running_loop().time()
    if delay > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
    return not stop.is_set()


async def run_load(settings: LoadSettings, stop: asyncio.Event | None = None) -> LoadReport:
    """Connect the fleet, press for ``duration_s`` (or until ``stop``), wait ``grace_s`` for answers, report."""
    stop = stop or asyncio.Event()
    raise_fd_limit(settings.gateways + 256)
    tally = Tally()
    fleet = build_fleet(settings, tally)
    shutdown = asyncio.Event()
    runners = [asyncio.create_task(gateway.run(shutdown)) for gateway in fleet]
    try:
        connected = await wait_connected(fleet, settings.connect_timeout_s, stop)
        if connected == 0:
            errors = sorted({gateway.last_error for gateway in fleet if gateway.last_error})
            raise LoadError(f"no gateway could connect to {settings.broker}: {'; '.join(errors) or 'timed out'}")
        loop = asyncio.get_running_loop()
        started = loop.time()
        timer = loop.call_later(settings.duration_s, stop.set) if settings.duration_s is not None else None
        await press_until_stopped(fleet, settings.rate, stop, random.Random(settings.seed))
        duration = loop.time() - started
        if timer is not None:
            timer.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tally.settled.wait(), settings.grace_s)
        return tally.report(settings, connected, duration)
    finally:
        shutdown.set()
        await asyncio.gather(*runners, return_exceptions=True)


async def run_load_until_interrupted(settings: LoadSettings) -> LoadReport:
    """:func:`run_load` with Ctrl-C (or SIGTERM) ending the pressing early; a second one aborts."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def first_interrupt(signum: int) -> None:
        stop.set()
        loop.remove_signal_handler(signum)  # the next one is Python's: KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, first_interrupt, signum)
    return await run_load(settings, stop)
