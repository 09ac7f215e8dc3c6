"""Score patient-message sets the way the clinic's evaluation does: REST reply text + tracker.

A set is a folder of JSON Lines files in the format of `../shared/eval/README.md`:
`questions.jsonl`, `out_of_scope.jsonl`, `urgent.jsonl` and `conversations.jsonl` (each optional).
Shared by `scripts/score_eval.py` (first looks, `make bench`) and the frozen-set floors in tests.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.vocabulary import DECLINE_INTENTS

# send(sender, text) -> reply text; tracker(sender) -> tracker dict
Send = Callable[[str, str], str]
ReadTracker = Callable[[str], dict[str, Any]]


@dataclass
class Outcome:
    text: str
    reply: str
    intent: str | None
    triage_level: str | None


@dataclass
class Tally:
    """Right / total for one measure, with the misses kept for the report."""

    right: int = 0
    total: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, ok: bool, miss: str) -> None:
        self.total += 1
        if ok:
            self.right += 1
        else:
            self.misses.append(miss)

    @property
    def rate(self) -> float:
        return self.right / self.total if self.total else 1.0

    def line(self, name: str) -> str:
        return f"{name:<34} {self.right:>4}/{self.total:<4} {self.rate:6.1%}"


@dataclass
class SetScore:
    answered: Tally = field(default_factory=Tally)
    declined: Tally = field(default_factory=Tally)
    urgent_escalated: Tally = field(default_factory=Tally)
    negatives_calm: Tally = field(default_factory=Tally)
    conversations: Tally = field(default_factory=Tally)
    in_scope_told_emergency: int = 0
    confusions: Counter = field(default_factory=Counter)

    def summary(self, show_misses: int = 0) -> str:
        lines = [
            self.answered.line("in-scope answered"),
            self.declined.line("out-of-scope declined"),
            self.urgent_escalated.line("urgent escalated"),
            self.negatives_calm.line("hard negatives not escalated"),
            self.conversations.line("conversations fully right"),
            f"{'in-scope told to call 911':<34} {self.in_scope_told_emergency:>4}",
        ]
        if self.confusions:
            lines.append("topic -> final intent (misses): " + ", ".join(
                f"{topic}->{intent} {count}" for (topic, intent), count in self.confusions.most_common(12)))
        if show_misses:
            for name in ("answered", "declined", "urgent_escalated", "negatives_calm", "conversations"):
                tally: Tally = getattr(self, name)
                for miss in tally.misses[:show_misses]:
                    lines.append(f"  MISS {name}: {miss}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            name: {"right": t.right, "total": t.total, "rate": round(t.rate, 4)}
            for name, t in (("answered", self.answered), ("declined", self.declined),
                            ("urgent_escalated", self.urgent_escalated), ("negatives_calm", self.negatives_calm),
                            ("conversations", self.conversations))
        } | {"in_scope_told_emergency": self.in_scope_told_emergency}


def rest_scorer(url: str, token: str) -> Scorer:
    """A scorer that talks to a running Rasa server over HTTP, as the clinic's evaluation does."""
    from bot.devtools.stack import http_json

    def send(sender: str, text: str) -> str:
        status, body = http_json("POST", f"{url}/webhooks/rest/webhook?token={token}", {"sender": sender, "message": text})
        if status != 200:
            raise RuntimeError(f"REST {status}: {body}")
        return "\n".join(m.get("text", "") for m in body if m.get("text"))

    def tracker(sender: str) -> dict[str, Any]:
        status, body = http_json("GET", f"{url}/conversations/{sender}/tracker?token={token}")
        if status != 200:
            raise RuntimeError(f"tracker {status}: {body}")
        return body

    return Scorer(send, tracker)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as error:
                raise ValueError(f"{path}:{number}: not JSON ({error})") from error
    return rows


class Scorer:
    """Posts each message as a new conversation (or each conversation's turns in order)."""

    def __init__(self, send: Send, read_tracker: ReadTracker) -> None:
        self.send = send
        self.read_tracker = read_tracker

    def turn(self, sender: str, text: str) -> Outcome:
        reply = self.send(sender, text)
        tracker = self.read_tracker(sender)
        intent = ((tracker.get("latest_message") or {}).get("intent") or {}).get("name")
        return Outcome(text, reply, intent, (tracker.get("slots") or {}).get("triage_level"))

    def one(self, text: str) -> Outcome:
        return self.turn(f"eval-{uuid.uuid4().hex[:12]}", text)

    def score(self, folder: Path) -> SetScore:
        score = SetScore()
        for row in read_jsonl(folder / "questions.jsonl"):
            out = self.one(row["text"])
            words = [w.lower() for w in row.get("expect_any", [])]
            accepted = set(row.get("accept_triage") or [])
            has_word = any(w in out.reply.lower() for w in words)
            calm = out.triage_level is None or out.triage_level in accepted
            ok = has_word and calm and out.intent not in DECLINE_INTENTS
            if out.triage_level == "emergency" and "emergency" not in accepted:
                score.in_scope_told_emergency += 1
            if not ok:
                score.confusions[(row.get("topic", "?"), out.intent)] += 1
            score.answered.add(ok, f"{row['text']!r} [{row.get('topic')}] -> {out.intent} "
                                   f"triage={out.triage_level} reply={out.reply[:90]!r}")
        for row in read_jsonl(folder / "out_of_scope.jsonl"):
            out = self.one(row["text"])
            ok = out.intent in DECLINE_INTENTS and out.triage_level is None
            score.declined.add(ok, f"{row['text']!r} -> {out.intent} triage={out.triage_level}")
        for row in read_jsonl(folder / "urgent.jsonl"):
            out = self.one(row["text"])
            if row["urgent"]:
                score.urgent_escalated.add(out.triage_level is not None,
                                           f"{row['text']!r} ({row.get('why')}) -> {out.intent}")
            else:
                score.negatives_calm.add(out.triage_level is None,
                                         f"{row['text']!r} ({row.get('why')}) -> {out.triage_level} {out.intent}")
        for row in read_jsonl(folder / "conversations.jsonl"):
            problems = self.conversation(row)
            score.conversations.add(not problems, f"{row.get('id')}: {'; '.join(problems)}")
        return score

    def conversation(self, row: dict[str, Any]) -> list[str]:
        """The conversation's failed expectations (empty when every turn holds)."""
        sender = f"eval-conv-{uuid.uuid4().hex[:12]}"
        problems = []
        for number, turn in enumerate(row["turns"], 1):
            out = self.turn(sender, turn["text"])
            for problem in turn_problems(turn.get("expect") or {}, out):
                problems.append(f"turn {number} {turn['text']!r}: {problem}")
        return problems


def turn_problems(expect: dict[str, Any], out: Outcome) -> list[str]:
    problems = []
    words = [w.lower() for w in expect.get("answer_any", [])]
    if words and not any(w in out.reply.lower() for w in words):
        problems.append(f"no {words} in {out.reply[:80]!r}")
    triage = expect.get("triage")
    if triage == "none" and out.triage_level is not None:
        problems.append(f"escalated ({out.triage_level})")
    elif isinstance(triage, str) and triage != "none" and out.triage_level != triage:
        problems.append(f"triage {out.triage_level} != {triage}")
    elif isinstance(triage, list) and out.triage_level not in triage:
        problems.append(f"triage {out.triage_level} not in {triage}")
    if out.intent in (expect.get("not_intent") or []):
        problems.append(f"intent {out.intent}")
    if expect.get("intent_any") and out.intent not in expect["intent_any"]:
        problems.append(f"intent {out.intent} not in {expect['intent_any']}")
    return problems
