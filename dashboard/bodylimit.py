"""Request body limits: the app-wide ``MAX_CONTENT_LENGTH``, raised only for the views that declare more.

A view declares its own limit with :func:`limit_body`; the limit is applied
before any other hook reads the body (CSRF reads the form), which is why
:func:`init_app` must be the first hook ``create_app`` registers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app, request

View = TypeVar("View", bound=Callable[..., object])

_ATTRIBUTE = "siaga_max_body_bytes"


def limit_body(max_bytes: int) -> Callable[[View], View]:
    """Let this view accept a body of up to ``max_bytes`` (the report form carries photos; nothing else may)."""

    def mark(view: View) -> View:
        setattr(view, _ATTRIBUTE, max_bytes)
        return view

    return mark


def _apply_view_limit() -> None:
    view = current_app.view_functions.get(request.endpoint or "")
    limit = getattr(view, _ATTRIBUTE, None)
    if limit is not None:
        request.max_content_length = limit


def init_app(app: Flask) -> None:
    if app.before_request_funcs.get(None):
        raise RuntimeError("bodylimit.init_app must run before any other before_request hook")
    app.before_request(_apply_view_limit)
