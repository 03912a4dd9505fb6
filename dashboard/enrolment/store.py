"""Planned gateways, their buttons and their enrolment codes in the store (revisions 0004 and 0006).

Redeeming a code is one UPDATE that takes it only while it is unused,
unrevoked and unexpired, so two gateways racing with the same code (or two
dashboard processes) cannot both have it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from firmware_bridge.payloads import Kind

from .. import db
from . import codes
from .plans import Button, LoraButton, LoraModule, Site

_PLAN = (
    "SELECT gateway_id, site_name, kecamatan, lat, lon, created_at, created_by, enrolled_at, enrolments"
    " FROM gateway_plans"
)
_BUTTONS = "SELECT button_id, kind, label, pin, led_pin, buzzer_pin, hold_s FROM plan_buttons"
_LORA = "SELECT module, port, address, network_id, band, parameter, mode, channel, e32_address FROM plan_lora"
_LORA_BUTTONS = "SELECT button_id, kind, node, label FROM plan_lora_buttons"
_CODES = (
    "SELECT id, gateway_id, hint, issued_at, issued_by, expires_at, used_at, used_from, revoked_at, revoked_by "
    "FROM enrolment_codes"
)


@dataclass(frozen=True)
class Plan:
    gateway_id: str
    site: Site
    buttons: tuple[Button, ...]
    created_at: float
    created_by: str
    enrolled_at: float | None
    enrolments: int
    lora: LoraModule | None = None
    lora_buttons: tuple[LoraButton, ...] = ()

    @property
    def has_buttons(self) -> bool:
        return bool(self.buttons or self.lora_buttons)


def plans(conn: db.Connection) -> list[dict[str, Any]]:
    """Every plan with its button count and whether a code is waiting, for the list page."""
    rows = conn.execute(
        "SELECT p.gateway_id, p.site_name, p.kecamatan, p.enrolled_at, p.enrolments,"
        " (SELECT COUNT(*) FROM plan_buttons b WHERE b.gateway_id = p.gateway_id)"
        " + (SELECT COUNT(*) FROM plan_lora_buttons l WHERE l.gateway_id = p.gateway_id) AS buttons"
        " FROM gateway_plans p ORDER BY p.gateway_id"
    ).fetchall()
    return [dict(row) for row in rows]


def plan(conn: db.Connection, gw_id: str) -> Plan | None:
    row = conn.execute(_PLAN + " WHERE gateway_id = ?", (gw_id,)).fetchone()
    if row is None:
        return None
    buttons = tuple(
        Button(b["button_id"], Kind(b["kind"]), b["pin"], b["label"], b["led_pin"], b["buzzer_pin"], b["hold_s"])
        for b in conn.execute(_BUTTONS + " WHERE gateway_id = ? ORDER BY button_id", (gw_id,))
    )
    site = Site(row["site_name"], row["kecamatan"], row["lat"], row["lon"])
    return Plan(
        row["gateway_id"],
        site,
        buttons,
        row["created_at"],
        row["created_by"],
        row["enrolled_at"],
        row["enrolments"],
        _lora(conn, gw_id),
        _lora_buttons(conn, gw_id),
    )


def _lora(conn: db.Connection, gw_id: str) -> LoraModule | None:
    row = conn.execute(_LORA + " WHERE gateway_id = ?", (gw_id,)).fetchone()
    return None if row is None else LoraModule(*(row[i] for i in range(9)))


def _lora_buttons(conn: db.Connection, gw_id: str) -> tuple[LoraButton, ...]:
    return tuple(
        LoraButton(b["button_id"], Kind(b["kind"]), b["node"], b["label"])
        for b in conn.execute(_LORA_BUTTONS + " WHERE gateway_id = ? ORDER BY button_id", (gw_id,))
    )


def plan_exists(conn: db.Connection, gw_id: str) -> bool:
    return conn.execute("SELECT 1 FROM gateway_plans WHERE gateway_id = ?", (gw_id,)).fetchone() is not None


def button_gateway(conn: db.Connection, button_id: str) -> str | None:
    """The planned gateway that has a button (wired or LoRa) of this id (ids are unique in the regency)."""
    row = conn.execute(
        "SELECT gateway_id FROM plan_buttons WHERE button_id = ?"
        " UNION SELECT gateway_id FROM plan_lora_buttons WHERE button_id = ?",
        (button_id, button_id),
    ).fetchone()
    return None if row is None else row[0]


def node_holder(conn: db.Connection, node: int) -> tuple[str, str] | None:
    """(gateway, button) of the planned LoRa button with this node id (node ids are unique in the regency)."""
    row = conn.execute("SELECT gateway_id, button_id FROM plan_lora_buttons WHERE node = ?", (node,)).fetchone()
    return None if row is None else (row[0], row[1])


def set_lora(conn: db.Connection, gw_id: str, lora: LoraModule, *, at: float) -> None:
    """The gateway's LoRa module, added or replaced."""
    values = (
        lora.module,
        lora.port,
        lora.address,
        lora.network_id,
        lora.band,
        lora.parameter,
        lora.mode,
        lora.channel,
        lora.e32_address,
    )
    conn.execute("DELETE FROM plan_lora WHERE gateway_id = ?", (gw_id,))
    conn.execute(
        "INSERT INTO plan_lora (gateway_id, module, port, address, network_id, band, parameter, mode, channel,"
        " e32_address) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (gw_id, *values),
    )
    conn.execute("UPDATE gateway_plans SET updated_at = ? WHERE gateway_id = ?", (at, gw_id))


def remove_lora(conn: db.Connection, gw_id: str, *, at: float) -> bool:
    cursor = conn.execute("DELETE FROM plan_lora WHERE gateway_id = ?", (gw_id,))
    conn.execute("UPDATE gateway_plans SET updated_at = ? WHERE gateway_id = ?", (at, gw_id))
    return cursor.rowcount == 1


def add_lora_button(conn: db.Connection, gw_id: str, button: LoraButton, *, at: float) -> None:
    conn.execute(
        "INSERT INTO plan_lora_buttons (gateway_id, button_id, kind, label, node) VALUES (?, ?, ?, ?, ?)",
        (gw_id, button.id, button.kind.value, button.label, button.node),
    )
    conn.execute("UPDATE gateway_plans SET updated_at = ? WHERE gateway_id = ?", (at, gw_id))


def remove_lora_button(conn: db.Connection, gw_id: str, button_id: str, *, at: float) -> bool:
    cursor = conn.execute("DELETE FROM plan_lora_buttons WHERE gateway_id = ? AND button_id = ?", (gw_id, button_id))
    conn.execute("UPDATE gateway_plans SET updated_at = ? WHERE gateway_id = ?", (at, gw_id))
    return cursor.rowcount == 1


def add_plan(conn: db.Connection, gw_id: str, site: Site, *, by: str, at: float) -> None:
    conn.execute(
        "INSERT INTO gateway_plans (gateway_id, site_name, kecamatan, lat, lon, created_at, created_by, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (gw_id, site.name, site.kecamatan, site.lat, site.lon, at, by, at),
    )


def update_site(conn: db.Connection, gw_id: str, site: Site, *, at: float) -> None:
    conn.execute(
        "UPDATE gateway_plans SET site_name = ?, kecamatan = ?, lat = ?, lon = ?, updated_at = ? WHERE gateway_id = ?",
        (site.name, site.kecamatan, site.lat, site.lon, at, gw_id),
    )


def add_button(conn: db.Connection, gw_id: str, button: Button, *, at: float) -> None:
    conn.execute(
        "INSERT INTO plan_buttons (gateway_id, button_id, kind, label, pin, led_pin, buzzer_pin, hold_s)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (gw_id, button.id, button.kind.value, button.label, *_pins(button), button.hold_s),
    )
    conn.execute("UPDATE gateway_plans SET updated_at = ? WHERE gateway_id = ?", (at, gw_id))


def _pins(button: Button) -> tuple[int, int | None, int | None]:
    return button.pin, button.led_pin, button.buzzer_pin


def remove_button(conn: db.Connection, gw_id: str, button_id: str, *, at: float) -> bool:
    cursor = conn.execute("DELETE FROM plan_buttons WHERE gateway_id = ? AND button_id = ?", (gw_id, button_id))
    conn.execute("UPDATE gateway_plans SET updated_at = ? WHERE gateway_id = ?", (at, gw_id))
    return cursor.rowcount == 1


# -- codes ------------------------------------------------------------------------------------------


def code_rows(conn: db.Connection, gw_id: str) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(_CODES + " WHERE gateway_id = ? ORDER BY issued_at DESC", (gw_id,))]


def issue_code(conn: db.Connection, gw_id: str, *, by: str, at: float, ttl_s: float) -> tuple[str, int]:
    """A new code (shown once, stored hashed) and how many unused codes of this gateway it revoked."""
    revoked = conn.execute(
        "UPDATE enrolment_codes SET revoked_at = ?, revoked_by = ?"
        " WHERE gateway_id = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?",
        (at, by, gw_id, at),
    ).rowcount
    code = codes.new_code()
    conn.execute(
        "INSERT INTO enrolment_codes (gateway_id, code_hash, hint, issued_at, issued_by, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (gw_id, codes.digest(code), codes.hint(code), at, by, at + ttl_s),
    )
    return code, revoked


def revoke_code(conn: db.Connection, gw_id: str, code_id: int, *, by: str, at: float) -> bool:
    """True if the code was still usable and is now revoked."""
    return (
        conn.execute(
            "UPDATE enrolment_codes SET revoked_at = ?, revoked_by = ?"
            " WHERE id = ? AND gateway_id = ? AND used_at IS NULL AND revoked_at IS NULL",
            (at, by, code_id, gw_id),
        ).rowcount
        == 1
    )


@dataclass(frozen=True)
class Claim:
    code_id: int
    gateway_id: str
    used_at: float


def claim(conn: db.Connection, digest: str, *, at: float, source: str) -> Claim | None:
    """Take the code if it is unused, unrevoked and unexpired (one UPDATE: only one taker ever wins)."""
    cursor = conn.execute(
        "UPDATE enrolment_codes SET used_at = ?, used_from = ?"
        " WHERE code_hash = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?",
        (at, source, digest, at),
    )
    if cursor.rowcount != 1:
        return None
    row = conn.execute("SELECT id, gateway_id FROM enrolment_codes WHERE code_hash = ?", (digest,)).fetchone()
    return Claim(row["id"], row["gateway_id"], at)


def why_refused(conn: db.Connection, digest: str, *, at: float) -> tuple[str, str | None]:
    """(reason, gateway id) for a code that could not be taken: unknown, used, revoked or expired."""
    row = conn.execute(
        "SELECT gateway_id, used_at, revoked_at, expires_at FROM enrolment_codes WHERE code_hash = ?", (digest,)
    ).fetchone()
    if row is None:
        return "unknown", None
    if row["used_at"] is not None:
        return "used", row["gateway_id"]
    if row["revoked_at"] is not None:
        return "revoked", row["gateway_id"]
    return "expired", row["gateway_id"]


def release(conn: db.Connection, taken: Claim) -> None:
    """Give a claimed code back (the broker account could not be made): it may be tried again."""
    conn.execute(
        "UPDATE enrolment_codes SET used_at = NULL, used_from = NULL WHERE id = ? AND used_at = ?",
        (taken.code_id, taken.used_at),
    )


def enrolled(conn: db.Connection, gw_id: str, *, at: float) -> None:
    conn.execute(
        "UPDATE gateway_plans SET enrolled_at = ?, account_at = ?, enrolments = enrolments + 1 WHERE gateway_id = ?",
        (at, at, gw_id),
    )
