"""Read-only access to conversations in the tracker store.

A conversation is everything stored under one `sender_id` (for SMS the patient's phone number);
it may span several Rasa sessions. Lists are computed with aggregated SQL (`GROUP BY sender_id`);
a transcript reads one sender's events through the `sender_id` index.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from bot.review.dashboard import Dashboard, build_dashboard
from bot.review.events import UNANSWERED_SQL, EventsTable
from bot.review.filters import CHANNELS, Filters, channel_label, day_start
from bot.review.transcript import Transcript, read_transcript
from bot.vocabulary import CHECK_SYMPTOM_INTENT

ID_CHUNK = 500
EXPORT_CHUNK = 1000


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


def like_pattern(text: str) -> str:
    """A LIKE pattern (escape character `!`) that matches `text` literally anywhere."""
    escaped = text.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%{escaped}%"


class ConversationStore(EventsTable):
    """Conversations (lists, references, transcripts, dashboard) read from the `events` table."""

    # --- conversation list ---------------------------------------------------------------
    def _list_sql(self, filters: Filters) -> tuple[str, dict[str, object]]:
        params: dict[str, object] = {}
        value = self.json("value")
        search_column = ""
        if filters.search:
            text = self.json("text")
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
                   SUM(CASE WHEN type_name = 'user' AND intent_name IN {UNANSWERED_SQL} THEN 1 ELSE 0 END)
                       AS unanswered,
                   MAX(CASE WHEN type_name = 'slot' AND action_name = 'triage_level'
                            THEN (CASE WHEN {value} = 'emergency' THEN 1 ELSE 0 END) ELSE 0 END) AS emergency,
                   MAX(CASE WHEN type_name = 'slot' AND action_name = 'triage_level'
                            THEN (CASE WHEN {value} = 'urgent' THEN 1 ELSE 0 END) ELSE 0 END) AS urgent,
                   SUM(CASE WHEN type_name = 'user' AND intent_name = '{CHECK_SYMPTOM_INTENT}' THEN 1 ELSE 0 END)
                       AS checks,
                   MIN(CASE WHEN type_name = 'user' THEN id END) AS first_user_id{search_column}
            FROM events
            GROUP BY sender_id
        """
        where = ["c.patient_turns > 0"]
        join = ""
        if filters.channel:
            join = "JOIN events fu ON fu.id = c.first_user_id"
            channel_expr = self.json("input_channel", column="fu.data")
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
        elif filters.escalated == "check":
            where.append("c.checks > 0")
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
            started=self.local_time(row.started),  # type: ignore[arg-type]
            last_activity=self.local_time(row.last_at),  # type: ignore[arg-type]
            channel=channels.get(int(row.first_user_id)) if row.first_user_id is not None else None,
            patient_turns=int(row.patient_turns or 0),
            unanswered=int(row.unanswered or 0),
            emergency=bool(row.emergency),
            urgent=bool(row.urgent),
        )

    def _channels(self, event_ids: Iterable[int]) -> dict[int, str | None]:
        """Input channel of each event id (looked up afterwards: cheaper than joining in the aggregate)."""
        ids = sorted({int(i) for i in event_ids if i is not None})
        result: dict[int, str | None] = {}
        channel = self.json("input_channel")
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start:start + ID_CHUNK]
            placeholders = ", ".join(f":i{n}" for n in range(len(chunk)))
            rows = self.rows(f"SELECT id, {channel} AS channel FROM events WHERE id IN ({placeholders})",
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
        rows = self.rows(query, {**params, "limit": per_page, "offset": (page - 1) * per_page})
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
        return int(self.rows(f"SELECT COUNT(*) AS n FROM ({sql}) p", params)[0].n)

    def iter_conversations(self, filters: Filters, limit: int | None = None) -> Iterator[ConversationRow]:
        """Every conversation matching the filters (for exports), most recently active first."""
        if not self.available():
            return
        sql, params = self._list_sql(filters)
        query = f"SELECT p.* FROM ({sql}) p ORDER BY p.last_at DESC, p.ref DESC"
        if limit:
            query += " LIMIT :limit"
            params["limit"] = limit
        rows = self.rows(query, params)
        for start in range(0, len(rows), EXPORT_CHUNK):
            chunk = rows[start:start + EXPORT_CHUNK]
            channels = self._channels(row.first_user_id for row in chunk)
            for row in chunk:
                yield self._row(row, channels)

    # --- one conversation ----------------------------------------------------------------
    def sender_for_ref(self, ref: int) -> str | None:
        """The sender of a conversation reference (the id of its first stored event)."""
        if not self.available():
            return None
        rows = self.rows(
            "SELECT e.sender_id FROM events e WHERE e.id = :ref "
            "AND NOT EXISTS (SELECT 1 FROM events o WHERE o.sender_id = e.sender_id AND o.id < e.id)",
            {"ref": ref},
        )
        return rows[0].sender_id if rows else None

    def ref_for_sender(self, sender_id: str) -> int | None:
        if not self.available():
            return None
        rows = self.rows("SELECT MIN(id) AS ref FROM events WHERE sender_id = :sender", {"sender": sender_id})
        return int(rows[0].ref) if rows and rows[0].ref is not None else None

    def transcript(self, sender_id: str) -> Transcript | None:
        """Patient and bot turns of one conversation, with intent, topic answered and escalation."""
        return read_transcript(self, sender_id)

    def dashboard(self, date_from: date, date_to: date, top: int = 10) -> Dashboard:
        return build_dashboard(self, date_from, date_to, top)
