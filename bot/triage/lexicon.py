"""Word forms, the English word list and number words (spacy-lookups-data, read from the installed package)."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

# Words for numbers and units the token flags read ("a couple of days", "101 f", "20 hours").
NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
                "couple": 2, "few": 3, "several": 4, "24": 24, "48": 48}
HOUR_WORDS = {"hour", "hours", "h"}
DAY_WORDS = {"day", "days", "week", "weeks", "month", "months", "night", "nights"}
FAHRENHEIT_UNITS = {"f", "fahrenheit", "farenheit"}
CELSIUS_UNITS = {"c", "celsius", "centigrade"}


def parse_number(text: str) -> float | None:
    """The number a token spells with digits ("101.2"), None if it is not one."""
    try:
        return float(text)
    except ValueError:
        return None


@lru_cache(maxsize=1)
def lookup_tables() -> tuple[dict[str, str], dict[str, frozenset[str]], frozenset[str]]:
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
    lemma_lookup, reverse, _ = lookup_tables()
    lemma = lemma_lookup.get(word, word)
    base = lemma if lemma[:3] == word[:3] else word
    forms = {word, base}
    for form in reverse.get(base, ()):
        if form.endswith(("er", "est")) and not base.endswith(("er", "est")):
            continue
        forms.add(form)
    return frozenset(forms)


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """Stop words and everyday verbs: poor matcher triggers because nearly every message has them."""
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS) | {"feel", "feels", "felt", "feeling", "get", "got", "go", "going", "like", "really",
                                    "so", "just", "now", "back", "out", "up", "down", "still", "keep", "have"}
