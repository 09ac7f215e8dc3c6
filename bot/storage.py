"""Where conversations and locks live, chosen by environment variables.

- TRACKER_DB_URL: SQLAlchemy URL of the tracker store (default: SQLite file var/tracker.db).
  e.g. postgresql://rasa:secret@127.0.0.1:5432/rasa
- REDIS_URL: Redis for the conversation lock store (default: in-process locks, fine for one server).
The Rasa process uses these classes through endpoints.yml; the variables are read in bot/config.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy as sa
from rasa.core.lock_store import InMemoryLockStore, LockStore
from rasa.core.tracker_store import SQLTrackerStore
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine.url import make_url
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import QueuePool

from bot.config import redis_lock_prefix, redis_url, tracker_db_url
from bot.privacy import private_sqlite_file
from bot.redis_lock import AtomicRedisLockStore
from bot.sqlite_wal import use_write_ahead_log

logger = logging.getLogger(__name__)
T = TypeVar("T")
_EVENTS_TO_PUBLISH = "_clinic_events_to_publish"  # tracker attribute: events a save stored, for the broker
WINDOW_INDEX = "ix_events_clinic_window"  # on Rasa's events table: (sender_id, type_name, action_name, timestamp, id)
DB_RETRY_FOR_S = 60.0  # a restarting database (seconds) is waited for, not turned into a lost message


# Tracker store calls get threads of their own: a stuck database must not starve the channels' other
# off-loop work (SMS opt-outs, conversation owners) of asyncio's small default pool.
DB_THREADS = 16
_DB_THREADS = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="tracker-db")


def run_off_the_loop(operation: Callable[[], Awaitable[T]], lock: threading.Lock | None = None) -> T:
    """Run one of SQLTrackerStore's operations to completion in this (worker) thread.

    Why: its `async` methods do blocking SQLAlchemy calls, so a slow or locked database would freeze the
    whole Rasa process, other conversations and the reply guard's seek-care deadline included. Without an
    event broker they never await anything, so they run here, in a thread, without an event loop.
    """
    with lock or contextlib.nullcontext():
        coroutine = operation()
        try:
            coroutine.send(None)
        except StopIteration as finished:
            return finished.value
    coroutine.close()
    raise RuntimeError("a tracker store operation waited on the event loop (an event broker?); not supported")


async def retry_while_db_unreachable(operation: Callable[[], Awaitable[T]], what: str,
                                     lock: threading.Lock | None = None) -> T:
    """Run a tracker store operation again while the database cannot be reached.

    Why: Rasa wraps the store in FailSafeTrackerStore, which on an error keeps the turn in this process's
    memory only (save) or starts the conversation afresh (retrieve): a database restart would lose messages.
    The lock keeps the conversation while this waits, and the reply guard answers the patient meanwhile.
    `lock` (SQLite's one writer): held around the operation, so this process's writers queue in turn
    instead of polling SQLite's busy handler, which sleeps up to 100 ms between tries.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DB_RETRY_FOR_S
    pause = 0.1
    while True:
        try:
            return await loop.run_in_executor(_DB_THREADS, run_off_the_loop, operation, lock)
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as error:
            if loop.time() + pause > deadline:
                raise
            logger.warning("Tracker database unreachable during %s (%s); retrying.", what, str(error).splitlines()[0])
        except sa_exc.DBAPIError as error:
            if not error.connection_invalidated or loop.time() + pause > deadline:
                raise
            logger.warning("Tracker database connection lost during %s; retrying.", what)
        await asyncio.sleep(pause)
        pause = min(pause * 2, 1.0)


def sqlite_engine(url: Any) -> sa.engine.Engine:
    """A pooled engine on a write-ahead-log SQLite file (measured: README "Per-message cost").

    Why: SQLAlchemy 1.4 gives a SQLite file a NullPool, so every tracker store call opened a new
    connection; and in SQLite's default rollback-journal mode a writer waits for readers and the
    reverse. With a pool and the write-ahead log, readers (other conversations, the review app) and the
    one writer don't block each other; `ClinicTrackerStore` queues this process's writers on a lock.
    `synchronous=FULL` keeps every committed turn through a power cut. The -wal and -shm files get the
    database file's mode (0600, bot/privacy.py).
    """
    engine = sa.create_engine(url, poolclass=QueuePool, pool_size=DB_THREADS, max_overflow=4,
                              connect_args={"check_same_thread": False, "timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _write_ahead_log(connection: Any, _record: Any) -> None:
        use_write_ahead_log(connection, synchronous="FULL")

    return engine


class ClinicTrackerStore(SQLTrackerStore):
    """Rasa's SQL tracker store, configured from TRACKER_DB_URL instead of endpoints.yml fields."""

    def __init__(self, domain: Any = None, host: Any = None, event_broker: Any = None, **kwargs: Any) -> None:
        # endpoints.yml `fast_reply_path` / `recent_turns`: bot/rasa_patches.py (false = stock Rasa, for the bench)
        fast_reply_path = bool(kwargs.pop("fast_reply_path", True))
        if fast_reply_path:
            from bot import rasa_patches  # the Rasa process only (it imports Rasa's core)

            rasa_patches.apply(int(kwargs.pop("recent_turns", rasa_patches.DEFAULT_RECENT_TURNS)))
        private_sqlite_file(tracker_db_url())  # a SQLite tracker database is created 0600 (bot/privacy.py)
        url = make_url(tracker_db_url())
        dialect = url.drivername
        if dialect.startswith("postgres"):
            dialect = "postgresql"
        super().__init__(
            domain=domain,
            dialect=dialect,
            host=url.host,
            port=url.port,
            db=url.database or "rasa.db",
            username=url.username,
            password=url.password,
            event_broker=event_broker,
            login_db=kwargs.pop("login_db", None),
            query=dict(url.query) or None,
        )
        if fast_reply_path and dialect in ("sqlite", "postgresql"):
            # The recent window's lookups (bot/rasa_patches.py) read this index only, not each event's JSON.
            # Plain DDL, not an sa.Index: that would join Rasa's table definition and be created twice.
            table = self.SQLEvent.__table__.name
            try:
                with self.engine.begin() as connection:
                    connection.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {WINDOW_INDEX} ON {table} "
                                               "(sender_id, type_name, action_name, timestamp, id)")
            except sa_exc.DBAPIError as error:  # e.g. servers of a cluster creating it at the same moment
                logger.warning("Index %s not created (%s); the recent window still works, slower.",
                               WINDOW_INDEX, str(error).splitlines()[0])
        self._write_lock: threading.Lock | None = None
        if fast_reply_path and dialect == "sqlite" and url.database not in (None, "", ":memory:"):
            self._write_lock = threading.Lock()
            self.engine.dispose()
            self.engine = sqlite_engine(self.engine.url)
            self.sessionmaker = sessionmaker(bind=self.engine)

    async def retrieve(self, sender_id: str) -> Any:
        return await retry_while_db_unreachable(lambda: super(ClinicTrackerStore, self).retrieve(sender_id), "retrieve")

    async def retrieve_full_tracker(self, conversation_id: str) -> Any:
        return await retry_while_db_unreachable(
            lambda: super(ClinicTrackerStore, self).retrieve_full_tracker(conversation_id), "retrieve")

    async def save(self, tracker: Any) -> None:
        await retry_while_db_unreachable(lambda: super(ClinicTrackerStore, self).save(tracker), "save",
                                         self._write_lock)
        self._publish_stored_events(tracker)

    # --- event broker (endpoints.yml `event_broker`: bot/alerts/broker.py; none without RABBITMQ_URL) -----
    async def stream_events(self, tracker: Any) -> None:
        """Nothing here: Rasa would publish before storing, re-reading the tracker on the event loop's
        thread; the events are published after they are stored instead (`_publish_stored_events`)."""

    def _additional_events(self, session: Any, tracker: Any) -> Any:
        events = list(super()._additional_events(session, tracker))
        if self.event_broker is not None:
            setattr(tracker, _EVENTS_TO_PUBLISH, events)  # written by this save; published once it commits
        return iter(events)

    def _publish_stored_events(self, tracker: Any) -> None:
        """Hand the events this save stored to the event broker (non-blocking); never fails the turn."""
        events = getattr(tracker, _EVENTS_TO_PUBLISH, None)
        if self.event_broker is None or not events:
            return
        setattr(tracker, _EVENTS_TO_PUBLISH, None)
        for event in events:
            try:
                self.event_broker.publish({"sender_id": tracker.sender_id, **event.as_dict()})
            except Exception:  # noqa: BLE001 - the alert worker's table sweep still finds the event
                logger.exception("Publishing an event to the event broker failed.")


class ClinicLockStore(LockStore):
    """Redis locks when REDIS_URL is set (several Rasa workers), in-memory locks otherwise."""

    def __init__(self, endpoint_config: Any = None) -> None:
        configured = redis_url()
        if configured:
            url = make_url(configured)
            self.inner: LockStore = AtomicRedisLockStore(
                host=url.host or "localhost",
                port=url.port or 6379,
                db=int(url.database or 0),
                password=url.password,
                use_ssl=url.drivername == "rediss",
                key_prefix=redis_lock_prefix(),
            )
        else:
            self.inner = InMemoryLockStore()

    def lock(self, conversation_id: str, *args: Any, **kwargs: Any) -> Any:
        """The inner store's own locking: with Redis, atomic across servers (bot/redis_lock.py)."""
        return self.inner.lock(conversation_id, *args, **kwargs)

    def get_lock(self, conversation_id: str) -> Any:
        return self.inner.get_lock(conversation_id)

    def delete_lock(self, conversation_id: str) -> None:
        self.inner.delete_lock(conversation_id)

    def save_lock(self, lock: Any) -> None:
        self.inner.save_lock(lock)
