"""Which language a patient wrote in, and the component that marks other languages."""

from __future__ import annotations

import pytest
from rasa.shared.nlu.training_data.message import Message

from bot.components.language_detector import LanguageDetector
from bot.language import detect_language


@pytest.mark.parametrize(("text", "language"), [
    ("no siento las piernas desde la inyeccion de ayer", "es"),
    ("¿puedo comer antes de la inyección?", "es"),
    ("je ne sens plus mes jambes depuis hier", "fr"),
    ("tenho uma pergunta sobre a injeção de amanhã", "pt"),
    ("这个注射疼吗 我很担心", "other"),
    ("can i eat before the shot", "en"),
    ("no redness, no swelling, no fever, just a little sore. all good?", "en"),
    ("same as a labor epidural?", "en"),
    ("C5 injection vs L5 injection, same deal?", None),
    ("ok", None),
    ("hola", None),
])
def test_detect_language(text, language):
    assert detect_language(text) == language


def parsed(text: str) -> Message:
    message = Message(data={"text": text, "intent": {"name": "ask_driving", "confidence": 0.9},
                            "intent_ranking": [{"name": "ask_driving", "confidence": 0.9}]})
    LanguageDetector().process([message])
    return message


def test_another_language_gets_its_intent_and_a_language_entity():
    message = parsed("tengo una pregunta sobre mi inyeccion de mañana")
    assert message.get("intent") == {"name": "other_language", "confidence": 1.0}
    assert message.get("intent_ranking")[1]["name"] == "ask_driving"
    assert [(e["entity"], e["value"]) for e in message.get("entities")] == [("language", "es")]


def test_english_keeps_its_intent_and_says_english():
    message = parsed("do i need a driver after the shot")
    assert message.get("intent")["name"] == "ask_driving"
    assert [(e["entity"], e["value"]) for e in message.get("entities")] == [("language", "en")]


@pytest.mark.parametrize("text", ["", "ok", None, 42])
def test_short_or_odd_messages_are_left_alone(text):
    message = Message(data={"text": text, "intent": {"name": "affirm", "confidence": 1.0}})
    LanguageDetector().process([message])
    assert message.get("intent")["name"] == "affirm" and not message.get("entities")
