"""Administrators manage the API keys of apps that submit reports on citizens' behalf."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from ..accounts.auth import Role, login_required
from ..db import get_db
from ..i18n import translate
from . import store

bp = Blueprint("apikeys", __name__, url_prefix="/admin/api-keys")


@bp.get("/")
@login_required(Role.ADMIN)
def index() -> Any:
    return render_template("admin_api_keys.html", keys=store.list_api_keys(get_db()), new_key=None, when=store.w3c)


@bp.post("/")
@login_required(Role.ADMIN)
def create() -> Any:
    try:
        key = store.create_api_key(get_db(), request.form.get("name", ""), g.user["username"])
    except store.ApiKeyError as exc:
        flash(translate(exc.key))
        return redirect(url_for("apikeys.index"), 303)
    # Shown once: only its hash is kept.
    return render_template("admin_api_keys.html", keys=store.list_api_keys(get_db()), new_key=key, when=store.w3c)


@bp.post("/<int:key_id>/revoke")
@login_required(Role.ADMIN)
def revoke(key_id: int) -> Any:
    store.revoke_api_key(get_db(), key_id)
    flash(translate("key_revoked"))
    return redirect(url_for("apikeys.index"), 303)
