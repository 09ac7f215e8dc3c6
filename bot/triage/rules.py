"""The triage rules file (knowledge/triage_rules.yml): parsing and validation, no spaCy needed.

``load_rules`` reads the file section by section (settings, word_lists, conditions, rules, other_languages,
context, fuzzy, exclude), each with its own parser, so an error names the file, the rule and the field.
``other_languages`` adds patterns in Spanish, Portuguese or French to existing rules (same ids and levels).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.datafile import DataFileError, read_yaml, require_text
from bot.paths import KNOWLEDGE_DIR
from bot.triage.normalise import normalise_text
from bot.triage.result import LEVELS

RULES_PATH = KNOWLEDGE_DIR / "triage_rules.yml"
MAX_GAP = 8

RULE_FIELDS = {"id", "level", "label", "source", "patterns", "groups", "fires_when", "exclude", "fuzzy", "replaces",
               "token_patterns"}
REQUIRED_RULE_FIELDS = ("id", "level", "label", "source")
TOP_FIELDS = {"version", "settings", "word_lists", "conditions", "rules", "other_languages", "context", "fuzzy",
              "exclude"}
LANGUAGES = {"es": "Spanish", "pt": "Portuguese", "fr": "French"}
OTHER_LANGUAGE_FIELDS = {"lang", "rule", "patterns", "note"}
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
    "year": "a year from 1950 to 2039 written with four digits ('in 2015', 'back in 2010')",
}

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
    "chronic": "CHRONIC",
    "change": "CHANGE",
    "relative_time": "RELATIVE_TIME",
    "clause_break": "CLAUSE_BREAK",
    "and_break": "AND_BREAK",
    "ignore": "IGNORE",
}
DIRECTIONS = {"forward": "FORWARD", "backward": "BACKWARD", "both": "BIDIRECTIONAL", "pseudo": "PSEUDO"}
CONTEXT_FIELDS = {"category", "direction", "max_words", "stops_at", "applies_to", "not_for", "phrases", "note"}

_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
_ELEMENT_WORD = re.compile(r"^[a-z0-9][a-z0-9'./]*$|^[,:;!?&+/-]$")
_PUNCT_WORDS = {",", ":", ";", "!", "?", "&", "+", "/", "-"}

WordLists = dict[str, tuple[tuple[tuple[str, bool], ...], ...]]  # list name -> entries of (word, exact) sequences


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
    lang: str = ""  # "" = English; "es" / "pt" / "fr" for the other_languages section


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
    """A bad pattern; the caller adds the file, rule and field to the message."""


def _parse_word_list_entry(entry: str) -> tuple[tuple[str, bool], ...]:
    """'give out' -> give (any form) + out; '=limp' -> only 'limp'."""
    exact = entry.strip().startswith("=")
    normal = normalise_text(entry.strip().lstrip("="))
    words = normal.split()
    if not words:
        raise _PatternError(f"empty word list entry {entry!r}")
    return tuple((word, exact) for word in words)


def _parse_alternatives(raw: str, token: str, word_lists: WordLists) -> list[tuple[tuple[str, bool], ...]]:
    """The word sequences one pattern element allows: 'a|b_c|<list>|#special' (raw is the element as written)."""
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
    return alternatives


def _parse_pattern(text: Any, word_lists: WordLists, gap: int) -> tuple[Element, ...]:
    """A pattern text ('numb ... groin|saddle') as elements: words, gaps and #specials."""
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
        alternatives = _parse_alternatives(raw, token, word_lists)
        elements.append(Element(kind="words", alternatives=tuple(dict.fromkeys(alternatives)), optional=optional,
                                sentence_start=sentence_start))
    if all(e.kind == "gap" or e.optional for e in elements):
        raise _PatternError("needs at least one required word")
    if elements[0].kind == "gap" or elements[-1].kind == "gap":
        raise _PatternError("cannot start or end with a gap '...'")
    return tuple(elements)


def _parse_pattern_item(item: Any, word_lists: WordLists, gap: int) -> Pattern:
    """A pattern given as a text, or as a mapping with 'match' and an optional 'near' cue."""
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
    """The value as a list (absent = empty), or an error naming where a list was expected."""
    if value is None:
        value = []
    if not isinstance(value, list) or (not allow_empty and not value):
        raise DataFileError(path, "must be a list" + ("" if allow_empty else " with at least one item"), entry, field_name)
    return value



@dataclass(frozen=True)
class _PatternReader:
    """Parses the patterns of one file against its word lists and gap size; errors name where they are."""

    path: Path
    word_lists: WordLists
    gap: int

    def pattern(self, entry: str | None, where: str, item: Any) -> Pattern:
        try:
            return _parse_pattern_item(item, self.word_lists, self.gap)
        except _PatternError as error:
            raise DataFileError(self.path, str(error), entry, where) from error

    def patterns(self, entry: str | None, field_name: str, items: Any) -> tuple[Pattern, ...]:
        return tuple(self.pattern(entry, f"{field_name}[{index}]", item)
                     for index, item in enumerate(_text_list(self.path, entry, field_name, items)))


def load_rules(path: Path | str | None = None) -> TriageRules:
    """Read and validate the triage rules file. Errors name the file, the rule and the field."""
    path = Path(path or RULES_PATH)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise DataFileError(path, "must be a mapping with 'rules' and 'context'")
    unknown = set(raw) - TOP_FIELDS
    if unknown:
        raise DataFileError(path, f"unknown top-level field(s) {sorted(unknown)}; known: {sorted(TOP_FIELDS)}")
    settings = _parse_settings(path, raw.get("settings"))
    reader = _PatternReader(path, _parse_word_lists(path, raw.get("word_lists")), int(settings["gap"]))
    conditions = _parse_conditions(reader, raw.get("conditions"))
    rules = _parse_rules(reader, raw.get("rules"), conditions)
    rules = _parse_other_languages(reader, raw.get("other_languages"), rules)
    context = _parse_context(reader, raw.get("context"), [rule.id for rule in rules])
    return TriageRules(
        path=str(path), settings=settings, rules=rules, conditions=conditions, context=context,
        fuzzy=_parse_fuzzy_terms(path, None, raw.get("fuzzy")), exclude=reader.patterns(None, "exclude", raw.get("exclude")),
    )


def _parse_settings(path: Path, raw_settings: Any) -> dict[str, Any]:
    """`settings`: the defaults, overridden by positive numbers from the file."""
    settings = dict(SETTINGS_DEFAULTS)
    raw_settings = raw_settings or {}
    if not isinstance(raw_settings, dict):
        raise DataFileError(path, "must be a mapping", field="settings")
    for key, value in raw_settings.items():
        if key not in SETTINGS_DEFAULTS:
            raise DataFileError(path, f"unknown setting (known: {sorted(SETTINGS_DEFAULTS)})", field=f"settings.{key}")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise DataFileError(path, "must be a positive number", field=f"settings.{key}")
        settings[key] = value
    if not 1 <= int(settings["gap"]) <= MAX_GAP:
        raise DataFileError(path, f"must be 1-{MAX_GAP}", field="settings.gap")
    return settings


def _parse_word_lists(path: Path, raw_lists: Any) -> WordLists:
    """`word_lists`: named lists of words or phrases that patterns use as '<name>'."""
    word_lists: WordLists = {}
    raw_lists = raw_lists or {}
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
    return word_lists


def _parse_conditions(reader: _PatternReader, raw_conditions: Any) -> dict[str, tuple[Pattern, ...]]:
    """`conditions`: named patterns that combination rules require beside a symptom ('after the injection')."""
    path = reader.path
    conditions: dict[str, tuple[Pattern, ...]] = {}
    raw_conditions = raw_conditions or {}
    if not isinstance(raw_conditions, dict):
        raise DataFileError(path, "must be a mapping of condition name -> patterns", field="conditions")
    for name, items in raw_conditions.items():
        if not isinstance(name, str) or not _SNAKE.match(name):
            raise DataFileError(path, f"condition name {name!r} must be snake_case", field="conditions")
        conditions[name] = reader.patterns(None, f"conditions.{name}", items)
        if not conditions[name]:
            raise DataFileError(path, "needs at least one pattern", field=f"conditions.{name}")
    return conditions


def _parse_rules(reader: _PatternReader, raw_rules: Any, conditions: dict[str, tuple[Pattern, ...]]) -> tuple[Rule, ...]:
    """`rules`: ids first, then each rule's own patterns (so '@rule' references and 'replaces' can be checked)."""
    path = reader.path
    if not isinstance(raw_rules, list) or not raw_rules:
        raise DataFileError(path, "must be a non-empty list of rules", field="rules")
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
        own_patterns[rule_id] = reader.patterns(rule_id, "patterns", [
            x for x in _text_list(path, rule_id, "patterns", item.get("patterns"))
            if not (isinstance(x, str) and x.startswith("@"))
        ])
    return tuple(_parse_rule(reader, rule_id, item, own_patterns, conditions) for rule_id, item in raw_by_id.items())


def _parse_rule(reader: _PatternReader, rule_id: str, item: dict, own_patterns: dict[str, tuple[Pattern, ...]],
                conditions: dict[str, tuple[Pattern, ...]]) -> Rule:
    """One rule: required fields, symptom groups, raw spaCy patterns, combinations, spelling terms, replacements."""
    path = reader.path
    for key in REQUIRED_RULE_FIELDS:
        if key not in item:
            raise DataFileError(path, "is required", rule_id, key)
    level = item["level"]
    if level not in LEVELS:
        raise DataFileError(path, f"must be one of {list(LEVELS)}, not {level!r}", rule_id, "level")
    label = require_text(path, rule_id, "label", item["label"])
    source = require_text(path, rule_id, "source", item["source"])
    groups = _parse_groups(reader, rule_id, item, own_patterns, conditions)
    token_patterns = _parse_token_patterns(path, rule_id, item.get("token_patterns"))
    fires_when = _parse_fires_when(path, rule_id, item.get("fires_when"), groups, conditions)
    if not groups and not token_patterns:
        raise DataFileError(path, "a rule needs 'patterns', 'groups' or 'token_patterns'", rule_id, "patterns")
    if item.get("groups") and not fires_when:
        raise DataFileError(path, "a rule with 'groups' needs 'fires_when'", rule_id, "fires_when")
    fuzzy = _parse_fuzzy_terms(path, rule_id, item.get("fuzzy"))
    replaces = []
    for index, other in enumerate(_text_list(path, rule_id, "replaces", item.get("replaces"))):
        if other not in own_patterns or other == rule_id:
            raise DataFileError(path, f"'{other}' must name another rule", rule_id, f"replaces[{index}]")
        replaces.append(other)
    return Rule(
        id=rule_id, level=level, label=label, source=source, groups=groups, fires_when=fires_when,
        exclude=reader.patterns(rule_id, "exclude", item.get("exclude")), fuzzy=fuzzy, replaces=tuple(replaces),
        token_patterns=token_patterns,
    )


def _parse_groups(reader: _PatternReader, rule_id: str, item: dict, own_patterns: dict[str, tuple[Pattern, ...]],
                  conditions: dict[str, tuple[Pattern, ...]]) -> dict[str, tuple[tuple[str, Pattern], ...]]:
    """A rule's symptom groups: 'main' from `patterns`, then each named group of `groups`."""
    groups: dict[str, tuple[tuple[str, Pattern], ...]] = {}
    main = _parse_group_patterns(reader, rule_id, "patterns", item.get("patterns"), own_patterns)
    if main:
        groups["main"] = main
    raw_groups = item.get("groups") or {}
    if not isinstance(raw_groups, dict):
        raise DataFileError(reader.path, "must be a mapping of group name -> patterns", rule_id, "groups")
    for name, items in raw_groups.items():
        if not isinstance(name, str) or not _SNAKE.match(name) or name == "main" or name in conditions:
            raise DataFileError(reader.path, f"group name {name!r} must be snake_case, not 'main' and not a condition name",
                                rule_id, "groups")
        groups[name] = _parse_group_patterns(reader, rule_id, f"groups.{name}", items, own_patterns)
        if not groups[name]:
            raise DataFileError(reader.path, "needs at least one pattern", rule_id, f"groups.{name}")
    return groups


def _parse_group_patterns(reader: _PatternReader, rule_id: str, field_name: str, items: Any,
                          own_patterns: dict[str, tuple[Pattern, ...]]) -> tuple[tuple[str, Pattern], ...]:
    """(origin rule, pattern) pairs: the rule's own patterns, and '@other_rule' for that rule's patterns."""
    out: list[tuple[str, Pattern]] = []
    for index, entry in enumerate(_text_list(reader.path, rule_id, field_name, items)):
        if isinstance(entry, str) and entry.startswith("@"):
            ref = entry[1:]
            if ref not in own_patterns or ref == rule_id:
                raise DataFileError(reader.path, f"'{entry}' must name another rule", rule_id, f"{field_name}[{index}]")
            if not own_patterns[ref]:
                raise DataFileError(reader.path, f"'{entry}': that rule has no patterns of its own", rule_id,
                                    f"{field_name}[{index}]")
            out.extend((ref, p) for p in own_patterns[ref])
        else:
            out.append((rule_id, reader.pattern(rule_id, f"{field_name}[{index}]", entry)))
    return tuple(out)


def _parse_token_patterns(path: Path, rule_id: str, value: Any) -> tuple[list[dict], ...]:
    """Raw spaCy token patterns (checked by spaCy itself when the detector is built)."""
    token_patterns = []
    for index, token_pattern in enumerate(_text_list(path, rule_id, "token_patterns", value)):
        if not isinstance(token_pattern, list) or not token_pattern or not all(isinstance(t, dict) for t in token_pattern):
            raise DataFileError(path, "a spaCy token pattern is a non-empty list of mappings", rule_id,
                                f"token_patterns[{index}]")
        token_patterns.append(token_pattern)
    return tuple(token_patterns)


def _parse_fires_when(path: Path, rule_id: str, value: Any, groups: dict, conditions: dict) -> tuple[tuple[str, ...], ...]:
    """Combinations of groups and conditions, each with at least one symptom group."""
    fires_when: list[tuple[str, ...]] = []
    for index, combo in enumerate(_text_list(path, rule_id, "fires_when", value)):
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
    return tuple(fires_when)


def _parse_fuzzy_terms(path: Path, rule_id: str | None, value: Any) -> tuple[str, ...]:
    """`fuzzy` (of the file or of one rule): words whose misspellings are corrected."""
    terms = []
    for index, word in enumerate(_text_list(path, rule_id, "fuzzy", value)):
        if not isinstance(word, str) or not re.fullmatch(r"[a-z]{4,}", word.strip().lower()):
            raise DataFileError(path, "fuzzy terms are single words of 4+ letters", rule_id, f"fuzzy[{index}]")
        terms.append(word.strip().lower())
    return tuple(terms)


def _parse_context(reader: _PatternReader, raw_context: Any, rule_ids: list[str]) -> tuple[ContextGroup, ...]:
    """`context`: the ConText cue groups (category, direction, reach, which rules they apply to, phrases)."""
    if not isinstance(raw_context, list) or not raw_context:
        raise DataFileError(reader.path, "must be a non-empty list of context groups", field="context")
    return tuple(_parse_context_group(reader, f"context[{index}]", item, rule_ids) for index, item in enumerate(raw_context))


def _parse_context_group(reader: _PatternReader, where: str, item: Any, rule_ids: list[str]) -> ContextGroup:
    """One cue group, its medspaCy names resolved; `direction` defaults to 'pseudo' for breaks, else 'both'."""
    path = reader.path
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
    applies_to = _rule_ids(path, f"{where}.applies_to", item.get("applies_to"), rule_ids)
    not_for = _rule_ids(path, f"{where}.not_for", item.get("not_for"), rule_ids)
    if not_for is not None and applies_to:
        raise DataFileError(path, "use either applies_to or not_for", field=f"{where}.not_for")
    phrases = reader.patterns(None, f"{where}.phrases", item.get("phrases"))
    if not phrases:
        raise DataFileError(path, "needs at least one phrase", field=f"{where}.phrases")
    return ContextGroup(
        category=CONTEXT_CATEGORIES[category], direction=DIRECTIONS[direction], max_words=max_words,
        stops_at=tuple(CONTEXT_CATEGORIES[s] for s in stops_at),
        applies_to=tuple(applies_to) if applies_to else None, not_for=tuple(not_for) if not_for else None,
        phrases=phrases,
    )


def _exact_elements(elements: tuple[Element, ...]) -> tuple[Element, ...]:
    """Every word of the elements matched only as written (no English inflections for Spanish words)."""
    out = []
    for element in elements:
        if element.kind != "words":
            out.append(element)
            continue
        alternatives = tuple(dict.fromkeys(tuple((w, True) for w, _ in alt) for alt in element.alternatives))
        out.append(Element(kind="words", alternatives=alternatives, optional=element.optional,
                           sentence_start=element.sentence_start))
    return tuple(out)


def _parse_other_languages(reader: _PatternReader, raw: Any, rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """`other_languages`: Spanish / Portuguese / French patterns added to existing rules.

    Each entry: lang (es | pt | fr), rule ("rule_id" for its patterns, "rule_id.group" for a group of a
    combination rule), patterns. Words match exactly as written (no English word forms; list every form),
    accents are ignored (the text is normalised without them). A rule that reuses another with "@other"
    gets the other's new patterns too (so Spanish "fiebre" also counts in the stiff-neck + fever rule).
    """
    path = reader.path
    if raw is None:
        return rules
    entries = _text_list(path, None, "other_languages", raw)
    by_id = {rule.id: rule for rule in rules}
    added: dict[tuple[str, str], list[Pattern]] = {}
    for index, entry in enumerate(entries):
        where = f"other_languages[{index}]"
        if not isinstance(entry, dict):
            raise DataFileError(path, "must be a mapping with lang, rule and patterns", field=where)
        unknown = set(entry) - OTHER_LANGUAGE_FIELDS
        if unknown:
            raise DataFileError(path, f"unknown field(s) {sorted(unknown)}; known: {sorted(OTHER_LANGUAGE_FIELDS)}",
                                field=where)
        lang = entry.get("lang")
        if lang not in LANGUAGES:
            raise DataFileError(path, f"must be one of {sorted(LANGUAGES)}", field=f"{where}.lang")
        target = entry.get("rule")
        rule_id, _, group = str(target or "").partition(".")
        group = group or "main"
        rule = by_id.get(rule_id)
        if rule is None:
            raise DataFileError(path, f"{target!r} is not a rule id", field=f"{where}.rule")
        if group not in rule.groups:
            raise DataFileError(path, f"rule {rule_id} has no group {group!r} (groups: {sorted(rule.groups)})",
                                rule_id, f"{where}.rule")
        patterns = reader.patterns(rule_id, f"{where}.patterns", entry.get("patterns"))
        if not patterns:
            raise DataFileError(path, "needs at least one pattern", rule_id, f"{where}.patterns")
        for pattern in patterns:
            added.setdefault((rule_id, group), []).append(Pattern(
                source=pattern.source, elements=_exact_elements(pattern.elements),
                near=_exact_elements(pattern.near) if pattern.near is not None else None,
                near_source=pattern.near_source, lang=lang))
    out = []
    for rule in rules:
        groups = dict(rule.groups)
        for name, items in rule.groups.items():
            extra = [(rule.id, p) for p in added.get((rule.id, name), [])]
            # '@other' in this group: the other rule's new patterns come along (as they do in English)
            referenced = {origin for origin, _ in items if origin != rule.id}
            for origin in sorted(referenced):
                extra.extend((origin, p) for p in added.get((origin, "main"), []))
            if extra:
                groups[name] = (*items, *extra)
        out.append(Rule(id=rule.id, level=rule.level, label=rule.label, source=rule.source, groups=groups,
                        fires_when=rule.fires_when, exclude=rule.exclude, fuzzy=rule.fuzzy, replaces=rule.replaces,
                        token_patterns=rule.token_patterns))
    return tuple(out)
