"""Run a real VictoriaMetrics (Debian's ``victoria-metrics``): a server that takes the InfluxDB 2 write API,
for the time-series tests, benchmarks and the demo, with its query API to read the points back."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .mosquitto import free_port
from .processes import kill_process, stop_process


class VictoriaStartError(RuntimeError):
    pass


def victoria_binary() -> str:
    found = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
    if not Path(found).exists():
        raise VictoriaStartError("victoria-metrics is not installed (Debian: sudo apt-get install victoria-metrics)")
    return found


@dataclass
class VictoriaMetrics:
    """One server on a free loopback port with its data in ``workdir``.

    ``dedup`` keeps one sample per series and millisecond, as InfluxDB keeps one point per measurement, tag
    set and timestamp: with it a point written twice is stored once. Without it every write is kept, so a
    test can count what was written.
    """

    workdir: Path
    dedup: bool = True
    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> VictoriaMetrics:
        if not self.port:
            self.port = free_port(self.host)
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            victoria_binary(),
            f"-storageDataPath={self.workdir / 'data'}",
            f"-httpListenAddr={self.host}:{self.port}",
            "-search.latencyOffset=0s",  # points are readable as soon as they are flushed
            "-search.disableCache",
            "-loggerLevel=WARN",
        ]
        if self.dedup:
            args.append("-dedup.minScrapeInterval=1ms")
        with open(self.workdir / "victoria.log", "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise VictoriaStartError(f"victoria-metrics exited ({self.process.returncode}): {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)  # polling its health endpoint: there is nothing to block on
        raise VictoriaStartError(f"victoria-metrics not ready within {timeout} s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        path = self.workdir / "victoria.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "no log"

    def kill(self) -> None:
        """SIGKILL: what a crash does to the server (it loses what it accepted in its last second or so)."""
        kill_process(self.process)
        self.process = None

    def stop(self) -> None:
        stop_process(self.process, 10)
        self.process = None

    def __enter__(self) -> VictoriaMetrics:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- reading back ---------------------------------------------------------

    def flush(self) -> None:
        """Make every accepted point searchable now (its buffers are otherwise flushed every second or so)."""
        try:
            urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=5).read()
        except OSError:
            pass

    def export(self, match: str = '{__name__=~"siaga_.*"}') -> list[dict[str, Any]]:
        """Every stored sample of the series ``match`` selects: [{"metric": {...}, "values": [...],
        "timestamps": [ms, ...]}, ...], raw (as written; deduplicated only with ``dedup``)."""
        self.flush()
        query = urllib.parse.urlencode({"match[]": match, "start": "0"})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=10) as answer:
            return [json.loads(line) for line in answer.read().decode().splitlines() if line.strip()]

    def samples(self, match: str = '{__name__=~"siaga_.*"}') -> list[tuple[dict[str, str], float, int]]:
        """Every sample as (labels, value, timestamp in ms)."""
        found = []
        for series in self.export(match):
            for value, at in zip(series["values"], series["timestamps"], strict=True):
                found.append((series["metric"], value, at))
        return found
