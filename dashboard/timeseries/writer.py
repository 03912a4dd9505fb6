"""The time-series writer: the leader's thread that turns the store's news into points and writes the queue
to InfluxDB in batches, retrying with capped backoff while the server is away (never on the alarm path)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS, WriteApi
from influxdb_client.rest import ApiException
from urllib3.exceptions import HTTPError

from firmware_bridge.counters import Counters

from ..db import Connection, PeriodicCheck, transaction
from ..defaults import LOCAL_TIME
from . import queue
from .collect import collect
from .points import SeriesPolicy

log = logging.getLogger(__name__)

#: Answers that say the points themselves are refused (bad line, too large): retrying them cannot help.
REFUSED_STATUSES = frozenset({400, 413, 422})


@dataclass(frozen=True)
class InfluxSettings:
    """``[influxdb]``: where the points go and how they are written."""

    url: str
    org: str
    bucket: str
    token: str | None = None
    batch_size: int = 5000
    interval_s: float = 1.0
    timeout_s: float = 10.0
    retry_max_s: float = 60.0
    #: Writes failing this long are a trouble on the board.
    trouble_after_s: float = 300.0
    sapa_detail: bool = False
    sapa_purpose: str | None = None

    @property
    def policy(self) -> SeriesPolicy:
        return SeriesPolicy(sapa_detail=self.sapa_detail)


class SeriesWriter(PeriodicCheck):
    """Each round (in the leader only): queue the store's news, then write queued points until none are left
    or the server fails; a batch is forgotten only once the server accepted it."""

    def __init__(self, database: str, settings: InfluxSettings, counters: Counters) -> None:
        super().__init__("siaga-timeseries", settings.interval_s, database)
        self.settings = settings
        self.counters = counters
        self._client: InfluxDBClient | None = None
        self._write_api: WriteApi | None = None
        self._retry_at = 0.0
        self._backoff = 0.0

    def setup(self) -> None:
        super().setup()
        # retries=False: the backoff here decides when to try again; the client's own would hold the thread.
        self._client = InfluxDBClient(
            url=self.settings.url,
            token=self.settings.token or "",
            org=self.settings.org,
            timeout=int(self.settings.timeout_s * 1000),
            retries=False,
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    def teardown(self) -> None:
        if self._client is not None:
            self._client.close()
        super().teardown()

    def check(self, conn: Connection) -> object:
        with transaction(conn):
            self.counters.add("timeseries_points_queued", collect(conn, self.settings.policy, time.time(), LOCAL_TIME))
        if time.monotonic() < self._retry_at:
            return None
        while not self.stopping:
            ids, lines = queue.oldest(conn, self.settings.batch_size)
            if not ids or not self._deliver(conn, lines):
                break
            with transaction(conn):
                queue.forget(conn, ids)
                if queue.bookmark(conn, "failing_since") is not None:
                    log.warning("time series: writing to %s again", self.settings.url)
                    queue.clear_bookmark(conn, "failing_since")
                    queue.clear_bookmark(conn, "last_error")
            self._backoff = 0.0
        return None

    def _deliver(self, conn: Connection, lines: list[str]) -> bool:
        """Write ``lines``; True once each is written or refused for good, False to try them all later.

        Should the process stop between the server's answer and forgetting the rows, they are written again:
        the same points, which the server keeps once."""
        try:
            self._send(lines)
        except ApiException as exc:
            if exc.status in REFUSED_STATUSES:
                return self._refused(conn, lines, exc)
            self._failed(conn, f"HTTP {exc.status}: {str(exc.body or exc.reason)[:200]}")
            return False
        except (HTTPError, OSError) as exc:
            self._failed(conn, f"{type(exc).__name__}: {exc}"[:300])
            return False
        self.counters.add("timeseries_points_written", len(lines))
        self.counters.add("timeseries_batches_written")
        return True

    def _send(self, lines: list[str]) -> None:
        assert self._write_api is not None
        settings = self.settings
        self._write_api.write(bucket=settings.bucket, org=settings.org, record=lines, write_precision=WritePrecision.MS)

    def _refused(self, conn: Connection, lines: list[str], exc: ApiException) -> bool:
        """The server refused the batch's data: find the lines it refuses (halving the batch) and drop only
        those, counted and logged, so that one bad point never holds back the good ones behind it."""
        if len(lines) == 1:
            self.counters.add("timeseries_points_refused")
            log.error("time series: the server refused a point (HTTP %s), dropped: %r", exc.status, lines[0][:300])
            return True
        half = len(lines) // 2
        return self._deliver(conn, lines[:half]) and self._deliver(conn, lines[half:])

    def _failed(self, conn: Connection, error: str) -> None:
        self.counters.add("timeseries_write_failures")
        self._backoff = min(self.settings.retry_max_s, max(self.settings.interval_s, self._backoff * 2))
        self._retry_at = time.monotonic() + self._backoff
        with transaction(conn):
            first = queue.bookmark(conn, "failing_since") is None
            if first:
                queue.set_bookmark(conn, "failing_since", time.time())
            queue.set_bookmark(conn, "last_error", error)
        if first:
            log.warning("time series: cannot write to %s (%s); the points wait in the store", self.settings.url, error)
