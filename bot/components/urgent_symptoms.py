"""NLU component: urgent-symptom triage, the last step of the NLU pipeline (after FallbackClassifier).

Runs ``bot.triage.detect`` on every message. When it finds an urgent or emergency symptom it overrides
whatever intent was predicted (including ``nlu_fallback``) with ``report_urgent_symptom`` at confidence 1.0,
puts it at the top of the intent ranking, and adds one ``triage_level`` entity (``emergency`` | ``urgent``)
and one ``symptom`` entity per rule that fired (the rule id, e.g. ``bladder_bowel``). The domain maps them to
the ``triage_level`` and ``symptoms`` slots, and data/rules/triage.yml answers with the seek-care message.

When no rule fires but the intent classifier reads the message as a symptom report (its top intent is
``report_urgent_symptom``, or that intent is close behind an unsure guess or a decline), the intent becomes
``check_symptom`` with a ``symptom_check`` entity: the patient gets a short check-in that says what to do
if it is new or getting worse (never "I'm not sure I understood"), and staff see the flag.
``triage_level`` stays reserved for what a rule confirms.

When nothing is found the message is left exactly as it was. The component never raises: a failure is
logged and the message passes through untouched (the rules-file detector itself never raises either).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot import triage
from bot.components.overrides import entity, override_intent
from bot.vocabulary import (
    CHECK_SYMPTOM_INTENT,
    DECLINE_INTENTS,
    ENTITY_SYMPTOM,
    ENTITY_SYMPTOM_CHECK,
    ENTITY_TRIAGE_LEVEL,
    FALLBACK_INTENT,
    INTENT_BEFORE_TRIAGE,
    URGENT_INTENT,
)

logger = logging.getLogger(__name__)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class UrgentSymptomDetector(GraphComponent, IntentClassifier, EntityExtractorMixin):
    """Overrides the intent and adds triage entities when a message reports an urgent symptom."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        # check_threshold: an unsure (nlu_fallback) or declined (out_of_scope) message whose ranking gives
        # report_urgent_symptom at least this confidence gets the symptom check-in instead.
        return {"intent": URGENT_INTENT, "check_threshold": 0.2}

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> UrgentSymptomDetector:
        return cls(config)

    def __init__(self, config: dict[str, Any] | None = None,
                 detect: Callable[[str], triage.TriageResult] | None = None) -> None:
        self.component_config = {**self.get_default_config(), **(config or {})}
        self._detect = detect or triage.detect
        if detect is None:
            try:  # build the shared detector now, so the first patient message is not the slow one
                triage.get_detector()
            except Exception:
                logger.exception("UrgentSymptomDetector: the triage rules could not be loaded")

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            try:
                self._process_message(message)
            except Exception:  # triage must never take the NLU pipeline down
                logger.exception("UrgentSymptomDetector: could not process a message")
        return messages

    def _process_message(self, message: Message) -> None:
        text = message.get(TEXT)
        if not isinstance(text, str) or not text.strip():
            return
        result = self._detect(text)
        if result is None or not result.level:
            self._check_unconfirmed_report(message, text)
            return
        self._override_intent(message, self.component_config["intent"], self.entities_for(text, result))

    def _override_intent(self, message: Message, intent_name: str, entities: list[dict[str, Any]]) -> None:
        before = dict(message.get(INTENT) or {})
        ranking = override_intent(message, intent_name)
        # Kept so the patient's question in the same message can be answered after the seek-care message.
        if before.get(INTENT_NAME_KEY) in (URGENT_INTENT, FALLBACK_INTENT):
            before = next(
                (item for item in ranking if item.get(INTENT_NAME_KEY) not in (URGENT_INTENT, FALLBACK_INTENT)), {}
            )
        message.set(INTENT_BEFORE_TRIAGE, before, add_to_output=True)
        message.set(ENTITIES, list(message.get(ENTITIES) or []) + self.add_extractor_name(entities), add_to_output=True)

    def _check_unconfirmed_report(self, message: Message, text: str) -> None:
        """The classifier reads a symptom report that no rule confirms: a check-in, not a fallback.

        Measured on tests/triage/cases.jsonl, escalating on the classifier alone (confidence >= 0.8)
        added 20 false alarms on negated/resolved/other-person mentions and caught nothing the rules
        missed, so such a message is not escalated; but "I'm not sure I understood" says nothing about
        getting help, so it gets the check-in (what to do if it is new or worse) and a flag for staff.
        """
        intent = message.get(INTENT) or {}
        name = intent.get(INTENT_NAME_KEY)
        urgent_confidence = next(
            (float(item.get(PREDICTED_CONFIDENCE_KEY) or 0.0) for item in (message.get(INTENT_RANKING_KEY) or [])
             if isinstance(item, dict) and item.get(INTENT_NAME_KEY) == self.component_config["intent"]),
            0.0,
        )
        reads_as_report = name == self.component_config["intent"] or (
            name in DECLINE_INTENTS and urgent_confidence >= self.component_config["check_threshold"]
        )
        if reads_as_report:
            flag = entity(ENTITY_SYMPTOM_CHECK, True, 0, len(text), urgent_confidence)
            self._override_intent(message, CHECK_SYMPTOM_INTENT, [flag])

    @staticmethod
    def entities_for(text: str, result: triage.TriageResult) -> list[dict[str, Any]]:
        """One triage_level entity and one symptom entity per fired rule, with character positions."""

        def position(rule: str | None) -> tuple[int, int]:
            span = result.span_for(rule) if rule else None
            if span is None and result.spans:
                span = result.spans[0]
            return (span.start, span.end) if span else (0, len(text))

        def rule_entity(name: str, value: str, rule: str | None) -> dict[str, Any]:
            return entity(name, value, *position(rule))

        level_rule = next(
            (rule for rule in result.symptoms if triage.rule_level(rule) == result.level),
            result.symptoms[0] if result.symptoms else None,
        )
        return [rule_entity(ENTITY_TRIAGE_LEVEL, result.level, level_rule)] + [
            rule_entity(ENTITY_SYMPTOM, rule, rule) for rule in result.symptoms
        ]
