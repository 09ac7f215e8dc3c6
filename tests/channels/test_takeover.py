"""Staff takeover through the running bot, on REST, web chat and SMS: ordinary questions get no bot answer,
urgent symptoms still get the seek-care message, the patient is told once, hand-back and timeout restore the bot.

The takeover is written exactly as the review app writes it (bot.review.replies: Rasa's HTTP API,
execute_side_effects + output_channel=latest); Twilio's REST API is the local fake (bot.devtools.alert_sinks).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from bot.channels.guard import seek_care_message
from bot.devtools.red_flags import RED_FLAG, sms_wordings
from bot.devtools.socketio_client import MiniSocketIO
from bot.devtools.twilio_requests import new_phone, post_sms, twilio_params
from bot.messages import TAKEOVER_NOTICE
from bot.review.replies import handback_events, staff_message, takeover_events
from bot.settings import fill_placeholders
from bot.vocabulary import CHANNEL_REST, SEEK_CARE_KIND, STAFF_NOTICE_KIND, STAFF_REPLY_KIND

pytestmark = [pytest.mark.stack, pytest.mark.server]

QUESTION = "will the injection hurt?"
STAFF = "nurse.kim"


@pytest.fixture
def twilio(staff_twilio):
    return staff_twilio


@pytest.fixture
def stack(staff_stack):
    return staff_stack


def seek_care_levels(messages: list[dict]) -> list[str]:
    return [m["custom"]["level"] for m in messages if (m.get("custom") or {}).get("kind") == SEEK_CARE_KIND]


def bot_texts_after(tracker: dict, patient_text: str) -> list[dict]:
    """The bot events recorded after the patient's message `patient_text` (up to the next patient message)."""
    events = tracker["events"]
    start = max(i for i, e in enumerate(events) if e["event"] == "user" and e.get("text") == patient_text)
    following = []
    for event in events[start + 1:]:
        if event["event"] == "user":
            break
        if event["event"] == "bot":
            following.append(event)
    return following


def test_rest_takeover_silences_ordinary_answers_but_never_seek_care(stack):
    sender = f"takeover-rest-{uuid.uuid4().hex[:8]}"
    assert stack.ask(sender, "can i drive home after the injection")  # the bot answers before the takeover

    stack.api.append_and_send(sender, takeover_events(STAFF, 60))
    assert stack.send(sender, QUESTION) == []  # no answer, no safe reply: a person replies
    tracker = stack.tracker(sender)
    assert tracker["slots"]["staff_takeover"]["staff"] == STAFF
    withheld = bot_texts_after(tracker, QUESTION)
    assert withheld and withheld[0]["text"]  # the bot's answer is recorded (the transcript marks it "not sent")

    red_flag = stack.send(sender, RED_FLAG)
    assert seek_care_levels(red_flag) == ["emergency"]
    seek_care = asyncio.run(seek_care_message("emergency", RED_FLAG, CHANNEL_REST))["text"]
    # only the seek-care message (REST splits it into parts): the shower answer that follows it is held back
    assert all(m["text"] in seek_care for m in red_flag if m.get("text"))
    assert stack.tracker(sender)["slots"]["triage_level"] == "emergency"  # escalation recorded (alerts read it)

    stack.api.append_and_send(sender, handback_events(STAFF))
    assert stack.tracker(sender)["slots"]["staff_takeover"] is None
    assert stack.ask(sender, QUESTION)  # the bot answers again


def test_takeover_ends_by_itself_when_its_time_is_up(stack):
    sender = f"takeover-timeout-{uuid.uuid4().hex[:8]}"
    assert stack.ask(sender, "hello")
    stack.api.append_and_send(sender, takeover_events(STAFF, minutes=2.0 / 60))  # two seconds
    assert stack.send(sender, QUESTION) == []
    time.sleep(2.2)
    assert stack.ask(sender, QUESTION)


def test_a_takeover_of_an_idle_conversation_holds_when_the_patient_writes_again(stack):
    """Staff often take over hours later; the patient's next message starts a new Rasa session (slots reset)."""
    sender = f"takeover-idle-{uuid.uuid4().hex[:8]}"
    hours_ago = time.time() - 3 * 3600
    stack.api.append_and_send(sender, [
        {"event": "action", "name": "action_session_start", "timestamp": hours_ago},
        {"event": "session_started", "timestamp": hours_ago},
        {"event": "action", "name": "action_listen", "timestamp": hours_ago},
        {"event": "user", "text": "hello", "timestamp": hours_ago, "input_channel": CHANNEL_REST,
         "parse_data": {"intent": {"name": "greet", "confidence": 1.0}, "entities": []}},
    ])
    stack.api.append_and_send(sender, takeover_events(STAFF, 60))
    assert stack.send(sender, QUESTION) == []
    events = stack.tracker(sender)["events"]
    assert [e["event"] for e in events].count("session_started") == 2  # a new session began, the takeover held
    assert seek_care_levels(stack.send(sender, RED_FLAG)) == ["emergency"]


def test_sms_takeover_tells_the_patient_once_and_still_sends_seek_care(stack, twilio):
    phone = new_phone()
    first = post_sms(stack.sms_url, twilio_params(phone, "hello"))
    assert first.status == 200 and first.messages

    stack.api.append_and_send(phone, takeover_events(STAFF, 60))
    notices = [sms for sms in twilio.received() if sms.to == phone]
    assert [sms.body for sms in notices] == [fill_placeholders(TAKEOVER_NOTICE)]  # told once, by text, at once

    ordinary = post_sms(stack.sms_url, twilio_params(phone, QUESTION))
    assert ordinary.status == 200 and ordinary.messages == []  # empty TwiML: no text goes back

    urgent = post_sms(stack.sms_url, twilio_params(phone, RED_FLAG))
    assert urgent.status == 200
    assert sms_wordings()["emergency"] in urgent.text

    stack.api.append_and_send(phone, [staff_message("Hi, this is the clinic. We will call you in 5 minutes.",
                                                     STAFF_REPLY_KIND, STAFF)])
    bodies = [sms.body for sms in twilio.received() if sms.to == phone]
    assert bodies[-1] == "Hi, this is the clinic. We will call you in 5 minutes." and len(bodies) == 2


async def _web_takeover(stack) -> None:
    async with MiniSocketIO(stack.url) as client:
        session = await client.session(None)
        await client.emit("user_uttered", {"message": "hello", "session_id": session})
        assert (await client.receive("bot_uttered"))["text"]

        await asyncio.to_thread(stack.api.append_and_send, session, takeover_events(STAFF, 60))
        notice = await client.receive("bot_uttered")  # pushed to the connected widget at once
        assert notice["text"] == fill_placeholders(TAKEOVER_NOTICE)
        assert notice["metadata"]["kind"] == STAFF_NOTICE_KIND and STAFF not in str(notice)

        # An ordinary question, then a red flag: the conversation is handled in order, so an answer to the
        # question would arrive first. The next message must be the seek-care one.
        await client.emit("user_uttered", {"message": QUESTION, "session_id": session})
        await asyncio.sleep(0.3)
        await client.emit("user_uttered", {"message": RED_FLAG, "session_id": session})
        urgent = await client.receive("bot_uttered")
        assert urgent["metadata"]["kind"] == SEEK_CARE_KIND and urgent["metadata"]["level"] == "emergency"
        await asyncio.sleep(1.0)
        assert client.queues["bot_uttered"].empty()  # nothing else: the shower answer is held back too

    # The widget is closed: a staff reply waits for the next visit, then comes once.
    await asyncio.to_thread(stack.api.append_and_send, session,
                            [staff_message("We tried to call you. Please call us back.", STAFF_REPLY_KIND, STAFF)])
    async with MiniSocketIO(stack.url) as client:
        assert await client.session(session) == session
        waiting = await client.receive("bot_uttered")
        assert waiting["text"] == "We tried to call you. Please call us back."
        assert waiting["metadata"]["kind"] == STAFF_REPLY_KIND
    async with MiniSocketIO(stack.url) as client:
        assert await client.session(session) == session
        with pytest.raises(asyncio.TimeoutError):
            await client.receive("bot_uttered", timeout=1.0)  # delivered once only


def test_web_chat_takeover_pushes_the_notice_keeps_seek_care_and_keeps_replies_for_the_next_visit(stack):
    asyncio.run(_web_takeover(stack))


def test_with_the_action_server_down_a_takeover_still_lets_seek_care_through(stack):
    """Last in the module: stops and restarts the stack's action server."""
    sender, phone = f"takeover-down-{uuid.uuid4().hex[:8]}", new_phone()
    assert stack.ask(sender, "hello") and post_sms(stack.sms_url, twilio_params(phone, "hello")).messages
    stack.api.append_and_send(sender, takeover_events(STAFF, 60))
    stack.api.append_and_send(phone, takeover_events(STAFF, 60))
    stack.stop_actions()
    try:
        assert seek_care_levels(stack.send(sender, RED_FLAG)) == ["emergency"]
        assert sms_wordings()["emergency"] in post_sms(stack.sms_url, twilio_params(phone, RED_FLAG)).text
        assert stack.send(sender, "can i drive home after the injection") == []  # no safe reply either: staff reply
    finally:
        stack.start_actions()
