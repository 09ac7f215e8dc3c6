"""Switching a SQLite file to write-ahead-log mode while another connection is reading it (bot/sqlite_wal.py).

SQLite refuses the switch at once, without its busy wait, while another connection holds the file;
two outreach workers starting together on a new database failed that way ("database is locked").
"""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from bot.sqlite_wal import use_write_ahead_log


def test_a_new_database_is_switched_and_a_switched_one_is_left_as_it_is(tmp_path):
    first = sqlite3.connect(tmp_path / "a.db")
    use_write_ahead_log(first, synchronous="FULL")
    assert first.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert first.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    second = sqlite3.connect(tmp_path / "a.db")
    use_write_ahead_log(second)
    assert second.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    first.close()
    second.close()


def test_the_switch_waits_for_a_reader_instead_of_failing(tmp_path):
    path = tmp_path / "b.db"
    reader = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    reader.execute("CREATE TABLE t (x)")
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM t").fetchall()  # a read transaction: the switch is refused meanwhile
    refused = sqlite3.connect(path, timeout=0.1)
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # what SQLite itself does
        refused.execute("PRAGMA journal_mode=WAL")
    refused.close()

    threading.Timer(0.4, lambda: reader.execute("COMMIT")).start()
    switching = sqlite3.connect(path, timeout=0.1)
    began = time.monotonic()
    use_write_ahead_log(switching)
    assert time.monotonic() - began >= 0.3
    assert switching.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    switching.close()
    reader.close()
