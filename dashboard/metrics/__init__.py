"""Prometheus metrics of this dashboard process at ``/metrics`` (``[metrics]``, off by default).

Each process answers for itself (its counters, its streams, its request
times; the store's figures are the same from every process): scrape every
process, as Prometheus does with one target per instance.
"""

from __future__ import annotations

from flask import Flask
from prometheus_client.registry import CollectorRegistry

from firmware_bridge.metrics import MetricsSettings

from .collector import DashboardCollector
from .timing import RequestTiming
from .views import EXTENSION, Exposition, bp


def init_app(app: Flask) -> None:
    """Register ``/metrics`` and the request timing only when ``[metrics] enabled``: off, the route does not exist.

    A registry per app, not prometheus_client's global one: two apps in one
    process (the tests, the demo) each count their own.
    """
    settings: MetricsSettings = app.config.get("SIAGA_METRICS") or MetricsSettings()
    if not settings.enabled:
        return
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DashboardCollector(app, settings))
    RequestTiming(registry, sapa=settings.sapa).init_app(app)
    app.extensions[EXTENSION] = Exposition(settings, registry)
    app.register_blueprint(bp)
