"""Shared fixtures. The real bot stack is started once per session and reused."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from bot.devtools.quiet_warnings import silence

silence()  # sanic turns third-party DeprecationWarnings back on when imported (bot/devtools/quiet_warnings.py)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def domain() -> dict:
    return yaml.safe_load((ROOT / "domain.yml").read_text())


@pytest.fixture(scope="session")
def topic_intents(domain: dict) -> list[str]:
    return [intent for intent in domain["intents"] if isinstance(intent, str) and intent.startswith("ask_")]


@pytest.fixture(scope="session")
def bot_stack(tmp_path_factory):
    """The real action server + Rasa server on a SQLite tracker store of its own."""
    from bot.devtools.stack import BotStack

    db = tmp_path_factory.mktemp("stack") / "tracker.db"
    stack = BotStack(env={"TRACKER_DB_URL": f"sqlite:///{db}"})
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def staff_twilio():
    """The Twilio REST API stand-in that staff replies and takeover notices go to (bot.devtools.alert_sinks)."""
    from bot.devtools.alert_sinks import FakeTwilio
    from bot.devtools.twilio_requests import TEST_AUTH_TOKEN

    with FakeTwilio(auth_token=TEST_AUTH_TOKEN) as fake:
        yield fake


@pytest.fixture(scope="session")
def staff_stack(tmp_path_factory, staff_twilio):
    """The real bot with SMS sending set up, shared by the takeover (tests/channels) and reply (tests/review) tests."""
    from bot.devtools.stack import BotStack
    from bot.review.replies import RasaApi

    db = tmp_path_factory.mktemp("staff-stack") / "tracker.db"
    stack = BotStack(env={"TRACKER_DB_URL": f"sqlite:///{db}", "TWILIO_WEBHOOK_URL": "", **staff_twilio.env()})
    stack.start()
    stack.tracker_url = f"sqlite:///{db}"
    stack.sms_url = f"{stack.url}/webhooks/sms/webhook"
    stack.api = RasaApi(stack.url, stack.token)
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def postgres_server_url() -> str | None:
    """URL of a reachable PostgreSQL (found or started by scripts/ensure_postgres.sh), or None."""
    if os.environ.get("REVIEW_TEST_POSTGRES", "1") == "0":
        return None
    try:
        result = subprocess.run(["bash", str(ROOT / "scripts" / "ensure_postgres.sh")], capture_output=True,
                                text=True, timeout=300, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    url = result.stdout.strip().splitlines()[-1] if result.returncode == 0 and result.stdout.strip() else ""
    return url or None
