"""Aggregated SQL over the tracker store: list, filters, pagination, transcript, dashboard, read-only access."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from bot.review.dashboard import group_questions
from bot.review.db import tracker_engine
from bot.review.filters import Filters
from bot.review.store import ConversationStore
from tests.review.conftest import FILL
from tests.review.conversations import SCRIPT_TAG, by_key

UTC = timezone.utc


@pytest.fixture
def store(tracker_url):
    store = ConversationStore(tracker_engine(tracker_url), UTC)
    yield store
    store.engine.dispose()


def senders(page) -> list[str]:
    return [row.sender_id for row in page.rows]


def test_list_is_newest_first_with_counts_matching_the_events(store, facts):
    page = store.list_conversations(Filters())
    assert page.total == 4
    assert senders(page) == [by_key(k).sender_id for k in ("rest_unanswered", "web_urgent_xss", "sms_emergency", "sms_old")]
    for row in page.rows:
        fact = facts[row.sender_id]
        assert row.patient_turns == fact["turns"]
        assert row.unanswered == fact["unanswered"]
        assert row.emergency == ("emergency" in fact["levels"])
        assert row.urgent == ("urgent" in fact["levels"])
        assert row.channel == fact["channel"]
        assert row.started <= row.last_activity


def test_the_scripted_conversations_are_flagged_as_a_person_would_expect(store):
    rows = {row.sender_id: row for row in store.list_conversations(Filters()).rows}
    emergency = rows[by_key("sms_emergency").sender_id]
    assert emergency.escalation == "emergency" and emergency.channel == "sms" and emergency.patient_turns == 3
    assert rows[by_key("web_urgent_xss").sender_id].escalation == "urgent"
    assert rows[by_key("web_urgent_xss").sender_id].channel == "socketio"
    assert rows[by_key("rest_unanswered").sender_id].unanswered >= 1
    assert rows[by_key("sms_old").sender_id].escalation is None


@pytest.mark.parametrize("values, keys", [
    ({"escalated": "any"}, ["web_urgent_xss", "sms_emergency"]),
    ({"escalated": "emergency"}, ["sms_emergency"]),
    ({"escalated": "urgent"}, ["web_urgent_xss"]),
    ({"channel": "sms"}, ["sms_emergency", "sms_old"]),
    ({"channel": "web"}, ["web_urgent_xss"]),
    ({"channel": "rest"}, ["rest_unanswered"]),
    ({"q": "ASPIRIN"}, ["rest_unanswered"]),
    ({"q": "<script>"}, ["web_urgent_xss"]),
    ({"q": "groin", "channel": "sms", "escalated": "emergency"}, ["sms_emergency"]),
    ({"q": "100%_"}, []),
])
def test_filters(store, values, keys):
    page = store.list_conversations(Filters.parse(values)[0])
    assert senders(page) == [by_key(k).sender_id for k in keys]
    assert page.total == len(keys)


def test_unanswered_filter_matches_the_fallback_intents(store, facts):
    page = store.list_conversations(Filters(unanswered=True))
    assert set(senders(page)) == {sender for sender, fact in facts.items() if fact["unanswered"]}
    assert by_key("rest_unanswered").sender_id in senders(page)


def test_date_range_selects_conversations_active_in_it(store):
    today = datetime.now(UTC).date()
    recent = store.list_conversations(Filters(date_from=today - timedelta(days=3)))
    assert by_key("sms_old").sender_id not in senders(recent) and recent.total == 3
    old = store.list_conversations(Filters(date_to=today - timedelta(days=30)))
    assert senders(old) == [by_key("sms_old").sender_id]
    one_day = store.list_conversations(Filters(date_from=today - timedelta(days=2), date_to=today - timedelta(days=2)))
    assert senders(one_day) == [by_key("sms_emergency").sender_id]


def test_bad_filter_values_are_reported_and_ignored():
    filters, problems = Filters.parse({"from": "yesterday", "channel": "fax", "escalated": "maybe", "q": "x" * 500})
    assert filters.date_from is None and filters.channel is None and filters.escalated is None
    assert len(filters.search) == 200 and len(problems) == 4


def test_pagination(store):
    first = store.list_conversations(Filters(), page=1, per_page=3)
    second = store.list_conversations(Filters(), page=2, per_page=3)
    assert first.total == second.total == 4 and first.pages == 2
    assert len(first.rows) == 3 and len(second.rows) == 1
    assert set(senders(first)).isdisjoint(senders(second))
    beyond = store.list_conversations(Filters(), page=9, per_page=3)
    assert beyond.rows == [] and beyond.total == 4


def test_transcript_has_turns_intents_topics_and_escalation(store, facts):
    sender = by_key("sms_emergency").sender_id
    transcript = store.transcript(sender)
    patient = [t for t in transcript.turns if t.kind == "patient"]
    bot = [t for t in transcript.turns if t.kind == "bot"]
    assert [t.text for t in patient] == [m.text for m in by_key("sms_emergency").messages]
    assert all(t.intent and t.confidence is not None and 0 <= t.confidence <= 1 for t in patient)
    assert bot and all(t.text for t in bot)
    assert patient[-1].escalation == "emergency"
    assert transcript.escalation == "emergency"
    assert [t.topic for t in patient if t.topic] == facts[sender]["topics"]
    # the bot's reply to the escalated message is part of the highlighted exchange
    escalated_replies = [t for t in bot if t.exchange == patient[-1].exchange]
    assert escalated_replies and all(t.escalation == "emergency" for t in escalated_replies)
    assert all(t.escalation is None for t in patient[:-1])
    if FILL == "code":
        assert patient[1].topic == "what_is" and patient[1].intent == "ask_what_is"


def test_transcript_keeps_patient_text_verbatim(store):
    transcript = store.transcript(by_key("web_urgent_xss").sender_id)
    assert any(SCRIPT_TAG in t.text for t in transcript.turns if t.kind == "patient")


def test_refs_resolve_to_senders(store):
    for row in store.list_conversations(Filters()).rows:
        assert store.sender_for_ref(row.ref) == row.sender_id
        assert store.ref_for_sender(row.sender_id) == row.ref
    later_event = store.list_conversations(Filters()).rows[0].ref + 1
    assert store.sender_for_ref(later_event) is None  # only a conversation's first event is a reference
    assert store.transcript("nobody") is None


def test_dashboard(store, facts):
    today = datetime.now(UTC).date()
    dashboard = store.dashboard(today - timedelta(days=29), today)
    assert len(dashboard.days) == 30
    assert dashboard.total_conversations == 3  # sms_old started 45 days ago
    assert dashboard.conversations.get(today - timedelta(days=2)) == 1
    recent = [s for s, c in ((by_key(k).sender_id, by_key(k)) for k in ("sms_emergency", "web_urgent_xss", "rest_unanswered"))]
    assert dashboard.total_patient_messages == sum(facts[s]["turns"] for s in recent)
    assert dashboard.total_unanswered == sum(facts[s]["unanswered"] for s in recent)
    assert dashboard.fallback_rate == pytest.approx(dashboard.total_unanswered / dashboard.total_patient_messages)
    assert dashboard.escalations[today - timedelta(days=2)] == {"emergency": 1}
    assert dashboard.escalations[today - timedelta(days=1)] == {"urgent": 1}
    expected_topics: dict[str, int] = {}
    for sender in recent:
        for topic in facts[sender]["topics"]:
            expected_topics[topic] = expected_topics.get(topic, 0) + 1
    assert dict(dashboard.top_topics) == expected_topics  # one answer counts once
    if FILL == "code":
        mars = dashboard.unanswered_groups[0]
        assert mars.count == 2 and "mars" in mars.text


def test_dashboard_of_an_empty_period(store):
    dashboard = store.dashboard(date(2001, 1, 1), date(2001, 1, 31))
    assert dashboard.total_conversations == 0 and dashboard.fallback_rate is None and dashboard.unanswered_groups == []


def test_near_duplicate_questions_are_grouped():
    groups = group_questions([
        "What's the weather on Mars?", "whats the weather on mars", "What is the weather on Mars",
        "Can my dog come with me?", "can my dog come with me", "Who won the game last night?",
    ])
    assert [g.count for g in groups] == [3, 2, 1]
    assert "mars" in groups[0].text.lower() and len(groups[0].variants) == 2


def test_the_tracker_store_is_opened_read_only(store, tracker_url):
    with pytest.raises(sa.exc.DBAPIError) as error:
        with store.engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM events"))
    assert "read" in str(error.value).lower()  # "attempt to write a readonly database" / "read-only transaction"
    with pytest.raises(sa.exc.DBAPIError):
        with store.engine.begin() as connection:
            connection.execute(sa.text("CREATE TABLE sneaky (id integer)"))
    assert store.count_conversations(Filters()) == 4


def test_a_missing_store_reads_as_empty(tmp_path):
    store = ConversationStore(tracker_engine(f"sqlite:///{tmp_path / 'none.db'}"), UTC)
    assert store.list_conversations(Filters()).total == 0
    assert store.transcript("x") is None
    assert not (tmp_path / "none.db").exists()  # read-only: never created
