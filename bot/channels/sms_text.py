"""Plain-text SMS forms of bot messages, opt-out keywords, and phone-number masking for logs.

Pure functions (no Rasa, no I/O) so they are easy to test and reuse.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from bot.messages import SMS_TRUNCATED_NOTE
from bot.vocabulary import SMS_MAX_CHARS

SMS_MAX_MESSAGES = 6

OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP"})
OPT_IN_WHEN_OPTED_OUT = frozenset({"YES"})  # "yes" is an ordinary answer unless the number opted out
HELP_KEYWORDS = frozenset({"HELP", "INFO"})

# Characters outside GSM-7 that make a whole SMS fall back to 70-character UCS-2 segments.
_GSM_FRIENDLY = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
        "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2010": "-", "\u2011": "-",
        "\u2022": "-", "\u00b7": "-", "\u2026": "...", "\u00a0": " ", "\u2009": " ", "\u202f": " ",
        "\u200b": None, "\ufeff": None,
    }
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MD_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_MD_IMAGE = re.compile(r"!\[([^\]\n]*)\]\([^)\s]+\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1|(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_MD_CODE = re.compile(r"`([^`\n]*)`")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE)
_MD_BULLET = re.compile(r"^\s*[*+\u2022]\s+", re.MULTILINE)
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>\n]*>")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=\S)")


def keyword(body: str | None) -> str | None:
    """The body as an upper-case keyword ("stop", " Stop. " -> "STOP"), or None when it is not one word."""
    word = (body or "").strip().strip(".!?,;:'\"").strip()
    if not word or not word.isalpha() or len(word) > 12:
        return None
    return word.upper()


def plain_text(text: str) -> str:
    """Markdown/HTML-free, GSM-friendly plain text, keeping line breaks and "- " bullets."""
    text = unicodedata.normalize("NFC", str(text or ""))
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_GSM_FRIENDLY)
    text = _CONTROL.sub("", text)
    text = _MD_IMAGE.sub(lambda m: m.group(1), text)
    text = _MD_LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})", text)
    text = _MD_EMPHASIS.sub(lambda m: m.group(2) if m.group(2) is not None else m.group(3), text)
    text = _MD_CODE.sub(lambda m: m.group(1), text)
    text = _MD_HEADING.sub("", text)
    text = _MD_BULLET.sub("- ", text)
    text = _HTML_TAG.sub("", text)
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def message_text(message: dict[str, Any]) -> str:
    """The plain text of one collected bot message; buttons become a "Reply: A / B" line."""
    parts = []
    if isinstance(message.get("text"), str):
        parts.append(plain_text(message["text"]))
    buttons = message.get("buttons") or message.get("quick_replies") or []
    titles = [plain_text(b.get("title", "")) for b in buttons if isinstance(b, dict) and b.get("title")]
    if titles:
        parts.append("Reply: " + " / ".join(titles))
    if isinstance(message.get("image"), str) and message["image"].startswith(("http://", "https://")):
        parts.append(message["image"])
    return "\n".join(part for part in parts if part)


def _units(text: str) -> list[tuple[str, str]]:
    """(piece, separator after it): sentences (" "), lines ("\n") and paragraphs ("\n\n")."""
    units: list[tuple[str, str]] = []
    for paragraph in re.split(r"\n\s*\n", text):
        for line in paragraph.split("\n"):
            sentences = [piece.strip() for piece in _SENTENCE_END.split(line.strip()) if piece.strip()]
            units.extend((sentence, " ") for sentence in sentences)
            if units and sentences:
                units[-1] = (units[-1][0], "\n")
        if units:
            units[-1] = (units[-1][0], "\n\n")
    return units


def _split_words(sentence: str, limit: int) -> list[str]:
    """A sentence longer than `limit`, cut between words (a single word longer than `limit` is cut)."""
    chunks: list[str] = []
    current = ""
    for word in sentence.split():
        while len(word) > limit:  # only a URL-like token can be this long
            if current:
                chunks.append(current)
                current = ""
            chunks.append(word[:limit])
            word = word[limit:]
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= limit:
            current = candidate
        else:
            chunks.append(current)
            current = word
    if current:
        chunks.append(current)
    return chunks


def split_sms(text: str, limit: int = SMS_MAX_CHARS) -> list[str]:
    """Cut text into messages of at most `limit` characters, between sentences where possible.

    Sentences and lines are packed greedily, keeping line breaks and "- " bullets; a sentence that
    alone is too long is cut between words. Nothing is cut inside a word (unless one "word", e.g.
    a very long URL, is longer than `limit`).
    """
    if limit < 20:
        raise ValueError("limit must be at least 20 characters")
    chunks: list[str] = []
    current = ""
    separator = ""
    for unit, after in _units(plain_text(text)):
        pieces = [unit] if len(unit) <= limit else _split_words(unit, limit)
        for index, piece in enumerate(pieces):
            candidate = f"{current}{separator}{piece}" if current else piece
            if len(candidate) <= limit:
                current = candidate
            else:
                chunks.append(current)
                current = piece
            separator = after if index == len(pieces) - 1 else " "
    if current:
        chunks.append(current)
    return chunks


def sms_messages(
    messages: Iterable[dict[str, Any]], limit: int = SMS_MAX_CHARS, max_messages: int = SMS_MAX_MESSAGES
) -> list[str]:
    """The SMS bodies for a bot's collected messages: plain text, joined, split to `limit`.

    A text repeated within one reply is sent once. When the reply needs several messages each ends
    with " (1/3)" etc. (phones may show them out of order); the numbering counts toward the limit.
    More than `max_messages` (a runaway reply) is cut to that many, the last one saying so.
    """
    texts: list[str] = []
    for message in messages:
        text = message_text(message)
        if text and text not in texts:
            texts.append(text)
    text = "\n\n".join(texts)
    chunks = split_sms(text, limit)
    if len(chunks) <= 1:
        return chunks
    chunks = split_sms(text, limit - 8)  # room for " (12/15)"
    if len(chunks) > max_messages:
        chunks = chunks[: max_messages - 1] + [SMS_TRUNCATED_NOTE]  # placeholders filled by the channel
    return [f"{chunk} ({number}/{len(chunks)})" for number, chunk in enumerate(chunks, start=1)]
