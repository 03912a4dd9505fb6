"""The CAP feed's HTTP side: the Atom index and each alert, read from the store; the bearer token, if configured.

Only fire alarms are read (:func:`store.alarms_open_or_resolved_since` is asked
for ``Kind.FIRE`` alone, and :class:`.messages.FireAlarm` refuses any other
kind). A message is served while its alarm is in the index (open, or resolved
within ``keep_resolved_s``); any other identifier, a SAPA alarm's included,
is the same 404 as a made-up one.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, abort, current_app, request, url_for

from firmware_bridge.access import token_matches
from firmware_bridge.payloads import Kind

from ..alarms import store
from ..db import get_db
from .messages import ATOM_TYPE, CAP_TYPE, CapSettings, FireAlarm, alert_xml, atom_xml, find_message, is_identifier

bp = Blueprint("cap", __name__, url_prefix="/cap")

EXTENSION = "siaga_cap"


def settings() -> CapSettings:
    return current_app.extensions[EXTENSION]


@bp.before_request
def _check_access() -> Response | None:
    """With ``access = "token"`` every request of the blueprint needs ``Authorization: Bearer <token>``."""
    config = settings()
    if not config.restricted:
        return None
    if token_matches(request.headers.get("Authorization", ""), config.token or ""):
        return None
    # Plain text, not the HTML error page: a feed reader is a program.
    response = Response("401 Unauthorized: a bearer token is needed\n", 401, content_type="text/plain; charset=utf-8")
    response.headers["WWW-Authenticate"] = 'Bearer realm="siaga-cap"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _alarms(now: float) -> list[FireAlarm]:
    rows = store.alarms_open_or_resolved_since(get_db(), Kind.FIRE, now - settings().keep_resolved_s)
    return [FireAlarm.from_row(row) for row in rows]


def _xml(body: bytes, mimetype: str) -> Response:
    response = Response(body, mimetype=mimetype)
    # Readers poll: a shared cache may not keep a token-protected feed, and nobody may keep it stale.
    response.headers["Cache-Control"] = "private, no-cache" if settings().restricted else "no-cache"
    response.add_etag()
    return response.make_conditional(request)


def _language() -> str:
    return current_app.config.get("SIAGA_LANGUAGE", "id")


@bp.get("/alerts.atom")
def index() -> Response:
    """Open fire alarms and those resolved lately, each as its latest CAP message."""
    now = time.time()
    body = atom_xml(
        _alarms(now),
        settings(),
        feed_url=url_for("cap.index", _external=True),
        alert_url=lambda identifier: url_for("cap.alert", identifier=identifier, _external=True),
        now=now,
        language=_language(),
    )
    return _xml(body, ATOM_TYPE)


@bp.get("/alerts/<identifier>.xml")
def alert(identifier: str) -> Response:
    """One CAP message; 404 for anything that is not a fire alarm's message in the index."""
    if not is_identifier(identifier):
        abort(404)  # before the store is read: a malformed name costs nothing
    found = find_message(_alarms(time.time()), identifier)
    if found is None:
        abort(404)
    message, earlier = found
    web = url_for("cap.alert", identifier=identifier, _external=True)
    return _xml(alert_xml(message, earlier, settings(), web=web, language=_language()), CAP_TYPE)
