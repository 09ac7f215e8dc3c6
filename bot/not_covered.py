"""What the leaflets do not cover although it sounds close: knowledge/not_covered.yml, validated on load.

Why: a classifier picks the nearest topic by shared words ("what happens during a blood patch?" looks
like the procedure-steps topic). Naming another procedure, a price or insurance is a clear sign that
the leaflets cannot answer, whatever topic the words resemble.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bot.datafile import DataFileError, read_yaml, require_text
from bot.paths import KNOWLEDGE_DIR


def plain_words(text: str) -> str:
    """Lower case, punctuation as spaces, single spaces: how phrases and messages are compared."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


@dataclass(frozen=True)
class NotCoveredGroup:
    id: str
    why: str
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class NotCovered:
    groups: tuple[NotCoveredGroup, ...]

    def find(self, text: str) -> NotCoveredGroup | None:
        """The first group the message names, or None."""
        words = plain_words(text or "")
        return next((group for group in self.groups if group.pattern.search(words)), None)


def _phrase_pattern(path: Path, group_id: str, phrases: object) -> re.Pattern[str]:
    if not isinstance(phrases, list) or not phrases:
        raise DataFileError(path, "must be a non-empty list of phrases", group_id, "phrases")
    spellings = []
    for number, phrase in enumerate(phrases):
        text = require_text(path, group_id, f"phrases[{number}]", phrase)
        spellings += [plain_words(spelling) for spelling in text.split("|") if spelling.strip()]
    return re.compile(r"\b(?:" + "|".join(re.escape(s) for s in sorted(set(spellings), key=len, reverse=True)) + r")\b")


def load_not_covered(path: Path | None = None) -> NotCovered:
    path = Path(path or KNOWLEDGE_DIR / "not_covered.yml")
    raw = read_yaml(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("groups"), list) or not raw["groups"]:
        raise DataFileError(path, "must have a non-empty 'groups' list", field="groups")
    groups = []
    for index, item in enumerate(raw["groups"]):
        if not isinstance(item, dict):
            raise DataFileError(path, "must be a mapping with id, why and phrases", f"#{index + 1}")
        group_id = require_text(path, f"#{index + 1}", "id", item.get("id"))
        unknown = sorted(set(item) - {"id", "why", "phrases"})
        if unknown:
            raise DataFileError(path, f"unknown field(s) {', '.join(unknown)}", group_id, unknown[0])
        why = require_text(path, group_id, "why", item.get("why"))
        groups.append(NotCoveredGroup(group_id, why, _phrase_pattern(path, group_id, item.get("phrases"))))
    return NotCovered(tuple(groups))


@lru_cache(maxsize=1)
def not_covered() -> NotCovered:
    return load_not_covered()
