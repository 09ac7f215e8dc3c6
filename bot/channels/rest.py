"""The REST channel (`/webhooks/rest/webhook`) with request validation and the reply guard.

Request:  POST JSON {"sender": "<conversation id>", "message": "<text>", "metadata": {...}?}
          with the Rasa HTTP API token (RASA_AUTH_TOKEN, Rasa's --auth-token) as `?token=` or
          `Authorization: Bearer <token>`.
Response: 200 JSON list of bot messages [{"recipient_id": "...", "text": "..."}, ...]
No token: 401; a wrong token (or no token configured on the server): 403; malformed request: 400
with {"error": "..."}; a sender id that belongs to another channel (a phone number, a web chat
session; see bot.channels.ownership): 403. Refused requests never reach the bot: nothing is recorded.
A request carrying `Idempotency-Key` (or nginx's `X-Request-ID`) whose message the conversation already
holds is answered with the stored replies and not handled again (bot.channels.redelivery).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from contextvars import ContextVar
from typing import Any

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request

from bot.channels.guard import guard_handler
from bot.channels.ownership import ConversationOwners
from bot.channels.redelivery import StoredAnswers, request_key
from bot.config import rasa_auth_token
from bot.vocabulary import CHANNEL_REST

logger = logging.getLogger(__name__)

SENDER_PATTERN = re.compile(r"^[^\x00-\x1f\x7f]{1,256}\Z")  # any text without control characters
MAX_BODY_BYTES = 100_000
# the redelivery key of the request being handled, set by the request middleware (same task as the handler)
_request_message_id: ContextVar[str | None] = ContextVar("rest_request_message_id", default=None)


def presented_token(request: Request) -> str | None:
    """The token a request carries: `?token=` or `Authorization: Bearer ...` (as Rasa's HTTP API takes it)."""
    token = request.args.get("token")
    if token:
        return token
    scheme, _, value = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def token_refusal(request: Request, expected: str | None) -> tuple[int, str] | None:
    """(status, reason) when the request may not use the channel, None when its token is right."""
    presented = presented_token(request)
    if presented is None:
        return 401, "a token is required (?token= or Authorization: Bearer)"
    if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
        return 403, "the token is not valid"
    return None


def rest_request_problem(request: Request) -> str | None:
    """Why this webhook request is unacceptable, or None when it is fine."""
    if len(request.body or b"") > MAX_BODY_BYTES:
        return f"request body is larger than {MAX_BODY_BYTES} bytes"
    try:
        body = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError):
        return "request body must be JSON"
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    sender = body.get("sender")
    if isinstance(sender, int) and not isinstance(sender, bool):
        sender = str(sender)
    if not isinstance(sender, str) or not SENDER_PATTERN.match(sender):
        return "'sender' must be a text of 1-256 characters without control characters"
    if "message" in body and body["message"] is not None and not isinstance(body["message"], str):
        return "'message' must be text"
    if "metadata" in body and body["metadata"] is not None and not isinstance(body["metadata"], dict):
        return "'metadata' must be a JSON object"
    return None


def keyed_by_request(on_new_message: Any) -> Any:
    """Give the patient message the request's redelivery key as its message_id (stored in the user event)."""

    async def handler(message: UserMessage) -> Any:
        key = _request_message_id.get()
        if key:
            message.message_id = key
        return await on_new_message(message)

    return handler


class GuardedRestInput(RestInput):
    """Rasa's REST channel, but malformed requests get a 400 and every message gets a reply."""

    def blueprint(self, on_new_message: Any) -> Blueprint:
        blueprint = super().blueprint(keyed_by_request(guard_handler(on_new_message)))
        owners = ConversationOwners()
        stored = StoredAnswers()
        expected_token = rasa_auth_token()  # read once, at start
        if not expected_token:
            logger.warning("REST channel: RASA_AUTH_TOKEN is not set, so every REST webhook request gets 403.")

        @blueprint.middleware("request")
        async def validate(request: Request) -> Any:
            if request.method == "POST" and request.path.rstrip("/").endswith("/webhook"):
                refusal = token_refusal(request, expected_token)
                if refusal:
                    status, reason = refusal
                    logger.warning("REST webhook request refused (%s): %s", status, reason)
                    return response.json({"error": reason}, status=status)
                problem = rest_request_problem(request)
                if problem:
                    return response.json({"error": problem}, status=400)
                sender = str(request.json["sender"])
                owner = await asyncio.to_thread(owners.conflict, sender, CHANNEL_REST)
                if owner:
                    logger.warning("REST webhook request refused (403): the conversation belongs to the %s channel", owner)
                    return response.json({"error": "this conversation id belongs to another channel"}, status=403)
                key = request_key(request.headers)
                _request_message_id.set(key)
                if key:
                    answers = await asyncio.to_thread(stored.answers, sender, key)
                    if answers is not None:
                        logger.info("REST message delivered again (same request key): sent the stored answers.")
                        return response.json(answers)
            return None

        return blueprint

    async def _extract_sender(self, req: Request) -> str | None:
        sender = req.json.get("sender")
        return str(sender) if sender is not None else None
