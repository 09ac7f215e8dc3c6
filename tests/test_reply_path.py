"""The per-message cost patches (bot/rasa_patches.py) keep Rasa's behaviour.

Unit tier: action results are accepted and rejected exactly as `jsonschema.validate` does; the recent
tracker loaded from a real SQLite tracker store has the same slots, latest message, policy states and
channel as the whole session, saves exactly the new events, and falls back to the whole session when
older events could matter. Stack tier: a 60-turn conversation over REST keeps answering as it did
early on, escalates a red flag, keeps every message in the tracker, and the action server receives a
bounded number of events (through a recording relay in front of the real action server).
Timing belongs in `make bench` (scripts/bench_reply_path.py), not here.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonschema
import pytest

from tests.test_storage import postgres_db  # noqa: F401 - the fixture: a fresh PostgreSQL database

ROOT = Path(__file__).resolve().parents[1]


# --- 1. action-result validation ----------------------------------------------------------------------
ACTION_RESULTS = {
    "empty": {},
    "valid": {"events": [{"event": "slot", "name": "last_topic", "value": "driving", "timestamp": None}],
              "responses": [{"text": "hello"}, {"response": "utter_fallback"}]},
    "bot event": {"events": [{"event": "bot", "text": "hi", "data": {}, "metadata": {}}], "responses": []},
    "events not a list": {"events": {"event": "slot"}, "responses": []},
    "unknown event": {"events": [{"event": "teleport", "name": "x"}]},
    "slot without name": {"events": [{"event": "slot", "value": 1}]},
    "bad timestamp": {"events": [{"event": "slot", "name": "a", "value": 1, "timestamp": "noon"}]},
    "responses not objects": {"events": [], "responses": ["hello"]},
    "event not an object": {"events": ["slot"]},
}


@pytest.fixture(scope="module")
def remote_action():
    from rasa.core.actions.action import RemoteAction

    return RemoteAction("action_answer_topic", None)


@pytest.mark.parametrize("name", list(ACTION_RESULTS))
def test_action_results_are_validated_as_jsonschema_validate_does(remote_action, name):
    from bot.rasa_patches import validate_action_result

    result = ACTION_RESULTS[name]
    try:
        jsonschema.validate(result, remote_action.action_response_format_spec())
        expected = None
    except jsonschema.ValidationError as error:
        expected = error.message
    if expected is None:
        assert validate_action_result(remote_action, json.loads(json.dumps(result))) is True
    else:
        with pytest.raises(jsonschema.ValidationError) as raised:
            validate_action_result(remote_action, json.loads(json.dumps(result)))
        assert raised.value.message.startswith(expected + ". Failed to validate Action server response")


def test_some_action_results_are_invalid():
    """The table above must exercise rejection, or the comparison proves nothing."""
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    rejected = [name for name, result in ACTION_RESULTS.items()
                if not jsonschema.Draft202012Validator(schema).is_valid(result)]
    assert len(rejected) >= 5, rejected


# --- 2. the recent tracker -----------------------------------------------------------------------------
RECENT_TURNS = 5


@pytest.fixture(scope="module")
def rasa_domain():
    from rasa.shared.core.domain import Domain

    return Domain.load(str(ROOT / "domain.yml"))


@pytest.fixture()
def store(tmp_path, monkeypatch, rasa_domain):
    monkeypatch.setenv("TRACKER_DB_URL", f"sqlite:///{tmp_path / 'tracker.db'}")
    from bot.storage import ClinicTrackerStore

    return ClinicTrackerStore(domain=rasa_domain, recent_turns=RECENT_TURNS)


def session_start() -> list:
    from rasa.shared.core.events import ActionExecuted, SessionStarted

    return [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")]


def turn(number: int, intent: str = "ask_driving", slots: dict | None = None, channel: str = "rest") -> list:
    """One patient turn as Rasa stores it: message, slots, the answer, listening again."""
    from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered

    text = f"question number {number}"
    parse = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": [],
             "intent_ranking": [{"name": intent, "confidence": 0.9}]}
    events = [UserUttered(text, parse["intent"], [], parse, input_channel=channel)]
    events += [SlotSet(name, value) for name, value in (slots or {}).items()]
    events += [ActionExecuted("action_answer_topic"), BotUttered(f"answer {number}"),
               SlotSet("last_topic", f"topic_{number % 3}"), ActionExecuted("action_listen")]
    return events


def conversation(turns: int, special: dict[int, Callable[[], list]] | None = None) -> list:
    """Turns with slots set early on (procedure, a red flag) that the recent window no longer contains.

    `special` adds events made at that turn (made then: stored events are ordered by time within a session).
    """
    events = session_start()
    for number in range(turns):
        slots = {0: {"procedure": "cervical", "language": "en"}, 2: {"triage_level": "emergency"},
                 4: {"symptoms": ["weakness"]}}.get(number)
        events += (special or {}).get(number, list)() + turn(number, slots=slots, channel="socketio" if number % 2 else "rest")
    return events


def save(store, sender: str, events: list):
    from rasa.shared.core.trackers import DialogueStateTracker

    tracker = DialogueStateTracker.from_events(sender, events, store.domain.slots)
    asyncio.run(store.save(tracker))
    return tracker


def load(store, sender: str, recent: bool):
    from bot.rasa_patches import handling

    if not recent:
        return asyncio.run(store.retrieve(sender))
    with handling(sender):
        return asyncio.run(store.retrieve(sender))


def state(tracker) -> dict:
    from rasa.shared.core.trackers import EventVerbosity

    current = tracker.current_state(EventVerbosity.NONE)
    current.pop("events", None)
    return current


def test_the_recent_tracker_has_the_whole_sessions_state(store, rasa_domain):
    check_recent_matches_whole(store, rasa_domain)


@pytest.mark.postgres
def test_the_recent_tracker_on_postgresql(postgres_db, monkeypatch, rasa_domain):  # noqa: F811 - the fixture
    monkeypatch.setenv("TRACKER_DB_URL", postgres_db)
    from bot.storage import ClinicTrackerStore

    pg_store = ClinicTrackerStore(domain=rasa_domain, recent_turns=RECENT_TURNS)
    assert pg_store.engine.dialect.name == "postgresql"
    check_recent_matches_whole(pg_store, rasa_domain)
    pg_store.engine.dispose()


def check_recent_matches_whole(store, rasa_domain) -> None:
    sender = "long-one"
    save(store, sender, conversation(30))
    whole, recent = load(store, sender, recent=False), load(store, sender, recent=True)
    assert len(whole.events) > 150
    user_turns = sum(1 for e in recent.events if e.type_name == "user")
    assert user_turns == RECENT_TURNS and len(recent.events) < 50
    assert recent.current_slot_values() == whole.current_slot_values()
    assert recent.current_slot_values()["triage_level"] == "emergency"  # set at turn 3, long before the window
    assert state(recent) == state(whole)
    assert recent.get_latest_input_channel() == whole.get_latest_input_channel() == "socketio"
    # What the policies see (MemoizationPolicy: 4 states; rules are shorter than the window).
    assert recent.past_states(rasa_domain)[-2 * RECENT_TURNS:] == whole.past_states(rasa_domain)[-2 * RECENT_TURNS:]
    # Every event in it is a stored one, in the stored order.
    stored = [e.as_dict() for e in whole.events]
    positions = [stored.index(e.as_dict()) for e in recent.events]
    assert positions == sorted(positions)


def test_saving_a_recent_tracker_appends_exactly_the_new_events(store):
    sender = "saves"
    save(store, sender, conversation(12))
    before = [e.as_dict() for e in load(store, sender, recent=False).events]
    recent = load(store, sender, recent=True)
    new = turn(99, intent="ask_risks")
    for event in new:
        recent.update(event)
    asyncio.run(store.save(recent))
    asyncio.run(store.save(recent))  # saving again adds nothing
    after = [e.as_dict() for e in load(store, sender, recent=False).events]
    assert after == before + [e.as_dict() for e in new]


def test_whole_session_when_older_events_could_matter(store):
    from rasa.shared.core.events import ActiveLoop, AllSlotsReset, ConversationPaused, ConversationResumed

    cases = {
        "short": conversation(RECENT_TURNS - 1),
        "slots reset": conversation(12, {3: lambda: [AllSlotsReset()]}),
        "paused": conversation(12, {3: lambda: [ConversationPaused(), ConversationResumed()]}),
        "loop": conversation(12, {3: lambda: [ActiveLoop("some_form"), ActiveLoop(None)]}),
    }
    for sender, events in cases.items():
        save(store, sender, events)
        whole, recent = load(store, sender, recent=False), load(store, sender, recent=True)
        assert [e.as_dict() for e in recent.events] == [e.as_dict() for e in whole.events], sender
        assert recent.current_slot_values() == whole.current_slot_values(), sender


def test_the_recent_window_starts_at_the_latest_session(store):
    """A new session (after expiry) starts over: its slots are not carried from the old one."""
    sender = "two-sessions"
    events = conversation(10) + session_start()
    for number in range(10, 20):
        events += turn(number)
    save(store, sender, events)
    whole, recent = load(store, sender, recent=False), load(store, sender, recent=True)
    assert recent.current_slot_values() == whole.current_slot_values()
    assert whole.current_slot_values()["triage_level"] is None
    assert state(recent) == state(whole)


# --- 3. a long conversation through the real bot --------------------------------------------------------
CYCLE = [
    "what happens during the procedure",
    "what about the neck one?",
    "will it hurt",
    "same for the other one?",
    "how do i lie on the table",
    "tell me more about that",
    "what do they inject",
    "can i shower after",
]


class RecordingRelay:
    """Forwards action calls to the real action server, noting how many events each call carried."""

    def __init__(self, port: int) -> None:
        self.target = ""
        self.event_counts: list[int] = []
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                relay.event_counts.append(len(json.loads(body)["tracker"]["events"]))
                request = urllib.request.Request(relay.target + self.path, data=body, method="POST",
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=30) as reply:
                    status, answer = reply.status, reply.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.stack
def test_a_long_conversation_answers_as_early_on_and_sends_few_events(tmp_path):
    from bot.devtools.stack import BotStack, free_port
    from bot.rasa_patches import DEFAULT_RECENT_TURNS
    from bot.settings import clinic_settings

    stack = BotStack(env={"TRACKER_DB_URL": f"sqlite:///{tmp_path / 'tracker.db'}"}, with_actions=False)
    relay = RecordingRelay(stack.action_port)  # endpoints.yml points Rasa at the relay
    try:
        stack.start()
        stack.action_port = free_port()
        stack.start_actions()
        relay.target = stack.action_url
        sender = f"long-{uuid.uuid4().hex[:10]}"
        turns = 3 * DEFAULT_RECENT_TURNS
        replies = [stack.send(sender, CYCLE[i % len(CYCLE)]) for i in range(turns)]
        red_flag = stack.ask(sender, "since the shot I can't feel my legs and I can't control my bladder")
        tracker = stack.tracker(sender)
    finally:
        stack.stop()
        relay.close()

    texts = [[m.get("text") for m in reply] for reply in replies]
    assert all(texts), "every turn gets an answer"
    cycles = [texts[i:i + len(CYCLE)] for i in range(len(CYCLE), turns - len(CYCLE) + 1, len(CYCLE))]
    # The second cycle (whole session loaded) and every later one (recent window) answer alike.
    assert len(cycles) >= 5 and all(cycle == cycles[0] for cycle in cycles), "answers changed with length"
    assert clinic_settings().emergency_number in red_flag
    assert tracker["slots"]["triage_level"] == "emergency"
    user_texts = [e["text"] for e in tracker["events"] if e["event"] == "user"]
    assert user_texts == [CYCLE[i % len(CYCLE)] for i in range(turns)] + [user_texts[-1]]
    # The action server's view stops growing once the window is full.
    counts = relay.event_counts
    assert len(counts) >= turns
    early, late = max(counts[: DEFAULT_RECENT_TURNS + 5]), max(counts[-DEFAULT_RECENT_TURNS:])
    assert late <= early + 20, (early, late)
    assert max(counts) < len(tracker["events"]) / 2


def test_saving_writes_the_rows_rasa_writes(store, tmp_path, rasa_domain):
    """One multi-row INSERT stores the same rows (every column, the same JSON) as Rasa's ORM save."""
    import sqlalchemy as sa
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.trackers import DialogueStateTracker

    from bot import rasa_patches

    events = conversation(4)
    save(store, "rows", events)
    stock = SQLTrackerStore(domain=rasa_domain, dialect="sqlite", db=str(tmp_path / "stock.db"))
    asyncio.run(rasa_patches._originals["save"](stock, DialogueStateTracker.from_events("rows", events,
                                                                                        rasa_domain.slots)))
    query = sa.text("SELECT sender_id, type_name, timestamp, intent_name, action_name, data FROM events ORDER BY id")

    def rows(engine) -> list:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(query)]

    assert len(rows(store.engine)) == len(events)
    assert rows(store.engine) == rows(stock.engine)
    assert any(row[3] == "ask_driving" for row in rows(store.engine))  # intent_name filled, as Rasa does
    stock.engine.dispose()


def test_the_graph_runs_as_rasa_runs_it(store):
    """Building each target list's dask graph once gives the same understanding and the same predictions."""
    from rasa.core.agent import Agent
    from rasa.core.channels.channel import UserMessage
    from rasa.engine.runner.dask import DaskGraphRunner
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from bot import rasa_patches

    agent = Agent.load(str(ROOT / "models" / "clinic.tar.gz"))
    runner, metadata = agent.processor.graph_runner, agent.processor.model_metadata
    rasa_run = rasa_patches._originals.get("run_graph", DaskGraphRunner.run)
    for text in ["can i drive home after my nerve block", "/restart", "", "my legs went numb and i can't pee",
                 "¿puedo comer antes?", "what about the neck one?"]:
        inputs = {"__message__": [UserMessage(text, sender_id="graph")],
                  "__tracker__": DialogueStateTracker.from_events("graph", [])}
        ours = rasa_patches.run_graph(runner, inputs, [metadata.nlu_target])[metadata.nlu_target]
        theirs = rasa_run(runner, inputs, [metadata.nlu_target])[metadata.nlu_target]
        assert [m.as_dict(only_output_properties=True) for m in ours] == \
               [m.as_dict(only_output_properties=True) for m in theirs], text
    parse = agent.processor._parse_message_with_graph(UserMessage("can i drive home after"),
                                                      DialogueStateTracker.from_events("graph", []))
    tracker = DialogueStateTracker.from_events("graph", [ActionExecuted("action_listen"),
                                                         UserUttered(parse["text"], parse["intent"], [], parse)],
                                               agent.domain.slots)
    ours = rasa_patches.run_graph(runner, {"__tracker__": tracker}, [metadata.core_target])[metadata.core_target]
    theirs = rasa_run(runner, {"__tracker__": tracker}, [metadata.core_target])[metadata.core_target]
    assert (ours.policy_name, ours.probabilities) == (theirs.policy_name, theirs.probabilities)
    assert agent.domain.action_names_or_texts[ours.max_confidence_index] != "action_listen"
