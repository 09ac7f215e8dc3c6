"""The guard's seek-care deadline, with stand-in bots (no servers): a red flag is never left waiting.

The real stack under real faults is in test_faults.py; these pin the guard's decisions one by one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import yaml
from rasa.core.channels.channel import CollectingOutputChannel, OutputChannel, UserMessage

from bot.channels.guard import guard_handler, safe_reply_text, seek_care_level, seek_care_message
from bot.channels.sms import SmsCollectingOutput
from bot.config import PROJECT_ROOT
from bot.settings import fill_placeholders
from bot.vocabulary import EMERGENCY, SEEK_CARE_KIND, URGENT

RED_FLAG = "since the shot i cant feel my groin and i peed myself"
URGENT_FLAG = "my injection site is red hot and there is pus coming out"
SPANISH_RED_FLAG = "no puedo orinar y no siento las piernas desde la inyeccion"
QUESTION = "can i drive home after the injection"


def domain_text(response: str, **condition: str) -> dict[str, str]:
    """The domain.yml variants of a response: {"default" | "sms" | "es": text} (placeholders filled)."""
    variants = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text())["responses"][response]
    texts = {}
    for variant in variants:
        key = variant.get("channel") or next((c["value"] for c in variant.get("condition", [])), "default")
        texts[key] = fill_placeholders(variant["text"])
    return texts


class StreamingOutput(OutputChannel):
    """Like the web chat: every message reaches the patient when it is sent."""

    @classmethod
    def name(cls) -> str:
        return "socketio"

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        self.messages.append(dict(message))


def stuck_bot(release: asyncio.Event, finished: list[str], before: list[dict] | None = None, after: list[dict] | None = None):
    """A bot that says `before`, hangs until `release` is set, then says `after` and records that it finished."""

    async def bot(message: UserMessage) -> None:
        for reply in before or []:
            await message.output_channel.send_response(message.sender_id, reply)
        await release.wait()
        for reply in after or []:
            await message.output_channel.send_response(message.sender_id, reply)
        finished.append(message.text)

    return bot


def texts(messages: list[dict]) -> str:
    return "\n".join(m["text"] for m in messages if m.get("text"))


def markers(messages: list[dict]) -> list[str | None]:
    return [seek_care_level(m) for m in messages if seek_care_level(m)]


def test_a_stuck_bot_still_gives_a_red_flag_its_seek_care_message_on_rest():
    async def scenario():
        release, finished = asyncio.Event(), []
        collector = CollectingOutputChannel()
        await guard_handler(stuck_bot(release, finished), timeout_s=30)(UserMessage(RED_FLAG, collector, "p1"))
        answered_before_the_bot = not finished
        release.set()
        await asyncio.sleep(0.05)
        return collector.messages, answered_before_the_bot, finished

    messages, answered_before_the_bot, finished = asyncio.run(scenario())
    assert answered_before_the_bot and finished == [RED_FLAG]  # returned long before the 30 s timeout; processing went on
    expected = domain_text("utter_seek_care_emergency")["default"]
    assert all(part in texts(messages) for part in expected.split("\n\n"))
    assert markers(messages) == [EMERGENCY]
    assert safe_reply_text() not in texts(messages)


def test_the_warning_the_bot_gave_before_hanging_is_not_repeated():
    async def scenario():
        release, finished = asyncio.Event(), []
        collector = CollectingOutputChannel()
        own = await seek_care_message(EMERGENCY, RED_FLAG, collector.name())
        bot = stuck_bot(release, finished, before=[own])  # utter_seek_care ran; action_answer_after_triage hangs
        await guard_handler(bot, timeout_s=30)(UserMessage(RED_FLAG, collector, "p2"))
        release.set()
        return collector.messages

    assert markers(asyncio.run(scenario())) == [EMERGENCY]


def test_web_chat_gets_the_warning_once_and_the_late_answer_after_it():
    async def scenario():
        release, finished = asyncio.Event(), []
        output = StreamingOutput()
        own = await seek_care_message(URGENT, URGENT_FLAG, output.name())
        bot = stuck_bot(release, finished, after=[own, {"text": "About your question: ..."}])
        handler = asyncio.ensure_future(guard_handler(bot, timeout_s=30)(UserMessage(URGENT_FLAG, output, "p3")))
        while not output.messages:
            await asyncio.sleep(0.05)
        warned_before_the_bot = not finished
        release.set()
        await handler
        return output.messages, warned_before_the_bot

    messages, warned_before_the_bot = asyncio.run(scenario())
    assert warned_before_the_bot
    assert [seek_care_level(m) for m in messages] == [URGENT, None]  # the bot's own warning was dropped
    assert messages[0]["text"] == domain_text("utter_seek_care_urgent")["default"]
    assert messages[1]["text"] == "About your question: ..."


def test_a_more_serious_late_warning_still_gets_through():
    async def scenario():
        release, finished = asyncio.Event(), []
        output = StreamingOutput()
        own = await seek_care_message(EMERGENCY, RED_FLAG, output.name())
        bot = stuck_bot(release, finished, after=[own])
        handler = asyncio.ensure_future(guard_handler(bot, timeout_s=30)(UserMessage(URGENT_FLAG, output, "p4")))
        while not output.messages:
            await asyncio.sleep(0.05)
        release.set()
        await handler
        return output.messages

    assert markers(asyncio.run(scenario())) == [URGENT, EMERGENCY]


def test_sms_gets_the_sms_wording_and_spanish_patients_the_spanish_one():
    async def scenario(text: str, output: CollectingOutputChannel) -> list[dict]:
        release = asyncio.Event()
        await guard_handler(stuck_bot(release, []), timeout_s=30)(UserMessage(text, output, "p5"))
        release.set()
        return output.messages

    sms = asyncio.run(scenario(RED_FLAG, SmsCollectingOutput()))
    assert texts(sms) == domain_text("utter_seek_care_emergency")["sms"]
    spanish = asyncio.run(scenario(SPANISH_RED_FLAG, CollectingOutputChannel()))
    assert texts(spanish).replace("\n", " ") == domain_text("utter_seek_care_emergency")["es"]
    assert markers(spanish) == [EMERGENCY]


def test_a_message_waiting_for_its_conversations_lock_is_warned_in_time():
    """Rasa's lock store makes a second message wait for the first; the guard's clock runs from arrival."""

    async def scenario():
        lock, finished = asyncio.Lock(), []

        async def bot(message: UserMessage) -> None:
            async with lock:
                await message.output_channel.send_response(message.sender_id, {"text": "answer"})
            finished.append(message.text)

        await lock.acquire()  # the previous turn of this conversation is stuck
        collector = CollectingOutputChannel()
        await guard_handler(bot, timeout_s=30)(UserMessage(RED_FLAG, collector, "p6"))
        waited = not finished
        lock.release()
        await asyncio.sleep(0.05)
        return collector.messages, waited, finished

    messages, waited, finished = asyncio.run(scenario())
    assert waited and finished == [RED_FLAG]
    assert markers(messages) == [EMERGENCY]


@pytest.mark.parametrize("broken", ["raises", "silent"])
def test_a_broken_or_silent_bot_still_warns(broken):
    async def bot(message: UserMessage) -> None:
        if broken == "raises":
            raise ConnectionError("tracker database unreachable")

    collector = CollectingOutputChannel()
    asyncio.run(guard_handler(bot, timeout_s=5)(UserMessage(RED_FLAG, collector, "p7")))
    assert markers(collector.messages) == [EMERGENCY]


def test_an_ordinary_question_still_waits_for_the_bot():
    async def scenario():
        async def slowish_bot(message: UserMessage) -> None:
            await asyncio.sleep(1.2)  # past the seek-care deadline, inside the reply timeout
            await message.output_channel.send_response(message.sender_id, {"text": "You need a driver."})

        collector = CollectingOutputChannel()
        await guard_handler(slowish_bot, timeout_s=5)(UserMessage(QUESTION, collector, "p8"))
        return collector.messages

    assert texts(asyncio.run(scenario())) == "You need a driver."


def test_the_guards_seek_care_message_carries_the_marker():
    message = asyncio.run(seek_care_message(URGENT, URGENT_FLAG, "socketio"))
    assert message["custom"] == {"kind": SEEK_CARE_KIND, "level": URGENT}
    assert message["utter_action"] == "utter_seek_care_urgent"


def test_if_the_guard_cannot_render_the_warning_the_patient_still_gets_the_safe_reply(monkeypatch):
    import bot.channels.guard as guard

    async def broken(*args, **kwargs):
        raise KeyError("utter_seek_care_emergency")

    monkeypatch.setattr(guard, "seek_care_message", broken)

    async def silent_bot(message: UserMessage) -> None:
        return None

    collector = CollectingOutputChannel()
    asyncio.run(guard_handler(silent_bot, timeout_s=5)(UserMessage(RED_FLAG, collector, "p9")))
    assert texts(collector.messages) == safe_reply_text()
