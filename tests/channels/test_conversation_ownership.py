"""No one writes into another patient's conversation (against the running bot).

The REST channel needs the HTTP API token (`?token=` or `Authorization: Bearer`), and no channel can
write into a conversation another channel owns: phone-number ids are the SMS channel's, web chat
session ids the web channel's (bot/channels/ownership.py).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.error
import urllib.request

import pytest

from bot.devtools.socketio_client import MiniSocketIO
from bot.devtools.stack import wait_until
from bot.devtools.twilio_requests import new_phone, post_sms, twilio_params
from bot.vocabulary import CHANNEL_REST, CHANNEL_SMS, CHANNEL_WEB

pytestmark = pytest.mark.stack

RED_FLAG = "my leg is numb and i cant pee"


def post_rest(stack, sender: str, message: str, query: str = "", headers: dict[str, str] | None = None) -> tuple[int, object]:
    request = urllib.request.Request(
        f"{stack.url}/webhooks/rest/webhook{query}",
        data=json.dumps({"sender": sender, "message": message}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def user_events(stack, sender: str) -> list[dict]:
    return [event for event in stack.tracker(sender)["events"] if event["event"] == "user"]


def new_sender() -> str:
    return f"rest-{secrets.token_hex(8)}"


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [
        ("", {}, 401),
        ("?token=wrong-token", {}, 403),
        ("", {"Authorization": "Bearer wrong-token"}, 403),
        ("", {"Authorization": "Basic Zm9vOmJhcg=="}, 401),
        ("?token=", {}, 401),
    ],
    ids=["no-token", "wrong-query-token", "wrong-bearer", "basic-auth", "empty-token"],
)
def test_rest_without_the_right_token_is_refused_and_nothing_is_recorded(channel_stack, query, headers, status):
    sender = new_sender()
    code, body = post_rest(channel_stack, sender, RED_FLAG, query, headers)
    assert code == status and "error" in body
    assert user_events(channel_stack, sender) == []
    assert channel_stack.tracker(sender)["slots"].get("triage_level") is None
    assert "cant pee" not in channel_stack.logs["rasa"].read_text()  # only the refusal is logged


def test_rest_with_the_token_in_either_form_is_answered(channel_stack):
    sender = new_sender()
    code, body = post_rest(channel_stack, sender, "can i drive home after the shot", f"?token={channel_stack.token}")
    assert code == 200 and any("drive" in (m.get("text") or "").lower() for m in body)
    code, body = post_rest(channel_stack, sender, RED_FLAG, headers={"Authorization": f"Bearer {channel_stack.token}"})
    assert code == 200 and any((m.get("custom") or {}).get("kind") == "seek_care" for m in body)
    events = user_events(channel_stack, sender)
    assert [e["input_channel"] for e in events] == [CHANNEL_REST, CHANNEL_REST]
    assert channel_stack.tracker(sender)["slots"]["triage_level"] == "emergency"


def test_rest_cannot_write_into_an_sms_conversation(channel_stack):
    phone = new_phone()
    reply = post_sms(channel_stack.sms_url, twilio_params(phone, "can i eat before the injection"))
    assert reply.status == 200 and reply.messages
    before = channel_stack.tracker(phone)

    for sender in (phone, f"whatsapp:{phone}", phone[:2] + " " + phone[2:]):
        code, body = post_rest(channel_stack, sender, RED_FLAG, f"?token={channel_stack.token}")
        assert code == 403 and "another channel" in body["error"]

    after = channel_stack.tracker(phone)
    assert after["events"] == before["events"]
    assert after["slots"].get("triage_level") is None
    assert {e["input_channel"] for e in user_events(channel_stack, phone)} == {CHANNEL_SMS}
    # the patient's own texts still go through
    assert post_sms(channel_stack.sms_url, twilio_params(phone, RED_FLAG)).status == 200
    assert channel_stack.tracker(phone)["slots"]["triage_level"] == "emergency"


def test_a_phone_number_sender_is_refused_on_rest_even_before_any_sms(channel_stack):
    phone = new_phone()
    code, _ = post_rest(channel_stack, phone, RED_FLAG, f"?token={channel_stack.token}")
    assert code == 403
    assert user_events(channel_stack, phone) == []
    # ...so nobody can claim a patient's number first: the patient's SMS is answered
    reply = post_sms(channel_stack.sms_url, twilio_params(phone, "hello"))
    assert reply.status == 200 and reply.messages


def test_rest_cannot_write_into_a_web_chat_conversation(channel_stack):
    async def chat() -> str:
        async with MiniSocketIO(channel_stack.url) as client:
            session_id = await client.session(None, 10)
            await client.emit("user_uttered", {"message": "how long does the injection take", "session_id": session_id})
            await client.receive("bot_uttered", 20)
            return session_id

    session_id = asyncio.run(chat())
    # the first answer streams before the turn ends; the tracker is saved when it does
    wait_until(lambda: len(user_events(channel_stack, session_id)) == 1, 10, "the web chat turn saved")
    before = channel_stack.tracker(session_id)["events"]
    code, body = post_rest(channel_stack, session_id, RED_FLAG, f"?token={channel_stack.token}")
    assert code == 403 and "another channel" in body["error"]
    assert channel_stack.tracker(session_id)["events"] == before
    assert {e["input_channel"] for e in user_events(channel_stack, session_id)} == {CHANNEL_WEB}


def test_socketio_issues_its_own_ids_and_ignores_other_channels_ids(channel_stack):
    rest_sender = f"rest-conversation-{secrets.token_hex(8)}"  # a valid-looking web session id
    assert post_rest(channel_stack, rest_sender, "hello", f"?token={channel_stack.token}")[0] == 200
    rest_events = channel_stack.tracker(rest_sender)["events"]
    phone = new_phone()

    async def chat() -> tuple[str, str, list]:
        async with MiniSocketIO(channel_stack.url) as client:
            for_phone = await client.session(phone, 10)
            for_rest_id = await client.session(rest_sender, 10)
            # a message naming the REST conversation directly is ignored
            await client.emit("user_uttered", {"message": RED_FLAG, "session_id": rest_sender})
            with pytest.raises(asyncio.TimeoutError):
                await client.receive("bot_uttered", 3)
            return for_phone, for_rest_id

    for_phone, for_rest_id = asyncio.run(chat())
    assert for_phone != phone and for_rest_id != rest_sender and for_phone != for_rest_id
    assert channel_stack.tracker(rest_sender)["events"] == rest_events
    assert channel_stack.tracker(rest_sender)["slots"].get("triage_level") is None
