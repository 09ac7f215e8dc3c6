"""The website chat on the real running bot, in headless Chromium: answer, seek-care alert, reload.

Saves artifacts/webchat.png (desktop) and artifacts/webchat-375.png (phone width).
"""

from __future__ import annotations

import pytest

from bot.settings import clinic_settings
from tests.channels.browser import ChatPage, axe_violations, chromium, web_server

pytestmark = [pytest.mark.stack, pytest.mark.browser]


@pytest.fixture(scope="module")
def site(channel_stack):
    with web_server(channel_stack.url, port=channel_stack.web_port) as url:  # the site the bot allows
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as running:
        yield running


def session_id(chat: ChatPage) -> str:
    return chat.page.evaluate(
        "() => JSON.parse(localStorage.getItem(Object.keys(localStorage).find(k => k.startsWith('clinicChat'))))"
        ".sessionId"
    )


def test_patient_conversation_in_the_browser(browser, site, channel_stack):
    settings = clinic_settings()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    chat = ChatPage(context.new_page(), site)
    chat.open_page().open_chat()
    chat.wait_connected()
    assert settings.emergency_number in chat.panel.get_by_text("Not for emergencies.").locator("..").inner_text()

    answer = chat.ask("can i drive myself home after the injection?")
    assert "driv" in answer.lower()

    chat.ask("my leg gave out and i cant feel my groin")
    alert = chat.page.get_by_role("alert")
    alert.wait_for()
    assert alert.get_by_role("heading", name="Get help now").or_(alert.get_by_role("heading", name="Call the clinic now")).is_visible()
    assert settings.emergency_number in alert.inner_text()
    chat.screenshot("webchat.png")

    conversation = session_id(chat)
    state = channel_stack.tracker(conversation)
    assert state["slots"]["triage_level"] in {"emergency", "urgent"}
    assert {e["input_channel"] for e in state["events"] if e["event"] == "user"} == {"socketio"}

    chat.page.reload()
    chat.input.wait_for()
    assert "can i drive myself home" in chat.log.inner_text()
    assert "driv" in chat.log.inner_text().lower()
    assert chat.page.get_by_role("alert").count() == 1
    chat.wait_connected()
    assert session_id(chat) == conversation
    assert chat.ask("thank you")  # the same conversation carries on after the reload
    assert len([e for e in channel_stack.tracker(conversation)["events"] if e["event"] == "user"]) == 3
    assert not [e for e in chat.errors if "WebSocket" not in e], chat.errors
    context.close()


def test_phone_width_and_accessibility(browser, site):
    context = browser.new_context(viewport={"width": 375, "height": 740}, bypass_csp=True, is_mobile=True, has_touch=True)
    chat = ChatPage(context.new_page(), site)
    chat.open_page().open_chat()
    chat.wait_connected()
    chat.ask("what happens during the procedure")
    chat.ask("my leg gave out and i cant feel my groin")
    chat.page.get_by_role("alert").wait_for()
    chat.screenshot("webchat-375.png")
    assert chat.page.evaluate("document.documentElement.scrollWidth") <= 375
    assert axe_violations(chat.page) == []
    context.close()
