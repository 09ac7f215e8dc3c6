"""rasa-webchat 1.0.1 from npm, the most used third-party Rasa widget, against the real bot.

The page (web/rasa-webchat.html, rasa-webchat from web/node_modules, no CDN) is served by web/serve.py
from another origin than the bot: the one site the stack allows (WEB_ALLOWED_ORIGINS). The bot runs
with `--cors "*"` (BotStack), as rasa-webchat's README suggests, which must not matter for socket.io.
The same checks without a browser: test_webchat_protocol.py. Saves artifacts/rasa-webchat.png.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from bot.devtools.socketio_client import MiniSocketIO
from bot.settings import clinic_settings
from tests.channels.browser import ARTIFACTS, ChatPage, Webchat, chromium, web_origin, web_server

pytestmark = [pytest.mark.stack, pytest.mark.browser]

QUESTION = "can i drive myself home after the injection?"
RED_FLAG = "my leg gave out and i cant feel my groin"
SEEK_CARE_START = "This could be serious."


@pytest.fixture(scope="module")
def site(channel_stack):
    with web_server(channel_stack.url, port=channel_stack.web_port) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as running:
        yield running


def another_tab(stack, conversation: str, text: str) -> None:
    """Send `text` in `conversation` from another socket.io connection (replies go to every tab of it)."""

    async def talk() -> None:
        async with MiniSocketIO(stack.url, origin=web_origin(stack.web_port)) as client:
            await client.session(conversation)
            await client.emit("user_uttered", {"message": text, "session_id": conversation})
            await client.receive("bot_uttered", 30)

    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: errors.extend(_run(talk)))  # Playwright's loop runs in this one
    thread.start()
    thread.join(60)
    assert not errors, errors


def _run(coroutine_function) -> list[BaseException]:
    try:
        asyncio.run(coroutine_function())
    except BaseException as error:  # reported by the caller's thread
        return [error]
    return []


def user_texts(stack, conversation: str, expected: int, timeout_s: float = 30) -> list[str]:
    """The patient messages in the tracker, once there are `expected` (a seek-care reply can come first)."""
    deadline = time.monotonic() + timeout_s
    while True:
        texts = [e.get("text") for e in stack.tracker(conversation)["events"] if e["event"] == "user"]
        if len(texts) >= expected or time.monotonic() > deadline:
            return texts
        time.sleep(0.2)


def test_rasa_webchat_from_another_origin(browser, site, channel_stack):
    settings = clinic_settings()
    assert web_origin(channel_stack.web_port) != channel_stack.url  # another origin than the bot
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    chat = Webchat(context.new_page(), site)
    chat.open().open_chat()
    conversation = chat.wait_session()

    # the opening user_uttered without a message gets no reply and leaves nothing in the conversation
    chat.page.wait_for_timeout(1500)
    opening = [f for f in chat.sent if '"user_uttered"' in f]
    assert len(opening) == 1 and '"message"' not in opening[0]  # rasa-webchat did send it
    assert chat.bot_messages.count() == 0
    assert not [f for f in chat.frames if "bot_uttered" in f]

    answer = chat.ask(QUESTION)
    assert "driv" in answer.lower()

    alert = chat.ask(RED_FLAG)
    assert alert.startswith(SEEK_CARE_START) and settings.emergency_number in alert
    bubble = chat.page.locator(".rw-response").nth(1)  # styled from metadata.customCss: white on dark red
    colours = bubble.evaluate("e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]")
    assert colours == ["rgb(176, 0, 32)", "rgb(255, 255, 255)"]
    ARTIFACTS.mkdir(exist_ok=True)
    chat.page.screenshot(path=str(ARTIFACTS / "rasa-webchat.png"))
    assert user_texts(channel_stack, conversation, 2) == [QUESTION, RED_FLAG]
    assert channel_stack.tracker(conversation)["slots"]["triage_level"] in {"emergency", "urgent"}

    chat.page.reload()
    chat.open_chat()
    chat.bot_messages.nth(1).wait_for()  # rasa-webchat shows the stored conversation again
    shown = [m.inner_text() for m in chat.bot_messages.all()]
    assert len(shown) == 2 and shown[1].startswith(SEEK_CARE_START)
    assert chat.wait_session() == conversation
    assert chat.ask("thank you")
    assert user_texts(channel_stack, conversation, 3) == [QUESTION, RED_FLAG, "thank you"]

    # minimized: a seek-care reply (here to the same conversation typed in another tab) opens the chat
    chat.page.locator(".rw-launcher").click()
    chat.input.wait_for(state="hidden")
    another_tab(channel_stack, conversation, RED_FLAG)
    chat.input.wait_for(timeout=30_000)
    chat.bot_messages.nth(3).wait_for()
    assert chat.bot_messages.nth(3).inner_text().startswith(SEEK_CARE_START)
    assert not [e for e in chat.errors if not e.startswith(("Loading the stylesheet", "Loading the font"))], chat.errors
    context.close()


def test_our_widget_on_the_same_site_keeps_its_alert_card(browser, site):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    chat = ChatPage(context.new_page(), site)
    chat.open_page().open_chat()
    chat.wait_connected()
    chat.ask(RED_FLAG)
    alert = chat.page.get_by_role("alert")
    alert.wait_for()
    assert alert.get_by_role("heading", name="Get help now").is_visible()
    assert SEEK_CARE_START in alert.inner_text()
    context.close()
