"""Rasa's `events` table (SQLTrackerStore): read-only access and how its rows are decoded.

Event rows used (columns id, sender_id, type_name, timestamp, intent_name, action_name, data):
- `user`: patient message; intent_name = recognised intent; data has text, parse_data, input_channel
- `bot`: bot message; data has text and data (custom payloads, buttons)
- `slot`: action_name = slot name (`triage_level`, `last_topic`, `symptoms`); data has value
- `session_started`: a new Rasa session
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.review.db import StoreUnavailable, has_events_table
from bot.vocabulary import DECLINE_INTENTS, TRIAGE_LEVELS

UNANSWERED_INTENTS = DECLINE_INTENTS
UNANSWERED_SQL = "('nlu_fallback', 'out_of_scope')"
ESCALATION_LEVELS = TRIAGE_LEVELS
BUCKET_S = 900  # dashboards group by 15-minute buckets in SQL, then by local day (every UTC offset is a multiple)


class EventsTable:
    """Read-only queries on the `events` table, with the SQL that differs between databases."""

    def __init__(self, engine: Engine, tz: tzinfo):
        self.engine = engine
        self.tz = tz
        self.dialect = engine.dialect.name

    def available(self) -> bool:
        return has_events_table(self.engine)

    def rows(self, sql: str, params: Mapping[str, object] | None = None) -> list[sa.engine.Row]:
        """Run one query; a store that cannot be read raises StoreUnavailable (shown to staff as such)."""
        try:
            with self.engine.connect() as connection:
                return list(connection.execute(sa.text(sql), dict(params or {})))
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as error:
            raise StoreUnavailable(str(error.orig).strip()) from error

    # SQL fragments that depend on the database (only trusted constants are interpolated)
    def json(self, *path: str, column: str = "data") -> str:
        """SQL for the text at `path` inside a JSON column."""
        if self.dialect == "sqlite":
            return f"json_extract({column}, '$." + ".".join(path) + "')"
        if self.dialect == "postgresql":
            return f"(CAST({column} AS json) #>> '{{" + ",".join(path) + "}')"
        if self.dialect == "mysql":
            return f"JSON_UNQUOTE(JSON_EXTRACT({column}, '$." + ".".join(path) + "'))"
        raise StoreUnavailable(f"unsupported database {self.dialect}")

    def bucket(self, column: str) -> str:
        """SQL for the 15-minute bucket number of a timestamp column."""
        if self.dialect == "sqlite":
            return f"CAST({column} / {BUCKET_S} AS INTEGER)"
        return f"CAST(FLOOR({column} / {BUCKET_S}) AS BIGINT)"

    def local_time(self, timestamp: float | None) -> datetime | None:
        return None if timestamp is None else datetime.fromtimestamp(float(timestamp), self.tz)


def event_data(raw: str | None) -> dict[str, Any]:
    """The `data` column as a dict; a row Rasa wrote half-way reads as empty rather than failing the page."""
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def user_intent(data: Mapping[str, Any]) -> tuple[str | None, float | None]:
    """Intent name and confidence from a `user` event's parse data."""
    intent = (data.get("parse_data") or {}).get("intent") or {}
    confidence = intent.get("confidence")
    return intent.get("name"), float(confidence) if isinstance(confidence, (int, float)) else None


def bot_message(data: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    """Text (or button titles), a note for seek-care messages, and the seek-care level of a `bot` event."""
    payload = data.get("data") or {}
    custom = payload.get("custom") if isinstance(payload, dict) else None
    note = level = None
    if isinstance(custom, dict) and custom.get("kind") == "seek_care":
        level = custom.get("level")
        note = f"Seek-care message ({level})" if level else "Seek-care message"
    elif isinstance(custom, dict) and custom.get("kind") == "symptom_check":
        note = "Symptom check-in: a possible new problem no rule confirmed (flagged for staff)"
    text = data.get("text")
    if not text and isinstance(payload, dict):
        buttons = payload.get("buttons") or []
        text = " / ".join(str(b.get("title", "")) for b in buttons if isinstance(b, dict))
    return str(text or ""), note, level if level in ESCALATION_LEVELS else None


def higher_level(current: str | None, new: str) -> str:
    """Emergency outranks urgent, so a conversation shows the worst level it reached."""
    if current == "emergency" or new == "emergency":
        return "emergency"
    return new or current or ""
