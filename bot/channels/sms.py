"""Twilio SMS channel: POST /webhooks/sms/webhook, answered with TwiML inside Twilio's 15 s window.

credentials.yml (secrets stay in the environment; a missing variable must not stop the server):

    bot.channels.sms.TwilioSmsInput:
      # auth_token: read from env TWILIO_AUTH_TOKEN
      # webhook_url: read from env TWILIO_WEBHOOK_URL (the exact public URL configured in Twilio)

What it does, in order, for each request Twilio sends (form-encoded, signed):

1. X-Twilio-Signature is checked with twilio's RequestValidator against TWILIO_WEBHOOK_URL, or the
   URL rebuilt from the request (X-Forwarded-Proto / X-Forwarded-Host honoured: a forged header
   cannot help without the auth token). Unsigned, forged or unconfigured -> 403; nothing is recorded.
2. The same MessageSid twice -> empty <Response/> the second time (store: SQL table next to the
   opt-outs, or Redis when REDIS_URL is set).
3. STOP/STOPALL/UNSUBSCRIBE/CANCEL/END/QUIT (+ OPTOUT/REVOKE) -> confirmation once, then silence until
   START/UNSTOP (or YES while opted out). HELP/INFO -> clinic name, phone, hours, emergency number
   (answered even while opted out, as carriers require). Keywords never reach the bot. Any other text
   while opted out gets no reply but still goes through the bot with its answers discarded, so it is
   stored, shown to staff (marked "no reply sent") and a red flag in it is flagged (triage_level).
4. Empty body -> a short prompt; anything else goes to the bot (through bot.channels.guard) with
   sender_id = the patient's number; the reply is plain text in <Message> elements of at most 320
   characters, cut between sentences. After SMS_REPLY_TIMEOUT_S (<= 12 s) a safe reply with the
   clinic's number is sent instead; the bot keeps processing and the tracker keeps its answer.

Phone numbers are masked (bot.privacy.mask_sender) wherever this module logs them.
Opt-outs and seen MessageSids live in SMS_STATE_DB_URL (default: the tracker database, TRACKER_DB_URL).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy import Boolean, Column, DateTime, MetaData, String, Table, create_engine, delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from bot import config
from bot.channels.guard import clip_message, guard_handler, safe_reply_text
from bot.channels.ownership import ConversationOwners
from bot.channels.sms_text import (
    HELP_KEYWORDS,
    OPT_IN_KEYWORDS,
    OPT_IN_WHEN_OPTED_OUT,
    OPT_OUT_KEYWORDS,
    keyword,
    sms_messages,
)
from bot.channels.staff import StaffSmsOutput
from bot.messages import EMPTY_REPLY, HELP_REPLY, MEDIA_REPLY, OPT_IN_REPLY, OPT_OUT_REPLY
from bot.privacy import mask_sender, private_sqlite_file
from bot.settings import fill_placeholders
from bot.vocabulary import CHANNEL_SMS, SMS_OPTED_OUT_KEY

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64_000
MAX_REPLY_TIMEOUT_S = 12.0  # Twilio waits 15 s for the TwiML
SEEN_MESSAGE_DAYS = 7



# --- state: opt-outs and seen MessageSids ----------------------------------------------------------

_metadata = MetaData()
opt_outs = Table(
    "sms_opt_outs",
    _metadata,
    Column("phone", String(40), primary_key=True),
    Column("opted_out", Boolean, nullable=False),
    Column("changed_at", DateTime, nullable=False),
)
seen_messages = Table(
    "sms_seen_messages",
    _metadata,
    Column("message_sid", String(64), primary_key=True),
    Column("received_at", DateTime, nullable=False, index=True),
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class SmsStateStore:
    """Opt-out flags and seen MessageSids in a SQL database (tables created on first use).

    With REDIS_URL set, seen MessageSids go to Redis instead (SET NX with a 7-day expiry), so several
    Rasa servers share them; opt-outs always stay in SQL, they are a record that must last.
    """

    def __init__(self, url: str | None = None, redis_url: str | None = None) -> None:
        self.url = url or config.sms_state_db_url()
        self.redis_url = config.redis_url() if redis_url is None else redis_url
        self.redis_prefix = config.redis_lock_prefix() if self.redis_url else ""
        self._engine: Engine | None = None
        self._redis: Any = None
        self._lock = threading.Lock()
        self._claims = 0

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                private_sqlite_file(self.url)  # a SQLite file (the tracker's, by default) is created 0600
                connect_args = {"check_same_thread": False} if self.url.startswith("sqlite") else {}
                engine = create_engine(self.url, pool_pre_ping=True, connect_args=connect_args)
                _metadata.create_all(engine)
                self._engine = engine
            return self._engine

    def _redis_client(self) -> Any:
        if self._redis is None and self.redis_url:
            import redis

            self._redis = redis.Redis.from_url(self.redis_url, socket_timeout=2)
        return self._redis

    def claim(self, message_sid: str) -> bool:
        """True the first time a MessageSid is seen, False for a repeat delivery."""
        client = self._redis_client()
        if client is not None:
            try:
                return bool(client.set(f"{self.redis_prefix}:sms_seen:{message_sid}", 1, nx=True, ex=SEEN_MESSAGE_DAYS * 86400))
            except Exception:  # Redis down: the SQL table still works
                logger.exception("Redis unavailable for SMS de-duplication; using the SQL store.")
        try:
            with self.engine.begin() as connection:
                connection.execute(seen_messages.insert().values(message_sid=message_sid, received_at=_now()))
        except IntegrityError:
            return False
        self._claims += 1
        if self._claims % 500 == 1:
            self.prune()
        return True

    def prune(self) -> None:
        cutoff = _now() - dt.timedelta(days=SEEN_MESSAGE_DAYS)
        with self.engine.begin() as connection:
            connection.execute(delete(seen_messages).where(seen_messages.c.received_at < cutoff))

    def is_opted_out(self, phone: str) -> bool:
        with self.engine.connect() as connection:
            row = connection.execute(select(opt_outs.c.opted_out).where(opt_outs.c.phone == phone)).first()
        return bool(row and row[0])

    def set_opted_out(self, phone: str, opted_out: bool) -> bool:
        """Record the choice; True when it changed (so confirmations are sent once)."""
        with self.engine.begin() as connection:
            row = connection.execute(select(opt_outs.c.opted_out).where(opt_outs.c.phone == phone)).first()
            if row is None:
                connection.execute(opt_outs.insert().values(phone=phone, opted_out=opted_out, changed_at=_now()))
                return opted_out  # a first START from a number never opted out changes nothing visible
            if bool(row[0]) == opted_out:
                return False
            connection.execute(
                opt_outs.update().where(opt_outs.c.phone == phone).values(opted_out=opted_out, changed_at=_now())
            )
            return True


# --- output ----------------------------------------------------------------------------------------


class SmsCollectingOutput(CollectingOutputChannel):
    """Collects the bot's messages for the TwiML reply; name "sms" selects `channel: sms` responses."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL_SMS

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        # keep the whole text (Rasa's collector splits paragraphs); sms_messages() does the cutting
        await self._persist_message(self._message(recipient_id, text=text))


class DiscardingSmsOutput(SmsCollectingOutput):
    """Drops every message: the answer to a text sent after STOP must not reach the patient."""

    async def _persist_message(self, message: dict[str, Any]) -> None:
        return None


def twiml(bodies: list[str]) -> str:
    reply = MessagingResponse()
    for body in bodies:
        reply.message(body)
    return reply.to_xml()


def twiml_response(bodies: list[str]) -> HTTPResponse:
    return response.text(twiml(bodies), content_type="application/xml; charset=utf-8")


class _FormParams(dict):
    """Form fields with every value kept (what RequestValidator signs)."""

    def getlist(self, name: str) -> list[str]:
        return self[name]

    def first(self, name: str, default: str = "") -> str:
        values = self.get(name) or [default]
        return values[0]


def parse_form(body: bytes) -> _FormParams:
    text = body.decode("utf-8", errors="replace") if body else ""
    return _FormParams(parse_qs(text, keep_blank_values=True))


def public_url(request: Request, configured: str | None = None) -> str:
    """The URL Twilio called: TWILIO_WEBHOOK_URL if set, else rebuilt from the (proxied) request."""
    if configured:
        return configured
    headers = request.headers
    scheme = (headers.get("x-forwarded-proto") or request.scheme or "http").split(",")[0].strip()
    host = (headers.get("x-forwarded-host") or headers.get("host") or "").split(",")[0].strip()
    url = f"{scheme}://{host}{request.path}"
    if request.query_string:
        url += f"?{request.query_string}"
    return url


# --- input -----------------------------------------------------------------------------------------


class TwilioSmsInput(InputChannel):
    """Twilio Programmable Messaging webhook, validated, de-duplicated, with opt-out handling."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL_SMS

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        credentials = credentials or {}
        return cls(
            auth_token=credentials.get("auth_token") or config.twilio_auth_token(),
            webhook_url=credentials.get("webhook_url") or config.twilio_webhook_url(),
            state=SmsStateStore(credentials.get("state_db_url") or None),
        )

    def __init__(
        self,
        auth_token: str | None = None,
        webhook_url: str | None = None,
        state: SmsStateStore | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.auth_token = (auth_token or "").strip() or None
        self.webhook_url = (webhook_url or "").strip() or None
        self.validator = RequestValidator(self.auth_token) if self.auth_token else None
        self.state = state or SmsStateStore()
        self.owners = ConversationOwners()
        self.timeout_s = timeout_s
        if self.validator is None:
            logger.warning("SMS channel: TWILIO_AUTH_TOKEN is not set, so every SMS webhook request gets 403.")

    def get_output_channel(self) -> StaffSmsOutput:
        """What Rasa's HTTP API sends through (output_channel=latest): staff messages, by Twilio's REST API."""
        return StaffSmsOutput(self.state.is_opted_out)

    def reply_timeout_s(self) -> float:
        return min(self.timeout_s or config.reply_timeout_s(), MAX_REPLY_TIMEOUT_S)

    def is_signed(self, request: Request, params: _FormParams) -> bool:
        signature = request.headers.get("x-twilio-signature", "")
        if self.validator is None or not signature:
            return False
        try:
            return bool(self.validator.validate(public_url(request, self.webhook_url), params, signature))
        except Exception:
            logger.exception("SMS signature check failed")
            return False

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        sms_webhook = Blueprint(f"{self.name()}_webhook", __name__)
        try:  # create the tables now rather than on the first patient's message
            _ = self.state.engine
        except Exception:
            logger.exception("SMS state database is not reachable yet; will retry on the first message.")
        guard_handler(on_new_message, timeout_s=self.reply_timeout_s())  # loads seek-care and triage now

        @sms_webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @sms_webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if len(request.body or b"") > MAX_REQUEST_BYTES:
                return response.text("Request too large", status=413)
            params = parse_form(request.body)
            if not self.is_signed(request, params):
                logger.warning("SMS webhook: rejected a request without a valid Twilio signature.")
                return response.text("Forbidden", status=403)
            bodies = await self.handle(params, on_new_message)
            return twiml_response(bodies)

        @sms_webhook.route("/status", methods=["POST"])
        async def delivery_status(request: Request) -> HTTPResponse:
            """Twilio's status callback for an outreach text (bot.outreach.callbacks): delivered / failed."""
            from bot.outreach.callbacks import handle_status

            return await handle_status(request, self.validator)

        return sms_webhook

    async def handle(self, params: _FormParams, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> list[str]:
        """The SMS bodies to answer one signed Twilio request with ([] = no reply)."""
        sender = params.first("From").strip()
        body = params.first("Body")
        message_sid = params.first("MessageSid") or params.first("SmsSid")
        who = mask_sender(sender)
        if not sender:
            return []
        owner = await asyncio.to_thread(self.owners.conflict, sender, self.name())
        if owner:  # never for a phone number: those are the SMS channel's own (bot.channels.ownership)
            logger.warning("SMS from %s refused: that conversation id belongs to the %s channel.", who, owner)
            return []
        if message_sid and not await asyncio.to_thread(self.state.claim, message_sid):
            logger.info("SMS %s from %s is a repeat delivery; not answered again.", message_sid, who)
            return []

        word = keyword(body)
        if word in OPT_OUT_KEYWORDS:
            changed = await asyncio.to_thread(self.state.set_opted_out, sender, True)
            logger.info("SMS from %s: opt-out (%s).", who, "confirmed" if changed else "already opted out")
            return [fill_placeholders(OPT_OUT_REPLY)] if changed else []
        if word in HELP_KEYWORDS:
            return [fill_placeholders(HELP_REPLY)]
        opted_out = await asyncio.to_thread(self.state.is_opted_out, sender)
        if word in OPT_IN_KEYWORDS or (opted_out and word in OPT_IN_WHEN_OPTED_OUT):
            await asyncio.to_thread(self.state.set_opted_out, sender, False)
            logger.info("SMS from %s: opt-in.", who)
            return [fill_placeholders(OPT_IN_REPLY)]
        if opted_out:
            if body.strip():
                await self.record_without_reply(sender, body, message_sid or None, on_new_message)
            return []

        if not body.strip():
            has_media = params.first("NumMedia", "0").strip() not in {"", "0"}
            return [MEDIA_REPLY if has_media else EMPTY_REPLY]
        return await self.ask_bot(sender, body, message_sid or None, on_new_message)

    async def record_without_reply(
        self, sender: str, text: str, message_sid: str | None, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> None:
        """A message after STOP: no reply (carriers forbid one), but the bot still reads it.

        Why: staff must see it and a red flag in it must be flagged like any other (triage sets
        triage_level in the tracker, which the review app's escalation filter reads). The bot's answers
        go to an output channel that drops them, and the user event carries metadata
        {SMS_OPTED_OUT_KEY: true} so the review app can say that nothing was sent.
        """
        message = UserMessage(
            clip_message(text), DiscardingSmsOutput(), sender, input_channel=self.name(), message_id=message_sid,
            metadata={"channel": CHANNEL_SMS, SMS_OPTED_OUT_KEY: True},
        )
        task = asyncio.ensure_future(on_new_message(message))
        try:  # wait a little so the record exists when Twilio gets its answer; processing is never cancelled
            await asyncio.wait_for(asyncio.shield(task), timeout=self.reply_timeout_s())
        except asyncio.TimeoutError:
            logger.warning("SMS from %s after STOP: still being recorded after the timeout.", mask_sender(sender))
        except Exception:
            logger.exception("SMS from %s after STOP: recording it failed.", mask_sender(sender))
        else:
            logger.info("SMS from %s after STOP: recorded for staff; no reply sent.", mask_sender(sender))

    async def ask_bot(
        self, sender: str, text: str, message_sid: str | None, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> list[str]:
        timeout_s = self.reply_timeout_s()
        collector = SmsCollectingOutput()
        message = UserMessage(
            text, collector, sender, input_channel=self.name(), message_id=message_sid, metadata={"channel": "sms"}
        )
        try:
            # the guard answers with the safe reply after timeout_s; the outer cap is only a backstop
            outcome = await asyncio.wait_for(guard_handler(on_new_message, timeout_s=timeout_s)(message),
                                             timeout=timeout_s + 1.5)
        except Exception:
            logger.exception("SMS from %s: no reply from the bot; sent the safe reply.", mask_sender(sender))
            return sms_messages([{"text": safe_reply_text()}])
        bodies = [fill_placeholders(body) for body in sms_messages(list(collector.messages))]
        if not bodies and getattr(outcome, "silent_for_staff", False):
            return []  # staff have taken over and reply themselves (bot.takeover)
        return bodies or sms_messages([{"text": safe_reply_text()}])
