"""MQTT fuzzing of the dashboard's ingest (issue 9): bad input survived, and a real press still gets through.

A real Mosquitto (the project's configuration) and a real dashboard (uvicorn,
ingest, supervision) per test; Hypothesis publishes many examples against
them, each a batch of up to 12 messages on every channel the dashboard
subscribes to (``tests/fuzz_helpers.py`` says what is generated), with QoS
0/1/2 and retained flags. After each example:

- two *sentinel* round trips (an event, then one it refuses, each awaited by
  its receipt) prove that everything the example published was processed
  and counted: the dashboard stores in arrival order (no sleeps);
- the ingest writer is alive and connected; nothing was set aside (counters
  ``set_aside.*``, ``rejected.internal_error``, ``rejected_messages``), no
  store or writer error;
- every message is accounted for against the contract (the oracle
  ``fuzz_helpers.expected``): each one the contract refuses is counted under
  its reason, and each valid event is stored, a duplicate, or counted as refused;
- what was stored does not break what reads it: a supervision round runs, and
  the pages, APIs and live streams of the fire operator, the SAPA desk, an
  admin and a technician answer 200 (``/healthz`` too).

Then the broker is restarted, so the dashboard's session resumes and every
retained fuzz message comes back at once; and a real press (inventory and
event of a registered fire button) must reach the fire operator's live stream.
A deterministic test interleaves 2,000 bad messages with 20 presses and checks
that all 20 are stored on their alarm, and ``FOUND`` keeps the minimal
reproducers of what the fuzzer found.

Budget: ``SIAGA_FUZZ_EXAMPLES`` examples (default 100, about 10 s);
derandomized, so every run tries the same examples. A failing batch is
printed as it was (``published: [...]``) with a ``@reproduce_failure`` blob;
shrinking against a live dashboard takes minutes, so it is off unless
``SIAGA_FUZZ_SHRINK=1``. A longer hunt, with other examples::

    SIAGA_FUZZ_EXAMPLES=3000 SIAGA_FUZZ_SEED=7 SIAGA_FUZZ_SHRINK=1 \
        .venv/bin/python -m pytest tests/test_fuzz_mqtt.py -q -k fuzzed --timeout=3600
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, note, seed, settings
from hypothesis import strategies as st

from dashboard.db import connect
from dashboard.ingest.mqtt import SUBSCRIBED
from firmware_bridge.broker import BrokerSettings
from firmware_bridge.errors import BadTopic
from firmware_bridge.payloads import Event, GatewayState, Status, decode_presence, decode_receipt
from firmware_bridge.topics import Channel
from sim.mosquitto import Mosquitto
from sim.servers import DashboardServer
from sim.webclient import DashboardClient

from .conftest import ADMIN, OPERATOR, SAPA_DESK, signed_in
from .fuzz_helpers import (
    BURST_BUTTON,
    BURST_GW,
    INGEST_CHANNELS,
    REAL_BUTTON,
    REAL_GW,
    ROOT,
    SENTINEL_BUTTON,
    SENTINEL_GW,
    TOPICS,
    Expected,
    Msg,
    expected,
    inventory,
    messages,
    now_ts,
    poison_catalogue,
)
from .mqttprobe import Probe
from .test_ingest import make_event

EXAMPLES = int(os.environ.get("SIAGA_FUZZ_EXAMPLES", "100"))
SEED = os.environ.get("SIAGA_FUZZ_SEED")
SHRINK = os.environ.get("SIAGA_FUZZ_SHRINK", "") not in ("", "0")
TECHNICIAN = ("teknisi", "technician-password-1")
#: What each role reads after an example: every view that shows what was stored.
VIEWS = {
    "admin": (
        "/api/alarms?state=all",
        "/api/gateways",
        "/api/sites",
        "/api/troubles",
        "/api/devices",
        "/api/diagnostics",
        "/board",
        "/devices",
    ),
    "sapa desk": ("/api/alarms?state=all", "/api/sites"),
    "technician": ("/api/devices", "/api/troubles", "/devices"),
}
#: Counters (by prefix) of what must never happen to a message: set aside because processing
#: failed (and its fail-open consequences), the store or the writer failing.
NEVER = ("rejected.internal_error", "set_aside", "degraded_alarms", "press_not_stored", "writer_errors", "store_errors")


def failures(counters: dict[str, int]) -> dict[str, int]:
    return {name: value for name, value in counters.items() if value and name.startswith(NEVER)}


def fuzz_settings(test: Callable[..., None]) -> Callable[..., None]:
    configured = settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=SEED is None,
        database=None,
        print_blob=True,
        phases=tuple(Phase) if SHRINK else tuple(phase for phase in Phase if phase is not Phase.shrink),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )(test)
    return seed(int(SEED))(configured) if SEED is not None else configured


def press(gw: str, button: str, type: str = "press") -> Event:
    """A fire button's event, as a gateway sends it."""
    return make_event(button, gw=gw, type=type)


class Rig:
    """The fuzzer's side of one dashboard: publishes, waits for the dashboard to catch up, checks it."""

    def __init__(self, dashboard: DashboardServer, probe: Probe) -> None:
        self.dashboard = dashboard
        self.ingest = dashboard.ingest
        self.supervisor = dashboard.app.extensions["siaga"].supervisor
        self.conn = connect(dashboard.config["DATABASE"])
        # A stream the checks close stays subscribed until its next keepalive (15 s by default):
        # opened per example, they would pile up against the account's stream limit.
        dashboard.app.config["SIAGA_STREAM_KEEPALIVE_S"] = 0.05
        self.use_probe(probe)
        dashboard.create_user(*TECHNICIAN, "technician")
        self.admin = signed_in(dashboard, ADMIN)
        self.operator = signed_in(dashboard, OPERATOR)
        self.sapa = signed_in(dashboard, SAPA_DESK)
        self.technician = signed_in(dashboard, TECHNICIAN)
        self.examples = 0
        #: Per topic, the messages the broker may now retain there (an empty payload: cleared).
        self.retained: dict[str, list[Msg]] = {}
        self.set_aside_seen = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM rejected_messages").fetchone()[0]
        self.outcomes: Counter[str] = Counter()

    def use_probe(self, probe: Probe) -> None:
        self.probe = probe
        probe.subscribe(TOPICS.receipt(SENTINEL_GW))

    def close(self) -> None:
        self.conn.close()

    # -- publishing and waiting ------------------------------------------------------------------

    def publish(self, batch: list[Msg]) -> None:
        infos = [self.probe.client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain) for m in batch]
        for message, info in zip(batch, infos, strict=True):
            info.wait_for_publish(10)
            assert info.is_published(), f"the broker did not take {message!r}"
        by_topic: dict[str, list[Msg]] = {}
        for message in batch:
            if message.retain:
                by_topic.setdefault(message.topic, []).append(message)
        for topic, sent in by_topic.items():
            # A QoS 2 message takes effect when its PUBREL reaches the broker, which may be after
            # later messages of the same batch: any of them may be what the topic now retains.
            self.retained[topic] = [sent[-1], *(m for m in sent[:-1] if m.qos == 2)]

    def settle(self, timeout: float = 30.0) -> list[Msg]:
        """Return once the dashboard has processed (and counted) everything published before; no sleeps.

        Two round trips: a valid heartbeat, receipted after its batch is
        committed (its counters follow the receipt), then an event refused as
        ``gw_mismatch``, which is counted before it is receipted and is
        processed after the first one's batch is done. Returns both messages.
        """
        first = press(SENTINEL_GW, SENTINEL_BUTTON, type="heartbeat")
        second = press(SENTINEL_GW, SENTINEL_BUTTON, type="heartbeat")
        sent = [
            Msg(TOPICS.event(SENTINEL_GW), first.encode()),
            Msg(TOPICS.event(SENTINEL_GW), json.dumps({**second.to_dict(), "gw": "gw-sentinel-x"}).encode()),
        ]
        receipt = TOPICS.receipt(SENTINEL_GW)
        for message, event in zip(sent, (first, second), strict=True):
            self.probe.publish(message.topic, message.payload, qos=1)
            try:
                self.probe.wait_for(
                    lambda m, event=event: m.topic == receipt and event.id in decode_receipt(m.payload).ids,
                    timeout=timeout,
                )
            except TimeoutError:
                raise AssertionError(
                    f"the dashboard did not catch up within {timeout} s (hung or lost messages): "
                    f"alive={self.ingest.is_alive()} failure={self.ingest.failure!r} backlog={self.ingest.backlog} "
                    f"counters={self.ingest.counters.snapshot()}"
                ) from None
        return sent

    def prelude(self, batch: list[Msg]) -> list[Msg]:
        """Valid messages that make an example independent of the ones before it.

        A clean health for each gateway whose stored health came from the
        fuzzer, and an ``online`` status for each gateway the batch sends
        health for (supervision reads only an online gateway's health).
        """
        rows = self.conn.execute(
            "SELECT gw FROM gateways WHERE health IS NOT NULL AND health NOT LIKE ?", ('%"fuzz_clean":true%',)
        ).fetchall()
        clean = {"v": 1, "ts": now_ts(), "uptime_s": 1.0, "outbox": {"depth": 0}, "counters": {}, "fuzz_clean": True}
        heal = [Msg(TOPICS.health(row["gw"]), json.dumps({**clean, "gw": row["gw"]}).encode()) for row in rows]
        gateways = set()
        for message in batch:
            try:
                gw, channel = TOPICS.parse(message.topic)
            except BadTopic:
                continue
            if channel is Channel.HEALTH:
                gateways.add(gw)
        online = [
            Msg(TOPICS.status(gw), Status(gw=gw, state=GatewayState.ONLINE, ts=now_ts()).encode())
            for gw in sorted(gateways)
        ]
        return heal + online

    # -- one example ---------------------------------------------------------------------------------

    def run(self, batch: list[Msg]) -> None:
        prelude = self.prelude(batch)
        if prelude:
            self.publish(prelude)
            self.settle()
        with contextlib.suppress(Exception):  # clears what an earlier example left (its failure was reported then)
            self.supervisor.check(self.conn)
        oracle = [expected(message) for message in batch]
        before = self.ingest.counters.snapshot()
        self.publish(batch)
        sentinels = self.settle()
        self.check_ingest(batch + sentinels, oracle + [expected(m) for m in sentinels], before)
        self.check_readers()
        self.examples += 1
        self.outcomes.update(e.detail if e.outcome == "rejected" else e.outcome for e in oracle)

    def check_ingest(self, batch: list[Msg], oracle: list[Expected], before: dict[str, int]) -> None:
        ingest = self.ingest
        assert ingest.is_alive() and ingest.failure is None, f"ingest writer died: {ingest.failure!r}"
        assert ingest.connected.is_set(), "the dashboard lost its broker connection"
        after = ingest.counters.snapshot()

        def delta(name: str) -> int:
            return after.get(name, 0) - before.get(name, 0)

        failed = failures({name: delta(name) for name in after})
        set_aside = self.conn.execute(
            "SELECT id AS n, topic, error, payload FROM rejected_messages WHERE reason = 'internal_error' AND id > ?",
            (self.set_aside_seen,),
        ).fetchall()
        self.set_aside_seen = max([self.set_aside_seen, *(row["n"] for row in set_aside)])
        crashes = [(m, e.detail) for m, e in zip(batch, oracle, strict=True) if e.outcome == "decoder_crash"]
        assert not crashes, f"the contract's decoder raised instead of refusing: {crashes}"
        assert not failed and not set_aside, f"{failed}; set aside: {[tuple(row)[1:] for row in set_aside][:3]}"
        reasons = Counter(e.detail for e in oracle if e.outcome == "rejected")
        for reason, count in reasons.items():
            assert delta(f"rejected.{reason}") >= count, (
                f"{count} message(s) the contract refuses as {reason} were counted {delta(f'rejected.{reason}')} "
                f"time(s): {[m for m, e in zip(batch, oracle, strict=True) if e.detail == reason]}"
            )
        events = sum(e.outcome == "event" for e in oracle)
        refused = sum(reasons.values())
        taken = delta("events_stored") + delta("events_duplicate")
        # A valid event is stored, a duplicate, or (if the dashboard refuses it on other grounds) counted.
        assert taken + (delta("rejected") - refused) == events and delta("rejected") >= refused, (
            f"{events} valid event(s) and {refused} refusal(s) expected; the dashboard stored {taken} and "
            f"refused {delta('rejected')}: {after}"
        )

    def check_readers(self) -> None:
        """A supervision round over what was stored, then every view that reads it, for each role."""
        problems = []
        try:
            self.supervisor.check(self.conn)
        except Exception as exc:
            problems.append(f"supervision round failed: {exc!r}")
        readers = {"admin": self.admin, "sapa desk": self.sapa, "technician": self.technician}
        views = [(who, readers[who], path) for who, paths in VIEWS.items() for path in paths]
        for who, client, path in views:
            status, text = client.get_text(path)
            if status != 200:
                problems.append(f"GET {path} as {who}: HTTP {status}")
            elif path.startswith("/api/"):
                json.loads(text)
        for who, client in (("fire operator", self.operator), ("sapa desk", self.sapa)):
            try:
                with client.stream() as stream:  # the live board's first message: its snapshot
                    stream.wait_for(lambda e: e.event == "snapshot", 10)
            except (ConnectionError, TimeoutError, EOFError) as exc:
                problems.append(f"live stream as {who}: {exc}")
        status, text = self.admin.get_text("/healthz")
        if status != 200 or not json.loads(text)["ok"]:
            problems.append(f"/healthz: HTTP {status} {text}")
        assert not problems, "; ".join(problems)

    def diagnostics(self) -> dict[str, Any]:
        return self.admin.get_json("/api/diagnostics")

    # -- the broker goes away and comes back ---------------------------------------------------------

    def restart_broker(self, mosquitto: Mosquitto, settings: BrokerSettings) -> Probe:
        """Restart Mosquitto; the dashboard resumes its session and gets every retained message again."""
        mosquitto.stop()
        restarted = time.time()
        mosquitto.start()
        probe = Probe(settings).__enter__()
        probe.subscribe(TOPICS.dashboard_status())

        def online_again(message: Any) -> bool:
            presence = decode_presence(message.payload)
            when = datetime.fromisoformat(presence.ts).timestamp()
            return presence.state is GatewayState.ONLINE and when >= restarted - 0.002

        probe.wait_for(lambda m: m.topic == TOPICS.dashboard_status() and online_again(m), timeout=30)
        self.use_probe(probe)
        return probe


@pytest.fixture
def rig(dashboard: DashboardServer, probe: Probe) -> Iterator[Rig]:
    assert set(SUBSCRIBED) == set(INGEST_CHANNELS), "the fuzzer must cover every channel the dashboard subscribes to"
    assert dashboard.ingest.topics.root == ROOT
    rig = Rig(dashboard, probe)
    probe.publish(TOPICS.inventory(SENTINEL_GW), inventory(SENTINEL_GW, SENTINEL_BUTTON).encode(), retain=True)
    rig.settle()
    yield rig
    rig.close()


@pytest.mark.timeout(900)  # the default budget takes seconds; shrinking a failure takes longer
def test_fuzzed_mqtt_never_stops_the_dashboard_and_a_real_press_still_reaches_the_board(
    rig: Rig, mosquitto: Mosquitto, broker_settings: BrokerSettings, operator: DashboardClient
) -> None:
    @fuzz_settings
    @given(st.lists(messages(), min_size=1, max_size=12))
    def fuzz(batch: list[Msg]) -> None:
        note(f"published: {batch!r}")
        rig.run(batch)

    fuzz()
    assert rig.examples >= min(EXAMPLES, 20)
    # The refusals are visible where a technician looks, by reason.
    counters = rig.diagnostics()["counters"]
    refused = sum(n for outcome, n in rig.outcomes.items() if outcome not in ("event", "accepted"))
    assert counters.get("rejected", 0) >= refused
    assert len([name for name in counters if name.startswith("rejected.")]) >= 5, counters
    assert not failures(counters), counters

    # The dashboard's session outlives the broker's restart: it does not subscribe again, so the retained
    # fuzz messages (each refused once already) do not come a second time; the sentinel's refusal, counted
    # as the broker comes back, shows the dashboard still reads and refuses what comes.
    before = rig.ingest.counters.get("rejected")
    probe = rig.restart_broker(mosquitto, broker_settings)
    try:
        rig.settle()
        assert rig.ingest.counters.get("rejected") - before == 1, (
            f"refused since the restart: {[(r.topic, r.reason) for r in list(rig.ingest.rejections)[-25:]]}"
        )
        assert not failures(rig.ingest.counters.snapshot()), rig.ingest.counters.snapshot()
        rig.check_readers()

        # A real press afterwards reaches the fire post's live board, and only once.
        with operator.stream() as stream:
            stream.wait_for(lambda e: e.event == "snapshot", 10)
            probe.subscribe(TOPICS.receipt(REAL_GW))
            online = Status(gw=REAL_GW, state=GatewayState.ONLINE, ts=now_ts(), version="0.1.0")
            probe.publish(TOPICS.status(REAL_GW), online.encode(), retain=True)
            probe.publish(TOPICS.inventory(REAL_GW), inventory(REAL_GW, REAL_BUTTON).encode(), retain=True)
            real = press(REAL_GW, REAL_BUTTON)
            probe.publish(TOPICS.event(REAL_GW), real.encode())
            alarm = stream.wait_for(lambda e: e.event == "alarm" and e.json()["last_event_id"] == real.id, 10).json()
        assert (alarm["button"], alarm["kind"], alarm["state"], alarm["press_count"]) == (
            REAL_BUTTON,
            "fire",
            "unacknowledged",
            1,
        )
        assert alarm["site"]["name"] == "Pasar Andoolo"
        probe.wait_for(lambda m: m.topic == TOPICS.receipt(REAL_GW) and real.id in decode_receipt(m.payload).ids)
        detail = operator.get_json(f"/api/alarms/{alarm['id']}")
        assert [event["id"] for event in detail["events"]] == [real.id]
        diagnostics = rig.diagnostics()
        assert diagnostics["ingest_alive"] and diagnostics["mqtt_connected"]
    finally:
        probe.__exit__()


def test_a_burst_of_2000_bad_messages_costs_none_of_20_presses(
    rig: Rig, operator: DashboardClient, probe: Probe
) -> None:
    probe.subscribe(TOPICS.receipt(BURST_GW))
    probe.publish(TOPICS.inventory(BURST_GW), inventory(BURST_GW, BURST_BUTTON).encode(), retain=True)
    catalogue = poison_catalogue(BURST_GW, now_ts())
    odd_topics = [f"{ROOT}/gw/{segment}" for segment in ("", "gw burst", "g" * 65, "\U0001f525")]
    garbage: list[Msg] = []
    for n in range(2000):
        channel, payload = catalogue[n % len(catalogue)]
        base = odd_topics[n % len(odd_topics)] if n % 7 == 0 else f"{ROOT}/gw/{BURST_GW}"
        garbage.append(Msg(f"{base}/{channel.value}", payload, qos=(1, 0, 2)[n % 3]))
    presses = [press(BURST_GW, BURST_BUTTON) for _ in range(20)]
    stream: list[Msg] = []
    for n, message in enumerate(garbage):
        stream.append(message)
        if n % 100 == 50:
            stream.append(Msg(TOPICS.event(BURST_GW), presses[n // 100].encode()))
    before = rig.ingest.counters.snapshot()
    rig.publish(stream)

    # The dashboard receipts each press once it is committed.
    waiting = {event.id for event in presses}

    def receipted(message: Any) -> bool:
        if message.topic == TOPICS.receipt(BURST_GW):
            waiting.difference_update(decode_receipt(message.payload).ids)
        return not waiting

    probe.wait_for(receipted, timeout=60)
    rig.settle()

    (alarm,) = [a for a in operator.get_json("/api/alarms?state=all")["alarms"] if a["button"] == BURST_BUTTON]
    assert alarm["press_count"] == len(presses)
    detail = operator.get_json(f"/api/alarms/{alarm['id']}")
    assert sorted(event["id"] for event in detail["events"]) == sorted(event.id for event in presses)
    after = rig.ingest.counters.snapshot()
    refused = sum(e.outcome == "rejected" for e in map(expected, garbage))
    assert after.get("rejected", 0) - before.get("rejected", 0) >= refused >= 1500
    assert rig.ingest.is_alive() and rig.diagnostics()["counters"]["rejected"] >= refused


def _health(gw: str = "gw-a", raw: str = "", **extra: Any) -> Msg:
    """A health message for ``gw`` with ``extra`` fields (or ``raw`` JSON text spliced in)."""
    base = {"v": 1, "gw": gw, "ts": now_ts(), "uptime_s": 1.0, "outbox": {"depth": 0}, "counters": {}, **extra}
    text = json.dumps(base)
    return Msg(TOPICS.health(gw), (text[:-1] + "," + raw + "}" if raw else text).encode())


_STATUS = {"v": 1, "gw": "gw-a", "state": "online", "ts": "2026-11-28T04:05:06.789Z"}
_BUTTON = {"id": "b-1", "kind": "fire", "transport": "gpio", "site": {"name": "Pasar", "lat": -4.3, "lon": 122.3}}
_INVENTORY = {"v": 1, "gw": "gw-a", "ts": "2026-11-28T04:05:06.789Z", "buttons": [_BUTTON]}

#: Minimal reproducers of what the fuzzer found (issue 9). Each is valid for the contract (extra
#: fields are allowed and ignored) or should be refused by it; either way the dashboard must go on:
#: store or refuse it, never set it aside, and keep supervising and serving every view.
FOUND: dict[str, list[Msg]] = {
    "health radio.module a string: supervision round fails": [_health(radio={"module": "x"})],
    "health radio.nodes a list: supervision round fails": [_health(radio={"nodes": [1]})],
    "health radio.nodes.* null: supervision round fails": [_health(radio={"nodes": {"1": None}})],
    "health buttons an int: supervision round fails": [_health(buttons=5)],
    "health buttons [null]: supervision round fails": [_health(buttons=[None])],
    "health buttons[].id a list: supervision round fails": [_health(buttons=[{"id": [1], "pressed_for_s": 100}])],
    "health buttons[].pressed_for_s 10**400: supervision round fails": [
        _health(raw='"buttons":[{"id":"b","pressed_for_s":1' + "0" * 400 + "}]")
    ],
    "health radio.nodes.*.age_s 10**400: supervision round fails": [
        _health(raw='"radio":{"nodes":{"1":{"button":"b","age_s":1' + "0" * 400 + "}}}")
    ],
    # The trouble is stored with began_at -1e308 before its view fails: while it is open, the fire
    # post's live stream, /api/troubles, /api/sites and /api/devices answer 500.
    "health buttons[].pressed_for_s 1e308: the board's stream and the trouble views 500": [
        _health(buttons=[{"id": "b", "pressed_for_s": 1e308}])
    ],
    # Every field as documented: a backlog that "began" in year -7973 is stored, then cannot be shown.
    "health ts 9999, outbox.oldest_ts year 1: the board's stream and the trouble views 500": [
        _health(ts="9999-12-31T23:59:59.999Z", outbox={"depth": 5, "oldest_ts": "0001-01-01T00:00:00.000Z"})
    ],
    "health radio true: /api/devices 500": [_health(radio=True)],
    "health radio.nodes.*.age_s a string: /api/devices 500": [
        _health(radio={"nodes": {"1": {"button": "b", "age_s": "x"}}})
    ],
    "health uptime_s 10**400: decoder raises OverflowError, set aside": [
        Msg(TOPICS.health("gw-a"), _health().payload.replace(b'"uptime_s": 1.0', b'"uptime_s": 1' + b"0" * 400))
    ],
    "status version a lone surrogate: set aside": [
        Msg(TOPICS.status("gw-a"), json.dumps({**_STATUS, "version": "\ud800"}).encode())
    ],
    "inventory label a lone surrogate: set aside, no button registered": [
        Msg(TOPICS.inventory("gw-a"), json.dumps({**_INVENTORY, "buttons": [{**_BUTTON, "label": "\udc00"}]}).encode())
    ],
}


def test_what_the_fuzzer_found_is_survived(rig: Rig) -> None:
    broken = {}
    for name, batch in FOUND.items():
        try:
            rig.run(batch)
        except Exception as exc:
            broken[name] = str(exc).split("\n")[0][:600]
    assert not broken, "\n".join(f"{name}: {error}" for name, error in broken.items())
