"""Patient text that starts with `/` is text: NLU and triage always run on it.

Why: Rasa's prediction graph ends with `RegexMessageHandler`, which replaces the NLU result of any
message starting with `/` by the intent and entities written after the slash (`/restart`,
`/report_urgent_symptom{"triage_level": "emergency"}`). That is a developer shortcut; from a
patient it would skip NLU and triage (`/ my leg is numb and I can't pee` would lose its red flag,
`/restart` would wipe the conversation).

Rule: a message that came in through an input channel (the UserMessage has an `input_channel`:
REST, socket.io, SMS, or any name a REST client sends) is always text.
Only messages with no input channel may use the shortcut: the token-protected HTTP API
(`/model/parse`, `/conversations/<id>/messages`) and `rasa test` (which build UserMessage(text)
themselves). Rasa's REST channel falls back to its own name when a client sends an empty
`input_channel`, so no client can make its message look like one without a channel.
`/conversations/<id>/trigger_intent` (staff/ops tooling) never parses text and is unaffected.

Nothing is lost: the text is left exactly as typed (the tracker stores it as the patient wrote it);
only the shortcut is not applied. How: two small patches of Rasa 3.6 classes, installed once when
`bot.channels` is imported (credentials.yml loads it in every Rasa process that has a patient
channel, before Rasa builds the model's graph, which keeps references to these methods; a bare
`rasa shell` without credentials.yml is a developer's console and keeps Rasa's shortcut):
`NLUMessageConverter.convert_user_message` marks each NLU message that came through a
channel, and `RegexMessageHandler.process` leaves marked messages alone. The mark is a private
key of the NLU message's data, not its metadata, so a client cannot set or clear it.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from rasa.graph_components.converters.nlu_message_converter import NLUMessageConverter
from rasa.nlu.classifiers.regex_message_handler import RegexMessageHandler

logger = logging.getLogger(__name__)

CHANNEL_TEXT_KEY = "_clinic_channel_text"  # NLU message data key: "came through an input channel"
_INSTALLED_MARK = "_clinic_literal_slash"


def came_through_channel(user_message: Any) -> bool:
    """True for a message an input channel received (patients), False for HTTP API / `rasa test` calls."""
    return bool(getattr(user_message, "input_channel", None))


def install() -> None:
    """Patch Rasa (idempotent) so `/...` from an input channel goes through NLU like any text."""
    if getattr(RegexMessageHandler.process, _INSTALLED_MARK, False):
        return
    convert = NLUMessageConverter.convert_user_message
    process = RegexMessageHandler.process

    @functools.wraps(convert)
    def convert_user_message(self: NLUMessageConverter, messages: list[Any]) -> list[Any]:
        converted = convert(self, messages)
        for user_message, message in zip(messages, converted, strict=False):
            if came_through_channel(user_message):
                message.data[CHANNEL_TEXT_KEY] = True
        return converted

    @functools.wraps(process)
    def process_messages(self: RegexMessageHandler, messages: list[Any], domain: Any = None) -> list[Any]:
        shortcut = [message for message in messages if not message.get(CHANNEL_TEXT_KEY)]
        if len(shortcut) == len(messages):
            return process(self, messages, domain)
        unpacked = iter(process(self, shortcut, domain) if shortcut else [])
        return [message if message.get(CHANNEL_TEXT_KEY) else next(unpacked) for message in messages]

    setattr(process_messages, _INSTALLED_MARK, True)
    NLUMessageConverter.convert_user_message = convert_user_message  # type: ignore[method-assign]
    RegexMessageHandler.process = process_messages  # type: ignore[method-assign]
    logger.debug("Patient text starting with '/' is parsed as text (bot.literal_slash).")


def is_installed() -> bool:
    return bool(getattr(RegexMessageHandler.process, _INSTALLED_MARK, False))
