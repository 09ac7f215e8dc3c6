"""After a load run: the client's view (latency, throughput, errors) and the exactly-once check.

Exactly-once, read from the tracker store's own table (SQL, not through Rasa) for every conversation of the run:
- every patient message is in the tracker once, in the order it was sent (no loss, no duplicate, no reordering);
- every red-flag message was escalated: its turn recorded triage_level (slot set to emergency/urgent) and the
  patient's reply held a seek-care message;
- no duplicate replies: no bot message twice in one turn, no message twice in one HTTP reply;
- every message got a reply (HTTP 200, at least one message): an answer or the safe reply.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bot.channels.guard import safe_reply_text, seek_care_level
from bot.vocabulary import SLOT_TRIAGE_LEVEL, TRIAGE_LEVELS


def load_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def is_safe_reply(reply: Any) -> bool:
    safe = safe_reply_text()
    return isinstance(reply, list) and any(isinstance(m, dict) and m.get("text") == safe for m in reply)


def answered(record: dict) -> bool:
    return record["status"] == 200 and isinstance(record["reply"], list) and bool(record["reply"])


def client_summary(records: list[dict]) -> dict[str, Any]:
    """Throughput, latency percentiles (ms), errors, safe replies, as the patients saw them."""
    if not records:
        return {"messages": 0}
    latencies = [r["latency_s"] * 1000 for r in records]
    start = min(r["sent_at"] for r in records)
    end = max(r["sent_at"] + r["latency_s"] for r in records)
    red = [r for r in records if r["red_flag"]]
    return {
        "messages": len(records),
        "conversations": len({r["sender"] for r in records}),
        "duration_s": round(end - start, 1),
        "throughput_msg_s": round(len(records) / max(end - start, 1e-9), 1),
        "p50_ms": round(percentile(latencies, 50)), "p95_ms": round(percentile(latencies, 95)),
        "p99_ms": round(percentile(latencies, 99)), "mean_ms": round(statistics.fmean(latencies)),
        "errors": sum(not answered(r) for r in records),
        "safe_replies": sum(is_safe_reply(r["reply"]) for r in records),
        "red_flags": len(red),
        "red_flag_p95_ms": round(percentile([r["latency_s"] * 1000 for r in red], 95)) if red else None,
    }


def _tracker_events(tracker_db_url: str, senders: list[str]) -> dict[str, list[dict]]:
    import sqlalchemy as sa

    engine = sa.create_engine(tracker_db_url)
    events: dict[str, list[dict]] = defaultdict(list)
    try:
        with engine.connect() as connection:
            for start in range(0, len(senders), 500):
                chunk = senders[start:start + 500]
                rows = connection.execute(
                    sa.text("SELECT sender_id, data FROM events WHERE sender_id IN :ids ORDER BY id")
                    .bindparams(sa.bindparam("ids", expanding=True)), {"ids": chunk})
                for sender, data in rows:
                    events[sender].append(json.loads(data))
    finally:
        engine.dispose()
    return events


def _turns(events: list[dict]) -> list[list[dict]]:
    """Events split at each user message: turns[i][0] is the i-th user event."""
    turns: list[list[dict]] = []
    for event in events:
        if event.get("event") == "user":
            turns.append([event])
        elif turns:
            turns[-1].append(event)
    return turns


def exactly_once(records: list[dict], tracker_db_url: str) -> dict[str, Any]:
    """Compare what the patients sent with what the tracker store holds; lists a few examples of each problem."""
    by_sender: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_sender[record["sender"]].append(record)
    stored = _tracker_events(tracker_db_url, sorted(by_sender))
    problems: dict[str, list[str]] = defaultdict(list)
    for sender, sent in by_sender.items():
        sent.sort(key=lambda r: r["turn"])
        turns = _turns(stored.get(sender, []))
        sent_texts = [r["text"].strip() for r in sent]
        stored_texts = [(t[0].get("text") or "").strip() for t in turns]
        if stored_texts != sent_texts:
            sent_count, stored_count = Counter(sent_texts), Counter(stored_texts)
            if any(stored_count[t] < n for t, n in sent_count.items()):
                problems["lost"].append(sender)
            elif any(n > sent_count[t] for t, n in stored_count.items()):
                problems["duplicated"].append(sender)
            else:
                problems["out_of_order"].append(sender)
            continue
        for record, turn in zip(sent, turns, strict=True):
            entities = (turn[0].get("parse_data") or {}).get("entities") or []
            levels = {e.get("value") for e in entities if e.get("entity") == SLOT_TRIAGE_LEVEL}
            levels |= {e.get("value") for e in turn if e.get("event") == "slot" and e.get("name") == SLOT_TRIAGE_LEVEL}
            bot_texts = [e.get("text") for e in turn if e.get("event") == "bot" and e.get("text")]
            if len(bot_texts) != len(set(bot_texts)):
                problems["duplicate_reply_in_tracker"].append(sender)
            reply = record["reply"] if isinstance(record["reply"], list) else []
            reply_texts = [m.get("text") for m in reply if isinstance(m, dict) and m.get("text")]
            if len(reply_texts) != len(set(reply_texts)):
                problems["duplicate_reply_to_patient"].append(sender)
            if not answered(record):
                problems["no_reply"].append(sender)
            if record["red_flag"]:
                if not levels & set(TRIAGE_LEVELS):
                    problems["red_flag_not_recorded"].append(f"{sender}: {record['text'][:60]}")
                if not any(isinstance(m, dict) and seek_care_level(m) for m in reply):
                    problems["red_flag_without_seek_care"].append(f"{sender}: {record['text'][:60]}")
    counts = {name: len(items) for name, items in problems.items()}
    return {
        "conversations": len(by_sender), "messages": len(records),
        "ok": not problems, "problems": counts,
        "examples": {name: items[:3] for name, items in problems.items()},
    }
