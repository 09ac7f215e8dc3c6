"""How a transcript shows staff messages, takeovers and the answers a takeover held back (unit tier).

Rows are written as the bot stores them (Rasa event dicts, as bot.review.replies and the guard produce them);
the running-bot view of the same is in test_replies.py.
"""

from __future__ import annotations

import json
import time
from collections import namedtuple
from datetime import timezone

import pytest
import sqlalchemy as sa

from bot import config
from bot.config import ConfigError
from bot.review.events import EventsTable
from bot.review.exports import transcript_records
from bot.review.replies import handback_events, staff_message, takeover_events
from bot.review.transcript import WITHHELD_NOTE, build_transcript
from bot.vocabulary import STAFF_REPLY_KIND

Row = namedtuple("Row", "id type_name timestamp intent_name action_name data")


def rows_of(events: list[dict]) -> list[Row]:
    rows = []
    for number, event in enumerate(events, start=1):
        kind = event["event"]
        intent = (event.get("parse_data") or {}).get("intent", {}).get("name")
        rows.append(Row(number, kind, event["timestamp"], intent, event.get("name"), json.dumps(event)))
    return rows


def patient(text: str, at: float) -> dict:
    return {"event": "user", "text": text, "timestamp": at, "input_channel": "sms",
            "parse_data": {"intent": {"name": "ask_pain_during", "confidence": 0.9}}}


def bot(text: str, at: float, **metadata: object) -> dict:
    return {"event": "bot", "text": text, "timestamp": at, "data": {}, "metadata": dict(metadata)}


def at(event: dict, when: float) -> dict:
    return {**event, "timestamp": when}


def test_staff_turns_takeover_markers_and_withheld_answers():
    now = time.time()
    taken, notice = takeover_events("nurse.kim", 60)
    handed, back_notice = handback_events("nurse.kim")
    events = [
        patient("will it hurt?", now - 50), bot("Most people feel pressure.", now - 49, utter_action="utter_x"),
        at(taken, now - 40), at(notice, now - 40),
        patient("will it hurt?", now - 30), bot("Most people feel pressure.", now - 29),  # held back
        patient("i cant feel my legs", now - 20),
        bot("Call 911 now.", now - 19, utter_action="utter_seek_care_emergency"),  # SMS wording: no marker
        at(staff_message("We are calling you.", STAFF_REPLY_KIND, "nurse.kim"), now - 15),
        bot("Reminder: your injection is tomorrow.", now - 12, outreach={"kind": "reminder"}),  # sent by the worker
        at(handed, now - 10), at(back_notice, now - 10),
        patient("will it hurt?", now - 5), bot("Most people feel pressure.", now - 4),
    ]
    engine = sa.create_engine("sqlite://")
    transcript = build_transcript(EventsTable(engine, timezone.utc), "+15551234567", rows_of(events))
    shown = [(turn.kind, turn.text, turn.note) for turn in transcript.turns]
    assert shown == [
        ("patient", "will it hurt?", None),
        ("bot", "Most people feel pressure.", None),
        ("takeover", "", "nurse.kim took over from the assistant"),
        ("staff", notice["text"], "Sent by staff: nurse.kim"),
        ("patient", "will it hurt?", None),
        ("bot", "Most people feel pressure.", WITHHELD_NOTE),
        ("patient", "i cant feel my legs", None),
        ("bot", "Call 911 now.", None),
        ("staff", "We are calling you.", "Sent by staff: nurse.kim"),
        ("bot", "Reminder: your injection is tomorrow.", None),
        ("takeover", "", "Handed back to the assistant"),
        ("staff", back_notice["text"], "Sent by staff: nurse.kim"),
        ("patient", "will it hurt?", None),
        ("bot", "Most people feel pressure.", None),
    ]
    assert transcript.takeover is None  # handed back
    speakers = [record["speaker"] for record in transcript_records(transcript)]
    assert speakers.count("staff") == 3 and speakers.count("takeover") == 2


@pytest.mark.parametrize("raw, minutes", [("", 60.0), ("30", 30.0), ("720", 720.0), ("0", None), ("721", None),
                                          ("soon", None), ("nan", None)])
def test_takeover_minutes_setting(monkeypatch, raw, minutes):
    monkeypatch.setenv("STAFF_TAKEOVER_MINUTES", raw)
    if minutes is None:
        with pytest.raises(ConfigError, match="STAFF_TAKEOVER_MINUTES"):
            config.staff_takeover_minutes()
    else:
        assert config.staff_takeover_minutes() == minutes
