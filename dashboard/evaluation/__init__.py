"""The Smart City evaluation pack: one period's report over Fire Button, SAPA and Perda reports, and open data.

Modules: ``period`` (month, quarter, year in WITA), ``model`` (sections, tables, charts), ``figures`` and
``suppression`` (the arithmetic, no I/O), ``fire``, ``sapa``, ``perda`` (each section from the store),
``build`` (a report from them), ``present``, ``charts`` and ``pdf`` (rendering), ``views`` (the pages, for
administrators and evaluators) and ``opendata`` (CSV, JSON and their metadata at stable URLs).
"""

from __future__ import annotations

from flask import Flask

from .settings import EvaluationSettings


def init_app(app: Flask) -> None:
    from . import opendata, views

    app.config.setdefault("SIAGA_EVALUATION", EvaluationSettings())
    app.register_blueprint(views.bp)
    app.register_blueprint(opendata.bp)
