"""A REST message delivered twice is handled once: the retry gets the answer the first delivery stored.

Why: behind nginx (`make run-cluster`), a Rasa server killed in the middle of a request makes nginx send the
same POST to the next server (`proxy_next_upstream ... non_idempotent`). If the killed server had already
saved the turn, the retry would store the patient's message a second time. nginx gives every client request
one `X-Request-ID` (kept across its retries); a client may send its own as `Idempotency-Key` when it retries
a POST itself. The REST channel makes it the user event's `message_id`, and before handing a message to the
bot asks the tracker store whether this conversation already holds a patient message with that id. If so,
the bot's stored answers to it are the reply, and nothing is stored again.

The lookup is read-only, uses the conversation's own rows (indexed by sender id) and gives up after
LOOKUP_TIMEOUT_MS on a stalled database, as the conversation-owner lookup does; a failed lookup means
"not seen", so the message is handled as usual (never lost, at worst stored twice as before).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.config import tracker_db_url

logger = logging.getLogger(__name__)

REQUEST_KEY_HEADERS = ("Idempotency-Key", "X-Request-ID")  # a client's own key first, then nginx's
REQUEST_KEY_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{8,128}\Z")
LOOKUP_TIMEOUT_MS = 100
# copied from the stored bot event into the REST reply, as Rasa's CollectingOutputChannel shapes a message
_REPLY_KEYS = ("text", "image", "buttons", "attachment", "custom", "elements", "quick_replies")

_CONVERSATION_TURN_EVENTS = sa.text(
    "SELECT type_name, data FROM events WHERE sender_id = :sender AND type_name IN ('user', 'bot') "
    "AND id >= (SELECT MIN(id) FROM events WHERE sender_id = :sender AND type_name = 'user' "
    "AND data LIKE :pattern) ORDER BY id"
)


def request_key(headers: Any) -> str | None:
    """The request's redelivery key (`Idempotency-Key`, else nginx's `X-Request-ID`), None if absent or odd."""
    for name in REQUEST_KEY_HEADERS:
        value = (headers.get(name) or "").strip()
        if value:
            return f"rest:{value}" if REQUEST_KEY_PATTERN.match(value) else None
    return None


def _reply(sender_id: str, bot_event: dict[str, Any]) -> dict[str, Any]:
    data = bot_event.get("data") or {}
    message: dict[str, Any] = {"recipient_id": sender_id}
    if bot_event.get("text"):
        message["text"] = bot_event["text"]
    message.update({key: data[key] for key in _REPLY_KEYS[1:] if data.get(key)})
    return message


class StoredAnswers:
    """Reads (read-only) what the tracker store holds for a message delivered before."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url
        self._engine: Engine | None = None

    def engine(self) -> Engine:
        if self._engine is None:
            from bot.review.db import tracker_engine  # the one read-only way into the tracker store

            self._engine = tracker_engine(self.url or tracker_db_url())
        return self._engine

    def answers(self, sender_id: str, message_id: str) -> list[dict[str, Any]] | None:
        """The bot's stored replies to the patient message `message_id`, or None if it was never stored."""
        pattern = f'%"message_id": {json.dumps(message_id)}%'
        try:
            with self.engine().connect() as connection, connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.exec_driver_sql(f"SET LOCAL statement_timeout = {LOOKUP_TIMEOUT_MS}")
                rows = connection.execute(
                    _CONVERSATION_TURN_EVENTS, {"sender": sender_id, "pattern": pattern}
                ).fetchall()
        except sa.exc.SQLAlchemyError as error:
            logger.debug("Redelivery lookup failed (no tracker store yet, or a stalled database): %s", error)
            return None
        events = [json.loads(data) for _, data in rows]
        if not events or events[0].get("message_id") != message_id:
            return None
        replies = []
        for event in events[1:]:
            if event.get("event") == "user":
                break
            replies.append(_reply(sender_id, event))
        return replies
