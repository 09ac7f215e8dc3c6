"""Where conversations and locks live, chosen by environment variables.

- TRACKER_DB_URL: SQLAlchemy URL of the tracker store (default: SQLite file var/tracker.db).
  e.g. postgresql://rasa:secret@127.0.0.1:5432/rasa
- REDIS_URL: Redis for the conversation lock store (default: in-process locks, fine for one server).
The Rasa process uses these classes through endpoints.yml; the variables are read in bot/config.py.
"""

from __future__ import annotations

from typing import Any

from rasa.core.lock_store import InMemoryLockStore, LockStore, RedisLockStore
from rasa.core.tracker_store import SQLTrackerStore
from sqlalchemy.engine.url import make_url

from bot.config import redis_lock_prefix, redis_url, tracker_db_url


class ClinicTrackerStore(SQLTrackerStore):
    """Rasa's SQL tracker store, configured from TRACKER_DB_URL instead of endpoints.yml fields."""

    def __init__(self, domain: Any = None, host: Any = None, event_broker: Any = None, **kwargs: Any) -> None:
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


class ClinicLockStore(LockStore):
    """Redis locks when REDIS_URL is set (several Rasa workers), in-memory locks otherwise."""

    def __init__(self, endpoint_config: Any = None) -> None:
        configured = redis_url()
        if configured:
            url = make_url(configured)
            self.inner: LockStore = RedisLockStore(
                host=url.host or "localhost",
                port=url.port or 6379,
                db=int(url.database or 0),
                password=url.password,
                use_ssl=url.drivername == "rediss",
                key_prefix=redis_lock_prefix(),
            )
        else:
            self.inner = InMemoryLockStore()

    def get_lock(self, conversation_id: str) -> Any:
        return self.inner.get_lock(conversation_id)

    def delete_lock(self, conversation_id: str) -> None:
        self.inner.delete_lock(conversation_id)

    def save_lock(self, lock: Any) -> None:
        self.inner.save_lock(lock)
