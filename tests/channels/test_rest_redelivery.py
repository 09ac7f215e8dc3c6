"""A REST message delivered twice (nginx's retry after a killed server, or a client's own retry) is stored once.

bot/channels/redelivery.py: the request's Idempotency-Key / X-Request-ID becomes the user event's message_id;
a second delivery of a message the conversation already holds gets the stored answers and stores nothing.
"""

from __future__ import annotations

import uuid

import pytest

from bot.channels.redelivery import StoredAnswers, request_key
from bot.devtools.stack import http_json
from bot.settings import clinic_settings


def post(stack, sender: str, message: str, **headers: str) -> tuple[int, object]:
    return http_json("POST", f"{stack.url}/webhooks/rest/webhook?token={stack.token}",
                     {"sender": sender, "message": message}, headers=headers)


def user_texts(stack, sender: str) -> list[str]:
    return [e.get("text") for e in stack.tracker(sender)["events"] if e.get("event") == "user"]


def test_request_keys_are_taken_from_the_headers_when_well_formed():
    assert request_key({"X-Request-ID": "0f3c9a7e5b2d4c1a"}) == "rest:0f3c9a7e5b2d4c1a"
    assert request_key({"Idempotency-Key": "client-key-123", "X-Request-ID": "nginx-id-456"}) == "rest:client-key-123"
    assert request_key({}) is None
    for odd in ("short", "has space in it", "x" * 129, "drop%table_x", "ключ-ключ-ключ"):
        assert request_key({"X-Request-ID": odd}) is None, odd


def test_no_tracker_store_means_not_seen(tmp_path):
    assert StoredAnswers(f"sqlite:///{tmp_path / 'none.db'}").answers("someone", "rest:abcdefgh") is None


@pytest.mark.stack
def test_a_retried_message_is_answered_from_the_tracker_and_stored_once(channel_stack):
    sender = f"redeliver-{uuid.uuid4().hex[:10]}"
    key = uuid.uuid4().hex
    first = post(channel_stack, sender, "can i drive myself home after the shot", **{"X-Request-ID": key})
    again = post(channel_stack, sender, "can i drive myself home after the shot", **{"X-Request-ID": key})
    assert first[0] == again[0] == 200 and first[1]
    assert [m.get("text") for m in again[1]] == [m.get("text") for m in first[1]]
    assert user_texts(channel_stack, sender) == ["can i drive myself home after the shot"]


@pytest.mark.stack
def test_a_retried_red_flag_still_carries_its_seek_care_message(channel_stack):
    sender = f"redeliver-{uuid.uuid4().hex[:10]}"
    text = "i cant feel my groin and i wet myself"
    status, first = post(channel_stack, sender, text, **{"Idempotency-Key": "retry-0001-red-flag"})
    status_again, again = post(channel_stack, sender, text, **{"Idempotency-Key": "retry-0001-red-flag"})
    assert status == status_again == 200
    emergency = clinic_settings().emergency_number
    assert any(emergency in (m.get("text") or "") for m in first)
    assert any(emergency in (m.get("text") or "") for m in again)
    assert user_texts(channel_stack, sender) == [text]


@pytest.mark.stack
def test_the_same_words_with_another_key_or_none_are_a_new_message(channel_stack):
    sender = f"redeliver-{uuid.uuid4().hex[:10]}"
    assert post(channel_stack, sender, "thank you", **{"X-Request-ID": uuid.uuid4().hex})[0] == 200
    assert post(channel_stack, sender, "thank you", **{"X-Request-ID": uuid.uuid4().hex})[0] == 200
    assert post(channel_stack, sender, "thank you")[0] == 200
    assert post(channel_stack, sender, "thank you", **{"X-Request-ID": "bad key"})[0] == 200
    assert user_texts(channel_stack, sender) == ["thank you"] * 4
