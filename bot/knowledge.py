"""The curated knowledge base: loading, validation and picking the right answer.

Entries live in knowledge/topics/*.yml (schema in docs/ARCHITECTURE.md). Both the
action server and the tests use this module; nothing else reads those files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rapidfuzz import fuzz, process, utils

from bot.datafile import DataFileError, read_yaml, require_text
from bot.messages import SMS_ASK_PROCEDURE
from bot.paths import KNOWLEDGE_DIR
from bot.procedures import PROCEDURES
from bot.settings import ClinicSettings, clinic_settings, fill_placeholders
from bot.vocabulary import SMS_MAX_CHARS, STRONG_FUZZY_MATCH

VARIANTS = ("general",) + PROCEDURES
LEAFLETS = PROCEDURES
# Where a fact may come from: a leaflet section, or a clinic file (the warning signs in triage_rules.yml).
CLINIC_SOURCES = ("triage_rules.yml",)
ENTRY_FIELDS = {"id", "intents", "sources", "answers", "examples"}
# A fuzzy match must be at least this close (0-100) to count as a "strong" second opinion.


@dataclass(frozen=True)
class Answer:
    web: str
    sms: str


@dataclass(frozen=True)
class Source:
    leaflet: str
    section: str


@dataclass(frozen=True)
class Entry:
    id: str
    intents: tuple[str, ...]
    sources: tuple[Source, ...]
    answers: dict[str, Answer]
    examples: tuple[str, ...]
    path: str

    @property
    def differs_by_procedure(self) -> bool:
        return all(p in self.answers for p in PROCEDURES)

    @property
    def leaflets(self) -> frozenset[str]:
        """The leaflets this entry's facts come from (an entry from one leaflet is not 'the same for both')."""
        return frozenset(source.leaflet for source in self.sources if source.leaflet in LEAFLETS)


@dataclass(frozen=True)
class Reply:
    """What to tell the patient, and whether we should ask which procedure they mean."""

    text: str
    entry_id: str
    procedure: str | None
    asks_for_procedure: bool = False


@dataclass(frozen=True)
class FuzzyMatch:
    entry: Entry
    example: str
    score: float


def _parse_answer(path: Path, entry_id: str, variant: str, raw) -> Answer:
    field = f"answers.{variant}"
    if not isinstance(raw, dict):
        raise DataFileError(path, "must have 'web' and 'sms' texts", entry_id, field)
    return Answer(
        web=require_text(path, entry_id, f"{field}.web", raw.get("web")),
        sms=require_text(path, entry_id, f"{field}.sms", raw.get("sms"), max_length=SMS_MAX_CHARS),
    )


def _parse_entry(path: Path, index: int, raw) -> Entry:
    if not isinstance(raw, dict):
        raise DataFileError(path, "must be a mapping", f"#{index + 1}")
    entry_id = raw.get("id")
    label = entry_id if isinstance(entry_id, str) and entry_id else f"#{index + 1}"
    require_text(path, label, "id", entry_id)
    unknown = sorted(set(raw) - ENTRY_FIELDS)
    if unknown:
        raise DataFileError(path, f"unknown field(s) {', '.join(unknown)}", label, unknown[0])

    intents = raw.get("intents")
    if not isinstance(intents, list) or not intents or not all(isinstance(i, str) and i for i in intents):
        raise DataFileError(path, "must be a non-empty list of intent names", label, "intents")

    sources = raw.get("sources")
    if not isinstance(sources, list) or not sources:
        raise DataFileError(path, "must list at least one leaflet section", label, "sources")
    parsed_sources = []
    for number, source in enumerate(sources):
        field = f"sources[{number}]"
        origin = source.get("leaflet") or source.get("clinic") if isinstance(source, dict) else None
        if origin not in LEAFLETS + CLINIC_SOURCES:
            raise DataFileError(
                path, f"needs 'leaflet' set to one of {LEAFLETS} or 'clinic' set to one of {CLINIC_SOURCES}", label, field
            )
        parsed_sources.append(Source(origin, require_text(path, label, f"{field}.section", source.get("section"))))

    answers = raw.get("answers")
    if not isinstance(answers, dict) or not answers:
        raise DataFileError(path, "must have a 'general' answer or both 'lumbar' and 'cervical'", label, "answers")
    bad_variants = sorted(set(answers) - set(VARIANTS))
    if bad_variants:
        raise DataFileError(path, f"unknown variant(s) {', '.join(bad_variants)}; use {VARIANTS}", label, f"answers.{bad_variants[0]}")
    if "general" not in answers and not all(p in answers for p in PROCEDURES):
        raise DataFileError(path, "needs a 'general' answer or both 'lumbar' and 'cervical'", label, "answers")
    parsed_answers = {variant: _parse_answer(path, label, variant, value) for variant, value in answers.items()}

    examples = raw.get("examples") or []
    if not isinstance(examples, list) or not all(isinstance(e, str) and e.strip() for e in examples):
        raise DataFileError(path, "must be a list of example questions", label, "examples")

    return Entry(
        id=entry_id,
        intents=tuple(intents),
        sources=tuple(parsed_sources),
        answers=parsed_answers,
        examples=tuple(e.strip() for e in examples),
        path=str(path),
    )


class KnowledgeBase:
    """All entries, indexed by intent, with answer selection and the rapidfuzz second opinion."""

    def __init__(self, entries: Iterable[Entry]):
        self.entries: list[Entry] = list(entries)
        self.by_id: dict[str, Entry] = {}
        self.by_intent: dict[str, Entry] = {}
        for entry in self.entries:
            if entry.id in self.by_id:
                raise DataFileError(entry.path, f"duplicate id (also in {self.by_id[entry.id].path})", entry.id, "id")
            self.by_id[entry.id] = entry
            for intent in entry.intents:
                if intent in self.by_intent:
                    other = self.by_intent[intent]
                    raise DataFileError(entry.path, f"intent '{intent}' is already answered by entry '{other.id}'", entry.id, "intents")
                self.by_intent[intent] = entry
        self._examples: list[tuple[str, Entry]] = [
            (example, entry) for entry in self.entries for example in entry.examples
        ]
        self._example_keys = [utils.default_process(example) for example, _ in self._examples]

    @property
    def intents(self) -> list[str]:
        return sorted(self.by_intent)

    def entry_for_intent(self, intent: str | None) -> Entry | None:
        return self.by_intent.get(intent or "")

    def reply(
        self,
        entry: Entry,
        procedure: str | None,
        channel: str | None,
        settings: ClinicSettings | None = None,
    ) -> Reply:
        """Pick the variant for the procedure and the form for the channel."""
        form = "sms" if channel == "sms" else "web"
        settings = settings or clinic_settings()
        if procedure in entry.answers:
            text = getattr(entry.answers[procedure], form)
            return Reply(fill_placeholders(text, settings), entry.id, procedure)
        if "general" in entry.answers:
            text = getattr(entry.answers["general"], form)
            return Reply(fill_placeholders(text, settings), entry.id, procedure)
        if form == "sms":
            return Reply(SMS_ASK_PROCEDURE, entry.id, None, asks_for_procedure=True)
        parts = [
            "It depends on where your injection is.",
            "Lower back (lumbar):\n" + entry.answers["lumbar"].web,
            "Neck (cervical):\n" + entry.answers["cervical"].web,
        ]
        return Reply(fill_placeholders("\n\n".join(parts), settings), entry.id, None)

    def best_fuzzy_match(self, text: str) -> FuzzyMatch | None:
        """Closest example question; callers decide whether it is strong enough."""
        query = utils.default_process(text or "")
        if not query or not self._examples:
            return None
        found = process.extractOne(query, self._example_keys, scorer=fuzz.token_set_ratio, processor=None)
        if not found:
            return None
        _, score, index = found
        example, entry = self._examples[index]
        # token_set_ratio rewards short queries that are subsets of an example; require
        # that the plain ratio also agrees so "pain" alone never matches a long question.
        if fuzz.ratio(query, self._example_keys[index]) < 60:
            score = min(score, fuzz.ratio(query, self._example_keys[index]))
        return FuzzyMatch(entry, example, float(score))

    def strong_fuzzy_match(self, text: str, threshold: float = STRONG_FUZZY_MATCH) -> FuzzyMatch | None:
        match = self.best_fuzzy_match(text)
        return match if match and match.score >= threshold else None


def load_knowledge(directory: Path | None = None) -> KnowledgeBase:
    """Load and validate every entry file; errors name the file, entry and field."""
    directory = Path(directory or KNOWLEDGE_DIR / "topics")
    files = sorted(directory.glob("*.yml"))
    if not files:
        raise DataFileError(directory, "no knowledge files (*.yml) found")
    entries: list[Entry] = []
    for path in files:
        raw = read_yaml(path)
        if not isinstance(raw, dict) or not isinstance(raw.get("entries"), list):
            raise DataFileError(path, "must have a top-level 'entries' list", field="entries")
        entries.extend(_parse_entry(path, index, item) for index, item in enumerate(raw["entries"]))
    return KnowledgeBase(entries)


@lru_cache(maxsize=1)
def knowledge_base() -> KnowledgeBase:
    """The knowledge base for this process, loaded and validated once."""
    return load_knowledge()
