"""CSV and JSON exports of the conversation list and of one transcript.

Phone numbers and e-mail addresses (as conversation ids and inside message text) are masked unless
`unmask=True` (callers record that in the access log); every CSV text cell is guarded against
spreadsheet formula injection.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import datetime

from bot.review.masking import csv_safe, shown_sender, shown_text
from bot.review.store import ConversationRow
from bot.review.transcript import Transcript

LIST_COLUMNS = ["conversation", "patient", "channel", "started", "last_activity", "patient_turns", "escalation",
                "unanswered"]
TRANSCRIPT_COLUMNS = ["time", "speaker", "text", "intent", "confidence", "knowledge_entry", "escalation", "note"]


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def list_records(rows: Iterable[ConversationRow], unmask: bool = False) -> list[dict]:
    return [
        {
            "conversation": row.ref,
            "patient": shown_sender(row.sender_id, unmask),
            "channel": row.channel_label,
            "started": _iso(row.started),
            "last_activity": _iso(row.last_activity),
            "patient_turns": row.patient_turns,
            "escalation": row.escalation or "",
            "unanswered": row.unanswered,
        }
        for row in rows
    ]


def transcript_records(transcript: Transcript, unmask: bool = False) -> list[dict]:
    records = []
    for turn in transcript.turns:
        if turn.kind == "session":
            records.append({"time": _iso(turn.at), "speaker": "system", "text": "", "intent": "", "confidence": "",
                            "knowledge_entry": "", "escalation": "", "note": "New session"})
            continue
        records.append({
            "time": _iso(turn.at),
            "speaker": turn.kind,
            "text": shown_text(turn.text, unmask) if turn.kind == "patient" else turn.text,
            "intent": turn.intent or "",
            "confidence": "" if turn.confidence is None else round(turn.confidence, 3),
            "knowledge_entry": turn.topic or "",
            "escalation": turn.escalation or "",
            "note": turn.note or ("Unanswered" if turn.unanswered else ""),
        })
    return records


def to_csv(records: list[dict], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for record in records:
        writer.writerow({key: csv_safe(record.get(key, "")) for key in columns})
    return out.getvalue()


def list_csv(rows: Iterable[ConversationRow], unmask: bool = False) -> str:
    return to_csv(list_records(rows, unmask), LIST_COLUMNS)


def list_json(rows: Iterable[ConversationRow], filters: str, unmask: bool = False) -> str:
    records = list_records(rows, unmask)
    return json.dumps({"filters": filters, "count": len(records), "phone_numbers": "full" if unmask else "masked",
                       "conversations": records}, ensure_ascii=False, indent=2)


def transcript_csv(transcript: Transcript, unmask: bool = False) -> str:
    patient = shown_sender(transcript.sender_id, unmask)
    records = [{"conversation": transcript.ref, "patient": patient, **record}
               for record in transcript_records(transcript, unmask)]
    return to_csv(records, ["conversation", "patient", *TRANSCRIPT_COLUMNS])


def transcript_json(transcript: Transcript, unmask: bool = False) -> str:
    return json.dumps({
        "conversation": transcript.ref,
        "patient": shown_sender(transcript.sender_id, unmask),
        "phone_numbers": "full" if unmask else "masked",
        "channel": transcript.channel_label,
        "started": _iso(transcript.started),
        "last_activity": _iso(transcript.last_activity),
        "escalation": transcript.escalation or "",
        "turns": transcript_records(transcript, unmask),
    }, ensure_ascii=False, indent=2)
