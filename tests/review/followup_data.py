"""Conversations the follow-up and learning tests add to the scripted ones (tests/review/conversations.py).

They are written as rows of Rasa's `events` table, in the shape SQLTrackerStore stores them (the columns
and the JSON `data` of `user`, `bot` and `slot` events), so a test can also add a turn to a conversation
that is already stored (a second escalation after the first was resolved).
"""

from __future__ import annotations

import json
import time

import sqlalchemy as sa

# sender -> what makes it need follow-up
CHECK_SENDER = "+15559870001"  # a symptom check-in (flagged), on SMS
UNANSWERED_SENDER = "web-unanswered-last"  # the last message was declined, on web chat
NO_REPLY_SENDER = "rest-no-reply"  # the last message got no reply at all (10 minutes ago)
IN_FLIGHT_SENDER = "rest-in-flight"  # no reply yet, but sent seconds ago: not queued
UNSURE_TEXT = "can my wife drive me or does it have to be a taxi"
DECLINED_TEXT = "do you validate parking at the clinic garage"


def user_row(sender: str, text: str, intent: str, at: float, channel: str, confidence: float = 0.9) -> dict:
    parse = {"intent": {"name": intent, "confidence": confidence}, "entities": [], "text": text}
    data = {"event": "user", "timestamp": at, "text": text, "parse_data": parse, "input_channel": channel,
            "metadata": {}}
    return {"sender_id": sender, "type_name": "user", "timestamp": at, "intent_name": intent, "action_name": None,
            "data": json.dumps(data)}


def bot_row(sender: str, text: str, at: float, custom: dict | None = None) -> dict:
    data = {"event": "bot", "timestamp": at, "text": text, "data": {"custom": custom} if custom else {},
            "metadata": {}}
    return {"sender_id": sender, "type_name": "bot", "timestamp": at, "intent_name": None, "action_name": None,
            "data": json.dumps(data)}


def slot_row(sender: str, name: str, value, at: float) -> dict:
    data = {"event": "slot", "timestamp": at, "name": name, "value": value}
    return {"sender_id": sender, "type_name": "slot", "timestamp": at, "intent_name": None, "action_name": name,
            "data": json.dumps(data)}


def insert(url: str, rows: list[dict]) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for row in rows:  # one by one, so ids follow the order given
            connection.execute(sa.text(
                "INSERT INTO events (sender_id, type_name, timestamp, intent_name, action_name, data) "
                "VALUES (:sender_id, :type_name, :timestamp, :intent_name, :action_name, :data)"), row)
    engine.dispose()


def add_followup_conversations(url: str, now: float | None = None) -> None:
    """The check-in, the declined last message, the unreplied one and the one still in flight."""
    now = time.time() if now is None else now
    rows = [
        user_row(CHECK_SENDER, "my foot feels a bit tingly today", "check_symptom", now - 3 * 3600, "sms", 0.8),
        bot_row(CHECK_SENDER, "Thanks for telling us. Please call the clinic if it gets worse.", now - 3 * 3600 + 1,
                {"kind": "symptom_check"}),
        user_row(UNANSWERED_SENDER, UNSURE_TEXT, "ask_driving", now - 2 * 3600, "socketio", 0.41),
        bot_row(UNANSWERED_SENDER, "You need a ride home.", now - 2 * 3600 + 1),
        user_row(UNANSWERED_SENDER, DECLINED_TEXT, "out_of_scope", now - 2 * 3600 + 30, "socketio", 0.77),
        bot_row(UNANSWERED_SENDER, "Sorry, I can only answer questions about your injection.", now - 2 * 3600 + 31),
        user_row(NO_REPLY_SENDER, "hello? is anyone there", "greet", now - 600, "rest", 0.6),
        user_row(IN_FLIGHT_SENDER, "what time should i arrive", "ask_appointment", now - 5, "rest", 0.9),
    ]
    insert(url, rows)


def escalate_again(url: str, sender: str, level: str = "urgent", now: float | None = None) -> None:
    """A new red-flag message in an existing conversation (after staff resolved the first one)."""
    now = time.time() if now is None else now
    insert(url, [
        user_row(sender, "now the pain is much worse and i have a fever", "report_urgent_symptom", now, "sms", 0.99),
        slot_row(sender, "triage_level", level, now),
        bot_row(sender, "Please call the clinic today.", now + 1, {"kind": "seek_care", "level": level}),
    ])
