"""The knowledge base: loads, validates with useful errors, covers every topic, reads plainly, copies nothing."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from bot.datafile import DataFileError
from bot.knowledge import load_knowledge
from bot.readability import reading_grade
from bot.settings import load_clinic_settings
from bot.shingles import copied_runs
from bot.vocabulary import SMS_MAX_CHARS

ROOT = Path(__file__).resolve().parents[1]
MAX_GRADE = 8.0


@pytest.fixture(scope="module")
def kb():
    return load_knowledge()


def all_answer_texts(kb):
    for entry in kb.entries:
        for variant, answer in entry.answers.items():
            yield f"{entry.id}.{variant}.web", answer.web
            yield f"{entry.id}.{variant}.sms", answer.sms


def english_responses(domain):
    """Every English domain response text (variants for another language are not graded in English)."""
    for response, variants in domain["responses"].items():
        for number, variant in enumerate(variants):
            languages = [c.get("value") for c in variant.get("condition") or [] if c.get("name") == "language"]
            if variant.get("text") and all(value == "en" for value in languages):
                yield f"{response}[{number}]", variant["text"]


def channel_messages():
    """Every channel message of bot/messages.py (the upper-case string constants)."""
    from bot import messages

    return [(name, value) for name, value in vars(messages).items() if name.isupper() and isinstance(value, str)]


def test_channel_messages_are_all_covered():
    names = {name for name, _ in channel_messages()}
    assert {"SAFE_REPLY", "EMPTY_REPLY", "HELP_REPLY", "OPT_OUT_REPLY", "SMS_ASK_PROCEDURE"} <= names


def test_every_topic_intent_has_exactly_one_entry(kb, topic_intents):
    assert sorted(kb.intents) == sorted(topic_intents)


def test_every_entry_cites_a_leaflet_section(kb):
    for entry in kb.entries:
        assert entry.sources, entry.id
        assert all(s.section.strip() for s in entry.sources), entry.id


def test_sms_answers_fit_in_two_texts(kb):
    too_long = [(name, len(text)) for name, text in all_answer_texts(kb) if name.endswith(".sms") and len(text) > SMS_MAX_CHARS]
    assert not too_long


def test_answers_are_plain_text_without_markdown(kb):
    for name, text in all_answer_texts(kb):
        assert "**" not in text and "##" not in text and "<" not in text, name


def test_reading_level_is_grade_8_or_below(kb, domain):
    hard = {}
    for name, text in all_answer_texts(kb):
        grade = reading_grade(text)
        if grade > MAX_GRADE:
            hard[name] = grade
    for name, text in english_responses(domain):
        grade = reading_grade(text)
        if grade > MAX_GRADE:
            hard[name] = grade
    for name, text in channel_messages():
        grade = reading_grade(text)
        if grade > MAX_GRADE:
            hard[name] = grade
    assert not hard, f"above grade {MAX_GRADE}: {hard}"


def test_no_run_of_eight_words_is_copied_from_the_leaflets():
    fixture = ROOT / "tests" / "fixtures" / "leaflet_shingles.txt"
    leaflet_hashes = {line.strip() for line in fixture.read_text().splitlines() if line and not line.startswith("#")}
    assert len(leaflet_hashes) > 1000  # the fixture really holds both leaflets
    files = [*ROOT.glob("knowledge/**/*.yml"), ROOT / "domain.yml", *ROOT.glob("data/**/*.yml")]
    texts = {str(path.relative_to(ROOT)): path.read_text() for path in files}
    texts.update({f"bot/messages.py:{name}": value for name, value in channel_messages()})
    copies = {}
    for name, text in texts.items():
        runs = copied_runs(text, leaflet_hashes)
        if runs:
            copies[name] = runs[:3]
    assert not copies, copies


def test_the_copy_check_would_catch_a_copied_sentence():
    # A run of eight words that is in the lumbar leaflet, retyped here as a canary.
    canary = "Ask a family member or friend to drive you home after your procedure"
    fixture = ROOT / "tests" / "fixtures" / "leaflet_shingles.txt"
    leaflet_hashes = {line.strip() for line in fixture.read_text().splitlines() if line and not line.startswith("#")}
    assert copied_runs(canary, leaflet_hashes)


def test_answers_with_variants_name_the_body_area(kb):
    for entry in kb.entries:
        if "lumbar" in entry.answers:
            assert "back" in entry.answers["lumbar"].web.lower(), entry.id
        if "cervical" in entry.answers:
            assert "neck" in entry.answers["cervical"].web.lower(), entry.id


def test_reply_picks_variant_channel_and_fills_clinic_settings(kb):
    settings = load_clinic_settings(environ={"CLINIC_PHONE": "555-0000"})
    entry = next(e for e in kb.entries if e.differs_by_procedure)
    lumbar = kb.reply(entry, "lumbar", "rest", settings)
    cervical = kb.reply(entry, "cervical", "rest", settings)
    assert lumbar.text != cervical.text
    both = kb.reply(entry, None, "rest", settings)
    assert "lower back" in both.text.lower() and "neck" in both.text.lower()
    asked = kb.reply(entry, None, "sms", settings)
    assert asked.asks_for_procedure and len(asked.text) <= SMS_MAX_CHARS
    sms = kb.reply(entry, "cervical", "sms", settings)
    assert sms.text == entry.answers["cervical"].sms.replace("{clinic_phone}", "555-0000") or "{" not in sms.text
    for e in kb.entries:
        for variant in ("lumbar", "cervical", None):
            for channel in ("rest", "sms", "socketio"):
                assert "{clinic" not in kb.reply(e, variant, channel, settings).text, e.id


def test_fuzzy_second_opinion_needs_a_strong_match(kb):
    entry = kb.entries[0]
    example = entry.examples[0]
    exact = kb.strong_fuzzy_match(example)
    assert exact is not None and exact.entry.id == entry.id
    assert kb.strong_fuzzy_match("what is the capital of france") is None
    assert kb.strong_fuzzy_match("pain") is None
    assert kb.strong_fuzzy_match("") is None


def write(tmp_path: Path, text: str) -> Path:
    topics = tmp_path / "topics"
    topics.mkdir(exist_ok=True)
    path = topics / "broken.yml"
    path.write_text(textwrap.dedent(text))
    return topics


GOOD_ENTRY = """
entries:
  - id: sample
    intents: [ask_sample]
    sources: [{leaflet: lumbar, section: "After your procedure"}]
    answers:
      general: {web: "Rest.", sms: "Rest."}
"""


def test_a_valid_minimal_file_loads(tmp_path):
    assert load_knowledge(write(tmp_path, GOOD_ENTRY)).by_intent["ask_sample"].id == "sample"


@pytest.mark.parametrize(
    "broken, field",
    [
        (GOOD_ENTRY.replace("intents: [ask_sample]", "intents: []"), "intents"),
        (GOOD_ENTRY.replace('sms: "Rest."', 'sms: "' + "x" * 400 + '"'), "answers.general.sms"),
        (GOOD_ENTRY.replace("leaflet: lumbar", "leaflet: knee"), "sources[0]"),
        (GOOD_ENTRY.replace("general:", "thoracic:"), "answers.thoracic"),
        (GOOD_ENTRY.replace('web: "Rest."', 'web: ""'), "answers.general.web"),
        (GOOD_ENTRY.replace("    intents:", "    colour: red\n    intents:"), "colour"),
    ],
)
def test_validation_errors_name_file_entry_and_field(tmp_path, broken, field):
    with pytest.raises(DataFileError) as caught:
        load_knowledge(write(tmp_path, broken))
    message = str(caught.value)
    assert "broken.yml" in message and "'sample'" in message and f"'{field}'" in message


def test_duplicate_intents_across_entries_are_refused(tmp_path):
    doubled = GOOD_ENTRY + GOOD_ENTRY.replace("entries:\n", "").replace("id: sample", "id: other")
    with pytest.raises(DataFileError, match="already answered by entry 'sample'"):
        load_knowledge(write(tmp_path, doubled))


def test_bad_yaml_names_the_file(tmp_path):
    with pytest.raises(DataFileError, match="broken.yml: not valid YAML"):
        load_knowledge(write(tmp_path, "entries: [unclosed"))


def test_knowledge_files_are_valid_yaml_with_entries_only():
    for path in ROOT.glob("knowledge/topics/*.yml"):
        assert set(yaml.safe_load(path.read_text())) == {"entries"}, path


def test_reading_grade_uses_the_pronunciation_dictionary():
    # "Ache" has one syllable but the fallback estimate counts two; the dictionary knows better.
    assert reading_grade("The cat sat.") < reading_grade("Anesthesiologists administer intravenous medication.")
    from textstat.backend.counts._count_syllables import get_cmudict

    assert get_cmudict("en")["ache"] == [["EY1", "K"]]
