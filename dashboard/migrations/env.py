"""Alembic's environment for the store: runs revisions on the connection ``dashboard.migrations`` hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

#: Two dashboards started at once on a new PostgreSQL store: the second waits for the first's
#: revisions instead of running them again (transaction-scoped, so a crash releases it).
_MIGRATION_LOCK = 0x5349_4147_4D49_4752  # "SIAGMIGR"


def run() -> None:
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        context.run_migrations()


run()
