"""Twilio's status callback for outreach texts: POST /webhooks/sms/status?outreach_message=<id> (the SMS
channel's blueprint), signed like every Twilio request. `delivered`, `failed` and `undelivered` are recorded
on the outbox row (bot.outreach.outbox.Outbox.record_status); an unsigned or forged request gets 403 and
changes nothing. The outbox id in the URL is what Twilio signs too, so a callback cannot be moved to
another row; the row must also carry the callback's MessageSid.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import config

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 16_000


def callback_url(request: Request) -> str:
    """The URL Twilio signed: the configured status URL with this request's query, else the request's own."""
    from bot.channels.sms import public_url

    configured = config.outreach_status_url()
    if configured and request.query_string:
        configured = f"{configured.split('?')[0]}?{request.query_string}"
    return public_url(request, configured)


async def handle_status(request: Request, validator) -> HTTPResponse:  # noqa: ANN001 - twilio RequestValidator
    from bot.channels.sms import parse_form

    if len(request.body or b"") > MAX_REQUEST_BYTES:
        return response.text("Request too large", status=413)
    params = parse_form(request.body)
    signature = request.headers.get("x-twilio-signature", "")
    try:
        signed = bool(validator and signature and validator.validate(callback_url(request), params, signature))
    except Exception:  # noqa: BLE001 - a malformed request is simply not signed
        signed = False
    if not signed:
        logger.warning("Outreach status callback without a valid Twilio signature refused.")
        return response.text("Forbidden", status=403)
    raw_id = (request.args.get("outreach_message") or "").strip()
    sid, status = params.first("MessageSid"), params.first("MessageStatus") or params.first("SmsStatus")
    if not raw_id.isdigit() or not sid or not status:
        return response.text("Bad request", status=400)
    from bot.outreach.outbox import Outbox

    try:
        changed = await asyncio.to_thread(Outbox(create=False).record_status, int(raw_id), sid, status.strip().lower(),
                                          params.first("ErrorCode") or None, time.time())
    except Exception:  # noqa: BLE001 - Twilio retries a callback that fails; never a 500 page
        logger.exception("Outreach status %s for message %s could not be recorded.", status, raw_id)
        return response.text("Try again", status=503)
    if changed:
        logger.info("Outreach message %s: Twilio reports %s.", raw_id, status)
    return response.empty(status=204)
