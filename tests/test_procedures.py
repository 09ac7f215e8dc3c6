"""Which procedure a message names, from knowledge/procedures.yml."""

from __future__ import annotations

import pytest
from rasa.shared.nlu.training_data.message import Message

from bot.components.procedure_extractor import ProcedureExtractor
from bot.procedures import procedure_vocabulary


@pytest.mark.parametrize(
    "text, expected",
    [
        ("my L5-S1 shot is friday", "lumbar"),
        ("what about the neck one?", "cervical"),
        ("C6 nerve root block", "cervical"),
        ("its for my lower back", "lumbar"),
        ("lumbar", "lumbar"),
        ("servical injection", "cervical"),
        ("i have one in my neck and one in my lower back", None),
        ("can i bring my backpack", None),
        ("", None),
    ],
)
def test_detect(text, expected):
    assert procedure_vocabulary().detect(text) == expected


def test_component_adds_one_procedure_entity():
    component = ProcedureExtractor(procedure_vocabulary())
    message = Message(data={"text": "same question for the neck shot"})
    component.process([message])
    entities = message.get("entities")
    assert [(e["entity"], e["value"], e["extractor"]) for e in entities] == [("procedure", "cervical", "ProcedureExtractor")]
    assert message.get("text")[entities[0]["start"] : entities[0]["end"]].lower() == "neck shot"


def test_component_leaves_ambiguous_and_odd_messages_alone():
    component = ProcedureExtractor(procedure_vocabulary())
    messages = [Message(data={"text": "neck and lower back"}), Message(data={"text": "🙂" * 50}), Message(data={})]
    component.process(messages)
    assert all(not m.get("entities") for m in messages)
