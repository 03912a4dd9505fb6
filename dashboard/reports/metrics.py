"""Counters of the reports feature, shown to administrators on the diagnostics page."""

from __future__ import annotations

from flask import current_app

EXTENSION = "siaga.reports"


def count(name: str) -> None:
    current_app.extensions[EXTENSION].counters.add(name)
