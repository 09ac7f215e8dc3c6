"""Recognising which procedure (lumbar or cervical) a message talks about, from knowledge/procedures.yml."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bot.datafile import DataFileError, read_yaml, require_text
from bot.paths import KNOWLEDGE_DIR

PROCEDURES = ("lumbar", "cervical")


@dataclass(frozen=True)
class ProcedureMention:
    procedure: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class ProcedureVocabulary:
    labels: dict
    matchers: tuple[tuple[str, re.Pattern[str]], ...]

    def find(self, text: str) -> list[ProcedureMention]:
        """All non-overlapping mentions, longest first where two overlap."""
        if not text:
            return []
        found: list[ProcedureMention] = []
        for procedure, pattern in self.matchers:
            for match in pattern.finditer(text):
                found.append(ProcedureMention(procedure, match.start(), match.end(), match.group(0)))
        found.sort(key=lambda m: (m.start, -(m.end - m.start)))
        kept: list[ProcedureMention] = []
        for mention in found:
            if not kept or mention.start >= kept[-1].end:
                kept.append(mention)
        return kept

    def detect(self, text: str) -> str | None:
        """The procedure named in `text`, or None when none or both are named."""
        named = {mention.procedure for mention in self.find(text)}
        return named.pop() if len(named) == 1 else None

    def label(self, procedure: str) -> str:
        return self.labels[procedure]


def load_procedure_vocabulary(path: Path | None = None) -> ProcedureVocabulary:
    path = Path(path or KNOWLEDGE_DIR / "procedures.yml")
    raw = read_yaml(path)
    procedures = raw.get("procedures") if isinstance(raw, dict) else None
    if not isinstance(procedures, dict) or set(procedures) != set(PROCEDURES):
        raise DataFileError(path, f"'procedures' must map exactly {PROCEDURES} to their words", field="procedures")
    labels = {}
    matchers = []
    for name, spec in procedures.items():
        if not isinstance(spec, dict):
            raise DataFileError(path, "must be a mapping", name)
        labels[name] = require_text(path, name, "label", spec.get("label"))
        phrases = spec.get("phrases") or []
        if not isinstance(phrases, list) or not all(isinstance(p, str) and p.strip() for p in phrases):
            raise DataFileError(path, "must be a list of non-empty texts", name, "phrases")
        alternatives = sorted((re.escape(p.strip()).replace(r"\ ", r"[\s-]+") for p in phrases), key=len, reverse=True)
        if alternatives:
            matchers.append((name, re.compile(r"(?<![\w-])(?:" + "|".join(alternatives) + r")(?![\w-])", re.IGNORECASE)))
        for index, pattern in enumerate(spec.get("patterns") or []):
            try:
                matchers.append((name, re.compile(pattern)))
            except (re.error, TypeError) as error:
                raise DataFileError(path, f"not a valid regular expression ({error})", name, f"patterns[{index}]") from error
    return ProcedureVocabulary(labels=labels, matchers=tuple(matchers))


@lru_cache(maxsize=1)
def procedure_vocabulary() -> ProcedureVocabulary:
    return load_procedure_vocabulary()
