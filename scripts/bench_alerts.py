"""Time from a patient's red-flag message to the alert e-mail (and SMS), with 20 conversations at once.

The real bot (action server + Rasa server, SQLite tracker store as on a fresh machine) and the alert worker
as `make run` starts it (`python -m bot.alerts worker`), delivering to a real local SMTP server (aiosmtpd)
and to a stand-in for Twilio's REST API. Two phases, one worker each:
  - RabbitMQ: Rasa's event broker publishes to a RabbitMQ node of the bench's own; the worker consumes it;
  - events table (the embedded default, no RabbitMQ): the worker reads the tracker store's events table by
    id every ALERT_POLL_S (1 s).
A first phase without alerts (no broker, no worker) gives the seek-care reply times to compare with.
Each phase: CONVERSATIONS patients at once, each sending questions and red flags in turn (waiting for each
reply, as a person does), ESCALATIONS_PER_CONVERSATION red flags each. Latency = e-mail arrival at the
SMTP server - the moment the patient's message was sent. Also: the seek-care reply time of those red flags
(REST), that every escalation gave exactly one e-mail, and what one poll of the events table costs as the
table grows.

Prints numbers; asserts nothing. `make bench` runs it; alone:
  .venv/bin/python scripts/bench_alerts.py [--conversations 20] [--per-conversation 3]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchstats import percentile  # noqa: E402

from bot.devtools.alert_sinks import FakeTwilio, SmtpSink  # noqa: E402
from bot.devtools.alert_worker import AlertWorkerProcess, PrivateRabbitMQ  # noqa: E402
from bot.devtools.stack import BotStack  # noqa: E402

RED_FLAGS = [
    "since the shot i cant feel my groin and i peed myself, can i take a shower?",
    "my leg has been getting weaker since the injection and now i cant lift my foot",
    "i have a fever of 102 and the injection site is red and swollen",
    "worst headache of my life since the neck shot, it gets worse when i stand up",
]
QUESTIONS = ["can i drive home after the injection", "do i stop aspirin before the shot", "will it hurt"]
REVIEW = "https://review.bench.example"


def conversation(stack: BotStack, sender: str, red_flags: int, sent: list, seek_care: list, lock: threading.Lock) -> None:
    for index in range(red_flags):
        stack.send(sender, QUESTIONS[index % len(QUESTIONS)])
        text = RED_FLAGS[(index + hash(sender)) % len(RED_FLAGS)]
        began = time.time()
        reply = stack.send(sender, text)
        took = time.time() - began
        with lock:
            sent.append((sender, index, began))
            if any((m.get("custom") or {}).get("kind") == "seek_care" for m in reply):
                seek_care.append(took)


def refs(tracker_db: Path) -> dict[int, str]:
    with sqlite3.connect(tracker_db) as db:
        return {ref: sender for sender, ref in db.execute("SELECT sender_id, MIN(id) FROM events GROUP BY sender_id")}


def run_phase(name: str, stack: BotStack, tracker_db: Path, worker_env: dict | None, smtp: SmtpSink,
              twilio: FakeTwilio, conversations: int, per_conversation: int, workdir: Path) -> None:
    """One load phase; without `worker_env` (alerts off: no broker, no worker) only the seek-care times."""
    worker = AlertWorkerProcess(worker_env, log=workdir / f"worker-{name}.log").start() if worker_env else None
    before_mail, before_sms = len(smtp.received()), len(twilio.received())
    sent: list = []
    seek_care: list[float] = []
    lock = threading.Lock()
    senders = [f"bench-alert-{uuid.uuid4().hex[:10]}" for _ in range(conversations)]
    threads = [threading.Thread(target=conversation, args=(stack, sender, per_conversation, sent, seek_care, lock))
               for sender in senders]
    began = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    duration = time.time() - began
    if worker is None:
        print(f"-- {name}: {len(sent)} red flags from {conversations} conversations at once ({duration:.0f} s)")
        print(f"   seek-care reply (REST) to those red flags   p50 {statistics.median(seek_care) * 1000:.0f} ms   "
              f"p95 {percentile(seek_care, 0.95) * 1000:.0f} ms")
        return
    deadline = time.time() + 90
    while time.time() < deadline and len(smtp.received()) - before_mail < len(sent):
        time.sleep(0.2)
    time.sleep(3)  # room for any duplicate to arrive
    worker.stop()
    by_ref = refs(tracker_db)
    mails: dict[str, list[float]] = {}
    for mail in smtp.received()[before_mail:]:
        link = next((line for line in mail.body.splitlines() if line.startswith("Transcript: ")), "")
        sender = by_ref.get(int(link.rsplit("/", 1)[-1])) if link.rsplit("/", 1)[-1].isdigit() else None
        mails.setdefault(sender or "?", []).append(mail.at)
    sms = twilio.received()[before_sms:]
    latencies, missing, extra = [], 0, 0
    for sender in senders:
        times = sorted(began_at for who, _, began_at in sent if who == sender)
        arrived = sorted(mails.get(sender, []))
        missing += max(0, len(times) - len(arrived))
        extra += max(0, len(arrived) - len(times))
        latencies += [arrival - sent_at for sent_at, arrival in zip(times, arrived, strict=False)]
    print(f"-- {name}: {len(sent)} escalations from {conversations} conversations at once "
          f"({per_conversation} red flags + {per_conversation} questions each, {duration:.0f} s)")
    if latencies:
        print(f"   message -> alert e-mail   p50 {statistics.median(latencies):.2f} s   p95 "
              f"{percentile(latencies, 0.95):.2f} s   max {max(latencies):.2f} s   (n={len(latencies)})")
    print(f"   e-mails: {len(latencies)} matched, {missing} missing, {extra} extra; SMS to the on-call phone: {len(sms)}")
    if seek_care:
        print(f"   seek-care reply (REST) to those red flags   p50 {statistics.median(seek_care) * 1000:.0f} ms   "
              f"p95 {percentile(seek_care, 0.95) * 1000:.0f} ms")


def poll_cost(rows: int, workdir: Path) -> None:
    """One events-table read of the embedded default as the table grows (SQLite, synthetic user events)."""
    from bot.alerts.store import AlertStore
    from bot.alerts.worker import EventsTableReader

    path = workdir / f"poll-{rows}.db"
    payload = {"event": "user", "text": "can i drive home", "input_channel": "rest", "message_id": "x",
               "parse_data": {"intent": {"name": "ask_driving", "confidence": 0.9}, "entities": [],
                              "intent_ranking": [{"name": f"intent_{n}", "confidence": 0.01} for n in range(10)]}}
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, sender_id VARCHAR(255), "
                   "type_name VARCHAR(255), timestamp FLOAT, intent_name VARCHAR(255), action_name VARCHAR(255), data TEXT)")
        data = json.dumps(payload)
        db.executemany("INSERT INTO events (sender_id, type_name, timestamp, data) VALUES (?, 'user', 0, ?)",
                       ((f"s{n % 5000}", data) for n in range(rows)))
    reader = EventsTableReader(f"sqlite:///{path}", AlertStore(f"sqlite:///{workdir / f'poll-{rows}-alerts.db'}"))
    reader.store.set_cursor("tracker_events", rows - 100)  # 100 new events since the last read
    times = []
    for _ in range(20):
        began = time.perf_counter()
        reader.read()
        times.append((time.perf_counter() - began) * 1000)
    print(f"   events table of {rows:>9,} rows: one read of the new events {statistics.median(times):.1f} ms (p50 of 20)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--per-conversation", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    tracker_db = workdir / "tracker.db"
    rabbitmq = PrivateRabbitMQ().start() if PrivateRabbitMQ.available() else None
    try:
        with SmtpSink() as smtp, FakeTwilio() as twilio:
            with BotStack(env={"VAR_DIR": str(workdir), "TRACKER_DB_URL": f"sqlite:///{workdir / 'off.db'}",
                               "RABBITMQ_URL": ""}) as stack:
                stack.send("bench-warm-up", QUESTIONS[0])
                run_phase("alerts off (no broker, no worker): the comparison", stack, workdir / "off.db", None, smtp,
                          twilio, args.conversations, args.per_conversation, workdir)
            settings = {"VAR_DIR": str(workdir), "TRACKER_DB_URL": f"sqlite:///{tracker_db}",
                        "ALERT_SMTP_URL": smtp.url, "ALERT_ON_CALL_PHONE": "+15550100199",
                        "REVIEW_PUBLIC_URL": REVIEW, **twilio.env()}
            stack_env = {**settings, "RABBITMQ_URL": rabbitmq.url if rabbitmq else ""}
            with BotStack(env=stack_env) as stack:
                stack.send("bench-warm-up", QUESTIONS[0])
                if rabbitmq:
                    run_phase("RabbitMQ (event broker -> worker)", stack, tracker_db,
                              {**settings, "RABBITMQ_URL": rabbitmq.url, "ALERTS_DB_URL": f"sqlite:///{workdir / 'a.db'}"},
                              smtp, twilio, args.conversations, args.per_conversation, workdir)
                else:
                    print("-- RabbitMQ: skipped (rabbitmq-server not installed)")
                run_phase("events table (embedded default, no RabbitMQ, ALERT_POLL_S=1)", stack, tracker_db,
                          {**settings, "RABBITMQ_URL": "", "ALERTS_DB_URL": f"sqlite:///{workdir / 'b.db'}"},
                          smtp, twilio, args.conversations, args.per_conversation, workdir)
    finally:
        if rabbitmq:
            rabbitmq.close()
    print("-- cost of one poll of the embedded default (index range scan by id, new rows only)")
    for rows in (10_000, 200_000):
        poll_cost(rows, workdir)


if __name__ == "__main__":
    main()
