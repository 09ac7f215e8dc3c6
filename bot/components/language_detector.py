"""NLU component: a message not in English gets the intent `other_language` and a `language` entity.

Runs after FallbackClassifier and before UrgentSymptomDetector, so a red flag written in Spanish still
escalates (triage overrides the intent; the `language` slot picks the Spanish seek-care message). An
English message gets `language: en`, so a patient who switches back gets English replies again.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.components.overrides import entity, override_intent
from bot.language import detect_language
from bot.vocabulary import ENTITY_LANGUAGE, OTHER_LANGUAGE_INTENT


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class LanguageDetector(GraphComponent, IntentClassifier, EntityExtractorMixin):
    """Marks messages written in another language; never raises, never touches English intents."""

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> LanguageDetector:
        return cls()

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT)
            language = detect_language(text) if isinstance(text, str) else None
            if language is None:
                continue
            found = self.add_extractor_name([entity(ENTITY_LANGUAGE, language, 0, len(text))])
            message.set(ENTITIES, [*(message.get(ENTITIES) or []), *found], add_to_output=True)
            if language != "en":
                override_intent(message, OTHER_LANGUAGE_INTENT)
        return messages
