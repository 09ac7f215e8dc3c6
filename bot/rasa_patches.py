"""The one place where the clinic changes Rasa 3.6 internals, to keep each patient message cheap.

Why (py-spy profile of the Rasa process under load, README "Per-message cost"): about a third of the
CPU of a turn went to `jsonschema.validate` re-checking Rasa's whole events *schema* against the
JSON-Schema meta-schema on every action-server reply; and a turn's latency grew with the length of
the conversation (10x at turn 300), because every turn loaded every event of the session from SQL,
replayed it, featurised it for the policies and sent it to the action server.

What (each patch keeps Rasa's behaviour; tests/test_reply_path.py checks it):

1. `RemoteAction._validate_action_result` validates with one compiled validator, built and checked once
   (what `jsonschema.validate` does on every call): the same schema, the same first error chosen by
   `best_match`, the same message; invalid action results are still rejected.
2. While Rasa handles a patient message (`MessageProcessor.handle_message`), the SQL tracker store loads
   a bounded *recent* tracker: the last `recent_turns` patient turns plus, before them, the session
   start and the latest value of each slot - all real stored events. The slots, the latest message and
   everything the policies look at (MemoizationPolicy: 4 states; the rules are short) are the same as
   with the whole session, so predictions, replies and the action server's view (slots, latest
   message, input channel) are the same. Anything that could make older events matter (restart,
   rewind, undo, slot reset, pause, loops, follow-up actions) makes it load the whole session, as
   Rasa does. Saving appends exactly the events added since loading. The HTTP API's tracker endpoint,
   the review app and exports still read every event (`retrieve_full_tracker`, SQL).
3. numpy's BLAS (OpenBLAS) runs on one thread in this process. Its second thread spun waiting for the
   sentence encoder's small matrix products and burnt as much CPU as the whole rest of a turn
   (measured: Rasa CPU per message 63-70 ms -> 35-38 ms under load); the encoder's answers are the same
   (to float rounding) and its single-message latency is unchanged.
4. `Event.resolve_by_type` remembers the class found for each event type name instead of walking all
   Event subclasses (with `inspect.isabstract`) for every stored event it deserialises.

Applied once per process by `bot.storage.ClinicTrackerStore` (so only inside the Rasa server), unless
endpoints.yml says `fast_reply_path: false` (the stock path, for `make bench`'s comparison).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from jsonschema import exceptions as jsonschema_exceptions
from jsonschema.validators import validator_for
from rasa.core.actions.action import RemoteAction
from rasa.core.processor import MessageProcessor
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker
from threadpoolctl import threadpool_limits

logger = logging.getLogger(__name__)

DEFAULT_RECENT_TURNS = 20  # patient turns loaded per message (README "Per-message cost": why 20)
# Stored events before the recent window whose effect is fully known from the slots they set: with only
# these before the cut, the slots' latest values + the recent turns give the same tracker state.
WINDOW_SAFE_TYPES = frozenset(
    {"user", "bot", "slot", "action", "session_started", "user_featurization", "entities",
     "action_execution_rejected"}
)
STORED_EVENTS_ATTR = "_clinic_stored_events"  # on a tracker loaded by the recent-window path

# Conversations whose message Rasa is handling in this process (the lock store admits one at a time). A set,
# not a context variable: bot/storage.py runs the store's calls in worker threads, which don't inherit it.
_handling: collections.Counter[str] = collections.Counter()
_state: dict[str, Any] = {"applied": False, "recent_turns": DEFAULT_RECENT_TURNS}
_originals: dict[str, Any] = {}


# --- 1. action results: one compiled validator ----------------------------------------------------------
_validators: dict[type, Any] = {}


def _compiled_validator(action_class: type) -> Any:
    """The validator `jsonschema.validate` would build for this action class's response schema, once."""
    validator = _validators.get(action_class)
    if validator is None:
        schema = action_class.action_response_format_spec()
        cls = validator_for(schema)
        cls.check_schema(schema)
        validator = _validators[action_class] = cls(schema)
    return validator


def validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    """Rasa's `_validate_action_result` with the validator compiled once (same errors, same message)."""
    error = jsonschema_exceptions.best_match(_compiled_validator(type(self)).iter_errors(result))
    if error is not None:
        error.message += (
            f". Failed to validate Action server response from API, "
            f"make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit "
            f"{DOCS_BASE_URL}/custom-actions"
        )
        raise error
    return True


# --- 2. a bounded recent tracker while handling a message ---------------------------------------------
@contextlib.contextmanager
def handling(sender_id: str) -> Iterator[None]:
    """Mark a conversation as being handled: its tracker store reads load the recent window meanwhile."""
    _handling[sender_id] += 1
    try:
        yield
    finally:
        _handling[sender_id] -= 1
        if _handling[sender_id] <= 0:
            del _handling[sender_id]


async def handle_message(self: MessageProcessor, message: Any) -> Any:
    """Rasa's `handle_message`, marking the conversation so the tracker store may load the recent window."""
    with handling(message.sender_id):
        return await _originals["handle_message"](self, message)


def _recent_rows(store: SQLTrackerStore, session: Any, sender_id: str, recent_turns: int) -> list[str] | None:
    """The stored events (JSON) of the recent window, in order; None when the whole session is needed."""
    table = store.SQLEvent
    session_start = (
        session.query(sa.func.max(table.timestamp))
        .filter(table.sender_id == sender_id, table.type_name == "session_started")
        .scalar()
    )
    # The same rows as Rasa's `_event_query` for the latest session.
    in_session = [table.sender_id == sender_id]
    if session_start is not None:
        in_session.append(table.timestamp >= session_start)
    cut_user = (
        session.query(table.id).filter(*in_session, table.type_name == "user")
        .order_by(table.id.desc()).offset(recent_turns - 1).limit(1).scalar()
    )
    if cut_user is None:
        return None  # a short session: Rasa's own query
    listen = (
        session.query(sa.func.max(table.id))
        .filter(*in_session, table.id < cut_user, table.type_name == "action", table.action_name == "action_listen")
        .scalar()
    )
    cut = listen if listen is not None else cut_user
    groups = (
        session.query(table.type_name, table.action_name, sa.func.max(table.id), sa.func.count(table.id))
        .filter(*in_session, table.id < cut)
        .group_by(table.type_name, table.action_name)
        .all()
    )
    if any(type_name not in WINDOW_SAFE_TYPES for type_name, _, _, _ in groups):
        return None
    starts = [(latest, count) for type_name, _, latest, count in groups if type_name == "session_started"]
    if len(starts) > 1 or (starts and starts[0][1] > 1):
        return None
    slot_ids = [latest for type_name, _, latest, _ in groups if type_name == "slot"]
    if starts and any(slot_id < starts[0][0] for slot_id in slot_ids):
        return None  # a slot set before the session start in the same second: keep Rasa's exact replay
    prefix_ids = [start for start, _ in starts] + slot_ids
    rows = (
        session.query(table.data)
        .filter(*in_session, sa.or_(table.id >= cut, table.id.in_(prefix_ids) if prefix_ids else sa.false()))
        .order_by(table.id)
        .all()
    )
    return [data for (data,) in rows]


async def retrieve(self: SQLTrackerStore, sender_id: str) -> DialogueStateTracker | None:
    """Rasa's `retrieve`, or during message handling the bounded recent tracker (module docstring)."""
    if sender_id not in _handling or not self.domain:
        return await _originals["retrieve"](self, sender_id)
    with self.session_scope() as session:
        rows = _recent_rows(self, session, sender_id, _state["recent_turns"])
    if rows is None:
        tracker = await _originals["retrieve"](self, sender_id)
        if tracker is not None:  # the whole session, as stored: the same count Rasa would query at save
            setattr(tracker, STORED_EVENTS_ATTR, len(tracker.events))
        return tracker
    tracker = DialogueStateTracker.from_dict(sender_id, [json.loads(row) for row in rows], self.domain.slots)
    setattr(tracker, STORED_EVENTS_ATTR, len(tracker.events))
    return tracker


def additional_events(self: SQLTrackerStore, session: Any, tracker: DialogueStateTracker) -> Iterator:
    """Events not stored yet: after the loaded ones for a recent tracker, else Rasa's count."""
    stored = getattr(tracker, STORED_EVENTS_ATTR, None)
    if stored is None:
        return _originals["_additional_events"](self, session, tracker)
    return itertools.islice(tracker.events, stored, len(tracker.events))


async def save(self: SQLTrackerStore, tracker: DialogueStateTracker) -> None:
    """Rasa's `save`; a recent tracker then counts its events as stored (saving twice adds nothing twice)."""
    await _originals["save"](self, tracker)
    if getattr(tracker, STORED_EVENTS_ATTR, None) is not None:
        setattr(tracker, STORED_EVENTS_ATTR, len(tracker.events))


# --- 3. event classes by type name ----------------------------------------------------------------------
_event_classes: dict[str, type] = {}


def resolve_by_type(type_name: str, default: type | None = None) -> type | None:
    """Rasa's `Event.resolve_by_type`, remembering each class it finds (Event subclasses don't change)."""
    found = _event_classes.get(type_name)
    if found is None:
        found = _originals["resolve_by_type"](type_name, default)
        if found is not None and found is not default:
            _event_classes[type_name] = found
    return found


def apply(recent_turns: int = DEFAULT_RECENT_TURNS) -> None:
    """Install the patches (idempotent); `recent_turns` patient turns are loaded per message."""
    if recent_turns < 2:
        raise ValueError(f"recent_turns must be at least 2, got {recent_turns}")
    _state["recent_turns"] = recent_turns
    if _state["applied"]:
        return
    _originals.update(
        _validate_action_result=RemoteAction._validate_action_result,
        handle_message=MessageProcessor.handle_message,
        retrieve=SQLTrackerStore.retrieve,
        _additional_events=SQLTrackerStore._additional_events,
        save=SQLTrackerStore.save,
        resolve_by_type=Event.resolve_by_type,
    )
    RemoteAction._validate_action_result = validate_action_result
    MessageProcessor.handle_message = handle_message
    SQLTrackerStore.retrieve = retrieve
    SQLTrackerStore._additional_events = additional_events
    SQLTrackerStore.save = save
    Event.resolve_by_type = staticmethod(resolve_by_type)
    threadpool_limits(limits=1, user_api="blas")
    _state["applied"] = True
    logger.info("Reply-path patches applied (bot/rasa_patches.py): recent window of %d turns.", recent_turns)


def is_applied() -> bool:
    return bool(_state["applied"])
