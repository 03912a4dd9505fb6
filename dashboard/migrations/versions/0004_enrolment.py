"""Enrolment: gateways planned in the dashboard, their one-time codes and broker accounts.

Revision 0004, after 0003: written for SQLite and PostgreSQL both.

A plan is a gateway an administrator adds (its id, site and buttons) before it exists: the dashboard
builds its gateway.toml from it. A code is stored only as its SHA-256 (the code has 80 random bits:
no dictionary to try), with who issued it, when it expires, and when it was used or revoked; redeeming
is one UPDATE that succeeds only for an unused, unrevoked, unexpired code. The broker account itself
lives in Mosquitto's dynamic security plugin; the plan only records when it was last (re)made. The
gateway's MQTT password is never stored here.
"""

from __future__ import annotations

from alembic import op

from dashboard.migrations import for_dialect

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

STATEMENTS: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS gateway_plans ("
    " gateway_id TEXT PRIMARY KEY,"
    " site_name TEXT NOT NULL,"
    " kecamatan TEXT,"
    " lat REAL NOT NULL,"
    " lon REAL NOT NULL,"
    " created_at REAL NOT NULL,"
    " created_by TEXT NOT NULL,"
    " updated_at REAL NOT NULL,"
    # The last redeemed code's time, and how many times this gateway was enrolled (re-enrolment counts).
    " enrolled_at REAL,"
    " enrolments INTEGER NOT NULL DEFAULT 0,"
    # When the broker account was last given a new password (by a redeemed code).
    " account_at REAL)",
    "CREATE TABLE IF NOT EXISTS plan_buttons ("
    " gateway_id TEXT NOT NULL REFERENCES gateway_plans(gateway_id) ON DELETE CASCADE,"
    " button_id TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " label TEXT,"
    " pin INTEGER NOT NULL,"
    " led_pin INTEGER,"
    " buzzer_pin INTEGER,"
    " hold_s REAL NOT NULL DEFAULT 0,"
    " PRIMARY KEY (gateway_id, button_id))",
    # A button id names one button in the whole regency (the board routes by it): unique across plans.
    "CREATE UNIQUE INDEX IF NOT EXISTS plan_buttons_id ON plan_buttons(button_id)",
    "CREATE TABLE IF NOT EXISTS enrolment_codes ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " gateway_id TEXT NOT NULL REFERENCES gateway_plans(gateway_id) ON DELETE CASCADE,"
    " code_hash TEXT NOT NULL UNIQUE,"
    # The code's last group, shown in lists so that an administrator can tell codes apart.
    " hint TEXT NOT NULL,"
    " issued_at REAL NOT NULL,"
    " issued_by TEXT NOT NULL,"
    " expires_at REAL NOT NULL,"
    " used_at REAL,"
    " used_from TEXT,"
    " revoked_at REAL,"
    " revoked_by TEXT)",
    "CREATE INDEX IF NOT EXISTS enrolment_codes_gateway ON enrolment_codes(gateway_id, issued_at)",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in STATEMENTS:
        op.execute(for_dialect(statement, dialect))


def downgrade() -> None:
    raise NotImplementedError("the store is only ever upgraded: restore a backup to go back")
