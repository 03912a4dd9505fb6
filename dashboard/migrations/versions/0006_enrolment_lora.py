"""Enrolment's LoRa part: a planned gateway's LoRa module and its LoRa buttons.

Revision 0006, after 0005: written for SQLite and PostgreSQL both.

The module is the gateway's ``[lora]`` table without its keys file (the keys
are made on the gateway by ``siaga-gateway provision-node`` and never reach
the dashboard). A LoRa button's node id is unique in the regency, as its
button id is across wired and LoRa buttons (the pages check the latter, as it
spans two tables).
"""

from __future__ import annotations

from alembic import op

from dashboard.migrations import for_dialect

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

STATEMENTS: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS plan_lora ("
    " gateway_id TEXT PRIMARY KEY REFERENCES gateway_plans(gateway_id) ON DELETE CASCADE,"
    " module TEXT NOT NULL,"
    " port TEXT NOT NULL,"
    # RYLR settings, then E32/E22 settings: the gateway.toml names only those of its module.
    " address INTEGER NOT NULL,"
    " network_id INTEGER NOT NULL,"
    " band INTEGER NOT NULL,"
    " parameter TEXT NOT NULL,"
    " mode TEXT NOT NULL,"
    " channel INTEGER NOT NULL,"
    " e32_address INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS plan_lora_buttons ("
    " gateway_id TEXT NOT NULL REFERENCES gateway_plans(gateway_id) ON DELETE CASCADE,"
    " button_id TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " label TEXT,"
    " node INTEGER NOT NULL,"
    " PRIMARY KEY (gateway_id, button_id))",
    "CREATE UNIQUE INDEX IF NOT EXISTS plan_lora_buttons_id ON plan_lora_buttons(button_id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS plan_lora_buttons_node ON plan_lora_buttons(node)",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in STATEMENTS:
        op.execute(for_dialect(statement, dialect))


def downgrade() -> None:
    raise NotImplementedError("the store is only ever upgraded: restore a backup to go back")
