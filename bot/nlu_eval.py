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

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

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
        if predicted == gold or predicted in ACCEPTED_ALTERNATIVES.get(gold, set()):
            report.correct += 1
        else:
            report.confusions[(gold, predicted)] += 1
            report.misses.append((text, gold, predicted))
    return report
