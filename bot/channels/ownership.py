"""Which channel a conversation belongs to, so no channel writes into another channel's conversation.

A conversation id (Rasa's sender id) is shared by every channel, and the REST contract lets an
integration choose it. Without a check, a REST post with a patient's phone number as sender would
write into that patient's SMS conversation. Two rules keep ids inside their channel:

1. Reserved forms: a phone number in E.164 form (`+15551234567`, optionally `whatsapp:`/`sms:`/`tel:`)
   is the form Twilio gives the SMS channel, so only the SMS channel may use it.
2. Recorded owner: a conversation belongs to the channel of its first patient message, as the
   tracker store records it (`input_channel` of the first `user` event). Another channel is refused.
   The tracker store itself is the record, so conversations stored before this check are covered too.

A channel that owns an id by form (SMS and phone numbers) is never refused, so nobody can lock a
patient out of their own number by writing to it first.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.config import tracker_db_url
from bot.vocabulary import CHANNEL_SMS

logger = logging.getLogger(__name__)

PHONE_NUMBER_ID = re.compile(r"^(?:whatsapp:|sms:|tel:)?\s*\+[\d\s().-]{6,24}\Z", re.IGNORECASE)
KNOWN_OWNERS_CACHED = 50_000  # an owner never changes once recorded, so it is safe to remember
# A lookup runs before the reply guard's clock starts, so it must not wait on a stalled database: past this
# it counts as a failed lookup (allowed, like a missing store) and the red-flag deadline still holds.
LOOKUP_TIMEOUT_MS = 100

_FIRST_USER_EVENT = sa.text(
    "SELECT data FROM events WHERE sender_id = :sender AND type_name = 'user' ORDER BY id LIMIT 1"
)


def reserved_channel(sender_id: str) -> str | None:
    """The channel whose id form this is (phone numbers: SMS), or None for free-form ids."""
    return CHANNEL_SMS if PHONE_NUMBER_ID.match(sender_id) else None


class ConversationOwners:
    """Looks up (read-only) and remembers which channel owns each conversation id."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._known: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def engine(self) -> Engine:
        if self._engine is None:
            from bot.review.db import tracker_engine  # the one read-only way into the tracker store

            self._engine = tracker_engine(self.url or tracker_db_url())
        return self._engine

    def recorded_owner(self, sender_id: str) -> str | None:
        """The input channel of the conversation's first patient message, None for a new conversation."""
        with self._lock:
            if sender_id in self._known:
                return self._known[sender_id]
        try:
            with self.engine().connect() as connection, connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.exec_driver_sql(f"SET LOCAL statement_timeout = {LOOKUP_TIMEOUT_MS}")
                row = connection.execute(_FIRST_USER_EVENT, {"sender": sender_id}).first()
        except sa.exc.SQLAlchemyError as error:
            # No tracker store yet (fresh install, no events table): no conversation can be owned.
            logger.debug("Conversation owner lookup failed (no tracker store yet, or a stalled database): %s", error)
            return None
        if row is None:
            return None
        try:
            owner = json.loads(row[0]).get("input_channel")
        except (TypeError, ValueError, AttributeError):
            owner = None
        if owner:
            with self._lock:
                self._known[sender_id] = owner
                if len(self._known) > KNOWN_OWNERS_CACHED:
                    self._known.popitem(last=False)
        return owner

    def conflict(self, sender_id: str, channel: str) -> str | None:
        """The other channel that owns `sender_id`, or None when `channel` may write to it."""
        reserved = reserved_channel(sender_id)
        if reserved is not None:
            return None if reserved == channel else reserved
        owner = self.recorded_owner(sender_id)
        return owner if owner and owner != channel else None
