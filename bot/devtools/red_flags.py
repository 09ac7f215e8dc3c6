"""Send a red flag over each channel of a running bot and time its seek-care message (fault tests, bench).

REST and SMS: the seconds until the HTTP reply that carries it. Web chat (socket.io): the seconds from
sending until the `bot_uttered` event with the seek-care marker. SMS replies carry no marker (plain text),
so the level is read from the bot's own SMS wording of each level.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from functools import lru_cache

from bot.devtools.socketio_client import MiniSocketIO
from bot.devtools.twilio_requests import post_sms, twilio_params
from bot.vocabulary import CHANNEL_SMS, SEEK_CARE_KIND, TRIAGE_LEVELS

RED_FLAG = "since the shot i cant feel my groin and i peed myself, can i take a shower?"
QUESTION = "can i drive home after the injection"


@dataclass
class Escalation:
    channel: str
    seconds: float | None  # until the seek-care message arrived; None: it never came
    level: str | None  # its level
    texts: list[str] = field(default_factory=list)  # everything the patient was shown

    @property
    def warned(self) -> bool:
        return self.level is not None


@lru_cache(maxsize=1)
def sms_wordings() -> dict[str, str]:
    """level -> the first sentence of the bot's SMS seek-care message (as domain.yml renders it)."""
    from bot.channels.guard import seek_care_message

    return {
        level: asyncio.run(seek_care_message(level, RED_FLAG, CHANNEL_SMS))["text"].split(". ")[0]
        for level in TRIAGE_LEVELS
    }


def over_rest(stack, sender: str, text: str = RED_FLAG, timeout: float = 30.0) -> Escalation:
    seconds, body = stack.send(sender, text, timeout=timeout)
    levels = [(m.get("custom") or {}).get("level") for m in body
              if (m.get("custom") or {}).get("kind") == SEEK_CARE_KIND]
    return Escalation("rest", seconds if levels else None, levels[0] if levels else None,
                      [m["text"] for m in body if m.get("text")])


def over_sms(stack, phone: str, text: str = RED_FLAG, timeout: float = 30.0) -> Escalation:
    started = time.perf_counter()
    reply = post_sms(stack.sms_url, twilio_params(phone, text), timeout=timeout)
    seconds = time.perf_counter() - started
    assert reply.status == 200, (reply.status, reply.body)
    level = next((lvl for lvl, wording in sms_wordings().items() if wording in reply.text), None)
    return Escalation("sms", seconds if level else None, level, reply.messages)


async def over_web_async(
    base_url: str, text: str = RED_FLAG, timeout: float = 30.0, before: str | None = None
) -> tuple[str, Escalation]:
    """(session id, escalation). `before`: a message sent first in the same conversation, not awaited."""
    async with MiniSocketIO(base_url) as client:
        session = await client.session(None, 10)
        if before:
            await client.emit("user_uttered", {"message": before, "session_id": session})
            await asyncio.sleep(0.2)
        started = time.perf_counter()
        await client.emit("user_uttered", {"message": text, "session_id": session})
        texts: list[str] = []
        deadline = started + timeout
        while time.perf_counter() < deadline:
            try:
                event = await client.receive("bot_uttered", max(0.05, deadline - time.perf_counter()))
            except asyncio.TimeoutError:
                break
            texts.append(event.get("text", ""))
            # the web chat carries the markers in `metadata` (older events: in `custom`)
            marker = next((m for m in (event.get("metadata"), event.get("custom"))
                           if isinstance(m, dict) and m.get("kind") == SEEK_CARE_KIND), None)
            if marker is not None:
                return session, Escalation("web", time.perf_counter() - started, marker.get("level"), texts)
        return session, Escalation("web", None, None, texts)


def over_web(stack, text: str = RED_FLAG, timeout: float = 30.0, before: str | None = None) -> tuple[str, Escalation]:
    return asyncio.run(over_web_async(stack.url, text, timeout, before))
