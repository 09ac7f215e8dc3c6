"""The SMS channel on the real running bot: signed Twilio-format requests, TwiML answers, tracker checks."""

from __future__ import annotations

import time

import pytest

from bot.channels.sms_text import SMS_MAX_CHARS
from bot.devtools.twilio_requests import new_phone, post_sms, sign, twilio_params
from bot.settings import clinic_settings

pytestmark = pytest.mark.stack


def tracker(stack, phone: str) -> dict:
    return stack.tracker(phone)  # "+" is a plain character in a URL path


def user_events(stack, phone: str) -> list[dict]:
    return [event for event in tracker(stack, phone).get("events", []) if event["event"] == "user"]


def assert_sms_sized(messages: list[str]) -> None:
    assert messages, "expected at least one <Message>"
    assert all(0 < len(message) <= SMS_MAX_CHARS for message in messages), [len(m) for m in messages]


def test_a_question_gets_a_plain_text_answer(channel_stack):
    phone = new_phone()
    params = twilio_params(phone, "do i need someone to drive me home after my nerve block?")
    started = time.monotonic()
    reply = post_sms(channel_stack.sms_url, params)
    assert reply.status == 200 and time.monotonic() - started < 15
    assert_sms_sized(reply.messages)
    assert "drive" in reply.text.lower()
    assert "**" not in reply.text and "<" not in reply.text
    events = user_events(channel_stack, phone)
    assert len(events) == 1
    assert events[0]["input_channel"] == "sms" and events[0]["message_id"] == params["MessageSid"]
    assert tracker(channel_stack, phone)["sender_id"] == phone


def test_an_urgent_message_gets_the_seek_care_text(channel_stack):
    settings = clinic_settings()
    phone = new_phone()
    reply = post_sms(channel_stack.sms_url, twilio_params(phone, "my leg gave out and i cant feel my groin"))
    assert_sms_sized(reply.messages)
    assert settings.emergency_number in reply.text and settings.clinic_phone in reply.text
    state = tracker(channel_stack, phone)
    assert state["slots"]["triage_level"] in {"emergency", "urgent"}


def test_stop_help_start(channel_stack):
    settings = clinic_settings()
    phone = new_phone()
    url = channel_stack.sms_url
    assert post_sms(url, twilio_params(phone, "hi")).messages
    stop = post_sms(url, twilio_params(phone, "STOP"))
    assert len(stop.messages) == 1 and "START" in stop.text
    assert post_sms(url, twilio_params(phone, "Stop")).messages == []
    assert post_sms(url, twilio_params(phone, "can i drive home after")).messages == []
    help_reply = post_sms(url, twilio_params(phone, "HELP"))
    assert settings.clinic_name in help_reply.text and settings.clinic_phone in help_reply.text
    assert_sms_sized(help_reply.messages)
    start = post_sms(url, twilio_params(phone, "START"))
    assert "STOP" in start.text
    assert "drive" in post_sms(url, twilio_params(phone, "can i drive myself home after the injection")).text.lower()
    texts = [event["text"] for event in user_events(channel_stack, phone)]
    # keywords never reach the bot; the text sent while opted out is recorded without a reply (test_sms_after_stop.py)
    assert texts == ["hi", "can i drive home after", "can i drive myself home after the injection"]


def test_forged_and_unsigned_requests_get_403_and_nothing_is_recorded(channel_stack):
    phone = new_phone()
    params = twilio_params(phone, "i cant feel my legs")
    forged = post_sms(channel_stack.sms_url, params, signature=sign(channel_stack.sms_url, params, "wrong-token-1234567890"))
    unsigned = post_sms(channel_stack.sms_url, params, signature=None)
    tampered = post_sms(channel_stack.sms_url, {**params, "From": new_phone()}, signature=sign(channel_stack.sms_url, params))
    assert (forged.status, unsigned.status, tampered.status) == (403, 403, 403)
    assert user_events(channel_stack, phone) == []
    assert post_sms(channel_stack.sms_url, params).messages  # the same MessageSid is still new: nothing was stored


def test_a_duplicate_message_sid_gets_one_reply(channel_stack):
    phone = new_phone()
    params = twilio_params(phone, "will the injection hurt")
    first = post_sms(channel_stack.sms_url, params)
    second = post_sms(channel_stack.sms_url, params)
    assert first.messages and second.status == 200 and second.messages == []
    assert len(user_events(channel_stack, phone)) == 1


def test_an_empty_body_gets_a_prompt(channel_stack):
    phone = new_phone()
    reply = post_sms(channel_stack.sms_url, twilio_params(phone, ""))
    assert reply.status == 200 and "type your question" in reply.text
    assert user_events(channel_stack, phone) == []


def test_an_over_long_body_is_answered_in_time(channel_stack):
    phone = new_phone()
    body = ("I have a question about my appointment next week and what to bring with me. " * 30)[:2400]
    started = time.monotonic()
    reply = post_sms(channel_stack.sms_url, twilio_params(phone, body))
    assert reply.status == 200 and time.monotonic() - started < 15
    assert_sms_sized(reply.messages)
    assert len(user_events(channel_stack, phone)) == 1
