"""Custom actions: thin wrappers over bot.knowledge (the one home of the knowledge base)."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.knowledge import KnowledgeBase, Reply, knowledge_base
from bot.messages import FALLBACK_REPLY
from bot.procedures import procedure_vocabulary
from bot.settings import fill_placeholders


def _channel(tracker: Tracker) -> str | None:
    return tracker.get_latest_input_channel()


def _send(dispatcher: CollectingDispatcher, reply: Reply) -> list[dict[str, Any]]:
    dispatcher.utter_message(text=reply.text)
    return [SlotSet("last_topic", reply.entry_id)]


class ActionAnswerTopic(Action):
    """Answer the topic intent from the knowledge base, for the patient's procedure and channel.

    For `inform_procedure` ("what about the neck one?") it re-answers the last topic.
    """

    def name(self) -> str:
        return "action_answer_topic"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        kb: KnowledgeBase = knowledge_base()
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        procedure = tracker.get_slot("procedure")

        if intent == "inform_procedure":
            entry = kb.by_id.get(tracker.get_slot("last_topic") or "")
            if entry is None:
                label = procedure_vocabulary().label(procedure) if procedure else "your"
                dispatcher.utter_message(
                    text=f"Thanks, I'll keep in mind that you're having the {label} injection. What would you like to know?"
                    if procedure
                    else "What would you like to know about your injection?"
                )
                return []
            reply = kb.reply(entry, procedure, _channel(tracker))
            if procedure and not entry.differs_by_procedure and not reply.asks_for_procedure:
                label = procedure_vocabulary().label(procedure)
                reply = Reply(f"This is the same for the {label} injection.\n\n{reply.text}", reply.entry_id, procedure)
            return _send(dispatcher, reply)

        entry = kb.entry_for_intent(intent)
        if entry is None:
            dispatcher.utter_message(text=fill_placeholders(FALLBACK_REPLY))
            return []
        return _send(dispatcher, kb.reply(entry, procedure, _channel(tracker)))


class ActionAnswerAfterTriage(Action):
    """After the seek-care message, also answer a question asked in the same message.

    "can i shower? also my site is red and oozing" escalates first (a rule, no action server needed),
    then this answers the shower question if the classifier had recognised it before triage took over.
    """

    min_confidence = 0.5

    def name(self) -> str:
        return "action_answer_after_triage"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        before = tracker.latest_message.get("intent_before_triage") or {}
        entry = knowledge_base().entry_for_intent(before.get("name"))
        if entry is None or float(before.get("confidence") or 0.0) < self.min_confidence:
            return []
        reply = knowledge_base().reply(entry, tracker.get_slot("procedure"), _channel(tracker))
        if reply.asks_for_procedure:
            return []
        dispatcher.utter_message(text=f"About your question:\n{reply.text}")
        return [SlotSet("last_topic", reply.entry_id)]


class ActionFallbackAnswer(Action):
    """NLU was unsure: answer only when the message closely matches a known question; never guess."""

    def name(self) -> str:
        return "action_fallback_answer"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
        kb = knowledge_base()
        text = tracker.latest_message.get("text") or ""
        match = kb.strong_fuzzy_match(text)
        if match is None:
            dispatcher.utter_message(text=fill_placeholders(FALLBACK_REPLY))
            return []
        return _send(dispatcher, kb.reply(match.entry, tracker.get_slot("procedure"), _channel(tracker)))
