"""Text normalisation for triage, with a map back to the original character positions.

Lower case, HTML tags dropped, accents dropped ("fiebre alta, no siento la pierna" as written with or
without them), SMS shorthand spelled out ("cant" -> "can not", "temp" -> "temperature"),
"101f" -> "101 f", "8/10" -> "8 out of 10". The offset map lets a mention point into what the patient wrote.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

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
    "hrs": "hours", "hr": "hour", "mins": "minutes", "wks": "weeks", "wk": "week", "yrs": "years", "yr": "year",
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


def _strip_accent(match: re.Match[str]) -> str:
    """'é' -> 'e', 'ñ' -> 'n', 'ç' -> 'c' (one letter for one, so positions still map); others unchanged."""
    char = match.group(0)
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    return base if len(base) == 1 else char


_PASSES: tuple[tuple[re.Pattern[str], Any], ...] = (
    (re.compile(r"<[^<>]{0,400}>"), " "),  # HTML / XML tags
    # Accents do not count (Spanish, Portuguese and French patterns are written without them).
    (re.compile(r"[\u00c0-\u024f]"), _strip_accent),
    (re.compile(r"[\u00bf\u00a1]"), " "),  # Spanish opening marks: "¿es normal?" -> " es normal?"
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
    """``pattern.sub`` that also carries the offset map along, so every character still knows its origin."""
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
    """The normalised text alone: how the rules file's words are compared with what patients write."""
    return normalise(text)[0].strip()
