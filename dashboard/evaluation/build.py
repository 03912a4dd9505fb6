"""One period's evaluation report, built from the store: the Fire Button, SAPA and Perda sections in turn."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from firmware_bridge import __version__

from ..commissioning.settings import CommissioningSettings
from ..reports.categories import Catalogue
from . import fire, perda, sapa
from .model import Report
from .period import Period
from .settings import EvaluationSettings


@dataclass(frozen=True)
class Context:
    """What every section builder reads: the store, the period and its cut-off, and the settings.

    ``until`` is the cut-off: the period's end, or the moment of generation for a period not over yet.
    A step taken at or after it (an acknowledgement, a resolution, a repair) has not happened yet for
    this report, so a closed period's figures never change.
    """

    conn: sqlite3.Connection
    period: Period
    until: float
    settings: EvaluationSettings
    commissioning: CommissioningSettings
    catalogue: Catalogue


def build_report(
    conn: sqlite3.Connection,
    period: Period,
    *,
    now: float,
    settings: EvaluationSettings,
    commissioning: CommissioningSettings,
    catalogue: Catalogue,
) -> Report:
    until = min(now, period.end)
    context = Context(conn, period, until, settings, commissioning, catalogue)
    report = Report(
        period=period,
        generated_at=now,
        data_until=until,
        version=__version__,
        suppression_threshold=settings.suppression_threshold,
        meta={
            "producer": settings.producer,
            "region_code": settings.region_code,
            "region_name": settings.region_name,
            "licence": settings.licence,
            "licence_url": settings.licence_url,
        },
    )
    report.sections = [fire.section(context), sapa.section(context), perda.section(context)]
    return report


def report_for(period: Period, *, now: float | None = None) -> Report:
    """``period``'s report from the app's store and settings (inside a request or an app context)."""
    from flask import current_app

    from ..db import get_db, read_snapshot

    config = current_app.config
    with read_snapshot(get_db()) as conn:
        return build_report(
            conn,
            period,
            now=time.time() if now is None else now,
            settings=config["SIAGA_EVALUATION"],
            commissioning=config.get("SIAGA_COMMISSIONING") or CommissioningSettings(),
            catalogue=config["SIAGA_CATALOGUE"],
        )
