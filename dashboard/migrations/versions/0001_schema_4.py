"""The store as schema 4 left it: the first revision, the whole of schema.sql before its derived part.

A store made before the revisions existed is stamped with this revision instead of running it.
"""

from __future__ import annotations

from alembic import op

from dashboard.migrations import for_dialect, schema_text, statements

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: Where schema.sql's derived data begins: those tables are made on every start (dashboard/db.py).
DERIVED_MARK = "-- Derived data (issue 11)."


#: Schema 4's indexes on columns that schema 3 stores gained late (db.py's frozen upgrade makes them too).
LATE_INDEXES = (
    "CREATE INDEX IF NOT EXISTS events_anomaly ON events(button, received_at) WHERE anomaly IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS rejected_messages_at ON rejected_messages(at)",
)


#: A stored JSON text as jsonb, or NULL where it is not JSON (SQLite's json_valid guards the same reads):
#: a message stored raw must not fail every query that looks into it.
SIAGA_JSON = """
CREATE OR REPLACE FUNCTION siaga_json(doc text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN doc::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END;
$$
"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    base = schema_text().partition(DERIVED_MARK)[0]
    for statement in statements(for_dialect(base, dialect)) + list(LATE_INDEXES):
        op.execute(statement)
    if dialect == "postgresql":
        op.execute(SIAGA_JSON)
    if dialect == "sqlite":
        # An older dashboard (schema 4, before the revisions) reads this store as its own.
        op.execute("PRAGMA user_version = 4")


def downgrade() -> None:
    raise NotImplementedError("the store is only ever upgraded: restore a backup to go back")
