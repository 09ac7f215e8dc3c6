"""Custom actions, run directly with CollectingDispatcher and Tracker.from_dict (as in rasa-demo)."""

from __future__ import annotations

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.actions import ActionAnswerAfterTriage, ActionAnswerTopic, ActionFallbackAnswer
from bot.knowledge import knowledge_base
from bot.settings import clinic_settings


def make_tracker(intent: str, text: str = "question", slots: dict | None = None, channel: str = "rest") -> Tracker:
    return Tracker.from_dict(
        {
            "sender_id": "test-patient",
            "slots": slots or {},
            "latest_message": {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": []},
            "events": [{"event": "user", "text": text, "input_channel": channel, "parse_data": {"intent": {"name": intent}}}],
            "latest_input_channel": channel,
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
        }
    )


def run(action, tracker: Tracker) -> tuple[list[str], list]:
    """The texts sent (a domain response appears by its name) and the events returned."""
    messages, events = run_with_messages(action, tracker)
    return [m.get("text") or m.get("response") for m in messages], events


def run_with_messages(action, tracker: Tracker) -> tuple[list[dict], list]:
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, tracker, {})
    return dispatcher.messages, events


@pytest.mark.parametrize("entry", knowledge_base().entries, ids=lambda e: e.id)
def test_every_topic_is_answered_from_its_entry(entry):
    intent = entry.intents[0]
    texts, events = run(ActionAnswerTopic(), make_tracker(intent))
    assert len(texts) == 1 and texts[0]
    assert events == [SlotSet("last_topic", entry.id)]
    expected = entry.answers["general"].web if "general" in entry.answers else entry.answers["lumbar"].web
    first_sentence = expected.split(".")[0].split("{")[0]
    assert first_sentence[:30] in texts[0]
    assert "{clinic" not in texts[0]


def test_known_procedure_gets_its_own_variant():
    entry = next(e for e in knowledge_base().entries if e.differs_by_procedure)
    lumbar, _ = run(ActionAnswerTopic(), make_tracker(entry.intents[0], slots={"procedure": "lumbar"}))
    cervical, _ = run(ActionAnswerTopic(), make_tracker(entry.intents[0], slots={"procedure": "cervical"}))
    assert lumbar != cervical
    assert "neck" in cervical[0].lower()


def test_unknown_procedure_on_the_web_gets_both_and_on_sms_a_question():
    entry = next(e for e in knowledge_base().entries if e.differs_by_procedure and "general" not in e.answers)
    web, _ = run(ActionAnswerTopic(), make_tracker(entry.intents[0]))
    assert "Lower back (lumbar)" in web[0] and "Neck (cervical)" in web[0]
    sms, events = run(ActionAnswerTopic(), make_tracker(entry.intents[0], channel="sms"))
    assert "lower back" in sms[0].lower() and "neck" in sms[0].lower() and sms[0].endswith("NECK.")
    assert events == [SlotSet("last_topic", entry.id)]  # the reply "neck" re-answers this topic


@pytest.mark.parametrize("intent", ["ask_when_to_call", "ask_risks"])
def test_safety_topics_are_sent_at_once_on_sms_without_asking_which_injection(intent):
    sms, _ = run(ActionAnswerTopic(), make_tracker(intent, channel="sms"))
    assert "LOWER BACK or NECK" not in sms[0]
    assert clinic_settings().emergency_number in sms[0] and len(sms[0]) <= 320


def test_the_after_the_shot_warning_signs_match_the_triage_rules():
    """Each emergency sign of the triage rules has its plain words in the warning-signs answer."""
    text = knowledge_base().entry_for_intent("ask_when_to_call").answers["general"].web.lower()
    for words in (["much worse"], ["weakness"], ["numbness"], ["groin"], ["pee"], ["headache"], ["breathing"],
                  ["chest pain"], ["faint"], ["slurred"], ["seeing"], ["bleeds"], ["fever"], ["swollen"]):
        assert any(word in text for word in words), words


def test_sms_gets_the_short_form():
    entry = next(e for e in knowledge_base().entries if "general" in e.answers and e.answers["general"].sms != e.answers["general"].web)
    sms, _ = run(ActionAnswerTopic(), make_tracker(entry.intents[0], channel="sms"))
    assert len(sms[0]) <= 320


def test_follow_up_re_answers_last_topic_for_the_other_procedure():
    entry = next(e for e in knowledge_base().entries if e.differs_by_procedure)
    texts, events = run(
        ActionAnswerTopic(),
        make_tracker("inform_procedure", "what about the neck one?", slots={"procedure": "cervical", "last_topic": entry.id}),
    )
    cervical_start = entry.answers["cervical"].web.split(".")[0].split("{")[0]
    assert cervical_start in texts[0]
    assert events == [SlotSet("last_topic", entry.id)]


def test_follow_up_on_an_answer_from_both_leaflets_says_it_is_the_same():
    entry = next(e for e in knowledge_base().entries
                 if not e.differs_by_procedure and e.leaflets == {"lumbar", "cervical"})
    messages, _ = run_with_messages(
        ActionAnswerTopic(),
        make_tracker("inform_procedure", "and for cervical?", slots={"procedure": "cervical", "last_topic": entry.id}),
    )
    assert messages[0]["response"] == "utter_same_for_procedure"
    assert messages[0]["procedure_label"] == "neck (cervical)"
    assert entry.answers["general"].web[:30] in messages[1]["text"]


def test_follow_up_on_an_answer_from_one_leaflet_does_not_claim_it_is_the_same():
    entry = next(e for e in knowledge_base().entries if not e.differs_by_procedure and e.leaflets == {"lumbar"})
    messages, _ = run_with_messages(
        ActionAnswerTopic(),
        make_tracker("inform_procedure", "and for the neck one?", slots={"procedure": "cervical", "last_topic": entry.id}),
    )
    assert messages[0]["response"] == "utter_from_one_leaflet"
    assert messages[0]["source_label"] == "lower back (lumbar)" and messages[0]["procedure_label"] == "neck (cervical)"


def test_same_for_the_other_one_switches_the_procedure_and_re_answers():
    entry = next(e for e in knowledge_base().entries if e.differs_by_procedure)
    texts, events = run(
        ActionAnswerTopic(),
        make_tracker("other_procedure", "same for the other one?", slots={"procedure": "lumbar", "last_topic": entry.id}),
    )
    assert entry.answers["cervical"].web.split(".")[0].split("{")[0] in texts[0]
    assert events == [SlotSet("procedure", "cervical"), SlotSet("last_topic", entry.id)]


def test_tell_me_more_re_answers_in_full_and_says_that_is_all_there_is():
    entry = knowledge_base().entry_for_intent("ask_iv")
    texts, events = run(ActionAnswerTopic(), make_tracker("more_on_topic", "tell me more", slots={"last_topic": entry.id}))
    assert entry.answers["general"].web[:30] in texts[0]
    assert texts[1] == "utter_more_on_topic"
    assert events == [SlotSet("last_topic", entry.id)]


@pytest.mark.parametrize("intent", ["more_on_topic", "other_procedure"])
def test_a_follow_up_without_an_earlier_topic_asks_what_they_want_to_know(intent):
    assert run(ActionAnswerTopic(), make_tracker(intent, "tell me more")) == (["utter_ask_what_topic"], [])


def test_procedure_without_earlier_topic_asks_what_they_want_to_know():
    messages, events = run_with_messages(
        ActionAnswerTopic(), make_tracker("inform_procedure", "mine is lumbar", slots={"procedure": "lumbar"})
    )
    assert messages[0]["response"] == "utter_procedure_noted"
    assert messages[0]["procedure_label"] == "lower back (lumbar)"
    assert events == []


def test_unknown_intent_falls_back_to_the_clinic_response():
    texts, events = run(ActionAnswerTopic(), make_tracker("ask_something_new"))
    assert texts == ["utter_fallback"] and events == []


def test_fallback_answers_a_strong_match_only():
    entry = knowledge_base().entries[3]
    texts, events = run(ActionFallbackAnswer(), make_tracker("nlu_fallback", entry.examples[0]))
    assert events == [SlotSet("last_topic", entry.id)]
    texts, events = run(ActionFallbackAnswer(), make_tracker("nlu_fallback", "purple monkey dishwasher"))
    assert texts == ["utter_fallback"] and events == []


def triaged_tracker(before: dict | None, channel: str = "rest") -> Tracker:
    tracker = make_tracker("report_urgent_symptom", "can i shower? also the site is red and oozing", channel=channel)
    if before is not None:
        tracker.latest_message["intent_before_triage"] = before
    return tracker


def test_after_escalation_the_question_in_the_same_message_is_answered():
    entry = knowledge_base().entry_for_intent("ask_bandages")
    texts, events = run(ActionAnswerAfterTriage(), triaged_tracker({"name": "ask_bandages", "confidence": 0.8}))
    assert texts[0] == "utter_about_your_question" and entry.answers["general"].web[:40] in texts[1]
    assert events == [SlotSet("last_topic", entry.id)]


@pytest.mark.parametrize(
    "before",
    [None, {"name": "report_urgent_symptom", "confidence": 0.9}, {"name": "ask_bandages", "confidence": 0.3},
     {"name": "out_of_scope", "confidence": 0.9}, {"name": "nlu_fallback", "confidence": 0.4}],
)
def test_after_escalation_nothing_more_is_said_without_a_clear_question(before):
    assert run(ActionAnswerAfterTriage(), triaged_tracker(before)) == ([], [])
