"""Wording checks for knowledge/topics/*.yml, run before an edit goes to review.

The loader (`bot.knowledge.load_knowledge`) already refuses a file that breaks the schema; this lint
reads the loaded entries the way a reviewer would and reports, for every answer (web and SMS, every
variant):
- a reading grade above 8, on the raw text and with the clinic settings filled in;
- SMS texts over the SMS limit (raw and filled in), and bullets or markdown where they do not belong;
- any 8-word run shared with the source leaflets, in answers, examples and each file as a whole;
- the words each topic's answer should contain, and the body area each variant names.
It also checks that every source names a leaflet section, that each entry has 8-12 unique examples
the rapidfuzz second opinion maps back to their own entry, and that the knowledge entries, the
domain's topic intents and the topic rules (data/rules/topics.yml) name the same intents.

Command line: scripts/check_knowledge_text.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

from bot.datafile import DataFileError, read_yaml
from bot.knowledge import CLINIC_SOURCES, Entry, KnowledgeBase, load_knowledge
from bot.paths import KNOWLEDGE_DIR, PROJECT_ROOT
from bot.readability import MAX_READING_GRADE, reading_grade
from bot.settings import ClinicSettings, fill_placeholders, load_clinic_settings
from bot.shingles import copied_runs, words
from bot.vocabulary import SMS_MAX_CHARS, STRONG_FUZZY_MATCH

DOMAIN_PATH = PROJECT_ROOT / "domain.yml"
TOPIC_RULES_PATH = PROJECT_ROOT / "data" / "rules" / "topics.yml"
TOPIC_INTENT_PREFIX = "ask_"
TOPIC_ACTION = "action_answer_topic"
EXAMPLES_PER_ENTRY = range(8, 13)
WEB_SENTENCES = range(2, 7)
PLACEHOLDER = re.compile(r"\{([^}]*)\}")
PLACEHOLDER_NAMES = {setting.name for setting in fields(ClinicSettings)}

# Section labels an entry may cite. Headed sections use the leaflet heading; the few
# paragraphs printed without a heading get a short label that says so.
SECTIONS = {
    "lumbar": {
        "Lumbar Nerve Root Injection",
        "The week before your procedure",
        "The night before your procedure",
        "The day of your procedure",
        "What will happen",
        "After your procedure",
        "When to call (list without a heading)",
        "Seek Care Immediately if",
        "Risks (paragraph without a heading)",
        "Care Agreement",
    },
    "cervical": {
        "Cervical Nerve Root Injection",
        "Before your procedure",
        "During your procedure",
        "After your procedure",
        "Risks (paragraph without a heading)",
        "Rights (paragraph without a heading)",
    },
}

# Words a reviewer looks for in each topic's answers: every group must be met (any of its
# alternatives, case-insensitive) by the web text of every variant.
EXPECTED = {
    "what_is": [["nerve root"], ["spinal cord"], ["inflammation"], ["swelling"], ["pain"], ["steroid"], ["numbing"]],
    "lumbar_vs_cervical": [["lower back"], ["neck"], ["nerve root"]],
    "what_is_injected": [["steroid"], ["numbing"], ["anesthetic"], ["more than one"]],
    "prepare": [["allerg"], ["aspirin"], ["pregnant"], ["drive", "ride"], ["list"]],
    "allergies": [["food"], ["dye"], ["iodine"], ["numbing"], ["any medicine", "any other medicine"]],
    "stop_medicines": [["aspirin"], ["blood thinner"], ["ibuprofen"], ["on your own"], ["ask"]],
    "medicine_list": [["bottles"], ["list"], ["herbs"], ["supplements"], ["interact"]],
    "pregnancy": [["pregnant"], ["{clinic_phone}"]],
    "driving": [["drive"], ["family member"], ["friend"], ["do not drive", "don't drive"], ["taxi"], ["rideshare"],
                ["{clinic_phone}"]],
    "tests_before": [["blood"], ["urine"], ["x-ray"], ["ct scan"], ["mri"], ["date"], ["time"], ["place"]],
    "appointment": [["date"], ["time"], ["place"], ["on time"], ["{clinic_phone}"]],
    "night_before": [["sleep"], ["eat"], ["drink"], ["{clinic_phone}"]],
    "day_of_medicines": [["ask"], ["bottles"], ["list"], ["interact"]],
    "iv": [["iv"], ["vein"], ["arm"], ["liquids"], ["medicine"]],
    "sedation": [["relax"], ["drowsy"], ["sleepy"], ["anesthesiologist"], ["anesthesia"], ["awake"]],
    "consent": [["consent form"], ["risks"], ["benefits"], ["choices"], ["questions"], ["sign for you"],
                ["words you know"]],
    "procedure_steps": [["relax"], ["stomach"], ["numb"], ["needle"], ["x-ray"], ["ct scan"], ["steroid"], ["bandage"]],
    "position": [["stomach"], ["turned"], ["side"]],
    "pain_during": [["numbing medicine"], ["local anesthetic"], ["pressure"], ["pushing"]],
    "needle_guidance": [["x-ray"], ["dye"], ["contrast"], ["ct scan"], ["guide"], ["needle"]],
    "recovery": [["recovery room"], ["rest"], ["watch"], ["bed"], ["go home"], ["hospital"]],
    "bandages": [["bandage"], ["clean and dry"], ["check"], ["infection"], ["shower"], ["bath"]],
    "medicines_after": [["pain"], ["swelling"], ["fever"], ["infection"]],
    "when_to_call": [["{clinic_phone}"], ["on time"], ["fever"], ["infect"], ["questions"], ["worse"], ["right away"],
                     ["{emergency_number}"]],
    "risks": [["infection"], ["bleeding"], ["nerves"], ["blood vessels"], ["ligaments"], ["muscles"], ["bones"],
              ["numbness"], ["pain"]],
    "without_treatment": [["pain"], ["worse"], ["usual activities"]],
    "rights": [["help plan your care"], ["refuse"], ["right"], ["learn"], ["choices"], ["decide"]],
}
# The word each procedure variant's web text must use to name its area, and the area it must not name
# (a neck answer may mention 'back pain', as the cervical leaflet does, but not the lower back).
AREA_WORDS = {"lumbar": "back", "cervical": "neck"}
OTHER_AREA_WORDS = {"lumbar": "neck", "cervical": "lower back"}


# --- intents the three files must agree on ----------------------------------------------------
def domain_topic_intents(domain_path: Path = DOMAIN_PATH) -> list[str]:
    """The domain's topic intents: those named `ask_*`, each answered from one knowledge entry."""
    domain = read_yaml(domain_path) or {}
    names = [next(iter(intent)) if isinstance(intent, dict) else intent for intent in domain.get("intents") or []]
    return sorted(name for name in names if isinstance(name, str) and name.startswith(TOPIC_INTENT_PREFIX))


def rule_topic_intents(rules_path: Path = TOPIC_RULES_PATH) -> list[str]:
    """Intents that a rule answers with `action_answer_topic`."""
    rules = (read_yaml(rules_path) or {}).get("rules") or []
    intents = set()
    for rule in rules:
        steps = rule.get("steps") or []
        for step, following in zip(steps, steps[1:], strict=False):
            if "intent" in step and following.get("action") == TOPIC_ACTION:
                intents.add(step["intent"])
    return sorted(intents)


def intent_disagreements(knowledge: Iterable[str], domain: Iterable[str], rules: Iterable[str]) -> list[str]:
    """What one of the three intent lists has that the domain's topic intents do not, and the reverse."""
    wanted = set(domain)
    problems = []
    for source, intents in (("knowledge entries", set(knowledge)), ("topic rules", set(rules))):
        if wanted - intents:
            problems.append(f"topic intents without {source}: {sorted(wanted - intents)}")
        if intents - wanted:
            problems.append(f"{source} name intents that are not domain topic intents: {sorted(intents - wanted)}")
    return problems


# --- the report --------------------------------------------------------------------------------
@dataclass
class Extreme:
    """The largest value seen and where, so a reviewer sees how close the texts are to a limit."""

    value: float = float("-inf")
    at: str = ""

    def update(self, value: float, at: str) -> None:
        if value > self.value:
            self.value, self.at = value, at


@dataclass
class LintReport:
    problems: list[str] = field(default_factory=list)
    files: int = 0
    entries: int = 0
    examples: int = 0
    max_grade: Extreme = field(default_factory=Extreme)
    max_sms: Extreme = field(default_factory=Extreme)

    def summary(self) -> str:
        return (f"{self.entries} entries in {self.files} files, {self.examples} examples\n"
                f"max grade {self.max_grade.value:.2f} at {self.max_grade.at}\n"
                f"max sms length {self.max_sms.value:.0f} at {self.max_sms.at}\n"
                f"{len(self.problems)} problem(s)")


def lint_knowledge(leaflet_hashes: set[str], topics_dir: Path | None = None, domain_path: Path = DOMAIN_PATH,
                   rules_path: Path = TOPIC_RULES_PATH, settings: ClinicSettings | None = None) -> LintReport:
    """Every check above; `leaflet_hashes` are the hashed 8-word runs of the source leaflets."""
    topics_dir = Path(topics_dir or KNOWLEDGE_DIR / "topics")
    # the clinic's own file values, not this machine's environment
    settings = settings or load_clinic_settings(environ={})
    report = LintReport()
    files = sorted(topics_dir.glob("*.yml"))
    report.files = len(files)
    for path in files:
        hits = copied_runs(path.read_text(encoding="utf-8"), leaflet_hashes)
        if hits:
            report.problems.append(f"{path.name}: {len(hits)} 8-word run(s) shared with the leaflets, e.g. '{hits[0]}'")
    try:
        kb = load_knowledge(topics_dir)
    except DataFileError as error:
        report.problems.append(str(error))
        return report
    report.entries = len(kb.entries)
    for entry in kb.entries:
        report.problems.extend(_entry_problems(entry, leaflet_hashes, settings, report))
    report.problems.extend(_example_problems(kb, report))
    report.problems.extend(intent_disagreements(kb.intents, domain_topic_intents(domain_path),
                                                rule_topic_intents(rules_path)))
    return report


def _entry_problems(entry: Entry, leaflet_hashes: set[str], settings: ClinicSettings,
                    report: LintReport) -> Iterator[str]:
    where = f"{Path(entry.path).name}:{entry.id}"
    for source in entry.sources:
        if source.leaflet in CLINIC_SOURCES:  # the clinic's own file (warning signs): it must exist
            if not (KNOWLEDGE_DIR / source.leaflet).is_file():
                yield f"{where}: cites {source.leaflet!r}, which is not in knowledge/"
        elif source.section not in SECTIONS.get(source.leaflet, set()):
            yield f"{where}: unknown source {source.leaflet!r} / {source.section!r}"
    for variant, answer in entry.answers.items():
        for form, text in (("web", answer.web), ("sms", answer.sms)):
            yield from _text_problems(f"{where}.{variant}.{form}", form, text, leaflet_hashes, settings, report)
        web = answer.web.lower()
        if variant in AREA_WORDS and AREA_WORDS[variant] not in web:
            yield f"{where}.{variant}.web: should name the area ('{AREA_WORDS[variant]}')"
        if variant in OTHER_AREA_WORDS and OTHER_AREA_WORDS[variant] in web:
            yield f"{where}.{variant}.web: mentions the {OTHER_AREA_WORDS[variant]}"
        for group in EXPECTED.get(entry.id, []):
            if not any(word.lower() in web for word in group):
                yield f"{where}.{variant}.web: lacks any of {group}"
    if entry.id not in EXPECTED:
        yield f"{where}: no expected-word list in the checker"
    if len(entry.examples) not in EXAMPLES_PER_ENTRY:
        yield f"{where}: {len(entry.examples)} examples (want {EXAMPLES_PER_ENTRY.start}-{EXAMPLES_PER_ENTRY.stop - 1})"
    for example in entry.examples:
        hits = copied_runs(example, leaflet_hashes)
        if hits:
            yield f"{where}: example copies '{hits[0]}'"


def _text_problems(label: str, form: str, raw: str, leaflet_hashes: set[str], settings: ClinicSettings,
                   report: LintReport) -> Iterator[str]:
    for placeholder in PLACEHOLDER.findall(raw):
        if placeholder not in PLACEHOLDER_NAMES:
            yield f"{label}: unknown placeholder {{{placeholder}}}"
    shown_texts = (("raw", raw), ("filled", fill_placeholders(raw, settings)))
    for shown, text in shown_texts:
        grade = reading_grade(text)
        report.max_grade.update(grade, f"{label} ({shown})")
        if grade > MAX_READING_GRADE:
            yield f"{label}: grade {grade:.2f} ({shown}) > {MAX_READING_GRADE}"
    hits = copied_runs(raw, leaflet_hashes)
    if hits:
        yield f"{label}: copies '{hits[0]}'"
    if "**" in raw or "##" in raw or "<" in raw:
        yield f"{label}: markdown or html"
    if form == "sms":
        for shown, text in shown_texts:
            report.max_sms.update(len(text), f"{label} ({shown})")
            if len(text) > SMS_MAX_CHARS:
                yield f"{label}: {len(text)} characters ({shown}) > {SMS_MAX_CHARS}"
        if "\n" in raw or re.search(r"(^|\s)- ", raw):
            yield f"{label}: sms must be one plain paragraph without bullets"
        return
    lines = [line for line in raw.splitlines() if line.strip()]
    bullets = [line for line in lines if line.startswith("- ")]
    sentences = len(re.findall(r"[.!?](\s|$)", raw))
    if not bullets and sentences not in WEB_SENTENCES:
        yield (f"{label}: {sentences} sentences "
               f"(want {WEB_SENTENCES.start}-{WEB_SENTENCES.stop - 1} or intro + bullets)")
    if any(not line.rstrip().endswith((".", ":", "?", "!")) for line in lines):
        yield f"{label}: a line does not end with punctuation (grade counts it as one sentence)"


def _example_problems(kb: KnowledgeBase, report: LintReport) -> Iterator[str]:
    """Examples must be unique and lead the second opinion back to their own entry, never strongly elsewhere."""
    seen: dict[str, str] = {}
    for entry in kb.entries:
        report.examples += len(entry.examples)
        others = KnowledgeBase(other for other in kb.entries if other is not entry)
        for example in entry.examples:
            key = " ".join(words(example))
            if key in seen:
                yield f"example '{example}' is in {entry.id} and {seen[key]}"
            seen[key] = entry.id
            match = kb.best_fuzzy_match(example)
            if match and match.entry.id != entry.id:
                yield f"example '{example}' ({entry.id}) is matched to {match.entry.id} ({match.score:.0f})"
            rival = others.best_fuzzy_match(example)
            if rival and rival.score >= STRONG_FUZZY_MATCH:
                yield (f"example '{example}' ({entry.id}) is a strong match ({rival.score:.0f}) "
                       f"for an example of {rival.entry.id}")
