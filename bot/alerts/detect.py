"""Which stored patient message is an escalation, read from a Rasa `user` event.

The NLU component (bot/components/urgent_symptoms.py) puts a `triage_level` entity (emergency | urgent)
and one `symptom` entity per fired rule on the message, or a `symptom_check` entity for a possible new
problem no rule confirms. The same dict arrives from the event broker (`sender_id` + `Event.as_dict()`)
and from a row of the tracker store's `events` table (sender_id column + `data`), so both intakes share
this one reading.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.vocabulary import ENTITY_SYMPTOM, ENTITY_SYMPTOM_CHECK, ENTITY_TRIAGE_LEVEL, TRIAGE_LEVELS

SYMPTOM_CHECK_LEVEL = "symptom_check"  # the alert level of a flagged possible new problem
ALERT_LEVELS = (*TRIAGE_LEVELS, SYMPTOM_CHECK_LEVEL)  # most serious first
# cheap pre-filter for SQL (LIKE) and raw broker bodies: an escalated event's JSON names one of these
ENTITY_MARKERS = (f'"{ENTITY_TRIAGE_LEVEL}"', f'"{ENTITY_SYMPTOM_CHECK}"')


@dataclass(frozen=True)
class Escalation:
    key: str  # unique per escalated patient message: sha256 of conversation id + message id (or time)
    conversation_id: str
    level: str  # emergency | urgent | symptom_check
    symptoms: tuple[str, ...]  # triage rule ids (knowledge/triage_rules.yml), no patient text
    channel: str | None  # Rasa input channel: rest | socketio | sms
    occurred_at: float  # the message's time, seconds since the epoch


def alert_key(conversation_id: str, message_id: str | None, timestamp: float | None) -> str:
    """The outbox's unique key: the same message seen twice (broker + table, redelivery) has one key."""
    identity = message_id or repr(timestamp)
    return hashlib.sha256(f"{conversation_id}\x1f{identity}".encode()).hexdigest()


def escalation_from_event(event: Mapping[str, Any], sender_id: str | None = None) -> Escalation | None:
    """The escalation a `user` event reports, or None (other events, ordinary messages, bad input)."""
    if not isinstance(event, Mapping) or event.get("event") != "user":
        return None
    conversation_id = sender_id or event.get("sender_id")
    parse_data = event.get("parse_data")
    if not isinstance(conversation_id, str) or not conversation_id or not isinstance(parse_data, Mapping):
        return None
    entities = [item for item in parse_data.get("entities") or [] if isinstance(item, Mapping)]
    levels = {item.get("value") for item in entities if item.get("entity") == ENTITY_TRIAGE_LEVEL}
    level = next((name for name in TRIAGE_LEVELS if name in levels), None)
    if level is None and any(item.get("entity") == ENTITY_SYMPTOM_CHECK and item.get("value") for item in entities):
        level = SYMPTOM_CHECK_LEVEL
    if level is None:
        return None
    symptoms = tuple(dict.fromkeys(
        str(item["value"]) for item in entities if item.get("entity") == ENTITY_SYMPTOM and item.get("value")))
    timestamp = event.get("timestamp")
    timestamp = float(timestamp) if isinstance(timestamp, (int, float)) else None
    message_id = event.get("message_id") if isinstance(event.get("message_id"), str) else None
    channel = event.get("input_channel") if isinstance(event.get("input_channel"), str) else None
    return Escalation(
        key=alert_key(conversation_id, message_id, timestamp),
        conversation_id=conversation_id,
        level=level,
        symptoms=symptoms,
        channel=channel,
        occurred_at=timestamp or 0.0,
    )
