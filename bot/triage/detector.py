"""The triage detector: spaCy pipeline, token flags, matchers and ConText put together for one message.

Long texts are scanned in chunks (cut at sentence ends; beyond MAX_SCAN_CHARS the first 16,000 and the last
4,000 characters are read), so a symptom at the end of a 10,000-character message is still found.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from bot.datafile import DataFileError
from bot.triage.context import build_context_matcher, mention_status, modifiers_per_mention
from bot.triage.lexicon import (
    CELSIUS_UNITS,
    DAY_WORDS,
    FAHRENHEIT_UNITS,
    HOUR_WORDS,
    NUMBER_WORDS,
    lookup_tables,
    parse_number,
)
from bot.triage.matchers import FLAG_ATTRS, SENTENCE_START_ATTR, MatcherBank, register_token_flags, spacy_patterns
from bot.triage.normalise import normalise
from bot.triage.result import EMPTY_RESULT, LEVELS, TriageResult, TriageSpan
from bot.triage.rules import Element, Pattern, TriageRules
from bot.vocabulary import MAX_MESSAGE_CHARS

logger = logging.getLogger(__name__)

MAX_SCAN_CHARS = MAX_MESSAGE_CHARS  # every accepted message is read whole; longer: first 16,000 + last 4,000
CHUNK_CHARS = 1_200  # texts are read in pieces of at most this size, cut at sentence ends


class TriageDetector:
    """Built once from a rules file; `detect` is thread-safe for reading (spaCy docs are per call)."""

    def __init__(self, rules: TriageRules, use_context: bool = True, context_rules: str = "project") -> None:
        import spacy
        from spacy.matcher import Matcher, PhraseMatcher

        self.rules = rules
        self.use_context = use_context
        settings = rules.settings
        self._fever_f = float(settings["fever_threshold_f"])
        self._fever_c = float(settings["fever_threshold_c"])
        self._long_hours = float(settings["long_duration_hours"])
        self._fuzzy_min = int(settings["fuzzy_min_length"])

        register_token_flags()

        nlp = spacy.blank("en")
        nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
        nlp.add_pipe("sentencizer")
        nlp.initialize()  # lemma tables come from the installed spacy-lookups-data package
        self.nlp = nlp
        self._pipes = [proc for _, proc in nlp.pipeline]

        _, _, known = lookup_tables()
        self._known_words = known
        self._rule_by_id = {rule.id: rule for rule in rules.rules}

        # Spelling vocabulary: the rules' fuzzy terms plus every 5+ letter word the patterns use.
        pattern_words: set[str] = set()
        for rule in rules.rules:
            for group in rule.groups.values():
                for _, pattern in group:
                    if not pattern.lang:  # English misspellings are never corrected into Spanish words
                        pattern_words.update(self._words_of(pattern))
        fuzzy = set(rules.fuzzy) | {w for rule in rules.rules for w in rule.fuzzy}
        fuzzy |= {w for w in pattern_words if len(w) >= self._fuzzy_min and w.isalpha()}
        self._fuzzy_vocab = tuple(sorted(fuzzy))
        # Words of the Spanish / Portuguese / French patterns are never "corrected" into English ones ("rigida")
        self._foreign_words = frozenset(
            w for rule in rules.rules for group in rule.groups.values() for _, pattern in group if pattern.lang
            for w in self._words_of(pattern) | (self._words_of_near(pattern))
        )
        self._correct = lru_cache(maxsize=20_000)(self._correct_uncached)

        # Matchers: targets (T), "near" cues (C) and conditions (K); exclusions (X) in their own bank and,
        # when they are plain phrases, in a PhraseMatcher.
        self.bank = MatcherBank(nlp.vocab)
        self.exclude_bank = MatcherBank(nlp.vocab)
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
            self.context = build_context_matcher(nlp, rules, context_rules)

    # -- building ---------------------------------------------------------------------------------

    @staticmethod
    def _words_of_near(pattern: Pattern) -> set[str]:
        if pattern.near is None:
            return set()
        return {w for element in pattern.near for alt in element.alternatives for w, _ in alt}

    @staticmethod
    def _words_of(pattern: Pattern) -> set[str]:
        words = set()
        for element in pattern.elements:
            for alt in element.alternatives:
                words.update(w for w, _ in alt)
        return words

    def _add(self, bank: MatcherBank, key: str, elements: tuple[Element, ...], where) -> None:
        bank.add(key, spacy_patterns(elements, self.rules.path, where))

    def _add_exclude(self, key: str, pattern: Pattern, rule_id: str | None) -> None:
        simple = all(e.kind == "words" and not e.optional and len(e.alternatives) == 1 and len(e.alternatives[0]) == 1
                     and e.alternatives[0][0][1] for e in pattern.elements)
        if simple:  # only exact words: a plain phrase
            words = [e.alternatives[0][0][0] for e in pattern.elements]
            self.exclude_phrases.add(key, [self.nlp.make_doc(" ".join(words))])
        else:
            self._add(self.exclude_bank, key, pattern.elements, where=(rule_id, pattern.source))

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
                        and text not in self._known_words and text not in self._foreign_words):
                    corrected = self._correct(text)
                    if corrected:
                        token.norm_ = corrected
                        words.add(corrected)
                continue
            value = parse_number(text) if token.like_num or "." in text else None
            if value is None and text in NUMBER_WORDS:
                value = float(NUMBER_WORDS[text])
            if value is None:
                continue
            nxt = tokens[i + 1].lower_ if i + 1 < n else ""
            after = tokens[i + 2].lower_ if i + 2 < n else ""
            if (nxt in HOUR_WORDS and value >= self._long_hours) or nxt in DAY_WORDS or (
                    nxt in {"more", "whole", "full"} and after in DAY_WORDS):
                token._.set(FLAG_ATTRS["long_duration"], True)
                words.add("#long_duration")
            if not text[0].isdigit():
                continue
            token._.set(FLAG_ATTRS["num"], True)
            words.add("#num")
            if "." not in text and len(text) == 4 and 1950 <= value <= 2039:
                token._.set(FLAG_ATTRS["year"], True)
                words.add("#year")
            if "." not in text and 110 <= value <= 250:
                token._.set(FLAG_ATTRS["high_rate"], True)
                words.add("#high_rate")
            unit = after if nxt in {"degrees", "degree", "deg"} else nxt
            fever_f = self._fever_f <= value <= 110
            fever_c = self._fever_c <= value <= 43
            low_f = 95 <= value < self._fever_f
            low_c = 35 <= value < self._fever_c
            if unit in FAHRENHEIT_UNITS:
                fever_c = low_c = False
            elif unit in CELSIUS_UNITS:
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
        context = modifiers_per_mention(self.context, doc, targets) if self.context is not None else [[] for _ in targets]
        for target, modifiers in zip(targets, context, strict=True):
            rule_id, group = target.kb_id_.split("|", 1)
            status, cue_texts = mention_status(target, modifiers)
            start = offsets[target.start_char]
            end = offsets[max(target.end_char - 1, target.start_char)] + 1
            spans.append(TriageSpan(rule=rule_id, group=group, start=start, end=end, text=original[start:end],
                                    status=status, cues=cue_texts))
            if status == "asserted":
                satisfied[rule_id].add(group)

