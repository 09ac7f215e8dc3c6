"""The reply guard: a patient always gets an answer, and processing is never lost."""

from __future__ import annotations

import asyncio

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

from bot.channels.guard import EMPTY_REPLY, guard_handler, safe_reply_text
from bot.settings import clinic_settings


def deliver(handler, text):
    collector = CollectingOutputChannel()
    asyncio.run(handler(UserMessage(text, collector, "patient-1")))
    return [m["text"] for m in collector.messages]


def test_normal_replies_pass_through_untouched():
    async def bot(message):
        await message.output_channel.send_response(message.sender_id, {"text": "answer"})

    assert deliver(guard_handler(bot), "hello") == ["answer"]


def test_silence_becomes_the_safe_reply_with_the_clinic_number():
    async def silent_bot(message):
        return None

    replies = deliver(guard_handler(silent_bot), "hello")
    assert replies == [safe_reply_text()] and clinic_settings().clinic_phone in replies[0]


def test_a_crash_becomes_the_safe_reply():
    async def broken_bot(message):
        raise RuntimeError("action server exploded")

    assert deliver(guard_handler(broken_bot), "hello") == [safe_reply_text()]


def test_slow_bot_gets_safe_reply_in_time_and_still_finishes():
    finished = []

    async def slow_bot(message):
        await asyncio.sleep(0.8)
        finished.append(message.text)

    async def scenario():
        collector = CollectingOutputChannel()
        await guard_handler(slow_bot, timeout_s=0.5)(UserMessage("hello", collector, "p"))
        replies = [m["text"] for m in collector.messages]
        assert finished == []
        await asyncio.sleep(0.6)
        return replies

    assert asyncio.run(scenario()) == [safe_reply_text()]
    assert finished == ["hello"]  # processing went on: nothing lost


def test_blank_messages_get_a_prompt_without_reaching_the_bot():
    reached = []

    async def bot(message):
        reached.append(message.text)

    for blank in ["", "   ", None]:
        assert deliver(guard_handler(bot), blank) == [EMPTY_REPLY]
    assert reached == []
