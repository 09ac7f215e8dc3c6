"""Every patient message gets a reply, and a red flag gets its seek-care message within a second.

Rasa stays silent when a custom action fails (action server down) and waits up to five minutes for a
slow one; a second message of a conversation waits for the first one's lock; a slow tracker database
holds every turn. `guard_handler` wraps a channel's `on_new_message` (REST, web chat and SMS all use it):

- blank messages get a prompt instead of a trip through the model;
- after SEEK_CARE_DEADLINE_S (0.7 s, counted from the moment the message arrived, so also while it waits
  for the conversation's lock) without an answer, or when the bot failed or stayed silent, the guard runs
  the project's triage detector (bot.triage, the one the NLU component uses) on the text itself. If it reads
  a red flag, the guard sends the bot's own seek-care response (domain.yml `utter_seek_care_<level>`,
  rendered by the bot's NLG with the channel's variant and the message's language, `custom` marker
  included). On REST and SMS, whose reply is one HTTP response, the reply is then returned at once with
  that message (and whatever the bot had already said). On the web chat, which streams, the bot's later
  answer still follows, but its own seek-care message of the same or a lower level is dropped, so the
  patient never sees the warning twice;
- otherwise, after BOT_REPLY_TIMEOUT_S the patient gets the safe message with the clinic's number;
- while staff have taken the conversation over (bot/takeover.py; looked up as the message arrives, alongside
  the bot's processing), the bot's ordinary answers are withheld and no safe reply is sent: staff reply.
  Seek-care (the bot's or the guard's own) and the symptom check-in are never held, never wait on the lookup.

Processing is never cancelled: the message, the escalation (triage_level) and the bot's answer are stored in
the tracker once the stuck part recovers, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

from rasa.core.actions.action import create_bot_utterance
from rasa.core.channels.channel import CollectingOutputChannel, OutputChannel, UserMessage
from rasa.core.channels.rest import QueueOutputChannel
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SlotSet
from rasa.shared.core.trackers import DialogueStateTracker

from bot.config import PROJECT_ROOT, reply_timeout_s
from bot.messages import EMPTY_REPLY, SAFE_REPLY
from bot.settings import fill_placeholders
from bot.takeover import LOOKUP_TIMEOUT_MS, takeover_lookup, withheld_during_takeover
from bot.vocabulary import MAX_MESSAGE_CHARS, SEEK_CARE_DEADLINE_S, SEEK_CARE_KIND, SLOT_LANGUAGE, TRIAGE_LEVELS

logger = logging.getLogger(__name__)

TAIL_CHARS = 4_000  # a longer message keeps its start and its last 4,000 characters (a red flag is often last)
DOMAIN_FILE = PROJECT_ROOT / "domain.yml"

Handler = Callable[[UserMessage], Awaitable[Any]]

__all__ = [
    "EMPTY_REPLY", "CountingOutputChannel", "clip_message", "guard_handler", "is_blank", "safe_reply_text",
    "seek_care_level", "seek_care_message",
]


def safe_reply_text() -> str:
    return fill_placeholders(SAFE_REPLY)


def seek_care_level(message: dict[str, Any]) -> str | None:
    """The triage level of a seek-care message (its `custom` marker), None for any other message."""
    for holder in (message.get("custom"), message.get("metadata"), message):
        if isinstance(holder, dict) and holder.get("kind") == SEEK_CARE_KIND and holder.get("level") in TRIAGE_LEVELS:
            return holder["level"]
    return None


def _at_least_as_serious(level: str, than: str) -> bool:
    return TRIAGE_LEVELS.index(level) <= TRIAGE_LEVELS.index(than)  # TRIAGE_LEVELS: most serious first


class CountingOutputChannel(OutputChannel):
    """Passes messages through to the real channel, counts them and remembers a seek-care message.

    A seek-care message no more serious than one already delivered for this patient message is dropped:
    that is how the bot's own late warning is kept from repeating the guard's.
    """

    def __init__(self, inner: OutputChannel, takeover: asyncio.Future | None = None) -> None:
        self.inner = inner
        self.sent = 0
        self.seek_care_sent: str | None = None
        self.takeover = takeover  # resolves to the conversation's active staff takeover, or None
        self._taken_over: bool | None = None
        self.withheld = 0  # ordinary answers held back because staff have taken over
        self.silent_for_staff = False  # set by the guard: no reply at all, staff are replying

    async def taken_over(self) -> bool:
        """Whether staff have taken the conversation over; False if the lookup fails or is not back in time."""
        if self._taken_over is None:
            if self.takeover is None:
                self._taken_over = False
            else:
                try:
                    found = await asyncio.wait_for(asyncio.shield(self.takeover), LOOKUP_TIMEOUT_MS / 1000)
                except Exception:  # noqa: BLE001 - a failed or slow lookup: the bot answers as usual
                    found = None
                self._taken_over = found is not None
        return self._taken_over

    def name(self) -> str:  # type: ignore[override]
        return self.inner.name()

    async def send_response(self, recipient_id: str, message: dict[str, Any], safety: bool = False) -> None:
        """`safety`: the guard's own seek-care message, which a takeover never holds back."""
        level = seek_care_level(message)
        if level is not None and self.seek_care_sent and _at_least_as_serious(self.seek_care_sent, level):
            logger.info("The bot's own seek-care message (%s) was dropped: the guard had sent it already.", level)
            return
        if not safety and level is None and withheld_during_takeover(message) and await self.taken_over():
            self.withheld += 1
            logger.info("Staff have taken this conversation over: an ordinary bot answer was not sent.")
            return
        self.sent += 1
        if level is not None:
            self.seek_care_sent = level
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


@lru_cache(maxsize=1)
def _responses() -> tuple[Any, Domain]:
    """The bot's NLG over the project's domain: the seek-care wording has one home, domain.yml."""
    from bot.nlg import ClinicNLG

    with warnings.catch_warnings():  # Rasa 3 says this on every domain load; nothing to act on
        warnings.filterwarnings("ignore", message="Slot auto-fill has been removed", category=UserWarning)
        domain = Domain.load(str(DOMAIN_FILE))
    return ClinicNLG(domain=domain), domain


async def seek_care_message(level: str, text: str, output_channel: str, sender_id: str = "guard") -> dict[str, Any]:
    """The message the bot itself sends for `utter_seek_care_<level>` on this channel, in the text's language."""
    from bot.language import detect_language

    nlg, domain = _responses()
    language = detect_language(text)
    events = [SlotSet(SLOT_LANGUAGE, language)] if language else []
    tracker = DialogueStateTracker.from_events(sender_id, events, domain.slots)
    action = f"utter_seek_care_{level}"
    generated = await nlg.generate(action, tracker, output_channel)
    if not generated:  # cannot happen with the project's domain (tests check); never leave the patient silent
        generated = {"text": safe_reply_text()}
    generated["utter_action"] = action
    return create_bot_utterance(dict(generated)).message()


@lru_cache(maxsize=1)
def _load_triage_detector() -> None:
    """Build the detector once (~4 s: spaCy and the rules); bot.triage keeps it for every later call."""
    from bot.triage import get_detector

    try:
        get_detector()
    except Exception:  # bot.triage.detect logs and reports a broken detector on every call; the guard still works
        logger.exception("The guard could not load the triage detector at start.")


def urgent_level(text: str) -> str | None:
    """The triage level of a patient message (bot.triage never raises; ~1.5 ms)."""
    from bot.triage import detect

    return detect(text).level


def _streams(channel: OutputChannel) -> bool:
    """True when messages reach the patient as they are sent (web chat), False when one reply collects them."""
    return not isinstance(channel, CollectingOutputChannel) or isinstance(channel, QueueOutputChannel)


def _look_up_takeover(sender_id: str) -> asyncio.Future:
    """Start the takeover lookup in a worker thread (never on the event loop); its result is read when needed."""
    future = asyncio.ensure_future(asyncio.to_thread(takeover_lookup().current, sender_id))
    future.add_done_callback(lambda done: done.cancelled() or done.exception())  # never "exception not retrieved"
    return future


def guard_handler(on_new_message: Handler, timeout_s: float | None = None) -> Handler:
    """Wrap a channel's message handler so every patient message gets some reply, a red flag seek-care in time.

    The timeout (env BOT_REPLY_TIMEOUT_S unless given) is read, and the seek-care responses and the triage
    detector loaded, here, when the channel starts: a bad value or domain stops the server at start instead of
    failing patients, and the first red flag does not wait seconds for spaCy to load on the event loop.
    """
    timeout_s = timeout_s or reply_timeout_s()
    _responses()
    _load_triage_detector()

    async def escalate(message: UserMessage, counter: CountingOutputChannel, waited_s: float) -> str | None:
        """Send seek-care for a red flag the bot has not answered yet; the message's level (None: no red flag)."""
        level = urgent_level(message.text)
        if level is None:
            return None
        if counter.seek_care_sent and _at_least_as_serious(counter.seek_care_sent, level):
            return level  # the bot has warned already
        reply = await seek_care_message(level, message.text, counter.name(), message.sender_id)
        await counter.send_response(message.sender_id, reply, safety=True)
        logger.warning("No seek-care from the bot after %.2f s: the guard sent the %s seek-care message itself "
                       "(processing continues).", waited_s, level)
        return level

    async def guarded(message: UserMessage) -> CountingOutputChannel | None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        recipient = message.sender_id
        if is_blank(message.text):
            await message.output_channel.send_response(recipient, {"text": EMPTY_REPLY})
            return
        message.text = clip_message(message.text)
        counter = CountingOutputChannel(message.output_channel, takeover=_look_up_takeover(recipient))
        message.output_channel = counter
        state = {"returned": False}

        def finished(task: asyncio.Future) -> None:
            if task.cancelled():
                return
            error = task.exception()  # retrieved here, so asyncio never reports it as lost
            if error is not None and state["returned"]:
                logger.error("Handling a message failed after the patient was answered.", exc_info=error)

        task = asyncio.ensure_future(on_new_message(message))
        task.add_done_callback(finished)
        try:
            done, _ = await asyncio.wait({task}, timeout=max(0.0, min(SEEK_CARE_DEADLINE_S, timeout_s)))
            answered = bool(done) and task.exception() is None and counter.sent > 0
            if not answered:
                try:
                    level = await escalate(message, counter, loop.time() - started)
                except Exception:  # never worse than before: the safe reply below still goes out
                    logger.exception("The guard could not send a seek-care message.")
                    level = None
                if level is not None and not done and not _streams(counter.inner):
                    return  # REST / SMS: the reply goes now, with the warning in it
            if not done:
                done, _ = await asyncio.wait({task}, timeout=max(0.0, timeout_s - (loop.time() - started)))
            if not done:
                logger.warning("Bot reply took too long; sent the safe reply (processing continues).")
            elif task.exception() is not None:  # the patient must still get an answer
                logger.error("Handling a message failed; sent the safe reply.", exc_info=task.exception())
            if counter.sent == 0 and (counter.withheld or await counter.taken_over()):
                counter.silent_for_staff = True  # a person replies; the patient was told when staff took over
            elif counter.sent == 0:
                await counter.inner.send_response(recipient, {"text": safe_reply_text()})
        finally:
            state["returned"] = True
        return counter

    return guarded
