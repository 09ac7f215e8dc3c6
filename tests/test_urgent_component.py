"""The Rasa graph component bot.components.urgent_symptoms.UrgentSymptomDetector, used directly."""

from __future__ import annotations

import copy

import pytest
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.nlu.training_data.message import Message

from bot import triage
from bot.components.urgent_symptoms import UrgentSymptomDetector
from bot.vocabulary import CHECK_SYMPTOM_INTENT, ENTITY_SYMPTOM_CHECK, URGENT_INTENT
from bot.vocabulary import ENTITY_SYMPTOM as SYMPTOM_ENTITY
from bot.vocabulary import ENTITY_TRIAGE_LEVEL as LEVEL_ENTITY

PROCEDURE_ENTITY = {"entity": "procedure", "value": "lumbar", "start": 0, "end": 4, "confidence": 1.0,
                    "extractor": "ProcedureExtractor"}


@pytest.fixture(scope="module")
def component() -> UrgentSymptomDetector:
    return UrgentSymptomDetector.create(UrgentSymptomDetector.get_default_config(), None, None, None)


def message(text, intent: str = "ask_bandages", confidence: float = 0.91, entities: list | None = None) -> Message:
    return Message(data={
        "text": text,
        "intent": {"name": intent, "confidence": confidence},
        "intent_ranking": [
            {"name": intent, "confidence": confidence},
            {"name": "ask_recovery", "confidence": 0.05},
            {"name": URGENT_INTENT, "confidence": 0.03},
        ],
        "entities": list(entities or []),
    })


def test_it_is_registered_as_a_non_trainable_intent_classifier():
    registered = DefaultV1Recipe._registered_components["UrgentSymptomDetector"]
    assert registered.clazz is UrgentSymptomDetector
    assert DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER in registered.types
    assert registered.is_trainable is False


def test_urgent_message_overrides_the_intent_and_ranking(component):
    msg = message("can i shower? also my site is red and oozing")
    assert component.process([msg]) == [msg]
    assert msg.get("intent") == {"name": URGENT_INTENT, "confidence": 1.0}
    ranking = msg.get("intent_ranking")
    assert ranking[0] == {"name": URGENT_INTENT, "confidence": 1.0}
    assert [r["name"] for r in ranking] == [URGENT_INTENT, "ask_bandages", "ask_recovery"]  # no duplicate


def test_urgent_message_gets_triage_level_and_symptom_entities(component):
    text = "i cant feel my groin and i wet myself"
    msg = message(text, entities=[PROCEDURE_ENTITY])
    component.process([msg])
    entities = msg.get("entities")
    assert entities[0] == PROCEDURE_ENTITY  # other extractors' entities are kept
    levels = [e for e in entities if e["entity"] == LEVEL_ENTITY]
    symptoms = [e for e in entities if e["entity"] == SYMPTOM_ENTITY]
    assert [e["value"] for e in levels] == ["emergency"]
    assert {e["value"] for e in symptoms} == {"saddle_numbness", "bladder_bowel"}
    for entity in levels + symptoms:
        assert entity["extractor"] == "UrgentSymptomDetector"
        assert entity["confidence"] == 1.0
        assert 0 <= entity["start"] < entity["end"] <= len(text)
    by_value = {e["value"]: text[e["start"]:e["end"]] for e in symptoms}
    assert "groin" in by_value["saddle_numbness"] and "wet myself" in by_value["bladder_bowel"]


def test_urgent_level_and_symptom(component):
    msg = message("also i have a fever of 101 today")
    component.process([msg])
    entities = {e["entity"]: e["value"] for e in msg.get("entities")}
    assert entities == {LEVEL_ENTITY: "urgent", SYMPTOM_ENTITY: "fever"}


def test_emergency_wins_over_urgent(component):
    msg = message("my temp is 101 and my leg keeps giving out")
    component.process([msg])
    entities = msg.get("entities")
    assert [e["value"] for e in entities if e["entity"] == LEVEL_ENTITY] == ["emergency"]
    assert {e["value"] for e in entities if e["entity"] == SYMPTOM_ENTITY} == {"fever", "weakness"}


def test_it_overrides_nlu_fallback(component):
    msg = message("chest pain since i got home", intent="nlu_fallback", confidence=0.55)
    component.process([msg])
    assert msg.get("intent")["name"] == URGENT_INTENT
    assert msg.get("intent_ranking")[1]["name"] == "nlu_fallback"


@pytest.mark.parametrize("text", [
    "when can i take the bandage off",
    "I don't have a fever, can I shower tonight?",
    "what if I get a fever after?",
    "will i be numb in my groin after? my friend said she was",
    "my mom had a headache after hers",
    "",
    "😀😀😀",
    "<script>alert('hi')</script>",
])
def test_non_urgent_messages_are_left_untouched(component, text):
    msg = message(text, entities=[PROCEDURE_ENTITY])
    before = copy.deepcopy(msg.data)
    component.process([msg])
    assert msg.data == before


def test_report_urgent_symptom_predicted_without_a_detection_gets_the_check_in(component):
    msg = message("what are the warning signs", intent=URGENT_INTENT, confidence=0.6)
    component.process([msg])
    assert msg.get("intent")["name"] == CHECK_SYMPTOM_INTENT
    assert [(e["entity"], e["value"]) for e in msg.get("entities")] == [(ENTITY_SYMPTOM_CHECK, True)]
    assert not [e for e in msg.get("entities") if e["entity"] == LEVEL_ENTITY]


def test_an_unsure_message_that_may_be_a_report_gets_the_check_in(component):
    msg = message("my leg isnt right", intent="nlu_fallback", confidence=0.3)
    msg.set("intent_ranking", [{"name": "nlu_fallback", "confidence": 0.3},
                               {"name": URGENT_INTENT, "confidence": 0.25},
                               {"name": "ask_risks", "confidence": 0.2}])
    component.process([msg])
    assert msg.get("intent")["name"] == CHECK_SYMPTOM_INTENT
    assert msg.get("intent_before_triage")["name"] == "ask_risks"


def test_a_declined_message_that_may_be_a_report_gets_the_check_in(component):
    msg = message("blood keeps coming from the spot and ice does nothing", intent="out_of_scope", confidence=0.6)
    msg.set("intent_ranking", [{"name": "out_of_scope", "confidence": 0.6},
                               {"name": URGENT_INTENT, "confidence": 0.3}])
    UrgentSymptomDetector(detect=lambda text: triage.TriageResult(level=None)).process([msg])
    assert msg.get("intent")["name"] == CHECK_SYMPTOM_INTENT


def test_an_unsure_message_that_is_not_a_report_stays_a_fallback(component):
    msg = message("blue elephants", intent="nlu_fallback", confidence=0.3)
    msg.set("intent_ranking", [{"name": "nlu_fallback", "confidence": 0.3},
                               {"name": URGENT_INTENT, "confidence": 0.05}])
    component.process([msg])
    assert msg.get("intent")["name"] == "nlu_fallback" and not msg.get("entities")


@pytest.mark.parametrize("data", [
    {},
    {"text": None},
    {"text": 42},
    {"text": "i have a fever"},  # no intent or ranking set yet
    {"text": "i have a fever", "intent_ranking": None, "entities": None},
])
def test_messages_with_missing_parts_never_raise(component, data):
    msg = Message(data=dict(data))
    component.process([msg])
    if isinstance(data.get("text"), str):
        assert msg.get("intent") == {"name": URGENT_INTENT, "confidence": 1.0}
        assert [e["entity"] for e in msg.get("entities")] == [LEVEL_ENTITY, SYMPTOM_ENTITY]


def test_a_failing_detector_never_raises_and_leaves_the_message():
    def broken(text: str) -> triage.TriageResult:
        raise RuntimeError("boom")

    component = UrgentSymptomDetector(UrgentSymptomDetector.get_default_config(), detect=broken)
    msg = message("i cant pee")
    before = copy.deepcopy(msg.data)
    assert component.process([msg]) == [msg]
    assert msg.data == before


def test_several_messages_in_one_call(component):
    messages = [message("can i drive home?"), message("my lips are swelling up"), message("thanks!")]
    component.process(messages)
    assert [m.get("intent")["name"] for m in messages] == ["ask_bandages", URGENT_INTENT, "ask_bandages"]


def test_the_component_and_detect_agree(component):
    for text in ("bleding wont stop", "is it normal to not be able to move my foot 20 hrs after?",
                 "does the dye ever cause allergic reactions?"):
        msg = message(text)
        component.process([msg])
        result = triage.detect(text)
        assert (msg.get("intent")["name"] == URGENT_INTENT) == (result.level is not None)


def _classified(text: str, confidence: float):
    from rasa.shared.nlu.training_data.message import Message

    return Message(data={"text": text, "intent": {"name": "report_urgent_symptom", "confidence": confidence},
                         "intent_ranking": [{"name": "report_urgent_symptom", "confidence": confidence}]})


def test_a_classifier_report_no_rule_confirms_is_a_check_in_not_a_dead_end():
    from bot.components.urgent_symptoms import UrgentSymptomDetector
    from bot.triage import TriageResult

    component = UrgentSymptomDetector(detect=lambda text: TriageResult(level=None, symptoms=()))
    message = _classified("first nerve block ever and im nervous", 0.99)
    component.process([message])
    assert message.get("intent")["name"] == CHECK_SYMPTOM_INTENT
    assert {e["entity"] for e in message.get("entities")} == {ENTITY_SYMPTOM_CHECK}


def test_the_classifier_intent_is_kept_for_answering_the_question_afterwards(component):
    msg = message("can i shower? also the site is red and oozing", intent="ask_bandages", confidence=0.9)
    component.process([msg])
    assert msg.get("intent")["name"] == URGENT_INTENT
    assert msg.get("intent_before_triage") == {"name": "ask_bandages", "confidence": 0.9}
