"""The documented run path (`scripts/run.sh`, as `make run` starts it) on free ports, over a PostgreSQL
tracker store of its own, shared by the fault tests of this package and stopped after them.

BOT_REPLY_TIMEOUT_S is 5 s here (10 s by default) so a stuck turn's safe reply does not slow the suite.
"""

from __future__ import annotations

import secrets

import pytest

REPLY_TIMEOUT_S = 5.0


@pytest.fixture(scope="package")
def fault_db_url(postgres_server_url):
    """A fresh PostgreSQL database for the stack's conversations (dropped afterwards)."""
    if not postgres_server_url:
        pytest.skip("no PostgreSQL server (scripts/ensure_postgres.sh found none)")
    import psycopg2
    from psycopg2 import sql
    from sqlalchemy.engine.url import make_url

    url = make_url(postgres_server_url)
    name = f"clinic_faults_{secrets.token_hex(4)}"
    admin = psycopg2.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                             dbname=url.database)
    admin.autocommit = True
    admin.cursor().execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield str(url.set(database=name))
    admin.cursor().execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    admin.close()


@pytest.fixture(scope="package")
def run_stack(fault_db_url):
    from bot.devtools.supervised import SupervisedStack

    stack = SupervisedStack(env={"TRACKER_DB_URL": fault_db_url, "BOT_REPLY_TIMEOUT_S": str(REPLY_TIMEOUT_S)})
    stack.start()
    yield stack
    stack.stop()
