"""Database access for the review tools.

- The tracker store (Rasa's `events` table) is opened READ-ONLY: SQLite through a `file:...?mode=ro`
  URI plus `PRAGMA query_only`, PostgreSQL with `default_transaction_read_only=on` for every session.
  Only the retention purge opens a separate writable engine (`tracker_engine(writable=True)`).
- The review database (REVIEW_DB_URL) holds staff accounts, login failures and the access log.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.engine.url import URL, make_url
from sqlalchemy.pool import NullPool, QueuePool

from bot.config import postgresql_schema
from bot.privacy import private_sqlite_file


class StoreUnavailable(RuntimeError):
    """The tracker store cannot be read (missing file, server down, no `events` table yet)."""


def _sqlite_path(url: URL) -> Path:
    database = url.database
    if not database or database == ":memory:":
        raise ValueError("the review tools need a file-based SQLite tracker store, not an in-memory one")
    return Path(database).expanduser().resolve()


def _postgres_options(read_only: bool) -> dict:
    options = []
    if read_only:
        options.append("-c default_transaction_read_only=on")
    schema = postgresql_schema()
    if schema:
        options.append(f"-c search_path={schema}")
    return {"options": " ".join(options)} if options else {}


def tracker_engine(url: str, writable: bool = False) -> Engine:
    """Engine on the tracker store; read-only unless `writable` (used by the retention purge only)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = _sqlite_path(parsed)
        # mode=rw for the purge: never creates a missing store; mode=ro for everything else
        uri = f"file:{quote(str(path))}?mode={'rw' if writable else 'ro'}"

        def connect() -> sqlite3.Connection:
            connection = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=10)
            if not writable:
                connection.execute("PRAGMA query_only = 1")
            return connection

        if writable:
            return sa.create_engine("sqlite://", creator=connect, poolclass=NullPool, future=True)

        return sa.create_engine("sqlite://", creator=connect, poolclass=QueuePool, pool_size=4, max_overflow=8,
                                pool_pre_ping=False, future=True)
    if backend == "postgresql":
        return sa.create_engine(parsed, connect_args=_postgres_options(read_only=not writable), pool_size=4,
                                max_overflow=8, pool_pre_ping=True, future=True)
    if backend == "mysql":  # untested; same read-only guarantee through the session default
        engine = sa.create_engine(parsed, pool_pre_ping=True, future=True)
        if not writable:
            @sa.event.listens_for(engine, "connect")
            def _read_only(dbapi_connection, _record):  # pragma: no cover
                cursor = dbapi_connection.cursor()
                cursor.execute("SET SESSION TRANSACTION READ ONLY")
                cursor.close()
        return engine
    raise ValueError(f"unsupported tracker store database {backend!r} (use SQLite or PostgreSQL)")


def has_events_table(engine: Engine) -> bool:
    try:
        return sa.inspect(engine).has_table("events")
    except sa.exc.OperationalError as error:
        # SQLite in mode=ro: the file does not exist yet (the bot has not stored a conversation).
        if engine.dialect.name == "sqlite":
            return False
        raise StoreUnavailable(str(error.orig)) from error


# --- review database -----------------------------------------------------------------------
metadata = sa.MetaData()

staff_users = sa.Table(
    "review_staff_users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_login_at", sa.Float),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
)

login_failures = sa.Table(
    "review_login_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("ip", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_review_login_failures_lookup", "username", "ip", "at"),
    sa.Index("ix_review_login_failures_ip", "ip", "at"),
)

access_log = sa.Table(
    "review_access_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("username", sa.String(80), nullable=False, index=True),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("sender_id", sa.String(255), index=True),
    sa.Column("detail", sa.Text),
    sa.Column("ip", sa.String(64)),
)


# Server-side sessions: the cookie holds a random token, the database its SHA-256 digest. Signing out
# deletes the row, so a copied cookie stops working; disabling an account or resetting its password ends all.
staff_sessions = sa.Table(
    "review_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer, nullable=False, index=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("seen_at", sa.Float, nullable=False, index=True),
)


def review_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_path(parsed)
        private_sqlite_file(f"sqlite:///{path}")  # 0600 before the first byte is written
        engine = sa.create_engine(f"sqlite:///{path}", poolclass=NullPool, future=True,
                                  connect_args={"timeout": 15})
    else:
        engine = sa.create_engine(parsed, pool_size=4, max_overflow=8, pool_pre_ping=True, future=True)
    metadata.create_all(engine)
    return engine
