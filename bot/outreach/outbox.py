"""The outreach outbox: one row per text to send, planned from an appointment and the schedule.

Exactly once: a row is unique per (appointment, message key, appointment version), so planning the same
appointment again adds nothing. A worker claims a row with one conditional UPDATE (status and attempt count
must still be what it read), so of two workers only one wins; it sends, then marks the row sent. A claim whose
worker died mid-send is settled by asking Twilio whether the message went out (bot.outreach.worker), never by
sending blind.

Moving and cancelling: when an appointment changes (bot.outreach.appointments change hook, same transaction)
the rows of older versions still waiting are cancelled (`rescheduled`) and the new version's rows are planned;
a cancelled appointment, or one without consent, cancels its waiting rows. The worker's claim checks the
appointment once more, so a row whose appointment moved is never sent even if planning lagged.

Due time: the schedule's day offset and local time in the patient's zone (so a daylight-saving change keeps the
local time), moved out of the quiet hours to the next allowed local time. Nothing is planned for an appointment
already past, a reminder is not sent once the appointment has started, a check-in not long after its time.

Statuses: pending -> sending -> sent -> delivered | failed (Twilio's status callback), or cancelled (with a
reason: appointment_cancelled, rescheduled, no_consent, opted_out, too_late).

Read API for the review app: `messages_for_appointment(id)`, `unanswered_checkins(now)`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bot.config import outreach_db_url
from bot.outreach.appointments import Appointment, add_change_hook, appointments_table
from bot.outreach.db import metadata, outreach_engine
from bot.outreach.schedule import CHECKIN, REMINDER, Schedule
from bot.outreach.schedule import schedule as current_schedule
from bot.privacy import private_sqlite_file
from bot.sqlite_wal import use_write_ahead_log

PENDING, SENDING, SENT, DELIVERED, FAILED, CANCELLED = "pending", "sending", "sent", "delivered", "failed", "cancelled"
STATUSES = (PENDING, SENDING, SENT, DELIVERED, FAILED, CANCELLED)
WAITING = (PENDING, SENDING)
WENT_OUT = (SENT, DELIVERED)  # Twilio accepted it (delivered: the phone got it)
# why a row was cancelled
APPOINTMENT_CANCELLED, RESCHEDULED, NO_CONSENT, OPTED_OUT, TOO_LATE = (
    "appointment_cancelled", "rescheduled", "no_consent", "opted_out", "too_late")
CHECKIN_LATE_LIMIT_S = 24 * 3600.0  # a check-in not sent within a day of its time is dropped (it would confuse)
CLAIM_S = 60.0  # a claim older than this belongs to a worker that died mid-send (Twilio answers within 20 s)
MAX_ERROR_CHARS = 300
CALLBACK_ERROR = "Twilio: "  # prefix of a failure Twilio reported by status callback ("Twilio: undelivered ...")
UNANSWERED_LOOKBACK_S = 14 * 86400.0  # check-ins older than this no longer show as unanswered

messages_table = sa.Table(
    "outreach_messages", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("appointment_id", sa.Integer, sa.ForeignKey("outreach_appointments.id"), nullable=False),
    sa.Column("message_key", sa.String(64), nullable=False),
    sa.Column("appointment_version", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),  # reminder | checkin
    sa.Column("phone", sa.String(16), nullable=False, index=True),  # E.164, as booked
    sa.Column("due_at", sa.Float, nullable=False),  # UTC seconds: outside quiet hours
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("reason", sa.String(40)),  # why cancelled
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("claim_expires_at", sa.Float),
    sa.Column("body", sa.Text),  # the text as sent
    sa.Column("twilio_sid", sa.String(64), index=True),
    sa.Column("sent_at", sa.Float),
    sa.Column("delivered_at", sa.Float),
    sa.Column("last_error", sa.Text),
    sa.Column("tracker_recorded_at", sa.Float),  # when the text entered the patient's conversation
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("appointment_id", "message_key", "appointment_version", name="uq_outreach_message"),
    sa.Index("ix_outreach_messages_status_due", "status", "due_at"),
    sa.Index("ix_outreach_messages_appointment", "appointment_id"),
)


@dataclass(frozen=True)
class OutreachMessage:
    """A row as the review app and the worker read it."""

    id: int
    appointment_id: int
    appointment_version: int
    message_key: str
    kind: str
    phone: str
    due_at: float
    status: str
    reason: str | None
    attempts: int
    body: str | None
    twilio_sid: str | None
    sent_at: float | None
    delivered_at: float | None
    last_error: str | None
    tracker_recorded_at: float | None
    claim_expires_at: float | None = None

    @property
    def claimed_at(self) -> float | None:
        return None if self.claim_expires_at is None else self.claim_expires_at - CLAIM_S


@dataclass(frozen=True)
class UnansweredCheckin:
    """A check-in the patient has not answered within the schedule's no-reply window (staff may call)."""

    message: OutreachMessage
    appointment_id: int
    phone: str
    procedure: str
    sent_at: float
    waiting_s: float


def too_late(kind: str, due_at: float, starts_at: float, now: float) -> bool:
    """A reminder once the appointment has started, a check-in a day after its time: not sent at all."""
    if kind == REMINDER:
        return now >= starts_at
    return now > due_at + CHECKIN_LATE_LIMIT_S


def _row(row) -> OutreachMessage:  # noqa: ANN001 - a SQLAlchemy row
    return OutreachMessage(
        id=row.id, appointment_id=row.appointment_id, appointment_version=row.appointment_version,
        message_key=row.message_key, kind=row.kind, phone=row.phone, due_at=row.due_at, status=row.status,
        reason=row.reason, attempts=row.attempts, body=row.body, twilio_sid=row.twilio_sid, sent_at=row.sent_at,
        delivered_at=row.delivered_at, last_error=row.last_error, tracker_recorded_at=row.tracker_recorded_at,
        claim_expires_at=row.claim_expires_at)


# --- planning ------------------------------------------------------------------------------------------
def cancel_waiting(connection: Connection, appointment_id: int, reason: str, now: float,
                   below_version: int | None = None) -> int:
    """Cancel the appointment's rows not yet claimed (all, or those of versions below `below_version`)."""
    m = messages_table.c
    query = messages_table.update().where(m.appointment_id == appointment_id, m.status == PENDING)
    if below_version is not None:
        query = query.where(m.appointment_version < below_version)
    return connection.execute(query.values(status=CANCELLED, reason=reason, updated_at=now)).rowcount


def plan_appointment(connection: Connection, appointment: Appointment, schedule: Schedule, now: float) -> int:
    """Bring the appointment's rows up to date inside the caller's transaction; the number of rows added."""
    if not appointment.active:
        cancel_waiting(connection, appointment.id, APPOINTMENT_CANCELLED, now)
        return 0
    if not appointment.consent:
        cancel_waiting(connection, appointment.id, NO_CONSENT, now)
        return 0
    cancel_waiting(connection, appointment.id, RESCHEDULED, now, below_version=appointment.version)
    m = messages_table.c
    connection.execute(messages_table.update().where(  # consent given again: its texts still ahead come back
        m.appointment_id == appointment.id, m.appointment_version == appointment.version, m.status == CANCELLED,
        m.reason == NO_CONSENT, m.due_at > now).values(status=PENDING, reason=None, updated_at=now))
    if appointment.starts_at.timestamp() <= now:
        return 0  # no messages for an appointment that is already past when it is booked or changed
    known = set(connection.execute(sa.select(m.message_key).where(
        m.appointment_id == appointment.id, m.appointment_version == appointment.version)).scalars())
    rows = [dict(appointment_id=appointment.id, message_key=message.key, appointment_version=appointment.version,
                 kind=message.kind, phone=appointment.phone, due_at=due.timestamp(), status=PENDING, attempts=0,
                 created_at=now, updated_at=now)
            for message, due in schedule.plan(appointment, datetime.fromtimestamp(now, timezone.utc))
            if message.key not in known]
    if rows:
        connection.execute(messages_table.insert(), rows)
    return len(rows)


def _on_appointment_change(connection: Connection, appointment: Appointment, now: float) -> None:
    plan_appointment(connection, appointment, current_schedule(), now)


add_change_hook(_on_appointment_change)


@lru_cache(maxsize=8)
def outbox_engine(url: str) -> Engine:
    """The worker's engine. On SQLite: pooled connections and write-ahead logging, because a connection opened
    per transaction (SQLAlchemy's default for SQLite files) checkpoints and syncs the file on every close:
    ~17 ms per claim instead of ~4 ms (scripts/bench_outreach.py). Other databases: bot.outreach.db's engine."""
    if not url.startswith("sqlite"):
        return outreach_engine(url, create=False)
    private_sqlite_file(url)
    engine = sa.create_engine(url, future=True, poolclass=sa.pool.QueuePool, pool_size=8, max_overflow=8,
                              connect_args={"timeout": 15, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _write_ahead_log(dbapi_connection, _record) -> None:  # noqa: ANN001 - sqlite3 connection
        use_write_ahead_log(dbapi_connection)  # readers never block the writer; kept by the file

    return engine


class Outbox:
    """The outbox in OUTREACH_DB_URL (or `url`); planning, claiming and recording for the worker."""

    def __init__(self, url: str | None = None, engine: Engine | None = None, create: bool = True):
        self.engine = engine or outbox_engine(url or outreach_db_url())
        if create:
            metadata.create_all(self.engine)

    # --- planning (the worker's catch-up; changes made through bot.outreach.appointments plan at once) -----
    def plan_changed(self, since: tuple[float, int], schedule: Schedule, now: float,
                     batch: int = 500) -> tuple[int, tuple[float, int]]:
        """Plan the appointments changed after the cursor `since` = (updated_at, id), skipping those long past;
        (rows added, the new cursor). (0.0, 0) plans every appointment: a restart or a changed schedule file."""
        from bot.outreach.appointments import ACTIVE_LOOKBACK, _from_row

        a = appointments_table.c
        added, cursor = 0, since
        while True:
            with self.engine.begin() as connection:
                rows = connection.execute(
                    sa.select(appointments_table)
                    .where(sa.or_(a.updated_at > cursor[0], sa.and_(a.updated_at == cursor[0], a.id > cursor[1])),
                           a.starts_at >= now - ACTIVE_LOOKBACK.total_seconds())
                    .order_by(a.updated_at, a.id).limit(batch)).all()
                for row in rows:
                    added += plan_appointment(connection, _from_row(row), schedule, now)
            if not rows:
                return added, cursor
            cursor = (rows[-1].updated_at, rows[-1].id)

    # --- claiming -----------------------------------------------------------------------------------------
    def due(self, now: float, limit: int = 200) -> list[OutreachMessage]:
        """Rows to work on now: pending ones whose time has come, and claims abandoned by a dead worker."""
        m = messages_table.c
        query = (sa.select(messages_table)
                 .where(sa.or_(sa.and_(m.status == PENDING, m.due_at <= now),
                               sa.and_(m.status == SENDING, m.claim_expires_at < now)))
                 .order_by(m.due_at, m.id).limit(limit))
        with self.engine.connect() as connection:
            return [_row(row) for row in connection.execute(query).all()]

    def next_due_at(self) -> float | None:
        """The earliest time a waiting row is due (tests and the benchmark move a fake clock to it)."""
        m = messages_table.c
        with self.engine.connect() as connection:
            return connection.execute(sa.select(sa.func.min(m.due_at)).where(m.status == PENDING)).scalar()

    def claim_many(self, messages: Iterable[OutreachMessage], worker_id: str, now: float) -> list[OutreachMessage]:
        """Take rows for this worker, one conditional UPDATE each (status and attempts still as read: of two
        workers exactly one wins a row), in one transaction; the rows won."""
        m = messages_table.c
        won = []
        with self.engine.begin() as connection:
            for message in messages:
                claimed = connection.execute(
                    messages_table.update()
                    .where(m.id == message.id, m.status == message.status, m.attempts == message.attempts)
                    .values(status=SENDING, attempts=message.attempts + 1, claimed_by=worker_id,
                            claim_expires_at=now + CLAIM_S, updated_at=now)).rowcount
                if claimed == 1:
                    won.append(message)
        return won

    def claim(self, message: OutreachMessage, worker_id: str, now: float) -> bool:
        return bool(self.claim_many([message], worker_id, now))

    def appointments_by_id(self, ids: Iterable[int]) -> dict[int, Appointment]:
        from bot.outreach.appointments import _from_row

        ids = sorted(set(ids))
        if not ids:
            return {}
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(appointments_table).where(appointments_table.c.id.in_(ids))).all()
        return {row.id: _from_row(row) for row in rows}

    def finish_many(self, outcomes: Iterable[tuple[int, dict]], worker_id: str) -> int:
        """Record what happened to rows this worker holds, in one transaction; the number recorded (a row whose
        claim another worker took over meanwhile is left to it)."""
        m = messages_table.c
        done = 0
        with self.engine.begin() as connection:
            for message_id, values in outcomes:
                done += connection.execute(messages_table.update().where(
                    m.id == message_id, m.status == SENDING, m.claimed_by == worker_id).values(**values)).rowcount
        return done

    @staticmethod
    def cancelled(reason: str, now: float) -> dict:
        return dict(status=CANCELLED, reason=reason, claimed_by=None, claim_expires_at=None, updated_at=now)

    @staticmethod
    def deferred(due_at: float, now: float, error: str | None = None) -> dict:
        """Back to pending for later (quiet hours, a failed attempt)."""
        values = dict(status=PENDING, due_at=due_at, claimed_by=None, claim_expires_at=None, updated_at=now)
        if error is not None:
            values["last_error"] = error[:MAX_ERROR_CHARS]
        return values

    @staticmethod
    def sent(body: str, sid: str, at: float, now: float) -> dict:
        """Sent - or already delivered / failed, when Twilio's status callback came before this was recorded."""
        m = messages_table.c
        early_failure = sa.or_(m.last_error.like(f"{CALLBACK_ERROR}failed%"),
                               m.last_error.like(f"{CALLBACK_ERROR}undelivered%"))
        return dict(status=sa.case((early_failure, FAILED), (m.delivered_at.isnot(None), DELIVERED), else_=SENT),
                    body=body, twilio_sid=sid or None, sent_at=at, claim_expires_at=None,
                    last_error=sa.case((early_failure, m.last_error), else_=None), updated_at=now)

    @staticmethod
    def failed(error: str, now: float) -> dict:
        return dict(status=FAILED, last_error=error[:MAX_ERROR_CHARS], claim_expires_at=None, updated_at=now)

    # --- after sending ------------------------------------------------------------------------------------
    def not_in_tracker(self, limit: int = 200) -> list[OutreachMessage]:
        """Sent rows whose text has not yet entered the patient's conversation (the bot was unreachable)."""
        m = messages_table.c
        query = (sa.select(messages_table).where(m.status.in_(WENT_OUT + (FAILED,)), m.body.isnot(None),
                                                 m.sent_at.isnot(None), m.tracker_recorded_at.is_(None))
                 .order_by(m.sent_at).limit(limit))
        with self.engine.connect() as connection:
            return [_row(row) for row in connection.execute(query).all()]

    def mark_in_tracker(self, message_id: int, now: float) -> None:
        with self.engine.begin() as connection:
            connection.execute(messages_table.update().where(messages_table.c.id == message_id)
                               .values(tracker_recorded_at=now))

    def record_status(self, message_id: int, sid: str, status: str, error_code: str | None, now: float) -> bool:
        """Twilio's status callback: delivered / failed / undelivered recorded (never back to an earlier state).
        A callback that arrives before the worker has recorded the send (it records 50 at a time) is kept on the
        row and taken into account when the send is recorded (`sent`)."""
        m = messages_table.c
        if status == "delivered":
            values = dict(delivered_at=now, updated_at=now)
            final = dict(values, status=DELIVERED)
        elif status in {"failed", "undelivered"}:
            values = dict(last_error=f"{CALLBACK_ERROR}{status}" + (f" (error {error_code})" if error_code else ""),
                          updated_at=now)
            final = dict(values, status=FAILED)
        else:
            return False  # queued / sending / sent: nothing new to record
        with self.engine.begin() as connection:
            if connection.execute(messages_table.update().where(
                    m.id == message_id, m.twilio_sid == sid, m.status.in_((SENT, DELIVERED, FAILED))
            ).values(**final)).rowcount:
                return True
            return connection.execute(messages_table.update().where(  # the send is not recorded yet
                m.id == message_id, m.status == SENDING, sa.or_(m.twilio_sid.is_(None), m.twilio_sid == sid)
            ).values(twilio_sid=sid, **values)).rowcount == 1

    # --- reading ------------------------------------------------------------------------------------------
    def messages_for_appointment(self, appointment_id: int) -> list[OutreachMessage]:
        m = messages_table.c
        query = sa.select(messages_table).where(m.appointment_id == appointment_id).order_by(m.due_at, m.id)
        try:
            with self.engine.connect() as connection:
                return [_row(row) for row in connection.execute(query).all()]
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):
            return []

    def latest_checkin(self, phone: str, since: float) -> OutreachMessage | None:
        """The patient's most recent check-in sent after `since` (how a '1' or '2' reply is understood)."""
        m = messages_table.c
        query = (sa.select(messages_table).where(m.phone == phone, m.kind == CHECKIN, m.sent_at >= since,
                                                 m.status.in_(WENT_OUT))
                 .order_by(m.sent_at.desc()).limit(1))
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return _row(row) if row is not None else None

    def sent_checkins(self, sent_before: float, sent_after: float) -> list[tuple[OutreachMessage, str]]:
        """Check-ins that went out in a time range, with the appointment's procedure."""
        m, a = messages_table.c, appointments_table.c
        query = (sa.select(messages_table, a.procedure.label("procedure"))
                 .select_from(messages_table.join(appointments_table, m.appointment_id == a.id))
                 .where(m.kind == CHECKIN, m.status.in_(WENT_OUT), m.sent_at < sent_before, m.sent_at >= sent_after)
                 .order_by(m.sent_at))
        try:
            with self.engine.connect() as connection:
                return [(_row(row), row.procedure) for row in connection.execute(query).all()]
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):
            return []


def last_patient_message_at(phones: Iterable[str], tracker_url: str | None = None) -> dict[str, float]:
    """The time of each number's latest message in the tracker store (its `events` table; read-only)."""
    from bot import config

    phones = sorted(set(phones))
    if not phones:
        return {}
    engine = _tracker_engine(tracker_url or config.tracker_db_url())  # read-only (bot.review.db)
    found: dict[str, float] = {}
    try:
        with engine.connect() as connection:
            for start in range(0, len(phones), 500):
                chunk = phones[start:start + 500]
                rows = connection.execute(sa.text(
                    "SELECT sender_id, MAX(timestamp) AS last FROM events WHERE type_name = 'user' "
                    "AND sender_id IN :phones GROUP BY sender_id").bindparams(sa.bindparam("phones", expanding=True)),
                    {"phones": chunk}).all()
                found.update({row.sender_id: float(row.last) for row in rows})
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        return {}  # no conversations stored yet
    return found


_tracker_engines: dict[str, Engine] = {}


def _tracker_engine(url: str) -> Engine:
    """The one read-only way into the tracker store (never creates or writes it), one engine per URL."""
    from bot.review.db import tracker_engine

    if url not in _tracker_engines:
        _tracker_engines[url] = tracker_engine(url)
    return _tracker_engines[url]


# --- read API for the review app ------------------------------------------------------------------------
def messages_for_appointment(appointment_id: int, url: str | None = None) -> list[OutreachMessage]:
    """Every text planned or sent for an appointment (all versions), by due time."""
    return Outbox(url).messages_for_appointment(appointment_id)


def unanswered_checkins(now: float | None = None, url: str | None = None, tracker_url: str | None = None,
                        window_s: float | None = None) -> list[UnansweredCheckin]:
    """Check-ins with no message from the patient since, older than the schedule's no-reply window
    (the last two weeks; oldest first), so staff can call."""
    now = time.time() if now is None else now
    if window_s is None:
        window_s = current_schedule().checkin_no_reply.total_seconds()
    candidates = Outbox(url).sent_checkins(sent_before=now - window_s, sent_after=now - UNANSWERED_LOOKBACK_S)
    if not candidates:
        return []
    last = last_patient_message_at((message.phone for message, _ in candidates), tracker_url)
    result = []
    for message, procedure in candidates:
        assert message.sent_at is not None
        if last.get(message.phone, 0.0) > message.sent_at:
            continue
        result.append(UnansweredCheckin(message=message, appointment_id=message.appointment_id, phone=message.phone,
                                        procedure=procedure, sent_at=message.sent_at,
                                        waiting_s=now - message.sent_at))
    # one row per patient: a later check-in supersedes an earlier unanswered one
    latest: dict[str, UnansweredCheckin] = {}
    for item in result:
        latest[item.phone] = item
    return sorted(latest.values(), key=lambda item: item.sent_at)
