"""Enrolment: gateways planned by administrators, one-time codes, and the broker accounts made when a code is used.

``pages.py`` (administrators), ``api.py`` (``POST /api/enrol``), ``plans.py``
and ``codes.py`` (no I/O), ``store.py`` (the rows), ``dynsec.py``,
``brokeradmin.py`` and ``accounts.py`` (Mosquitto's dynamic security plugin).
"""

from __future__ import annotations

from flask import Flask

from . import api, pages
from .settings import EnrolmentSettings


def init_app(app: Flask) -> None:
    settings = app.config.get("SIAGA_ENROLMENT") or EnrolmentSettings()
    app.config["SIAGA_ENROLMENT"] = settings
    api.init_state(app, settings)
    # The code is the credential of POST /api/enrol: no cookie for a forged page to ride on.
    app.config.setdefault("SIAGA_CSRF_EXEMPT", set()).add("enrol_api.")
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
