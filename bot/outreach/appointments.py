"""Appointments staff book for outreach: who (phone, E.164), which injection, when (UTC + the patient's zone),
and whether the patient agreed to texts. No texts without recorded consent.

Why a version: every reschedule bumps `version`, and the outbox keys its messages by (appointment id, message
key, version), so messages planned for the old time are told apart from those for the new one. A cancel sets
`status` to cancelled (the row stays: staff can still see what was sent).

Change hooks: the outbox registers `add_change_hook(hook)`; every add / update / cancel calls
`hook(connection, appointment, now)` inside the same transaction, so pending messages move or are cancelled
together with the appointment (or not at all).

Functions: `add`, `update`, `cancel`, `get`, `list_appointments`, `list_active(now)`, `import_csv(text)`
(all-or-nothing, errors by line and field), `normalise_phone` (E.164 or PhoneError).
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bot.config import outreach_country_code
from bot.outreach.db import metadata, outreach_engine

PROCEDURES = ("lumbar", "cervical")
ACTIVE, CANCELLED = "active", "cancelled"
STATUSES = (ACTIVE, CANCELLED)
CSV_COLUMNS = ("phone", "procedure", "date", "time", "time_zone", "consent")
MAX_CSV_ROWS = 5000
MAX_CSV_BYTES = 1_000_000
MAX_USER_CHARS = 80
ACTIVE_LOOKBACK = timedelta(days=14)  # list_active keeps appointments this recent: check-ins come after the day
_YES = {"yes", "y", "true", "1", "agreed", "x"}
_NO = {"no", "n", "false", "0", ""}
_PHONE_CHARS = re.compile(r"^[\d\s().+\-/]*$")
_NANP_LOCAL = re.compile(r"^[2-9]\d{9}$")  # US/Canada: 10 digits, the area code does not start with 0/1

appointments_table = sa.Table(
    "outreach_appointments", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("phone", sa.String(16), nullable=False, index=True),  # E.164
    sa.Column("procedure", sa.String(10), nullable=False),  # lumbar | cervical
    sa.Column("starts_at", sa.Float, nullable=False, index=True),  # UTC, seconds since the epoch
    sa.Column("time_zone", sa.String(64), nullable=False),  # IANA name: the patient's local time
    sa.Column("consent", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(10), nullable=False, index=True),  # active | cancelled
    sa.Column("version", sa.Integer, nullable=False),  # bumped on every reschedule
    sa.Column("created_by", sa.String(MAX_USER_CHARS), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(MAX_USER_CHARS), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)


class PhoneError(ValueError):
    """A phone number that cannot be a mobile number in E.164."""


class AppointmentError(ValueError):
    """Bad appointment values; `problems` maps each field to what is wrong with it."""

    def __init__(self, problems: dict[str, str]):
        self.problems = problems
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in problems.items()))


class NotFound(LookupError):
    """No appointment with that id."""


@dataclass(frozen=True)
class Appointment:
    id: int
    phone: str  # E.164, e.g. +15551234567
    procedure: str  # lumbar | cervical
    starts_at: datetime  # aware, UTC
    time_zone: str  # IANA name
    consent: bool
    status: str  # active | cancelled
    version: int
    created_by: str
    created_at: float
    updated_by: str
    updated_at: float

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def local_start(self) -> datetime:
        """When the appointment is, on the patient's clock."""
        return self.starts_at.astimezone(self.zone)

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


@dataclass(frozen=True)
class AppointmentInput:
    """Checked values for a new or changed appointment (see `check_values`)."""

    phone: str
    procedure: str
    starts_at: datetime  # aware, UTC
    time_zone: str
    consent: bool


@dataclass
class RowError:
    line: int  # line number in the file (the header is line 1)
    field: str  # a column name, or "row"
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, {self.field}: {self.message}"


@dataclass
class ImportReport:
    """What `import_csv` did: nothing at all when there are errors (all-or-nothing)."""

    errors: list[RowError] = field(default_factory=list)
    added: list[int] = field(default_factory=list)  # ids of the new appointments
    duplicates: list[int] = field(default_factory=list)  # lines already booked (same phone and time): skipped

    @property
    def ok(self) -> bool:
        return not self.errors


ChangeHook = Callable[[Connection, Appointment, float], None]
_change_hooks: list[ChangeHook] = []


def add_change_hook(hook: ChangeHook) -> None:
    """Call `hook(connection, appointment, now)` in the transaction of every add / update / cancel."""
    if hook not in _change_hooks:
        _change_hooks.append(hook)


# --- checking values ---------------------------------------------------------------------------------
def normalise_phone(raw: str, country_code: str | None = None) -> str:
    """A phone number in E.164 (+15551234567). Accepts spaces, dots, dashes, brackets, a leading + or 00,
    and national numbers (the OUTREACH_COUNTRY_CODE is added). Raises PhoneError with a reason."""
    text = (raw or "").strip()
    if not text:
        raise PhoneError("is empty")
    if not _PHONE_CHARS.match(text):
        raise PhoneError("may contain only digits, spaces, brackets, dots, dashes and a leading +")
    if "+" in text[1:]:
        raise PhoneError("has a + that is not at the start")
    digits = re.sub(r"\D", "", text)
    code = country_code or outreach_country_code()
    if text.startswith("+"):
        number = digits
    elif digits.startswith("00"):
        number = digits[2:]
    elif code == "1" and len(digits) == 11 and digits.startswith("1"):
        number = digits
    else:
        national = digits[1:] if code != "1" and digits.startswith("0") else digits  # trunk 0 (e.g. UK 07...)
        number = code + national
    if not number or number.startswith("0"):
        raise PhoneError("has no valid country code")
    if number.startswith("1"):
        if not _NANP_LOCAL.match(number[1:]):
            raise PhoneError("is not a valid US or Canada number (10 digits, area code first)")
    elif not 8 <= len(number) <= 15:
        raise PhoneError("must have 8 to 15 digits with the country code")
    return "+" + number


def parse_zone(name: str) -> str:
    """The IANA zone name as given (America/Chicago), or ValueError."""
    name = (name or "").strip()
    if not name or name not in _zone_names():
        raise ValueError("must be a time zone name such as America/Chicago")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be a time zone name such as America/Chicago") from None
    return name


_ZONES: frozenset[str] | None = None


def _zone_names() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


def zone_choices() -> list[str]:
    """Zone names for a form's list (Area/City names only)."""
    return sorted(name for name in _zone_names() if "/" in name and not name.startswith(("Etc/", "SystemV/")))


def local_to_utc(day: date, at: tuple[int, int], zone: tzinfo) -> datetime:
    """The UTC instant of a wall-clock time in `zone`; ValueError for a time skipped by a clock change."""
    local = datetime(day.year, day.month, day.day, at[0], at[1], tzinfo=zone)
    utc = local.astimezone(timezone.utc)
    if utc.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise ValueError("does not exist on that day (the clocks change)")
    return utc


def _parse_day(raw: str) -> date:
    try:
        return date.fromisoformat((raw or "").strip())
    except ValueError:
        raise ValueError("must be a date written YYYY-MM-DD") from None


def _parse_time(raw: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", (raw or "").strip())
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError("must be a 24-hour time written HH:MM")
    return int(match.group(1)), int(match.group(2))


def parse_consent(raw: str | bool) -> bool:
    if isinstance(raw, bool):
        return raw
    value = (raw or "").strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise ValueError("must be yes or no")


def check_values(phone: str, procedure: str, day: str, at: str, time_zone: str, consent: str | bool,
                 now: float | None = None, past_start: datetime | None = None) -> AppointmentInput:
    """Check raw values (form fields, a CSV row, CLI options); AppointmentError names every bad field.
    A start in the past is refused, except `past_start` (an appointment's own time, kept while changing the rest)."""
    problems: dict[str, str] = {}
    values: dict = {}
    try:
        values["phone"] = normalise_phone(phone)
    except PhoneError as error:
        problems["phone"] = str(error)
    values["procedure"] = (procedure or "").strip().lower()
    if values["procedure"] not in PROCEDURES:
        problems["procedure"] = "must be lumbar or cervical"
    zone = None
    try:
        values["time_zone"] = parse_zone(time_zone)
        zone = ZoneInfo(values["time_zone"])
    except ValueError as error:
        problems["time_zone"] = str(error)
    parsed_day = parsed_time = None
    try:
        parsed_day = _parse_day(day)
    except ValueError as error:
        problems["date"] = str(error)
    try:
        parsed_time = _parse_time(at)
    except ValueError as error:
        problems["time"] = str(error)
    if zone and parsed_day and parsed_time:
        try:
            values["starts_at"] = local_to_utc(parsed_day, parsed_time, zone)
        except ValueError as error:
            problems["time"] = str(error)
        else:
            if values["starts_at"].timestamp() <= (time.time() if now is None else now) \
                    and values["starts_at"] != past_start:
                problems["date"] = "is in the past"
    try:
        values["consent"] = parse_consent(consent)
    except ValueError as error:
        problems["consent"] = str(error)
    if problems:
        raise AppointmentError(problems)
    return AppointmentInput(**values)


def _user(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise AppointmentError({"by": "who made the change is required"})
    return name[:MAX_USER_CHARS]


# --- the store -----------------------------------------------------------------------------------------
def _from_row(row) -> Appointment:
    return Appointment(
        id=row.id, phone=row.phone, procedure=row.procedure,
        starts_at=datetime.fromtimestamp(row.starts_at, tz=timezone.utc), time_zone=row.time_zone,
        consent=bool(row.consent), status=row.status, version=row.version, created_by=row.created_by,
        created_at=row.created_at, updated_by=row.updated_by, updated_at=row.updated_at)


class AppointmentStore:
    """Appointments in OUTREACH_DB_URL (or `url`)."""

    def __init__(self, url: str | None = None, engine: Engine | None = None):
        self.engine = engine or outreach_engine(url)

    def _run_hooks(self, connection: Connection, appointment: Appointment, now: float) -> None:
        for hook in list(_change_hooks):
            hook(connection, appointment, now)

    def _get(self, connection: Connection, appointment_id: int) -> Appointment:
        row = connection.execute(
            sa.select(appointments_table).where(appointments_table.c.id == appointment_id)).first()
        if row is None:
            raise NotFound(appointment_id)
        return _from_row(row)

    def _insert(self, connection: Connection, values: AppointmentInput, by: str, now: float) -> Appointment:
        appointment_id = connection.execute(appointments_table.insert().values(
            phone=values.phone, procedure=values.procedure, starts_at=values.starts_at.timestamp(),
            time_zone=values.time_zone, consent=values.consent, status=ACTIVE, version=1,
            created_by=by, created_at=now, updated_by=by, updated_at=now,
        )).inserted_primary_key[0]
        appointment = Appointment(
            id=appointment_id, phone=values.phone, procedure=values.procedure,
            starts_at=datetime.fromtimestamp(values.starts_at.timestamp(), tz=timezone.utc),
            time_zone=values.time_zone, consent=values.consent, status=ACTIVE, version=1, created_by=by,
            created_at=now, updated_by=by, updated_at=now)
        self._run_hooks(connection, appointment, now)
        return appointment

    def add(self, values: AppointmentInput, by: str, now: float | None = None) -> Appointment:
        """Book a checked appointment (see `check_values`)."""
        now = time.time() if now is None else now
        by = _user(by)
        with self.engine.begin() as connection:
            return self._insert(connection, values, by, now)

    def update(self, appointment_id: int, values: AppointmentInput, by: str, now: float | None = None) -> Appointment:
        """Change an active appointment; a new time or zone is a reschedule (version + 1, messages move)."""
        now = time.time() if now is None else now
        by = _user(by)
        with self.engine.begin() as connection:
            current = self._get(connection, appointment_id)
            if not current.active:
                raise AppointmentError({"status": "a cancelled appointment cannot be changed"})
            moved = (values.starts_at != current.starts_at or values.time_zone != current.time_zone
                     or values.procedure != current.procedure or values.phone != current.phone)
            connection.execute(appointments_table.update().where(appointments_table.c.id == appointment_id).values(
                phone=values.phone, procedure=values.procedure, starts_at=values.starts_at.timestamp(),
                time_zone=values.time_zone, consent=values.consent,
                version=appointments_table.c.version + (1 if moved else 0), updated_by=by, updated_at=now))
            appointment = self._get(connection, appointment_id)
            self._run_hooks(connection, appointment, now)
            return appointment

    def cancel(self, appointment_id: int, by: str, now: float | None = None) -> Appointment:
        """Cancel an appointment (its pending messages are cancelled with it); cancelling twice is harmless."""
        now = time.time() if now is None else now
        by = _user(by)
        with self.engine.begin() as connection:
            current = self._get(connection, appointment_id)
            if not current.active:
                return current
            connection.execute(appointments_table.update().where(appointments_table.c.id == appointment_id)
                               .values(status=CANCELLED, updated_by=by, updated_at=now))
            appointment = self._get(connection, appointment_id)
            self._run_hooks(connection, appointment, now)
            return appointment

    def get(self, appointment_id: int) -> Appointment:
        with self.engine.connect() as connection:
            return self._get(connection, appointment_id)

    def list_appointments(self, status: str | None = None, since: float | None = None, until: float | None = None,
                          phone: str | None = None, limit: int = 500, offset: int = 0) -> list[Appointment]:
        """Appointments by start time (soonest first), optionally one status / a time range / one phone."""
        a = appointments_table.c
        query = _filtered(sa.select(appointments_table), status, since, until, phone)
        query = query.order_by(a.starts_at, a.id).limit(limit).offset(offset)
        with self.engine.connect() as connection:
            return [_from_row(row) for row in connection.execute(query).all()]

    def count(self, status: str | None = None, since: float | None = None, until: float | None = None,
              phone: str | None = None) -> int:
        query = _filtered(sa.select(sa.func.count()).select_from(appointments_table), status, since, until, phone)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar() or 0)

    def list_active(self, now: float | None = None, lookback: timedelta = ACTIVE_LOOKBACK) -> list[Appointment]:
        """Active appointments that may still have messages to send: from `lookback` before `now` on."""
        now = time.time() if now is None else now
        return self.list_appointments(status=ACTIVE, since=now - lookback.total_seconds(), limit=1_000_000)

    def import_csv(self, text: str, by: str, now: float | None = None) -> ImportReport:
        """Book every row of a CSV file, or none: any bad row -> errors by line and field, nothing stored.

        Columns (header row, any order): phone, procedure, date (YYYY-MM-DD), time (HH:MM, the patient's local
        time), time_zone (IANA name), consent (yes/no). A row that matches an active appointment (same phone and
        start) is skipped as a duplicate, so importing the same file twice books nothing twice."""
        now = time.time() if now is None else now
        by = _user(by)
        report = ImportReport()
        rows = _read_csv(text, report)  # header problems: no rows; a bad row: reported, the others still checked
        checked: list[tuple[int, AppointmentInput]] = []
        seen: dict[tuple[str, float], int] = {}
        for line, row in rows:
            try:
                values = check_values(row.get("phone", ""), row.get("procedure", ""), row.get("date", ""),
                                      row.get("time", ""), row.get("time_zone", ""), row.get("consent", ""), now=now)
            except AppointmentError as error:
                report.errors.extend(RowError(line, name, problem) for name, problem in error.problems.items())
                continue
            key = (values.phone, values.starts_at.timestamp())
            if key in seen:
                report.errors.append(RowError(line, "row", f"same phone and time as line {seen[key]}"))
                continue
            seen[key] = line
            checked.append((line, values))
        if not report.ok:
            return report
        a = appointments_table.c
        with self.engine.begin() as connection:
            booked: set[tuple[str, float]] = set()
            phones = sorted({values.phone for _, values in checked})
            for start in range(0, len(phones), 500):  # one query per 500 numbers: what is booked already
                booked.update((row.phone, row.starts_at) for row in connection.execute(
                    sa.select(a.phone, a.starts_at).where(a.phone.in_(phones[start:start + 500]), a.status == ACTIVE)))
            for line, values in checked:
                if (values.phone, values.starts_at.timestamp()) in booked:
                    report.duplicates.append(line)
                    continue
                report.added.append(self._insert(connection, values, by, now).id)
        return report


def _read_csv(text: str, report: ImportReport) -> list[tuple[int, dict[str, str]]]:
    """Rows of the file as {column: value} with their line numbers; header problems go into `report`."""
    if len(text.encode("utf-8", "replace")) > MAX_CSV_BYTES:
        report.errors.append(RowError(1, "file", f"is larger than {MAX_CSV_BYTES // 1000} kB"))
        return []
    text = text.lstrip("\ufeff")  # spreadsheet programs start UTF-8 CSV files with a byte-order mark
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as error:
        report.errors.append(RowError(1, "file", f"is not a readable CSV file ({error})"))
        return []
    if not header:
        report.errors.append(RowError(1, "file", f"is empty: the first line must name the columns {', '.join(CSV_COLUMNS)}"))
        return []
    names = [name.strip().lower().replace(" ", "_") for name in header]
    missing = [name for name in CSV_COLUMNS if name not in names]
    unknown = [name for name in names if name not in CSV_COLUMNS]
    if missing:
        report.errors.append(RowError(1, "header", f"missing column(s): {', '.join(missing)}"))
    if unknown:
        report.errors.append(RowError(1, "header", f"unknown column(s): {', '.join(unknown)}"))
    if len(set(names)) != len(names):
        report.errors.append(RowError(1, "header", "a column is named twice"))
    if not report.ok:
        return []
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue  # blank line
            if len(rows) >= MAX_CSV_ROWS:
                report.errors.append(RowError(line, "file", f"has more than {MAX_CSV_ROWS} rows: split it"))
                break
            if len(cells) != len(names):
                report.errors.append(RowError(line, "row", f"has {len(cells)} values, the header has {len(names)}"))
                continue
            rows.append((line, dict(zip(names, cells, strict=True))))
    except csv.Error as error:
        report.errors.append(RowError(reader.line_num, "row", f"cannot be read ({error})"))
    return rows


# --- module-level functions on OUTREACH_DB_URL ------------------------------------------------------------
def add(values: AppointmentInput, by: str, now: float | None = None, url: str | None = None) -> Appointment:
    return AppointmentStore(url).add(values, by, now)


def update(appointment_id: int, values: AppointmentInput, by: str, now: float | None = None,
           url: str | None = None) -> Appointment:
    return AppointmentStore(url).update(appointment_id, values, by, now)


def cancel(appointment_id: int, by: str, now: float | None = None, url: str | None = None) -> Appointment:
    return AppointmentStore(url).cancel(appointment_id, by, now)


def get(appointment_id: int, url: str | None = None) -> Appointment:
    return AppointmentStore(url).get(appointment_id)


def list_active(now: float | None = None, url: str | None = None) -> list[Appointment]:
    return AppointmentStore(url).list_active(now)


def import_csv(text: str, by: str, now: float | None = None, url: str | None = None) -> ImportReport:
    return AppointmentStore(url).import_csv(text, by, now)


def _filtered(query: sa.sql.Select, status: str | None, since: float | None, until: float | None,
              phone: str | None) -> sa.sql.Select:
    """The appointment list's filters (one status, a start-time range, one phone), for rows and for counts."""
    a = appointments_table.c
    if status:
        query = query.where(a.status == status)
    if since is not None:
        query = query.where(a.starts_at >= since)
    if until is not None:
        query = query.where(a.starts_at < until)
    if phone:
        query = query.where(a.phone == phone)
    return query
