"""How long the follow-up queue and the learning list take on a large tracker store.

    .venv/bin/python scripts/bench_followup.py [--conversations 10000] [--url postgresql://.../db]

Fills a fresh `events` table (Rasa's own schema, SQLTrackerStore) with N conversations of 4 patient turns
each (5% escalated, 2% symptom check-ins, 10% ending on a declined message), then times the queue (every
queued conversation with its state: what the landing page and the open count compute) and one page of
messages to label. Prints the median of 5 runs. SQLite in a temporary folder unless --url is given
(the database must exist and be empty; its `events` table is dropped afterwards).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import timezone
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def fill(url: str, conversations: int, seed: int = 7) -> int:
    from rasa.core.tracker_store import SQLTrackerStore

    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        store = SQLTrackerStore(dialect="sqlite", db=parsed.database)
    else:
        store = SQLTrackerStore(dialect="postgresql", host=parsed.host, port=parsed.port, db=parsed.database,
                                username=parsed.username, password=parsed.password)
    rng = random.Random(seed)
    now = time.time()
    rows = []

    def add(sender, kind, at, data, intent=None, action=None):
        rows.append({"sender_id": sender, "type_name": kind, "timestamp": at, "intent_name": intent,
                     "action_name": action, "data": json.dumps({"event": kind, "timestamp": at, **data})})

    for number in range(conversations):
        sender = f"bench-{number:06d}"
        at = now - rng.uniform(0, 60 * 86400)
        roll = rng.random()
        for turn in range(4):
            last = turn == 3
            intent = "ask_driving"
            if last and roll < 0.10:
                intent = "out_of_scope"
            elif last and roll < 0.12:
                intent = "check_symptom"
            elif last and roll < 0.17:
                intent = "report_urgent_symptom"
            parse = {"intent": {"name": intent, "confidence": rng.uniform(0.3, 1.0)}}
            add(sender, "user", at, {"text": f"question {turn} of {number}", "parse_data": parse,
                                     "input_channel": rng.choice(["rest", "socketio", "sms"])}, intent=intent)
            if intent == "report_urgent_symptom":
                add(sender, "slot", at, {"name": "triage_level", "value": rng.choice(["urgent", "emergency"])},
                    action="triage_level")
            add(sender, "bot", at + 1, {"text": "An answer from the leaflet.", "data": {}})
            at += 30
    with store.engine.begin() as connection:
        connection.execute(store.SQLEvent.__table__.insert(), rows)
    store.engine.dispose()
    return len(rows)


def median_s(function, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--url", help="an empty PostgreSQL database (default: SQLite in a temporary folder)")
    args = parser.parse_args()

    from bot.review import followup, labels
    from bot.review.db import review_engine, tracker_engine
    from bot.review.store import ConversationStore

    with tempfile.TemporaryDirectory() as folder:
        url = args.url or f"sqlite:///{folder}/tracker.db"
        events = fill(url, args.conversations)
        store = ConversationStore(tracker_engine(url), timezone.utc)
        review_db = review_engine(f"sqlite:///{folder}/review.db")
        items = followup.queue_items(store, review_db)
        queue_s = median_s(lambda: followup.queue_items(store, review_db))
        page_s = median_s(lambda: followup.read_queue(store, review_db, followup.QueueFilters(), 1, 50))
        learning_s = median_s(lambda: labels.list_messages(store, review_db))
        print(f"follow-up queue on {store.dialect}: {args.conversations:,} conversations, {events:,} events, "
              f"{len(items):,} queued")
        print(f"  queue (all items + state; the open count)  {queue_s * 1000:8.0f} ms  (median of 5)")
        print(f"  queue page (50 rows, filters, alerts)      {page_s * 1000:8.0f} ms")
        print(f"  learning page (newest 2,000 unanswered)    {learning_s * 1000:8.0f} ms")
        store.engine.dispose()
        review_db.dispose()
        if args.url:
            engine = sa.create_engine(args.url)
            with engine.begin() as connection:
                connection.execute(sa.text("DROP TABLE events"))
            engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
