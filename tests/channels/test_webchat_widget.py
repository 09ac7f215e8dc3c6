"""The website chat widget in headless Chromium against the socket.io channel with a stand-in bot.

Runs without a trained model; tests/channels/test_webchat.py does the same against the real bot.
"""

from __future__ import annotations

import pytest

from bot.channels.socketio import ClinicSocketIOInput
from bot.devtools.stack import free_port
from bot.settings import clinic_settings
from tests.channels.browser import ChatPage, axe_violations, chromium, web_origin, web_server
from tests.channels.fake_bot import FakeBot
from tests.channels.local_server import LocalChannelServer

pytestmark = pytest.mark.browser


def channel(web_port: int) -> ClinicSocketIOInput:
    """The website chat channel, accepting pages from the web server on `web_port` only."""
    return ClinicSocketIOInput.from_credentials(
        {"user_message_evt": "user_uttered", "bot_message_evt": "bot_uttered", "session_persistence": True,
         "cors_allowed_origins": [web_origin(web_port)]}
    )


@pytest.fixture(scope="module")
def web_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def bot_server(web_port):
    bot = FakeBot()
    with LocalChannelServer(channel(web_port), bot) as server:
        server.bot = bot
        yield server


@pytest.fixture(scope="module")
def site(bot_server, web_port):
    with web_server(bot_server.url, port=web_port) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as running:
        yield running


@pytest.fixture()
def chat(browser, site):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = ChatPage(context.new_page(), site)
    yield page
    context.close()
    assert not [e for e in page.errors if "WebSocket" not in e], page.errors


def test_question_answer_seek_care_and_reload(chat, bot_server):
    settings = clinic_settings()
    chat.open_page().open_chat()
    chat.wait_connected()
    note = chat.panel.get_by_text("Not for emergencies.")
    assert note.is_visible() and settings.emergency_number in note.locator("..").inner_text()

    answer = chat.ask("can i drive home")
    assert "drive you home" in answer
    bullets = chat.log.locator(".cc-bot li")
    assert bullets.count() == 2 and bullets.first.inner_text() == "arrange your driver"

    chat.ask("my leg gave out and i cant feel my groin")
    alert = chat.page.get_by_role("alert")
    alert.wait_for()
    assert alert.get_by_role("heading", name="Get help now").is_visible()
    assert "call 911" in alert.inner_text().lower()
    assert alert.get_by_role("link", name=f"Call {settings.emergency_number}").get_attribute("href") == "tel:911"

    chat.page.reload()
    chat.input.wait_for()  # the chat stays open after a reload
    assert "drive you home" in chat.log.inner_text()
    assert chat.page.get_by_role("alert").get_by_role("heading", name="Get help now").is_visible()
    chat.wait_connected()
    chat.ask("hello again")
    senders = {m.sender_id for m in bot_server.bot.received[-3:]}
    assert len(senders) == 1  # the same conversation continued after the reload


def test_bot_text_is_never_html(chat):
    chat.open_page().open_chat()
    chat.wait_connected()
    chat.ask("<b>bold</b>")
    last = chat.bot_messages().last
    assert "<img src=x onerror=alert(1)>" in last.inner_text()
    assert last.locator("img").count() == 0 and chat.log.locator("b").count() == 0


def test_keyboard_only(chat):
    chat.open_page()
    launcher = chat.page.get_by_role("button", name="Ask a question")
    assert launcher.get_attribute("aria-expanded") == "false"
    launcher.focus()
    chat.page.keyboard.press("Enter")
    assert chat.input.evaluate("el => el.getRootNode().activeElement === el")
    chat.wait_connected()
    chat.page.keyboard.type("can i drive home")
    chat.page.keyboard.press("Enter")
    chat.bot_messages().first.wait_for()
    chat.page.keyboard.press("Escape")
    assert chat.panel.is_hidden()
    assert launcher.evaluate("el => el.getRootNode().activeElement === el")
    assert launcher.get_attribute("aria-expanded") == "false"


def test_reconnects_after_a_server_restart(browser):
    bot = FakeBot()
    web_port = free_port()
    first = LocalChannelServer(channel(web_port), bot)
    port = first.port
    with web_server(first.url, port=web_port) as site:
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        chat = ChatPage(context.new_page(), site)
        with first:
            chat.open_page().open_chat()
            chat.wait_connected()
            chat.ask("hello")
        chat.page.get_by_text("Connection lost").or_(chat.page.get_by_text("Can't reach")).first.wait_for()
        chat.input.fill("are you back")
        chat.input.press("Enter")  # queued while the server is down
        with LocalChannelServer(channel(web_port), bot, port=port):
            chat.wait_connected(timeout_ms=20_000)
            chat.bot_messages().nth(1).wait_for(timeout=20_000)
            assert "are you back" in chat.bot_messages().nth(1).inner_text()
            assert len({m.sender_id for m in bot.received}) == 1
        context.close()


def test_screenshots_and_accessibility(browser, site):
    for name, viewport in [("webchat-fake.png", {"width": 1280, "height": 860}), ("webchat-fake-375.png", {"width": 375, "height": 740})]:
        context = browser.new_context(viewport=viewport, bypass_csp=True)  # bypass only to inject axe-core
        chat = ChatPage(context.new_page(), site)
        chat.open_page().open_chat()
        chat.wait_connected()
        chat.ask("can i drive home")
        chat.ask("my leg gave out and i cant feel my groin")
        chat.screenshot(name)
        width = chat.page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"], f"horizontal scroll at {viewport['width']}px"
        assert axe_violations(chat.page) == []
        context.close()


def test_a_page_from_another_site_cannot_chat(browser, bot_server):
    """The same widget served from a site the channel does not allow never connects."""
    with web_server(bot_server.url) as other_site:  # another port: another origin
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        chat = ChatPage(context.new_page(), other_site)
        received = len(bot_server.bot.received)
        chat.open_page().open_chat()
        chat.page.get_by_text("Can't reach").first.wait_for(timeout=20_000)
        assert chat.page.locator("#clinic-chat-widget[data-connected='true']").count() == 0
        assert len(bot_server.bot.received) == received
        context.close()


def test_a_seek_care_reply_opens_a_minimized_chat(chat, bot_server):
    chat.open_page().open_chat()
    chat.wait_connected()
    bot_server.bot.delay_s = 1.0
    try:
        chat.input.fill("my leg gave out and i cant feel my groin")
        chat.input.press("Enter")
        chat.page.keyboard.press("Escape")
        assert chat.panel.is_hidden()
        chat.page.get_by_role("alert").wait_for(timeout=30_000)  # the guard may answer first (0.8 s + its NLG load)
        assert chat.panel.is_visible()
    finally:
        bot_server.bot.delay_s = 0.0
