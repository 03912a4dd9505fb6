"""The gateway's durable outbox (real SQLite files)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from firmware_bridge import OutboxError
from gateway.outbox import Outbox, UnavailableOutbox, open_outbox


def test_events_come_out_in_the_order_they_went_in(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        seqs = [outbox.put(f"E{i:03d}", "t", f"p{i}".encode()).seq for i in range(5)]
        assert seqs == sorted(seqs)
        rows = outbox.pending(0, 10)
        assert [row.event_id for row in rows] == [f"E{i:03d}" for i in range(5)]
        assert outbox.pending(seqs[2], 10)[0].event_id == "E003"
        assert len(outbox.pending(0, 2)) == 2


def test_a_stored_event_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as outbox:
        outbox.put("E1", "siaga/v1/gw/a/event", b'{"x":1}', now=1000.0)
    with Outbox(path) as outbox:
        (row,) = outbox.pending(0, 10)
        assert (row.event_id, row.topic, row.payload, row.created_at) == (
            "E1",
            "siaga/v1/gw/a/event",
            b'{"x":1}',
            1000.0,
        )
        assert outbox.oldest_created_at() == 1000.0


def test_the_outbox_commits_durably_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as outbox:
        outbox.put("E1", "t", b"p")
        # A second, independent connection sees the row: it is committed, not buffered.
        other = sqlite3.connect(path)
        assert other.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 1
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        other.close()


def test_the_gateway_opens_its_outbox_with_wal_and_synchronous_full(tmp_path: Path) -> None:
    # synchronous is per connection: only the outbox's own connection can say whether a
    # commit waits for the disk (FULL = 2) or a power cut may lose it (OFF = 0).
    outbox = open_outbox(tmp_path / "outbox.sqlite")
    assert isinstance(outbox, Outbox)
    with outbox:
        assert outbox.durability == ("wal", 2)
    with Outbox(tmp_path / "other.sqlite") as default:
        assert default.durability == ("wal", 2)


def test_removing_receipted_rows_keeps_the_rest(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        _first, second, _third = (outbox.put(f"E{i}", "t", b"p").seq for i in range(3))
        outbox.remove_events(["E0", "E2"])
        assert [row.seq for row in outbox.pending(0, 10)] == [second]
        assert outbox.depth() == 1
        outbox.remove_events([])
        assert outbox.depth() == 1


def test_a_receipt_s_delete_leaves_events_committed_with_synchronous_full(tmp_path: Path) -> None:
    # The delete alone may skip the fsync (a lost delete is only a resend); the next event may not.
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as outbox:
        outbox.put("E0", "t", b"p")
        outbox.remove_events(["E0"])
        assert outbox.durability == ("wal", 2)
        outbox.put("E1", "t", b"p")
    with Outbox(path) as outbox:
        assert [row.event_id for row in outbox.pending(0, 10)] == ["E1"]


def test_storing_the_same_event_twice_keeps_one_row(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite") as outbox:
        first = outbox.put("E1", "t", b"first")
        again = outbox.put("E1", "t", b"second")
        assert again.seq == first.seq and again.previous is None  # nothing new stored
        (row,) = outbox.pending(0, 10)
        assert row.payload == b"first"


def test_each_row_knows_the_one_stored_before_it_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as outbox:
        a = outbox.put("A", "t", b"p")
        b = outbox.put("B", "t", b"p")
        assert (a.previous, b.previous) == (0, a.seq)
        outbox.remove_events(["A", "B"])
    with Outbox(path) as outbox:
        c = outbox.put("C", "t", b"p")
        assert c.previous == b.seq and c.seq > b.seq  # sequence numbers are never reused


def test_an_unusable_location_is_an_outbox_error(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(OutboxError, match="cannot open outbox"):
        Outbox(not_a_folder / "outbox.sqlite")


def test_a_corrupt_file_is_an_outbox_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxError):
        Outbox(path)


def test_a_damaged_outbox_is_kept_aside_and_a_fresh_one_started(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    path.write_bytes(b"power cut in the middle of a write" * 200)
    outbox = open_outbox(path)
    assert isinstance(outbox, Outbox)
    assert outbox.put("E1", "t", b"p").seq >= 1
    outbox.close()
    (aside,) = tmp_path.glob("outbox.sqlite.damaged-*")
    assert aside.read_bytes().startswith(b"power cut")


def test_damage_that_leaves_rows_readable_carries_them_over(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as outbox:
        for n in range(3):
            outbox.put(f"E{n}", "t", f"p{n}".encode())
    # A damaged index (as a torn write can leave it): the table still reads, the check fails.
    db = sqlite3.connect(path)
    db.execute("PRAGMA writable_schema=ON")
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_outbox_1'").fetchone()[0]
    db.close()
    page_size = 4096
    with open(path, "r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(b"\xff" * page_size)
    outbox = open_outbox(path)
    assert list(tmp_path.glob("outbox.sqlite.damaged-*")), "the damage was not detected"
    assert [row.event_id for row in outbox.pending(0, 10)] == ["E0", "E1", "E2"]
    outbox.close()


def test_no_outbox_at_all_means_memory_only_not_a_dead_gateway(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    outbox = open_outbox(not_a_folder / "outbox.sqlite")
    assert isinstance(outbox, UnavailableOutbox)
    with pytest.raises(OutboxError):
        outbox.put("E1", "t", b"p")
    assert outbox.depth() == 0 and outbox.pending(0, 10) == []
