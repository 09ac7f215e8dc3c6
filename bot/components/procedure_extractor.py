"""NLU component: tags which procedure (lumbar / cervical) a message names.

Rule-based on knowledge/procedures.yml, so "L5", "the neck one" or "cervicle" fill the
`procedure` slot deterministically without annotated training data.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.procedures import ProcedureVocabulary, procedure_vocabulary

ENTITY_NAME = "procedure"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class ProcedureExtractor(GraphComponent, EntityExtractorMixin):
    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ProcedureExtractor:
        return cls(procedure_vocabulary())

    def __init__(self, vocabulary: ProcedureVocabulary) -> None:
        self.vocabulary = vocabulary

    def entities_for(self, text: str) -> list[dict[str, Any]]:
        """One entity per mention, only when the message names a single procedure."""
        mentions = self.vocabulary.find(text or "")
        if len({m.procedure for m in mentions}) != 1:
            return []
        return [
            {"entity": ENTITY_NAME, "value": m.procedure, "start": m.start, "end": m.end, "confidence": 1.0}
            for m in mentions[:1]
        ]

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT)
            if not isinstance(text, str):
                continue
            found = self.add_extractor_name(self.entities_for(text))
            if found:
                message.set(ENTITIES, message.get(ENTITIES, []) + found, add_to_output=True)
        return messages
