"""Every patient message gets a reply.

Rasa stays silent when a custom action fails (action server down) and waits up to five
minutes for a slow one. `guard_handler` wraps a channel's `on_new_message` so the patient
gets a safe message with the clinic's number instead of silence, and blank messages get
a prompt instead of a trip through the model. Processing is never cancelled: a late answer
is still stored in the tracker, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import OutputChannel, UserMessage

from bot.config import reply_timeout_s
from bot.messages import EMPTY_REPLY, SAFE_REPLY
from bot.settings import fill_placeholders
from bot.vocabulary import MAX_MESSAGE_CHARS

logger = logging.getLogger(__name__)

TAIL_CHARS = 4_000  # a longer message keeps its start and its last 4,000 characters (a red flag is often last)

Handler = Callable[[UserMessage], Awaitable[Any]]


def safe_reply_text() -> str:
    return fill_placeholders(SAFE_REPLY)


class CountingOutputChannel(OutputChannel):
    """Passes messages through to the real channel and counts them."""

    def __init__(self, inner: OutputChannel) -> None:
        self.inner = inner
        self.sent = 0

    def name(self) -> str:  # type: ignore[override]
        return self.inner.name()

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        self.sent += 1
        await self.inner.send_response(recipient_id, message)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.inner, attribute)


def clip_message(text: str) -> str:
    """At most MAX_MESSAGE_CHARS: the start and the end of a longer message, so triage reads both."""
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    gap = "\n...\n"
    head = MAX_MESSAGE_CHARS - TAIL_CHARS - len(gap)
    return text[:head] + gap + text[-TAIL_CHARS:]


def is_blank(text: Any) -> bool:
    return not isinstance(text, str) or not text.strip()


def guard_handler(on_new_message: Handler, timeout_s: float | None = None) -> Handler:
    """Wrap a channel's message handler so every patient message gets some reply.

    The timeout (env BOT_REPLY_TIMEOUT_S unless given) is read here, when the channel starts, so a
    bad value stops the server at start instead of failing patients' messages.
    """
    timeout_s = timeout_s or reply_timeout_s()

    async def guarded(message: UserMessage) -> None:
        recipient = message.sender_id
        if is_blank(message.text):
            await message.output_channel.send_response(recipient, {"text": EMPTY_REPLY})
            return
        message.text = clip_message(message.text)
        counter = CountingOutputChannel(message.output_channel)
        message.output_channel = counter
        task = asyncio.ensure_future(on_new_message(message))
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=timeout_s)
        except asyncio.TimeoutError:
            logger.warning("Bot reply took too long; sent the safe reply (processing continues).")
            if counter.sent == 0:
                await counter.inner.send_response(recipient, {"text": safe_reply_text()})
            return
        except Exception:  # the patient must still get an answer
            logger.exception("Handling a message failed; sent the safe reply.")
        if counter.sent == 0:
            await counter.inner.send_response(recipient, {"text": safe_reply_text()})

    return guarded
