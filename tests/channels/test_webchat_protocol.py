"""What rasa-webchat 1.0.1 relies on, over real socket.io against the real bot, without a browser.

bot/devtools/socketio_client.py plays the page: the opening `user_uttered` without a message gets no
reply; seek-care markers travel in `metadata` next to `text` only; socket.io gets CORS for the allowed
site only, once, although BotStack runs `rasa run --cors "*"`. The browser version: test_rasa_webchat.py.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request

import pytest

from bot.devtools.socketio_client import MiniSocketIO
from tests.channels.browser import web_origin

pytestmark = pytest.mark.stack

RED_FLAG = "my leg gave out and i cant feel my groin"
SEEK_CARE_START = "This could be serious."


def user_texts(stack, conversation: str, expected: int, timeout_s: float = 30) -> list[str]:
    """The patient messages in the tracker, once there are `expected` (a seek-care reply can come first)."""
    deadline = time.monotonic() + timeout_s
    while True:
        texts = [e.get("text") for e in stack.tracker(conversation)["events"] if e["event"] == "user"]
        if len(texts) >= expected or time.monotonic() > deadline:
            return texts
        time.sleep(0.2)


def test_socketio_without_a_browser_opening_message_and_markers(channel_stack):
    async def talk() -> tuple[str, list[dict]]:
        async with MiniSocketIO(channel_stack.url, origin=web_origin(channel_stack.web_port)) as client:
            sid = await client.session(None)
            await client.emit("user_uttered", {"customData": {}, "session_id": sid})  # rasa-webchat's opening
            with pytest.raises(asyncio.TimeoutError):
                await client.receive("bot_uttered", 2)
            await client.emit("user_uttered", {"message": RED_FLAG, "session_id": sid})
            first = await client.receive("bot_uttered", 30)
            return sid, [first]

    sid, events = asyncio.run(talk())
    assert set(events[0]) == {"text", "metadata"}  # nothing rasa-webchat would refuse to show
    assert events[0]["metadata"]["kind"] == "seek_care" and events[0]["metadata"]["level"] == "emergency"
    assert events[0]["text"].startswith(SEEK_CARE_START)
    assert user_texts(channel_stack, sid, 1) == [RED_FLAG]


def test_only_the_allowed_site_gets_cors_even_with_rasa_cors_star(channel_stack):
    """BotStack runs `rasa run --cors "*"`: socket.io still answers the allowed site once, others not at all."""

    def handshake(origin: str) -> tuple[int, list[str]]:
        request = urllib.request.Request(
            f"{channel_stack.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": origin}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, reply.headers.get_all("Access-Control-Allow-Origin") or []
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get_all("Access-Control-Allow-Origin") or []

    site = web_origin(channel_stack.web_port)
    assert handshake(site) == (200, [site])  # exactly one header: browsers refuse two
    assert handshake("https://evil.example") == (400, [])


def test_an_empty_rest_message_still_gets_the_prompt(channel_stack):
    """Only socket.io's opening message is ignored; REST callers always get an answer."""
    reply = channel_stack.send(f"rest-empty-{time.time_ns()}", "")
    assert any("type your question" in (m.get("text") or "") for m in reply)
