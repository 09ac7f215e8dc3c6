"""With the action server down, a red flag still gets its seek-care message on the web chat and by SMS.

(REST is covered in tests/test_server.py.) Escalation uses domain responses rendered in the Rasa process,
so it must not depend on the action server; the follow-up answer may be missing, the warning may not.
"""

from __future__ import annotations

import asyncio

import pytest

from bot.devtools.socketio_client import MiniSocketIO
from bot.devtools.stack import wait_until
from bot.devtools.twilio_requests import new_phone, post_sms, twilio_params
from bot.settings import clinic_settings

pytestmark = pytest.mark.stack

RED_FLAG = "since the shot i cant feel my groin and i peed myself"


@pytest.fixture()
def actions_down(channel_stack):
    channel_stack.stop_actions()
    try:
        yield channel_stack
    finally:
        channel_stack.start_actions()


def test_web_chat(actions_down):
    async def talk() -> tuple[str, dict]:
        async with MiniSocketIO(actions_down.url) as client:
            sid = await client.session(None, 10)
            await client.emit("user_uttered", {"message": RED_FLAG, "session_id": sid})
            return sid, await client.receive("bot_uttered", 20)

    sid, first = asyncio.run(talk())
    assert first.get("metadata", {}).get("kind") == "seek_care" and first["metadata"].get("level") == "emergency"
    assert clinic_settings().emergency_number in first["text"]
    wait_until(lambda: actions_down.tracker(sid)["slots"]["triage_level"] == "emergency", 15, "tracker saved")


def test_sms(actions_down):
    phone = new_phone()
    reply = post_sms(actions_down.sms_url, twilio_params(phone, RED_FLAG))
    assert reply.status == 200 and clinic_settings().emergency_number in reply.text
    assert actions_down.tracker(phone)["slots"]["triage_level"] == "emergency"


def test_spanish_red_flag_over_rest(actions_down):
    sender = f"down-{new_phone()[-8:]}"
    reply = actions_down.ask(sender, "no puedo orinar y no siento las piernas desde la inyeccion")
    assert clinic_settings().emergency_number in reply and "emergencias" in reply
    assert actions_down.tracker(sender)["slots"]["triage_level"] == "emergency"
