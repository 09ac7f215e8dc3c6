"""NLU component: decline by answerability, not by topic words (knowledge/not_covered.yml).

A message that names something the leaflets do not cover (another procedure, a price, insurance) gets
the intent `out_of_scope`, whatever topic its other words resemble, and the message keeps `not_covered`
(the group id) so staff can see why it was declined. Runs after FallbackClassifier (an unsure guess is declined too) and before triage: an urgent
symptom in the same message still escalates.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.components.overrides import override_intent
from bot.not_covered import NotCovered, not_covered
from bot.vocabulary import NOT_COVERED_KEY, OUT_OF_SCOPE_INTENT


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class AnswerabilityCheck(GraphComponent, IntentClassifier):
    """Overrides the intent with out_of_scope when the message names something the leaflets don't cover."""

    def __init__(self, rules: NotCovered | None = None) -> None:
        self.rules = rules or not_covered()

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> AnswerabilityCheck:
        return cls()

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT)
            group = self.rules.find(text) if isinstance(text, str) else None
            if group is None:
                continue
            override_intent(message, OUT_OF_SCOPE_INTENT)
            message.set(NOT_COVERED_KEY, group.id, add_to_output=True)
        return messages
