"""What the rule-based NLU components share: putting their intent on top, and building their entities.

AnswerabilityCheck, LanguageDetector and UrgentSymptomDetector each overrule the classifier's intent in
the same way (confidence 1.0, first in the ranking, the classifier's guesses kept below it).
"""

from __future__ import annotations

from typing import Any

from rasa.shared.nlu.constants import (
    ENTITY_ATTRIBUTE_CONFIDENCE,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
)
from rasa.shared.nlu.training_data.message import Message


def override_intent(message: Message, intent_name: str) -> list[dict[str, Any]]:
    """Set `intent_name` at confidence 1.0 on top of the ranking; returns the rest of the ranking."""
    intent = {INTENT_NAME_KEY: intent_name, PREDICTED_CONFIDENCE_KEY: 1.0}
    ranking = [
        dict(item) for item in (message.get(INTENT_RANKING_KEY) or [])
        if isinstance(item, dict) and item.get(INTENT_NAME_KEY) != intent_name
    ]
    message.set(INTENT, intent, add_to_output=True)
    message.set(INTENT_RANKING_KEY, [dict(intent), *ranking], add_to_output=True)
    return ranking


def entity(name: str, value: Any, start: int, end: int, confidence: float = 1.0) -> dict[str, Any]:
    return {
        ENTITY_ATTRIBUTE_TYPE: name,
        ENTITY_ATTRIBUTE_VALUE: value,
        ENTITY_ATTRIBUTE_START: start,
        ENTITY_ATTRIBUTE_END: end,
        ENTITY_ATTRIBUTE_CONFIDENCE: confidence,
    }
