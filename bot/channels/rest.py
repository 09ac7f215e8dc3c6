"""The REST channel (`/webhooks/rest/webhook`) with request validation and the reply guard.

Request:  POST JSON {"sender": "<conversation id>", "message": "<text>", "metadata": {...}?}
Response: 200 JSON list of bot messages [{"recipient_id": "...", "text": "..."}, ...]
Malformed requests get 400 with {"error": "..."}; they are never passed to the bot.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request

from bot.channels.guard import guard_handler

SENDER_PATTERN = re.compile(r"^[^\x00-\x1f\x7f]{1,256}\Z")  # any text without control characters
MAX_BODY_BYTES = 100_000


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


class GuardedRestInput(RestInput):
    """Rasa's REST channel, but malformed requests get a 400 and every message gets a reply."""

    def blueprint(self, on_new_message: Any) -> Blueprint:
        blueprint = super().blueprint(guard_handler(on_new_message))

        @blueprint.middleware("request")
        async def validate(request: Request) -> Any:
            if request.method == "POST" and request.path.rstrip("/").endswith("/webhook"):
                problem = rest_request_problem(request)
                if problem:
                    return response.json({"error": problem}, status=400)
            return None

        return blueprint

    async def _extract_sender(self, req: Request) -> str | None:
        sender = req.json.get("sender")
        return str(sender) if sender is not None else None
