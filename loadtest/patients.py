"""Patient-like conversations for the load test, made from the frozen patient sets in tests/eval/ (read only).

A session is what one patient sends, in order, in one conversation:
- "conversation" (55%): a multi-turn conversation of a set as written (questions and follow-ups such as
  "and the neck one?"; some end in a red flag);
- "questions" (30%): one to three stand-alone questions, in scope or not;
- "red_flag" (15%): a question, then an urgent-symptom report, sometimes a question after it.
Every message carries `red_flag`: true when the set labels it urgent (urgent.jsonl `urgent: true`, or a
conversation turn that expects an escalation). Plain Python (no Rasa import): locust's processes load it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

EVAL_DIR = Path(__file__).resolve().parents[1] / "tests" / "eval"
MIX = (("conversation", 0.55), ("questions", 0.30), ("red_flag", 0.15))


@dataclass(frozen=True)
class Message:
    text: str
    red_flag: bool


def _rows(name: str) -> list[dict]:
    rows: list[dict] = []
    for path in sorted(EVAL_DIR.glob(f"*/{name}")):
        rows.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return rows


class PatientSets:
    """The messages of every set under tests/eval/, loaded once."""

    def __init__(self) -> None:
        self.conversations = [
            [Message(turn["text"], _expects_escalation(turn)) for turn in row["turns"]] for row in _rows("conversations.jsonl")
        ]
        self.questions = [Message(row["text"], False) for row in _rows("questions.jsonl") if not row.get("accept_triage")]
        self.questions += [Message(row["text"], False) for row in _rows("out_of_scope.jsonl")]
        urgent = _rows("urgent.jsonl")
        self.red_flags = [Message(row["text"], True) for row in urgent if row.get("urgent") is True]
        self.hard_negatives = [Message(row["text"], False) for row in urgent if row.get("urgent") is False]

    def session(self, rng: random.Random) -> list[Message]:
        kind = rng.choices([k for k, _ in MIX], weights=[w for _, w in MIX])[0]
        if kind == "conversation":
            return list(rng.choice(self.conversations))
        if kind == "questions":
            pool = self.questions + self.hard_negatives
            return [rng.choice(pool) for _ in range(rng.randint(1, 3))]
        session = [rng.choice(self.questions), rng.choice(self.red_flags)]
        if rng.random() < 0.5:
            session.append(rng.choice(self.questions))
        return session


def _expects_escalation(turn: dict) -> bool:
    triage = turn.get("expect", {}).get("triage")
    return bool(triage) and triage != "none"
