"""Storage chosen by environment: SQL tracker store on PostgreSQL, Redis lock store — with the real servers."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
import sqlalchemy as sa
from rasa.core.lock_store import InMemoryLockStore, RedisLockStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.devtools.stack import BotStack
from bot.storage import ClinicLockStore, ClinicTrackerStore
from tests.scratch_db import scratch_postgres_database

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/1")


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.exceptions.RedisError:
        return False


@pytest.fixture
def postgres_db(postgres_server_url):
    """A fresh PostgreSQL database, dropped afterwards."""
    if not postgres_server_url:
        pytest.fail("no PostgreSQL: scripts/ensure_postgres.sh found or started none")
    with scratch_postgres_database(postgres_server_url, "clinic_store") as url:
        yield url


@pytest.mark.postgres
def test_tracker_store_follows_tracker_db_url_to_postgres(postgres_db, monkeypatch):
    monkeypatch.setenv("TRACKER_DB_URL", postgres_db)
    domain = Domain.from_dict({"slots": {"triage_level": {"type": "text", "mappings": [{"type": "custom"}]}}})
    store = ClinicTrackerStore(domain=domain)
    assert store.engine.dialect.name == "postgresql"
    tracker = DialogueStateTracker.from_events("patient-pg", [UserUttered("hello"), SlotSet("triage_level", "urgent")])
    asyncio.run(store.save(tracker))
    again = asyncio.run(ClinicTrackerStore(domain=domain).retrieve("patient-pg"))
    assert again.get_slot("triage_level") == "urgent"
    assert again.latest_message.text == "hello"


def test_lock_store_is_in_memory_without_redis_url(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert isinstance(ClinicLockStore().inner, InMemoryLockStore)


def test_lock_store_uses_redis_when_configured(monkeypatch):
    if not redis_available():
        pytest.skip(f"no Redis at {REDIS_URL}")
    import redis

    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.setenv("REDIS_LOCK_PREFIX", f"test{uuid.uuid4().hex[:6]}")
    store = ClinicLockStore()
    assert isinstance(store.inner, RedisLockStore)
    client = redis.Redis.from_url(REDIS_URL)

    async def hold_lock() -> list[bytes]:
        async with store.lock("conversation-1"):
            return client.keys(f"{os.environ['REDIS_LOCK_PREFIX']}*")

    assert asyncio.run(hold_lock())  # the lock lived in Redis while held
    assert store.get_lock("conversation-1") is None  # and was released after


@pytest.mark.stack
@pytest.mark.postgres
def test_bot_on_postgres_and_redis_keeps_escalations(postgres_db):
    env = {"TRACKER_DB_URL": postgres_db}
    if redis_available():
        env["REDIS_URL"] = REDIS_URL
    with BotStack(env=env) as stack:
        sender = f"pg-{uuid.uuid4().hex[:8]}"
        assert "drive" in stack.ask(sender, "can someone else drive me home after the injection").lower()
        stack.ask(sender, "my temp is 101 and the site is oozing")
    engine = sa.create_engine(postgres_db)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT type_name, data FROM events WHERE sender_id = :s ORDER BY id"), {"s": sender}
        ).fetchall()
    engine.dispose()
    assert sum(1 for kind, _ in rows if kind == "user") == 2
    assert any(kind == "slot" and '"triage_level"' in data and '"urgent"' in data for kind, data in rows)


def test_a_sqlite_tracker_store_is_pooled_write_ahead_private_and_loses_no_concurrent_save(tmp_path, monkeypatch):
    """The embedded default: one pool, the write-ahead log, 0600 files, writers queued in turn, and the
    review app's read-only engine still reads it."""
    from bot.review.db import tracker_engine

    url = f"sqlite:///{tmp_path / 'tracker.db'}"
    monkeypatch.setenv("TRACKER_DB_URL", url)
    store = ClinicTrackerStore(domain=Domain.empty())
    assert type(store.engine.pool).__name__ == "QueuePool"
    trackers = [DialogueStateTracker.from_events(f"patient-{i}", [UserUttered(f"question {i}.{turn}")
                                                                  for turn in range(3)]) for i in range(40)]

    async def save_all() -> None:
        await asyncio.gather(*(store.save(tracker) for tracker in trackers))

    asyncio.run(save_all())
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        stored = connection.exec_driver_sql("SELECT sender_id, count(*) FROM events GROUP BY sender_id").all()
    assert sorted(stored) == sorted((f"patient-{i}", 3) for i in range(40))
    for name in ("tracker.db", "tracker.db-wal", "tracker.db-shm"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
    reader = tracker_engine(url)
    with reader.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM events").scalar() == 120
    reader.dispose()
    store.engine.dispose()


def test_the_stock_reply_path_keeps_rasas_own_sqlite_engine(tmp_path, monkeypatch):
    """`fast_reply_path: false` is the bench's stock Rasa column: no pool, no write-ahead log."""
    monkeypatch.setenv("TRACKER_DB_URL", f"sqlite:///{tmp_path / 'stock.db'}")
    store = ClinicTrackerStore(domain=Domain.empty(), fast_reply_path=False)
    assert type(store.engine.pool).__name__ == "NullPool"
    assert store._write_lock is None
