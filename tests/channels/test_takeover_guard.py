"""The channel guard during a staff takeover (unit tier: a stand-in bot, a stand-in takeover lookup).

The running-bot tests (test_takeover.py) show the same on REST, web chat and SMS; these pin the rules that must
hold whatever the bot does: seek-care always goes out (with or without its marker), ordinary answers do not,
no safe reply replaces them, and a failed or slow lookup means the bot answers as usual.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import sqlalchemy as sa
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

import bot.channels.guard as guard
from bot.channels.sms import SmsCollectingOutput
from bot.devtools.red_flags import RED_FLAG
from bot.takeover import LOOKUP_TIMEOUT_MS, Takeover, TakeoverLookup, withheld_during_takeover
from bot.vocabulary import SLOT_STAFF_TAKEOVER, STAFF_MESSAGE_KEY

ANSWER = {"text": "Most people feel pressure, not pain."}
SMS_SEEK_CARE = {"text": "This could be serious. Call 911.", "utter_action": "utter_seek_care_emergency"}  # no marker
WEB_SEEK_CARE = {"text": "This could be serious.", "custom": {"kind": "seek_care", "level": "emergency"}}


class StandInLookup:
    def __init__(self, result=None, delay_s: float = 0.0, error: Exception | None = None) -> None:
        self.result, self.delay_s, self.error = result, delay_s, error

    def current(self, sender_id: str):
        time.sleep(self.delay_s)
        if self.error:
            raise self.error
        return self.result


@pytest.fixture
def taken_over(monkeypatch):
    def install(lookup: StandInLookup) -> None:
        monkeypatch.setattr(guard, "takeover_lookup", lambda: lookup)
    return install


def deliver(bot, text: str = "will it hurt?", output=None) -> tuple[list[dict], object]:
    output = output or CollectingOutputChannel()
    outcome = asyncio.run(guard.guard_handler(bot, timeout_s=3)(UserMessage(text, output, "patient-1")))
    return output.messages, outcome


def bot_saying(*messages: dict):
    async def bot(message):
        for sent in messages:
            await message.output_channel.send_response(message.sender_id, dict(sent))
    return bot


ACTIVE = Takeover.start("nurse.kim", 60)


def test_ordinary_answers_are_withheld_and_no_safe_reply_replaces_them(taken_over):
    taken_over(StandInLookup(ACTIVE))
    messages, outcome = deliver(bot_saying(ANSWER))
    assert messages == [] and outcome.silent_for_staff and outcome.withheld == 1


@pytest.mark.parametrize("seek_care", [SMS_SEEK_CARE, WEB_SEEK_CARE], ids=["sms-wording-without-marker", "marker"])
def test_seek_care_goes_out_during_a_takeover_and_what_follows_it_does_not(taken_over, seek_care):
    taken_over(StandInLookup(ACTIVE))
    messages, outcome = deliver(bot_saying(seek_care, ANSWER), RED_FLAG)
    assert [m["text"] for m in messages if m.get("text")] == [seek_care["text"]] and not outcome.silent_for_staff


def test_the_guards_own_seek_care_goes_out_on_sms_when_the_bot_fails_during_a_takeover(taken_over):
    async def broken_bot(message):
        raise RuntimeError("action server down")

    taken_over(StandInLookup(ACTIVE))
    output = SmsCollectingOutput()  # the SMS wording of seek-care has no marker
    messages, _ = deliver(broken_bot, RED_FLAG, output)
    assert len(messages) == 1 and "911" in messages[0]["text"]


@pytest.mark.parametrize("lookup", [
    StandInLookup(None),
    StandInLookup(error=RuntimeError("database gone")),
    StandInLookup(ACTIVE, delay_s=LOOKUP_TIMEOUT_MS / 1000 + 0.3),  # too slow: as if there were no takeover
], ids=["none", "lookup-fails", "lookup-too-slow"])
def test_without_a_known_active_takeover_the_bot_answers(taken_over, lookup):
    taken_over(lookup)
    messages, outcome = deliver(bot_saying(ANSWER))
    assert [m.get("text") for m in messages] == [ANSWER["text"]] and not outcome.silent_for_staff


def test_the_lookup_reads_the_latest_takeover_even_across_a_new_session(tmp_path):
    url = f"sqlite:///{tmp_path / 'tracker.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id TEXT, type_name TEXT, "
                                   "timestamp REAL, intent_name TEXT, action_name TEXT, data TEXT)"))

    def add(sender: str, type_name: str, value: object = None) -> None:
        action = SLOT_STAFF_TAKEOVER if type_name == "slot" else None
        with engine.begin() as connection:
            connection.execute(sa.text("INSERT INTO events (sender_id, type_name, action_name, data) VALUES "
                                       "(:s, :t, :a, :d)"),
                               {"s": sender, "t": type_name, "a": action, "d": json.dumps({"value": value})})

    lookup = TakeoverLookup(url)
    add("a", "slot", ACTIVE.slot_value())
    add("b", "slot", Takeover("x", since=time.time() - 7200, until=time.time() - 3600).slot_value())  # timed out
    add("c", "slot", ACTIVE.slot_value())
    add("c", "slot", None)  # handed back
    add("d", "slot", ACTIVE.slot_value())
    add("d", "session_started")  # the patient writes again hours later: the takeover still holds
    add("e", "slot", {"staff": "x"})  # malformed
    assert lookup.current("a") == ACTIVE and lookup.current("d") == ACTIVE
    assert [lookup.current(sender) for sender in "bcef"] == [None] * 4
    engine.dispose()


def test_staff_messages_and_safety_messages_are_never_withheld():
    assert not withheld_during_takeover({"text": "hi", STAFF_MESSAGE_KEY: "nurse.kim"})
    assert not withheld_during_takeover({"text": "x", "metadata": {"kind": "symptom_check"}})
    assert not withheld_during_takeover({"text": "x", "utter_action": "utter_seek_care_urgent"})
    assert withheld_during_takeover({"text": "x", "utter_action": "utter_greet"})
    assert withheld_during_takeover(ANSWER)
