"""Benchmark the staff review app on a big throwaway tracker store.

Fills a fresh `events` table (created by rasa's SQLTrackerStore, so the schema and indexes are the
bot's) with synthetic conversations (default 10,000, ~100k events) and times the list, filtered list,
transcript and dashboard pages through the Flask test client (signed in, CSRF on, access log on).

    .venv/bin/python scripts/bench_review.py [--conversations 10000] [--requests 30] [--postgres]

Synthetic rows are fine here: this measures the SQL, not the bot. Nothing outside a temp dir (or a
throwaway PostgreSQL database, dropped afterwards) is touched.
"""

from __future__ import annotations

import argparse
import asyncio  # noqa: F401  (rasa import side effects expect it)
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
warnings.filterwarnings("ignore", category=DeprecationWarning)

import sqlalchemy as sa  # noqa: E402

TOPICS = ["what_is", "driving", "stop_medicines", "allergies", "pregnancy", "sedation", "recovery", "bandages", "risks"]
QUESTIONS = ["can i drive home after", "do i stop aspirin", "what is a nerve root injection", "will it hurt",
             "how long is recovery", "can i shower after", "am i asleep during it", "what are the risks"]
UNANSWERED = ["what's the weather on mars", "whats the weather on mars?", "can you book me a taxi",
              "how much does parking cost", "asdf qwer", "do you take my insurance"]


def event_rows(n_conversations: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    now = time.time()
    rows: list[dict] = []

    def add(sender: str, type_name: str, t: float, data: dict, intent: str | None = None, action: str | None = None):
        rows.append({"sender_id": sender, "type_name": type_name, "timestamp": t, "intent_name": intent,
                     "action_name": action, "data": json.dumps({"event": type_name, "timestamp": t, **data})})

    for index in range(n_conversations):
        channel = rng.choices(["socketio", "sms", "rest"], weights=[6, 3, 1])[0]
        sender = f"+1555{index:07d}" if channel == "sms" else uuid.UUID(int=rng.getrandbits(128)).hex
        t = now - rng.uniform(0, 90 * 86400)
        add(sender, "action", t, {"name": "action_session_start"}, action="action_session_start")
        add(sender, "session_started", t, {})
        for _ in range(rng.choice([1, 2, 2, 3])):
            t += rng.uniform(5, 90)
            roll = rng.random()
            if roll < 0.03:
                level = rng.choice(["emergency", "urgent"])
                text, intent, topic = "my leg gave out and i cant feel my groin", "report_urgent_symptom", None
            elif roll < 0.15:
                level, text, intent, topic = None, rng.choice(UNANSWERED), rng.choice(["nlu_fallback", "out_of_scope"]), None
            else:
                level, text, intent, topic = None, rng.choice(QUESTIONS), "ask_topic", rng.choice(TOPICS)
            intent_data = {"name": intent, "confidence": round(rng.uniform(0.3, 1.0), 3)}
            add(sender, "user", t, {"text": text, "parse_data": {"intent": intent_data, "entities": [], "text": text},
                                    "input_channel": channel, "message_id": uuid.uuid4().hex, "metadata": {}},
                intent=intent)
            if level:
                add(sender, "slot", t, {"name": "triage_level", "value": level}, action="triage_level")
            action = "action_answer_topic" if topic else "utter_default"
            add(sender, "action", t + 0.5, {"name": action}, action=action)
            add(sender, "bot", t + 0.6, {"text": "An answer from the clinic's leaflet.", "data": {}, "metadata": {}})
            if topic:
                add(sender, "slot", t + 0.6, {"name": "last_topic", "value": topic}, action="last_topic")
            add(sender, "action", t + 0.7, {"name": "action_listen"}, action="action_listen")
    return rows


def create_store(url: str) -> sa.Table:
    from rasa.core.tracker_store import SQLTrackerStore

    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        store = SQLTrackerStore(dialect="sqlite", db=parsed.database)
    else:
        store = SQLTrackerStore(dialect="postgresql", host=parsed.host, port=parsed.port, db=parsed.database,
                                username=parsed.username, password=parsed.password)
    store.engine.dispose()
    return store.SQLEvent.__table__


def fill(url: str, rows: list[dict]) -> None:
    table = create_store(url)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for start in range(0, len(rows), 5000):
            connection.execute(table.insert(), rows[start:start + 5000])
    engine.dispose()


def timed(client, path: str, n: int) -> dict:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    times.sort()
    p95 = times[min(len(times) - 1, max(0, round(0.95 * len(times)) - 1))]
    return {"median_ms": round(statistics.median(times), 1), "p95_ms": round(p95, 1), "n": n}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--postgres", action="store_true", help="use a throwaway PostgreSQL database (ensure_postgres.sh)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="review-bench-"))
    admin = database = None
    if args.postgres:
        server = subprocess.run(["bash", str(ROOT / "scripts" / "ensure_postgres.sh")], capture_output=True, text=True,
                                check=True).stdout.strip()
        database = f"review_bench_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
        tracker_url = str(sa.engine.make_url(server).set(database=database))
    else:
        tracker_url = f"sqlite:///{workdir / 'tracker.db'}"
    os.environ.update({"REVIEW_COOKIE_SECURE": "0", "REVIEW_SECRET_KEY": "bench-" + "k" * 40, "REVIEW_TIMEZONE": "UTC",
                       "VAR_DIR": str(workdir / "var")})
    try:
        start = time.perf_counter()
        rows = event_rows(args.conversations)
        fill(tracker_url, rows)
        print(f"store: {'PostgreSQL' if args.postgres else 'SQLite'}, {args.conversations:,} conversations, "
              f"{len(rows):,} events (filled in {time.perf_counter() - start:.1f} s)")

        from bot.review import auth
        from bot.review.app import create_app

        app = create_app(tracker_url, f"sqlite:///{workdir / 'review.db'}")
        password = "benchmark password 123"
        auth.create_user(app.extensions["review"].review_db, "bench", password)
        client = app.test_client()
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
        assert client.post("/login", data={"username": "bench", "password": password, "csrf_token": token}).status_code == 302

        store = app.extensions["review"].store
        page = store.list_conversations(store_filters(), 1, 50)
        assert page.total == args.conversations, page.total
        refs = [row.ref for row in store.list_conversations(store_filters(), 3, 50).rows]
        rng = random.Random(1)
        n = args.requests
        results = {
            "list page 1": timed(client, "/conversations", n),
            "list page 150": timed(client, "/conversations?page=150", n),
            "list escalated=any": timed(client, "/conversations?escalated=any", n),
            "list channel=sms + unanswered": timed(client, "/conversations?channel=sms&unanswered=1", n),
            "list search 'aspirin'": timed(client, "/conversations?q=aspirin", n),
            "transcript": None,
            "dashboard (30 days)": timed(client, "/dashboard", max(5, n // 3)),
        }
        transcript_times = []
        for _ in range(n):
            ref = rng.choice(refs)
            t0 = time.perf_counter()
            assert client.get(f"/conversations/{ref}").status_code == 200
            transcript_times.append((time.perf_counter() - t0) * 1000)
        transcript_times.sort()
        results["transcript"] = {"median_ms": round(statistics.median(transcript_times), 1),
                                 "p95_ms": round(transcript_times[max(0, round(0.95 * n) - 1)], 1), "n": n}
        width = max(len(k) for k in results)
        print(f"{'page':<{width}}  median ms   p95 ms   requests")
        for name, figures in results.items():
            print(f"{name:<{width}}  {figures['median_ms']:>9}  {figures['p95_ms']:>7}   {figures['n']:>8}")
        if args.json:
            print(json.dumps(results))
        app.extensions["review"].store.engine.dispose()
        app.extensions["review"].review_db.dispose()
    finally:
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            admin.dispose()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def store_filters():
    from bot.review.filters import Filters

    return Filters()


if __name__ == "__main__":
    sys.exit(main())
