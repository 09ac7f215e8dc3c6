"""The outreach database (OUTREACH_DB_URL): one SQLAlchemy MetaData for every outreach table.

Appointments (bot.outreach.appointments) and the outbox (bot.outreach.outbox) share `metadata`, so the outbox
can reference `outreach_appointments.id` and a transaction can change an appointment and its messages together.
"""

from __future__ import annotations

from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.config import outreach_db_url
from bot.privacy import private_sqlite_file

metadata = sa.MetaData()


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    private_sqlite_file(url)  # 0600 before the first byte is written
    if url.startswith("sqlite"):
        return sa.create_engine(url, future=True, connect_args={"timeout": 15})
    return sa.create_engine(url, future=True, pool_pre_ping=True, pool_size=4, max_overflow=8)


def outreach_engine(url: str | None = None, create: bool = True) -> Engine:
    """Engine on OUTREACH_DB_URL (or `url`); creates the outreach tables known so far unless `create` is False."""
    engine = _engine(url or outreach_db_url())
    if create:
        metadata.create_all(engine)
    return engine
