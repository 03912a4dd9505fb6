"""``GET /metrics``: this process's metrics in Prometheus' text format, for a token holder or an allowed address."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Response, current_app, request
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from firmware_bridge.metrics import MetricsSettings

EXTENSION = "siaga.metrics"

bp = Blueprint("metrics", __name__)


@dataclass(frozen=True)
class Exposition:
    """What ``/metrics`` serves and to whom, kept with the app."""

    settings: MetricsSettings
    registry: CollectorRegistry


@bp.get("/metrics")
def metrics() -> Response:
    exposition: Exposition = current_app.extensions[EXTENSION]
    # The address as ProxyFix left it: the client's behind `trusted_proxies` hops, else the peer's own.
    refused = exposition.settings.access.refusal(request.headers.get("Authorization"), request.remote_addr)
    if refused is not None:  # before anything is read
        status, text = refused
        response = Response(text, status, content_type="text/plain; charset=utf-8")
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="siaga-metrics"'
        return response
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = Response(encoder(exposition.registry), content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response
