"""Masking patient identifiers (phone numbers) wherever they are shown outside the tracker store.

One implementation for the SMS channel's logs and the staff review app's pages and exports.
"""

from __future__ import annotations

import re

MASK = "•••••"
_PHONE = re.compile(r"^(?P<prefix>(?:whatsapp|sms|tel):)?(?P<number>\+?\d[\d ().-]{5,22}\d)$", re.IGNORECASE)
_EMAIL = re.compile(r"^(?P<local>[^@\s]+)@(?P<domain>[^@\s]+\.[^@\s]+)$")
DISPLAY_MAX = 24


def is_phone_number(sender_id: str) -> bool:
    return bool(_PHONE.match(sender_id or ""))


def mask_sender(sender_id: str | None) -> str:
    """A patient id fit to show: phone numbers keep the country digit and the last four digits
    (+15551234567 -> +1•••••4567), e-mail addresses their first letter and domain; other ids
    (random web-chat session ids) are shown shortened."""
    if not sender_id:
        return ""
    phone = _PHONE.match(sender_id)
    if phone:
        digits = re.sub(r"\D", "", phone.group("number"))
        lead = ("+" if phone.group("number").startswith("+") else "") + digits[:1]
        return f"{lead}{MASK}{digits[-4:]}"
    email = _EMAIL.match(sender_id)
    if email:
        return f"{email.group('local')[:1]}•••@{email.group('domain')}"
    if len(sender_id) > DISPLAY_MAX:
        return sender_id[: DISPLAY_MAX - 1] + "…"
    return sender_id
