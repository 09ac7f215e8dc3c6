"""Urgent-symptom triage: recall, specificity and time per message (run by `make bench`, or on its own).

    .venv/bin/python scripts/bench_triage.py

Prints numbers; asserts nothing. Over the labelled set tests/triage/cases.jsonl and, as extra checks,
the project's NLU data (report_urgent_symptom examples should escalate, everything else should not).
Also compares the context handling: the project's ConText rules, no context at all (every symptom word
escalates) and medspaCy's own default ConText rules (written for clinical notes).
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from benchstats import percentile  # noqa: E402

from bot import triage  # noqa: E402

CASES = ROOT / "tests" / "triage" / "cases.jsonl"


def load_cases() -> list[dict]:
    return [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line.strip()]


def nlu_texts() -> tuple[list[str], list[str]]:
    """(report_urgent_symptom examples, every other NLU example + knowledge-base example questions)."""
    urgent, other = [], []
    for path in sorted([*ROOT.glob("data/nlu/*.yml"), *ROOT.glob("tests/nlu/*.yml")]):
        for item in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu", []) or []:
            if "intent" not in item:
                continue
            for line in (item.get("examples") or "").splitlines():
                if line.strip().startswith("- "):
                    text = re.sub(r"\[([^\]]+)\][({][^)}]*[)}]", r"\1", line.strip()[2:])
                    (urgent if item["intent"] == "report_urgent_symptom" else other).append(text)
    for path in ROOT.glob("knowledge/topics/*.yml"):
        for entry in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("entries", []):
            other.extend(entry.get("examples") or [])
    return urgent, other


def scores(detector: triage.TriageDetector, cases: list[dict], nlu_urgent: list[str], nlu_other: list[str]) -> dict:
    urgent = [c for c in cases if c["urgent"]]
    negative = [c for c in cases if not c["urgent"]]
    results = {c["text"]: detector.detect(c["text"]) for c in cases}
    caught = [c for c in urgent if results[c["text"]].level]
    right_level = [c for c in caught if results[c["text"]].level == c["level"]]
    false_alarms = [c for c in negative if results[c["text"]].level]
    return {
        "recall": len(caught) / len(urgent),
        "missed": [c["text"] for c in urgent if not results[c["text"]].level],
        "level_ok": len(right_level) / len(urgent),
        "specificity": 1 - len(false_alarms) / len(negative),
        "false_alarms": [c["text"] for c in false_alarms],
        "nlu_recall": (sum(bool(detector.detect(t).level) for t in nlu_urgent) / len(nlu_urgent)) if nlu_urgent else None,
        "nlu_specificity": (1 - sum(bool(detector.detect(t).level) for t in nlu_other) / len(nlu_other))
        if nlu_other else None,
    }


def timings(detector: triage.TriageDetector, texts: list[str], rounds: int = 3) -> list[float]:
    for text in texts[:30]:
        detector.detect(text)
    out = []
    for _ in range(rounds):
        for text in texts:
            start = time.perf_counter()
            detector.detect(text)
            out.append((time.perf_counter() - start) * 1e6)
    return out


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main() -> None:
    cases = load_cases()
    nlu_urgent, nlu_other = nlu_texts()
    urgent = [c for c in cases if c["urgent"]]
    print(f"labelled set: {len(urgent)} urgent ({len({c['rule'] for c in urgent})} rules), "
          f"{len(cases) - len(urgent)} hard negatives; NLU data: {len(nlu_urgent)} report_urgent_symptom examples, "
          f"{len(nlu_other)} other examples")

    start = time.perf_counter()
    detector = triage.build_detector()
    build_s = time.perf_counter() - start
    rules = detector.rules
    print(f"rules: {len(rules.rules)} ({sum(r.level == 'emergency' for r in rules.rules)} emergency, "
          f"{sum(r.level == 'urgent' for r in rules.rules)} urgent), {detector.bank.patterns} spaCy patterns in "
          f"{len(detector.bank)} matchers, {sum(len(g.phrases) for g in rules.context)} context cues; "
          f"built in {build_s:.1f} s (includes importing spaCy)")

    s = scores(detector, cases, nlu_urgent, nlu_other)
    print(f"recall {s['recall']:.3f}  (level right {s['level_ok']:.3f})   specificity {s['specificity']:.3f}   "
          f"NLU data: recall {fmt(s['nlu_recall'])}, specificity {fmt(s['nlu_specificity'])}")
    for text in s["missed"]:
        print(f"  MISSED: {text}")
    for text in s["false_alarms"]:
        print(f"  FALSE ALARM: {text}")

    texts = [c["text"] for c in cases]
    us = timings(detector, texts)
    print(f"time per message over the labelled set (n={len(us)}): median {statistics.median(us):.0f} us, "
          f"p95 {percentile(us, 0.95):.0f} us, max {max(us):.0f} us")
    urgent_us = timings(detector, [c["text"] for c in urgent], rounds=1)
    negative_us = timings(detector, [c["text"] for c in cases if not c["urgent"]], rounds=1)
    print(f"  urgent messages: median {statistics.median(urgent_us):.0f} us; "
          f"non-urgent: median {statistics.median(negative_us):.0f} us")
    if nlu_other:
        other_us = timings(detector, nlu_other, rounds=1)
        print(f"  ordinary questions (NLU data, n={len(other_us)}): median {statistics.median(other_us):.0f} us, "
              f"p95 {percentile(other_us, 0.95):.0f} us")
    long_text = "when can i take the bandage off? " * 300 + "also my site is red and oozing pus"
    long_us = timings(detector, [long_text], rounds=5)
    print(f"  one {len(long_text):,}-character message with the symptom at the end: "
          f"median {statistics.median(long_us) / 1000:.1f} ms -> {detector.detect(long_text).level}")

    print("\ncontext handling (medspaCy ConText), same labelled set:")
    variants = [
        ("project ConText rules (used)", detector),
        ("no context (every mention counts)", triage.TriageDetector(rules, use_context=False)),
        ("medspaCy default ConText rules", triage.TriageDetector(rules, context_rules="medspacy_default")),
    ]
    for name, variant in variants:
        v = scores(variant, cases, nlu_urgent, nlu_other)
        v_us = timings(variant, texts, rounds=1)
        print(f"  {name:36s} recall {v['recall']:.3f}  specificity {v['specificity']:.3f}  "
              f"NLU specificity {fmt(v['nlu_specificity'])}  median {statistics.median(v_us):.0f} us")


if __name__ == "__main__":
    main()
