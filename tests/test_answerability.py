"""Decline by answerability: knowledge/not_covered.yml, its loader and the AnswerabilityCheck component."""

from __future__ import annotations

from pathlib import Path

import pytest
from rasa.shared.nlu.training_data.message import Message

from bot.components.answerability import AnswerabilityCheck
from bot.datafile import DataFileError
from bot.knowledge import knowledge_base
from bot.nlu_eval import load_labelled_examples
from bot.not_covered import load_not_covered, not_covered

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("text", "group"), [
    ("what happens during a blood patch procedure?", "other_procedures"),
    ("is a Medial Branch block the same thing?", "other_procedures"),
    ("is this like the epidural when giving birth", "other_procedures"),
    ("will my insurance cover it", "costs_and_coverage"),
    ("can i still breastfeed after", "breastfeeding"),
])
def test_named_things_the_leaflets_do_not_cover_are_found(text, group):
    assert not_covered().find(text).id == group


@pytest.mark.parametrize("text", [
    "is it an epidural?", "what do they inject", "can i drive home", "how do i lie for the neck injection",
])
def test_questions_the_leaflets_answer_are_not_matched(text):
    assert not_covered().find(text) is None


def test_no_training_example_or_knowledge_question_of_a_topic_names_a_not_covered_thing():
    clashes = [
        (intent, text) for path in sorted((ROOT / "data" / "nlu").glob("*.yml"))
        for text, intent in load_labelled_examples(path)
        if intent != "out_of_scope" and not_covered().find(text)
    ]
    clashes += [(entry.id, text) for entry in knowledge_base().entries for text in entry.examples if not_covered().find(text)]
    assert not clashes


def test_the_component_declines_and_says_why():
    message = Message(data={"text": "what happens during a blood patch procedure?",
                            "intent": {"name": "ask_procedure_steps", "confidence": 0.93},
                            "intent_ranking": [{"name": "ask_procedure_steps", "confidence": 0.93}]})
    AnswerabilityCheck().process([message])
    assert message.get("intent") == {"name": "out_of_scope", "confidence": 1.0}
    assert message.get("not_covered") == "other_procedures"
    assert message.get("intent_ranking")[1]["name"] == "ask_procedure_steps"


def test_the_component_leaves_answerable_questions_alone():
    message = Message(data={"text": "what happens during the procedure", "intent": {"name": "ask_procedure_steps"}})
    AnswerabilityCheck().process([message])
    assert message.get("intent") == {"name": "ask_procedure_steps"} and message.get("not_covered") is None


@pytest.mark.parametrize(("content", "field"), [
    ("groups: []", "groups"),
    ("groups:\n  - {id: x, why: y, phrases: []}", "phrases"),
    ("groups:\n  - {id: x, phrases: [a]}", "why"),
    ("groups:\n  - {id: x, why: y, phrases: [a], extra: 1}", "extra"),
])
def test_a_bad_file_is_refused_naming_the_file_and_field(tmp_path, content, field):
    path = tmp_path / "not_covered.yml"
    path.write_text(content)
    with pytest.raises(DataFileError) as error:
        load_not_covered(path)
    assert str(path) in str(error.value) and field in str(error.value)
