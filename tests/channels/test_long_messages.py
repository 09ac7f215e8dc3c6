"""A red flag at the very end of the longest accepted message is seen on every channel (REST, web chat, SMS).

One limit (bot.vocabulary.MAX_MESSAGE_CHARS) holds for the reply guard, the socket.io channel and triage;
a longer message keeps its start and its end, so a symptom typed last is never cut off.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from bot.devtools.socketio_client import MiniSocketIO
from bot.devtools.stack import wait_until
from bot.devtools.twilio_requests import new_phone, post_sms, twilio_params
from bot.settings import clinic_settings
from bot.vocabulary import MAX_MESSAGE_CHARS

pytestmark = pytest.mark.stack

RED_FLAG = " Also since last night I cant feel my groin and I peed myself."
FILLER = "I wanted to ask a few things about getting ready for my injection next week and what to bring. "


def message_ending_in_a_red_flag(length: int) -> str:
    body = (FILLER * (length // len(FILLER) + 1))[: length - len(RED_FLAG)]
    text = body + RED_FLAG
    assert len(text) == length
    return text


LENGTHS = [MAX_MESSAGE_CHARS, MAX_MESSAGE_CHARS + 5_000]


@pytest.mark.parametrize("length", LENGTHS, ids=["longest-accepted", "over-the-limit"])
def test_rest(channel_stack, length):
    sender = f"long-{uuid.uuid4().hex[:10]}"
    reply = channel_stack.ask(sender, message_ending_in_a_red_flag(length))
    assert clinic_settings().emergency_number in reply
    # on a busy machine the guard answers at its deadline and the turn is saved when it ends
    wait_until(lambda: channel_stack.tracker(sender)["slots"]["triage_level"] == "emergency", 10, "tracker saved")


@pytest.mark.parametrize("length", LENGTHS, ids=["longest-accepted", "over-the-limit"])
def test_web_chat(channel_stack, length):
    async def talk() -> tuple[str, list]:
        async with MiniSocketIO(channel_stack.url) as client:
            sid = await client.session(None, 10)
            await client.emit("user_uttered", {"message": message_ending_in_a_red_flag(length), "session_id": sid})
            return sid, [await client.receive("bot_uttered", 20)]

    sid, received = asyncio.run(talk())
    assert received[0].get("metadata", {}).get("kind") == "seek_care" and received[0]["metadata"].get("level") == "emergency"
    # the seek-care message is emitted before the turn ends; the tracker is saved when it does
    wait_until(lambda: channel_stack.tracker(sid)["slots"]["triage_level"] == "emergency", 10, "tracker saved")


@pytest.mark.parametrize("length", LENGTHS, ids=["longest-accepted", "over-the-limit"])
def test_sms(channel_stack, length):
    phone = new_phone()
    reply = post_sms(channel_stack.sms_url, twilio_params(phone, message_ending_in_a_red_flag(length)))
    assert reply.status == 200
    assert clinic_settings().emergency_number in reply.text
    wait_until(lambda: channel_stack.tracker(phone)["slots"]["triage_level"] == "emergency", 10, "tracker saved")
