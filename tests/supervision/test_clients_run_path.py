"""The standard clients on the documented run path (`scripts/run.sh`, as `make run` starts it), default settings.

No WEB_ALLOWED_ORIGINS is set: the web demo's own origin (another port than the bot) is allowed by default.
Our widget keeps its red alert card, rasa-webchat 1.0.1 shows the seek-care text, and `make shell`
(`run.sh shell`) chats with the running bot. Named to run before the fault tests, on a fresh stack.
"""

from __future__ import annotations

import re

import pytest

from bot.settings import clinic_settings
from tests.channels.browser import ChatPage, Webchat, chromium
from tests.channels.terminal import Terminal

pytestmark = [pytest.mark.stack, pytest.mark.browser]

RED_FLAG = "my leg gave out and i cant feel my groin"
SEEK_CARE_START = "This could be serious."


def test_both_widgets_on_the_web_demo_with_the_default_origins(run_stack):
    site = run_stack.web_url + "/"
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        ours = ChatPage(context.new_page(), site)
        ours.open_page().open_chat()
        ours.wait_connected()
        ours.ask(RED_FLAG)
        alert = ours.page.get_by_role("alert")
        alert.wait_for()
        assert alert.get_by_role("heading", name="Get help now").is_visible()

        webchat = Webchat(context.new_page(), site)
        webchat.open().open_chat()
        webchat.wait_session()
        reply = webchat.ask(RED_FLAG)
        assert reply.startswith(SEEK_CARE_START) and clinic_settings().emergency_number in reply
        context.close()


def test_make_shell_on_the_run_path(run_stack):
    terminal = Terminal(["bash", "scripts/run.sh", "shell"], run_stack.environment())
    terminal.wait_for("Your input ->")
    conversation = re.search(r"Conversation (shell-[0-9a-f]+)", terminal.screen).group(1)
    after = terminal.type(RED_FLAG)
    terminal.wait_for(SEEK_CARE_START, after)
    terminal.type("/stop")
    assert terminal.finish() == 0
    users = [e for e in run_stack_tracker(run_stack, conversation) if e["event"] == "user"]
    assert [e["text"] for e in users] == [RED_FLAG]


def run_stack_tracker(stack, conversation: str) -> list[dict]:
    from bot.devtools.stack import http_json, wait_until

    def events() -> list[dict]:
        status, body = http_json("GET", f"{stack.url}/conversations/{conversation}/tracker?token={stack.token}")
        return body["events"] if status == 200 else []

    wait_until(lambda: any(e["event"] == "user" for e in events()), 30, "the shell's message in the tracker")
    return events()
