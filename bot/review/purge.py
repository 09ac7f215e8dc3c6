"""Retention purge: delete conversations (Rasa sessions) whose last message is older than N days.

A sender whose every event is older than the cutoff is deleted entirely. For a sender that is
still active (an SMS patient texting again months later), only its finished sessions older than
the cutoff are deleted; the current session stays whole, so Rasa's tracker stays consistent.
This is the only code that writes to the tracker store, through its own writable engine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.review.db import has_events_table

CHUNK = 500


@dataclass
class PurgePlan:
    cutoff: float
    whole: dict[str, int] = field(default_factory=dict)  # sender -> events (conversation deleted entirely)
    partial: dict[str, list[int]] = field(default_factory=dict)  # sender -> event ids of old sessions

    @property
    def events(self) -> int:
        return sum(self.whole.values()) + sum(len(ids) for ids in self.partial.values())

    @property
    def conversations(self) -> int:
        return len(self.whole) + len(self.partial)


def _sessions(rows: list) -> list[list]:
    """Split one sender's events (ordered by id) into Rasa sessions."""
    sessions: list[list] = [[]]
    for row in rows:
        if row.type_name == "session_started" and sessions[-1]:
            carried = []
            # `action_session_start` is stored just before `session_started`: it belongs to the new session
            last = sessions[-1][-1]
            if last.type_name == "action" and last.action_name == "action_session_start":
                carried.append(sessions[-1].pop())
            if sessions[-1]:
                sessions.append(carried)
            else:
                sessions[-1] = carried
        sessions[-1].append(row)
    return [s for s in sessions if s]


def plan_purge(engine: Engine, older_than_days: float, now: float | None = None) -> PurgePlan:
    if older_than_days < 0:
        raise ValueError("--older-than-days must not be negative")
    now = time.time() if now is None else now
    plan = PurgePlan(cutoff=now - older_than_days * 86400)
    if not has_events_table(engine):  # no store yet (SQLite file missing) or no conversation stored
        return plan
    with engine.connect() as connection:
        candidates = connection.execute(
            sa.text("SELECT sender_id, MAX(timestamp) AS last_at, COUNT(*) AS n FROM events "
                    "GROUP BY sender_id HAVING MIN(timestamp) < :cutoff"),
            {"cutoff": plan.cutoff},
        ).all()
        for candidate in candidates:
            if candidate.last_at is not None and candidate.last_at < plan.cutoff:
                plan.whole[candidate.sender_id] = int(candidate.n)
                continue
            rows = connection.execute(
                sa.text("SELECT id, type_name, action_name, timestamp FROM events WHERE sender_id = :s ORDER BY id"),
                {"s": candidate.sender_id},
            ).all()
            old_ids = [
                row.id
                for session in _sessions(rows)[:-1]  # never the latest session of an active sender
                if max((r.timestamp or 0) for r in session) < plan.cutoff
                for row in session
            ]
            if old_ids:
                plan.partial[candidate.sender_id] = old_ids
    return plan


def execute_purge(engine: Engine, plan: PurgePlan) -> int:
    """Delete what the plan lists, in one transaction; returns the number of events deleted."""
    deleted = 0
    with engine.begin() as connection:
        senders = list(plan.whole)
        for start in range(0, len(senders), CHUNK):
            chunk = senders[start:start + CHUNK]
            statement = sa.text("DELETE FROM events WHERE sender_id IN :senders AND timestamp < :cutoff")
            statement = statement.bindparams(sa.bindparam("senders", expanding=True))
            deleted += connection.execute(statement, {"senders": chunk, "cutoff": plan.cutoff}).rowcount
        ids = [event_id for event_ids in plan.partial.values() for event_id in event_ids]
        for start in range(0, len(ids), CHUNK):
            statement = sa.text("DELETE FROM events WHERE id IN :ids").bindparams(sa.bindparam("ids", expanding=True))
            deleted += connection.execute(statement, {"ids": ids[start:start + CHUNK]}).rowcount
    return deleted


def purge_staff_records(review_engine: Engine, plan: PurgePlan) -> int:
    """Delete the follow-up actions and message labels of the purged conversations' purged messages.

    They hold conversation ids (an SMS conversation's id is the patient's number), so they go with the
    messages they are about: everything before the cutoff for the purged conversations. Labels already
    exported live on in data/nlu (reviewed by a developer) without the id.
    """
    from bot.review.followup import followup_actions
    from bot.review.labels import message_labels

    senders = [*plan.whole, *plan.partial]
    deleted = 0
    with review_engine.begin() as connection:
        for table, when in ((followup_actions, followup_actions.c.at), (message_labels, message_labels.c.message_at)):
            if not sa.inspect(connection).has_table(table.name):
                continue
            for start in range(0, len(senders), CHUNK):
                chunk = senders[start:start + CHUNK]
                deleted += connection.execute(
                    table.delete().where(table.c.sender_id.in_(chunk), when < plan.cutoff)
                ).rowcount
    return deleted
