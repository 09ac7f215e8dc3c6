"""The running Rasa server creates its SQLite tracker database 0600, whatever its umask allows."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from sqlalchemy.engine.url import make_url

pytestmark = pytest.mark.stack


def process_umask(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    raise AssertionError("no Umask line")


def test_the_tracker_database_of_the_running_bot_is_private(channel_stack):
    channel_stack.ask("private-db-check", "hello")
    path = Path(make_url(channel_stack.env["TRACKER_DB_URL"]).database)
    assert path.stat().st_size > 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    umask = process_umask(channel_stack.processes["rasa"].pid)
    if umask & 0o044 == 0o044:
        pytest.skip(f"the Rasa process runs with umask {umask:o}, which alone keeps files private")
