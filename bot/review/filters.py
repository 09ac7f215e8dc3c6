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
        """Filters from form/query values; returns the filters and problems to show the user."""
        problems: list[str] = []

        def parse_date(key: str, label: str) -> date | None:
            raw = (values.get(key) or "").strip()
            if not raw:
                return None
            try:
                return date.fromisoformat(raw)
            except ValueError:
                problems.append(f"{label} must be a date like 2024-05-31; it was ignored.")
                return None

        date_from = parse_date("from", "From date")
        date_to = parse_date("to", "To date")
        if date_from and date_to and date_from > date_to:
            problems.append("From date is after To date; the dates were swapped.")
            date_from, date_to = date_to, date_from
        channel = (values.get("channel") or "").strip().lower() or None
        if channel and channel not in CHANNELS:
            problems.append("Unknown channel; it was ignored.")
            channel = None
        escalated = (values.get("escalated") or "").strip().lower() or None
        if escalated and escalated not in ESCALATED_CHOICES:
            problems.append("Unknown escalation filter; it was ignored.")
            escalated = None
        unanswered = (values.get("unanswered") or "").strip().lower() in {"1", "on", "true", "yes"}
        search = " ".join((values.get("q") or "").split())
        if len(search) > MAX_SEARCH_CHARS:
            problems.append(f"Search text was shortened to {MAX_SEARCH_CHARS} characters.")
            search = search[:MAX_SEARCH_CHARS]
        return cls(date_from, date_to, channel, escalated, unanswered, search), problems

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
