"""Fixtures for the channel tests that talk to the real bot (Rasa server + action server).

The stack gets TWILIO_AUTH_TOKEN = the test token so signed Twilio requests are accepted, and its
own SQLite tracker database (the SMS opt-out / MessageSid tables live there too).
CLINIC_MODEL_PATH may point at another trained model (default models/clinic.tar.gz).
The web pages of the browser tests are served on `stack.web_port`, the one site the stack's website
chat accepts (WEB_ALLOWED_ORIGINS).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.devtools.twilio_requests import TEST_AUTH_TOKEN


@pytest.fixture(scope="package")  # stopped when tests/channels is done, before other stacks start
def channel_stack(tmp_path_factory):
    from bot.devtools.stack import MODEL, BotStack, free_port
    from tests.channels.browser import web_origin

    db = tmp_path_factory.mktemp("channel-stack") / "tracker.db"
    web_port = free_port()
    stack = BotStack(
        env={"TRACKER_DB_URL": f"sqlite:///{db}", "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN, "TWILIO_WEBHOOK_URL": "",
             "WEB_ALLOWED_ORIGINS": web_origin(web_port)},
        model=Path(os.environ.get("CLINIC_MODEL_PATH", MODEL)),
    )
    stack.start()
    stack.web_port = web_port
    stack.sms_url = f"{stack.url}/webhooks/sms/webhook"
    yield stack
    stack.stop()
