"""The website chat channel: Rasa's socket.io channel, fixed and guarded for the widget in web/.

credentials.yml:

    bot.channels.socketio.ClinicSocketIOInput:
      user_message_evt: user_uttered
      bot_message_evt: bot_uttered
      session_persistence: true

Differences from Rasa's `socketio` channel (same name, same events, same /socket.io path):

- one `bot_uttered` event per bot response: the whole text (line breaks kept, not split into
  paragraphs) together with its `custom` payload, and the custom keys copied to the top level, e.g.
  `{"text": "...", "custom": {"kind": "seek_care", "level": "emergency"}, "kind": "seek_care",
  "level": "emergency"}`. (Rasa's own output calls `sio.emit(evt, **custom)`, which raises
  TypeError for any custom payload, so seek-care messages would never reach the page.)
- every message goes through `bot.channels.guard` (a reply always comes, blank input gets a prompt);
- session ids chosen by the browser must look like ids (letters, digits, - and _, 16-64 long),
  otherwise the server issues a fresh one; messages that are not text are ignored.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage, decode_bearer_token
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput, SocketIOOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncServer

from bot.channels.guard import guard_handler
from bot.vocabulary import CHANNEL_WEB

logger = logging.getLogger(__name__)

SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


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
    if isinstance(custom, dict) and custom:
        event["custom"] = custom
        for key, value in custom.items():
            if key not in {"text", "recipient_id"}:
                event.setdefault(key, value)
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


class ClinicSocketIOOutput(SocketIOOutput):
    """Sends each bot response as one `bot_uttered` event to the conversation's room."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL_WEB

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        event = bot_event(dict(message))
        if event is not None:
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
        channel.cors_allowed_origins = credentials.get("cors_allowed_origins", [])  # type: ignore[attr-defined]
        return channel

    def get_output_channel(self) -> OutputChannel | None:
        if self.sio is None:
            return super().get_output_channel()
        return ClinicSocketIOOutput(self.sio, self.bot_message_evt)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        guarded = guard_handler(on_new_message)
        # [] = engine.io does no CORS handling of its own; the Rasa server's --cors setting applies.
        sio = AsyncServer(async_mode="sanic", cors_allowed_origins=getattr(self, "cors_allowed_origins", []))
        socketio_webhook = SocketBlueprint(sio, self.socketio_path, "socketio_webhook", __name__)
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

        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: str, data: Any) -> None:
            requested = data.get("session_id") if isinstance(data, dict) else None
            session_id = valid_session_id(requested) or uuid.uuid4().hex
            if self.session_persistence:
                await sio.enter_room(sid, session_id, namespace=self.namespace)
            await sio.emit("session_confirm", session_id, room=sid, namespace=self.namespace)

        @sio.on(self.user_message_evt, namespace=self.namespace)
        async def handle_message(sid: str, data: Any) -> None:
            if not isinstance(data, dict):
                return
            if self.session_persistence:
                sender_id = valid_session_id(data.get("session_id"))
                if sender_id is None:
                    logger.warning("socket.io message without a valid session_id was ignored.")
                    return
            else:
                sender_id = sid
            text = data.get("message", "")
            if not isinstance(text, str):
                return
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
