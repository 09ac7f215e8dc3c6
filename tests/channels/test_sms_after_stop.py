"""After STOP: no reply (carriers require it), but the message is stored, triaged and shown to staff.

Signed Twilio-format requests against the real bot; the staff review app reads the same tracker database.
"""

from __future__ import annotations

import re

import pytest

from bot.devtools.twilio_requests import new_phone, post_sms, twilio_params
from bot.vocabulary import SMS_OPTED_OUT_KEY

pytestmark = pytest.mark.stack

RED_FLAG = "i cant feel my legs and i cant pee since this morning"


def user_events(stack, phone: str) -> list[dict]:
    return [event for event in stack.tracker(phone)["events"] if event["event"] == "user"]


def test_a_red_flag_after_stop_gets_no_reply_but_is_recorded_and_flagged(channel_stack, tmp_path, monkeypatch):
    phone = new_phone()
    url = channel_stack.sms_url
    assert post_sms(url, twilio_params(phone, "hi")).messages
    assert post_sms(url, twilio_params(phone, "STOP")).messages  # the one confirmation carriers allow
    after = post_sms(url, twilio_params(phone, RED_FLAG))
    assert after.status == 200 and after.messages == []  # silence, as carriers require

    events = user_events(channel_stack, phone)
    assert [event["text"] for event in events] == ["hi", RED_FLAG]  # keywords never reach the bot
    assert events[1]["metadata"].get(SMS_OPTED_OUT_KEY) is True and events[1]["input_channel"] == "sms"
    assert not (events[0].get("metadata") or {}).get(SMS_OPTED_OUT_KEY)
    assert channel_stack.tracker(phone)["slots"]["triage_level"] in {"emergency", "urgent"}

    # staff see it in the review app: in the escalation filter, with a note that nothing was sent
    from bot.review import auth
    from bot.review.app import create_app
    from tests.review.conftest import PASSWORD, USERNAME, login

    monkeypatch.setenv("REVIEW_COOKIE_SECURE", "0")
    monkeypatch.setenv("REVIEW_TIMEZONE", "UTC")
    app = create_app(channel_stack.env["TRACKER_DB_URL"], f"sqlite:///{tmp_path / 'review.db'}",
                     SECRET_KEY="stop-test-" + "x" * 40)
    auth.create_user(app.extensions["review"].review_db, USERNAME, PASSWORD)
    client = app.test_client()
    assert login(client).status_code == 302
    listing = client.get("/conversations?escalated=any&channel=sms").get_data(as_text=True)
    masked = phone[:2] + "•••••" + phone[-4:]
    match = re.search(r'href="/conversations/(\d+)[^"]*">' + re.escape(masked) + "<", listing)
    assert match, "the conversation is not in the escalation filter"
    page = client.get(f"/conversations/{match.group(1)}").get_data(as_text=True)
    assert "cant feel my legs" in page.replace("&#39;", "'")
    assert "texted STOP" in page and "Not sent (the patient had opted out" in page
    export = client.get(f"/conversations/{match.group(1)}/export?format=json").get_json()
    patient = [turn for turn in export["turns"] if turn["speaker"] == "patient"]
    assert patient[-1]["escalation"] in {"emergency", "urgent"} and "STOP" in patient[-1]["note"]
    app.extensions["review"].store.engine.dispose()
    app.extensions["review"].review_db.dispose()


def test_after_start_the_patient_is_answered_again(channel_stack):
    phone = new_phone()
    url = channel_stack.sms_url
    post_sms(url, twilio_params(phone, "STOP"))
    assert post_sms(url, twilio_params(phone, "will the injection hurt")).messages == []
    assert post_sms(url, twilio_params(phone, "START")).messages
    assert post_sms(url, twilio_params(phone, "will the injection hurt")).messages
    events = user_events(channel_stack, phone)
    assert [bool((event.get("metadata") or {}).get(SMS_OPTED_OUT_KEY)) for event in events] == [True, False]
