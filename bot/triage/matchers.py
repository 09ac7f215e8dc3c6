"""spaCy Matchers for the rules' patterns: token patterns, token flag names and the trigger-word bank."""

from __future__ import annotations

from collections import defaultdict
from itertools import product
from typing import Any

from bot.datafile import DataFileError
from bot.triage.lexicon import common_words, word_forms
from bot.triage.rules import SPECIALS, Element

MAX_COMBINATIONS = 3000  # a pattern may expand to at most this many spaCy patterns
SENTENCE_START_ATTR = "triage_sentence_start"  # '^word' in a pattern: the word starts a sentence
FLAG_ATTRS = {name: f"triage_{name}" for name in SPECIALS}
# Words a "..." gap never skips: sentence ends, clause breaks and negations (so "site is not red" is no match).
GAP_STOP = [".", "!", "?", ";", "but", "however", "although", "though", "also", "btw", "except", "not", "no",
            "never", "nothing", "without", "nor", "n't"]


def register_token_flags() -> None:
    """Declare the token extensions the flags and '^word' patterns use (once per process)."""
    from spacy.tokens import Token

    for attr in (*FLAG_ATTRS.values(), SENTENCE_START_ATTR):
        if not Token.has_extension(attr):
            Token.set_extension(attr, default=False)


def norm_token(forms: frozenset[str]) -> dict:
    """A token pattern matching any of the word forms (by NORM: the spelling-corrected lower-case word)."""
    return {"NORM": next(iter(forms))} if len(forms) == 1 else {"NORM": {"IN": sorted(forms)}}


def spacy_patterns(elements: tuple[Element, ...], rules_path: str, where: tuple[str | None, str]) -> list[list[dict]]:
    """The spaCy token patterns a parsed pattern expands to (every combination of its alternatives).

    `where` (rule id, pattern text) names the pattern if it expands to more than MAX_COMBINATIONS.
    """
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
                                      else norm_token(word_forms(w, exact)) for w, exact in alt])
            options: list[list[dict]] = []
            if singles:
                token = norm_token(frozenset(singles))
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
        raise DataFileError(rules_path, f"pattern {source!r} expands to {total} alternatives "
                                        f"(limit {MAX_COMBINATIONS}); split it or shorten its word lists",
                            rule_id, "patterns" if rule_id else "conditions / context")
    patterns = []
    for combo in product(*choices):
        tokens = [token for part in combo for token in part]
        if tokens:
            patterns.append(tokens)
    return patterns


class MatcherBank:
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
            grouped[pattern_trigger(pattern)].append(pattern)
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


def pattern_trigger(pattern: list[dict]) -> frozenset[str]:
    """The value set of the pattern's rarest required token (small sets of uncommon words are best)."""
    common = common_words()
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
