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
   happening now. When in doubt, a mention counts. (See ``TriageDetector._context`` for the three places
   where this differs from medspaCy's own ConText component.)
5. A rule fires when one of its mentions counts (or, for combination rules, when every part of one of its
   combinations counts). Level: emergency if any emergency rule fired, else urgent.

Long texts are scanned in chunks (cut at sentence ends; beyond 20,000 characters the first 16,000 and the
last 4,000 are read), so a symptom at the end of a 10,000-character message is still found. The detector is
built once per process (``get_detector``); ``detect`` never raises: bad input gives an empty result, and an
internal failure is logged and reported in ``TriageResult.error``.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import product
from pathlib import Path
from typing import Any

from bot.datafile import DataFileError, read_yaml, require_text
from bot.paths import KNOWLEDGE_DIR

logger = logging.getLogger(__name__)

RULES_PATH = KNOWLEDGE_DIR / "triage_rules.yml"
LEVELS = ("emergency", "urgent")  # most serious first
MAX_SCAN_CHARS = 20_000  # longer texts: the first 16,000 and the last 4,000 characters are scanned
CHUNK_CHARS = 1_200  # texts are read in pieces of at most this size, cut at sentence ends
MAX_COMBINATIONS = 3000  # a pattern may expand to at most this many spaCy patterns
MAX_GAP = 8

RULE_FIELDS = {"id", "level", "label", "source", "patterns", "groups", "fires_when", "exclude", "fuzzy", "replaces",
               "token_patterns"}
REQUIRED_RULE_FIELDS = ("id", "level", "label", "source")
TOP_FIELDS = {"version", "settings", "word_lists", "conditions", "rules", "context", "fuzzy", "exclude"}
SETTINGS_DEFAULTS = {
    "gap": 4,  # "..." in a pattern skips at most this many words
    "fever_threshold_f": 100.4,
    "fever_threshold_c": 38.0,
    "long_duration_hours": 8,  # "<n> hours" with n at least this counts as a long duration
    "fuzzy_min_length": 5,  # shorter words are never spelling-corrected
}
SPECIALS = {
    "fever_temp": "a temperature in the fever range (>= fever_threshold_f F or >= fever_threshold_c C)",
    "fever_decimal": "a number like 100.9 or 101.2 (fever range, written with a decimal point)",
    "low_temp": "a body temperature below the fever threshold (e.g. 99.1)",
    "long_duration": "a number of hours >= long_duration_hours, or any number of days / weeks",
    "num": "any number",
    "ing": "a word ending in -ing (keeps getting, kept bleeding)",
    "high_rate": "a whole number from 110 to 250 (a fast pulse, next to 'pulse' / 'heart rate' / 'bpm')",
}
SENTENCE_START_ATTR = "triage_sentence_start"  # '^word' in a pattern: the word starts a sentence
FLAG_ATTRS = {name: f"triage_{name}" for name in SPECIALS}

# Context categories: the name used in the rules file -> the medspaCy ConText category.
CONTEXT_CATEGORIES = {
    "negated": "NEGATED_EXISTENCE",
    "hypothetical": "HYPOTHETICAL",
    "generic_question": "GENERIC_QUESTION",
    "historical": "HISTORICAL",
    "resolved": "RESOLVED",
    "other_person": "FAMILY",
    "not_the_patient": "NOT_PATIENT",
    "expected": "EXPECTED",
    "low_temperature": "LOW_TEMPERATURE",
    "possible": "POSSIBLE_EXISTENCE",
    "current": "CURRENT",
    "recent": "RECENT",
    "long_duration": "LONG_DURATION",
    "clause_break": "CLAUSE_BREAK",
    "and_break": "AND_BREAK",
    "ignore": "IGNORE",
}
DIRECTIONS = {"forward": "FORWARD", "backward": "BACKWARD", "both": "BIDIRECTIONAL", "pseudo": "PSEUDO"}
CONTEXT_FIELDS = {"category", "direction", "max_words", "stops_at", "applies_to", "not_for", "phrases", "note"}
FIRST_PERSON = frozenset({"i", "my", "me", "myself", "mine", "im"})
# "my", or "I" + a verb of reporting: what makes a question about a symptom a report about oneself
# ("is numbness in my groin normal?", "i have chest pain, do i call?"); "do i call 911 for chest pain?" is not.
FIRST_PERSON_REPORT = frozenset({"my", "me", "myself", "mine"})
# Present tense next to a symptom of another adult: a caregiver reporting now ("my wife can't move her arm",
# "my husband is slurring"), unlike "my mom had a headache after hers".
PRESENT_TENSE = frozenset({"is", "are", "am", "has", "keeps", "keep", "can", "will", "does", "seems", "looks", "feels",
                           "sounds", "'s", "'re", "isnt", "cant", "wont", "doesnt"})
FIRST_PERSON_VERBS = frozenset({"am", "have", "has", "had", "feel", "felt", "got", "was", "keep", "kept", "can", "could",
                                "think", "woke", "just", "still", "started", "noticed", "noticing", "get", "been", "'m",
                                "'ve", "seem", "cant", "can't"})
# Words a "..." gap never skips: sentence ends, clause breaks and negations (so "site is not red" is no match).
GAP_STOP = [".", "!", "?", ";", "but", "however", "although", "though", "also", "btw", "except", "not", "no",
            "never", "nothing", "without", "nor", "n't"]

_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
_ELEMENT_WORD = re.compile(r"^[a-z0-9][a-z0-9'./]*$|^[,:;!?&+/-]$")
_PUNCT_WORDS = {",", ":", ";", "!", "?", "&", "+", "/", "-"}


# --------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class TriageSpan:
    """One symptom mention: where it is in the original text and what ConText made of it."""

    rule: str
    group: str
    start: int
    end: int
    text: str
    status: str  # "asserted" | "negated" | "hypothetical" | "historical" | "resolved" | "other_person" | "expected"
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


# --------------------------------------------------------------------------------------------------
# Text normalisation (with a map back to the original character positions)

_SHORTHAND = {
    "u": "you", "ur": "your", "r": "are", "ya": "you", "yu": "you",
    "cant": "can not", "can't": "can not", "cannot": "can not", "cnt": "can not", "carnt": "can not", "cán't": "can not",
    "dont": "do not", "don't": "do not", "dnt": "do not", "doesnt": "does not", "doesn't": "does not",
    "didnt": "did not", "didn't": "did not", "isnt": "is not", "isn't": "is not", "wasnt": "was not",
    "wasn't": "was not", "arent": "are not", "aren't": "are not", "werent": "were not", "weren't": "were not",
    "havent": "have not", "haven't": "have not", "hasnt": "has not", "hasn't": "has not", "hadnt": "had not",
    "hadn't": "had not", "wont": "will not", "won't": "will not", "wouldnt": "would not", "wouldn't": "would not",
    "couldnt": "could not", "couldn't": "could not", "shouldnt": "should not", "shouldn't": "should not",
    "aint": "is not", "ain't": "is not", "im": "i am", "i'm": "i am", "ive": "i have", "i've": "i have",
    "i'll": "i will", "i'd": "i would", "youre": "you are", "you're": "you are", "it's": "it is",
    "thats": "that is", "that's": "that is", "whats": "what is", "what's": "what is", "theres": "there is",
    "there's": "there is", "its": "it is", "he's": "he is", "she's": "she is", "shes": "she is", "theyre": "they are",
    "they're": "they are",
    "cuz": "because", "coz": "because", "cos": "because", "bc": "because", "b/c": "because", "bcuz": "because",
    "becuz": "because", "bcos": "because", "'cause": "because", "w/": "with", "w/o": "without",
    "pls": "please", "plz": "please", "plse": "please", "thx": "thanks", "thnx": "thanks",
    "temp": "temperature", "temps": "temperatures", "tempature": "temperature", "temprature": "temperature",
    "hrs": "hours", "hr": "hour", "mins": "minutes", "wks": "weeks", "wk": "week",
    "yday": "yesterday", "yest": "yesterday", "ystrdy": "yesterday", "yesterdy": "yesterday",
    "tmrw": "tomorrow", "tmr": "tomorrow", "tmrrw": "tomorrow", "tomoz": "tomorrow", "2moro": "tomorrow",
    "2morrow": "tomorrow", "tomorow": "tomorrow", "tommorow": "tomorrow", "tommorrow": "tomorrow",
    "tonite": "tonight", "2nite": "tonight", "2day": "today", "rn": "right now", "atm": "at the moment",
    "abt": "about", "bout": "about", "b4": "before", "bfore": "before", "hubby": "husband", "ppl": "people",
    "idk": "i do not know", "dunno": "do not know", "thru": "through", "tho": "though", "altho": "although",
    "lil": "little", "alot": "a lot", "gonna": "going to", "wanna": "want to", "gotta": "got to",
    "kinda": "kind of", "sorta": "sort of", "outta": "out of", "lemme": "let me",
    "wat": "what", "wut": "what", "wht": "what", "wen": "when", "y": "why",
    "cud": "could", "cld": "could", "wud": "would", "wld": "would", "shud": "should", "shld": "should",
    "hav": "have", "n": "and", "nd": "and", "&": "and",
    "dr": "doctor", "doc": "doctor", "drs": "doctors", "smth": "something", "sth": "something",
    "sumthing": "something", "sumthin": "something", "prob": "probably", "prolly": "probably",
    "inj": "injection", "injxn": "injection", "hosp": "hospital", "sx": "symptoms", "hx": "history",
    "feva": "fever", "fevah": "fever", "fevr": "fever", "fver": "fever", "fevre": "fever", "tmp": "temperature", "pee'd": "peed", "poo'd": "pooed", "nvm": "never mind",
}
_SHORTHAND_RE = re.compile(
    r"(?<![\w'/&])(?:" + "|".join(re.escape(k) for k in sorted(_SHORTHAND, key=len, reverse=True)) + r")(?![\w'/&])"
)
_PASSES: tuple[tuple[re.Pattern[str], Any], ...] = (
    (re.compile(r"<[^<>]{0,400}>"), " "),  # HTML / XML tags
    (re.compile(r"&(?:amp|lt|gt|quot|apos|nbsp|#\d{1,5});"),
     lambda m: {"&amp;": " and ", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'"}.get(m.group(0), " ")),
    (re.compile(r"[\u2018\u2019\u201b\u00b4`\u2032]"), "'"),
    (re.compile(r"[\u201c\u201d\u201e\u2033]"), '"'),
    (re.compile(r"[\u2010-\u2015\u2212]"), "-"),
    (re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]"), " "),
    (re.compile(r"\s*[\r\n]+\s*"), " . "),  # a line break ends a sentence
    (re.compile(r"(?<=\d)\s*(?:°|º|˚)\s*"), " degrees "),
    (re.compile(r"\b(\d{2,3}),(\d)\b"), r"\1.\2"),  # 38,5 -> 38.5
    (re.compile(r"\b(\d{1,3})\s*/\s*10\b"), r"\1 out of 10"),  # pain 10/10
    (re.compile(r"(?<=[a-z])-(?=[a-z])"), " "),  # light-headed -> light headed
    (re.compile(r"([a-z])\1{2,}"), r"\1\1"),  # feeeever -> feever
    (_SHORTHAND_RE, lambda m: _SHORTHAND[m.group(0)]),
    (re.compile(r"(?<=\d)(?=[a-z])"), " "),  # 20hrs -> 20 hrs, 101f -> 101 f
    (re.compile(r"\bhrs\b"), "hours"),
    (re.compile(r"\bhr\b"), "hour"),
    (re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]{2,}|[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]"), " "),
)


def _sub_with_map(pattern: re.Pattern[str], repl: Any, text: str, offsets: list[int]) -> tuple[str, list[int]]:
    pieces: list[str] = []
    new_offsets: list[int] = []
    last = 0
    for match in pattern.finditer(text):
        start, end = match.span()
        replacement = repl(match) if callable(repl) else match.expand(repl)
        if replacement == match.group(0):
            continue
        pieces.append(text[last:start])
        new_offsets.extend(offsets[last:start])
        pieces.append(replacement)
        if replacement:  # a mention starting inside a replacement starts at the original word; ends at its end
            new_offsets.extend([offsets[start]] * (len(replacement) - 1))
            new_offsets.append(offsets[end - 1] if end > start else offsets[start])
        last = end
    if not pieces:
        return text, offsets
    pieces.append(text[last:])
    new_offsets.extend(offsets[last:])  # includes the end sentinel
    return "".join(pieces), new_offsets


def normalise(text: str, base: int = 0) -> tuple[str, list[int]]:
    """Lower-cased, SMS-expanded text and, for each of its characters, the position in `text` (+ base).

    The returned offset list has one extra item: the end position.
    """
    lowered = text.lower()
    if len(lowered) == len(text):
        offsets = list(range(base, base + len(text) + 1))
    else:  # a few characters change length when lower-cased
        chars: list[str] = []
        offsets = []
        for i, char in enumerate(text):
            low = char.lower()
            chars.append(low)
            offsets.extend([base + i] * len(low))
        lowered = "".join(chars)
        offsets.append(base + len(text))
    for pattern, repl in _PASSES:
        lowered, offsets = _sub_with_map(pattern, repl, lowered, offsets)
    return lowered, offsets


def normalise_text(text: str) -> str:
    return normalise(text)[0].strip()


# --------------------------------------------------------------------------------------------------
# The rules file: parsing and validation (no spaCy needed)


@dataclass(frozen=True)
class Element:
    kind: str  # "words" | "gap" | "special"
    alternatives: tuple[tuple[tuple[str, bool], ...], ...] = ()  # each: a word sequence of (word, exact)
    optional: bool = False
    size: int = 0  # gap size
    special: str = ""
    sentence_start: bool = False  # '^word': the (first) word starts a sentence


@dataclass(frozen=True)
class Pattern:
    source: str
    elements: tuple[Element, ...]
    near: tuple[Element, ...] | None = None  # must also occur somewhere in the same sentence
    near_source: str = ""


@dataclass(frozen=True)
class Rule:
    id: str
    level: str
    label: str
    source: str
    groups: dict[str, tuple[tuple[str, Pattern], ...]]  # group -> ((origin rule, pattern), ...)
    fires_when: tuple[tuple[str, ...], ...]  # () = any group match fires
    exclude: tuple[Pattern, ...]
    fuzzy: tuple[str, ...]
    replaces: tuple[str, ...]
    token_patterns: tuple[list[dict], ...]


@dataclass(frozen=True)
class ContextGroup:
    category: str  # ConText category
    direction: str
    max_words: int | None
    stops_at: tuple[str, ...]
    applies_to: tuple[str, ...] | None
    not_for: tuple[str, ...] | None
    phrases: tuple[Pattern, ...]


@dataclass(frozen=True)
class TriageRules:
    path: str
    settings: dict[str, Any]
    rules: tuple[Rule, ...]
    conditions: dict[str, tuple[Pattern, ...]]
    context: tuple[ContextGroup, ...]
    fuzzy: tuple[str, ...]
    exclude: tuple[Pattern, ...]

    def rule(self, rule_id: str) -> Rule:
        return next(r for r in self.rules if r.id == rule_id)


class _PatternError(ValueError):
    pass


def _parse_word_list_entry(entry: str) -> tuple[tuple[str, bool], ...]:
    """'give out' -> give (any form) + out; '=limp' -> only 'limp'."""
    exact = entry.strip().startswith("=")
    normal = normalise_text(entry.strip().lstrip("="))
    words = normal.split()
    if not words:
        raise _PatternError(f"empty word list entry {entry!r}")
    return tuple((word, exact) for word in words)


def _parse_pattern(text: Any, word_lists: dict[str, tuple[tuple[tuple[str, bool], ...], ...]], gap: int) -> tuple[Element, ...]:
    if not isinstance(text, str) or not text.strip():
        raise _PatternError("must be a non-empty text")
    elements: list[Element] = []
    for raw in text.strip().split():
        token = raw.lower()
        optional = False
        if token.startswith("..."):
            size = token[3:]
            if size and not size.isdigit():
                raise _PatternError(f"'{raw}': a gap is '...' or '...N' (N = 1-{MAX_GAP})")
            size_n = int(size) if size else gap
            if not 1 <= size_n <= MAX_GAP:
                raise _PatternError(f"'{raw}': gap size must be 1-{MAX_GAP}")
            elements.append(Element(kind="gap", size=size_n))
            continue
        if len(token) > 1 and token.endswith("?"):
            optional, token = True, token[:-1]
        sentence_start = False
        if len(token) > 1 and token.startswith("^"):
            sentence_start, token = True, token[1:]
            if optional:
                raise _PatternError(f"'{raw}': a sentence-start word '^' cannot be optional")
        if token.startswith("#"):
            name = token[1:]
            if name not in SPECIALS:
                raise _PatternError(f"'{raw}': unknown special '#{name}' (known: {', '.join('#' + s for s in SPECIALS)})")
            if sentence_start:
                raise _PatternError(f"'{raw}': '^' goes with a word, not a '#special'")
            elements.append(Element(kind="special", special=name, optional=optional))
            continue
        alternatives: list[tuple[tuple[str, bool], ...]] = []
        for alt in token.split("|"):
            if not alt:
                raise _PatternError(f"'{raw}': empty alternative")
            if alt.startswith("<") and alt.endswith(">"):
                name = alt[1:-1]
                if name not in word_lists:
                    raise _PatternError(f"'{raw}': unknown word list <{name}>")
                alternatives.extend(word_lists[name])
                continue
            if alt.startswith("#"):
                if alt[1:] not in SPECIALS:
                    raise _PatternError(f"'{raw}': unknown special '{alt}' (known: {', '.join('#' + s for s in SPECIALS)})")
                alternatives.append(((alt, True),))
                continue
            exact_all = alt.startswith("=")
            sequence: list[tuple[str, bool]] = []
            for part in (alt[1:] if exact_all else alt).split("_"):
                exact = exact_all or part.startswith("=")
                word = part[1:] if part.startswith("=") else part
                if not word or not _ELEMENT_WORD.match(word):
                    raise _PatternError(f"'{raw}': '{alt}' is not a word or words joined by '_' (use lower-case "
                                        "words, '|', '<list>', '#special', '...')")
                expanded = [word] if word in _PUNCT_WORDS else normalise_text(word).split()
                if not expanded:
                    raise _PatternError(f"'{raw}': '{alt}' is empty after normalising")
                sequence.extend((w, exact) for w in expanded)
            alternatives.append(tuple(sequence))
        elements.append(Element(kind="words", alternatives=tuple(dict.fromkeys(alternatives)), optional=optional,
                                sentence_start=sentence_start))
    if all(e.kind == "gap" or e.optional for e in elements):
        raise _PatternError("needs at least one required word")
    if elements[0].kind == "gap" or elements[-1].kind == "gap":
        raise _PatternError("cannot start or end with a gap '...'")
    return tuple(elements)


def _parse_pattern_item(item: Any, word_lists, gap: int) -> Pattern:
    if isinstance(item, dict):
        unknown = set(item) - {"match", "near"}
        if unknown or "match" not in item:
            raise _PatternError("a pattern is a text, or a mapping with 'match' (and optional 'near')")
        near = _parse_pattern(item["near"], word_lists, gap) if "near" in item else None
        return Pattern(source=str(item["match"]), elements=_parse_pattern(item["match"], word_lists, gap), near=near,
                       near_source=str(item.get("near", "")))
    return Pattern(source=str(item), elements=_parse_pattern(item, word_lists, gap))


def _rule_ids(path: Path, field: str, value: Any, known: Any) -> list[str] | None:
    """A list of rule ids from a context cue (`applies_to` / `not_for`), each one checked to exist."""
    if value is None:
        return None
    names = _text_list(path, None, field, value, allow_empty=False)
    for name in names:
        if name not in known:
            raise DataFileError(path, f"'{name}' is not a rule id", field=field)
    return names


def _text_list(path: Path, entry: str | None, field_name: str, value: Any, allow_empty: bool = True) -> list:
    if value is None:
        value = []
    if not isinstance(value, list) or (not allow_empty and not value):
        raise DataFileError(path, "must be a list" + ("" if allow_empty else " with at least one item"), entry, field_name)
    return value


def load_rules(path: Path | str | None = None) -> TriageRules:
    """Read and validate the triage rules file. Errors name the file, the rule and the field."""
    path = Path(path or RULES_PATH)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise DataFileError(path, "must be a mapping with 'rules' and 'context'")
    unknown = set(raw) - TOP_FIELDS
    if unknown:
        raise DataFileError(path, f"unknown top-level field(s) {sorted(unknown)}; known: {sorted(TOP_FIELDS)}")

    settings = dict(SETTINGS_DEFAULTS)
    raw_settings = raw.get("settings") or {}
    if not isinstance(raw_settings, dict):
        raise DataFileError(path, "must be a mapping", field="settings")
    for key, value in raw_settings.items():
        if key not in SETTINGS_DEFAULTS:
            raise DataFileError(path, f"unknown setting (known: {sorted(SETTINGS_DEFAULTS)})", field=f"settings.{key}")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise DataFileError(path, "must be a positive number", field=f"settings.{key}")
        settings[key] = value
    gap = int(settings["gap"])
    if not 1 <= gap <= MAX_GAP:
        raise DataFileError(path, f"must be 1-{MAX_GAP}", field="settings.gap")

    word_lists: dict[str, tuple] = {}
    raw_lists = raw.get("word_lists") or {}
    if not isinstance(raw_lists, dict):
        raise DataFileError(path, "must be a mapping of list name -> words", field="word_lists")
    for name, words in raw_lists.items():
        if not isinstance(name, str) or not _SNAKE.match(name):
            raise DataFileError(path, f"list name {name!r} must be snake_case", field="word_lists")
        words = _text_list(path, None, f"word_lists.{name}", words, allow_empty=False)
        entries = []
        for index, word in enumerate(words):
            if not isinstance(word, str) or not word.strip():
                raise DataFileError(path, "must be a non-empty text", field=f"word_lists.{name}[{index}]")
            try:
                entries.append(_parse_word_list_entry(word))
            except _PatternError as error:
                raise DataFileError(path, str(error), field=f"word_lists.{name}[{index}]") from error
        word_lists[name] = tuple(dict.fromkeys(entries))

    def patterns(entry: str | None, field_name: str, items: Any) -> tuple[Pattern, ...]:
        parsed = []
        for index, item in enumerate(_text_list(path, entry, field_name, items)):
            try:
                parsed.append(_parse_pattern_item(item, word_lists, gap))
            except _PatternError as error:
                raise DataFileError(path, str(error), entry, f"{field_name}[{index}]") from error
        return tuple(parsed)

    conditions: dict[str, tuple[Pattern, ...]] = {}
    raw_conditions = raw.get("conditions") or {}
    if not isinstance(raw_conditions, dict):
        raise DataFileError(path, "must be a mapping of condition name -> patterns", field="conditions")
    for name, items in raw_conditions.items():
        if not isinstance(name, str) or not _SNAKE.match(name):
            raise DataFileError(path, f"condition name {name!r} must be snake_case", field="conditions")
        conditions[name] = patterns(None, f"conditions.{name}", items)
        if not conditions[name]:
            raise DataFileError(path, "needs at least one pattern", field=f"conditions.{name}")

    raw_rules = raw.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise DataFileError(path, "must be a non-empty list of rules", field="rules")

    # First pass: ids, so "@rule" references and "replaces" can be checked.
    ids: list[str] = []
    for index, item in enumerate(raw_rules):
        if not isinstance(item, dict):
            raise DataFileError(path, "each rule must be a mapping", field=f"rules[{index}]")
        rule_id = item.get("id")
        if not isinstance(rule_id, str) or not _SNAKE.match(rule_id):
            raise DataFileError(path, "must be a snake_case id", f"rules[{index}]", "id")
        if rule_id in ids:
            raise DataFileError(path, "duplicate rule id", rule_id, "id")
        ids.append(rule_id)

    own_patterns: dict[str, tuple[Pattern, ...]] = {}
    raw_by_id = dict(zip(ids, raw_rules, strict=True))
    for rule_id, item in raw_by_id.items():
        unknown = set(item) - RULE_FIELDS
        if unknown:
            raise DataFileError(path, f"unknown field(s) {sorted(unknown)}; known: {sorted(RULE_FIELDS)}", rule_id)
        pats = item.get("patterns")
        own_patterns[rule_id] = tuple(
            p for p in patterns(rule_id, "patterns", [x for x in _text_list(path, rule_id, "patterns", pats)
                                                      if not (isinstance(x, str) and x.startswith("@"))])
        )

    rules: list[Rule] = []
    for rule_id, item in raw_by_id.items():
        for key in REQUIRED_RULE_FIELDS:
            if key not in item:
                raise DataFileError(path, "is required", rule_id, key)
        level = item["level"]
        if level not in LEVELS:
            raise DataFileError(path, f"must be one of {list(LEVELS)}, not {level!r}", rule_id, "level")
        label = require_text(path, rule_id, "label", item["label"])
        source = require_text(path, rule_id, "source", item["source"])

        def group_patterns(field_name: str, items: Any, rule_id: str = rule_id) -> tuple[tuple[str, Pattern], ...]:
            out: list[tuple[str, Pattern]] = []
            for index, entry in enumerate(_text_list(path, rule_id, field_name, items)):
                if isinstance(entry, str) and entry.startswith("@"):
                    ref = entry[1:]
                    if ref not in own_patterns or ref == rule_id:
                        raise DataFileError(path, f"'{entry}' must name another rule", rule_id, f"{field_name}[{index}]")
                    if not own_patterns[ref]:
                        raise DataFileError(path, f"'{entry}': that rule has no patterns of its own", rule_id,
                                            f"{field_name}[{index}]")
                    out.extend((ref, p) for p in own_patterns[ref])
                else:
                    try:
                        out.append((rule_id, _parse_pattern_item(entry, word_lists, gap)))
                    except _PatternError as error:
                        raise DataFileError(path, str(error), rule_id, f"{field_name}[{index}]") from error
            return tuple(out)

        groups: dict[str, tuple[tuple[str, Pattern], ...]] = {}
        main = group_patterns("patterns", item.get("patterns"))
        if main:
            groups["main"] = main
        raw_groups = item.get("groups") or {}
        if not isinstance(raw_groups, dict):
            raise DataFileError(path, "must be a mapping of group name -> patterns", rule_id, "groups")
        for name, items in raw_groups.items():
            if not isinstance(name, str) or not _SNAKE.match(name) or name == "main" or name in conditions:
                raise DataFileError(path, f"group name {name!r} must be snake_case, not 'main' and not a condition name",
                                    rule_id, "groups")
            groups[name] = group_patterns(f"groups.{name}", items)
            if not groups[name]:
                raise DataFileError(path, "needs at least one pattern", rule_id, f"groups.{name}")

        token_patterns = []
        for index, tp in enumerate(_text_list(path, rule_id, "token_patterns", item.get("token_patterns"))):
            if not isinstance(tp, list) or not tp or not all(isinstance(t, dict) for t in tp):
                raise DataFileError(path, "a spaCy token pattern is a non-empty list of mappings", rule_id,
                                    f"token_patterns[{index}]")
            token_patterns.append(tp)

        fires_when: list[tuple[str, ...]] = []
        for index, combo in enumerate(_text_list(path, rule_id, "fires_when", item.get("fires_when"))):
            if not isinstance(combo, list) or not combo:
                raise DataFileError(path, "each combination is a non-empty list of group / condition names", rule_id,
                                    f"fires_when[{index}]")
            for name in combo:
                if name not in groups and name not in conditions:
                    raise DataFileError(path, f"'{name}' is neither a group of this rule nor a condition", rule_id,
                                        f"fires_when[{index}]")
            if not any(name in groups for name in combo):
                raise DataFileError(path, "a combination needs at least one symptom group", rule_id, f"fires_when[{index}]")
            fires_when.append(tuple(combo))
        if not groups and not token_patterns:
            raise DataFileError(path, "a rule needs 'patterns', 'groups' or 'token_patterns'", rule_id, "patterns")
        if raw_groups and not fires_when:
            raise DataFileError(path, "a rule with 'groups' needs 'fires_when'", rule_id, "fires_when")

        fuzzy = []
        for index, word in enumerate(_text_list(path, rule_id, "fuzzy", item.get("fuzzy"))):
            if not isinstance(word, str) or not re.fullmatch(r"[a-z]{4,}", word.strip().lower()):
                raise DataFileError(path, "fuzzy terms are single words of 4+ letters", rule_id, f"fuzzy[{index}]")
            fuzzy.append(word.strip().lower())
        replaces = []
        for index, other in enumerate(_text_list(path, rule_id, "replaces", item.get("replaces"))):
            if other not in own_patterns or other == rule_id:
                raise DataFileError(path, f"'{other}' must name another rule", rule_id, f"replaces[{index}]")
            replaces.append(other)

        rules.append(Rule(
            id=rule_id, level=level, label=label, source=source, groups=groups, fires_when=tuple(fires_when),
            exclude=patterns(rule_id, "exclude", item.get("exclude")), fuzzy=tuple(fuzzy), replaces=tuple(replaces),
            token_patterns=tuple(token_patterns),
        ))

    context: list[ContextGroup] = []
    raw_context = raw.get("context")
    if not isinstance(raw_context, list) or not raw_context:
        raise DataFileError(path, "must be a non-empty list of context groups", field="context")
    for index, item in enumerate(raw_context):
        where = f"context[{index}]"
        if not isinstance(item, dict):
            raise DataFileError(path, "must be a mapping", field=where)
        unknown = set(item) - CONTEXT_FIELDS
        if unknown:
            raise DataFileError(path, f"unknown field(s) {sorted(unknown)}; known: {sorted(CONTEXT_FIELDS)}", field=where)
        category = item.get("category")
        if category not in CONTEXT_CATEGORIES:
            raise DataFileError(path, f"must be one of {sorted(CONTEXT_CATEGORIES)}", field=f"{where}.category")
        direction = item.get("direction", "pseudo" if category in {"clause_break", "and_break", "ignore"} else "both")
        if direction not in DIRECTIONS:
            raise DataFileError(path, f"must be one of {sorted(DIRECTIONS)}", field=f"{where}.direction")
        max_words = item.get("max_words")
        if max_words is not None and (not isinstance(max_words, int) or isinstance(max_words, bool) or max_words <= 0):
            raise DataFileError(path, "must be a positive whole number", field=f"{where}.max_words")
        stops_at = _text_list(path, None, f"{where}.stops_at", item.get("stops_at"))
        for name in stops_at:
            if name not in CONTEXT_CATEGORIES:
                raise DataFileError(path, f"'{name}' is not a context category", field=f"{where}.stops_at")
        applies_to = _rule_ids(path, f"{where}.applies_to", item.get("applies_to"), own_patterns)
        not_for = _rule_ids(path, f"{where}.not_for", item.get("not_for"), own_patterns)
        if not_for is not None:
            if applies_to:
                raise DataFileError(path, "use either applies_to or not_for", field=f"{where}.not_for")
        phrases = patterns(None, f"{where}.phrases", item.get("phrases"))
        if not phrases:
            raise DataFileError(path, "needs at least one phrase", field=f"{where}.phrases")
        context.append(ContextGroup(
            category=CONTEXT_CATEGORIES[category], direction=DIRECTIONS[direction], max_words=max_words,
            stops_at=tuple(CONTEXT_CATEGORIES[s] for s in stops_at),
            applies_to=tuple(applies_to) if applies_to else None, not_for=tuple(not_for) if not_for else None,
            phrases=phrases,
        ))

    global_fuzzy = []
    for index, word in enumerate(_text_list(path, None, "fuzzy", raw.get("fuzzy"))):
        if not isinstance(word, str) or not re.fullmatch(r"[a-z]{4,}", word.strip().lower()):
            raise DataFileError(path, "fuzzy terms are single words of 4+ letters", field=f"fuzzy[{index}]")
        global_fuzzy.append(word.strip().lower())

    return TriageRules(
        path=str(path), settings=settings, rules=tuple(rules), conditions=conditions, context=tuple(context),
        fuzzy=tuple(global_fuzzy), exclude=patterns(None, "exclude", raw.get("exclude")),
    )


# --------------------------------------------------------------------------------------------------
# Word forms and the spelling vocabulary (from spacy-lookups-data, read from the installed package)


@lru_cache(maxsize=1)
def _lookups() -> tuple[dict[str, str], dict[str, frozenset[str]], frozenset[str]]:
    """(form -> lemma, lemma -> forms, known English words)."""
    import spacy_lookups_data

    data = Path(spacy_lookups_data.__file__).parent / "data"
    with gzip.open(data / "en_lemma_lookup.json.gz", "rt", encoding="utf-8") as handle:
        lemma_lookup: dict[str, str] = json.load(handle)
    with gzip.open(data / "en_lemma_index.json.gz", "rt", encoding="utf-8") as handle:
        index: dict[str, list[str]] = json.load(handle)
    reverse: dict[str, set[str]] = defaultdict(set)
    for form, lemma in lemma_lookup.items():
        reverse[lemma].add(form)
    known = set(lemma_lookup) | set(lemma_lookup.values())
    for words in index.values():
        known.update(words)
    return lemma_lookup, {k: frozenset(v) for k, v in reverse.items()}, frozenset(w for w in known if w.isalpha())


def word_forms(word: str, exact: bool = False) -> frozenset[str]:
    """The inflected forms a pattern word matches: 'bleed' -> bleed, bleeds, bleeding, bled.

    Comparatives/superlatives are left out ('numb' must not match 'number'); '=word' matches only itself.
    """
    if exact or not word.isalpha():
        return frozenset({word})
    lemma_lookup, reverse, _ = _lookups()
    lemma = lemma_lookup.get(word, word)
    base = lemma if lemma[:3] == word[:3] else word
    forms = {word, base}
    for form in reverse.get(base, ()):
        if form.endswith(("er", "est")) and not base.endswith(("er", "est")):
            continue
        forms.add(form)
    return frozenset(forms)


# --------------------------------------------------------------------------------------------------
# The detector


_NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
                 "couple": 2, "few": 3, "several": 4, "24": 24, "48": 48}
_HOUR_WORDS = {"hour", "hours", "h"}
_DAY_WORDS = {"day", "days", "week", "weeks", "month", "months", "night", "nights"}
_F_UNITS = {"f", "fahrenheit", "farenheit"}
_C_UNITS = {"c", "celsius", "centigrade"}


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _norm_token(forms: frozenset[str]) -> dict:
    return {"NORM": next(iter(forms))} if len(forms) == 1 else {"NORM": {"IN": sorted(forms)}}


class _MatcherBank:
    """Many small spaCy Matchers, each run only when its trigger word occurs in the text.

    spaCy's Matcher tries every pattern at every token, so one Matcher with thousands of patterns costs
    milliseconds per message. Each spaCy pattern is filed under a word it cannot match without (its rarest
    required word), so a typical message runs only a few small Matchers.
    """

    def __init__(self, vocab) -> None:
        self.vocab = vocab
        self.matchers: list[Any] = []
        self._by_trigger: dict[frozenset[str], int] = {}
        self.index: dict[str, list[int]] = defaultdict(list)  # word or '#flag' -> matcher numbers
        self.patterns = 0

    def add(self, key: str, spacy_patterns: list[list[dict]]) -> None:
        from spacy.matcher import Matcher

        grouped: dict[frozenset[str], list[list[dict]]] = defaultdict(list)
        for pattern in spacy_patterns:
            grouped[_pattern_trigger(pattern)].append(pattern)
        for trigger, patterns in grouped.items():
            number = self._by_trigger.get(trigger)
            if number is None:
                number = self._by_trigger[trigger] = len(self.matchers)
                self.matchers.append(Matcher(self.vocab, validate=False))  # generated patterns: skip the slow schema check
                for word in trigger:
                    self.index[word].append(number)
            self.matchers[number].add(key, patterns)
            self.patterns += len(patterns)

    def __len__(self) -> int:
        return len(self.matchers)

    def __call__(self, doc, words: set[str]) -> list[tuple[str, int, int]]:
        strings = self.vocab.strings
        numbers: set[int] = set()
        for word in words:
            numbers.update(self.index.get(word, ()))
        found: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for number in sorted(numbers):
            for match_id, start, end in self.matchers[number](doc):
                found[strings[match_id]].append((start, end))
        out = []
        for key, spans in found.items():  # per key: the longest of overlapping matches
            kept: list[tuple[int, int]] = []
            for start, end in sorted(set(spans), key=lambda se: (se[0] - se[1], se[0])):
                if all(end <= s or start >= e for s, e in kept):
                    kept.append((start, end))
            out.extend((key, start, end) for start, end in kept)
        return sorted(out, key=lambda m: (m[1], m[2], m[0]))


@lru_cache(maxsize=1)
def _common_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS) | {"feel", "feels", "felt", "feeling", "get", "got", "go", "going", "like", "really",
                                    "so", "just", "now", "back", "out", "up", "down", "still", "keep", "have"}


def _pattern_trigger(pattern: list[dict]) -> frozenset[str]:
    """The value set of the pattern's rarest required token (small sets of uncommon words are best)."""
    common = _common_words()
    best: frozenset[str] | None = None
    best_score = 0.0
    for token in pattern:
        if token.get("OP") in {"?", "*"}:
            continue
        if "NORM" not in token and "_" in token:
            values = frozenset("#" + name.removeprefix("triage_") for name in token["_"])
            score = 2.0
        else:
            norm = token.get("NORM")
            if isinstance(norm, str):
                values = frozenset({norm})
            elif isinstance(norm, dict) and "IN" in norm:
                values = frozenset(norm["IN"])
            else:
                continue
            score = len(values) + (100.0 if values & common else 0.0)
        if best is None or score < best_score:
            best, best_score = values, score
    if best is None:
        raise ValueError(f"pattern has no required word: {pattern}")
    return best


class TriageDetector:
    """Built once from a rules file; `detect` is thread-safe for reading (spaCy docs are per call)."""

    def __init__(self, rules: TriageRules, use_context: bool = True, context_rules: str = "project") -> None:
        import spacy
        from spacy.matcher import Matcher, PhraseMatcher
        from spacy.tokens import Token

        self.rules = rules
        self.use_context = use_context
        settings = rules.settings
        self._fever_f = float(settings["fever_threshold_f"])
        self._fever_c = float(settings["fever_threshold_c"])
        self._long_hours = float(settings["long_duration_hours"])
        self._fuzzy_min = int(settings["fuzzy_min_length"])

        for attr in (*FLAG_ATTRS.values(), SENTENCE_START_ATTR):
            if not Token.has_extension(attr):
                Token.set_extension(attr, default=False)

        nlp = spacy.blank("en")
        nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
        nlp.add_pipe("sentencizer")
        nlp.initialize()  # lemma tables come from the installed spacy-lookups-data package
        self.nlp = nlp
        self._pipes = [proc for _, proc in nlp.pipeline]

        _, _, known = _lookups()
        self._known_words = known
        self._rule_by_id = {rule.id: rule for rule in rules.rules}

        # Spelling vocabulary: the rules' fuzzy terms plus every 5+ letter word the patterns use.
        pattern_words: set[str] = set()
        for rule in rules.rules:
            for group in rule.groups.values():
                for _, pattern in group:
                    pattern_words.update(self._words_of(pattern))
        fuzzy = set(rules.fuzzy) | {w for rule in rules.rules for w in rule.fuzzy}
        fuzzy |= {w for w in pattern_words if len(w) >= self._fuzzy_min and w.isalpha()}
        self._fuzzy_vocab = tuple(sorted(fuzzy))
        self._correct = lru_cache(maxsize=20_000)(self._correct_uncached)

        # Matchers: targets (T), "near" cues (C) and conditions (K); exclusions (X) in their own bank and,
        # when they are plain phrases, in a PhraseMatcher.
        self.bank = _MatcherBank(nlp.vocab)
        self.exclude_bank = _MatcherBank(nlp.vocab)
        self.exclude_phrases = PhraseMatcher(nlp.vocab, attr="NORM")
        self._target_info: dict[str, tuple[str, str, str, str | None]] = {}  # key -> (rule, group, origin, cue key)
        self._always: list[Any] = []  # raw spaCy token patterns from the rules file (no trigger)
        cue_count = 0
        for rule in rules.rules:
            for group, items in rule.groups.items():
                for origin, pattern in items:
                    cue_key = None
                    if pattern.near is not None:
                        cue_key = f"C|{cue_count}"
                        cue_count += 1
                        self._add(self.bank, cue_key, pattern.near, where=(rule.id, pattern.near_source))
                    key = f"T|{rule.id}|{group}|{origin}|{cue_key or ''}"
                    self._target_info[key] = (rule.id, group, origin, cue_key)
                    self._add(self.bank, key, pattern.elements, where=(rule.id, pattern.source))
            if rule.token_patterns:
                key = f"T|{rule.id}|main|{rule.id}|"
                self._target_info[key] = (rule.id, "main", rule.id, None)
                matcher = Matcher(nlp.vocab, validate=True)
                try:
                    matcher.add(key, [list(tp) for tp in rule.token_patterns])
                except Exception as error:  # spaCy's own validation error
                    raise DataFileError(rules.path, f"invalid spaCy token pattern ({error})", rule.id,
                                        "token_patterns") from error
                self._always.append(matcher)
            for pattern in rule.exclude:
                self._add_exclude(f"X|{rule.id}", pattern, rule.id)
        for pattern in rules.exclude:
            self._add_exclude("X|*", pattern, None)
        for name, items in rules.conditions.items():
            for pattern in items:
                if pattern.near is not None:
                    raise DataFileError(rules.path, "'near' is not supported in conditions", None, f"conditions.{name}")
                self._add(self.bank, f"K|{name}", pattern.elements, where=(None, f"conditions.{name}: {pattern.source}"))

        self.context = None
        if use_context:
            self.context = self._build_context(context_rules)

    # -- building ---------------------------------------------------------------------------------

    @staticmethod
    def _words_of(pattern: Pattern) -> set[str]:
        words = set()
        for element in pattern.elements:
            for alt in element.alternatives:
                words.update(w for w, _ in alt)
        return words

    def _token_dicts(self, elements: tuple[Element, ...], where: tuple[str | None, str]) -> list[list[dict]]:
        choices: list[list[list[dict]]] = []
        for element in elements:
            if element.kind == "gap":
                gap_token = {"NORM": {"NOT_IN": GAP_STOP}, "IS_SENT_START": False, "OP": "?"}
                choices.append([[dict(gap_token) for _ in range(element.size)]])
            elif element.kind == "special":
                token = {"_": {FLAG_ATTRS[element.special]: True}}
                if element.optional:
                    token["OP"] = "?"
                choices.append([[token]])
            else:
                singles: set[str] = set()
                sequences: list[list[dict]] = []
                for alt in element.alternatives:
                    if len(alt) == 1 and not alt[0][0].startswith("#"):
                        singles |= word_forms(*alt[0])
                    else:
                        sequences.append([{"_": {FLAG_ATTRS[w[1:]]: True}} if w.startswith("#")
                                          else _norm_token(word_forms(w, exact)) for w, exact in alt])
                options: list[list[dict]] = []
                if singles:
                    token = _norm_token(frozenset(singles))
                    if element.optional:
                        token["OP"] = "?"
                    options.append([token])
                options.extend(sequences)
                if element.sentence_start:
                    for option in options:
                        option[0] = {**option[0], "_": {**option[0].get("_", {}), SENTENCE_START_ATTR: True}}
                if element.optional and not singles:
                    options.append([])
                choices.append(options)
        total = 1
        for options in choices:
            total *= len(options)
        if total > MAX_COMBINATIONS:
            rule_id, source = where
            raise DataFileError(self.rules.path, f"pattern {source!r} expands to {total} alternatives "
                                                 f"(limit {MAX_COMBINATIONS}); split it or shorten its word lists",
                                rule_id, "patterns" if rule_id else "conditions / context")
        patterns = []
        for combo in product(*choices):
            tokens = [token for part in combo for token in part]
            if tokens:
                patterns.append(tokens)
        return patterns

    def _add(self, bank: _MatcherBank, key: str, elements: tuple[Element, ...], where) -> None:
        bank.add(key, self._token_dicts(elements, where))

    def _add_exclude(self, key: str, pattern: Pattern, rule_id: str | None) -> None:
        simple = all(e.kind == "words" and not e.optional and len(e.alternatives) == 1 and len(e.alternatives[0]) == 1
                     and e.alternatives[0][0][1] for e in pattern.elements)
        if simple:  # only exact words: a plain phrase
            words = [e.alternatives[0][0][0] for e in pattern.elements]
            self.exclude_phrases.add(key, [self.nlp.make_doc(" ".join(words))])
        else:
            self._add(self.exclude_bank, key, pattern.elements, where=(rule_id, pattern.source))

    def _build_context(self, which: str):
        """medspaCy ConText rules in a MedspacyMatcher (phrases -> PhraseMatcher, patterns -> Matcher)."""
        from medspacy.common.medspacy_matcher import MedspacyMatcher
        from medspacy.context import ConTextRule

        # prune=False: overlapping cues are resolved in _context (only cues inside a longer cue are dropped)
        matcher = MedspacyMatcher(self.nlp, name="triage_context", phrase_matcher_attr="LOWER", prune=False)
        if which == "medspacy_default":  # only for measuring: the VA clinical-note rules shipped with medspaCy
            import medspacy.context.context as context_module

            default = Path(context_module.__file__).resolve().parents[2] / "resources" / "en" / "context_rules.json"
            matcher.add(ConTextRule.from_json(str(default)))
            return matcher
        context_rules = []
        for index, group in enumerate(self.rules.context):
            allowed = {r.upper() for r in group.applies_to} if group.applies_to else None
            excluded = {r.upper() for r in group.not_for} if group.not_for else None
            options = dict(category=group.category, direction=group.direction, max_scope=group.max_words,
                           terminated_by=set(group.stops_at) or None, allowed_types=allowed, excluded_types=excluded)
            for phrase in group.phrases:
                plain = all(e.kind == "words" and not e.optional and len(e.alternatives) == 1 for e in phrase.elements)
                if plain:
                    words = " ".join(w for e in phrase.elements for w, _ in e.alternatives[0])
                    context_rules.append(ConTextRule(literal=words, **options))
                else:
                    for token_pattern in self._token_dicts(phrase.elements, (None, f"context[{index}] {phrase.source}")):
                        context_rules.append(ConTextRule(literal=phrase.source, pattern=token_pattern, **options))
        matcher.add(context_rules)
        return matcher

    def _context(self, doc, targets: list) -> list[list]:
        """The ConText modifiers (cues) that reach each target.

        medspaCy's ConText algorithm: ConTextRule matches become ConTextModifiers with a scope (direction,
        max_scope, sentence); a modifier's scope is cut where a cue of a category in its ``terminated_by``
        (or of its own category) begins; a target within a scope gets the modifier. Three changes:
        * overlaps are tested correctly (medspaCy 1.3.1's ``tuple_overlaps`` misses a span that contains
          the other, so a sentence-wide clause break never cut a negation with a max_scope);
        * a cue lying inside a longer cue or inside a symptom mention is dropped ("if" in "not sure if",
          "not" in "can not move my foot"), and only those: overlapping cues are both kept;
        * a cue that reaches into a mention applies to it ("is fever normal"), except a negation that
          only partly overlaps one ("do not have any feeling in my groin" keeps its own negation).
        Results are kept per mention (spaCy 3.4 keys span extensions by character offsets only).
        """
        from medspacy.context.context_modifier import ConTextModifier

        rule_map = self.context.rule_map
        matches = sorted(set(self.context(doc)), key=lambda m: (m[1], -m[2]))
        spans = [(start, end) for _, start, end in matches]
        modifiers = []
        for match_id, start, end in matches:
            if any(s <= start and end <= e and (s, e) != (start, end) for s, e in spans):
                continue
            if any(t.start <= start and end <= t.end and (t.start, t.end) != (start, end) for t in targets):
                continue
            modifiers.append(ConTextModifier(rule_map[self.nlp.vocab.strings[match_id]], start, end, doc))
        per_target: list[list] = [[] for _ in targets]
        if not modifiers:
            return per_target

        def overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
            return a[0] < b[1] and b[0] < a[1]

        scopes = {id(m): list(m.scope_span) for m in modifiers}
        for m in modifiers:
            if m.direction in ("TERMINATE", "PSEUDO"):
                continue
            scope = scopes[id(m)]
            m_start, m_end = m.modifier_span
            for other in modifiers:
                if other is m:
                    continue
                o_start, o_end = other.modifier_span
                if not (other.direction == "TERMINATE" or other.category in m.rule.terminated_by
                        or other.category == m.category):
                    continue
                if other.category == m.category and (m.allowed_types != other.allowed_types
                                                     or m.excluded_types != other.excluded_types):
                    continue
                if m.direction in ("FORWARD", "BIDIRECTIONAL") and o_start >= m_end:
                    scope[1] = min(scope[1], o_start)
                if m.direction in ("BACKWARD", "BIDIRECTIONAL") and o_end <= m_start:
                    scope[0] = max(scope[0], o_end)
        for m in modifiers:
            if m.direction in ("TERMINATE", "PSEUDO"):
                continue
            scope = tuple(scopes[id(m)])
            m_span = m.modifier_span
            for i, target in enumerate(targets):
                if not m.allows(target.label_.upper()):
                    continue
                t_span = (target.start, target.end)
                if overlap(m_span, t_span):
                    contains = m_span[0] <= t_span[0] and t_span[1] <= m_span[1]
                    if contains or m.category != "NEGATED_EXISTENCE":
                        per_target[i].append(m)
                elif scope[0] < scope[1] and overlap(scope, t_span):
                    per_target[i].append(m)
        return per_target

    # -- per message --------------------------------------------------------------------------------

    def _correct_uncached(self, word: str) -> str | None:
        from rapidfuzz import process
        from rapidfuzz.distance import OSA

        max_distance = 1 if len(word) < 8 else 2
        candidates = [w for w in self._fuzzy_vocab if w[0] == word[0] and abs(len(w) - len(word)) <= max_distance]
        if not candidates:
            return None
        best = process.extractOne(word, candidates, scorer=OSA.distance, score_cutoff=max_distance)
        return best[0] if best else None

    def _flag_tokens(self, doc) -> set[str]:
        """Set each token's NORM (spelling-corrected) and number flags; returns the set of norms and '#flags'."""
        tokens = list(doc)
        n = len(tokens)
        words: set[str] = set()
        for i, token in enumerate(tokens):
            text = token.lower_
            token.norm_ = text
            words.add(text)
            if i == 0 or tokens[i - 1].lower_ in {".", "?", "!", ";", ":"}:
                token._.set(SENTENCE_START_ATTR, True)
            if text.isalpha():
                if len(text) > 4 and text.endswith("ing"):
                    token._.set(FLAG_ATTRS["ing"], True)
                    words.add("#ing")
                if (len(text) >= self._fuzzy_min and len(text) <= 30 and text.isascii()
                        and text not in self._known_words):
                    corrected = self._correct(text)
                    if corrected:
                        token.norm_ = corrected
                        words.add(corrected)
                continue
            value = _number(text) if token.like_num or "." in text else None
            if value is None and text in _NUMBER_WORDS:
                value = float(_NUMBER_WORDS[text])
            if value is None:
                continue
            nxt = tokens[i + 1].lower_ if i + 1 < n else ""
            after = tokens[i + 2].lower_ if i + 2 < n else ""
            if (nxt in _HOUR_WORDS and value >= self._long_hours) or nxt in _DAY_WORDS or (
                    nxt in {"more", "whole", "full"} and after in _DAY_WORDS):
                token._.set(FLAG_ATTRS["long_duration"], True)
                words.add("#long_duration")
            if not text[0].isdigit():
                continue
            token._.set(FLAG_ATTRS["num"], True)
            words.add("#num")
            if "." not in text and 110 <= value <= 250:
                token._.set(FLAG_ATTRS["high_rate"], True)
                words.add("#high_rate")
            unit = after if nxt in {"degrees", "degree", "deg"} else nxt
            fever_f = self._fever_f <= value <= 110
            fever_c = self._fever_c <= value <= 43
            low_f = 95 <= value < self._fever_f
            low_c = 35 <= value < self._fever_c
            if unit in _F_UNITS:
                fever_c = low_c = False
            elif unit in _C_UNITS:
                fever_f = low_f = False
            if fever_f or fever_c:
                token._.set(FLAG_ATTRS["fever_temp"], True)
                words.add("#fever_temp")
                if "." in text and fever_f and value <= 107:
                    token._.set(FLAG_ATTRS["fever_decimal"], True)
                    words.add("#fever_decimal")
            elif low_f or low_c:
                token._.set(FLAG_ATTRS["low_temp"], True)
                words.add("#low_temp")
        return words

    def _chunks(self, text: str) -> Iterable[tuple[str, int]]:
        """Pieces of at most CHUNK_CHARS, cut after a sentence end or a space where possible."""
        if len(text) > MAX_SCAN_CHARS:
            head, tail_start = 16_000, len(text) - 4_000
            parts = [(text[:head], 0), (text[tail_start:], tail_start)]
        else:
            parts = [(text, 0)]
        for part, base in parts:
            start = 0
            while start < len(part):
                end = min(len(part), start + CHUNK_CHARS)
                if end < len(part):
                    window = part[start:end]
                    cut = max(window.rfind(". "), window.rfind("? "), window.rfind("! "), window.rfind("\n"))
                    if cut < CHUNK_CHARS // 3:
                        cut = window.rfind(" ")
                    if cut >= CHUNK_CHARS // 3:
                        end = start + cut + 1
                yield part[start:end], base + start
                start = end

    def detect(self, text: Any) -> TriageResult:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        if not isinstance(text, str) or not text.strip():
            return EMPTY_RESULT
        spans: list[TriageSpan] = []
        satisfied: dict[str, set[str]] = defaultdict(set)  # rule -> groups with an asserted mention
        conditions: set[str] = set()
        errors = []
        for chunk, base in self._chunks(text):
            try:
                self._scan(chunk, base, text, spans, satisfied, conditions)
            except Exception as error:  # never let one odd chunk hide the rest of the message
                logger.exception("triage: could not scan a piece of the message")
                errors.append(f"{type(error).__name__}: {error}")
        fired: list[str] = []
        for rule in self.rules.rules:
            groups = satisfied.get(rule.id, set())
            if rule.fires_when:
                if any(all(name in groups or name in conditions for name in combo) for combo in rule.fires_when):
                    fired.append(rule.id)
            elif groups:
                fired.append(rule.id)
        replaced = {other for rule_id in fired for other in self._rule_by_id[rule_id].replaces}
        fired = [rule_id for rule_id in fired if rule_id not in replaced]
        asserted = sorted((s for s in spans if s.status == "asserted" and s.rule in fired), key=lambda s: (s.start, s.end))
        order = {rule_id: i for i, rule_id in enumerate(fired)}
        for span in asserted:
            order[span.rule] = min(order.get(span.rule, 10**9), span.start - 10**8)
        symptoms = tuple(sorted(fired, key=lambda r: order[r]))
        level = None
        for candidate in LEVELS:
            if any(self._rule_by_id[r].level == candidate for r in symptoms):
                level = candidate
                break
        ignored = tuple(sorted((s for s in spans if s.status != "asserted"), key=lambda s: (s.start, s.end)))
        return TriageResult(level=level, symptoms=symptoms, spans=tuple(asserted), ignored=ignored,
                            error="; ".join(errors) or None)

    def _scan(self, chunk: str, base: int, original: str, spans: list[TriageSpan], satisfied, conditions: set[str]):
        from spacy.tokens import Span

        norm, offsets = normalise(chunk, base)
        if not norm.strip():
            return
        doc = self.nlp.make_doc(norm)
        words = self._flag_tokens(doc)
        for proc in self._pipes:
            doc = proc(doc)
        strings = self.nlp.vocab.strings
        matches = self.bank(doc, words)
        for matcher in self._always:
            matches.extend((strings[m], s, e) for m, s, e in matcher(doc))
        if not any(key.startswith("T|") for key, _, _ in matches):
            return
        excluded: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for key, start, end in self.exclude_bank(doc, words):
            excluded[key[2:]].append((start, end))
        for match_id, start, end in self.exclude_phrases(doc):
            excluded[strings[match_id][2:]].append((start, end))
        sentence_of = [0] * len(doc)
        for number, sent in enumerate(doc.sents):
            for i in range(sent.start, sent.end):
                sentence_of[i] = number
        near_cues: dict[str, set[int]] = defaultdict(set)  # 'near' key -> indexes of the sentences with it
        found: list[tuple[int, int, str]] = []
        for key, start, end in matches:
            if key.startswith("C|"):
                near_cues[key].add(sentence_of[start])
            elif key.startswith("K|"):
                conditions.add(key[2:])
            else:
                found.append((start, end, key))
        targets = []
        for start, end, key in sorted(found):
            rule_id, group, origin, cue_key = self._target_info[key]
            if cue_key:  # the cue must be in the same sentence or the one before
                here = sentence_of[start]
                if not near_cues.get(cue_key, set()) & {here, here - 1}:
                    continue
            blocked = excluded.get(origin, []) + excluded.get(rule_id, []) + excluded.get("*", [])
            if any(s < end and start < e for s, e in blocked):
                continue
            targets.append(Span(doc, start, end, label=origin, kb_id=f"{rule_id}|{group}"))
        if not targets:
            return
        context = self._context(doc, targets) if self.context is not None else [[] for _ in targets]
        for target, modifiers in zip(targets, context, strict=True):
            rule_id, group = target.kb_id_.split("|", 1)
            status, cue_texts = self._status(target, modifiers)
            start = offsets[target.start_char]
            end = offsets[max(target.end_char - 1, target.start_char)] + 1
            spans.append(TriageSpan(rule=rule_id, group=group, start=start, end=end, text=original[start:end],
                                    status=status, cues=cue_texts))
            if status == "asserted":
                satisfied[rule_id].add(group)

    @staticmethod
    def _status(target, modifiers: list) -> tuple[str, tuple[str, ...]]:
        """Whether a mention counts, from the context cues that reach it. When in doubt it counts."""
        doc = target.doc
        categories = {m.category for m in modifiers}
        cue_texts = tuple(f"{m.category}:{doc[m.modifier_span[0]:m.modifier_span[1]].text}" for m in modifiers)
        strong = "CURRENT" in categories
        recent = strong or "RECENT" in categories
        if "NEGATED_EXISTENCE" in categories:
            return "negated", cue_texts
        if "LOW_TEMPERATURE" in categories and not any(t._.get(FLAG_ATTRS["fever_temp"]) for t in target):
            return "negated", cue_texts
        if "EXPECTED" in categories and "LONG_DURATION" not in categories:
            return "expected", cue_texts
        if "RESOLVED" in categories and not strong:
            return "resolved", cue_texts
        if "HYPOTHETICAL" in categories and not strong:
            return "hypothetical", cue_texts
        if "GENERIC_QUESTION" in categories and not strong:
            # "is a fever normal after?" is a general question; "is numbness in my groin normal?" is a report.
            sentence = doc[target.start].sent
            family = {i for m in modifiers if m.category == "FAMILY" for i in range(*m.modifier_span)}
            reports = any(
                t.i not in family and (t.lower_ in FIRST_PERSON_REPORT or (
                    t.lower_ == "i" and t.i + 1 < sentence.end and doc[t.i + 1].lower_ in FIRST_PERSON_VERBS))
                for t in sentence
            )
            if not reports:
                return "hypothetical", cue_texts
        if "HISTORICAL" in categories and not recent:
            return "historical", cue_texts
        if categories & {"FAMILY", "NOT_PATIENT"} and not recent:
            others = {i for m in modifiers if m.category in {"FAMILY", "NOT_PATIENT"} for i in range(*m.modifier_span)}
            sentence = doc[target.start].sent
            window = range(max(sentence.start, target.start - 4), min(sentence.end, target.end + 2))
            mine = any(doc[i].lower_ in FIRST_PERSON and i not in others for i in range(max(0, target.start - 3), target.end))
            present = any(doc[i].lower_ in PRESENT_TENSE and i not in others for i in window)
            if not mine and ("NOT_PATIENT" in categories or not present):
                return "other_person", cue_texts
        return "asserted", cue_texts


# --------------------------------------------------------------------------------------------------
# The shared instance


_DETECTOR: TriageDetector | None = None
_BUILD_ERROR: str | None = None
_DETECTOR_LOCK = threading.Lock()


def build_detector(path: Path | str | None = None, **options: Any) -> TriageDetector:
    return TriageDetector(load_rules(path), **options)


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
    "LEVELS", "RULES_PATH", "TriageDetector", "TriageResult", "TriageRules", "TriageSpan", "build_detector", "detect",
    "get_detector", "load_rules", "normalise", "normalise_text", "reset_detector", "rule_level", "word_forms",
]
