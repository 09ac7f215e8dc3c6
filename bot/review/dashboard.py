"""Dashboard aggregation: per-day counts, escalations, top topics and grouped unanswered questions.

Counts are aggregated in SQL by 15-minute bucket and then folded into local days in Python, so the
database does no time-zone arithmetic (every UTC offset is a whole number of buckets).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from bot.review.events import BUCKET_S, ESCALATION_LEVELS, UNANSWERED_SQL, EventsTable
from bot.review.filters import day_start

DUPLICATE_TOPIC_S = 10.0
MAX_UNANSWERED_SAMPLE = 3000


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


def build_dashboard(events: EventsTable, date_from: date, date_to: date, top: int = 10) -> Dashboard:
    """Everything the dashboard page shows for the local days `date_from`..`date_to`."""
    days = [date_from + timedelta(days=n) for n in range((date_to - date_from).days + 1)]
    if not events.available():
        return Dashboard(days, {}, {}, {}, {}, {}, [], [])
    window = {"start": day_start(date_from, events.tz), "end": day_start(date_to + timedelta(days=1), events.tz)}
    day_of_bucket: dict[int, date] = {}

    def day_for(bucket: int) -> date:
        if bucket not in day_of_bucket:
            day_of_bucket[bucket] = datetime.fromtimestamp(bucket * BUCKET_S, events.tz).date()
        return day_of_bucket[bucket]

    conversations: Counter[date] = Counter()
    rows = events.rows(
        f"SELECT {events.bucket('c.started')} AS b, COUNT(*) AS n FROM ("
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
    rows = events.rows(
        f"SELECT {events.bucket('timestamp')} AS b,"
        " SUM(CASE WHEN type_name = 'user' THEN 1 ELSE 0 END) AS patient,"
        " SUM(CASE WHEN type_name = 'bot' THEN 1 ELSE 0 END) AS bot,"
        f" SUM(CASE WHEN type_name = 'user' AND intent_name IN {UNANSWERED_SQL} THEN 1 ELSE 0 END) AS unanswered"
        " FROM events WHERE type_name IN ('user', 'bot') AND timestamp >= :start AND timestamp < :end GROUP BY b",
        window,
    )
    for row in rows:
        day = day_for(int(row.b))
        patient[day] += int(row.patient or 0)
        bot[day] += int(row.bot or 0)
        unanswered[day] += int(row.unanswered or 0)

    return Dashboard(days, dict(conversations), dict(patient), dict(bot), dict(unanswered),
                     _escalations_per_day(events, window), _top_topics(events, window, top),
                     group_questions(_unanswered_texts(events, window), limit=15))


def _escalations_per_day(events: EventsTable, window: dict[str, float]) -> dict[date, dict[str, int]]:
    """Conversations escalated per local day and level (a conversation counts once a day per level)."""
    escalated: dict[date, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    rows = events.rows(
        f"SELECT sender_id, timestamp, {events.json('value')} AS level FROM events"
        " WHERE type_name = 'slot' AND action_name = 'triage_level' AND timestamp >= :start AND timestamp < :end",
        window,
    )
    for row in rows:
        if row.level in ESCALATION_LEVELS:
            escalated[events.local_time(row.timestamp).date()][row.level].add(row.sender_id)  # type: ignore[union-attr]
    return {day: {level: len(senders) for level, senders in levels.items()} for day, levels in escalated.items()}


def _top_topics(events: EventsTable, window: dict[str, float], top: int) -> list[tuple[str, int]]:
    """Knowledge entries answered most often.

    Rasa can store `last_topic` twice for one answer (slot extraction through the custom mapping's
    action, then the action itself): same sender + same topic within a few seconds counts once.
    """
    rows = events.rows(
        f"SELECT sender_id, timestamp, {events.json('value')} AS topic FROM events"
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
    return sorted(answers.items(), key=lambda item: (-item[1], item[0]))[:top]


def _unanswered_texts(events: EventsTable, window: dict[str, float]) -> list[str]:
    """The most recent unanswered patient messages of the window."""
    rows = events.rows(
        f"SELECT {events.json('text')} AS text FROM events WHERE type_name = 'user' AND intent_name IN {UNANSWERED_SQL}"
        f" AND timestamp >= :start AND timestamp < :end ORDER BY id DESC LIMIT {MAX_UNANSWERED_SAMPLE}",
        window,
    )
    return [row.text for row in rows if row.text]


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
