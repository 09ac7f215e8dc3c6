"""Is the patient answering a check-in text? (The action server asks before reading "1" / "2" as an answer.)

The worker sets the `last_outreach` slot when a text enters the conversation, but Rasa resets slots when an
idle conversation starts a new session (domain.yml session_config), and a patient may answer the next
morning. So a missing slot is not the last word: the outbox is asked for a check-in sent to this number in
the last CHECKIN_CONTEXT_S.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from bot.privacy import mask_sender

logger = logging.getLogger(__name__)

CHECKIN_CONTEXT_S = 72 * 3600.0  # a "1" this long after a check-in is still its answer
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def checkin_in_slot(slot_value: Any, now: float) -> bool:
    return (isinstance(slot_value, dict) and slot_value.get("kind") == "checkin"
            and isinstance(slot_value.get("sent_at"), (int, float))
            and now - float(slot_value["sent_at"]) <= CHECKIN_CONTEXT_S)


def recent_checkin(sender_id: str | None, slot_value: Any, now: float | None = None) -> bool:
    """True when the latest outreach text to this conversation was a check-in sent recently."""
    now = time.time() if now is None else now
    if checkin_in_slot(slot_value, now):
        return True
    if not sender_id or not _E164.match(sender_id):
        return False  # only SMS conversations (ids are phone numbers) get outreach texts
    try:
        import sqlalchemy as sa

        from bot.outreach.outbox import Outbox

        return Outbox(create=False).latest_checkin(sender_id, since=now - CHECKIN_CONTEXT_S) is not None
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        return False  # no outreach tables: this clinic sends no texts
    except Exception:  # noqa: BLE001 - the outbox unreadable: the reply is read without the context
        logger.warning("Outreach outbox not readable for %s; reply read without check-in context.",
                       mask_sender(sender_id), exc_info=True)
        return False
