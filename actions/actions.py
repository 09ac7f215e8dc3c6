"""Custom actions: thin wrappers over bot.knowledge (the one home of the knowledge base).

Patient wording lives in domain.yml: actions send knowledge answers (data in knowledge/topics/) and
utter domain responses by name, so the Rasa process fills the clinic settings into them.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.knowledge import Entry, Reply, knowledge_base
from bot.procedures import PROCEDURES, procedure_vocabulary
from bot.vocabulary import (
    CHECKIN_FINE_INTENT,
    INFORM_PROCEDURE,
    INTENT_BEFORE_TRIAGE,
    MORE_ON_TOPIC,
    OTHER_PROCEDURE,
    SLOT_LAST_OUTREACH,
    SLOT_LAST_TOPIC,
    SLOT_PROCEDURE,
)

FOLLOW_UP_INTENTS = (INFORM_PROCEDURE, MORE_ON_TOPIC, OTHER_PROCEDURE)


def _channel(tracker: Tracker) -> str | None:
    return tracker.get_latest_input_channel()


def _intent(tracker: Tracker) -> str | None:
    return (tracker.latest_message.get("intent") or {}).get("name")


def _send(dispatcher: CollectingDispatcher, reply: Reply) -> list[dict[str, Any]]:
    dispatcher.utter_message(text=reply.text)
    return [SlotSet(SLOT_LAST_TOPIC, reply.entry_id)]


def the_other_procedure(procedure: str | None) -> str | None:
    """The other injection: lumbar <-> cervical (None when we don't know the first one)."""
    if procedure not in PROCEDURES:
        return None
    return next(p for p in PROCEDURES if p != procedure)


def introduce_for_procedure(dispatcher: CollectingDispatcher, entry: Entry, procedure: str) -> None:
    """Say whether an answer that has no variant per procedure holds for this one, by its leaflet sources."""
    if entry.differs_by_procedure or not entry.leaflets:
        return
    label = procedure_vocabulary().label(procedure)
    if entry.leaflets >= set(PROCEDURES):
        dispatcher.utter_message(response="utter_same_for_procedure", procedure_label=label)
    elif procedure not in entry.leaflets:
        source = next(iter(entry.leaflets))
        dispatcher.utter_message(
            response="utter_from_one_leaflet", procedure_label=label, source_label=procedure_vocabulary().label(source)
        )


class ActionAnswerTopic(Action):
    """Answer the topic intent from the knowledge base, for the patient's procedure and channel.

    Follow-ups re-answer the last topic: `inform_procedure` ("what about the neck one?") for the named
    procedure, `other_procedure` ("same for the other one?") for the other one, `more_on_topic`
    ("tell me more about that") in full, saying honestly that this is all the information there is.
    """

    def name(self) -> str:
        return "action_answer_topic"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        intent = _intent(tracker)
        if intent in FOLLOW_UP_INTENTS:
            return self.follow_up(dispatcher, tracker, intent)
        entry = knowledge_base().entry_for_intent(intent)
        if entry is None:
            dispatcher.utter_message(response="utter_fallback")
            return []
        return _send(dispatcher, knowledge_base().reply(entry, tracker.get_slot(SLOT_PROCEDURE), _channel(tracker)))

    def follow_up(self, dispatcher: CollectingDispatcher, tracker: Tracker, intent: str) -> list[dict[str, Any]]:
        procedure = tracker.get_slot(SLOT_PROCEDURE)
        events: list[dict[str, Any]] = []
        if intent == OTHER_PROCEDURE and the_other_procedure(procedure):
            procedure = the_other_procedure(procedure)
            events.append(SlotSet(SLOT_PROCEDURE, procedure))
        entry = knowledge_base().by_id.get(tracker.get_slot(SLOT_LAST_TOPIC) or "")
        if entry is None:
            if intent == INFORM_PROCEDURE and procedure:
                label = procedure_vocabulary().label(procedure)
                dispatcher.utter_message(response="utter_procedure_noted", procedure_label=label)
            else:
                dispatcher.utter_message(response="utter_ask_what_topic")
            return events
        reply = knowledge_base().reply(entry, procedure, _channel(tracker))
        if procedure and intent != MORE_ON_TOPIC and not reply.asks_for_procedure:
            introduce_for_procedure(dispatcher, entry, procedure)
        events += _send(dispatcher, reply)
        if intent == MORE_ON_TOPIC:
            dispatcher.utter_message(response="utter_more_on_topic")
        return events


class ActionAnswerAfterTriage(Action):
    """After the seek-care (or check-in) message, also answer a question asked in the same message.

    "can i shower? also my site is red and oozing" escalates first (a rule, no action server needed),
    then this answers the shower question if the classifier had recognised it before triage took over.
    """

    min_confidence = 0.5

    def name(self) -> str:
        return "action_answer_after_triage"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        before = tracker.latest_message.get(INTENT_BEFORE_TRIAGE) or {}
        entry = knowledge_base().entry_for_intent(before.get("name"))
        if entry is None or float(before.get("confidence") or 0.0) < self.min_confidence:
            return []
        reply = knowledge_base().reply(entry, tracker.get_slot(SLOT_PROCEDURE), _channel(tracker))
        if reply.asks_for_procedure:
            return []
        dispatcher.utter_message(response="utter_about_your_question")
        return _send(dispatcher, reply)


class ActionFallbackAnswer(Action):
    """NLU was unsure: answer only when the message closely matches a known question; never guess."""

    def name(self) -> str:
        return "action_fallback_answer"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        kb = knowledge_base()
        match = kb.strong_fuzzy_match(tracker.latest_message.get("text") or "")
        if match is None:
            dispatcher.utter_message(response="utter_fallback")
            return []
        return _send(dispatcher, kb.reply(match.entry, tracker.get_slot(SLOT_PROCEDURE), _channel(tracker)))


class ActionCheckinReply(Action):
    """"1" or "2" read in context: after an outreach check-in text, "1" is "I feel OK" (thanks and the warning
    signs), "2" invites the question; without one it is the usual "not sure" reply.

    The check-in is known from the `last_outreach` slot, or - when the patient answers in a new session (slots
    reset after SESSION_EXPIRATION) - from the outreach outbox (bot.outreach.context). A symptom in the reply
    never gets here: the triage component overrides these intents.
    """

    def name(self) -> str:
        return "action_checkin_reply"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        from bot.outreach.context import recent_checkin

        if not recent_checkin(tracker.sender_id, tracker.get_slot(SLOT_LAST_OUTREACH)):
            dispatcher.utter_message(response="utter_fallback")
            return []
        fine = _intent(tracker) == CHECKIN_FINE_INTENT
        dispatcher.utter_message(response="utter_checkin_fine" if fine else "utter_checkin_question")
        return []
