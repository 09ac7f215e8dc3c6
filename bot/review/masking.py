"""Showing patient identifiers to staff (masked unless asked) and CSV formula-injection guarding."""

from __future__ import annotations

from bot.privacy import is_phone_number, mask_sender  # noqa: F401  (re-exported for the review app)


def shown_sender(sender_id: str | None, unmask: bool = False) -> str:
    return (sender_id or "") if unmask else mask_sender(sender_id)


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> object:
    """Neutralise spreadsheet formulas: text starting with = + - @ tab or CR gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
