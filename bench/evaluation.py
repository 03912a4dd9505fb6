"""The evaluation report (issue 15): a year's report over a million stored events, built and rendered within 10 s.

A fresh store (an SQLite file in a temporary folder, or with ``--store postgresql`` a fresh schema on the
local server) is seeded with one year, 2025 in local time (WITA), of a regency's data, plus two weeks on each
side of it (so that the year's boundaries are crossed, as in a real store), written directly in bulk, one
transaction per table:

- 1,000 gateways of 20 buttons (two SAPA buttons each, a third of them LoRa), each gateway in one of the 25
  kecamatan of ``perda-categories.toml`` (weighted; one gateway in a hundred names none);
- ~100,000 fire alarms (more in the dry season) and ~2,000 SAPA alarms in 2025, with their acknowledgement,
  dispatch and resolution times, test alarms, false alarms, escalations (and their webhook notices) and a
  few alarms still open; their actions; and 1,000,000 stored events, every one a press of an alarm;
- ~20,000 troubles of gateways and buttons (outages, radio, battery, wiring, service...), a few still open;
- commissioning sessions (one per gateway, some failed and done again) with each button's result, and
  each button's last test;
- ~20,000 Perda/Perkada reports (web form and Open311) with their history: verified, rejected with a
  reason, enforcement steps, done; a few still open.

The store is not ANALYZEd: the dashboard never does, so the query planner sees what it sees in production.

Then, each timed ``--repeat`` times after one untimed run (min and median): ``build_report`` for the year
and for its last quarter, the year's HTML page, and its PDF (``dashboard.evaluation.pdf.render_pdf``).
The floors, measured in the same run on the same store: reading once, as plain rows, everything the
year's (the quarter's) report is made from (its alarms, the troubles that overlap it, its notices, every
button, its reports and their history, the commissioning records), and one durable commit. The target:
a year's report, built and made a PDF, within 10 s. Prints one JSON line; ``--profile`` also prints the
year's build's busiest functions (cProfile) on stderr.

    .venv/bin/python -m bench.evaluation
    .venv/bin/python -m bench.evaluation --events 200000 --fire-alarms 20000 --repeat 3
    .venv/bin/python -m bench.evaluation --store postgresql
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import itertools
import json
import math
import pstats
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from bench.common import load_average, machine
from dashboard.alarms import store as alarm_store
from dashboard.commissioning.settings import CommissioningSettings
from dashboard.db import connect, init_schema, insert_rows
from dashboard.evaluation.period import Period
from dashboard.evaluation.settings import EvaluationSettings
from dashboard.reports.categories import Catalogue, load_catalogue
from dashboard.reports.workflow import Enforcement, Rejection, Status

#: A year's report, built and made a PDF, within this (issue 15).
TARGET_S = 10.0
YEAR = Period.parse("2025")
QUARTER = Period.parse("2025-Q4")
#: Data on each side of the year: what a real store holds around any period.
MARGIN_S = 14 * 86400.0
#: Fire alarms per month of the year: more in the dry season (August to October in Southeast Sulawesi).
FIRE_SEASON = (7, 6, 6, 6, 7, 8, 9, 11, 12, 11, 9, 8)
FLAT = (1,) * 12
#: Buttons per gateway that are SAPA buttons (the rest are fire buttons); every third button is LoRa.
SAPA_SLOTS = frozenset({9, 19})
#: Kecamatan with more people get more gateways; any other weighs 1.
KECAMATAN_WEIGHTS = {"Ranomeeto": 3, "Konda": 3, "Andoolo": 3, "Landono": 2, "Tinanggea": 2, "Moramo": 2,
                     "Palangga": 2, "Lalembuu": 2, "Kolono": 2}  # fmt: skip
#: Perda categories by how often they are reported; a code no longer in the catalogue is reported too.
CATEGORY_WEIGHTS = {"pedagang-area-terlarang": 25, "buang-sampah-sembarangan": 20, "gangguan-ketertiban": 15,
                    "bangunan-tanpa-izin": 10, "ternak-berkeliaran": 10, "reklame-tanpa-izin": 8,
                    "minuman-beralkohol": 5, "pelanggaran-lain": 7}  # fmt: skip
RETIRED_CATEGORY = "parkir-liar"
#: Trouble types by share, with the median duration (seconds) and what they are about.
TROUBLES: tuple[tuple[str, float, float, str], ...] = (
    ("gateway_offline", 30, 40 * 60, "gateway"),
    ("gateway_silent", 5, 20 * 60, "gateway"),
    ("gateway_health_unreadable", 1, 60 * 60, "gateway"),
    ("gateway_clock", 3, 3 * 3600, "gateway"),
    ("gateway_backlog", 4, 10 * 60, "gateway"),
    ("gateway_disk", 0.5, 6 * 3600, "gateway"),
    ("radio_missing", 4, 2 * 3600, "gateway"),
    ("button_missing", 18, 2 * 3600, "lora"),
    ("low_battery", 10, 5 * 86400, "lora"),
    ("tamper", 2, 3600, "lora"),
    ("button_stuck", 3, 15 * 60, "gpio"),
    ("button_wiring", 3, 8 * 3600, "gpio"),
    ("button_out_of_service", 4, 2 * 86400, "button"),
    ("button_in_test", 4, 3600, "button"),
    ("test_overdue", 5, 10 * 86400, "button"),
    ("not_commissioned", 1, 5 * 86400, "button"),
    ("presses_suppressed", 1, 3600, "button"),
    ("webhook_failing", 0.5, 30 * 60, "webhook"),
)
_BATCH = 50_000
_ALARM_COLUMNS = ("id", "number", "button", "gw", "kind", "state", "rev", "press_count", "first_event_id",
                  "last_event_id", "first_press_ts", "opened_at", "last_press_at", "acknowledged_at",
                  "acknowledged_by", "dispatched_at", "dispatched_by", "dispatch_unit", "resolved_at", "resolved_by",
                  "resolution", "note", "test", "escalation", "escalated_at")  # fmt: skip
_EVENT_COLUMNS = ("id", "gw", "button", "kind", "type", "ts", "src", "received_at", "alarm_id", "payload")
_KIND_CODE = {"fire": 1, "sapa": 2}


@dataclass(frozen=True)
class Sizes:
    gateways: int = 1000
    buttons_per_gateway: int = 20
    events: int = 1_000_000
    fire_alarms: int = 100_000
    sapa_alarms: int = 2_000
    troubles: int = 20_000
    reports: int = 20_000
    open_alarms: int = 12


class Button(NamedTuple):
    id: str
    gw: str
    kind: str
    transport: str
    site: str
    kecamatan: str | None
    lat: float
    lon: float


class Alarm(NamedTuple):
    """What the events of an alarm (and the buttons' last tests) are made from."""

    id: int
    button: Button
    opened_at: float
    presses: int
    test: bool


class Handling(NamedTuple):
    """An alarm's steps: their times (None: not taken), its resolution, and its escalation."""

    test: bool
    resolution: str | None
    acknowledged: float | None
    dispatched: float | None
    resolved: float | None
    escalation: int
    escalated_at: float | None

    @property
    def state(self) -> str:
        if self.resolved is not None:
            return "resolved"
        if self.dispatched is not None:
            return "dispatched"
        return "acknowledged" if self.acknowledged is not None else "unacknowledged"

    def left_open(self, *, acknowledged: bool) -> Handling:
        """The same alarm, still open now (acknowledged or not)."""
        return self._replace(resolution=None, dispatched=None, resolved=None,
                             acknowledged=self.acknowledged if acknowledged else None)  # fmt: skip

    def actions(self, operator: str) -> Iterator[tuple[str, str, float, str, str]]:
        """``(action, actor, at, from_state, to_state)`` of each step taken after the opening."""
        state = "unacknowledged"
        for action, at in (("acknowledged", self.acknowledged), ("dispatched", self.dispatched),
                           ("resolved", self.resolved)):  # fmt: skip
            if at is not None:
                yield action, operator, at, state, action
                state = action


@dataclass
class Seeded:
    """How many rows of each table were written, and how long it took."""

    gateways: int = 0
    buttons: int = 0
    fire_buttons: int = 0
    events: int = 0
    fire_alarms: int = 0
    fire_alarms_in_year: int = 0
    sapa_alarms: int = 0
    sapa_alarms_in_year: int = 0
    open_alarms: int = 0
    alarm_actions: int = 0
    notifications: int = 0
    troubles: int = 0
    commissioning_sessions: int = 0
    commissioning_buttons: int = 0
    button_tests: int = 0
    reports: int = 0
    reports_in_year: int = 0
    report_history: int = 0
    seconds: float = 0.0


# -- seeding ---------------------------------------------------------------------------------------


def _iso(at: float) -> str:
    """A gateway's ``ts`` for the instant ``at``, as ``format_epoch`` writes it (faster: a million are written)."""
    whole = int(at)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((at - whole) * 1000):03d}Z"


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return rng.lognormvariate(math.log(median), sigma)


class Seeder:
    """Writes one store's data; every draw comes from one seeded generator, so a run is reproducible."""

    def __init__(self, conn: Any, sizes: Sizes, catalogue: Catalogue, seed: int) -> None:
        self.conn = conn
        self.sizes = sizes
        self.catalogue = catalogue
        self.rng = random.Random(seed)
        self.month_starts = YEAR.month_starts()
        self.seeded = Seeded()

    def instants(self, count: int, weights: Sequence[float]) -> list[float]:
        """``count`` instants in the year by ``weights`` per month, and more at the year's mean rate in the
        margins on either side of it (so a kind's total is a little above ``count``)."""
        rng, starts = self.rng, self.month_starts
        months = rng.choices(range(12), weights, k=count)
        times = [starts[m] + rng.random() * (starts[m + 1] - starts[m]) for m in months]
        margin = round(count * 2 * MARGIN_S / (YEAR.end - YEAR.start))
        for _ in range(margin):
            offset = rng.random() * MARGIN_S
            times.append(YEAR.start - offset if rng.random() < 0.5 else YEAR.end + offset)
        times.sort()
        return times

    def write(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Rows of one table in one transaction, sent in batches."""
        count = 0
        self.conn.execute("BEGIN")
        try:
            for batch in _batches(rows):
                insert_rows(self.conn, table, columns, batch)
                count += len(batch)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return count

    def run(self) -> Seeded:
        """Every table, devices first (alarms name buttons, events name alarms)."""
        started = time.perf_counter()
        buttons = self.devices()
        sizes = self.sizes
        sapa_events = round(sizes.events * sizes.sapa_alarms / max(1, sizes.fire_alarms + sizes.sapa_alarms))
        fire = self.alarms("fire", [b for b in buttons if b.kind == "fire"], sizes.fire_alarms, FIRE_SEASON,
                           sizes.events - sapa_events)  # fmt: skip
        sapa = self.alarms("sapa", [b for b in buttons if b.kind == "sapa"], sizes.sapa_alarms, FLAT, sapa_events)
        self.seeded.events = self.write("events", _EVENT_COLUMNS, _event_rows(fire + sapa))
        self.troubles(buttons)
        self.commissioning(buttons, fire)
        self.reports()
        self.seeded.seconds = round(time.perf_counter() - started, 2)
        return self.seeded

    def devices(self) -> list[Button]:
        """Gateways (each in one kecamatan, or none named), their buttons and their inventories' registrations."""
        rng, areas = self.rng, self.catalogue.areas
        weights = [KECAMATAN_WEIGHTS.get(area, 1) for area in areas]
        buttons, gateways = [], []
        for g in range(self.sizes.gateways):
            gw = f"gw-{g:04d}"
            kecamatan = None if g % 100 == 99 else rng.choices(areas, weights)[0]
            lat, lon = -4.0 - rng.random() * 0.9, 122.0 + rng.random() * 0.9
            gateways.append((gw, "online", _iso(YEAR.end), "0.1.0", _iso(YEAR.start), YEAR.end, YEAR.end))
            for b in range(self.sizes.buttons_per_gateway):
                kind = "sapa" if b in SAPA_SLOTS else "fire"
                transport = "lora" if b % 3 == 2 else "gpio"
                site = f"{kecamatan or 'Konawe Selatan'} {g:04d}-{b // 5}"
                buttons.append(Button(f"{gw}-{kind}-{b:02d}", gw, kind, transport, site, kecamatan,
                                      lat - b * 0.0002, lon + b * 0.0002))  # fmt: skip
        self.write("gateways", ("gw", "state", "status_ts", "version", "started", "updated_at", "health_at"), gateways)
        self.write(
            "buttons",
            ("id", "gw", "kind", "transport", "site_name", "lat", "lon", "label", "updated_at", "kecamatan"),
            ((b.id, b.gw, b.kind, b.transport, b.site, b.lat, b.lon, f"Tombol {b.id[-2:]}", YEAR.start, b.kecamatan)
             for b in buttons),
        )  # fmt: skip
        self.write("registrations", ("gw", "button", "kind", "updated_at"),
                   ((b.gw, b.id, b.kind, YEAR.start) for b in buttons))  # fmt: skip
        self.seeded.gateways = len(gateways)
        self.seeded.buttons = len(buttons)
        self.seeded.fire_buttons = sum(1 for b in buttons if b.kind == "fire")
        return buttons

    def alarms(self, kind: str, buttons: list[Button], count: int, season: Sequence[float], events: int) -> list[Alarm]:
        """A kind's alarms, numbered in order of opening, sharing ``events`` presses (at least one each),
        with their actions and escalation notices. The last few are still open, each on a button of its own
        (the store allows one open alarm per button and kind)."""
        rng = self.rng
        rows, actions, notices, made = [], [], [], []
        times = self.instants(count, season)
        presses = self.press_counts(len(times), events)
        open_count = self.sizes.open_alarms if kind == "fire" else 2
        still_open = set(range(max(0, len(times) - open_count), len(times)))
        open_buttons: set[str] = set()
        operator = "damkar-operator" if kind == "fire" else "sapa-desk"
        for index, opened_at in enumerate(times):
            alarm_id = 16 * (index + 1) + _KIND_CODE[kind]
            button = rng.choice(buttons)
            while index in still_open and button.id in open_buttons:
                button = rng.choice(buttons)
            last_press = opened_at + 3.0 * (presses[index] - 1)
            steps = self.handling(kind, opened_at, last_press)
            if index in still_open:
                open_buttons.add(button.id)
                steps = steps.left_open(acknowledged=index % 3 != 0)
            first_event, last_event = f"e{alarm_id}-0", f"e{alarm_id}-{presses[index] - 1}"
            unit = steps.dispatched and ("Damkar Andoolo" if kind == "fire" else "UPTD PPA")
            rows.append((alarm_id, index + 1, button.id, button.gw, kind, steps.state, 3, presses[index], first_event,
                         last_event, _iso(opened_at - 0.4), opened_at, last_press, steps.acknowledged,
                         steps.acknowledged and operator, steps.dispatched, steps.dispatched and operator, unit,
                         steps.resolved, steps.resolved and operator, steps.resolution, None, int(steps.test),
                         steps.escalation, steps.escalated_at))  # fmt: skip
            actions.append((alarm_id, "opened", f"gw:{button.gw}", opened_at, None, "unacknowledged", first_event))
            actions.extend((alarm_id, *action, None) for action in steps.actions(operator))
            if steps.escalated_at is not None:
                notices.extend(self.notices(alarm_id, kind, steps, opened_at))
            made.append(Alarm(alarm_id, button, opened_at, presses[index], steps.resolution == "test"))
        self.write("alarms", _ALARM_COLUMNS, rows)
        self.seeded.alarm_actions += self.write(
            "alarm_actions", ("alarm_id", "action", "actor", "at", "from_state", "to_state", "event_id"), actions
        )
        self.seeded.notifications += self.write(
            "notifications",
            ("alarm_id", "kind", "event", "step", "webhook", "payload", "status", "created_at", "attempts",
             "next_at", "finished_at", "last_error"),
            notices,
        )  # fmt: skip
        setattr(self.seeded, f"{kind}_alarms", len(rows))
        setattr(self.seeded, f"{kind}_alarms_in_year", sum(1 for t in times if YEAR.start <= t < YEAR.end))
        self.seeded.open_alarms += len(still_open)
        return made

    def handling(self, kind: str, opened_at: float, last_press: float) -> Handling:
        """How an alarm was handled: tests, false alarms, escalation when nobody acknowledged within 2 min."""
        rng = self.rng
        test = rng.random() < 0.04  # a button in test mode: a silent test alarm, never escalated
        resolution = "test" if test else rng.choices(("real", "false_alarm", "test"), (45, 50, 5))[0]
        ack = opened_at + _lognormal(rng, 40 if kind == "sapa" else 45, 0.7)
        escalation, escalated_at = 0, None
        if not test and ack - opened_at > 120:
            escalation, escalated_at = (2, opened_at + 300) if ack - opened_at > 300 else (1, opened_at + 120)
        dispatched = None
        if resolution == "real" or (resolution == "false_alarm" and rng.random() < 0.2):
            dispatched = ack + _lognormal(rng, 90, 0.7)
        if resolution == "real":
            resolved = (dispatched or ack) + _lognormal(rng, 45 * 60, 0.8)
        elif resolution == "false_alarm":
            resolved = (dispatched or ack) + _lognormal(rng, 8 * 60, 0.8)
        else:
            resolved = ack + _lognormal(rng, 120, 0.5)
        resolved = max(resolved, last_press + 5.0)  # a press after the resolution would have opened a new alarm
        return Handling(test, resolution, ack, dispatched, resolved, escalation, escalated_at)

    def notices(self, alarm_id: int, kind: str, steps: Handling, opened_at: float) -> Iterator[tuple[Any, ...]]:
        """The webhook notices of an escalated alarm: each step, then its acknowledgement and resolution."""
        webhook = "damkar" if kind == "fire" else "uptd-ppa"
        moments = [("alarm.escalated", step, opened_at + (120 if step == 1 else 300))
                   for step in range(1, steps.escalation + 1)]  # fmt: skip
        moments += [(event, steps.escalation, at)
                    for event, at in (("alarm.acknowledged", steps.acknowledged), ("alarm.resolved", steps.resolved))
                    if at is not None]  # fmt: skip
        for event, step, at in moments:
            status = self.rng.choices(("sent", "failed"), (97, 3))[0]
            payload = json.dumps({"event": event, "alarm": alarm_id, "step": step}, separators=(",", ":"))
            finished = at + (1.5 if status == "sent" else 3600)
            yield (alarm_id, kind, event, step, webhook, payload, status, at, 1 if status == "sent" else 8,
                   finished, finished, None if status == "sent" else "HTTP 502")  # fmt: skip

    def press_counts(self, alarms: int, events: int) -> list[int]:
        """``events`` presses shared at random among ``alarms`` alarms, at least one each."""
        counts = [1] * alarms
        for index in self.rng.choices(range(alarms), k=max(0, events - alarms)):
            counts[index] += 1
        return counts

    def troubles(self, buttons: list[Button]) -> None:
        """Troubles of gateways, buttons (fire and SAPA) and a webhook; a few begun at the year's end still open."""
        rng = self.rng
        gateways = sorted({b.gw for b in buttons})
        lora_gateways = sorted({b.gw for b in buttons if b.transport == "lora"})
        by_transport = {"lora": [b for b in buttons if b.transport == "lora"],
                        "gpio": [b for b in buttons if b.transport == "gpio"], "button": buttons}  # fmt: skip
        began = self.instants(self.sizes.troubles, FLAT)
        kinds = rng.choices(TROUBLES, [t[1] for t in TROUBLES], k=len(began))
        rows, open_keys = [], set()
        for (kind, _share, median, about), began_at in zip(kinds, began, strict=True):
            button = gw = subject = trouble_kind = None
            if about == "gateway":
                gw = rng.choice(lora_gateways if kind == "radio_missing" else gateways)
                key = f"{kind}:{gw}"
            elif about == "webhook":  # a receiver failing one desk's notices (supervision.Trouble.key)
                subject, trouble_kind = rng.choice((("damkar", "fire"), ("uptd-ppa", "sapa")))
                key = f"{kind}:{subject}:{trouble_kind}"
            else:
                chosen = rng.choice(by_transport[about])
                button, gw, trouble_kind = chosen.id, chosen.gw, chosen.kind
                key = f"{kind}:{button}"
            cleared = began_at + _lognormal(rng, median, 1.2)
            if began_at > YEAR.end - 3 * 86400 and rng.random() < 0.3 and key not in open_keys:
                cleared = None  # still open now (one open trouble per key)
                open_keys.add(key)
            rows.append((key, kind, gw, button, subject, trouble_kind, f"{kind} (bench)", began_at, began_at + 5.0,
                         cleared))  # fmt: skip
        self.seeded.troubles = self.write(
            "troubles",
            ("key", "type", "gw", "button", "subject", "kind", "detail", "began_at", "detected_at", "cleared_at"),
            rows,
        )

    def commissioning(self, buttons: list[Button], fire: list[Alarm]) -> None:
        """A session per gateway from mid-2024 on (some failed, then done again), each button's record, the
        stored report of each session (its results and PDF), and each button's last commissioning and test."""
        rng = self.rng
        by_gw: dict[str, list[Button]] = {}
        for button in buttons:
            by_gw.setdefault(button.gw, []).append(button)
        last_test: dict[str, float] = {}
        for alarm in fire:  # a test alarm of a fire button is a periodic test
            if alarm.test:
                last_test[alarm.button.id] = max(last_test.get(alarm.button.id, 0.0), alarm.opened_at)
        sessions, records, reports, tests = [], [], [], []
        for gw, its_buttons in by_gw.items():
            if rng.random() < 0.05:
                continue  # never commissioned
            started = YEAR.start - 200 * 86400 + rng.random() * (YEAR.end - YEAR.start + 180 * 86400)
            for verdict in ["failed", "passed"] if rng.random() < 0.08 else ["passed"]:
                session_id = len(sessions) + 1
                finished = started + rng.uniform(15, 60) * 60
                sessions.append((session_id, gw, "teknisi", started, started + 7200, "finished", "teknisi", finished,
                                 verdict, "0.1.0"))  # fmt: skip
                views = []
                for position, button in enumerate(its_buttons, start=1):
                    missed = verdict == "failed" and position % 7 == 0  # a button nobody could press
                    pressed = None if missed else started + position * rng.uniform(20, 90)
                    lora = button.transport == "lora" and pressed is not None
                    rssi, snr = (rng.uniform(-110, -70), rng.uniform(-2, 9)) if lora else (None, None)
                    records.append((session_id, button.id, position, button.kind, button.transport, button.site,
                                    f"Tombol {position}", None, started, None, pressed, rssi, snr, "yes", "yes",
                                    finished if missed else None, finished))  # fmt: skip
                    views.append(_button_result(button, position, pressed, rssi, snr))
                    if pressed is not None:
                        tests.append((button.id, finished, session_id, max(pressed, last_test.get(button.id, 0.0))))
                results = {"id": session_id, "gw": gw, "state": "finished", "verdict": verdict, "buttons": views,
                           "sites": sorted({b.site for b in its_buttons})}  # fmt: skip
                kinds = ",".join(sorted({b.kind for b in its_buttons}))
                # A stored report's PDF: tens of kilobytes, as dashboard/commissioning/report.py makes them.
                pdf = b"%PDF-1.4\n" + rng.randbytes(40_000)
                reports.append((session_id, gw, kinds, finished, verdict, json.dumps(results, separators=(",", ":")),
                                pdf))  # fmt: skip
                started = finished + rng.uniform(1, 10) * 86400
        self.seeded.commissioning_sessions = self.write(
            "commissioning_sessions",
            ("id", "gw", "started_by", "started_at", "expires_at", "state", "finished_by", "finished_at", "verdict",
             "gateway_version"),
            sessions,
        )  # fmt: skip
        self.seeded.commissioning_buttons = self.write(
            "commissioning_buttons",
            ("session_id", "button", "position", "kind", "transport", "site_name", "label", "previous_service",
             "armed_at", "event_id", "pressed_at", "rssi", "snr", "led_seen", "buzzer_heard", "gave_up_at",
             "updated_at"),
            records,
        )  # fmt: skip
        self.write(
            "commissioning_reports", ("session_id", "gw", "kinds", "created_at", "verdict", "results", "pdf"), reports
        )
        self.seeded.button_tests = self.write(
            "button_tests", ("button", "commissioned_at", "session_id", "tested_at"), _latest_tests(tests)
        )

    def reports(self) -> None:
        """Perda reports and their history, each report's row as its last step left it."""
        rng, areas = self.rng, self.catalogue.areas
        codes = list(CATEGORY_WEIGHTS)
        target_days = {c.code: c.target_days for c in self.catalogue.categories}
        received = self.instants(self.sizes.reports, FLAT)
        reports, history = [], []
        for number, requested_at in enumerate(received, start=1):
            code = RETIRED_CATEGORY if rng.random() < 0.005 else rng.choices(codes, list(CATEGORY_WEIGHTS.values()))[0]
            source = "web" if rng.random() < 0.65 else "open311:konsel-app"
            steps = list(self.report_steps(requested_at, target_days.get(code, 7.0)))
            status, resolution, updated_at = steps[-1][1], steps[-1][2], steps[-1][0]
            area = None if rng.random() < 0.03 else rng.choice(areas)
            year = time.gmtime(requested_at + 8 * 3600).tm_year
            reports.append((number, f"LAP-{year}-{number:06d}", f"{rng.getrandbits(128):032x}", code,
                            "Laporan pelanggaran (bench)", -4.0 - rng.random(), 122.0 + rng.random(), None, None,
                            area, "{}", None, status, resolution, requested_at, updated_at, source,
                            f"Pelapor {number}", None, None, None, None))  # fmt: skip
            previous = None
            for at, to_status, step_resolution in steps:
                actor = source if to_status == Status.RECEIVED else "petugas"
                history.append((number, at, actor, previous, to_status, step_resolution, None, 1))
                previous = to_status
        self.seeded.reports = self.write(
            "reports",
            ("id", "ticket", "token", "service_code", "description", "lat", "lon", "address", "address_id", "area",
             "attributes", "media_url", "status", "resolution", "requested_at", "updated_at", "source",
             "reporter_name", "reporter_email", "reporter_phone", "device_id", "account_id"),
            reports,
        )  # fmt: skip
        self.seeded.reports_in_year = sum(1 for t in received if YEAR.start <= t < YEAR.end)
        self.seeded.report_history = self.write(
            "report_history",
            ("report_id", "at", "actor", "from_status", "to_status", "resolution", "note", "public"),
            history,
        )

    def report_steps(self, requested_at: float, target_days: float) -> Iterator[tuple[float, str, str | None]]:
        """A report's history: received, then verified or rejected, enforcement steps, done (or left open)."""
        rng, day = self.rng, 86400.0
        yield requested_at, Status.RECEIVED, None
        at = requested_at + _lognormal(rng, 0.8 * day, 0.9)
        if rng.random() < 0.12:
            yield at, Status.REJECTED, rng.choice(list(Rejection)).value
            return
        if rng.random() < 0.02:
            return  # nobody looked at it yet
        yield at, Status.VERIFIED, None
        if rng.random() < 0.05:
            yield at + _lognormal(rng, 0.5 * day, 0.8), Status.REJECTED, rng.choice(list(Rejection)).value
            return
        done = requested_at + _lognormal(rng, 0.6 * target_days * day, 0.8)
        if rng.random() < 0.55:
            first = rng.choices(list(Enforcement), (50, 20, 15, 15))[0]
            step = at + (done - at) * rng.uniform(0.2, 0.6)
            yield step, Status.IN_ACTION, first.value
            if first is Enforcement.WARNING and rng.random() < 0.2:
                yield step + (done - step) * 0.5, Status.IN_ACTION, Enforcement.WRITTEN_WARNING.value
        if rng.random() < 0.03:
            return  # still being worked on
        yield max(done, at + 60), Status.DONE, None


def _button_result(
    button: Button, position: int, pressed: float | None, rssi: float | None, snr: float | None
) -> dict[str, Any]:
    """A button's entry in a stored commissioning report's results (dashboard/commissioning/store.py)."""
    passed = pressed is not None
    return {"id": button.id, "kind": button.kind, "transport": button.transport, "site": button.site,
            "label": f"Tombol {position}", "event_id": None, "pressed_at": pressed and _iso(pressed),
            "alarm_id": None, "test_alarm": 1 if passed else None, "rssi": rssi, "snr": snr,
            "checks": {"press": "passed" if passed else "failed", "radio": "passed" if rssi else "not_applicable",
                       "indication": "passed" if passed else "failed"},
            "led_seen": "yes", "buzzer_heard": "yes", "result": "passed" if passed else "failed",
            "reasons": [] if passed else ["no_press"]}  # fmt: skip


def _latest_tests(tests: list[tuple[str, float, int, float]]) -> list[tuple[str, float, int, float]]:
    """Each button's row from its last passed session (the table keeps only the latest)."""
    latest: dict[str, tuple[str, float, int, float]] = {}
    for row in tests:
        if row[0] not in latest or row[1] > latest[row[0]][1]:
            latest[row[0]] = row
    return list(latest.values())


def _event_rows(alarms: list[Alarm]) -> Iterator[tuple[Any, ...]]:
    """Each alarm's presses, three seconds apart, as the ingest stores them (the gateway's payload kept)."""
    for alarm in alarms:
        button = alarm.button
        for n in range(alarm.presses):
            at = alarm.opened_at + 3.0 * n
            ts = _iso(at - 0.4)
            event_id = f"e{alarm.id}-{n}"
            payload = (f'{{"v":1,"id":"{event_id}","gw":"{button.gw}","button":"{button.id}","kind":"{button.kind}",'
                       f'"type":"press","ts":"{ts}","src":"{button.transport}"}}')  # fmt: skip
            yield (event_id, button.gw, button.id, button.kind, "press", ts, button.transport, at, alarm.id, payload)


def _batches(rows: Iterable[Any], size: int = _BATCH) -> Iterator[list[Any]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


# -- floors ----------------------------------------------------------------------------------------


def read_floor(conn: Any, period: Period) -> int:
    """Read once, as plain rows, everything ``period``'s report is made from; returns the rows read.

    The least any report of the period can cost: its alarms of both kinds (through the store's own
    reader), the troubles that overlap it, the fire notices finished in it, every button, its reports and
    their history, and the commissioning records.
    """
    start, end = period.start, period.end
    rows = len(alarm_store.evaluation_alarms(conn, "fire", start, end))
    rows += len(alarm_store.evaluation_alarms(conn, "sapa", start, end))
    cursor = conn.cursor()
    cursor.row_factory = None
    queries = (
        ("SELECT type, gw, button, kind, began_at, cleared_at FROM troubles "
         "WHERE began_at < ? AND (cleared_at IS NULL OR cleared_at > ?)", (end, start)),
        ("SELECT alarm_id, status, finished_at FROM notifications WHERE kind = 'fire' AND finished_at >= ? "
         "AND finished_at < ?", (start, end)),
        ("SELECT id, gw, kind, transport, kecamatan FROM buttons", ()),
        ("SELECT id, service_code, area, source, requested_at FROM reports WHERE requested_at >= ? "
         "AND requested_at < ?", (start, end)),
        ("SELECT h.report_id, h.at, h.to_status, h.resolution FROM report_history h JOIN reports r "
         "ON r.id = h.report_id WHERE r.requested_at >= ? AND r.requested_at < ?", (start, end)),
        ("SELECT s.id, s.verdict, s.finished_at, b.button, b.pressed_at FROM commissioning_sessions s "
         "JOIN commissioning_buttons b ON b.session_id = s.id WHERE s.finished_at < ?", (end,)),
    )  # fmt: skip
    for sql, params in queries:
        rows += len(cursor.execute(sql, params).fetchall())
    return rows


def commit_floor_ms(conn: Any, repeat: int = 20) -> float:
    """The median of ``repeat`` one-row durable commits on the same store (fsync'd; on PostgreSQL: its commit)."""
    conn.execute("CREATE TABLE bench_floor (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
    samples = []
    try:
        for n in range(repeat):
            started = time.perf_counter()
            conn.execute("BEGIN")
            conn.execute("INSERT INTO bench_floor (id, payload) VALUES (?, ?)", (n, "x" * 200))
            conn.execute("COMMIT")
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        conn.execute("DROP TABLE bench_floor")
    return round(statistics.median(samples), 3)


# -- measures --------------------------------------------------------------------------------------


def timed(work: Callable[[], Any], repeat: int) -> tuple[dict[str, float], Any]:
    """Seconds of ``repeat`` runs after an untimed first one: the first, min and median; and the last result."""
    started = time.perf_counter()
    result = work()
    first = time.perf_counter() - started
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        samples.append(time.perf_counter() - started)
    return {
        "first": round(first, 3),
        "min": round(min(samples), 3),
        "median": round(statistics.median(samples), 3),
    }, result


def _ratio(measured: dict[str, float], floor: dict[str, float]) -> float:
    return round(measured["median"] / max(floor["median"], 1e-6), 2)


def missing_modules() -> list[str]:
    """The report's modules not there yet (other parts of issue 15 are written alongside this benchmark)."""
    missing = []
    for name in ("fire", "sapa", "perda", "build", "pdf", "views"):
        try:
            importlib.import_module(f"dashboard.evaluation.{name}")
        except ImportError as exc:
            missing.append(f"dashboard.evaluation.{name}: {exc}")
    return missing


#: The evaluator the page and PDF requests sign in as.
EVALUATOR = ("penilai", "penilai-password-1")
_CSRF = re.compile(rb'name="csrf[-_]token"\s+(?:value|content)="([^"]+)"')


def signed_in_client(database: str, folder: Path) -> Any:
    """A test client of the dashboard app on ``database`` (in this process: no network), signed in as an evaluator."""
    from dashboard import create_app
    from dashboard.accounts.auth import Role, create_user

    app = create_app({"DATABASE": database, "SECRET_KEY": "bench-secret-" + "x" * 40, "TESTING": True,
                      "SIAGA_PHOTOS_DIR": folder / "photos"})  # fmt: skip
    conn = connect(database)
    try:
        create_user(conn, *EVALUATOR, Role.EVALUATOR)
    finally:
        conn.close()
    client = app.test_client()
    token = _CSRF.search(client.get("/login").data)
    if token is None:
        raise RuntimeError("no CSRF token on /login")
    username, password = EVALUATOR
    response = client.post("/login", data={"username": username, "password": password,
                                           "csrf_token": token.group(1).decode()})  # fmt: skip
    if response.status_code != 302:
        raise RuntimeError(f"signing in as an evaluator answered {response.status_code}")
    return client


def request_measures(database: str, folder: Path, repeat: int) -> dict[str, Any]:
    """The year's page and PDF as an evaluator's click asks for them, through the app's routes (build, render,
    audit): the time of each whole request. A route not there yet is recorded as such."""
    client = signed_in_client(database, folder)
    out: dict[str, Any] = {}
    for name, path, kind in (("html", f"/evaluation/{YEAR.key}", "text/html"),
                             ("pdf", f"/evaluation/{YEAR.key}.pdf", "application/pdf")):  # fmt: skip
        response = client.get(path)
        if response.status_code != 200 or not response.mimetype.startswith(kind):
            out[f"{name}_request"] = f"GET {path}: HTTP {response.status_code} {response.mimetype}"
            continue
        out[f"{name}_request_s"], body = timed(lambda path=path: client.get(path).data, repeat)
        out[f"{name}_bytes"] = len(body)
    return out


def section_times(conn: Any, catalogue: Catalogue, now: float, repeat: int) -> dict[str, float]:
    """Where the year's build goes: the median seconds of each section's builder."""
    from dashboard.evaluation import build

    context = build.Context(conn, YEAR, min(now, YEAR.end), EvaluationSettings(), CommissioningSettings(), catalogue)
    builders = {"fire": build.fire.section, "sapa": build.sapa.section, "perda": build.perda.section}
    return {
        name: timed(lambda section=section: section(context), repeat)[0]["median"] for name, section in builders.items()
    }


def profile_build(build: Callable[[], Any], top: int = 25) -> list[str]:
    """The year's build under cProfile: its busiest functions (own time), also printed on stderr."""
    profiler = cProfile.Profile()
    profiler.enable()
    build()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
    stats.print_stats(top)
    print(out.getvalue(), file=sys.stderr)
    lines = []
    for (filename, line, function), (_cc, calls, tottime, cumtime, _callers) in sorted(
        stats.stats.items(),
        key=lambda item: item[1][2],
        reverse=True,  # type: ignore[attr-defined]
    )[:10]:
        lines.append(
            f"{Path(filename).name}:{line}({function}) calls={calls} tottime={tottime:.3f}s cum={cumtime:.3f}s"
        )
    return lines


def measure(store: str, sizes: Sizes, repeat: int, seed: int, profile: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"store": store}
    catalogue = load_catalogue()
    with tempfile.TemporaryDirectory(prefix="siaga-evaluation-") as tmp:
        target = Path(tmp) / "dashboard.sqlite"
        if store == "postgresql":
            from sim.stores import postgresql_store_at

            target = postgresql_store_at(Path(tmp) / "store")
        conn = connect(target)
        try:
            init_schema(conn)
            result["seeded"] = asdict(Seeder(conn, sizes, catalogue, seed).run())
            result.update(measure_store(conn, catalogue, repeat, profile))
        finally:
            conn.close()
        if not result["missing"]:
            result.update(request_measures(str(target), Path(tmp), repeat))
    return result


def measure_store(conn: Any, catalogue: Catalogue, repeat: int, profile: bool) -> dict[str, Any]:
    """The floors, then the report's build and renderings, on a seeded store."""
    out: dict[str, Any] = {}
    floors: dict[str, Any] = {}
    floors["read_year_s"], rows = timed(lambda: read_floor(conn, YEAR), repeat)
    floors["read_year_rows"] = rows
    floors["read_quarter_s"], rows = timed(lambda: read_floor(conn, QUARTER), repeat)
    floors["read_quarter_rows"] = rows
    floors["commit_ms"] = commit_floor_ms(conn)
    out["floors"] = floors
    out["missing"] = missing_modules()
    try:
        from dashboard.evaluation.build import build_report
    except ImportError:
        return out
    now = time.time()
    settings, commissioning = EvaluationSettings(), CommissioningSettings()

    def build(period: Period) -> Any:
        return build_report(conn, period, now=now, settings=settings, commissioning=commissioning,
                            catalogue=catalogue)  # fmt: skip

    out["build_year_s"], report = timed(lambda: build(YEAR), repeat)
    out["build_year_sections_s"] = section_times(conn, catalogue, now, repeat)
    out["build_quarter_s"], _ = timed(lambda: build(QUARTER), repeat)
    out["report_cells"] = sum(len(row) for section in report.sections for table in section.tables for row in table.rows)
    if profile or out["build_year_s"]["median"] > 3:
        out["build_year_profile"] = profile_build(lambda: build(YEAR))
    try:
        from dashboard.evaluation.pdf import render_pdf
    except ImportError:
        pdf_median = None
    else:
        out["pdf_year_s"], pdf = timed(lambda: render_pdf(report, "id"), repeat)
        out["pdf_bytes"] = len(pdf)
        pdf_median = out["pdf_year_s"]["median"]
    ratios = {
        "build_year_to_read_floor": round(
            out["build_year_s"]["median"] / max(floors["read_year_s"]["median"], 1e-9), 2
        ),
        "build_quarter_to_read_floor": round(
            out["build_quarter_s"]["median"] / max(floors["read_quarter_s"]["median"], 1e-9), 2
        ),
    }
    out["ratios"] = ratios
    if pdf_median is not None:
        out["year_build_and_pdf_s"] = round(out["build_year_s"]["median"] + pdf_median, 3)
    return out


def main(argv: list[str] | None = None) -> int:
    defaults = Sizes()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="sqlite (a file in a temporary folder) or postgresql (a fresh schema on the local server)",
    )
    parser.add_argument("--gateways", type=int, default=defaults.gateways)
    parser.add_argument("--buttons-per-gateway", type=int, default=defaults.buttons_per_gateway)
    parser.add_argument("--events", type=int, default=defaults.events, help="stored presses, shared among the alarms")
    parser.add_argument("--fire-alarms", type=int, default=defaults.fire_alarms, help="fire alarms opened in 2025")
    parser.add_argument("--sapa-alarms", type=int, default=defaults.sapa_alarms, help="SAPA alarms opened in 2025")
    parser.add_argument("--troubles", type=int, default=defaults.troubles, help="troubles begun in 2025")
    parser.add_argument("--reports", type=int, default=defaults.reports, help="Perda reports received in 2025")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each measure (after one untimed)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="profile the year's build (also when it takes > 3 s)")
    args = parser.parse_args(argv)
    if args.buttons_per_gateway <= max(SAPA_SLOTS) - 10 or args.gateways < 1 or args.repeat < 1:
        parser.error("need at least one gateway, 10 buttons per gateway and one run")
    sizes = Sizes(gateways=args.gateways, buttons_per_gateway=args.buttons_per_gateway, events=args.events,
                  fire_alarms=args.fire_alarms, sapa_alarms=args.sapa_alarms, troubles=args.troubles,
                  reports=args.reports)  # fmt: skip
    if sizes.events < sizes.fire_alarms + sizes.sapa_alarms:
        parser.error("every alarm has at least one press: --events must be at least the alarms")
    try:
        result = measure(args.store, sizes, args.repeat, args.seed, args.profile)
    finally:
        if args.store == "postgresql":
            from sim.stores import drop_made

            drop_made()
    # The target holds for the parts timed apart (build + PDF) and for the whole click (the PDF's request).
    totals = [result.get("year_build_and_pdf_s"), result.get("pdf_request_s", {}).get("median")]
    measured = [total for total in totals if total is not None]
    line = {
        "bench": "evaluation",
        "period": YEAR.key,
        "quarter": QUARTER.key,
        **result,
        "target_s": TARGET_S,
        "within_target": all(total <= TARGET_S for total in measured) if measured else None,
        "machine": machine(),
        "load": load_average(),
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
