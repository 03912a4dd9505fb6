"""Rate limits in the store: every dashboard process on one store counts the same sign-ins and posts.

Revision 0002, after 0001: written for SQLite and PostgreSQL both.

One row per counted event (a failed sign-in, an admitted report, a sign-in that taught an address);
``dashboard/accounts/ratelimit.py`` counts a key's rows within its limiter's window and deletes rows
older than the window. ``key`` is a keyed digest of what is counted (an address, an account name, an
API key's app), never the thing itself: the table holds no personal data.
"""

from __future__ import annotations

from alembic import op

from dashboard.migrations import for_dialect

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: ``at`` is wall-clock Unix seconds (REAL: DOUBLE PRECISION on PostgreSQL), shared by every process.
STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS rate_limit_events (limiter TEXT NOT NULL, key TEXT NOT NULL, at REAL NOT NULL)",
    # A key's events in its window: every check of a limit.
    "CREATE INDEX IF NOT EXISTS rate_limit_events_key ON rate_limit_events(limiter, key, at)",
    # The sweep of a limiter's old events, whatever their keys.
    "CREATE INDEX IF NOT EXISTS rate_limit_events_at ON rate_limit_events(limiter, at)",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in STATEMENTS:
        op.execute(for_dialect(statement, dialect))


def downgrade() -> None:
    raise NotImplementedError("the store is only ever upgraded: restore a backup to go back")
