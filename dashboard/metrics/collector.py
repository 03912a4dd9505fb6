"""Reads one scrape's snapshot from this process's parts and the store, at scrape time (a prometheus_client Collector).

Nothing is counted twice: the counters are the ones the ingest, notifier,
streams and peers already keep (``firmware_bridge.counters.Counters``), and the
store's figures (open alarms, troubles, queued notices) are read when Prometheus
asks. A part that cannot be read is left out of that answer, counted and
logged; the rest is answered.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Any, TypeVar

from flask import Flask
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from firmware_bridge import __version__
from firmware_bridge.counters import Counters
from firmware_bridge.metrics import MetricsSettings
from firmware_bridge.payloads import Kind

from ..alarms import notify, store
from ..board.api import counters_for
from ..db import Connection, give_back, kept
from ..devices.supervision import Audience, open_troubles
from ..live import EXTENSION as LIVE
from ..live import Live
from ..reports.metrics import EXTENSION as REPORTS
from .families import IngestState, OpenAlarms, Snapshot, families, plain_names

log = logging.getLogger(__name__)

T = TypeVar("T")

_ALL_KINDS = frozenset(kind.value for kind in Kind)


def exposed_kinds(settings: MetricsSettings) -> frozenset[str]:
    """The alarm kinds whose figures a scrape carries: SAPA's only when ``[metrics] sapa`` says so."""
    return _ALL_KINDS if settings.sapa else _ALL_KINDS - {Kind.SAPA.value}


def shown_counters(settings: MetricsSettings, counters: dict[str, int]) -> dict[str, int]:
    """The counters a scrape may carry; with SAPA left out, the board's rule for a role that sees only fire:
    a total over every kind would tell SAPA's activity by difference, so only per-kind and kind-free ones."""
    every = {name: 0 for name in plain_names()} | counters
    return every if settings.sapa else counters_for(exposed_kinds(settings), every)


class DashboardCollector(Collector):
    """This process's metrics, read at each scrape; ``describe`` is empty so registering reads nothing."""

    def __init__(self, app: Flask, settings: MetricsSettings) -> None:
        self._app = app
        self._settings = settings
        self._errors = Counters()

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        return families(self.snapshot())

    def snapshot(self) -> Snapshot:
        state: Live = self._app.extensions[LIVE]
        kinds = exposed_kinds(self._settings)
        reports = self._app.extensions.get(REPORTS)
        ingest = state.ingest
        rounds = state.supervisor.round_times() if state.supervisor is not None else {}
        # The counters before the store: counters move after a commit, so a scrape that counts an event
        # also finds its alarm (read the other way round, a commit in between showed the one, not the other).
        counters = shown_counters(self._settings, state.counters.snapshot())
        alarms, troubles, queued = self._store_figures(kinds)
        return Snapshot(
            kinds=kinds,
            counters=counters,
            reports=reports.counters.snapshot() if reports is not None else {},
            alarms_open=None if alarms is None else [OpenAlarms(*row) for row in alarms],
            troubles_open=troubles,
            notices_queued=None if queued is None else {kind: n for kind, n in queued.items() if kind in kinds},
            streams_open=state.hub.subscribers,
            ingest=None
            if ingest is None
            else IngestState(ingest.connected.is_set(), ingest.is_alive(), ingest.backlog),
            leader=bool(state.leadership and state.leadership.holds()),
            supervisor_last_round_s=rounds.get("last_s"),
            supervisor_longest_round_s=rounds.get("max_s"),
            version=__version__,
            scrape_errors=self._errors.get("store_reads"),
        )

    def _store_figures(self, kinds: frozenset[str]) -> tuple[Any, Any, Any]:
        """Open alarms, open troubles by type, queued notices by kind; each None if it could not be read."""
        try:
            conn = kept(self._app.config["DATABASE"])
        except Exception:  # the store is away: the process's own figures are still worth answering
            self._errors.add("store_reads")
            log.exception("metrics: could not reach the store; this scrape leaves its figures out")
            return None, None, None
        try:
            return (
                self._read(conn, "open alarms", lambda: store.count_open(conn, kinds=kinds)),
                self._read(conn, "open troubles", lambda: _troubles_by_type(conn, kinds)),
                self._read(conn, "queued notices", lambda: notify.queued_by_kind(conn)),
            )
        finally:
            give_back(conn)

    def _read(self, conn: Connection, what: str, read: Callable[[], T]) -> T | None:
        """The figures, or None if the store would not give them (the family is then left out, not shown as 0)."""
        try:
            return read()
        except Exception:  # a scrape answers what it can; a failing store is a trouble of its own
            self._errors.add("store_reads")
            log.exception("metrics: could not read the %s; this scrape leaves them out", what)
            with suppress(Exception):
                conn.rollback()  # on PostgreSQL a failed statement spoils the transaction for the next reads
            return None


def _troubles_by_type(conn: Connection, kinds: frozenset[str]) -> dict[str, Any]:
    """Open troubles per type, as a technician would count them: every device's, and presses' of ``kinds`` only
    (a press trouble of a SAPA button says somebody pressed it: ``supervision.PRESS_TROUBLES``)."""
    audience = Audience(kinds=_ALL_KINDS, press_kinds=kinds)
    return dict(Counter(trouble["type"] for trouble in open_troubles(conn, audience)))
