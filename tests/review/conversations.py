"""The scripted patient conversations every review test reads, and the two ways to store them.

- `fill_with_real_bot(url)`: each message goes through the real bot (bot/devtools/stack.py: Rasa
  server + action server with TRACKER_DB_URL=url), over REST, the website's socket.io channel and
  the signed Twilio SMS webhook, so the `events` rows are exactly what production writes.
- `fill_in_code(url)`: the same conversations as Rasa events (UserUttered, SlotSet, BotUttered, ...)
  saved through rasa's own SQLTrackerStore, with the intents/slots the bot is expected to produce.
  Used when there is no trained model (models/clinic.tar.gz from `make model`).

`tests/review/conftest.py` picks one (FILL); each test then gets a fresh database holding a copy of
those rows, with every conversation moved back `days_ago` whole days (column and JSON timestamps).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "clinic.tar.gz"


@dataclass
class Message:
    text: str
    # what the bot is expected to make of it (used by fill_in_code only)
    intent: str
    confidence: float = 0.95
    topic: str | None = None
    triage: str | None = None
    symptoms: list[str] = field(default_factory=list)
    reply: str = "Here is what the clinic's leaflet says."


@dataclass
class Conversation:
    key: str
    sender_id: str
    channel: str  # input channel: rest | socketio | sms
    days_ago: int
    messages: list[Message]


SCRIPT_TAG = "<script>alert('xss')</script>"
TYPED_PHONE = "555-123-9876"  # typed inside a message: masked wherever conversation ids are
TYPED_EMAIL = "jane.roe@example.org"

CONVERSATIONS = [
    Conversation("sms_emergency", "+15551234567", "sms", 2, [
        Message("hi", "greet", 0.99, reply="Hello! I can answer questions about your injection."),
        Message("what is a nerve root injection?", "ask_what_is", 0.97, topic="what_is"),
        Message("my leg gave out and i cant feel my groin", "report_urgent_symptom", 0.99, triage="emergency",
                symptoms=["leg weakness", "saddle numbness"],
                reply="This could be serious. Call 911 now or go to the nearest emergency room."),
    ]),
    Conversation("web_urgent_xss", "0c6f1e7a9b2d4e3f8a5b6c7d8e9f0a1b", "socketio", 1, [
        Message("can i drive home after the injection?", "ask_driving", 0.96, topic="driving"),
        Message(f"{SCRIPT_TAG} the injection site is red, hot and I have a fever", "report_urgent_symptom", 0.98,
                triage="urgent", symptoms=["fever", "redness"],
                reply="Please call the clinic today at (555) 010-0142 about fever or redness."),
    ]),
    Conversation("rest_unanswered", "qa-tester-7", "rest", 0, [
        Message("what's the weather like on mars", "out_of_scope", 0.88,
                reply="Sorry, I can only answer questions about your injection."),
        Message("what is the weather like on mars?", "out_of_scope", 0.86,
                reply="Sorry, I can only answer questions about your injection."),
        Message("=HYPERLINK(\"http://evil.example\",\"click\")", "nlu_fallback", 0.21,
                reply="Sorry, I didn't understand. You can call the clinic."),
        Message("do i need to stop taking aspirin before?", "ask_stop_medicines", 0.94, topic="stop_medicines"),
        Message(f"please call me back on {TYPED_PHONE} or write to {TYPED_EMAIL}", "human_handoff", 0.9,
                reply="Please call the clinic at (555) 010-0142."),
    ]),
    Conversation("sms_old", "+447700900123", "sms", 45, [
        Message("hello", "greet", 0.98, reply="Hello! I can answer questions about your injection."),
        Message("thanks", "thanks", 0.97, reply="You're welcome."),
    ]),
]


def by_key(key: str) -> Conversation:
    return next(c for c in CONVERSATIONS if c.key == key)


# --- storing rows -------------------------------------------------------------------------------
def sql_tracker_store(url: str):
    """rasa's SQLTrackerStore on `url` (creates the `events` table exactly as the bot does)."""
    from rasa.core.tracker_store import SQLTrackerStore

    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return SQLTrackerStore(dialect="sqlite", db=parsed.database)
    return SQLTrackerStore(dialect="postgresql", host=parsed.host, port=parsed.port, db=parsed.database,
                           username=parsed.username, password=parsed.password)


def fill_in_code(url: str) -> None:
    from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    store = sql_tracker_store(url)
    now = time.time()
    for conversation in CONVERSATIONS:
        t = now - 60.0 * len(conversation.messages)
        events = [ActionExecuted("action_session_start", timestamp=t), SessionStarted(timestamp=t),
                  ActionExecuted("action_listen", timestamp=t)]
        for message in conversation.messages:
            t += 20.0
            intent = {"name": message.intent, "confidence": message.confidence}
            parse_data = {"intent": intent, "entities": [], "text": message.text,
                          "intent_ranking": [intent]}
            events.append(UserUttered(message.text, intent=intent, parse_data=parse_data,
                                      input_channel=conversation.channel, timestamp=t))
            if message.topic:  # rasa runs the custom slot mapping's action during slot extraction too
                events.append(SlotSet("last_topic", message.topic, timestamp=t))
            if message.triage:
                events.append(SlotSet("triage_level", message.triage, timestamp=t))
                events.append(SlotSet("symptoms", message.symptoms, timestamp=t))
            action = "action_answer_topic" if message.topic else f"utter_{message.intent}"
            events.append(ActionExecuted(action, timestamp=t + 1))
            data = {"custom": {"kind": "seek_care", "level": message.triage}} if message.triage else {}
            events.append(BotUttered(message.reply, data=data, timestamp=t + 1))
            if message.topic:
                events.append(SlotSet("last_topic", message.topic, timestamp=t + 1))
            events.append(ActionExecuted("action_listen", timestamp=t + 2))
        tracker = DialogueStateTracker.from_events(conversation.sender_id, events)
        asyncio.run(store.save(tracker))
    store.engine.dispose()


def fill_with_real_bot(url: str) -> None:
    """Send every scripted message through the real bot, on the conversation's channel."""
    from bot.devtools.stack import BotStack

    twilio_token = secrets.token_hex(16)
    with BotStack(env={"TRACKER_DB_URL": url, "TWILIO_AUTH_TOKEN": twilio_token}) as stack:
        for conversation in CONVERSATIONS:
            if conversation.channel == "rest":
                for message in conversation.messages:
                    stack.send(conversation.sender_id, message.text)
            elif conversation.channel == "sms":
                _send_sms(stack, twilio_token, conversation)
            else:
                conversation.sender_id = _send_socketio(stack, conversation)
        _wait_until_stored(stack)


def _wait_until_stored(stack, timeout_s: float = 60.0) -> None:
    """Every scripted message is in its tracker (replies can reach a client before the tracker is saved)."""
    deadline = time.monotonic() + timeout_s
    for conversation in CONVERSATIONS:
        while True:
            events = stack.tracker(conversation.sender_id).get("events", [])
            users = [e for e in events if e.get("event") == "user"]
            if len(users) >= len(conversation.messages) and events and events[-1].get("event") in ("action", "bot"):
                break
            assert time.monotonic() < deadline, f"{conversation.key}: {len(users)} of {len(conversation.messages)} stored"
            time.sleep(0.5)
    time.sleep(1.0)


def _send_sms(stack, auth_token: str, conversation: Conversation) -> None:
    import urllib.error
    import urllib.request
    from urllib.parse import urlencode

    from twilio.request_validator import RequestValidator

    url = f"{stack.url}/webhooks/sms/webhook"
    for message in conversation.messages:
        params = {"MessageSid": "SM" + secrets.token_hex(16), "AccountSid": "AC" + secrets.token_hex(16),
                  "From": conversation.sender_id, "To": "+15550100142", "Body": message.text, "NumMedia": "0"}
        signature = RequestValidator(auth_token).compute_signature(url, params)
        request = urllib.request.Request(url, data=urlencode(params).encode(), method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                assert reply.status == 200
        except urllib.error.HTTPError as error:  # e.g. 404: the SMS channel is not in credentials.yml
            raise AssertionError(f"SMS webhook {url} answered {error.code}; is bot.channels.sms.TwilioSmsInput "
                                 "listed in credentials.yml?") from error


def _send_socketio(stack, conversation: Conversation) -> str:
    import socketio

    async def talk() -> str:
        client = socketio.AsyncClient(reconnection=False)
        confirmed: asyncio.Future = asyncio.get_running_loop().create_future()
        replies: asyncio.Queue = asyncio.Queue()

        @client.on("session_confirm")
        async def on_confirm(data):
            if not confirmed.done():
                confirmed.set_result(data)

        @client.on("bot_uttered")
        async def on_bot(data):
            await replies.put(data)

        await client.connect(stack.url, transports=["polling"], socketio_path="/socket.io")
        try:
            await client.emit("session_request", {"session_id": None})
            sid = await asyncio.wait_for(confirmed, 30)
            sid = sid.get("session_id", sid) if isinstance(sid, dict) else sid
            for message in conversation.messages:
                await client.emit("user_uttered", {"message": message.text, "session_id": sid})
                await asyncio.wait_for(replies.get(), 30)
                await asyncio.sleep(0.3)
        finally:
            await client.disconnect()
        return str(sid)

    return asyncio.run(talk())


def read_rows(url: str) -> list[dict]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT sender_id, type_name, timestamp, intent_name, action_name, data FROM events ORDER BY id")).all()
    engine.dispose()
    return [dict(row._mapping) for row in rows]


def load_rows(url: str, rows: list[dict], shifts: dict[str, float]) -> None:
    """Create the `events` table the way rasa does and insert `rows`, moving senders back in time."""
    store = sql_tracker_store(url)
    table = store.SQLEvent.__table__
    copied = []
    for row in rows:
        shift = shifts.get(row["sender_id"], 0.0)
        data = json.loads(row["data"])
        if shift and data.get("timestamp") is not None:
            data["timestamp"] = data["timestamp"] - shift
        copied.append({**row, "timestamp": (row["timestamp"] - shift) if row["timestamp"] is not None else None,
                       "data": json.dumps(data)})
    with store.engine.begin() as connection:
        connection.execute(table.insert(), copied)
    store.engine.dispose()
