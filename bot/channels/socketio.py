"""The website chat channel: Rasa's socket.io channel, fixed and guarded for the widget in web/.

credentials.yml:

    bot.channels.socketio.ClinicSocketIOInput:
      user_message_evt: user_uttered
      bot_message_evt: bot_uttered
      session_persistence: true

Differences from Rasa's `socketio` channel (same name, same events, same /socket.io path):

- one `bot_uttered` event per bot response: the whole text (line breaks kept, not split into
  paragraphs), with the markers of its `custom` payload under `metadata`, e.g.
  `{"text": "...", "metadata": {"kind": "seek_care", "level": "emergency", "forceOpen": true,
  "customCss": {...}}}`. `metadata` is where both our widget (web/) and `rasa-webchat` look:
  rasa-webchat shows only messages whose other keys are exactly `text` (+ buttons/quick_replies),
  opens itself on `forceOpen` and styles the bubble (red / amber) with `customCss`. (Rasa's own output calls `sio.emit(evt, **custom)`, which raises TypeError for any
  custom payload, so seek-care messages would never reach the page.)
- every message goes through `bot.channels.guard` (a reply always comes, blank input gets a prompt),
  except a blank opening message on a new connection (rasa-webchat's `initPayload`-less start),
  which is ignored without a reply;
- only pages from the allowed sites (WEB_ALLOWED_ORIGINS, bot.config) may connect: engine.io
  checks the Origin header of polling and websocket requests and sends the CORS headers itself;
- session ids chosen by the browser must look like ids (letters, digits, - and _, 16-64 long) and
  must not belong to another channel's conversation (bot.channels.ownership), otherwise the server
  issues a fresh one; messages that are not text, or for another channel's conversation, are ignored;
- a staff message (bot.channels.staff; sent through Rasa's HTTP API) for a session with no widget
  connected waits, and is sent when that session's widget next connects (`session_request`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage, decode_bearer_token
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput, SocketIOOutput
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncServer

from bot.channels.guard import guard_handler, is_blank
from bot.channels.ownership import ConversationOwners
from bot.channels.staff import WaitingStaffMessages
from bot.config import web_allowed_origins
from bot.takeover import is_staff_message
from bot.vocabulary import CHANNEL_WEB, SEEK_CARE_KIND

logger = logging.getLogger(__name__)

SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# sanic_cors.core.SANIC_CORS_EVALUATED (Sanic-Cors 2.0): a request marked so gets no headers from sanic-cors.
# Not imported: importing sanic_cors warns (distutils) in processes that don't run Rasa's server.
SANIC_CORS_EVALUATED = "_sanic_cors_e"
# rasa-webchat's `metadata.customCss` (inline style of the message bubble): seek-care messages stand out
# as our widget's cards do (white text on dark red / dark amber: contrast 6.5:1 and more, WCAG AA).
SEEK_CARE_STYLE = {
    "emergency": "background-color:#b00020;color:#ffffff;font-weight:600",
    "urgent": "background-color:#8a4b00;color:#ffffff;font-weight:600",
}


def valid_session_id(value: Any) -> str | None:
    """The browser's session id if it looks like one we issued, else None."""
    if isinstance(value, str) and SESSION_ID_PATTERN.match(value):
        return value
    return None


def bot_event(message: dict[str, Any]) -> dict[str, Any] | None:
    """The single `bot_uttered` payload for one bot response (None when there is nothing to show)."""
    event: dict[str, Any] = {}
    text = message.get("text")
    if isinstance(text, str) and text.strip():
        event["text"] = text.strip()
    custom = message.get("custom")
    if isinstance(custom, dict):
        metadata = {key: value for key, value in custom.items() if key not in {"text", "recipient_id"}}
        if metadata.get("kind") == SEEK_CARE_KIND:
            metadata["forceOpen"] = True  # rasa-webchat opens a minimized chat, as our widget does
            style = SEEK_CARE_STYLE.get(str(metadata.get("level")), SEEK_CARE_STYLE["emergency"])
            metadata["customCss"] = {"style": "custom", "css": style}
        if metadata:
            event["metadata"] = metadata
    buttons = message.get("quick_replies") or message.get("buttons")
    if isinstance(buttons, list) and buttons:
        event["quick_replies"] = [
            {"content_type": "text", "title": str(b.get("title", "")), "payload": str(b.get("payload", b.get("title", "")))}
            for b in buttons
            if isinstance(b, dict) and b.get("title")
        ]
    if message.get("image"):
        event["attachment"] = {"type": "image", "payload": {"src": message["image"]}}
    elif message.get("attachment"):
        event["attachment"] = message["attachment"]
    return event or None


class EngineIOCorsBlueprint(SocketBlueprint):
    """Attaches socket.io like Rasa does, and keeps Rasa's --cors (sanic-cors) off its path.

    engine.io answers CORS for the allowed sites itself; with `rasa run --cors ...` sanic-cors would add
    a second Access-Control-Allow-Origin header (browsers refuse two), and with `--cors "*"` it would
    let any site in.
    """

    def register(self, app: Sanic, options: dict[str, Any]) -> None:
        path = "/" + self.ctx.socketio_path.strip("/")

        async def cors_by_engineio(request: Request) -> None:
            if request.path.rstrip("/") == path:
                setattr(request.ctx, SANIC_CORS_EVALUATED, "1")  # sanic-cors skips evaluated requests

        app.register_middleware(cors_by_engineio, "request")
        super().register(app, options)


class ClinicSocketIOOutput(SocketIOOutput):
    """Sends each bot response as one `bot_uttered` event to the conversation's room.

    With `waiting`, a staff message for a room with no widget connected is kept for the next visit instead.
    """

    def __init__(self, sio: AsyncServer, bot_message_evt: str, waiting: WaitingStaffMessages | None = None,
                 namespace: str | None = None) -> None:
        super().__init__(sio, bot_message_evt)
        self.waiting = waiting
        self.namespace = namespace or "/"

    @classmethod
    def name(cls) -> str:
        return CHANNEL_WEB

    def connected(self, room: str) -> bool:
        return any(True for _ in self.sio.manager.get_participants(self.namespace, room))

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        event = bot_event(dict(message))
        if event is None:
            return
        if self.waiting is not None and is_staff_message(message) and not self.connected(recipient_id):
            await asyncio.to_thread(self.waiting.add, recipient_id, event)
            logger.info("Staff message kept for the web chat session's next visit (no widget connected).")
            return
        await self._send_message(recipient_id, event)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"text": text, **kwargs})

    async def send_custom_json(self, recipient_id: str, json_message: dict[str, Any], **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"custom": json_message})


class ClinicSocketIOInput(SocketIOInput):
    """Rasa's socket.io input channel with the fixes described in the module docstring."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL_WEB

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        credentials = credentials or {}
        channel = super().from_credentials(credentials)
        origins = credentials.get("cors_allowed_origins") or web_allowed_origins()
        channel.cors_allowed_origins = "*" if origins in ("*", ["*"]) else list(origins)  # type: ignore[attr-defined]
        return channel

    def get_output_channel(self) -> OutputChannel | None:
        """The output Rasa's HTTP API uses (output_channel=latest): staff messages wait if nobody is connected."""
        if self.sio is None:
            return super().get_output_channel()
        waiting = getattr(self, "waiting", None) or WaitingStaffMessages()
        self.waiting = waiting
        return ClinicSocketIOOutput(self.sio, self.bot_message_evt, waiting, self.namespace)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        guarded = guard_handler(on_new_message)
        self.owners = ConversationOwners()
        self.waiting = WaitingStaffMessages()
        # engine.io refuses other sites' pages and answers CORS itself (independent of Rasa's --cors)
        origins = getattr(self, "cors_allowed_origins", None) or web_allowed_origins()
        sio = AsyncServer(async_mode="sanic", cors_allowed_origins=origins)
        socketio_webhook = EngineIOCorsBlueprint(sio, self.socketio_path, "socketio_webhook", __name__)
        self.sio = sio

        @socketio_webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @sio.on("connect", namespace=self.namespace)
        async def connect(sid: str, environ: dict, auth: dict | None) -> bool:
            if self.jwt_key:
                token = auth.get("token") if isinstance(auth, dict) else None
                return bool(token and decode_bearer_token(token, self.jwt_key, self.jwt_algorithm))
            return True

        spoken: set[str] = set()  # connections that have sent a user message

        @sio.on("disconnect", namespace=self.namespace)
        async def disconnect(sid: str) -> None:
            spoken.discard(sid)

        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: str, data: Any) -> None:
            requested = valid_session_id(data.get("session_id") if isinstance(data, dict) else None)
            if requested and await asyncio.to_thread(self.owners.conflict, requested, CHANNEL_WEB):
                requested = None  # another channel's conversation: this browser gets a fresh one
            session_id = requested or uuid.uuid4().hex
            if self.session_persistence:
                await sio.enter_room(sid, session_id, namespace=self.namespace)
            await sio.emit("session_confirm", session_id, room=sid, namespace=self.namespace)
            if requested and self.session_persistence:  # a returning widget: staff messages sent while it was away
                for event in await asyncio.to_thread(self.waiting.take_or_nothing, session_id):
                    await sio.emit(self.bot_message_evt, event, room=sid, namespace=self.namespace)

        @sio.on(self.user_message_evt, namespace=self.namespace)
        async def handle_message(sid: str, data: Any) -> None:
            opening = sid not in spoken  # decided before any await: events start in arrival order
            spoken.add(sid)
            if not isinstance(data, dict):
                return
            if self.session_persistence:
                sender_id = valid_session_id(data.get("session_id"))
                if sender_id is None:
                    logger.warning("socket.io message without a valid session_id was ignored.")
                    return
                owner = await asyncio.to_thread(self.owners.conflict, sender_id, CHANNEL_WEB)
                if owner:
                    logger.warning("socket.io message ignored: its session id belongs to the %s channel.", owner)
                    return
            else:
                sender_id = sid
            text = data.get("message")
            if text is not None and not isinstance(text, str):
                return
            if opening and is_blank(text):
                return  # rasa-webchat's opening user_uttered without an initPayload: no reply
            text = text or ""
            metadata = data.get(self.metadata_key) or {}
            if isinstance(metadata, str):
                try:
                    metadata = json.loads(metadata)
                except ValueError:
                    metadata = {}
            if not isinstance(metadata, dict):
                metadata = {}
            message = UserMessage(
                text,
                ClinicSocketIOOutput(sio, self.bot_message_evt),
                sender_id,
                input_channel=self.name(),
                metadata=metadata,
            )
            await guarded(message)

        return socketio_webhook
