"""Databases and secrets are created 0600 (bot/privacy.py private_sqlite_file), even under a permissive umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bot.privacy import private_sqlite_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask():
    """The usual default (files 0644), so only our code can make them private."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_new_sqlite_file_is_created_0600(tmp_path):
    path = private_sqlite_file(f"sqlite:///{tmp_path / 'sub' / 'tracker.db'}")
    assert path is not None and mode(path) == 0o600 and path.stat().st_size == 0


def test_an_existing_readable_file_is_tightened_and_kept(tmp_path):
    path = tmp_path / "tracker.db"
    path.write_bytes(b"existing data")
    path.chmod(0o644)
    private_sqlite_file(f"sqlite:///{path}")
    assert mode(path) == 0o600 and path.read_bytes() == b"existing data"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "postgresql://u@127.0.0.1/db"])
def test_other_databases_are_left_alone(url):
    assert private_sqlite_file(url) is None


def test_the_tracker_store_creates_its_database_0600(tmp_path, monkeypatch):
    """The class the Rasa process loads from endpoints.yml, with real SQLite, writing a real tracker."""
    import asyncio

    from rasa.shared.core.events import UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from bot.storage import ClinicTrackerStore

    path = tmp_path / "var" / "tracker.db"
    monkeypatch.setenv("TRACKER_DB_URL", f"sqlite:///{path}")
    store = ClinicTrackerStore()
    asyncio.run(store.save(DialogueStateTracker.from_events("p1", [UserUttered("my leg is numb")])))
    assert path.stat().st_size > 0 and mode(path) == 0o600
    for extra in path.parent.glob("tracker.db-*"):  # journal / WAL files, if any remain
        assert mode(extra) == 0o600, extra


def test_the_sms_state_store_creates_its_database_0600(tmp_path):
    from bot.channels.sms import SmsStateStore

    path = tmp_path / "sms.db"
    state = SmsStateStore(f"sqlite:///{path}", redis_url="")
    assert state.claim("SM1") and mode(path) == 0o600


def test_the_review_database_is_created_0600(tmp_path):
    from bot.review.db import review_engine

    path = tmp_path / "var" / "review.db"
    review_engine(f"sqlite:///{path}").dispose()
    assert path.stat().st_size > 0 and mode(path) == 0o600


def test_the_review_secret_is_created_0600(tmp_path, monkeypatch):
    from bot import config

    monkeypatch.delenv("REVIEW_SECRET_KEY", raising=False)
    path = tmp_path / "review_secret"
    config.review_secret_key(path)
    assert mode(path) == 0o600


def test_parts_started_at_once_share_one_generated_token_0600(tmp_path):
    """systemd starts the parts in parallel; each loads the token with run.sh's load_token."""
    import re
    import subprocess

    run_sh = (Path(__file__).resolve().parents[1] / "scripts" / "run.sh").read_text()
    load_token = re.search(r"^load_token\(\) \{\n.*?^\}\n", run_sh, re.S | re.M).group(0)
    script = f'VAR_DIR="{tmp_path}"; PY=python3; CONFIGURED_AUTH_TOKEN=\n{load_token}load_token; echo "$RASA_AUTH_TOKEN"'
    parts = [subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(8)]
    tokens = {part.communicate(timeout=30)[0].strip() for part in parts}
    token_file = tmp_path / "rasa_auth_token"
    assert tokens == {token_file.read_text().strip()} and len(tokens.pop()) >= 40
    assert mode(token_file) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["rasa_auth_token"]  # no temporary file left behind


def test_tightening_an_open_write_ahead_database_keeps_its_connections_working(tmp_path, monkeypatch):
    """Another part of the Rasa process (the SMS state store) makes sure of the file's mode while the
    tracker store's pooled write-ahead-log connections are open: they must keep their locks and files."""
    import asyncio
    import subprocess
    import sys

    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from bot.storage import ClinicTrackerStore

    url = f"sqlite:///{tmp_path / 'tracker.db'}"
    monkeypatch.setenv("TRACKER_DB_URL", url)
    store = ClinicTrackerStore(domain=Domain.empty())

    def save(sender: str) -> None:
        asyncio.run(store.save(DialogueStateTracker.from_events(sender, [UserUttered(f"hello from {sender}")])))

    save("first")
    private_sqlite_file(url)
    # Another process (the review app, a test) opens and closes the database: were this process's locks
    # gone, it would take itself for the last user and delete the -wal and -shm files.
    subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                    "c.execute('SELECT count(*) FROM events').fetchall(); c.close()", str(tmp_path / "tracker.db")],
                   check=True, timeout=60)
    assert (tmp_path / "tracker.db-wal").exists()
    save("second")
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM events").scalar() == 2
    store.engine.dispose()
