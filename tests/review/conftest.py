"""Fixtures for the staff review tests.

Every test runs against SQLite and, when scripts/ensure_postgres.sh finds or starts one, PostgreSQL
(the `backend` parameter). Each test gets its own fresh database(s), dropped afterwards, holding a copy
of the scripted conversations (tests/review/conversations.py).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from tests.review.conversations import CONVERSATIONS, MODEL, fill_in_code, fill_with_real_bot, load_rows, read_rows

# How the conversations are produced: "stack" = real messages through the real bot (needs `make model`),
# "code" = the same conversations as rasa events saved through SQLTrackerStore. This is the switch:
FILL = os.environ.get("REVIEW_TEST_FILL") or ("stack" if MODEL.exists() else "code")

PASSWORD = "correct horse battery staple"
USERNAME = "nurse.kim"
SECRET = "test-secret-" + "x" * 40


# --- databases -------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request, postgres_server_url) -> str:
    if request.param == "postgresql" and not postgres_server_url:
        if os.environ.get("REVIEW_REQUIRE_POSTGRES") == "1":
            pytest.fail("no PostgreSQL: scripts/ensure_postgres.sh failed")
        pytest.skip("no PostgreSQL available (scripts/ensure_postgres.sh failed)")
    return request.param


@pytest.fixture
def fresh_db(backend, tmp_path, postgres_server_url) -> Iterator[Callable[[str], str]]:
    """`fresh_db(name)` -> URL of a new empty database (SQLite file or PostgreSQL database), dropped after the test."""
    created: list[str] = []
    admin = None
    if backend == "postgresql":
        admin = sa.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT", future=True)

    def make(name: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / (name + '.db')}"
        database = f"review_{name}_{uuid.uuid4().hex[:12]}"
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
        created.append(database)
        return str(sa.engine.make_url(postgres_server_url).set(database=database))

    yield make
    if admin is not None:
        with admin.connect() as connection:
            for database in created:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


# --- conversations -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def golden_rows(tmp_path_factory) -> list[dict]:
    """The `events` rows of the scripted conversations, produced once per test session."""
    url = f"sqlite:///{tmp_path_factory.mktemp('golden') / 'tracker.db'}"
    if FILL == "stack":
        fill_with_real_bot(url)
    else:
        fill_in_code(url)
    return read_rows(url)


def day_shifts() -> dict[str, float]:
    return {c.sender_id: c.days_ago * 86400.0 for c in CONVERSATIONS}


@pytest.fixture
def tracker_url(fresh_db, golden_rows) -> str:
    url = fresh_db("tracker")
    load_rows(url, golden_rows, day_shifts())
    return url


@pytest.fixture
def review_url(fresh_db) -> str:
    return fresh_db("staff")


@pytest.fixture
def review_env(monkeypatch, tracker_url, review_url, tmp_path):
    """Environment for the CLI and the app: the test databases, UTC, plain-HTTP cookies."""
    monkeypatch.setenv("TRACKER_DB_URL", tracker_url)
    monkeypatch.setenv("REVIEW_DB_URL", review_url)
    monkeypatch.setenv("REVIEW_TIMEZONE", "UTC")
    monkeypatch.setenv("REVIEW_COOKIE_SECURE", "0")
    monkeypatch.setenv("REVIEW_SECRET_KEY", SECRET)
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("RASA_AUTH_TOKEN", raising=False)  # staff replies never reach a bot running on this machine
    monkeypatch.setenv("RASA_SERVER_URL", "http://127.0.0.1:9")  # (the discard port; test_replies sets its own)
    return {"tracker": tracker_url, "review": review_url}


@pytest.fixture
def app(review_env):
    from bot.review.app import create_app

    app = create_app(review_env["tracker"], review_env["review"])
    app.config["TESTING"] = True
    yield app
    context = app.extensions["review"]
    context.store.engine.dispose()
    context.review_db.dispose()


@pytest.fixture
def staff_user(app) -> str:
    from bot.review import auth

    auth.create_user(app.extensions["review"].review_db, USERNAME, PASSWORD)
    return USERNAME


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def login(client, username: str = USERNAME, password: str = PASSWORD, ip: str = "127.0.0.1"):
    page = client.get("/login", environ_base={"REMOTE_ADDR": ip})
    token = csrf_token(page.get_data(as_text=True))
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": ip})


@pytest.fixture
def client(app, staff_user):
    client = app.test_client()
    response = login(client)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@pytest.fixture
def anon(app, staff_user):
    return app.test_client()


# --- an independent oracle: per-conversation facts computed in Python from the rows ---------------
def oracle(rows: list[dict]) -> dict[str, dict]:
    import json

    facts: dict[str, dict] = {}
    for row in rows:
        fact = facts.setdefault(row["sender_id"], {"turns": 0, "unanswered": 0, "levels": set(), "channel": None,
                                                   "texts": [], "topics": []})
        data = json.loads(row["data"])
        if row["type_name"] == "user":
            fact["turns"] += 1
            fact["texts"].append(data.get("text") or "")
            fact["topics"].append(None)  # the knowledge entry answered in this turn, if any
            fact["channel"] = fact["channel"] or data.get("input_channel")
            if row["intent_name"] in ("nlu_fallback", "out_of_scope"):
                fact["unanswered"] += 1
        elif row["type_name"] == "slot" and row["action_name"] == "triage_level" and data.get("value"):
            fact["levels"].add(data["value"])
        elif row["type_name"] == "slot" and row["action_name"] == "last_topic" and data.get("value"):
            if fact["topics"]:
                fact["topics"][-1] = data["value"]
    for fact in facts.values():
        fact["topics"] = [topic for topic in fact["topics"] if topic]
    return facts


@pytest.fixture(scope="session")
def facts(golden_rows) -> dict[str, dict]:
    return oracle(golden_rows)
