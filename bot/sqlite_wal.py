"""Write-ahead-log mode for a SQLite database, safe when several processes open it at the same moment.

Why: switching a database file into WAL mode needs an exclusive lock, and SQLite refuses it at once
("database is locked", no busy wait) while another process is opening the same new file, e.g. two
outreach workers or the Rasa server and the alert worker starting together. The mode is kept by the
file, so once any process has switched it the others only need to see that it is done.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

SWITCH_ATTEMPTS = 100
SWITCH_PAUSE_S = 0.05


def use_write_ahead_log(connection: Any, synchronous: str | None = None) -> None:
    """Put the database of this new DB-API connection in WAL mode (a no-op once it is), then set
    `synchronous` for this connection if given. For SQLAlchemy's "connect" event."""
    cursor = connection.cursor()
    try:
        for attempt in range(SWITCH_ATTEMPTS):
            try:
                mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
                if mode.lower() != "wal":
                    mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or attempt == SWITCH_ATTEMPTS - 1:
                    raise
                mode = "busy"
            if mode.lower() == "wal":
                break
            time.sleep(SWITCH_PAUSE_S)
        else:
            raise sqlite3.OperationalError(f"could not switch the database to write-ahead-log mode (still {mode})")
        if synchronous:
            cursor.execute(f"PRAGMA synchronous={synchronous}")
    finally:
        cursor.close()
