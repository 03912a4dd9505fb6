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

STATEMENTS: tuple[str, ...] = (
    # One technician's session on one gateway: its buttons are in test mode until it is finished or expires.
    "CREATE TABLE IF NOT EXISTS commissioning_sessions ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " gw TEXT NOT NULL,"
    " started_by TEXT NOT NULL,"
    " started_at REAL NOT NULL,"
    " expires_at REAL NOT NULL,"
    " state TEXT NOT NULL,"  # open / finished / abandoned
    " finished_by TEXT,"
    " finished_at REAL,"
    " verdict TEXT,"  # passed / failed, once finished
    " gateway_version TEXT)",
    "CREATE INDEX IF NOT EXISTS commissioning_sessions_gw ON commissioning_sessions(gw, started_at)",
    # Each button's record in a session: the press seen, the radio, the indication, what the technician saw.
    "CREATE TABLE IF NOT EXISTS commissioning_buttons ("
    " session_id INTEGER NOT NULL REFERENCES commissioning_sessions(id),"
    " button TEXT NOT NULL,"
    " position INTEGER NOT NULL,"
    " kind TEXT NOT NULL,"
    " transport TEXT NOT NULL,"
    " site_name TEXT,"
    " label TEXT,"
    " previous_service TEXT,"  # JSON: the button's service setting before the session, restored after it
    " armed_at REAL NOT NULL,"  # presses before it do not count
    " event_id TEXT,"
    " pressed_at REAL,"
    " alarm_id INTEGER,"
    " test_alarm INTEGER,"
    " rssi REAL,"
    " snr REAL,"
    " indication TEXT,"  # JSON: what the gateway's status socket said of the button
    " led_seen TEXT,"
    " buzzer_heard TEXT,"
    " node_firmware TEXT,"
    " gave_up_at REAL,"
    " updated_at REAL NOT NULL,"
    " PRIMARY KEY (session_id, button))",
    "CREATE INDEX IF NOT EXISTS commissioning_buttons_button ON commissioning_buttons(button, session_id)",
    # The report as it was when the session finished: its results (JSON) and its PDF never change after.
    "CREATE TABLE IF NOT EXISTS commissioning_reports ("
    " session_id INTEGER PRIMARY KEY REFERENCES commissioning_sessions(id),"
    " gw TEXT NOT NULL,"
    " kinds TEXT NOT NULL,"  # the kinds of its buttons, sorted, comma-separated: who may read it
    " created_at REAL NOT NULL,"
    " verdict TEXT NOT NULL,"
    " results TEXT NOT NULL,"
    " pdf BLOB NOT NULL)",
    # Each button's last commissioning passed and last test (a later test press of a fire button counts).
    "CREATE TABLE IF NOT EXISTS button_tests ("
    " button TEXT PRIMARY KEY,"
    " commissioned_at REAL NOT NULL,"
    " session_id INTEGER NOT NULL,"
    " tested_at REAL NOT NULL)",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in STATEMENTS:
        op.execute(for_dialect(statement, dialect))


def downgrade() -> None:
    raise NotImplementedError("the store is only ever upgraded: restore a backup to go back")
