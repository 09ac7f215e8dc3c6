"""Clinic settings: one data file (knowledge/clinic.yml), each value overridable by an environment variable."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, time
from functools import lru_cache
from pathlib import Path

from bot.config import ALERT_SETTING_VARIABLES, CLINIC_SETTING_VARIABLES, alert_overrides, clinic_overrides
from bot.datafile import DataFileError, read_yaml, require_text
from bot.paths import KNOWLEDGE_DIR


@dataclass(frozen=True)
class ClinicSettings:
    clinic_name: str
    clinic_phone: str
    clinic_hours: str
    emergency_number: str
    clinic_website: str

    def as_placeholders(self) -> dict[str, str]:
        """Values for `{clinic_phone}`-style placeholders in answers and responses."""
        return asdict(self)


def load_clinic_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> ClinicSettings:
    """Read the settings file, apply environment overrides (or those in `environ`), and validate every field."""
    path = Path(path or KNOWLEDGE_DIR / "clinic.yml")
    overrides = clinic_overrides(environ)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise DataFileError(path, "must be a mapping of setting names to values")
    unknown = sorted(set(raw) - set(CLINIC_SETTING_VARIABLES) - {ALERTS_SECTION})
    if unknown:
        raise DataFileError(path, f"unknown setting(s): {', '.join(unknown)}", field=unknown[0])
    values = {}
    for field, env_name in CLINIC_SETTING_VARIABLES.items():
        value = overrides.get(field) or raw.get(field)
        source = f"environment variable {env_name}" if field in overrides else None
        try:
            values[field] = require_text(path, None, field, None if value is None else str(value), max_length=120)
        except DataFileError as error:
            if source:
                raise DataFileError(path, f"{error} (value from {source})", field=field) from error
            raise
    return ClinicSettings(**values)


@lru_cache(maxsize=1)
def clinic_settings() -> ClinicSettings:
    """Settings for this process, loaded once."""
    return load_clinic_settings()


def fill_placeholders(text: str, settings: ClinicSettings | None = None) -> str:
    """Replace `{clinic_phone}`-style placeholders; unknown braces are left as they are."""
    settings = settings or clinic_settings()
    for key, value in settings.as_placeholders().items():
        text = text.replace("{" + key + "}", value)
    return text


# --- escalation alerts: the `alerts` section of knowledge/clinic.yml (bot/alerts) -----------------------
ALERTS_SECTION = "alerts"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_EMAIL = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\"]+$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_HOURS = re.compile(r"^(?P<first>[a-z]{3})(?:-(?P<last>[a-z]{3}))?\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})$")


@dataclass(frozen=True)
class OfficeHours:
    """When the clinic is staffed: weekday numbers (Monday 0) and a start/end time, in the clinic's zone."""

    spans: tuple[tuple[frozenset[int], time, time], ...]

    def is_open(self, moment: datetime) -> bool:
        clock = moment.time().replace(tzinfo=None)
        return any(moment.weekday() in days and start <= clock < end for days, start, end in self.spans)


@dataclass(frozen=True)
class AlertSettings:
    """Who hears about an escalation: e-mail recipients (office hours / after hours) and the on-call phone."""

    email_from: str
    email_to: tuple[str, ...]
    after_hours_email_to: tuple[str, ...]
    on_call_phone: str | None
    office_hours: OfficeHours

    def recipients_at(self, moment: datetime) -> tuple[str, ...]:
        """Office-hours recipients while the clinic is open, after-hours recipients (if any) otherwise."""
        if self.office_hours.is_open(moment) or not self.after_hours_email_to:
            return self.email_to
        return self.after_hours_email_to


def _clock(path: Path, field: str, text: str) -> time:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours == 24 and minutes == 0:
        return time.max
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise DataFileError(path, f"{text!r} is not a time of day (HH:MM)", ALERTS_SECTION, field)
    return time(hours, minutes)


def parse_office_hours(path: Path, text: str) -> OfficeHours:
    """`Mon-Fri 08:00-17:00, Sat 09:00-12:00` -> OfficeHours (each span: days, then start-end, 24-hour clock)."""
    spans = []
    for item in (part.strip().lower() for part in text.split(",")):
        match = _HOURS.match(item)
        if not match or match["first"] not in WEEKDAYS or (match["last"] or match["first"]) not in WEEKDAYS:
            raise DataFileError(path, f"{item!r} is not like 'Mon-Fri 08:00-17:00'", ALERTS_SECTION, "office_hours")
        first, last = WEEKDAYS.index(match["first"]), WEEKDAYS.index(match["last"] or match["first"])
        days = frozenset(range(first, last + 1)) if first <= last else frozenset([*range(first, 7), *range(last + 1)])
        start, end = _clock(path, "office_hours", match["start"]), _clock(path, "office_hours", match["end"])
        if not start < end:
            raise DataFileError(path, f"{item!r}: the start must be before the end", ALERTS_SECTION, "office_hours")
        spans.append((days, start, end))
    return OfficeHours(tuple(spans))


def _addresses(path: Path, field: str, value: object, required: bool) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [part for part in str(value or "").split(",")]
    addresses = tuple(str(item).strip() for item in items if str(item).strip())
    for address in addresses:
        if not _EMAIL.match(address):
            raise DataFileError(path, f"{address!r} is not an e-mail address", ALERTS_SECTION, field)
    if required and not addresses:
        raise DataFileError(path, "needs at least one e-mail address", ALERTS_SECTION, field)
    return addresses


def load_alert_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> AlertSettings:
    """The `alerts` section of the clinic settings file, with environment overrides, validated."""
    path = Path(path or KNOWLEDGE_DIR / "clinic.yml")
    raw = read_yaml(path)
    section = raw.get(ALERTS_SECTION) if isinstance(raw, dict) else None
    if not isinstance(section, dict):
        raise DataFileError(path, "must be a mapping (email_from, email_to, after_hours_email_to, on_call_phone, "
                                  "office_hours)", field=ALERTS_SECTION)
    unknown = sorted(set(section) - set(ALERT_SETTING_VARIABLES))
    if unknown:
        raise DataFileError(path, f"unknown setting(s): {', '.join(unknown)}", ALERTS_SECTION, unknown[0])
    overrides = alert_overrides(environ)
    try:
        return _alert_settings(path, {**section, **overrides})
    except DataFileError as error:
        if error.field in overrides:
            variable = ALERT_SETTING_VARIABLES[error.field]
            raise DataFileError(path, f"{str(error).split(': ', 1)[1]} (value from environment variable {variable})",
                                ALERTS_SECTION, error.field) from error
        raise


def _alert_settings(path: Path, values: dict) -> AlertSettings:
    email_from = _addresses(path, "email_from", values.get("email_from"), required=True)
    if len(email_from) != 1:
        raise DataFileError(path, "must be one e-mail address", ALERTS_SECTION, "email_from")
    phone = str(values.get("on_call_phone") or "").strip() or None
    if phone is not None and not _E164.match(phone):
        raise DataFileError(path, f"{phone!r} is not a phone number in E.164 form (+15550100199)", ALERTS_SECTION,
                            "on_call_phone")
    hours = require_text(path, ALERTS_SECTION, "office_hours", values.get("office_hours"), max_length=200)
    return AlertSettings(
        email_from=email_from[0],
        email_to=_addresses(path, "email_to", values.get("email_to"), required=True),
        after_hours_email_to=_addresses(path, "after_hours_email_to", values.get("after_hours_email_to"), False),
        on_call_phone=phone,
        office_hours=parse_office_hours(path, hours),
    )
