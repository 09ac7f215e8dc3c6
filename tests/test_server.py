"""The real bot over HTTP: answers, the evaluation contract, bad input, auth, a dead action server, restarts."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest

from bot.devtools.stack import BotStack, http_json
from bot.settings import clinic_settings

pytestmark = pytest.mark.stack


def new_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def test_answers_a_question_from_the_knowledge_base(bot_stack):
    sender = new_id()
    reply = bot_stack.ask(sender, "do i need someone to drive me home after my L5 nerve block?")
    assert "drive" in reply.lower()
    tracker = bot_stack.tracker(sender)
    assert tracker["latest_message"]["intent"]["name"] == "ask_driving"
    assert tracker["slots"]["procedure"] == "lumbar"
    assert tracker["slots"]["last_topic"]
    assert "triage_level" in tracker["slots"] and tracker["slots"]["triage_level"] is None


def test_out_of_scope_is_declined_with_the_clinic_number(bot_stack):
    sender = new_id()
    reply = bot_stack.ask(sender, "how much will my insurance pay for this")
    assert clinic_settings().clinic_phone in reply
    tracker = bot_stack.tracker(sender)
    assert tracker["latest_message"]["intent"]["name"] in {"out_of_scope", "nlu_fallback"}
    assert tracker["slots"]["triage_level"] is None


def test_urgent_symptom_escalates_and_is_kept_on_the_tracker(bot_stack):
    sender = new_id()
    bot_stack.ask(sender, "when can i take the bandage off")
    reply = bot_stack.ask(sender, "i cant feel my groin and i peed myself")
    assert clinic_settings().emergency_number in reply
    tracker = bot_stack.tracker(sender)
    assert tracker["slots"]["triage_level"] == "emergency"
    assert tracker["latest_message"]["intent"]["name"] == "report_urgent_symptom"
    slot_events = [e for e in tracker["events"] if e["event"] == "slot" and e["name"] == "triage_level"]
    assert slot_events and slot_events[-1]["value"] == "emergency"


@pytest.mark.parametrize(
    "text",
    [
        "x" * 10_000,
        "😀😀😀🙏",
        "¿Cuánto tiempo dura la inyección?",
        "这个注射疼吗",
        "<script>alert('hi')</script>",
        "   ",
        "",
    ],
    ids=["10k-chars", "emoji", "spanish", "chinese", "html", "spaces", "empty"],
)
def test_bad_input_gets_a_polite_reply(bot_stack, text):
    messages = bot_stack.send(new_id(), text)
    assert messages and all(m.get("text") for m in messages if "custom" not in m)


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"message": "hi"}', b'{"sender": {"a": 1}, "message": "hi"}', b'{"sender": "a", "message": 5}',
     b'{"sender": "a\\n", "message": "hi"}', b'{"sender": "' + b"a" * 300 + b'", "message": "hi"}'],
    ids=["not-json", "list", "no-sender", "object-sender", "number-message", "newline-sender", "huge-sender"],
)
def test_malformed_requests_get_400(bot_stack, body):
    request = urllib.request.Request(
        f"{bot_stack.url}/webhooks/rest/webhook?token={bot_stack.token}", data=body, method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(request, timeout=10)
        status = 200
    except urllib.error.HTTPError as error:
        status = error.code
        assert "error" in json.loads(error.read())
    assert status == 400


def test_http_api_needs_the_token(bot_stack):
    sender = new_id()
    bot_stack.ask(sender, "hello")
    status, _ = http_json("GET", f"{bot_stack.url}/conversations/{sender}/tracker")
    assert status == 401
    status, _ = http_json("GET", f"{bot_stack.url}/conversations/{sender}/tracker?token=wrong")
    assert status == 401


def test_action_server_down_still_gives_safe_replies_and_escalates(bot_stack):
    bot_stack.stop_actions()
    try:
        sender = new_id()
        reply = bot_stack.ask(sender, "what happens in the recovery room after the injection")
        assert clinic_settings().clinic_phone in reply
        urgent = bot_stack.ask(sender, "my face is swelling up and i cant breathe well")
        assert clinic_settings().emergency_number in urgent
        assert bot_stack.tracker(sender)["slots"]["triage_level"] == "emergency"
    finally:
        bot_stack.start_actions()
    assert "drive" in bot_stack.ask(new_id(), "can i drive myself home after the shot").lower()


def test_conversations_survive_a_restart(tmp_path):
    db = f"sqlite:///{tmp_path / 'tracker.db'}"
    sender = new_id()
    with BotStack(env={"TRACKER_DB_URL": db}, with_actions=False) as first:
        first.ask(sender, "hello there")
    with BotStack(env={"TRACKER_DB_URL": db}, with_actions=False) as second:
        texts = [e.get("text") for e in second.tracker(sender)["events"] if e["event"] == "user"]
        assert "hello there" in texts


def test_urgent_mention_second_escalates_first_then_answers_the_question(bot_stack):
    sender = new_id()
    messages = [m["text"] for m in bot_stack.send(sender, "can i drive home after? btw my chest hurts a lot") if m.get("text")]
    assert clinic_settings().emergency_number in messages[0]  # seek-care comes first
    later = "\n".join(messages[1:])
    assert "About your question:" in later and "drive" in later.lower()
    assert bot_stack.tracker(sender)["slots"]["triage_level"] == "emergency"


def test_any_reasonable_sender_id_is_accepted(bot_stack):
    for sender in ("eval 0001 / batch-2", "user@example.org", "12345"):
        assert bot_stack.send(sender, "hello")
