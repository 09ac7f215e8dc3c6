"""The website chat channel over real socket.io with a stand-in bot (no trained model needed)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
import websockets

from bot.channels.socketio import SEEK_CARE_STYLE, ClinicSocketIOInput, bot_event, valid_session_id
from bot.devtools.socketio_client import MiniSocketIO
from tests.channels.fake_bot import FakeBot
from tests.channels.local_server import LocalChannelServer

pytestmark = pytest.mark.server


@pytest.fixture()
def bot():
    return FakeBot()


SITE = "https://clinic.example"  # the one site these tests' channel accepts pages from


@pytest.fixture()
def server(bot):
    channel = ClinicSocketIOInput.from_credentials(
        {"user_message_evt": "user_uttered", "bot_message_evt": "bot_uttered", "session_persistence": True,
         "cors_allowed_origins": [SITE]}
    )
    with LocalChannelServer(channel, bot) as running:
        yield running


async def converse(url: str, session_id, messages: list, expect: int, timeout: float = 10.0, origin=None):
    """Connect over a websocket, ask for a session, send messages, collect `expect` bot events.

    A message that is a dict is sent as the whole user_uttered payload (plus the session id).
    """
    async with MiniSocketIO(url, origin=origin) as client:
        sid = await client.session(session_id, timeout)
        for text in messages:
            payload = dict(text) if isinstance(text, dict) else {"message": text}
            await client.emit("user_uttered", {**payload, "session_id": sid})
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


def test_seek_care_arrives_with_its_markers_in_metadata(server):
    _, events = asyncio.run(converse(server.url, None, ["my leg gave out and i cant feel my groin"], 1))
    # exactly text + metadata: rasa-webchat drops a message with any other key
    assert set(events[0]) == {"text", "metadata"}
    metadata = events[0]["metadata"]
    assert {k: metadata[k] for k in ("kind", "level", "forceOpen")} == {
        "kind": "seek_care", "level": "emergency", "forceOpen": True}
    assert metadata["customCss"] == {"style": "custom", "css": SEEK_CARE_STYLE["emergency"]}
    assert events[0]["text"].startswith("This could be serious.")


@pytest.mark.parametrize("opening", [{}, {"message": None}, {"message": ""}, {"message": "  "}, {"customData": {}}])
def test_a_blank_opening_message_is_ignored_without_a_reply(server, bot, opening):
    """rasa-webchat opens every conversation with a user_uttered without a message (no initPayload)."""
    _, events = asyncio.run(converse(server.url, None, [opening, "can i drive home"], 1))
    assert "drive you home" in events[0]["text"]  # the first reply is the answer, not "type your question"
    assert [m.text for m in bot.received] == ["can i drive home"]


def test_a_blank_message_later_in_the_connection_gets_the_prompt(server, bot):
    _, events = asyncio.run(converse(server.url, None, ["hello", "   "], 2))
    assert any("type your question" in event["text"] for event in events)  # the prompt may come first
    assert [m.text for m in bot.received] == ["hello"]


def test_the_session_id_is_kept_across_connections(server, bot):
    first, _ = asyncio.run(converse(server.url, None, ["hello"], 1))
    second, events = asyncio.run(converse(server.url, first, ["again"], 1))
    assert second == first and events
    assert {m.sender_id for m in bot.received} == {first}


@pytest.mark.parametrize("bad", ["short", "../../etc/passwd", "x" * 100, 12345, {"a": 1}])
def test_a_malformed_session_id_is_replaced(server, bad):
    sid, _ = asyncio.run(converse(server.url, bad, [], 0))
    assert sid != bad and valid_session_id(sid)


def test_pages_from_the_allowed_site_connect_and_other_sites_are_refused(server, bot):
    _, events = asyncio.run(converse(server.url, None, ["hello"], 1, origin=SITE))
    assert events and bot.received
    with pytest.raises(websockets.InvalidStatusCode):
        asyncio.run(converse(server.url, None, ["hello"], 1, origin="https://evil.example"))
    assert len(bot.received) == 1

    def handshake(origin: str) -> tuple[int, str | None]:
        request = urllib.request.Request(f"{server.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": origin})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, reply.headers.get("Access-Control-Allow-Origin")
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Access-Control-Allow-Origin")

    assert handshake(SITE) == (200, SITE)  # long-polling (rasa-webchat starts with it) gets CORS for the site
    assert handshake("https://evil.example") == (400, None)


def test_bot_event_shapes():
    assert bot_event({"text": "  hi  "}) == {"text": "hi"}
    assert bot_event({"text": "Call now", "custom": {"kind": "seek_care", "level": "urgent"}}) == {
        "text": "Call now", "metadata": {"kind": "seek_care", "level": "urgent", "forceOpen": True,
                                         "customCss": {"style": "custom", "css": SEEK_CARE_STYLE["urgent"]}}}
    assert bot_event({"text": "Check", "custom": {"kind": "symptom_check"}}) == {
        "text": "Check", "metadata": {"kind": "symptom_check"}}
    assert bot_event({"text": "plain", "custom": {}}) == {"text": "plain"}
    assert bot_event({"text": "Pick", "buttons": [{"title": "Neck", "payload": "/inform"}]})["quick_replies"] == [
        {"content_type": "text", "title": "Neck", "payload": "/inform"}]
    assert bot_event({}) is None
