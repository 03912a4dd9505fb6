"""Time series: the durable queue of points for InfluxDB, the writer's bookmarks, and each button's kecamatan.

Revision 0003, after 0002: written for SQLite and PostgreSQL both.

``timeseries_points`` holds points in InfluxDB line protocol, queued in the same transaction as what they
describe, until the writer has them accepted by the server (``dashboard/timeseries/``). ``timeseries_state``
keeps the writer's bookmarks (the last alarm action turned into a point, the troubles it has seen open, the
last day of SAPA counts written, how long writes have failed). ``buttons.kecamatan`` is the district a
gateway's inventory names for a button's site: points and reports group by it.
"""

from __future__ import annotations

from alembic import op

from dashboard.migrations import for_dialect

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS timeseries_points (id INTEGER PRIMARY KEY AUTOINCREMENT, line TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS timeseries_state (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "ALTER TABLE buttons ADD COLUMN kecamatan TEXT",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in STATEMENTS:
        op.execute(for_dialect(statement, dialect))


def downgrade() -> None:
    raise NotImplementedError("the store is only ever upgraded: restore a backup to go back")
