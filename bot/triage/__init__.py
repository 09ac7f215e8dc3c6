"""Urgent-symptom triage: the one detector used by the NLU component, the tests and the bench.

    from bot.triage import detect
    result = detect("cant feel my groin and i wet myself")
    result.level      # "emergency" | "urgent" | None
    result.symptoms   # ("saddle_numbness", "bladder_bowel")
    result.spans      # every symptom mention found, with its status and the context cues that decided it

How a message is read (all rule-based, nothing downloaded, deterministic):

1. Normalise: lower case, HTML tags dropped, SMS shorthand spelled out ("cant" -> "can not",
   "temp" -> "temperature", "u" -> "you", "hrs" -> "hours" ...), "101f" -> "101 f", "8/10" -> "8 out of 10".
   A map keeps every character's position in the original text, so spans point into what the patient wrote.
2. spaCy ``blank("en")``: tokenizer, then token flags (misspellings of the rules' words corrected with
   rapidfuzz -- only for words that are not in the English word lists of spacy-lookups-data, so "never" is
   never read as "fever" --, fever-range / below-fever temperatures, long durations, fast pulse), the
   lookup lemmatizer (spacy-lookups-data; its tables also give each pattern word its inflected forms) and
   the sentencizer.
3. spaCy Matchers built from ``knowledge/triage_rules.yml`` find symptom mentions ("targets"). The ~6,000
   generated patterns are filed in small Matchers under a word they cannot match without, so only a few run
   per message. Exclusions ("hay fever") come from a PhraseMatcher and a Matcher.
4. medspaCy ConText with this project's own cue rules (also in the rules file) marks each mention as
   negated ("no fever"), hypothetical ("what if I get a fever"), historical/resolved ("my fever last month
   is gone"), someone else's ("my mom had a headache after hers") or an expected short-lived effect ("numb
   for a few hours"), unless a current-report cue ("since", "still", "keeps", "20 hrs after") says it is
   happening now. When in doubt, a mention counts. (See ``context.modifiers_per_mention`` for the three
   places where this differs from medspaCy's own ConText component.)
5. A rule fires when one of its mentions counts (or, for combination rules, when every part of one of its
   combinations counts). Level: emergency if any emergency rule fired, else urgent.

Long texts are scanned in chunks (cut at sentence ends; beyond 20,000 characters the first 16,000 and the
last 4,000 are read), so a symptom at the end of a 10,000-character message is still found. The detector is
built once per process (``get_detector``); ``detect`` never raises: bad input gives an empty result, and an
internal failure is logged and reported in ``TriageResult.error``.

The package, one module per step: ``result`` (what is reported), ``normalise`` (1), ``lexicon`` (word forms,
English words, number words), ``rules`` (the rules file: one parser per section), ``matchers`` (3),
``context`` (4), ``detector`` (2 and 5, per message). This module keeps the process-wide detector.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from bot.triage.detector import MAX_SCAN_CHARS, TriageDetector
from bot.triage.lexicon import lookup_tables as _lookups  # noqa: F401  (the spelling tests read the known words)
from bot.triage.lexicon import word_forms
from bot.triage.normalise import normalise, normalise_text
from bot.triage.result import LEVELS, TriageResult, TriageSpan
from bot.triage.rules import RULES_PATH, TriageRules, load_rules

logger = logging.getLogger(__name__)

_DETECTOR: TriageDetector | None = None
_BUILD_ERROR: str | None = None
_DETECTOR_LOCK = threading.Lock()


def build_detector(path: Path | str | None = None, **options: Any) -> TriageDetector:
    """A new detector from a rules file (default: RULES_PATH, read here so a test can point it elsewhere)."""
    return TriageDetector(load_rules(path or RULES_PATH), **options)


def get_detector() -> TriageDetector:
    """The process-wide detector, built on first use from knowledge/triage_rules.yml."""
    global _DETECTOR, _BUILD_ERROR
    if _DETECTOR is None:
        with _DETECTOR_LOCK:
            if _DETECTOR is None:
                if _BUILD_ERROR is not None:  # a broken rules file is reported once, not rebuilt per message
                    raise RuntimeError(_BUILD_ERROR)
                try:
                    _DETECTOR = build_detector()
                except Exception as error:
                    _BUILD_ERROR = f"{type(error).__name__}: {error}"
                    raise
    return _DETECTOR


def reset_detector() -> None:
    """Forget the shared detector (tests; after editing the rules file in a running process)."""
    global _DETECTOR, _BUILD_ERROR
    with _DETECTOR_LOCK:
        _DETECTOR, _BUILD_ERROR = None, None


def rule_level(rule_id: str) -> str | None:
    """The level ("emergency" | "urgent") of a rule of the shared detector, None if unknown."""
    try:
        rule = get_detector().rules.rule(rule_id)
    except Exception:
        return None
    return rule.level


def detect(text: Any) -> TriageResult:
    """Urgent-symptom triage of one patient message. Never raises."""
    try:
        detector = get_detector()
    except Exception as error:  # a broken rules file must not take the bot down; it is logged loudly
        logger.error("triage: the detector could not be built: %s", error)
        return TriageResult(level=None, error=f"{type(error).__name__}: {error}")
    try:
        return detector.detect(text)
    except Exception as error:
        logger.exception("triage: detection failed")
        return TriageResult(level=None, error=f"{type(error).__name__}: {error}")



__all__ = [
    "LEVELS", "MAX_SCAN_CHARS", "RULES_PATH", "TriageDetector", "TriageResult", "TriageRules", "TriageSpan",
    "build_detector", "detect", "get_detector", "load_rules", "normalise", "normalise_text", "reset_detector",
    "rule_level", "word_forms",
]
