"""The website chat channel over real socket.io with a stand-in bot (no trained model needed)."""

from __future__ import annotations

import asyncio

import pytest

from bot.channels.socketio import ClinicSocketIOInput, bot_event, valid_session_id
from bot.devtools.socketio_client import MiniSocketIO
from tests.channels.fake_bot import FakeBot
from tests.channels.local_server import LocalChannelServer

pytestmark = pytest.mark.server


@pytest.fixture()
def bot():
    return FakeBot()


@pytest.fixture()
def server(bot):
    channel = ClinicSocketIOInput.from_credentials(
        {"user_message_evt": "user_uttered", "bot_message_evt": "bot_uttered", "session_persistence": True}
    )
    with LocalChannelServer(channel, bot) as running:
        yield running


async def converse(url: str, session_id, messages: list[str], expect: int, timeout: float = 10.0):
    """Connect over a websocket, ask for a session, send messages, collect `expect` bot events."""
    async with MiniSocketIO(url) as client:
        sid = await client.session(session_id, timeout)
        for text in messages:
            await client.emit("user_uttered", {"message": text, "session_id": sid})
        received = [await client.receive("bot_uttered", timeout) for _ in range(expect)]
        if not expect:
            await asyncio.sleep(0.3)
    return sid, received


def test_a_question_gets_one_event_with_the_whole_text(server, bot):
    sid, events = asyncio.run(converse(server.url, None, ["can i drive home"], 1))
    assert valid_session_id(sid)
    assert len(events) == 1
    assert "\n\n" in events[0]["text"] and "- arrange your driver" in events[0]["text"]
    assert bot.received[0].sender_id == sid and bot.received[0].input_channel == "socketio"
    assert bot.received[0].output_channel.name() == "socketio"


def test_seek_care_arrives_with_its_custom_payload_in_the_same_event(server):
    _, events = asyncio.run(converse(server.url, None, ["my leg gave out and i cant feel my groin"], 1))
    assert events[0]["custom"] == {"kind": "seek_care", "level": "emergency"}
    assert events[0]["kind"] == "seek_care" and events[0]["level"] == "emergency"
    assert events[0]["text"].startswith("This could be serious.")


def test_the_session_id_is_kept_across_connections(server, bot):
    first, _ = asyncio.run(converse(server.url, None, ["hello"], 1))
    second, events = asyncio.run(converse(server.url, first, ["again"], 1))
    assert second == first and events
    assert {m.sender_id for m in bot.received} == {first}


@pytest.mark.parametrize("bad", ["short", "../../etc/passwd", "x" * 100, 12345, {"a": 1}])
def test_a_malformed_session_id_is_replaced(server, bad):
    sid, _ = asyncio.run(converse(server.url, bad, [], 0))
    assert sid != bad and valid_session_id(sid)


def test_blank_messages_get_a_prompt_without_the_bot(server, bot):
    _, events = asyncio.run(converse(server.url, None, ["   "], 1))
    assert "type your question" in events[0]["text"]
    assert bot.received == []


def test_bot_event_shapes():
    assert bot_event({"text": "  hi  "}) == {"text": "hi"}
    assert bot_event({"custom": {"kind": "seek_care", "level": "urgent"}}) == {
        "custom": {"kind": "seek_care", "level": "urgent"}, "kind": "seek_care", "level": "urgent"}
    assert bot_event({"text": "Pick", "buttons": [{"title": "Neck", "payload": "/inform"}]})["quick_replies"] == [
        {"content_type": "text", "title": "Neck", "payload": "/inform"}]
    assert bot_event({}) is None
