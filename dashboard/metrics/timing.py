"""How long HTTP requests take, as a Prometheus histogram by route template, method and status class.

The route is the rule Flask matched (``/api/alarms/<int:alarm_id>``), never the
path asked for: a label per alarm id or per scanner's made-up URL would grow
without end. The time runs from the moment the request enters the app to the
moment its response is ready (a live stream's body is not part of it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, request
from prometheus_client import Histogram
from prometheus_client.registry import CollectorRegistry

from ..accounts.auth import Role, current_role
from .families import PREFIX

_STARTED = "siaga.metrics.started"
#: Methods HTTP defines; any other word a client sends is counted as "other", not as a label of its own.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The label of a request no rule matched (404, or 405 for a method the rule lacks).
UNMATCHED = "unmatched"


#: ``<int(max=...):alarm_id>`` -> ``<alarm_id>``: the converter's arguments say nothing a reader of the chart needs.
_CONVERTER = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")


def route_label(rule: str | None) -> str:
    return _CONVERTER.sub(r"<\1>", rule) if rule is not None else UNMATCHED


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


def status_label(code: int) -> str:
    return f"{code // 100}xx" if 100 <= code <= 599 else "other"


class RequestTiming:
    """The histogram, and the hooks that fill it. ``sapa``: count the SAPA desk's requests too.

    Without it, the SAPA desk's requests are not counted at all: its board fetches
    and its actions follow SAPA alarms, so their count would say when one came.
    """

    def __init__(self, registry: CollectorRegistry, *, sapa: bool) -> None:
        self._sapa = sapa
        self.histogram = Histogram(
            PREFIX + "http_request_duration_seconds",
            "Time to answer HTTP requests, by route template, method and status class.",
            ["route", "method", "status"],
            registry=registry,
        )

    def init_app(self, app: Flask) -> None:
        app.wsgi_app = _Stamped(app.wsgi_app)  # type: ignore[method-assign]
        app.after_request(self._observe)

    def _observe(self, response: Response) -> Response:
        started = request.environ.get(_STARTED)
        if started is None or (not self._sapa and current_role() is Role.SAPA_DESK):
            return response
        rule = request.url_rule.rule if request.url_rule is not None else None
        labels = (route_label(rule), method_label(request.method), status_label(response.status_code))
        self.histogram.labels(*labels).observe(time.perf_counter() - started)
        return response


class _Stamped:
    """Notes when a request entered the app (before any hook that may answer it early: sign-in, CSRF, limits)."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self._wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ[_STARTED] = time.perf_counter()
        return self._wsgi_app(environ, start_response)
