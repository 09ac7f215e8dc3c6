"""One conversation as staff read it: patient and bot turns with intent, topic answered and escalation.

Built from one sender's event rows (ordered by id). An exchange is a patient message and what the
bot did in reply, so an escalation marks both the message and the seek-care reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from bot.review.events import (
    ESCALATION_LEVELS,
    UNANSWERED_INTENTS,
    EventsTable,
    bot_message,
    event_data,
    higher_level,
    user_intent,
)
from bot.review.filters import channel_label
from bot.takeover import Takeover, takeover_from_slot, withheld_during_takeover
from bot.vocabulary import SLOT_STAFF_TAKEOVER, SMS_OPTED_OUT_KEY, STAFF_MESSAGE_KEY

MAX_TRANSCRIPT_EVENTS = 5000
OPTED_OUT_NOTE = "Sent after the patient texted STOP: recorded and triaged, but no reply was sent"
NOT_SENT_NOTE = "Not sent (the patient had opted out with STOP)"
WITHHELD_NOTE = "Not sent: staff had taken over"


@dataclass
class Turn:
    kind: str  # "patient" | "bot" | "staff" (a message staff sent) | "session" | "takeover" (taken over / handed back)
    at: datetime | None
    text: str = ""
    intent: str | None = None
    confidence: float | None = None
    channel: str | None = None
    topic: str | None = None
    escalation: str | None = None
    symptoms: list[str] = field(default_factory=list)
    note: str | None = None  # e.g. "Seek-care message (emergency)"
    exchange: int = 0
    event_id: int | None = None  # the patient message's row in the events table (staff label it by this id)

    @property
    def unanswered(self) -> bool:
        return self.kind == "patient" and self.intent in UNANSWERED_INTENTS

    @property
    def channel_label(self) -> str:
        return channel_label(self.channel)


@dataclass
class Transcript:
    ref: int
    sender_id: str
    turns: list[Turn]
    channel: str | None
    started: datetime | None
    last_activity: datetime | None
    truncated: bool = False
    takeover: Takeover | None = None  # the latest staff takeover (may have timed out)

    @property
    def patient_turns(self) -> int:
        return sum(1 for turn in self.turns if turn.kind == "patient")

    @property
    def escalation(self) -> str | None:
        levels = {turn.escalation for turn in self.turns if turn.kind == "patient" and turn.escalation}
        return "emergency" if "emergency" in levels else "urgent" if "urgent" in levels else None

    @property
    def unanswered(self) -> int:
        return sum(1 for turn in self.turns if turn.unanswered)

    @property
    def channel_label(self) -> str:
        return channel_label(self.channel)


def read_transcript(events: EventsTable, sender_id: str) -> Transcript | None:
    """The transcript of one sender (at most MAX_TRANSCRIPT_EVENTS events), or None if it has none."""
    if not events.available():
        return None
    rows = events.rows(
        "SELECT id, type_name, timestamp, intent_name, action_name, data FROM events "
        "WHERE sender_id = :sender ORDER BY id LIMIT :limit",
        {"sender": sender_id, "limit": MAX_TRANSCRIPT_EVENTS + 1},
    )
    if not rows:
        return None
    return build_transcript(events, sender_id, rows[:MAX_TRANSCRIPT_EVENTS],
                            truncated=len(rows) > MAX_TRANSCRIPT_EVENTS)


def build_transcript(events: EventsTable, sender_id: str, rows: Sequence[sa.engine.Row],
                     truncated: bool = False) -> Transcript:
    turns: list[Turn] = []
    exchange = 0
    current: Turn | None = None  # the patient turn of the current exchange
    exchange_level: dict[int, str] = {}
    unsent: set[int] = set()  # exchanges whose patient message came after STOP: the bot's answers were dropped
    channel: str | None = None
    takeover: Takeover | None = None
    for row in rows:
        data = event_data(row.data)
        kind = row.type_name
        at = events.local_time(row.timestamp)
        if kind == "user":
            exchange += 1
            intent, confidence = user_intent(data)
            current = Turn(kind="patient", at=at, text=str(data.get("text") or ""),
                           intent=row.intent_name or intent, confidence=confidence,
                           channel=data.get("input_channel"), exchange=exchange, event_id=int(row.id))
            channel = channel or current.channel
            metadata = data.get("metadata")
            if isinstance(metadata, dict) and metadata.get(SMS_OPTED_OUT_KEY):
                current.note = OPTED_OUT_NOTE
                unsent.add(exchange)
            turns.append(current)
        elif kind == "bot" and _staff_member(data):
            turns.append(Turn(kind="staff", at=at, text=str(data.get("text") or ""),
                              note=f"Sent by staff: {_staff_member(data)}", exchange=exchange))
        elif kind == "bot":
            text, note, level = bot_message(data)
            if takeover and takeover.active(row.timestamp) and withheld_during_takeover(_as_message(data)):
                note = f"{note}. {WITHHELD_NOTE}" if note else WITHHELD_NOTE
            if level:
                exchange_level.setdefault(exchange, level)
            if exchange in unsent:
                note = f"{note}. {NOT_SENT_NOTE}" if note else NOT_SENT_NOTE
            if text or note:
                turns.append(Turn(kind="bot", at=at, text=text, note=note, exchange=exchange))
        elif kind == "slot":
            in_exchange = current is not None and current.exchange == exchange
            name = row.action_name or data.get("name")
            slot_value = data.get("value")
            if name == SLOT_STAFF_TAKEOVER:
                takeover = takeover_from_slot(slot_value)
                turns.append(Turn(kind="takeover", at=at, exchange=exchange, note=(
                    f"{takeover.staff} took over from the assistant" if takeover else "Handed back to the assistant")))
            elif name == "triage_level" and slot_value in ESCALATION_LEVELS:
                if in_exchange:
                    current.escalation = higher_level(current.escalation, slot_value)  # type: ignore[union-attr]
                exchange_level[exchange] = higher_level(exchange_level.get(exchange), slot_value)
            elif name == "last_topic" and slot_value and in_exchange:
                current.topic = str(slot_value)  # type: ignore[union-attr]
            elif name == "symptoms" and slot_value and in_exchange:
                values = slot_value if isinstance(slot_value, list) else [slot_value]
                current.symptoms = [str(v) for v in values]  # type: ignore[union-attr]
        elif kind == "session_started":
            current = None  # a takeover outlasts a new session (bot/takeover.py)
            exchange += 1
            turns.append(Turn(kind="session", at=at, exchange=exchange))
    for turn in turns:
        level = exchange_level.get(turn.exchange)
        if level and turn.kind in ("patient", "bot"):
            turn.escalation = higher_level(turn.escalation, level)
    # drop a leading session marker: the conversation start is shown in the header
    while turns and turns[0].kind == "session":
        turns.pop(0)
    timestamps = [row.timestamp for row in rows if row.timestamp is not None]
    return Transcript(
        ref=int(rows[0].id),
        sender_id=sender_id,
        turns=turns,
        channel=channel,
        started=events.local_time(min(timestamps)) if timestamps else None,
        last_activity=events.local_time(max(timestamps)) if timestamps else None,
        truncated=truncated,
        takeover=takeover,
    )


def _as_message(data: dict) -> dict:
    """A stored bot event as the message its channel sent (what BotUttered.message() gives)."""
    payload = data.get("data") if isinstance(data.get("data"), dict) else {}
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    return {**payload, **metadata, "text": data.get("text")}


def _staff_member(data: dict) -> str | None:
    """The staff member who sent a bot event (a reply or a takeover notice), None for the assistant's own."""
    metadata = data.get("metadata")
    member = metadata.get(STAFF_MESSAGE_KEY) if isinstance(metadata, dict) else None
    return str(member)[:80] if member else None
