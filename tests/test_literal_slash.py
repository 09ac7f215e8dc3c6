"""bot/literal_slash.py without servers: channel messages keep their NLU result, API messages keep the shortcut."""

from __future__ import annotations

from rasa.core.channels.channel import UserMessage
from rasa.graph_components.converters.nlu_message_converter import NLUMessageConverter
from rasa.nlu.classifiers.regex_message_handler import RegexMessageHandler
from rasa.shared.core.domain import Domain

import bot.channels  # noqa: F401  (installs the patch, as credentials.yml does in the Rasa process)
from bot import literal_slash

DOMAIN = Domain.from_dict({"intents": ["restart", "ask_driving", "greet"]})


def parsed(messages: list[UserMessage]) -> list[dict]:
    converted = NLUMessageConverter().convert_user_message(messages)
    for message in converted:  # what the NLU components would have found
        message.set("intent", {"name": "greet", "confidence": 0.7}, add_to_output=True)
    return [message.as_dict(only_output_properties=True) for message in RegexMessageHandler().process(converted, DOMAIN)]


def test_installed_by_importing_the_channels_package():
    assert literal_slash.is_installed()
    literal_slash.install()  # idempotent
    assert literal_slash.is_installed()


def test_channel_messages_keep_their_text_and_nlu_result():
    for channel in ("rest", "socketio", "sms", "cmdline", "anything"):
        result = parsed([UserMessage("/restart", sender_id="p", input_channel=channel)])[0]
        assert result["text"] == "/restart"
        assert result["intent"]["name"] == "greet"
        assert literal_slash.CHANNEL_TEXT_KEY not in result  # never shown in parse data


def test_messages_without_a_channel_keep_the_shortcut():
    result = parsed([UserMessage("/ask_driving", sender_id="p")])[0]
    assert result["intent"] == {"name": "ask_driving", "confidence": 1.0}


def test_a_mixed_batch_keeps_its_order():
    results = parsed([
        UserMessage("/restart", sender_id="a", input_channel="rest"),
        UserMessage("/ask_driving", sender_id="b"),
        UserMessage("/restart", sender_id="c", input_channel="sms"),
    ])
    assert [r["intent"]["name"] for r in results] == ["greet", "ask_driving", "greet"]
