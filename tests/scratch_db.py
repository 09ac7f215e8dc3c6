"""One way for tests to get a throwaway PostgreSQL database on the server scripts/ensure_postgres.sh found."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa


@contextmanager
def scratch_postgres_database(server_url: str, prefix: str) -> Iterator[str]:
    """The URL of a new empty database named `<prefix>_<random>`, dropped (even if still in use) afterwards."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", future=True)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield str(sa.engine.make_url(server_url).set(database=name))
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
