"""Held-out NLU accuracy, shared by the accuracy test and `make bench`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

# The evaluation treats nlu_fallback as a correct way to decline an out-of-scope message.
ACCEPTED_ALTERNATIVES = {"out_of_scope": {"nlu_fallback"}}


@dataclass
class AccuracyReport:
    total: int = 0
    correct: int = 0
    confusions: Counter = field(default_factory=Counter)
    misses: list[tuple[str, str, str]] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)  # (gold, predicted as scored)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def per_intent(self) -> dict[str, tuple[float, float, int]]:
        """Precision, recall and support per gold intent (a declined out-of-scope counts as out_of_scope)."""
        gold_counts = Counter(gold for gold, _ in self.pairs)
        predicted_counts = Counter(predicted for _, predicted in self.pairs)
        hits = Counter(gold for gold, predicted in self.pairs if gold == predicted)
        return {
            intent: (hits[intent] / predicted_counts[intent] if predicted_counts[intent] else 0.0,
                     hits[intent] / support, support)
            for intent, support in sorted(gold_counts.items())
        }

    def summary(self, top: int = 15) -> str:
        lines = [f"held-out intent accuracy {self.accuracy:.3f} ({self.correct}/{self.total})"]
        lines += [f"  {gold} -> {predicted}: {count}" for (gold, predicted), count in self.confusions.most_common(top)]
        return "\n".join(lines)


def load_labelled_examples(path: Path) -> list[tuple[str, str]]:
    """(text, intent) pairs from a Rasa NLU YAML file."""
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(path))
    return [(m.get("text"), m.get("intent")) for m in data.intent_examples]


def evaluate(examples: Iterable[tuple[str, str]], predict: Callable[[str], str]) -> AccuracyReport:
    report = AccuracyReport()
    for text, gold in examples:
        predicted = predict(text)
        report.total += 1
        right = predicted == gold or predicted in ACCEPTED_ALTERNATIVES.get(gold, set())
        report.pairs.append((gold, gold if right else predicted))
        if right:
            report.correct += 1
        else:
            report.confusions[(gold, predicted)] += 1
            report.misses.append((text, gold, predicted))
    return report
