"""The access log: which staff member viewed or exported what, and when."""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.review.db import access_log

ACTIONS = {
    "login": "Signed in",
    "logout": "Signed out",
    "view_list": "Viewed conversation list",
    "view_conversation": "Viewed conversation",
    "view_dashboard": "Viewed dashboard",
    "view_access_log": "Viewed access log",
    "export_list": "Exported conversation list",
    "export_conversation": "Exported conversation",
    "export_list_unmasked": "Exported conversation list with full phone numbers",
    "export_conversation_unmasked": "Exported conversation with full phone numbers",
    "show_unmasked": "Showed conversation with full phone number (CLI)",
    "purge": "Deleted old conversations (retention purge)",
    "staff_reply": "Replied to the patient",
    "staff_reply_failed": "Reply to the patient failed (not sent)",
    "takeover": "Took over the conversation from the assistant",
    "takeover_failed": "Taking over failed",
    "handback": "Handed the conversation back to the assistant",
    "handback_failed": "Handing back failed",
}


@dataclass
class AccessEntry:
    id: int
    at: float
    username: str
    action: str
    sender_id: str | None
    detail: str
    ip: str | None

    @property
    def action_label(self) -> str:
        return ACTIONS.get(self.action, self.action)


def record(engine: Engine, username: str, action: str, sender_id: str | None = None, detail: str = "",
           ip: str | None = None) -> None:
    with engine.begin() as connection:
        connection.execute(
            access_log.insert().values(at=time.time(), username=username[:80], action=action[:40],
                                       sender_id=sender_id, detail=detail[:2000], ip=(ip or None))
        )


def read(engine: Engine, limit: int = 50, offset: int = 0, username: str | None = None,
         action: str | None = None) -> tuple[list[AccessEntry], int]:
    """Newest first, with the total count."""
    query = sa.select(access_log)
    count = sa.select(sa.func.count()).select_from(access_log)
    if username:
        query = query.where(access_log.c.username == username)
        count = count.where(access_log.c.username == username)
    if action:
        query = query.where(access_log.c.action == action)
        count = count.where(access_log.c.action == action)
    query = query.order_by(access_log.c.id.desc()).limit(limit).offset(offset)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
        total = connection.execute(count).scalar_one()
    entries = [AccessEntry(r.id, r.at, r.username, r.action, r.sender_id, r.detail or "", r.ip) for r in rows]
    return entries, int(total)
