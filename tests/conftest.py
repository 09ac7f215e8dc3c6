"""Shared fixtures. The real bot stack is started once per session and reused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

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
    from tests.support.stack import BotStack

    db = tmp_path_factory.mktemp("stack") / "tracker.db"
    stack = BotStack(env={"TRACKER_DB_URL": f"sqlite:///{db}"})
    stack.start()
    yield stack
    stack.stop()
