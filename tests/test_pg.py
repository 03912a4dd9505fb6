"""The PostgreSQL connection as the store's code uses it: sqlite3's placeholders and rows, one writer, a server lost."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from dashboard import db, pg
from sim.pgserver import PgServer
from sim.stores import postgresql_store_at

INSERT_SERVICE = (
    "INSERT INTO button_service (button, mode, reason, until, set_by, set_at) VALUES (?, 'test', 'r', 1, 'x', 1)"
)


@pytest.fixture
def conn(tmp_path: Path):
    connection = db.connect(postgresql_store_at(tmp_path / "pg.db"))
    db.init_schema(connection)
    yield connection
    connection.close()


def test_placeholders_become_psycopgs_and_a_percent_stays_a_percent() -> None:
    assert pg.translate("SELECT '?', \"a?\", x FROM t WHERE a = ? AND b LIKE '%x' -- why?\n") == (
        "SELECT '?', \"a?\", x FROM t WHERE a = %s AND b LIKE '%%x' -- why?\n"
    )


def test_rows_answer_by_name_and_position_and_values_come_back_as_sqlite_gives_them(conn: db.Connection) -> None:
    row = conn.execute(
        "SELECT ? AS flag, sum(x) AS total, 'a%b' AS text, ? AS nul FROM (SELECT 2::bigint AS x UNION SELECT 3) s",
        (True, "a\x00b"),
    ).fetchone()
    assert (row["flag"], row[0], row["total"], row["text"]) == (1, 1, 5, "a%b")
    assert type(row["total"]) is int  # a bigint's sum is numeric: read as int, never Decimal
    assert row["nul"] == "a\ufffdb"  # no PostgreSQL text holds NUL
    assert row.keys() == ["flag", "total", "text", "nul"] and dict(zip(row.keys(), row, strict=True))["text"] == "a%b"
    with pytest.raises(IndexError):
        row["missing"]


def test_writers_take_turns_as_on_sqlite(conn: db.Connection, tmp_path: Path) -> None:
    other = db.connect(conn.url)
    entered = threading.Event()

    def second_writer() -> None:
        with db.transaction(other):
            entered.set()

    with db.transaction(conn):
        waiting = threading.Thread(target=second_writer)
        waiting.start()
        assert not entered.wait(0.5)  # held by the first writer's lock
    assert entered.wait(10)
    waiting.join(10)
    other.close()


def test_a_connection_lost_mid_transaction_fails_it_and_the_next_one_goes_through(conn: db.Connection) -> None:
    admin = db.connect(conn.url)
    (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone()
    with pytest.raises(db.Error) as lost, db.transaction(conn):
        conn.execute(
            "INSERT INTO button_service (button, mode, reason, until, set_by, set_at) "
            "VALUES ('b-1', 'test', 'r', 1, 'x', 1)"
        )
        admin.execute("SELECT pg_terminate_backend(?)", (pid,))  # a restart, a network cut
        conn.execute("SELECT 1")
    assert db.store_failure(lost.value)  # the ingest retries it, the message unacknowledged meanwhile
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO button_service (button, mode, reason, until, set_by, set_at) "
            "VALUES ('b-1', 'test', 'r', 1, 'x', 1)"
        )
    assert conn.execute("SELECT count(*) FROM button_service").fetchone()[0] == 1  # the first was rolled back
    admin.close()


@pytest.mark.parametrize("inserts", [1, 30])
def test_a_connection_lost_inside_a_pipeline_is_opened_again_for_the_next_transaction(
    conn: db.Connection, inserts: int
) -> None:
    """A server lost while a pipeline waits for results must not leave the connection in pipeline mode: a
    PostgreSQL restart mid-burst once left an ingest failing every batch with "cannot exit pipeline mode
    while busy", its presses unstored (the broker kept them) until the process was restarted."""
    admin = db.connect(conn.url)
    (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone()
    insert = INSERT_SERVICE
    with pytest.raises(db.Error) as lost, db.transaction(conn), db.pipelined(conn):
        admin.execute("SELECT pg_terminate_backend(?)", (pid,))
        for n in range(inserts):
            conn.execute(insert, (f"b-{n}",))
    assert db.store_failure(lost.value)
    with db.transaction(conn), db.pipelined(conn):
        conn.execute(insert, ("b-again",))
    assert conn.execute("SELECT button FROM button_service").fetchall() == [("b-again",)]
    admin.close()


@pytest.mark.parametrize("inserts", [2, 300])
def test_a_server_killed_while_a_pipeline_waits_leaves_a_connection_that_works_when_it_is_back(
    tmp_path: Path, inserts: int
) -> None:
    """SIGKILL of the server (not of one backend) leaves libpq in pipeline mode, not broken: without care
    every later query failed with "cannot exit pipeline mode while busy" (seen in the fault suite)."""
    insert = INSERT_SERVICE
    with PgServer() as server:
        conn = db.connect(server.url)
        db.init_schema(conn)
        with pytest.raises(db.Error) as lost, db.transaction(conn), db.pipelined(conn):
            for n in range(inserts):
                conn.execute(insert, (f"b-{n}",))
                if n == inserts // 2:
                    server.kill()
        assert db.store_failure(lost.value)  # the ingest keeps the batch unacknowledged and retries it
        server.start()
        with db.transaction(conn), db.pipelined(conn):
            conn.execute(insert, ("b-again",))
        assert conn.execute("SELECT button FROM button_service").fetchall() == [("b-again",)]
        conn.close()
