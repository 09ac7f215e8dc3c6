"""Which language a patient wrote in: English, Spanish, French, Portuguese, or another script.

Why: the bot understands English only. A message in another language must not be guessed at (the
English classifier would pick some topic by shared letters); it gets a short reply in that language
with the clinic's number, while triage still reads it for red flags. Function-word counts are enough
for whole sentences and need no model; short or mixed messages stay English (None or "en").
"""

from __future__ import annotations

import re
import unicodedata

FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        "i my me you your the a an is are was were be been am do does did have has had can could will would "
        "should what when where why how which who it its this that and or but if of to in on for with at from "
        "after before about not dont cant im ive its whats hi hello thanks please yes".split()
    ),
    "es": frozenset(
        "el la los las un una unos unas es son está estoy están estar fue ser soy tengo tiene tienen hay y o "
        "pero si que qué de del al en con por para sin mi mis me te se le lo su sus yo usted cuando cuándo "
        "donde dónde como cómo porque por qué cual cuál muy más ya desde hasta después antes puedo puede "
        "debo necesito hola gracias inyección inyeccion dolor pierna piernas cabeza fiebre ayuda siento".split()
    ),
    "fr": frozenset(
        "le la les un une des est sont suis je j tu vous il elle nous ils et ou mais si que qui quoi de du "
        "au aux en dans avec pour sans mon ma mes ton votre vos son sa ses ce cette ces ne pas plus très "
        "quand où comment pourquoi après avant peux peut dois bonjour merci injection douleur jambe tête "
        "fièvre aide".split()
    ),
    "pt": frozenset(
        "o a os as um uma é são está estou estão ser sou tenho tem têm há e ou mas se que de do da dos das no "
        "na nos nas em com por para sem meu minha meus minhas me te se lhe eu você quando onde como porque "
        "muito mais já depois antes posso pode devo preciso olá obrigado obrigada injeção dor perna cabeça "
        "febre ajuda não".split()
    ),
}
# Words that are also English ("a", "no", "me", "son", "injection") never count for another language.
SHARED_WITH_ENGLISH = frozenset("a as no me son sin con e o se injection pain".split())
WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
MIN_WORDS = 3  # shorter messages ("ok", "si", "no") are not judged
MIN_SHARE = 0.25  # share of a message's words that must be that language's function words


def _strip_accents(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")


_PLAIN_WORDS = {
    code: frozenset(_strip_accents(w) for w in words if code == "en" or w not in SHARED_WITH_ENGLISH)
    for code, words in FUNCTION_WORDS.items()
}


def _is_latin(char: str) -> bool:
    return "LATIN" in unicodedata.name(char, "")


def detect_language(text: str) -> str | None:
    """"en", "es", "fr", "pt", "other" (a non-Latin script), or None when the message is too short to tell."""
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= 4 and sum(not _is_latin(c) for c in letters) > len(letters) / 2:
        return "other"
    words = [_strip_accents(w) for w in WORD.findall(text.lower())]
    if len(words) < MIN_WORDS:
        return None
    scores = {code: sum(w in plain for w in words) for code, plain in _PLAIN_WORDS.items()}
    if "¿" in text or "¡" in text or "ñ" in text.lower():
        scores["es"] += 2
    best = max(scores, key=lambda code: (scores[code], code == "en"))
    if best != "en" and scores[best] >= 2 * scores["en"] and scores[best] >= MIN_SHARE * len(words) and scores[best] >= 2:
        return best
    return "en" if scores["en"] >= 1 else None
