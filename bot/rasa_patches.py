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
5. `DaskGraphRunner.run` builds the dask graph of each target list once; Rasa re-derived the minimal
   schema (a recursive walk) for each of the three graph runs of a message. Same nodes, same results.
6. `MessageProcessor.parse_message` first has the message's sentence embedding computed together with
   those of the other messages that reach understanding in the same turn of the event loop
   (bot/encoder_batching.py); the NLU graph then finds it ready. Same vectors, to float rounding.

The tracker store's reads and writes also skip SQLAlchemy's ORM: the window's queries are Core
statements built once, and `save` writes a turn's events with one multi-row INSERT (Rasa flushes an ORM
object per event); the rows are the same. With SQLite the store is also pooled, in write-ahead-log mode,
with this process's writers queued on a lock (bot/storage.py).

Applied once per process by `bot.storage.ClinicTrackerStore` (so only inside the Rasa server), unless
endpoints.yml says `fast_reply_path: false` (the stock path, for `make bench`'s comparison).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import json
import logging
from collections.abc import Iterator
from typing import Any

import dask
import sqlalchemy as sa
from jsonschema import exceptions as jsonschema_exceptions
from jsonschema.validators import validator_for
from rasa.core.actions.action import RemoteAction
from rasa.core.processor import MessageProcessor
from rasa.core.tracker_store import SQLTrackerStore
from rasa.engine.exceptions import GraphRunError
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY
from threadpoolctl import threadpool_limits

from bot.components.linear_intent_classifier import MAX_CHARS
from bot.encoder_batching import EncoderBatcher
from bot.sentence_encoder import sentence_encoder

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


@functools.cache
def _window_statements(table: sa.Table, in_a_session: bool, recent_turns: int) -> dict[str, Any]:
    """The recent window's queries, built once per table (Core statements: no ORM work per message).

    `in_a_session`: the conversation has a session start, so only events from then on count, as in
    Rasa's `_event_query` for the latest session.
    """
    c = table.c
    where = [c.sender_id == sa.bindparam("sender")]
    if in_a_session:
        where.append(c.timestamp >= sa.bindparam("start"))
    before_cut = [*where, c.id < sa.bindparam("cut")]
    return {
        "cut_user": sa.select(c.id).where(*where, c.type_name == "user")
        .order_by(c.id.desc()).offset(recent_turns - 1).limit(1),
        "session": sa.select(c.data).where(*where).order_by(c.id),
        "listen": sa.select(sa.func.max(c.id))
        .where(*before_cut, c.type_name == "action", c.action_name == "action_listen"),
        "groups": sa.select(c.type_name, c.action_name, sa.func.max(c.id), sa.func.count(c.id))
        .where(*before_cut).group_by(c.type_name, c.action_name),
        # Two statements, not one with OR: each reads only its own rows (by id), not the whole conversation.
        "window": sa.select(c.data).where(*where, c.id >= sa.bindparam("cut")).order_by(c.id),
        "prefix": sa.select(c.data).where(*where, c.id.in_(sa.bindparam("prefix", expanding=True))).order_by(c.id),
    }


@functools.cache
def _session_start_statement(table: sa.Table) -> Any:
    c = table.c
    return sa.select(sa.func.max(c.timestamp)).where(c.sender_id == sa.bindparam("sender"),
                                                     c.type_name == "session_started")


def _recent_rows(store: SQLTrackerStore, session: Any, sender_id: str, recent_turns: int) -> list[str] | None:
    """The stored events (JSON) of the recent window, in order; None when the whole session is needed."""
    table = store.SQLEvent.__table__
    connection = session.connection()
    session_start = connection.execute(_session_start_statement(table), {"sender": sender_id}).scalar()
    statements = _window_statements(table, session_start is not None, recent_turns)
    params: dict[str, Any] = {"sender": sender_id}
    if session_start is not None:
        params["start"] = session_start
    cut_user = connection.execute(statements["cut_user"], params).scalar()
    if cut_user is None:  # a short session: all of it, as Rasa's own query reads it
        return list(connection.execute(statements["session"], params).scalars())
    listen = connection.execute(statements["listen"], {**params, "cut": cut_user}).scalar()
    cut = listen if listen is not None else cut_user
    groups = connection.execute(statements["groups"], {**params, "cut": cut}).all()
    if any(type_name not in WINDOW_SAFE_TYPES for type_name, _, _, _ in groups):
        return None
    starts = [(latest, count) for type_name, _, latest, count in groups if type_name == "session_started"]
    if len(starts) > 1 or (starts and starts[0][1] > 1):
        return None
    slot_ids = [latest for type_name, _, latest, _ in groups if type_name == "slot"]
    if starts and any(slot_id < starts[0][0] for slot_id in slot_ids):
        return None  # a slot set before the session start in the same second: keep Rasa's exact replay
    prefix_ids = [start for start, _ in starts] + slot_ids  # all before the cut
    prefix = list(connection.execute(statements["prefix"], {**params, "prefix": prefix_ids}).scalars()) \
        if prefix_ids else []
    return prefix + list(connection.execute(statements["window"], {**params, "cut": cut}).scalars())


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
    if not rows:
        return None  # as Rasa: no stored events, no tracker
    tracker = DialogueStateTracker.from_dict(sender_id, [json.loads(row) for row in rows], self.domain.slots)
    setattr(tracker, STORED_EVENTS_ATTR, len(tracker.events))
    return tracker


def additional_events(self: SQLTrackerStore, session: Any, tracker: DialogueStateTracker) -> Iterator:
    """Events not stored yet: after the loaded ones for a recent tracker, else Rasa's count."""
    stored = getattr(tracker, STORED_EVENTS_ATTR, None)
    if stored is None:
        return _originals["_additional_events"](self, session, tracker)
    return itertools.islice(tracker.events, stored, len(tracker.events))


def event_row(sender_id: str, event: Event) -> dict[str, Any]:
    """The events-table row Rasa's `save` writes for one event (same columns, same JSON)."""
    data = event.as_dict()
    return {
        "sender_id": sender_id,
        "type_name": event.type_name,
        "timestamp": data.get("timestamp"),
        "intent_name": data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
        "action_name": data.get("name"),
        "data": json.dumps(data),
    }


async def save(self: SQLTrackerStore, tracker: DialogueStateTracker) -> None:
    """Rasa's `save` as one multi-row INSERT (Rasa adds an ORM object per event and flushes them one by
    one); a recent tracker then counts its events as stored (saving twice adds nothing twice)."""
    await self.stream_events(tracker)
    with self.session_scope() as session:
        rows = [event_row(tracker.sender_id, event) for event in self._additional_events(session, tracker)]
        if rows:
            session.execute(sa.insert(self.SQLEvent.__table__), rows)
        session.commit()
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


# --- 5. the graph to run for a set of targets, worked out once ------------------------------------------
def run_graph(self: DaskGraphRunner, inputs: dict[str, Any] | None = None, targets: list[str] | None = None) -> dict:
    """Rasa's `DaskGraphRunner.run`, building the dask graph of each target list once.

    Why: Rasa re-derives the minimal schema (a recursive walk with repeated subtrees and list lookups)
    and rebuilds the dask graph on every run, three runs a message; the schema never changes.
    """
    run_targets = list(targets) if targets else self._graph_schema.target_names
    graphs = self.__dict__.setdefault("_clinic_graphs", {})
    template = graphs.get(tuple(run_targets))
    if template is None:
        template = graphs[tuple(run_targets)] = self._build_dask_graph(
            self._graph_schema.minimal_graph_schema(run_targets))
    graph = dict(template)
    if inputs:
        self._add_inputs_to_graph(inputs, graph)
    try:
        return dict(dask.get(graph, run_targets))
    except RuntimeError as error:
        raise GraphRunError("Error running runner.") from error


# --- 6. the sentence embeddings of concurrent messages in one forward pass -------------------------------
@functools.cache
def encoder_batcher() -> EncoderBatcher:
    """The process's batcher over its one sentence encoder."""
    return EncoderBatcher(sentence_encoder())


async def parse_message(self: MessageProcessor, message: Any, tracker: Any = None,
                        only_output_properties: bool = True) -> dict[str, Any]:
    """Rasa's `parse_message`, with the message's sentence embedding prepared in a batch
    (bot/encoder_batching.py) before the NLU graph runs; the graph then finds it ready."""
    if self.http_interpreter or not isinstance(message.text, str):
        return await _originals["parse_message"](self, message, tracker, only_output_properties)
    async with encoder_batcher().prepared(message.text[:MAX_CHARS]):
        return await _originals["parse_message"](self, message, tracker, only_output_properties)


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
        run_graph=DaskGraphRunner.run,
        parse_message=MessageProcessor.parse_message,
    )
    RemoteAction._validate_action_result = validate_action_result
    MessageProcessor.handle_message = handle_message
    SQLTrackerStore.retrieve = retrieve
    SQLTrackerStore._additional_events = additional_events
    SQLTrackerStore.save = save
    Event.resolve_by_type = staticmethod(resolve_by_type)
    DaskGraphRunner.run = run_graph
    MessageProcessor.parse_message = parse_message
    threadpool_limits(limits=1, user_api="blas")
    _state["applied"] = True
    logger.info("Reply-path patches applied (bot/rasa_patches.py): recent window of %d turns.", recent_turns)


def is_applied() -> bool:
    return bool(_state["applied"])
