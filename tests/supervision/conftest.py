"""The documented run path (`scripts/run.sh`, as `make run` starts it) on free ports, over a PostgreSQL
tracker store of its own, shared by the fault tests of this package and stopped after them.

BOT_REPLY_TIMEOUT_S is 5 s here (10 s by default) so a stuck turn's safe reply does not slow the suite.
"""

from __future__ import annotations

import pytest

from tests.scratch_db import scratch_postgres_database

REPLY_TIMEOUT_S = 5.0


@pytest.fixture(scope="package")
def fault_db_url(postgres_server_url):
    """A fresh PostgreSQL database for the stack's conversations (dropped afterwards)."""
    if not postgres_server_url:
        pytest.skip("no PostgreSQL server (scripts/ensure_postgres.sh found none)")
    with scratch_postgres_database(postgres_server_url, "clinic_faults") as url:
        yield url


@pytest.fixture(scope="package")
def run_stack(fault_db_url):
    from bot.devtools.supervised import SupervisedStack

    stack = SupervisedStack(env={"TRACKER_DB_URL": fault_db_url, "BOT_REPLY_TIMEOUT_S": str(REPLY_TIMEOUT_S)})
    stack.start()
    yield stack
    stack.stop()
