"""Staff takeover of a conversation: its state, where it is recorded, and which bot messages it holds back.

A staff member takes over from the review app (bot/review/replies.py): the app appends, through Rasa's HTTP
API, a `staff_takeover` slot event `{"staff", "since", "until"}` (and the notice that a person is replying)
to the conversation's tracker; handing back sets the slot to null. The tracker is the one record, so every
Rasa server of a cluster, the transcript and the exports agree.

While a takeover is active the channel guard (bot/channels/guard.py) still runs every patient message
through the bot (stored, triaged, alerts raised), but withholds the bot's ordinary answers. Safety messages
always go out: the seek-care message (the bot's or the guard's own) and the symptom check-in. A takeover
ends when staff hand back or when `until` passes (STAFF_TAKEOVER_MINUTES, bot.config). It outlasts a new Rasa
session on purpose: staff often take over a conversation that has been idle for hours (Rasa starts a new
session, and resets the slot in the live tracker, at the patient's next message), and that message is exactly
the one the takeover is for. So the state is read from the stored slot events, not from the live slot.

This module imports neither Rasa nor Flask: the Rasa process and the review app both use it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.vocabulary import (
    OUTREACH_MESSAGE_KEY,
    SEEK_CARE_KIND,
    SLOT_STAFF_TAKEOVER,
    STAFF_MESSAGE_KEY,
    SYMPTOM_CHECK_KIND,
    TRIAGE_LEVELS,
)

logger = logging.getLogger(__name__)

# A lookup races the bot's own processing and never holds a seek-care message; past this, an ordinary answer
# is sent as if there were no takeover (the patient is never left without a reply because a lookup stalled).
LOOKUP_TIMEOUT_MS = 150
# Messages that reach the patient during a takeover: safety first, and staff messages themselves.
# A message is recognised by its `custom.kind` marker or, where a channel variant has none (the SMS wording
# is plain text), by the domain response that produced it (Rasa's `utter_action`).
ALWAYS_SENT_KINDS = frozenset({SEEK_CARE_KIND, SYMPTOM_CHECK_KIND})
ALWAYS_SENT_RESPONSES = frozenset({f"utter_seek_care_{level}" for level in TRIAGE_LEVELS} | {"utter_symptom_check"})

# The newest takeover slot event (whatever session it was set in: see the module docstring).
_LATEST_TAKEOVER_EVENT = sa.text(
    "SELECT type_name, data FROM events WHERE sender_id = :sender AND type_name = 'slot' AND action_name = :slot "
    "ORDER BY id DESC LIMIT 1"
)


@dataclass(frozen=True)
class Takeover:
    """Who took the conversation over, and from/until when (Unix seconds)."""

    staff: str
    since: float
    until: float

    def active(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.until

    def slot_value(self) -> dict[str, Any]:
        return {"staff": self.staff, "since": self.since, "until": self.until}

    @classmethod
    def start(cls, staff: str, minutes: float, now: float | None = None) -> Takeover:
        since = time.time() if now is None else now
        return cls(staff=staff, since=round(since, 3), until=round(since + minutes * 60.0, 3))


def takeover_from_slot(value: Any) -> Takeover | None:
    """The takeover a `staff_takeover` slot value describes; None for null or anything malformed."""
    if not isinstance(value, dict):
        return None
    try:
        return Takeover(staff=str(value["staff"])[:80], since=float(value["since"]), until=float(value["until"]))
    except (KeyError, TypeError, ValueError):
        return None


def message_kind(message: dict[str, Any]) -> str | None:
    """The `kind` marker of a bot message (in `custom`, or already moved to `metadata` by a channel)."""
    for holder in (message.get("custom"), message.get("metadata"), message):
        if isinstance(holder, dict) and isinstance(holder.get("kind"), str):
            return holder["kind"]
    return None


def _marked(message: dict[str, Any], key: str) -> bool:
    """The bot event's metadata has `key` (merged into the message, or still under `metadata`)."""
    metadata = message.get("metadata")
    return bool(message.get(key)) or bool(isinstance(metadata, dict) and metadata.get(key))


def is_staff_message(message: dict[str, Any]) -> bool:
    """A message staff wrote or sent (reply, takeover notice): marked in the bot event's metadata."""
    return _marked(message, STAFF_MESSAGE_KEY)


def is_safety_message(message: dict[str, Any]) -> bool:
    """A seek-care message or the symptom check-in, on any channel (with or without its marker)."""
    return message_kind(message) in ALWAYS_SENT_KINDS or message.get("utter_action") in ALWAYS_SENT_RESPONSES


def withheld_during_takeover(message: dict[str, Any]) -> bool:
    """True for a bot message that a takeover holds back: anything but safety messages and the messages sent
    outside a patient's turn (staff messages; reminder and check-in texts, which the outreach worker sends)."""
    return not is_safety_message(message) and not is_staff_message(message) and not _marked(message, OUTREACH_MESSAGE_KEY)


class TakeoverLookup:
    """Reads (read-only SQL, like bot.channels.ownership) whether a conversation is taken over right now."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                from bot.config import tracker_db_url
                from bot.review.db import tracker_engine  # the one read-only way into the tracker store

                self._engine = tracker_engine(self.url or tracker_db_url())
            return self._engine

    def current(self, sender_id: str, now: float | None = None) -> Takeover | None:
        """The active takeover of `sender_id`, or None (also when the store cannot be read in time)."""
        try:
            with self.engine().connect() as connection, connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.exec_driver_sql(f"SET LOCAL statement_timeout = {LOOKUP_TIMEOUT_MS}")
                row = connection.execute(_LATEST_TAKEOVER_EVENT, {"sender": sender_id, "slot": SLOT_STAFF_TAKEOVER}).first()
        except (sa.exc.SQLAlchemyError, ValueError) as error:
            logger.debug("Takeover lookup failed (no tracker store yet, or a stalled database): %s", error)
            return None
        if row is None or row[0] != "slot":
            return None
        try:
            value = json.loads(row[1]).get("value")
        except (TypeError, ValueError, AttributeError):
            return None
        takeover = takeover_from_slot(value)
        return takeover if takeover is not None and takeover.active(now) else None


_lookup: dict[str, TakeoverLookup] = {}


def takeover_lookup() -> TakeoverLookup:
    """The process's lookup (one engine per process, created on first use)."""
    if "default" not in _lookup:
        _lookup["default"] = TakeoverLookup()
    return _lookup["default"]
