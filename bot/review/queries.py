"""Read-only queries over Rasa's `events` table (SQLTrackerStore).

A conversation is everything stored under one `sender_id` (for SMS the patient's phone number);
it may span several Rasa sessions. Lists and dashboards are computed with aggregated SQL
(`GROUP BY sender_id`); a transcript reads one sender's events through the `sender_id` index.

Event rows used (columns id, sender_id, type_name, timestamp, intent_name, action_name, data):
- `user`: patient message; intent_name = recognised intent; data has text, parse_data, input_channel
- `bot`: bot message; data has text and data (custom payloads, buttons)
- `slot`: action_name = slot name (`triage_level`, `last_topic`, `symptoms`); data has value
- `session_started`: a new Rasa session
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.review.db import StoreUnavailable, has_events_table

UNANSWERED_INTENTS = ("nlu_fallback", "out_of_scope")
ESCALATION_LEVELS = ("emergency", "urgent")
# filter value -> input_channel stored by Rasa
CHANNELS = {"web": "socketio", "sms": "sms", "rest": "rest"}
CHANNEL_LABELS = {"socketio": "Web chat", "sms": "SMS", "rest": "REST"}
ESCALATED_CHOICES = ("any", "emergency", "urgent")
MAX_SEARCH_CHARS = 200
MAX_TRANSCRIPT_EVENTS = 5000
DUPLICATE_TOPIC_S = 10.0
BUCKET_S = 900  # dashboards group by 15-minute buckets in SQL, then by local day (every UTC offset is a multiple)

_UNANSWERED_SQL = "('nlu_fallback', 'out_of_scope')"


def channel_label(channel: str | None) -> str:
    if not channel:
        return "Unknown"
    return CHANNEL_LABELS.get(channel, channel)


# --- filters ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Filters:
    date_from: date | None = None
    date_to: date | None = None
    channel: str | None = None  # web | sms | rest
    escalated: str | None = None  # any | emergency | urgent
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


def day_start(day: date, tz: tzinfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def like_pattern(text: str) -> str:
    escaped = text.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%{escaped}%"


# --- results ---------------------------------------------------------------------------------
@dataclass
class ConversationRow:
    ref: int
    sender_id: str
    started: datetime
    last_activity: datetime
    channel: str | None
    patient_turns: int
    unanswered: int
    emergency: bool
    urgent: bool

    @property
    def escalation(self) -> str | None:
        return "emergency" if self.emergency else "urgent" if self.urgent else None

    @property
    def channel_label(self) -> str:
        return channel_label(self.channel)


@dataclass
class Page:
    rows: list[ConversationRow]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def first_index(self) -> int:
        return 0 if not self.total else (self.page - 1) * self.per_page + 1

    @property
    def last_index(self) -> int:
        return min(self.total, self.page * self.per_page)


@dataclass
class Turn:
    kind: str  # "patient" | "bot" | "session"
    at: datetime | None
    text: str = ""
    intent: str | None = None
    confidence: float | None = None
    channel: str | None = None
    topic: str | None = None
    escalation: str | None = None
    symptoms: list[str] = field(default_factory=list)
    note: str | None = None  # e.g. "Seek-care message (emergency)"
    exchange: int = 0

    @property
    def unanswered(self) -> bool:
        return self.kind == "patient" and self.intent in UNANSWERED_INTENTS


@dataclass
class Transcript:
    ref: int
    sender_id: str
    turns: list[Turn]
    channel: str | None
    started: datetime | None
    last_activity: datetime | None
    truncated: bool = False

    @property
    def patient_turns(self) -> int:
        return sum(1 for turn in self.turns if turn.kind == "patient")

    @property
    def escalation(self) -> str | None:
        levels = {turn.escalation for turn in self.turns if turn.kind == "patient" and turn.escalation}
        return "emergency" if "emergency" in levels else "urgent" if "urgent" in levels else None

    @property
    def unanswered(self) -> int:
        return sum(1 for turn in self.turns if turn.unanswered)

    @property
    def channel_label(self) -> str:
        return channel_label(self.channel)


@dataclass
class QuestionGroup:
    text: str
    count: int
    variants: list[str]


@dataclass
class Dashboard:
    days: list[date]
    conversations: dict[date, int]
    patient_messages: dict[date, int]
    bot_messages: dict[date, int]
    unanswered: dict[date, int]
    escalations: dict[date, dict[str, int]]
    top_topics: list[tuple[str, int]]
    unanswered_groups: list[QuestionGroup]

    @property
    def total_conversations(self) -> int:
        return sum(self.conversations.values())

    @property
    def total_patient_messages(self) -> int:
        return sum(self.patient_messages.values())

    @property
    def total_unanswered(self) -> int:
        return sum(self.unanswered.values())

    @property
    def fallback_rate(self) -> float | None:
        total = self.total_patient_messages
        return self.total_unanswered / total if total else None

    def total_escalations(self, level: str) -> int:
        return sum(day.get(level, 0) for day in self.escalations.values())


# --- the store -------------------------------------------------------------------------------
class ConversationStore:
    """Read-only view of the tracker store's `events` table."""

    def __init__(self, engine: Engine, tz: tzinfo):
        self.engine = engine
        self.tz = tz
        self.dialect = engine.dialect.name

    # SQL fragments that depend on the database (only trusted constants are interpolated)
    def _json(self, *path: str, column: str = "data") -> str:
        if self.dialect == "sqlite":
            return f"json_extract({column}, '$." + ".".join(path) + "')"
        if self.dialect == "postgresql":
            return f"(CAST({column} AS json) #>> '{{" + ",".join(path) + "}')"
        if self.dialect == "mysql":
            return f"JSON_UNQUOTE(JSON_EXTRACT({column}, '$." + ".".join(path) + "'))"
        raise StoreUnavailable(f"unsupported database {self.dialect}")

    def _bucket(self, column: str) -> str:
        if self.dialect == "sqlite":
            return f"CAST({column} / {BUCKET_S} AS INTEGER)"
        return f"CAST(FLOOR({column} / {BUCKET_S}) AS BIGINT)"

    def _dt(self, timestamp: float | None) -> datetime | None:
        return None if timestamp is None else datetime.fromtimestamp(float(timestamp), self.tz)

    def available(self) -> bool:
        return has_events_table(self.engine)

    def _rows(self, sql: str, params: Mapping[str, object] | None = None) -> list[sa.engine.Row]:
        try:
            with self.engine.connect() as connection:
                return list(connection.execute(sa.text(sql), dict(params or {})))
        except sa.exc.OperationalError as error:
            raise StoreUnavailable(str(error.orig).strip()) from error
        except sa.exc.ProgrammingError as error:
            raise StoreUnavailable(str(error.orig).strip()) from error

    # --- conversation list ---------------------------------------------------------------
    def _list_sql(self, filters: Filters) -> tuple[str, dict[str, object]]:
        params: dict[str, object] = {}
        value = self._json("value")
        search_column = ""
        if filters.search:
            text = self._json("text")
            search_column = (
                f",\n SUM(CASE WHEN type_name = 'user' THEN (CASE WHEN LOWER({text}) LIKE :q ESCAPE '!' "
                "THEN 1 ELSE 0 END) ELSE 0 END) AS hits"
            )
            params["q"] = like_pattern(filters.search)
        inner = f"""
            SELECT sender_id,
                   MIN(id) AS ref,
                   MIN(timestamp) AS started,
                   MAX(timestamp) AS last_at,
                   SUM(CASE WHEN type_name = 'user' THEN 1 ELSE 0 END) AS patient_turns,
                   SUM(CASE WHEN type_name = 'user' AND intent_name IN {_UNANSWERED_SQL} THEN 1 ELSE 0 END)
                       AS unanswered,
                   MAX(CASE WHEN type_name = 'slot' AND action_name = 'triage_level'
                            THEN (CASE WHEN {value} = 'emergency' THEN 1 ELSE 0 END) ELSE 0 END) AS emergency,
                   MAX(CASE WHEN type_name = 'slot' AND action_name = 'triage_level'
                            THEN (CASE WHEN {value} = 'urgent' THEN 1 ELSE 0 END) ELSE 0 END) AS urgent,
                   MIN(CASE WHEN type_name = 'user' THEN id END) AS first_user_id{search_column}
            FROM events
            GROUP BY sender_id
        """
        where = ["c.patient_turns > 0"]
        join = ""
        if filters.channel:
            join = "JOIN events fu ON fu.id = c.first_user_id"
            channel_expr = self._json("input_channel", column="fu.data")
            where.append(f"{channel_expr} = :channel")
            params["channel"] = CHANNELS[filters.channel]
        if filters.date_from:
            where.append("c.last_at >= :date_from")
            params["date_from"] = day_start(filters.date_from, self.tz)
        if filters.date_to:
            where.append("c.started < :date_to")
            params["date_to"] = day_start(filters.date_to + timedelta(days=1), self.tz)
        if filters.escalated == "any":
            where.append("(c.emergency = 1 OR c.urgent = 1)")
        elif filters.escalated == "emergency":
            where.append("c.emergency = 1")
        elif filters.escalated == "urgent":
            where.append("c.urgent = 1")
        if filters.unanswered:
            where.append("c.unanswered > 0")
        if filters.search:
            where.append("c.hits > 0")
        sql = f"SELECT c.* FROM ({inner}) c {join} WHERE {' AND '.join(where)}"
        return sql, params

    def _row(self, row: sa.engine.Row, channels: Mapping[int, str | None]) -> ConversationRow:
        return ConversationRow(
            ref=int(row.ref),
            sender_id=row.sender_id,
            started=self._dt(row.started),  # type: ignore[arg-type]
            last_activity=self._dt(row.last_at),  # type: ignore[arg-type]
            channel=channels.get(int(row.first_user_id)) if row.first_user_id is not None else None,
            patient_turns=int(row.patient_turns or 0),
            unanswered=int(row.unanswered or 0),
            emergency=bool(row.emergency),
            urgent=bool(row.urgent),
        )

    def _channels(self, event_ids: Iterable[int]) -> dict[int, str | None]:
        ids = sorted({int(i) for i in event_ids if i is not None})
        result: dict[int, str | None] = {}
        channel = self._json("input_channel")
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            placeholders = ", ".join(f":i{n}" for n in range(len(chunk)))
            rows = self._rows(f"SELECT id, {channel} AS channel FROM events WHERE id IN ({placeholders})",
                              {f"i{n}": value for n, value in enumerate(chunk)})
            result.update({int(row.id): row.channel for row in rows})
        return result

    def list_conversations(self, filters: Filters, page: int = 1, per_page: int = 50) -> Page:
        """One page of conversations, most recently active first, with the total count."""
        if not self.available():
            return Page([], 0, 1, per_page)
        page = max(1, page)
        sql, params = self._list_sql(filters)
        query = (f"SELECT p.*, COUNT(*) OVER () AS total FROM ({sql}) p "
                 "ORDER BY p.last_at DESC, p.ref DESC LIMIT :limit OFFSET :offset")
        rows = self._rows(query, {**params, "limit": per_page, "offset": (page - 1) * per_page})
        if not rows and page > 1:
            total = self.count_conversations(filters)
            return Page([], total, page, per_page)
        total = int(rows[0].total) if rows else 0
        channels = self._channels(row.first_user_id for row in rows)
        return Page([self._row(row, channels) for row in rows], total, page, per_page)

    def count_conversations(self, filters: Filters) -> int:
        if not self.available():
            return 0
        sql, params = self._list_sql(filters)
        return int(self._rows(f"SELECT COUNT(*) AS n FROM ({sql}) p", params)[0].n)

    def iter_conversations(self, filters: Filters, limit: int | None = None) -> Iterator[ConversationRow]:
        """Every conversation matching the filters (for exports), most recently active first."""
        if not self.available():
            return
        sql, params = self._list_sql(filters)
        query = f"SELECT p.* FROM ({sql}) p ORDER BY p.last_at DESC, p.ref DESC"
        if limit:
            query += " LIMIT :limit"
            params["limit"] = limit
        rows = self._rows(query, params)
        for start in range(0, len(rows), 1000):
            chunk = rows[start:start + 1000]
            channels = self._channels(row.first_user_id for row in chunk)
            for row in chunk:
                yield self._row(row, channels)

    # --- one conversation ----------------------------------------------------------------
    def sender_for_ref(self, ref: int) -> str | None:
        """The sender of a conversation reference (the id of its first stored event)."""
        if not self.available():
            return None
        rows = self._rows(
            "SELECT e.sender_id FROM events e WHERE e.id = :ref "
            "AND NOT EXISTS (SELECT 1 FROM events o WHERE o.sender_id = e.sender_id AND o.id < e.id)",
            {"ref": ref},
        )
        return rows[0].sender_id if rows else None

    def ref_for_sender(self, sender_id: str) -> int | None:
        if not self.available():
            return None
        rows = self._rows("SELECT MIN(id) AS ref FROM events WHERE sender_id = :sender", {"sender": sender_id})
        return int(rows[0].ref) if rows and rows[0].ref is not None else None

    def transcript(self, sender_id: str) -> Transcript | None:
        """Patient and bot turns of one conversation, with intent, topic answered and escalation."""
        if not self.available():
            return None
        rows = self._rows(
            "SELECT id, type_name, timestamp, intent_name, action_name, data FROM events "
            "WHERE sender_id = :sender ORDER BY id LIMIT :limit",
            {"sender": sender_id, "limit": MAX_TRANSCRIPT_EVENTS + 1},
        )
        if not rows:
            return None
        truncated = len(rows) > MAX_TRANSCRIPT_EVENTS
        rows = rows[:MAX_TRANSCRIPT_EVENTS]
        turns: list[Turn] = []
        exchange = 0
        current: Turn | None = None  # the patient turn of the current exchange
        exchange_level: dict[int, str] = {}
        channel: str | None = None
        for row in rows:
            try:
                data = json.loads(row.data) if row.data else {}
            except ValueError:
                data = {}
            kind = row.type_name
            at = self._dt(row.timestamp)
            if kind == "user":
                exchange += 1
                parse = data.get("parse_data") or {}
                intent = parse.get("intent") or {}
                confidence = intent.get("confidence")
                current = Turn(
                    kind="patient",
                    at=at,
                    text=str(data.get("text") or ""),
                    intent=row.intent_name or intent.get("name"),
                    confidence=float(confidence) if isinstance(confidence, (int, float)) else None,
                    channel=data.get("input_channel"),
                    exchange=exchange,
                )
                channel = channel or current.channel
                turns.append(current)
            elif kind == "bot":
                payload = data.get("data") or {}
                custom = payload.get("custom") if isinstance(payload, dict) else None
                note = None
                if isinstance(custom, dict) and custom.get("kind") == "seek_care":
                    level = custom.get("level")
                    note = f"Seek-care message ({level})" if level else "Seek-care message"
                    if level in ESCALATION_LEVELS:
                        exchange_level.setdefault(exchange, level)
                text = data.get("text")
                if not text and isinstance(payload, dict):
                    buttons = payload.get("buttons") or []
                    text = " / ".join(str(b.get("title", "")) for b in buttons if isinstance(b, dict))
                if not text and not note:
                    continue
                turns.append(Turn(kind="bot", at=at, text=str(text or ""), note=note, exchange=exchange))
            elif kind == "slot":
                name = row.action_name or data.get("name")
                slot_value = data.get("value")
                if name == "triage_level" and slot_value in ESCALATION_LEVELS:
                    if current is not None and current.exchange == exchange:
                        current.escalation = _higher(current.escalation, slot_value)
                    exchange_level[exchange] = _higher(exchange_level.get(exchange), slot_value)  # type: ignore[assignment]
                elif name == "last_topic" and slot_value and current is not None and current.exchange == exchange:
                    current.topic = str(slot_value)
                elif name == "symptoms" and slot_value and current is not None and current.exchange == exchange:
                    values = slot_value if isinstance(slot_value, list) else [slot_value]
                    current.symptoms = [str(v) for v in values]
            elif kind == "session_started":
                current = None
                exchange += 1
                turns.append(Turn(kind="session", at=at, exchange=exchange))
        for turn in turns:
            level = exchange_level.get(turn.exchange)
            if level and turn.kind in ("patient", "bot"):
                turn.escalation = _higher(turn.escalation, level)
        # drop a leading session marker: the conversation start is shown in the header
        while turns and turns[0].kind == "session":
            turns.pop(0)
        timestamps = [row.timestamp for row in rows if row.timestamp is not None]
        return Transcript(
            ref=int(rows[0].id),
            sender_id=sender_id,
            turns=turns,
            channel=channel,
            started=self._dt(min(timestamps)) if timestamps else None,
            last_activity=self._dt(max(timestamps)) if timestamps else None,
            truncated=truncated,
        )

    # --- dashboard -----------------------------------------------------------------------
    def dashboard(self, date_from: date, date_to: date, top: int = 10) -> Dashboard:
        days = [date_from + timedelta(days=n) for n in range((date_to - date_from).days + 1)]
        empty = Dashboard(days, {}, {}, {}, {}, {}, [], [])
        if not self.available():
            return empty
        start = day_start(date_from, self.tz)
        end = day_start(date_to + timedelta(days=1), self.tz)
        window = {"start": start, "end": end}
        day_of_bucket: dict[int, date] = {}

        def day_for(bucket: int) -> date:
            if bucket not in day_of_bucket:
                day_of_bucket[bucket] = datetime.fromtimestamp(bucket * BUCKET_S, self.tz).date()
            return day_of_bucket[bucket]

        conversations: Counter[date] = Counter()
        rows = self._rows(
            f"SELECT {self._bucket('c.started')} AS b, COUNT(*) AS n FROM ("
            " SELECT MIN(timestamp) AS started, SUM(CASE WHEN type_name = 'user' THEN 1 ELSE 0 END) AS turns"
            " FROM events GROUP BY sender_id) c"
            " WHERE c.turns > 0 AND c.started >= :start AND c.started < :end GROUP BY b",
            window,
        )
        for row in rows:
            conversations[day_for(int(row.b))] += int(row.n)

        patient: Counter[date] = Counter()
        bot: Counter[date] = Counter()
        unanswered: Counter[date] = Counter()
        rows = self._rows(
            f"SELECT {self._bucket('timestamp')} AS b,"
            " SUM(CASE WHEN type_name = 'user' THEN 1 ELSE 0 END) AS patient,"
            " SUM(CASE WHEN type_name = 'bot' THEN 1 ELSE 0 END) AS bot,"
            f" SUM(CASE WHEN type_name = 'user' AND intent_name IN {_UNANSWERED_SQL} THEN 1 ELSE 0 END) AS unanswered"
            " FROM events WHERE type_name IN ('user', 'bot') AND timestamp >= :start AND timestamp < :end GROUP BY b",
            window,
        )
        for row in rows:
            day = day_for(int(row.b))
            patient[day] += int(row.patient or 0)
            bot[day] += int(row.bot or 0)
            unanswered[day] += int(row.unanswered or 0)

        escalated: dict[date, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        rows = self._rows(
            f"SELECT sender_id, timestamp, {self._json('value')} AS level FROM events"
            " WHERE type_name = 'slot' AND action_name = 'triage_level' AND timestamp >= :start AND timestamp < :end",
            window,
        )
        for row in rows:
            if row.level in ESCALATION_LEVELS:
                escalated[self._dt(row.timestamp).date()][row.level].add(row.sender_id)  # type: ignore[union-attr]
        escalations = {day: {level: len(senders) for level, senders in levels.items()}
                       for day, levels in escalated.items()}

        # Rasa can store `last_topic` twice for one answer (slot extraction through the custom mapping's
        # action, then the action itself): same sender + same topic within a few seconds counts once.
        rows = self._rows(
            f"SELECT sender_id, timestamp, {self._json('value')} AS topic FROM events"
            " WHERE type_name = 'slot' AND action_name = 'last_topic' AND timestamp >= :start AND timestamp < :end"
            " ORDER BY sender_id, id",
            window,
        )
        answers: Counter[str] = Counter()
        previous: tuple[str, str, float] | None = None
        for row in rows:
            if not row.topic:
                continue
            if previous and previous[0] == row.sender_id and previous[1] == row.topic and \
                    abs(float(row.timestamp) - previous[2]) < DUPLICATE_TOPIC_S:
                continue
            previous = (row.sender_id, str(row.topic), float(row.timestamp))
            answers[str(row.topic)] += 1
        top_topics = sorted(answers.items(), key=lambda item: (-item[1], item[0]))[:top]

        text = self._json("text")
        rows = self._rows(
            f"SELECT {text} AS text FROM events WHERE type_name = 'user' AND intent_name IN {_UNANSWERED_SQL}"
            " AND timestamp >= :start AND timestamp < :end ORDER BY id DESC LIMIT 3000",
            window,
        )
        groups = group_questions([row.text for row in rows if row.text], limit=15)
        return Dashboard(days, dict(conversations), dict(patient), dict(bot), dict(unanswered), escalations,
                         top_topics, groups)


def _higher(current: str | None, new: str) -> str:
    if current == "emergency" or new == "emergency":
        return "emergency"
    return new or current or ""


# --- grouping of unanswered questions ----------------------------------------------------------
_NON_WORD = re.compile(r"[^\w\s']+")


def normalise_question(text: str) -> str:
    return " ".join(_NON_WORD.sub(" ", text.lower()).split())


def group_questions(texts: Iterable[str], limit: int = 15, threshold: float = 85.0) -> list[QuestionGroup]:
    """Group near-duplicate questions (rapidfuzz token-sort similarity >= threshold), biggest first."""
    from rapidfuzz import fuzz, process

    counts: Counter[str] = Counter()
    shown: dict[str, Counter[str]] = defaultdict(Counter)
    for text in texts:
        key = normalise_question(text)
        if not key:
            continue
        counts[key] += 1
        shown[key][" ".join(text.split())] += 1
    keys: list[str] = []
    groups: list[QuestionGroup] = []
    for key, count in counts.most_common():
        match = process.extractOne(key, keys, scorer=fuzz.token_sort_ratio, score_cutoff=threshold) if keys else None
        variants = [text for text, _ in shown[key].most_common()]
        if match is None:
            keys.append(key)
            groups.append(QuestionGroup(text=variants[0], count=count, variants=variants[1:]))
        else:
            group = groups[match[2]]
            group.count += count
            group.variants.extend(v for v in variants if v != group.text and v not in group.variants)
    groups.sort(key=lambda g: (-g.count, g.text))
    for group in groups:
        group.variants = group.variants[:5]
    return groups[:limit]
