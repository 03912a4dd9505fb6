"""Ending processes: children (broker, dashboard, gateways) politely, then by force; this one on SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import subprocess
import threading


def stop_process(
    process: subprocess.Popen[bytes] | subprocess.Popen[str] | None,
    timeout: float,
    signum: signal.Signals = signal.SIGTERM,
) -> None:
    """Send ``signum`` and wait up to ``timeout`` s for the exit; then SIGKILL. Nothing if it already ended."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signum)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_process(process)


def kill_process(process: subprocess.Popen[bytes] | subprocess.Popen[str] | None) -> None:
    """SIGKILL and reap: what a power cut or a crash does to the process."""
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, for a foreground process's main loop to wait on."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop
