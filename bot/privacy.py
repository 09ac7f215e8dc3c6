"""Masking patient identifiers (phone numbers, e-mail addresses) wherever they are shown outside the tracker store.

One implementation for the SMS channel's logs and the staff review app's pages and exports:
`mask_sender` for conversation ids, `mask_text` for the same identifiers typed inside a message
("call me on 555-123-4567" -> "call me on 5•••••4567"). Both keep enough to tell numbers apart
(country digit and last four digits; an address's first letter and domain). Where a sender id is
shown in full (an unmasked export, recorded in the access log; `show --unmask`), the text is too.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

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


# A phone number inside text: 7-15 digits, optionally +, grouped by spaces, dots, dashes or brackets.
# Dates (2024-05-31, 31.05.2024), times and doses ("400 mg", "8/10") are not phone-shaped and stay.
_TEXT_PHONE = re.compile(r"(?<![\w+])(?:\+|(?=\(?\d))(?:\(?\d[\d().\- ]{5,20}\d)(?![\w])")
_TEXT_DATE = re.compile(r"^(?:\d{4}[-.]\d{1,2}[-.]\d{1,2}|\d{1,2}[-.]\d{1,2}[-.]\d{2,4})$")
_TEXT_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
MIN_PHONE_DIGITS = 7
MAX_PHONE_DIGITS = 15  # E.164


def _mask_phone_match(match: re.Match[str]) -> str:
    found = match.group(0)
    stripped = found.rstrip(" .-(")
    digits = re.sub(r"\D", "", stripped)
    if not MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS or _TEXT_DATE.match(stripped.strip()):
        return found
    lead = ("+" if stripped.startswith("+") else "") + digits[:1]
    return f"{lead}{MASK}{digits[-4:]}" + found[len(stripped):]


def mask_text(text: str | None) -> str:
    """Message text fit to show where sender ids are masked: phone numbers and e-mail addresses masked."""
    if not text:
        return ""
    masked = _TEXT_EMAIL.sub(lambda m: mask_sender(m.group(0)), text)
    return _TEXT_PHONE.sub(_mask_phone_match, masked)


# --- files holding patient data or secrets ------------------------------------------------------------
PRIVATE_FILE_MODE = 0o600


def private_sqlite_file(url: str) -> Path | None:
    """Create the SQLite file of `url` with mode 0600 before SQLAlchemy opens it (tighten an existing one).

    Why: SQLite creates a missing database file with the process umask (usually 0644: world-readable), and
    conversations are health data. An empty file is a valid new database; SQLite gives its journal and WAL
    files the database file's mode. Other databases (PostgreSQL) and in-memory SQLite: nothing to do (None).
    """
    from sqlalchemy.engine.url import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:" \
            or parsed.database.startswith("file:"):
        return None
    path = Path(parsed.database).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    private_file(path)
    return path


def private_file(path: Path) -> None:
    """Make `path` exist with mode 0600 (created that way, never readable by others even for a moment).

    An existing file is never opened, only chmod-ed by name: closing *any* descriptor of a SQLite database
    drops every POSIX lock this process holds on it, and a write-ahead-log database whose pooled
    connections lost their locks has its -wal and -shm files deleted under them ("disk I/O error").
    """
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE_MODE)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            os.chmod(path, PRIVATE_FILE_MODE)
        return
    os.close(descriptor)
