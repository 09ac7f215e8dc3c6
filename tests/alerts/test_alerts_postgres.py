"""The events-table intake and the outbox on a real PostgreSQL, where ids are handed out at insert but rows
appear at commit: an escalation whose transaction commits after a later id's is still found (the look-back),
and recorded once."""

from __future__ import annotations

import json
import secrets

import pytest

from bot.alerts.store import NOT_CONFIGURED, AlertStore, alert_status_by_conversation
from bot.alerts.worker import LOOKBACK_IDS, AlertWorker

from .test_alert_parts import EMERGENCY_ENTITIES, user_event

pytestmark = pytest.mark.postgres


@pytest.fixture()
def database(postgres_server_url):
    if not postgres_server_url:
        pytest.skip("no PostgreSQL server (scripts/ensure_postgres.sh found none)")
    import psycopg2
    from psycopg2 import sql
    from sqlalchemy.engine.url import make_url

    url = make_url(postgres_server_url)
    name = f"clinic_alerts_{secrets.token_hex(4)}"
    admin = psycopg2.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                             dbname=url.database)
    admin.autocommit = True
    admin.cursor().execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    target = url.set(database=name)

    def connect():
        return psycopg2.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                                dbname=name)

    with connect() as setup:  # the columns of Rasa's SQLTrackerStore `events` table
        setup.cursor().execute("CREATE TABLE events (id SERIAL PRIMARY KEY, sender_id VARCHAR(255) NOT NULL, "
                               "type_name VARCHAR(255) NOT NULL, timestamp FLOAT, intent_name VARCHAR(255), "
                               "action_name VARCHAR(255), data TEXT)")
    yield str(target), connect
    from bot.alerts import store

    store._engine.cache_clear()  # let go of pooled connections before dropping the database
    admin.cursor().execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    admin.close()


def insert(connection, sender: str, event: dict) -> None:
    connection.cursor().execute("INSERT INTO events (sender_id, type_name, timestamp, data) VALUES (%s, %s, %s, %s)",
                                (sender, event["event"], event.get("timestamp"), json.dumps(event)))


def test_an_escalation_committed_after_a_later_id_is_found_once(database, monkeypatch, tmp_path):
    url, connect = database
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    worker = AlertWorker(AlertStore(url), url, broker_url="", poll_s=1)  # outbox in the same PostgreSQL
    assert worker.sweep_once() == 0  # first start
    slow, fast = connect(), connect()
    insert(slow, "slow", user_event(entities=EMERGENCY_ENTITIES, message_id="s"))  # takes an id, not committed
    insert(fast, "fast", user_event(entities=EMERGENCY_ENTITIES, message_id="f"))  # a later id, committed first
    fast.commit()
    assert worker.sweep_once() == 1  # "fast"; the position is now past "slow"'s id
    slow.commit()
    assert worker.sweep_once() == 1  # "slow", found by re-reading the last ids
    assert worker.sweep_once() == 0
    restarted = AlertWorker(AlertStore(url), url, broker_url="", poll_s=1)
    assert restarted.sweep_once() == 0  # nothing twice after a restart either
    assert alert_status_by_conversation(["slow", "fast"], url) == {"slow": NOT_CONFIGURED, "fast": NOT_CONFIGURED}
    assert LOOKBACK_IDS >= 100
    slow.close()
    fast.close()
