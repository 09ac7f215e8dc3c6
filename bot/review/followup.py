"""The "Needs follow-up" queue: conversations a person at the clinic should look at, and what staff did.

A conversation is queued when it was escalated (triage level emergency or urgent), flagged (a symptom
check-in: a possible new problem no triage rule confirmed), or when the patient's last message went
unanswered (the bot declined it, or no reply was stored). The tracker store stays read-only: the queue is
computed from the `events` table, and staff actions (acknowledge, note, resolve, reopen) are appended to
`review_followup_actions` in the review database, each with who and when (and mirrored in the access log).

Every action names the *trigger* it answers: the id of the newest event that put the conversation in the
queue when staff looked at it. A newer escalation or a new unanswered message has a larger id, so the
conversation is open again even if an older trigger was resolved; the earlier history stays visible.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.review import accesslog
from bot.review.db import metadata
from bot.review.events import UNANSWERED_SQL
from bot.review.filters import CHANNELS, BadParameter, channel_label, day_start, parse_day
from bot.review.store import ID_CHUNK, ConversationStore
from bot.vocabulary import CHECK_SYMPTOM_INTENT

# Reasons, most severe first (the queue's sort order).
REASONS = ("emergency", "urgent", "check", "unanswered")
REASON_LABELS = {
    "emergency": "Emergency escalation",
    "urgent": "Urgent escalation",
    "check": "Symptom check-in (flagged)",
    "unanswered": "Last message unanswered",
}
STATES = ("open", "acknowledged", "resolved")
STATE_LABELS = {"open": "Open", "acknowledged": "Acknowledged", "resolved": "Resolved"}
STATE_CHOICES = ("unresolved", *STATES, "all")  # "unresolved" (open + acknowledged) is what staff see first
logger = logging.getLogger(__name__)
ACTIONS = {"acknowledge": "acknowledged", "resolve": "resolved", "reopen": "open", "note": None}
ALLOWED_FROM = {"acknowledge": {"open"}, "resolve": {"open", "acknowledged"}, "reopen": {"acknowledged", "resolved"},
                "note": set(STATES)}
MAX_NOTE_CHARS = 2000
NO_REPLY_GRACE_S = 120.0  # a message the bot is still answering is not "unanswered" yet
OPEN_COUNT_TTL_S = 10.0
ALERT_LABELS = {"sent": "Alert sent", "pending": "Alert pending", "retrying": "Alert failed, retrying",
                "failed": "Alert failed", "not_configured": "Alert not configured"}
ACCESS_ACTIONS = {
    "view_followup": "Viewed follow-up queue",
    "followup_acknowledge": "Acknowledged a follow-up",
    "followup_resolve": "Resolved a follow-up",
    "followup_reopen": "Reopened a follow-up",
    "followup_note": "Added a follow-up note",
}

followup_actions = sa.Table(
    "review_followup_actions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255), nullable=False, index=True),
    sa.Column("trigger_id", sa.BigInteger, nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("state", sa.String(20)),  # the state after the action (None for a note)
    sa.Column("username", sa.String(80), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("note", sa.Text),
)

_ready: weakref.WeakSet[Engine] = weakref.WeakSet()
_ACT_LOCK = threading.Lock()


def ensure_tables(engine: Engine) -> None:
    """Create the follow-up table on a review database made before it existed (once per engine)."""
    if engine not in _ready:
        metadata.create_all(engine, tables=[followup_actions])
        _ready.add(engine)


@dataclass
class HistoryEntry:
    action: str
    state: str | None
    username: str
    at: float
    note: str
    trigger_id: int
    current: bool  # about the trigger shown now (False: an earlier escalation or message of this conversation)

    @property
    def label(self) -> str:
        return {"acknowledge": "Acknowledged", "resolve": "Resolved", "reopen": "Reopened", "note": "Note"}.get(
            self.action, self.action)


@dataclass
class QueueItem:
    ref: int
    sender_id: str
    reasons: list[str]  # most severe first
    trigger_id: int
    trigger_at: datetime
    channel: str | None
    patient_turns: int
    state: str = "open"
    history: list[HistoryEntry] = field(default_factory=list)
    alert_status: str | None = None  # sent | pending | retrying | failed | not_configured (bot.alerts.store)

    @property
    def level(self) -> str:
        return self.reasons[0]

    @property
    def severity(self) -> int:
        return REASONS.index(self.level)

    @property
    def channel_label(self) -> str:
        return channel_label(self.channel)

    @property
    def escalation(self) -> str | None:
        return self.level if self.level in ("emergency", "urgent") else None

    @property
    def notes(self) -> list[HistoryEntry]:
        return [entry for entry in self.history if entry.action == "note"]

    def last(self, action: str) -> HistoryEntry | None:
        """The latest `action` about the current trigger (who acknowledged / resolved it, and when)."""
        for entry in reversed(self.history):
            if entry.action == action and entry.current:
                return entry
        return None


@dataclass(frozen=True)
class QueueFilters:
    level: str | None = None  # emergency | urgent | check | unanswered
    channel: str | None = None  # web | sms | rest
    state: str = "unresolved"
    date_from: date | None = None
    date_to: date | None = None

    @classmethod
    def parse(cls, values: Mapping[str, str]) -> QueueFilters:
        """Filters from the query string; a value that cannot be used is a BadParameter (a 400 page)."""
        errors: list[str] = []
        level = (values.get("level") or "").strip().lower() or None
        if level and level not in REASONS:
            errors.append(f"Level must be one of {', '.join(REASONS)}.")
        channel = (values.get("channel") or "").strip().lower() or None
        if channel and channel not in CHANNELS:
            errors.append(f"Channel must be one of {', '.join(CHANNELS)}.")
        state = (values.get("state") or "").strip().lower() or "unresolved"
        if state not in STATE_CHOICES:
            errors.append(f"State must be one of {', '.join(STATE_CHOICES)}.")
        dates = []
        for key, label in (("from", "From date"), ("to", "To date")):
            try:
                dates.append(parse_day(values.get(key), label))
            except BadParameter as error:
                errors.extend(error.problems)
                dates.append(None)
        if errors:
            raise BadParameter(errors)
        date_from, date_to = dates
        if date_from and date_to and date_from > date_to:
            date_from, date_to = date_to, date_from
        return cls(level, channel, state, date_from, date_to)

    def as_params(self) -> dict[str, str]:
        params = {"level": self.level or "", "channel": self.channel or "",
                  "state": self.state if self.state != "unresolved" else "",
                  "from": self.date_from.isoformat() if self.date_from else "",
                  "to": self.date_to.isoformat() if self.date_to else ""}
        return {key: value for key, value in params.items() if value}

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.as_params().items()) or "unresolved"

    @property
    def active(self) -> bool:
        return bool(self.as_params())

    def wants_state(self, state: str) -> bool:
        if self.state == "all":
            return True
        if self.state == "unresolved":
            return state != "resolved"
        return state == self.state


@dataclass
class Queue:
    items: list[QueueItem]  # the page shown
    total: int  # items matching the filters
    counts: dict[str, int]  # per state, over every queued conversation (ignoring filters)
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


# --- reading the queue -------------------------------------------------------------------------------
def candidates(store: ConversationStore, now: float | None = None, sender: str | None = None) -> list[QueueItem]:
    """Every conversation that is (or was) escalated or flagged, or whose last message went unanswered
    (only `sender`'s, when given: one conversation reads through the sender_id index)."""
    if not store.available():
        return []
    value = store.json("value")
    now = time.time() if now is None else now
    rows = store.rows(f"""
        SELECT c.*, lu.intent_name AS last_intent, lu.timestamp AS last_user_at FROM (
            SELECT sender_id,
                   MIN(id) AS ref,
                   SUM(CASE WHEN type_name = 'user' THEN 1 ELSE 0 END) AS patient_turns,
                   MAX(CASE WHEN type_name = 'slot' AND action_name = 'triage_level'
                            THEN (CASE WHEN {value} = 'emergency' THEN id END) END) AS emergency_id,
                   MAX(CASE WHEN type_name = 'slot' AND action_name = 'triage_level'
                            THEN (CASE WHEN {value} = 'urgent' THEN id END) END) AS urgent_id,
                   MAX(CASE WHEN type_name = 'user' AND intent_name = '{CHECK_SYMPTOM_INTENT}' THEN id END) AS check_id,
                   MAX(CASE WHEN type_name = 'user' THEN id END) AS last_user_id,
                   MAX(CASE WHEN type_name = 'bot' THEN id END) AS last_bot_id,
                   MIN(CASE WHEN type_name = 'user' THEN id END) AS first_user_id
            FROM events {"WHERE sender_id = :sender" if sender is not None else ""} GROUP BY sender_id
        ) c LEFT JOIN events lu ON lu.id = c.last_user_id
        WHERE c.patient_turns > 0 AND (c.emergency_id IS NOT NULL OR c.urgent_id IS NOT NULL
              OR c.check_id IS NOT NULL OR lu.intent_name IN {UNANSWERED_SQL}
              OR ((c.last_bot_id IS NULL OR c.last_bot_id < c.last_user_id) AND lu.timestamp < :settled))
    """, {"settled": now - NO_REPLY_GRACE_S, "sender": sender})
    channels = store._channels(row.first_user_id for row in rows)  # noqa: SLF001 - same package
    items = []
    for row in rows:
        triggers: dict[str, int] = {}
        if row.emergency_id is not None:
            triggers["emergency"] = int(row.emergency_id)
        if row.urgent_id is not None:
            triggers["urgent"] = int(row.urgent_id)
        if row.check_id is not None:
            triggers["check"] = int(row.check_id)
        last_user = int(row.last_user_id)
        no_reply = row.last_bot_id is None or int(row.last_bot_id) < last_user
        if row.last_intent in ("nlu_fallback", "out_of_scope") or \
                (no_reply and row.last_user_at is not None and float(row.last_user_at) < now - NO_REPLY_GRACE_S):
            triggers["unanswered"] = last_user
        if not triggers:
            continue
        items.append(QueueItem(
            ref=int(row.ref), sender_id=row.sender_id, reasons=[r for r in REASONS if r in triggers],
            trigger_id=max(triggers.values()), trigger_at=datetime.min, channel=channels.get(int(row.first_user_id)),
            patient_turns=int(row.patient_turns or 0)))
    _fill_trigger_times(store, items)
    return items


def _fill_trigger_times(store: ConversationStore, items: list[QueueItem]) -> None:
    ids = [item.trigger_id for item in items]
    times: dict[int, float] = {}
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start:start + ID_CHUNK]
        placeholders = ", ".join(f":i{n}" for n in range(len(chunk)))
        rows = store.rows(f"SELECT id, timestamp FROM events WHERE id IN ({placeholders})",
                          {f"i{n}": value for n, value in enumerate(chunk)})
        times.update({int(row.id): float(row.timestamp or 0.0) for row in rows})
    for item in items:
        item.trigger_at = store.local_time(times.get(item.trigger_id, 0.0))  # type: ignore[assignment]


def _history(review_db: Engine, senders: Iterable[str]) -> dict[str, list[sa.engine.Row]]:
    ensure_tables(review_db)
    senders = sorted(set(senders))
    found: dict[str, list[sa.engine.Row]] = defaultdict(list)
    with review_db.connect() as connection:
        for start in range(0, len(senders), ID_CHUNK):
            chunk = senders[start:start + ID_CHUNK]
            rows = connection.execute(sa.select(followup_actions).where(followup_actions.c.sender_id.in_(chunk))
                                      .order_by(followup_actions.c.id)).all()
            for row in rows:
                found[row.sender_id].append(row)
    return found


def apply_history(item: QueueItem, rows: Iterable[sa.engine.Row]) -> None:
    """State and history of one item: only actions about its current trigger (or a later one) set the state."""
    item.state = "open"
    item.history = []
    for row in rows:
        current = int(row.trigger_id) >= item.trigger_id
        item.history.append(HistoryEntry(row.action, row.state, row.username, float(row.at), row.note or "",
                                         int(row.trigger_id), current))
        if current and row.state:
            item.state = row.state


def _attach_alerts(items: list[QueueItem]) -> None:
    """The most pressing alert delivery status of each conversation (bot.alerts' outbox, ALERTS_DB_URL)."""
    if not items:
        return
    try:
        from bot.alerts.store import alert_status_by_conversation

        found = alert_status_by_conversation([item.sender_id for item in items])
    except Exception:  # noqa: BLE001 - the queue must show even when the alerts outbox cannot be read
        logger.warning("Alert delivery status unavailable", exc_info=True)
        return
    for item in items:
        item.alert_status = found.get(item.sender_id)


def queue_items(store: ConversationStore, review_db: Engine, now: float | None = None) -> list[QueueItem]:
    """Every queued conversation with its state, most severe first, then newest trigger first."""
    items = candidates(store, now)
    history = _history(review_db, (item.sender_id for item in items))
    for item in items:
        apply_history(item, history.get(item.sender_id, []))
    items.sort(key=lambda item: (item.severity, -item.trigger_id))
    return items


def state_counts(items: Iterable[QueueItem]) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for item in items:
        counts[item.state] += 1
    return counts


def read_queue(store: ConversationStore, review_db: Engine, filters: QueueFilters, page: int = 1,
               per_page: int = 50) -> Queue:
    items = queue_items(store, review_db)
    counts = state_counts(items)
    start = day_start(filters.date_from, store.tz) if filters.date_from else None
    end = day_start(filters.date_to + timedelta(days=1), store.tz) if filters.date_to else None
    chosen = [
        item for item in items
        if filters.wants_state(item.state)
        and (not filters.level or filters.level in item.reasons)
        and (not filters.channel or item.channel == CHANNELS[filters.channel])
        and (start is None or item.trigger_at.timestamp() >= start)
        and (end is None or item.trigger_at.timestamp() < end)
    ]
    page_items = chosen[(page - 1) * per_page: page * per_page]
    _attach_alerts(page_items)
    return Queue(page_items, len(chosen), counts, page, per_page)


def find_item(store: ConversationStore, review_db: Engine, sender_id: str, alerts: bool = False) -> QueueItem | None:
    """One conversation's queue item with its state (None when it needs no follow-up)."""
    for item in candidates(store, sender=sender_id):
        if item.sender_id == sender_id:
            apply_history(item, _history(review_db, [sender_id]).get(sender_id, []))
            if alerts:
                _attach_alerts([item])
            return item
    return None


# --- the open count shown on every page ---------------------------------------------------------------
class OpenCount:
    """The number of open (not yet acknowledged) items, cached for a few seconds per app."""

    def __init__(self, ttl_s: float = OPEN_COUNT_TTL_S):
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._value: int | None = None
        self._at = 0.0

    def get(self, store: ConversationStore, review_db: Engine) -> int:
        with self._lock:
            if self._value is not None and time.monotonic() - self._at < self.ttl_s:
                return self._value
        value = state_counts(queue_items(store, review_db))["open"]
        with self._lock:
            self._value, self._at = value, time.monotonic()
        return value

    def invalidate(self) -> None:
        with self._lock:
            self._value = None

    def prime(self, value: int) -> None:
        """A count the queue page has just computed anyway (so its navigation does not compute it twice)."""
        with self._lock:
            self._value, self._at = value, time.monotonic()


# --- staff actions --------------------------------------------------------------------------------------
class ActionRefused(ValueError):
    """An action that does not apply (already acknowledged, nothing to resolve...): told to staff, no change."""


def act(store: ConversationStore, review_db: Engine, username: str, sender_id: str, action: str,
        seen_trigger: int | None, note: str = "", ip: str | None = None) -> tuple[QueueItem, bool]:
    """Apply one staff action to a queued conversation and record it (follow-up table and access log).

    `seen_trigger` is the trigger staff saw on the page; the action is filed under it, so something newer
    (a second escalation arrived meanwhile) stays open. Returns the item and whether newer activity exists.
    """
    if action not in ACTIONS:
        raise BadParameter([f"Action must be one of {', '.join(ACTIONS)}."])
    note = " ".join(note.split()) if action != "note" else note.strip()
    if action == "note" and not note:
        raise ActionRefused("Write a note before saving it.")
    if len(note) > MAX_NOTE_CHARS:
        raise BadParameter([f"A note can be at most {MAX_NOTE_CHARS:,} characters."])
    item = find_item(store, review_db, sender_id)
    if item is None:
        raise ActionRefused("This conversation no longer needs follow-up.")
    trigger = item.trigger_id if seen_trigger is None else seen_trigger
    if not 0 < trigger <= item.trigger_id:
        raise BadParameter(["The follow-up item does not match this conversation."])
    newer = trigger < item.trigger_id
    ensure_tables(review_db)
    # Check and record in one step, so two staff clicking "Acknowledge" at once do not both succeed: a
    # process lock (waitress threads), plus a transaction-scoped advisory lock on PostgreSQL (several processes).
    with _ACT_LOCK, review_db.begin() as connection:
        if review_db.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": zlib.crc32(sender_id.encode("utf-8"))})
        rows = connection.execute(sa.select(followup_actions).where(followup_actions.c.sender_id == sender_id)
                                  .order_by(followup_actions.c.id)).all()
        seen = QueueItem(item.ref, sender_id, item.reasons, trigger, item.trigger_at, item.channel, 0)
        apply_history(seen, rows)  # the state of what staff saw (an older trigger when something newer came)
        if seen.state not in ALLOWED_FROM[action]:
            who = seen.last("acknowledge" if seen.state == "acknowledged" else "resolve")
            by = f" by {who.username}" if who else ""
            raise ActionRefused(f"Already {STATE_LABELS[seen.state].lower()}{by}; nothing was changed.")
        connection.execute(followup_actions.insert().values(
            sender_id=sender_id, trigger_id=trigger, action=action, state=ACTIONS[action], username=username[:80],
            at=time.time(), note=note or None))
    detail = f"conversation {item.ref}; {', '.join(item.reasons)}"
    if note:
        detail += f"; note of {len(note)} characters"
    accesslog.record(review_db, username, f"followup_{action}", sender_id, detail, ip)
    return item, newer


accesslog.ACTIONS.update(ACCESS_ACTIONS)  # the access-log page names these actions
