"""Administrators' enrolment pages: plan a gateway (site and buttons), see its gateway.toml, issue and revoke codes."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from firmware_bridge.timeutil import format_epoch

from ..accounts import audit
from ..accounts.auth import Role, login_required
from ..db import get_db, transaction
from ..i18n import translate
from . import plans, store
from .plans import FieldError, PlanError
from .settings import EnrolmentSettings

bp = Blueprint("enrolment", __name__, url_prefix="/admin/enrolment")

HOUR_S = 3600.0


def settings() -> EnrolmentSettings:
    return current_app.config.get("SIAGA_ENROLMENT") or EnrolmentSettings()


@bp.get("")
@login_required(Role.ADMIN)
def index() -> Any:
    return _index_page()


def _said(errors: dict[str, FieldError] | None) -> dict[str, str]:
    """Each wrong field's message in the request's language."""
    return {name: translate(error.key, **error.values) for name, error in (errors or {}).items()}


def _index_page(errors: dict[str, FieldError] | None = None, status: int = 200) -> Any:
    page = render_template(
        "admin_enrolment.html",
        plans=store.plans(get_db()),
        settings=settings(),
        errors=_said(errors),
        form=request.form if errors else {},
    )
    return page, status


@bp.post("")
@login_required(Role.ADMIN)
def create() -> Any:
    form = request.form
    gw_id = (form.get("gateway_id") or "").strip()
    conn = get_db()
    errors = plans.check_gateway_id(gw_id, reserved=_reserved(), clustered=len(settings().brokers) > 1)
    if not errors and store.plan_exists(conn, gw_id):
        errors = [FieldError("gateway_id", "enrol_err_exists", {"value": gw_id})]
    try:
        site = plans.read_site(form)
    except PlanError as exc:
        errors += exc.errors
    if errors:
        return _index_page(PlanError(errors).by_field(), 422)
    now = time.time()
    with transaction(conn):
        store.add_plan(conn, gw_id, site, by=audit.who().actor, at=now)
        audit.record(conn, audit.who(), "enrolment.plan_created", subject=f"gateway:{gw_id}", after=_site(site), at=now)
    flash(translate("enrol_plan_created", gw=gw_id))
    return redirect(url_for("enrolment.plan", gw_id=gw_id), 303)


def _reserved() -> set[str]:
    """The broker accounts that are not gateways: enrolling a gateway by one of these names would replace that
    account's password (the dashboard's own: no press would reach anyone)."""
    names = {account.username for account in (settings().admin, current_app.config.get("SIAGA_BROKER"))
             if account is not None and account.username}  # fmt: skip
    return names


def _site(site: plans.Site) -> dict[str, Any]:
    return {"site_name": site.name, "kecamatan": site.kecamatan, "lat": site.lat, "lon": site.lon}


def _plan_or_404(gw_id: str) -> store.Plan:
    found = store.plan(get_db(), gw_id)
    if found is None:
        abort(404)
    return found


@bp.get("/<gw_id>")
@login_required(Role.ADMIN)
def plan(gw_id: str) -> Any:
    return _plan_page(_plan_or_404(gw_id))


def _plan_page(
    found: store.Plan,
    *,
    site_errors: dict[str, FieldError] | None = None,
    button_errors: dict[str, FieldError] | None = None,
    lora_errors: dict[str, FieldError] | None = None,
    lora_button_errors: dict[str, FieldError] | None = None,
    new_code: str | None = None,
    status: int = 200,
) -> Any:
    current = settings()
    config = None
    if current.enabled:
        lora = {"lora": found.lora, "lora_buttons": found.lora_buttons}
        config = plans.gateway_toml(found.gateway_id, found.site, found.buttons, current, **lora)
    page = render_template(
        "admin_enrolment_plan.html",
        plan=found,
        codes=store.code_rows(get_db(), found.gateway_id),
        settings=current,
        config_text=config,
        site_errors=_said(site_errors),
        button_errors=_said(button_errors),
        lora_errors=_said(lora_errors),
        lora_button_errors=_said(lora_button_errors),
        form=request.form if (site_errors or button_errors or lora_errors or lora_button_errors) else {},
        lora_modules=plans.LORA_MODULES,
        default_port=plans.DEFAULT_PORT,
        new_code=new_code,
        now=time.time(),
        when=format_epoch,
    )
    return page, status, {"Cache-Control": "no-store"}


@bp.post("/<gw_id>")
@login_required(Role.ADMIN)
def update(gw_id: str) -> Any:
    found = _plan_or_404(gw_id)
    try:
        site = plans.read_site(request.form)
    except PlanError as exc:
        return _plan_page(found, site_errors=exc.by_field(), status=422)
    conn = get_db()
    now = time.time()
    with transaction(conn):
        store.update_site(conn, gw_id, site, at=now)
        audit.record(
            conn,
            audit.who(),
            "enrolment.plan_updated",
            subject=f"gateway:{gw_id}",
            before=_site(found.site),
            after=_site(site),
            at=now,
        )
    flash(translate("enrol_plan_saved", gw=gw_id))
    return redirect(url_for("enrolment.plan", gw_id=gw_id), 303)


@bp.post("/<gw_id>/buttons")
@login_required(Role.ADMIN)
def add_button(gw_id: str) -> Any:
    found = _plan_or_404(gw_id)
    conn = get_db()
    try:
        button = plans.read_button(request.form, found.buttons, found.lora_buttons)
        elsewhere = store.button_gateway(conn, button.id)
        if elsewhere is not None:
            where = {"value": button.id, "gw": elsewhere}
            raise PlanError([FieldError("button_id", "enrol_err_button_elsewhere", where)])
    except PlanError as exc:
        return _plan_page(found, button_errors=exc.by_field(), status=422)
    now = time.time()
    with transaction(conn):
        store.add_button(conn, gw_id, button, at=now)
        audit.record(
            conn,
            audit.who(),
            "enrolment.button_added",
            subject=f"gateway:{gw_id}",
            after={"button": button.id, "kind": button.kind.value, **button.pins(), "hold_s": button.hold_s},
            at=now,
        )
    flash(translate("enrol_button_added", button=button.id))
    return redirect(url_for("enrolment.plan", gw_id=gw_id), 303)


@bp.post("/<gw_id>/buttons/<button_id>/delete")
@login_required(Role.ADMIN)
def remove_button(gw_id: str, button_id: str) -> Any:
    _plan_or_404(gw_id)
    conn = get_db()
    now = time.time()
    with transaction(conn):
        if not store.remove_button(conn, gw_id, button_id, at=now):
            abort(404)
        audit.record(
            conn,
            audit.who(),
            "enrolment.button_removed",
            subject=f"gateway:{gw_id}",
            before={"button": button_id},
            at=now,
        )
    flash(translate("enrol_button_removed", button=button_id))
    return redirect(url_for("enrolment.plan", gw_id=gw_id), 303)


@bp.post("/<gw_id>/lora")
@login_required(Role.ADMIN)
def set_lora(gw_id: str) -> Any:
    """The gateway's LoRa module, added or replaced (its settings apply to every LoRa button of the gateway)."""
    found = _plan_or_404(gw_id)
    try:
        lora = plans.read_lora(request.form)
    except PlanError as exc:
        return _plan_page(found, lora_errors=exc.by_field(), status=422)
    conn = get_db()
    now = time.time()
    with transaction(conn):
        store.set_lora(conn, gw_id, lora, at=now)
        audit.record(
            conn,
            audit.who(),
            "enrolment.lora_set",
            subject=f"gateway:{gw_id}",
            before=_lora(found.lora),
            after=_lora(lora),
            at=now,
        )
    flash(translate("enrol_lora_saved", gw=gw_id))
    return redirect(url_for("enrolment.plan", gw_id=gw_id), 303)


def _lora(lora: plans.LoraModule | None) -> dict[str, Any] | None:
    return None if lora is None else dataclasses.asdict(lora)


@bp.post("/<gw_id>/lora/delete")
@login_required(Role.ADMIN)
def remove_lora(gw_id: str) -> Any:
    found = _plan_or_404(gw_id)
    if found.lora_buttons:
        flash(translate("enrol_lora_in_use"), "error")
        return redirect(url_for("enrolment.plan", gw_id=gw_id), 303)
    conn = get_db()
    now = time.time()
    with transaction(conn):
        if not store.remove_lora(conn, gw_id, at=now):
            abort(404)
        subject = f"gateway:{gw_id}"
        audit.record(conn, audit.who(), "enrolment.lora_removed", subject=subject, before=_lora(found.lora), at=now)
    flash(translate("enrol_lora_removed"))
    return redirect(url_for("enrolment.plan", gw_id=gw_id), 303)


@bp.post("/<gw_id>/lora-buttons")
@login_required(Role.ADMIN)
def add_lora_button(gw_id: str) -> Any:
    found = _plan_or_404(gw_id)
    conn = get_db()
    try:
        if found.lora is None:
            raise PlanError([FieldError("node", "enrol_err_lora_first")])
        button = plans.read_lora_button(request.form, found.buttons, found.lora_buttons)
        _check_elsewhere(conn, button)
    except PlanError as exc:
        return _plan_page(found, lora_button_errors=exc.by_field(), status=422)
    now = time.time()
    with transaction(conn):
        store.add_lora_button(conn, gw_id, button, at=now)
        audit.record(
            conn,
            audit.who(),
            "enrolment.lora_button_added",
            subject=f"gateway:{gw_id}",
            after={"button": button.id, "kind": button.kind.value, "node": button.node},
            at=now,
        )
    flash(translate("enrol_button_added", button=button.id))
    return redirect(url_for("enrolment.plan", gw_id=gw_id), 303)


def _check_elsewhere(conn: Any, button: plans.LoraButton) -> None:
    """Button ids and node ids are unique in the regency: another plan may not have them."""
    errors = []
    elsewhere = store.button_gateway(conn, button.id)
    if elsewhere is not None:
        errors.append(FieldError("button_id", "enrol_err_button_elsewhere", {"value": button.id, "gw": elsewhere}))
    holder = store.node_holder(conn, button.node)
    if holder is not None:
        by = f"{holder[1]} ({holder[0]})"
        errors.append(FieldError("node", "enrol_err_node_taken", {"value": button.node, "by": by}))
    if errors:
        raise PlanError(errors)


@bp.post("/<gw_id>/lora-buttons/<button_id>/delete")
@login_required(Role.ADMIN)
def remove_lora_button(gw_id: str, button_id: str) -> Any:
    _plan_or_404(gw_id)
    conn = get_db()
    now = time.time()
    with transaction(conn):
        if not store.remove_lora_button(conn, gw_id, button_id, at=now):
            abort(404)
        audit.record(
            conn,
            audit.who(),
            "enrolment.lora_button_removed",
            subject=f"gateway:{gw_id}",
            before={"button": button_id},
            at=now,
        )
    flash(translate("enrol_button_removed", button=button_id))
    return redirect(url_for("enrolment.plan", gw_id=gw_id), 303)


@bp.post("/<gw_id>/codes")
@login_required(Role.ADMIN)
def issue(gw_id: str) -> Any:
    """A new code, shown on this answer only (never stored in clear, never in a redirect's URL)."""
    found = _plan_or_404(gw_id)
    current = settings()
    if not current.enabled:
        flash(translate("enrol_disabled"), "error")
        return redirect(url_for("enrolment.plan", gw_id=gw_id), 303)
    if not found.has_buttons:
        flash(translate("enrol_no_buttons"), "error")
        return redirect(url_for("enrolment.plan", gw_id=gw_id), 303)
    conn = get_db()
    now = time.time()
    ttl_s = current.code_ttl_h * HOUR_S
    with transaction(conn):
        code, revoked = store.issue_code(conn, gw_id, by=audit.who().actor, at=now, ttl_s=ttl_s)
        audit.record(
            conn,
            audit.who(),
            "enrolment.code_issued",
            subject=f"gateway:{gw_id}",
            after={"hint": code[-4:], "expires_at": now + ttl_s, "revoked_unused": revoked},
            at=now,
        )
    return _plan_page(found, new_code=code)


@bp.post("/<gw_id>/codes/<int:code_id>/revoke")
@login_required(Role.ADMIN)
def revoke(gw_id: str, code_id: int) -> Any:
    _plan_or_404(gw_id)
    conn = get_db()
    now = time.time()
    with transaction(conn):
        revoked = store.revoke_code(conn, gw_id, code_id, by=audit.who().actor, at=now)
        if revoked:
            subject = f"gateway:{gw_id}"
            audit.record(conn, audit.who(), "enrolment.code_revoked", subject=subject, before={"code": code_id}, at=now)
    flash(translate("enrol_revoked_done" if revoked else "enrol_code_not_revoked"), "message" if revoked else "error")
    return redirect(url_for("enrolment.plan", gw_id=gw_id), 303)
