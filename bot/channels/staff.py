"""How a staff message reaches the patient outside the patient's own turn.

The review app (bot/review/replies.py) appends the message to the tracker through Rasa's HTTP API,
`POST /conversations/{id}/tracker/events?execute_side_effects=true&output_channel=latest`: under the
conversation's lock Rasa adds the bot event, asks the conversation's latest input channel for an output
channel (`get_output_channel()`), sends the message through it and only then saves the tracker. So a
message that could not be delivered raises, the API answers 500 with the reason, and nothing is recorded.

- SMS: `StaffSmsOutput` creates the message through Twilio's REST API (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN,
  TWILIO_FROM_NUMBER, TWILIO_API_URL; bot.alerts.delivery.send_sms). A patient who texted STOP gets nothing:
  that is refused, as carriers require.
- Web chat: the socket.io output emits to the conversation's room when a widget is connected to this server;
  otherwise the message waits in `WaitingStaffMessages` and is sent when the widget next asks for its
  session (the patient's next visit), exactly once.
- REST has no way to reach the caller later: the message is recorded only (the review app says so).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
from typing import Any

from rasa.core.channels.channel import OutputChannel
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, create_engine, delete, select
from sqlalchemy.engine import Engine

from bot import config
from bot.privacy import mask_sender, private_sqlite_file
from bot.vocabulary import CHANNEL_SMS

logger = logging.getLogger(__name__)

WAITING_DAYS = 30  # a web chat message not fetched within this many days is dropped (the widget forgets after 24 h)


class StaffDeliveryError(RuntimeError):
    """A staff message could not be delivered (the HTTP API reports it; nothing is recorded)."""


class StaffSmsOutput(OutputChannel):
    """Sends staff messages as SMS through Twilio's REST API (used by the HTTP API, never for a webhook reply)."""

    def __init__(self, is_opted_out: Any) -> None:
        self.is_opted_out = is_opted_out  # phone -> bool (bot.channels.sms.SmsStateStore.is_opted_out)

    @classmethod
    def name(cls) -> str:
        return CHANNEL_SMS

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        text = message.get("text")
        if not isinstance(text, str) or not text.strip():
            return
        await self.send_text_message(recipient_id, text)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        from bot.alerts.delivery import DeliveryError, send_sms

        account_sid, auth_token, from_number = (config.twilio_account_sid(), config.twilio_auth_token(),
                                                config.twilio_from_number())
        if not (account_sid and auth_token and from_number):
            raise StaffDeliveryError("SMS sending is not set up: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and "
                                     "TWILIO_FROM_NUMBER are needed")
        if await asyncio.to_thread(self.is_opted_out, recipient_id):
            raise StaffDeliveryError("the patient opted out of texts (STOP), so no text was sent")
        try:
            sid = await asyncio.to_thread(send_sms, config.twilio_api_url(), account_sid, auth_token, from_number,
                                          recipient_id, text.strip())
        except DeliveryError as error:
            raise StaffDeliveryError(f"the text was not sent ({error})") from error
        logger.info("Staff SMS to %s sent (Twilio %s).", mask_sender(recipient_id), sid or "no sid")


# --- web chat messages waiting for the patient's next visit ------------------------------------------------

_metadata = MetaData()
waiting_messages = Table(
    "staff_waiting_messages",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sender_id", String(255), nullable=False, index=True),
    Column("created_at", DateTime, nullable=False),
    Column("payload", Text, nullable=False),  # the socket.io `bot_uttered` event, JSON
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class WaitingStaffMessages:
    """Staff messages for a web chat session with no widget connected (SMS_STATE_DB_URL; table made on use)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or config.sms_state_db_url()
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                private_sqlite_file(self.url)
                connect_args = {"check_same_thread": False} if self.url.startswith("sqlite") else {}
                engine = create_engine(self.url, pool_pre_ping=True, connect_args=connect_args)
                _metadata.create_all(engine)
                self._engine = engine
            return self._engine

    def add(self, sender_id: str, event: dict[str, Any]) -> None:
        with self.engine.begin() as connection:
            connection.execute(waiting_messages.insert().values(sender_id=sender_id, created_at=_now(),
                                                                payload=json.dumps(event)))

    def take(self, sender_id: str) -> list[dict[str, Any]]:
        """The session's waiting messages, oldest first, removed as they are read (each is sent once)."""
        cutoff = _now() - dt.timedelta(days=WAITING_DAYS)
        with self.engine.begin() as connection:
            rows = connection.execute(
                select(waiting_messages.c.id, waiting_messages.c.payload, waiting_messages.c.created_at)
                .where(waiting_messages.c.sender_id == sender_id).order_by(waiting_messages.c.id)
            ).all()
            if not rows:
                return []
            taken = connection.execute(delete(waiting_messages).where(waiting_messages.c.id.in_([r.id for r in rows])))
            if taken.rowcount != len(rows):  # another server took them at the same time: it sends them
                raise _Raced()
        return [json.loads(r.payload) for r in rows if r.created_at >= cutoff]

    def take_or_nothing(self, sender_id: str) -> list[dict[str, Any]]:
        try:
            return self.take(sender_id)
        except _Raced:
            return []
        except Exception:  # noqa: BLE001 - a missing store must not stop the chat from opening
            logger.exception("Could not read waiting staff messages.")
            return []


class _Raced(Exception):
    """Two servers took the same waiting messages; the transaction is rolled back for the loser."""
