"""`make shell`: Rasa's console (rasa.core.channels.console, what `rasa shell` runs) against the running bot.

Driven in a real pseudo-terminal, as a person types, through `scripts/run.sh shell` (what `make shell` runs)
with the token `make run` saves in VAR_DIR; the console posts to the guarded REST channel with
`?stream=true&token=...` and prints the streamed replies.
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.request

import pytest

from bot.devtools.stack import ROOT, free_port
from bot.settings import clinic_settings
from tests.channels.terminal import Terminal

QUESTION = "can i drive myself home after the injection?"
RED_FLAG = "my leg gave out and i cant feel my groin"


def run_sh_shell(stack, var_dir, **env: str) -> Terminal:
    """`scripts/run.sh shell` (= `make shell`) for a bot on the stack's port, with the stack's settings."""
    return Terminal(
        ["bash", str(ROOT / "scripts" / "run.sh"), "shell"],
        {"RASA_PORT": str(stack.rasa_port), "VAR_DIR": str(var_dir), "RASA_AUTH_TOKEN": "", **env},
    )


@pytest.mark.stack
def test_make_shell_chats_with_the_running_bot(channel_stack, tmp_path):
    (tmp_path / "rasa_auth_token").write_text(channel_stack.token + "\n")  # as `make run` saves it
    terminal = run_sh_shell(channel_stack, tmp_path)
    terminal.wait_for("Your input ->")
    conversation = re.search(r"Conversation (shell-[0-9a-f]+)", terminal.screen).group(1)

    after = terminal.type(QUESTION)
    terminal.wait_for("Plan your ride home", after)  # the answer, streamed back
    after = terminal.wait_for("Your input ->", after + len(QUESTION))

    after = terminal.type(RED_FLAG)
    seek_care = terminal.wait_for("This could be serious.", after)
    assert clinic_settings().emergency_number in terminal.screen[seek_care:]
    terminal.wait_for("Your input ->", seek_care)

    terminal.type("/stop")
    assert terminal.finish() == 0

    events = channel_stack.tracker(conversation)["events"]
    users = [e for e in events if e["event"] == "user"]
    assert [e["text"] for e in users] == [QUESTION, RED_FLAG]
    assert {e["input_channel"] for e in users} == {"rest"}  # the guarded REST channel, not a second server


@pytest.mark.stack
def test_the_rest_channel_streams_one_json_message_a_line(channel_stack):
    """What the console reads with ?stream=true: one JSON message a line, the seek-care marker included."""
    request = urllib.request.Request(
        f"{channel_stack.url}/webhooks/rest/webhook?stream=true&token={channel_stack.token}",
        data=json.dumps({"sender": f"stream-{time.time_ns()}", "message": RED_FLAG}).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 200
        lines = [line for line in reply.read().decode().splitlines() if line.strip()]
    messages = [json.loads(line) for line in lines]
    assert messages[0]["text"].startswith("This could be serious.")
    assert any((m.get("custom") or {}).get("kind") == "seek_care" for m in messages)


@pytest.mark.stack
def test_a_wrong_token_is_refused_with_a_clear_message(channel_stack, tmp_path):
    terminal = run_sh_shell(channel_stack, tmp_path, RASA_AUTH_TOKEN="not-the-token")
    assert terminal.finish() == 1
    assert "refused the token (403)" in terminal.screen


def test_without_a_running_bot_it_says_to_start_one(tmp_path):
    (tmp_path / "rasa_auth_token").write_text("some-token\n")
    terminal = Terminal(
        [sys.executable, "-m", "bot.console", "--server", f"http://127.0.0.1:{free_port()}"],
        {"VAR_DIR": str(tmp_path), "RASA_AUTH_TOKEN": "", "PYTHONPATH": str(ROOT)},
    )
    assert terminal.finish() == 1
    assert "start it with `make run`" in terminal.screen
