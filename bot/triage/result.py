"""What triage reports: the level, the rules that fired and every symptom mention with its status."""

from __future__ import annotations

from dataclasses import dataclass

from bot.vocabulary import TRIAGE_LEVELS

LEVELS = TRIAGE_LEVELS  # most serious first (bot/vocabulary.py)


@dataclass(frozen=True)
class TriageSpan:
    """One symptom mention: where it is in the original text and what ConText made of it."""

    rule: str
    group: str
    start: int
    end: int
    text: str
    status: str  # "asserted" | "negated" | "hypothetical" | "historical" | "resolved" | "other_person" | "expected"
    #              | "chronic" (there for months, the reason for the shot)
    cues: tuple[str, ...] = ()  # "CATEGORY:cue words" of the context modifiers that touched it


@dataclass(frozen=True)
class TriageResult:
    level: str | None  # "emergency" | "urgent" | None
    symptoms: tuple[str, ...] = ()
    spans: tuple[TriageSpan, ...] = ()  # asserted mentions of the fired rules, in text order
    ignored: tuple[TriageSpan, ...] = ()  # mentions that did not count (negated, hypothetical ...)
    error: str | None = None  # set only if the detector itself failed (logged); level is then None

    @property
    def urgent(self) -> bool:
        return self.level is not None

    def span_for(self, rule: str) -> TriageSpan | None:
        return next((span for span in self.spans if span.rule == rule), None)


EMPTY_RESULT = TriageResult(level=None)
