"""Showing patient identifiers to staff (masked unless asked) and CSV formula-injection guarding.

Phone numbers and e-mail addresses are masked in conversation ids and inside patients' messages alike, on
every page (the transcript page too, as it masks the conversation id), export and CLI view; only the
recorded unmasked export (and CLI `show --unmask`) shows both in full. Staff read the rest of the
message as the patient wrote it; the bot's own messages (the clinic's number) are never masked.
"""

from __future__ import annotations

from bot.privacy import is_phone_number, mask_sender, mask_text  # noqa: F401  (re-exported for the review app)


def shown_sender(sender_id: str | None, unmask: bool = False) -> str:
    return (sender_id or "") if unmask else mask_sender(sender_id)


def shown_text(text: str | None, unmask: bool = False) -> str:
    """Message text as staff see it: phone numbers and e-mail addresses masked unless asked (and recorded)."""
    return (text or "") if unmask else mask_text(text)


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> object:
    """Neutralise spreadsheet formulas: text starting with = + - @ tab or CR gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
