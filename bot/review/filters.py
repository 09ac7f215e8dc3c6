"""The conversation-list filters shared by the web app and the CLI, and the channel names they use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from bot.vocabulary import CHANNEL_REST, CHANNEL_SMS, CHANNEL_WEB, TRIAGE_LEVELS

# filter value -> input_channel stored by Rasa
CHANNELS = {"web": CHANNEL_WEB, "sms": CHANNEL_SMS, "rest": CHANNEL_REST}
CHANNEL_LABELS = {CHANNEL_WEB: "Web chat", CHANNEL_SMS: "SMS", CHANNEL_REST: "REST"}
# "check": a symptom check-in (a possible new problem no triage rule confirmed)
ESCALATED_CHOICES = ("any", *TRIAGE_LEVELS, "check")
MAX_SEARCH_CHARS = 200
# Dates staff may ask for: a clinic's logs, and room for a day either side without overflowing `date`.
MIN_DATE = date(2000, 1, 1)
MAX_DATE = date(2099, 12, 31)


class BadParameter(ValueError):
    """Parameters the app cannot use (shown to staff with a 400 page, or as CLI warnings)."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


MAX_PAGE = 1_000_000


def parse_page(raw: str | None) -> int:
    """A page number 1..MAX_PAGE (1 when absent); anything else is a 400."""
    text = (raw or "").strip()
    if not text:
        return 1
    if not text.isascii() or not text.isdigit() or len(text) > 7 or not 1 <= int(text) <= MAX_PAGE:
        raise BadParameter([f"Page must be a whole number from 1 to {MAX_PAGE:,}."])
    return int(text)


def parse_day(raw: str | None, label: str) -> date | None:
    """A YYYY-MM-DD date from MIN_DATE to MAX_DATE; None when empty; BadParameter otherwise."""
    text = (raw or "").strip()
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise BadParameter([f"{label} must be a date like 2024-05-31."]) from None
    if not MIN_DATE <= day <= MAX_DATE:
        raise BadParameter([f"{label} must be between {MIN_DATE.isoformat()} and {MAX_DATE.isoformat()}."])
    return day


def channel_label(channel: str | None) -> str:
    """The name staff see for a stored input channel."""
    if not channel:
        return "Unknown"
    return CHANNEL_LABELS.get(channel, channel)


def day_start(day: date, tz: tzinfo) -> float:
    """Timestamp of local midnight, so date filters follow the zone staff read times in."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


@dataclass(frozen=True)
class Filters:
    date_from: date | None = None
    date_to: date | None = None
    channel: str | None = None  # web | sms | rest
    escalated: str | None = None  # any | emergency | urgent | check
    unanswered: bool = False
    search: str = ""

    @classmethod
    def parse(cls, values: Mapping[str, str]) -> tuple[Filters, list[str]]:
        """Filters from form/query values; unusable values are ignored. Returns the filters and the
        problems to show the user (the CLI prints them as warnings)."""
        filters, errors, notes = cls.parse_checked(values)
        return filters, [f"{error} It was ignored." for error in errors] + notes

    @classmethod
    def parse_checked(cls, values: Mapping[str, str]) -> tuple[Filters, list[str], list[str]]:
        """Filters, errors (values that cannot be used: the web app answers 400) and notes (adjustments made)."""
        errors: list[str] = []
        notes: list[str] = []

        def parse_date(key: str, label: str) -> date | None:
            try:
                return parse_day(values.get(key), label)
            except BadParameter as error:
                errors.extend(error.problems)
                return None

        date_from = parse_date("from", "From date")
        date_to = parse_date("to", "To date")
        if date_from and date_to and date_from > date_to:
            notes.append("From date is after To date; the dates were swapped.")
            date_from, date_to = date_to, date_from
        channel = (values.get("channel") or "").strip().lower() or None
        if channel and channel not in CHANNELS:
            errors.append(f"Channel must be one of {', '.join(CHANNELS)}.")
            channel = None
        escalated = (values.get("escalated") or "").strip().lower() or None
        if escalated and escalated not in ESCALATED_CHOICES:
            errors.append(f"Escalation filter must be one of {', '.join(ESCALATED_CHOICES)}.")
            escalated = None
        unanswered = (values.get("unanswered") or "").strip().lower() in {"1", "on", "true", "yes"}
        search = " ".join("".join(ch for ch in (values.get("q") or "") if ch.isprintable() or ch.isspace()).split())
        if len(search) > MAX_SEARCH_CHARS:
            notes.append(f"Search text was shortened to {MAX_SEARCH_CHARS} characters.")
            search = search[:MAX_SEARCH_CHARS]
        return cls(date_from, date_to, channel, escalated, unanswered, search), errors, notes

    def as_params(self) -> dict[str, str]:
        """Query-string parameters that reproduce these filters."""
        params: dict[str, str] = {}
        if self.date_from:
            params["from"] = self.date_from.isoformat()
        if self.date_to:
            params["to"] = self.date_to.isoformat()
        if self.channel:
            params["channel"] = self.channel
        if self.escalated:
            params["escalated"] = self.escalated
        if self.unanswered:
            params["unanswered"] = "1"
        if self.search:
            params["q"] = self.search
        return params

    def describe(self) -> str:
        parts = [f"{key}={value}" for key, value in self.as_params().items()]
        return ", ".join(parts) if parts else "no filters"

    @property
    def active(self) -> bool:
        return bool(self.as_params())
