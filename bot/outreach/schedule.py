"""The outreach schedule (knowledge/outreach_schedule.yml): which texts go out when, quiet hours, and how long a
check-in may go unanswered before staff see it. Data a clinic can change, validated on load: every error names
the file, the message and the field.

Times are the patient's wall-clock time (the appointment's zone): "7 days before at 10:00" means 10:00 on the
local calendar day seven days before the appointment's local date, whatever the clocks did in between. A time
that falls in quiet hours goes out at the next allowed time (`Schedule.due_at`). Texts may use the clinic
placeholders ({clinic_phone}, {clinic_name}, ...) and {date} / {time} (the appointment, local, e.g.
"Monday, March 9" / "9:30 AM"); `render` fills them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.datafile import DataFileError, read_yaml, require_text
from bot.paths import KNOWLEDGE_DIR
from bot.settings import ClinicSettings, clinic_settings
from bot.vocabulary import SMS_MAX_CHARS

if TYPE_CHECKING:
    from bot.outreach.appointments import Appointment

REMINDER, CHECKIN = "reminder", "checkin"
KINDS = (REMINDER, CHECKIN)
VARIANTS = ("general", "lumbar", "cervical")
LEAFLETS = ("lumbar", "cervical")
APPOINTMENT_PLACEHOLDERS = ("date", "time")
MAX_DAYS = 60
# Longest values the placeholders can take, so a text is checked at its longest.
LONGEST_DATE, LONGEST_TIME = "Wednesday, September 30", "12:30 PM"
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_TOP_LEVEL = {"quiet_hours", "checkin_no_reply_hours", "messages"}
_MESSAGE_FIELDS = {"key", "kind", "days", "at", "sources", "text"}


def schedule_path() -> Path:
    return KNOWLEDGE_DIR / "outreach_schedule.yml"


@dataclass(frozen=True)
class QuietHours:
    """No texts from `start` to `end` (local wall clock); start > end spans midnight (e.g. 20:00 to 09:00)."""

    start: time
    end: time

    def is_quiet(self, at: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= at < self.end
        return at >= self.start or at < self.end

    def next_allowed(self, instant: datetime, zone: ZoneInfo) -> datetime:
        """`instant` (aware) if it is outside quiet hours in `zone`, else the end of those quiet hours (UTC)."""
        local = instant.astimezone(zone)
        if not self.is_quiet(local.time().replace(tzinfo=None)):
            return instant.astimezone(timezone.utc)
        day = local.date() if local.time() < self.end else local.date() + timedelta(days=1)
        wake = datetime.combine(day, self.end, tzinfo=zone)
        return wake.astimezone(timezone.utc)


@dataclass(frozen=True)
class Source:
    leaflet: str  # lumbar | cervical
    section: str


@dataclass(frozen=True)
class ScheduledMessage:
    key: str
    kind: str  # reminder | checkin
    days: int  # calendar days from the appointment's local date (-7 = a week before, 1 = the next day)
    at: time  # local time of day
    texts: Mapping[str, str]  # variant (general | lumbar | cervical) -> text with placeholders
    sources: tuple[Source, ...]

    def text_for(self, procedure: str) -> str:
        """The text for a procedure: its own variant if the message has one, else the general one."""
        return self.texts.get(procedure) or self.texts["general"]

    def planned_local(self, appointment_local: datetime) -> datetime:
        """The wall-clock time this message is meant for (before quiet hours), in the appointment's zone."""
        day = appointment_local.date() + timedelta(days=self.days)
        return datetime.combine(day, self.at, tzinfo=appointment_local.tzinfo)


@dataclass(frozen=True)
class Schedule:
    messages: tuple[ScheduledMessage, ...]
    quiet_hours: QuietHours
    checkin_no_reply: timedelta  # a check-in unanswered this long shows in the review app's list
    path: str = ""

    def message(self, key: str) -> ScheduledMessage:
        for message in self.messages:
            if message.key == key:
                return message
        raise KeyError(key)

    @property
    def keys(self) -> list[str]:
        return [message.key for message in self.messages]

    def due_at(self, message: ScheduledMessage, starts_at: datetime, time_zone: str) -> datetime:
        """When to send `message` for an appointment starting at `starts_at` (aware) in `time_zone`: the planned
        local time, moved out of quiet hours; UTC. A local time skipped by a clock change moves forward."""
        zone = ZoneInfo(time_zone)
        planned = message.planned_local(starts_at.astimezone(zone))
        # zoneinfo reads a skipped wall time (02:30 on a spring-forward night) with the old offset: one hour on
        return self.quiet_hours.next_allowed(planned.astimezone(timezone.utc), zone)

    def plan(self, appointment: Appointment, now: datetime) -> list[tuple[ScheduledMessage, datetime]]:
        """The messages still to send for an appointment as it is now, with their due times (UTC), in order.
        None for a cancelled appointment or one without consent; a reminder only if it goes out before the
        appointment starts; nothing whose time has already passed (a late booking gets the later messages)."""
        if not appointment.active or not appointment.consent:
            return []
        planned = []
        for message in self.messages:
            due = self.due_at(message, appointment.starts_at, appointment.time_zone)
            if message.kind == REMINDER and due >= appointment.starts_at:
                continue
            if message.kind == CHECKIN and due <= appointment.starts_at:
                continue
            if due < now:
                continue
            planned.append((message, due))
        return sorted(planned, key=lambda item: item[1])


def appointment_placeholders(local_start: datetime) -> dict[str, str]:
    """{date} and {time} of an appointment in plain words: "Monday, March 9", "9:30 AM"."""
    hour = local_start.hour % 12 or 12
    return {"date": f"{local_start:%A}, {local_start:%B} {local_start.day}",
            "time": f"{hour}:{local_start:%M} {'AM' if local_start.hour < 12 else 'PM'}"}


def render(message: ScheduledMessage, appointment: Appointment, settings: ClinicSettings | None = None) -> str:
    """The text to send for one appointment: its procedure's variant, placeholders filled."""
    values = {**(settings or clinic_settings()).as_placeholders(), **appointment_placeholders(appointment.local_start)}
    return _fill(message.text_for(appointment.procedure), values)


def _fill(text: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), text)


def longest_rendering(text: str, settings: ClinicSettings) -> str:
    """`text` with every placeholder at its longest value (to check the length limit)."""
    return _fill(text, {**settings.as_placeholders(), "date": LONGEST_DATE, "time": LONGEST_TIME})


# --- loading -------------------------------------------------------------------------------------------------
def _parse_time(path: Path, entry: str | None, field: str, value) -> time:
    match = _TIME.match(str(value).strip()) if isinstance(value, str) else None
    if not match:
        raise DataFileError(path, "must be a 24-hour time written \"HH:MM\" (in quotes)", entry, field)
    return time(int(match.group(1)), int(match.group(2)))


def _parse_message(path: Path, index: int, raw, settings: ClinicSettings) -> ScheduledMessage:
    if not isinstance(raw, dict):
        raise DataFileError(path, f"message {index + 1} must be a mapping", field="messages")
    key = raw.get("key")
    if not isinstance(key, str) or not _KEY.match(key):
        raise DataFileError(path, "must be lower-case letters, digits and _ (at most 40)", f"message {index + 1}", "key")
    unknown = sorted(set(raw) - _MESSAGE_FIELDS)
    if unknown:
        raise DataFileError(path, f"unknown field(s): {', '.join(unknown)}", key, unknown[0])
    kind = raw.get("kind")
    if kind not in KINDS:
        raise DataFileError(path, f"must be one of {', '.join(KINDS)}", key, "kind")
    days = raw.get("days")
    if not isinstance(days, int) or isinstance(days, bool) or not -MAX_DAYS <= days <= MAX_DAYS:
        raise DataFileError(path, f"must be a whole number of days from -{MAX_DAYS} to {MAX_DAYS}", key, "days")
    if kind == REMINDER and days > 0:
        raise DataFileError(path, "a reminder comes before the appointment: days must be 0 or less", key, "days")
    if kind == CHECKIN and days < 1:
        raise DataFileError(path, "a check-in comes after the appointment: days must be 1 or more", key, "days")
    at = _parse_time(path, key, "at", raw.get("at"))
    sources_raw = raw.get("sources")
    if not isinstance(sources_raw, list) or not sources_raw:
        raise DataFileError(path, "must list the leaflet sections the text's facts come from", key, "sources")
    sources = []
    for item in sources_raw:
        if not isinstance(item, dict) or item.get("leaflet") not in LEAFLETS:
            raise DataFileError(path, f"each source needs leaflet: one of {', '.join(LEAFLETS)}", key, "sources")
        sources.append(Source(item["leaflet"], require_text(path, key, "sources.section", item.get("section"))))
    text_raw = raw.get("text")
    if not isinstance(text_raw, dict) or not text_raw:
        raise DataFileError(path, "must map general, or lumbar and cervical, to a text", key, "text")
    unknown = sorted(set(text_raw) - set(VARIANTS))
    if unknown:
        raise DataFileError(path, f"unknown variant(s) {', '.join(map(str, unknown))}: use {', '.join(VARIANTS)}",
                            key, "text")
    if "general" not in text_raw and not {"lumbar", "cervical"} <= set(text_raw):
        raise DataFileError(path, "needs a general text, or both a lumbar and a cervical one", key, "text")
    texts = {}
    known = set(settings.as_placeholders()) | set(APPOINTMENT_PLACEHOLDERS)
    for variant, value in text_raw.items():
        field = f"text.{variant}"
        text = " ".join(require_text(path, key, field, value).split())
        for name in _PLACEHOLDER.findall(text):
            if name not in known:
                raise DataFileError(path, f"unknown placeholder {{{name}}}: use {', '.join(sorted(known))}", key, field)
        longest = len(longest_rendering(text, settings))
        if longest > SMS_MAX_CHARS:
            raise DataFileError(path, f"is {longest} characters with placeholders filled, the limit is {SMS_MAX_CHARS}",
                                key, field)
        texts[variant] = text
    return ScheduledMessage(key=key, kind=kind, days=days, at=at, texts=texts, sources=tuple(sources))


def load_schedule(path: Path | None = None, settings: ClinicSettings | None = None) -> Schedule:
    """Read and check the schedule file; DataFileError names the file, the message and the field."""
    path = Path(path or schedule_path())
    settings = settings or clinic_settings()
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise DataFileError(path, "must be a mapping with quiet_hours, checkin_no_reply_hours and messages")
    unknown = sorted(set(raw) - _TOP_LEVEL)
    if unknown:
        raise DataFileError(path, f"unknown field(s): {', '.join(unknown)}", field=unknown[0])
    quiet = raw.get("quiet_hours")
    if not isinstance(quiet, dict) or set(quiet) != {"start", "end"}:
        raise DataFileError(path, "must have a start and an end, e.g. {start: \"20:00\", end: \"09:00\"}",
                            field="quiet_hours")
    quiet_hours = QuietHours(_parse_time(path, None, "quiet_hours.start", quiet["start"]),
                             _parse_time(path, None, "quiet_hours.end", quiet["end"]))
    window = raw.get("checkin_no_reply_hours")
    if isinstance(window, bool) or not isinstance(window, (int, float)) or not 1 <= window <= 168:
        raise DataFileError(path, "must be a number of hours from 1 to 168", field="checkin_no_reply_hours")
    messages_raw = raw.get("messages")
    if not isinstance(messages_raw, list) or not messages_raw:
        raise DataFileError(path, "must be a non-empty list", field="messages")
    messages = tuple(_parse_message(path, index, item, settings) for index, item in enumerate(messages_raw))
    keys = [message.key for message in messages]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise DataFileError(path, f"key used twice: {', '.join(twice)}", twice[0], "key")
    return Schedule(messages=messages, quiet_hours=quiet_hours, checkin_no_reply=timedelta(hours=window),
                    path=str(path))


@lru_cache(maxsize=1)
def schedule() -> Schedule:
    """The schedule for this process, loaded once."""
    return load_schedule()
