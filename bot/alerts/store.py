"""The alerts outbox: one row per escalated patient message, one delivery row per way of telling staff.

Exactly once: `clinic_alerts.alert_key` is unique (bot.alerts.detect.alert_key), so the same message
seen again (a redelivered broker message, the table sweep after the broker, a restarted worker reading
again) adds nothing. Each delivery (`email`, `sms`) is claimed before it is sent and marked sent right
after, so a restarted worker resends only what it had not finished (a claim older than CLAIM_S).
Failed attempts are retried with a growing pause; after the last one the delivery is `failed`.

Read API for the review app (no table is created by reading):
- `alerts_for_conversation(conversation_id)`: the conversation's alerts, each with its deliveries;
- `alert_status_by_conversation(conversation_ids)`: the most pressing status per conversation.
Statuses: `sent` (every delivery went out), `pending` (not tried yet), `retrying` (an attempt failed,
another is scheduled), `failed` (gave up: staff were not told), `not_configured` (no SMTP / Twilio set).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.alerts.detect import Escalation
from bot.config import alerts_db_url
from bot.privacy import private_sqlite_file

logger = logging.getLogger(__name__)

EMAIL, SMS = "email", "sms"
PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
RETRYING, NOT_CONFIGURED = "retrying", "not_configured"  # alert statuses derived from the deliveries
STATUS_ORDER = (FAILED, RETRYING, PENDING, NOT_CONFIGURED, SENT)  # most pressing first
CLAIM_S = 30.0  # a delivery claimed longer ago than this (its worker died mid-send) is tried again
MAX_ERROR_CHARS = 300

metadata = sa.MetaData()
alerts_table = sa.Table(
    "clinic_alerts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_key", sa.String(64), nullable=False, unique=True),
    sa.Column("conversation_id", sa.String(255), nullable=False, index=True),
    sa.Column("level", sa.String(20), nullable=False),
    sa.Column("symptoms", sa.Text, nullable=False),  # JSON list of triage rule ids
    sa.Column("channel", sa.String(40)),
    sa.Column("occurred_at", sa.Float, nullable=False),
    sa.Column("recorded_at", sa.Float, nullable=False),
)
deliveries_table = sa.Table(
    "clinic_alert_deliveries", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.Integer, sa.ForeignKey("clinic_alerts.id"), nullable=False),
    sa.Column("method", sa.String(10), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.Float, nullable=False, index=True),
    sa.Column("last_error", sa.Text),
    sa.Column("sent_at", sa.Float),
    sa.UniqueConstraint("alert_id", "method", name="uq_clinic_alert_delivery"),
)
cursors_table = sa.Table(
    "clinic_alert_cursors", metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)


@dataclass(frozen=True)
class DeliveryStatus:
    method: str  # email | sms
    status: str  # pending | sending | sent | failed
    attempts: int
    last_error: str | None
    sent_at: float | None


@dataclass(frozen=True)
class AlertStatus:
    alert_id: int
    conversation_id: str
    level: str
    symptoms: tuple[str, ...]
    channel: str | None
    occurred_at: float
    status: str  # sent | pending | retrying | failed | not_configured
    deliveries: tuple[DeliveryStatus, ...]


@dataclass(frozen=True)
class DueDelivery:
    delivery_id: int
    method: str
    attempts: int  # attempts before this one
    alert: Escalation
    alert_id: int


def alert_status(deliveries: Iterable[DeliveryStatus]) -> str:
    """One status for an alert from its deliveries (see the module docstring)."""
    deliveries = list(deliveries)
    if not deliveries:
        return NOT_CONFIGURED
    if any(item.status == FAILED for item in deliveries):
        return FAILED
    if any(item.status != SENT and item.last_error for item in deliveries):
        return RETRYING
    if any(item.status != SENT for item in deliveries):
        return PENDING
    return SENT


def retry_delay_s(attempts: int, base_s: float) -> float:
    """Pause after the `attempts`-th failed attempt: base, 2x, 4x ... at most 5 minutes."""
    return min(base_s * 2 ** max(attempts - 1, 0), 300.0)


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    private_sqlite_file(url)
    options = {"connect_args": {"timeout": 15}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    return sa.create_engine(url, future=True, **options)


class AlertStore:
    """The outbox in ALERTS_DB_URL (or `url`); the worker's read/write side."""

    def __init__(self, url: str | None = None, create: bool = True):
        self.url = url or alerts_db_url()
        self.engine = _engine(self.url)
        if create:
            metadata.create_all(self.engine)

    # --- intake ----------------------------------------------------------------------------------------
    def record(self, escalation: Escalation, methods: Iterable[str], now: float | None = None) -> bool:
        """Store a new escalation with one pending delivery per method; False if its key is known already."""
        now = time.time() if now is None else now
        try:
            with self.engine.begin() as connection:
                alert_id = connection.execute(alerts_table.insert().values(
                    alert_key=escalation.key, conversation_id=escalation.conversation_id, level=escalation.level,
                    symptoms=json.dumps(list(escalation.symptoms)), channel=escalation.channel,
                    occurred_at=escalation.occurred_at, recorded_at=now,
                )).inserted_primary_key[0]
                for method in methods:
                    connection.execute(deliveries_table.insert().values(
                        alert_id=alert_id, method=method, status=PENDING, attempts=0, next_attempt_at=now))
        except sa.exc.IntegrityError:
            return False
        return True

    def is_recorded(self, key: str) -> bool:
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(alerts_table.c.id).where(alerts_table.c.alert_key == key)).first() is not None

    def cursor(self, name: str) -> int | None:
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(cursors_table.c.position).where(cursors_table.c.name == name)).scalar()

    def set_cursor(self, name: str, position: int) -> None:
        with self.engine.begin() as connection:
            updated = connection.execute(
                cursors_table.update().where(cursors_table.c.name == name).values(position=position)).rowcount
            if not updated:
                connection.execute(cursors_table.insert().values(name=name, position=position))

    # --- delivery --------------------------------------------------------------------------------------
    def due(self, now: float | None = None, limit: int = 50) -> list[DueDelivery]:
        """Deliveries to try now: pending ones whose time has come, and claims abandoned by a dead worker."""
        now = time.time() if now is None else now
        d, a = deliveries_table.c, alerts_table.c
        query = (
            sa.select(d.id, d.method, d.attempts, a.id.label("alert_id"), a.alert_key, a.conversation_id, a.level,
                      a.symptoms, a.channel, a.occurred_at)
            .select_from(deliveries_table.join(alerts_table, d.alert_id == a.id))
            .where(d.status.in_([PENDING, SENDING]), d.next_attempt_at <= now)
            .order_by(d.next_attempt_at, d.id)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [DueDelivery(
            delivery_id=row.id, method=row.method, attempts=row.attempts, alert_id=row.alert_id,
            alert=Escalation(key=row.alert_key, conversation_id=row.conversation_id, level=row.level,
                             symptoms=tuple(json.loads(row.symptoms)), channel=row.channel,
                             occurred_at=row.occurred_at),
        ) for row in rows]

    def claim(self, delivery: DueDelivery, now: float | None = None) -> bool:
        """Mark a delivery as being sent (one worker wins); False if another worker took or finished it."""
        now = time.time() if now is None else now
        d = deliveries_table.c
        with self.engine.begin() as connection:
            claimed = connection.execute(
                deliveries_table.update()
                .where(d.id == delivery.delivery_id, d.status.in_([PENDING, SENDING]), d.next_attempt_at <= now,
                       d.attempts == delivery.attempts)
                .values(status=SENDING, attempts=delivery.attempts + 1, next_attempt_at=now + CLAIM_S)
            ).rowcount
        return claimed == 1

    def mark_sent(self, delivery: DueDelivery, now: float | None = None) -> None:
        with self.engine.begin() as connection:
            connection.execute(deliveries_table.update().where(deliveries_table.c.id == delivery.delivery_id)
                               .values(status=SENT, sent_at=time.time() if now is None else now))

    def mark_failed_attempt(self, delivery: DueDelivery, error: str, max_attempts: int, base_delay_s: float,
                            now: float | None = None) -> str:
        """Record a failed attempt: pending again after the backoff, or `failed` after the last attempt."""
        now = time.time() if now is None else now
        attempts = delivery.attempts + 1
        status = FAILED if attempts >= max_attempts else PENDING
        with self.engine.begin() as connection:
            connection.execute(deliveries_table.update().where(deliveries_table.c.id == delivery.delivery_id).values(
                status=status, last_error=error[:MAX_ERROR_CHARS],
                next_attempt_at=now + retry_delay_s(attempts, base_delay_s)))
        return status

    # --- reading -----------------------------------------------------------------------------------------
    def alerts(self, conversation_ids: Iterable[str] | None = None) -> list[AlertStatus]:
        """Alerts (newest first) with their deliveries; all of them, or those of the given conversations."""
        a, d = alerts_table.c, deliveries_table.c
        query = sa.select(alerts_table).order_by(a.occurred_at.desc(), a.id.desc())
        if conversation_ids is not None:
            ids = list(dict.fromkeys(conversation_ids))
            if not ids:
                return []
            query = query.where(a.conversation_id.in_(ids))
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(query).all()
                found: dict[int, list[DeliveryStatus]] = {row.id: [] for row in rows}
                if found:
                    for item in connection.execute(
                            sa.select(deliveries_table).where(d.alert_id.in_(list(found))).order_by(d.id)).all():
                        found[item.alert_id].append(DeliveryStatus(
                            method=item.method, status=item.status, attempts=item.attempts,
                            last_error=item.last_error, sent_at=item.sent_at))
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):
            return []  # no alerts database (yet): nothing to show
        return [AlertStatus(
            alert_id=row.id, conversation_id=row.conversation_id, level=row.level,
            symptoms=tuple(json.loads(row.symptoms)), channel=row.channel, occurred_at=row.occurred_at,
            status=alert_status(found[row.id]), deliveries=tuple(found[row.id]),
        ) for row in rows]


def purge_alerts(conversation_ids: Iterable[str], before: float, url: str | None = None) -> int:
    """Retention (`python -m bot.review purge`): delete these conversations' alerts older than `before`
    (an SMS conversation's id is the patient's number); the number of alerts deleted."""
    ids = list(dict.fromkeys(conversation_ids))
    store = _reader(url)
    deleted = 0
    try:
        with store.engine.begin() as connection:
            for start in range(0, len(ids), 500):
                doomed = sa.select(alerts_table.c.id).where(
                    alerts_table.c.conversation_id.in_(ids[start:start + 500]), alerts_table.c.occurred_at < before)
                connection.execute(deliveries_table.delete().where(deliveries_table.c.alert_id.in_(doomed)))
                deleted += connection.execute(alerts_table.delete().where(alerts_table.c.id.in_(doomed))).rowcount
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        return 0  # no alerts database: nothing to delete
    return deleted


def _reader(url: str | None) -> AlertStore:
    return AlertStore(url, create=False)


def alerts_for_conversation(conversation_id: str, url: str | None = None) -> list[AlertStatus]:
    """A conversation's alerts, newest first, each with its delivery status (for the review app)."""
    return _reader(url).alerts([conversation_id])


def alert_status_by_conversation(conversation_ids: Iterable[str], url: str | None = None) -> dict[str, str]:
    """The most pressing alert status of each conversation that has alerts (`failed` first)."""
    worst: dict[str, str] = {}
    for alert in _reader(url).alerts(conversation_ids):
        current = worst.get(alert.conversation_id)
        if current is None or STATUS_ORDER.index(alert.status) < STATUS_ORDER.index(current):
            worst[alert.conversation_id] = alert.status
    return worst
