"""Urgent-symptom triage (bot/triage/ + knowledge/triage_rules.yml).

The labelled set tests/triage/cases.jsonl holds patient-style messages: urgent ones (every one must
escalate, at the right level) and hard negatives (negated, hypothetical, historical, someone else's,
expected short-lived effects, trap words) that should not.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from bot import triage
from bot.datafile import DataFileError

ROOT = Path(__file__).resolve().parents[1]
CASES_PATH = ROOT / "tests" / "triage" / "cases.jsonl"
MIN_URGENT, MIN_NEGATIVE, MIN_PER_RULE = 140, 80, 5
MIN_SPECIFICITY = 0.90


def load_cases() -> list[dict]:
    cases = []
    for number, line in enumerate(CASES_PATH.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            case = json.loads(line)
            case["line"] = number
            cases.append(case)
    return cases


CASES = load_cases()
URGENT = [c for c in CASES if c["urgent"]]
NEGATIVE = [c for c in CASES if not c["urgent"]]


@pytest.fixture(scope="module")
def detector() -> triage.TriageDetector:
    return triage.get_detector()


@pytest.fixture(scope="module")
def results(detector) -> dict[str, triage.TriageResult]:
    return {case["text"]: triage.detect(case["text"]) for case in CASES}


def describe(case: dict, result: triage.TriageResult) -> str:
    mentions = (*result.spans, *result.ignored)
    found = "; ".join(f"{s.rule}:{s.status} {s.text!r} {list(s.cues)}" for s in mentions[-6:])
    if len(mentions) > 6:
        found = f"({len(mentions) - 6} more) ... " + found
    return (f"  line {case['line']} [{case.get('rule')}] {case['text']!r}\n"
            f"      -> level={result.level} symptoms={list(result.symptoms)} mentions: {found or 'none'}")


# ------------------------------------------------------------------------------------- the labelled set


def test_labelled_set_is_well_formed(detector):
    rule_ids = {rule.id: rule.level for rule in detector.rules.rules}
    problems = []
    for case in CASES:
        where = f"line {case['line']}"
        if set(case) - {"line"} != {"text", "urgent", "level", "rule", "why"}:
            problems.append(f"{where}: fields must be text, urgent, level, rule, why")
        if not isinstance(case.get("text"), str) or not case["text"].strip() or not case.get("why"):
            problems.append(f"{where}: needs a text and a why")
        if case.get("urgent") is True:
            if case.get("rule") not in rule_ids:
                problems.append(f"{where}: unknown rule {case.get('rule')!r}")
            elif case.get("level") != rule_ids[case["rule"]]:
                problems.append(f"{where}: level {case.get('level')!r} but rule {case['rule']} is {rule_ids[case['rule']]}")
        elif case.get("urgent") is False:
            if case.get("level") is not None or case.get("rule") is not None:
                problems.append(f"{where}: a negative case has no level or rule")
        else:
            problems.append(f"{where}: urgent must be true or false")
    texts = Counter(c["text"] for c in CASES)
    problems += [f"duplicate text {t!r}" for t, n in texts.items() if n > 1]
    assert not problems, "\n".join(problems)

    assert len(URGENT) >= MIN_URGENT and len(NEGATIVE) >= MIN_NEGATIVE, (len(URGENT), len(NEGATIVE))
    per_rule = Counter(c["rule"] for c in URGENT)
    thin = {rule: per_rule.get(rule, 0) for rule in rule_ids if per_rule.get(rule, 0) < MIN_PER_RULE}
    assert not thin, f"rules with fewer than {MIN_PER_RULE} urgent cases: {thin}"


def test_recall_is_one_on_the_urgent_set(results):
    misses = [describe(c, results[c["text"]]) for c in URGENT if results[c["text"]].level is None]
    assert not misses, f"{len(misses)} of {len(URGENT)} urgent messages were NOT escalated:\n" + "\n".join(misses)


def test_level_and_rule_are_right_for_each_urgent_case(results):
    wrong = []
    for case in URGENT:
        result = results[case["text"]]
        if result.level is not None and (result.level != case["level"] or case["rule"] not in result.symptoms):
            wrong.append(describe(case, result) + f"\n      expected level={case['level']} rule={case['rule']}")
    assert not wrong, f"{len(wrong)} urgent messages got the wrong level or rule:\n" + "\n".join(wrong)


def test_specificity_on_hard_negatives(results):
    false_alarms = [describe(c, results[c["text"]]) for c in NEGATIVE if results[c["text"]].level is not None]
    specificity = 1 - len(false_alarms) / len(NEGATIVE)
    assert specificity >= MIN_SPECIFICITY, (
        f"specificity {specificity:.3f} < {MIN_SPECIFICITY}; false alarms:\n" + "\n".join(false_alarms))


@pytest.mark.parametrize("text", [
    "what if I get a fever?",
    "is numbness normal for a few hours?",
    "what are the warning signs",
    "does the dye cause allergic reactions?",
    "will i be numb in my groin after?",
    "no fever",
    "i don't have a fever",
    "my fever last month is gone",
    "was dizzy in recovery but the nurse said fine, I'm fine now",
    "my mom had a headache after hers",
    "numb for a few hours is that normal",
    "I have hay fever, can I still have the injection?",
])
def test_context_examples_from_the_brief_do_not_escalate(text):
    result = triage.detect(text)
    assert result.level is None, describe({"line": "-", "text": text}, result)


@pytest.mark.parametrize(("text", "level"), [
    ("is it normal to not be able to move my foot 20 hrs after?", "emergency"),
    ("can i shower? also my site is red and oozing", "urgent"),
    ("i have a feaver", "urgent"),
    ("numbnes spreading down my leg", "emergency"),
    ("cant pee since the shot", "emergency"),
    ("i pooped my pants and didnt feel it", "emergency"),
    ("bleding wont stop", "emergency"),
    ("got the chills", "urgent"),
    ("temp of 101", "urgent"),
    ("i have a fever and my leg keeps giving out", "emergency"),  # both levels -> emergency
])
def test_escalation_examples_from_the_brief(text, level):
    result = triage.detect(text)
    assert result.level == level, describe({"line": "-", "text": text}, result)


def test_emergency_wins_when_both_levels_fire():
    result = triage.detect("my temp is 101 and i cant feel my legs")
    assert result.level == "emergency"
    assert {"fever", "new_numbness"} <= set(result.symptoms)


def test_spans_point_into_the_original_text(results):
    for case in URGENT:
        result = results[case["text"]]
        for span in result.spans:
            assert span.status == "asserted"
            assert 0 <= span.start < span.end <= len(case["text"]), (case["text"], span)
            assert case["text"][span.start:span.end] == span.text and span.text.strip(), (case["text"], span)
        assert {span.rule for span in result.spans} == set(result.symptoms), describe(case, result)


# ------------------------------------------------------------------------------------- the rules file


def test_rules_file_loads_and_every_rule_is_documented(detector):
    rules = detector.rules.rules
    assert len(rules) >= 15
    assert {rule.level for rule in rules} == set(triage.LEVELS)
    for rule in rules:
        assert rule.label and rule.source and rule.groups, rule.id


RULES_TEXT = triage.RULES_PATH.read_text(encoding="utf-8")


def broken(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(RULES_TEXT)
    edit(data)
    path = tmp_path / "broken_triage_rules.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def rule(data: dict, rule_id: str) -> dict:
    return next(r for r in data["rules"] if r["id"] == rule_id)


@pytest.mark.parametrize(("edit", "rule_id", "field"), [
    (lambda d: rule(d, "fever").update(level="soon"), "fever", "level"),
    (lambda d: rule(d, "fever").pop("source"), "fever", "source"),
    (lambda d: rule(d, "fever").update(label="  "), "fever", "label"),
    (lambda d: rule(d, "chest_heart")["patterns"].insert(0, "chest <no_such_list>"), "chest_heart", "patterns[0]"),
    (lambda d: rule(d, "chest_heart")["patterns"].insert(2, "chest ...99 pain"), "chest_heart", "patterns[2]"),
    (lambda d: rule(d, "fainting")["patterns"].insert(0, "#no_such_special"), "fainting", "patterns[0]"),
    (lambda d: rule(d, "csf_leak")["fires_when"].append(["clear_fluid", "nope"]), "csf_leak", "fires_when[1]"),
    (lambda d: rule(d, "fever_before_procedure")["groups"]["fever"].append("@no_such_rule"),
     "fever_before_procedure", "groups.fever[1]"),
    (lambda d: rule(d, "fever").update(replaces=["nothing_like_this"]), "fever", "replaces[0]"),
    (lambda d: rule(d, "fever").update(colour="red"), "fever", None),
    (lambda d: rule(d, "site_infection").update(id="fever"), "fever", "id"),
])
def test_broken_rules_file_errors_name_file_rule_and_field(tmp_path, edit, rule_id, field):
    path = broken(tmp_path, edit)
    with pytest.raises(DataFileError) as raised:
        triage.load_rules(path)
    message = str(raised.value)
    assert str(path) in message and f"'{rule_id}'" in message, message
    if field:
        assert f"field '{field}'" in message, message


@pytest.mark.parametrize(("edit", "field"), [
    (lambda d: d["context"][0].update(category="maybe"), "context[0].category"),
    (lambda d: d["context"][3].update(max_words=0), "context[3].max_words"),
    (lambda d: d["word_lists"]["limb"].append(""), "word_lists.limb["),
    (lambda d: d["settings"].update(gap="four"), "settings.gap"),
    (lambda d: d.update(rulez=[]), None),
])
def test_broken_context_and_settings_errors_name_the_field(tmp_path, edit, field):
    path = broken(tmp_path, edit)
    with pytest.raises(DataFileError) as raised:
        triage.load_rules(path)
    message = str(raised.value)
    assert str(path) in message, message
    if field:
        assert f"field '{field}" in message, message


def test_missing_or_invalid_yaml_names_the_file(tmp_path):
    with pytest.raises(DataFileError, match="file not found"):
        triage.load_rules(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("rules: [\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="not valid YAML") as raised:
        triage.load_rules(bad)
    assert str(bad) in str(raised.value)


def test_a_rules_file_can_be_extended_by_staff(tmp_path):
    """A new rule written in the documented pattern language works without code changes."""
    def add_rule(data):
        data["rules"].append({
            "id": "vomiting", "level": "urgent", "label": "Cannot stop vomiting", "source": "clinic protocol",
            "patterns": ["<cannot> ...2 stop throw_up|vomit|puke", "=vomiting ...3 =all_day|=all_night"],
            "fuzzy": ["vomiting"],
        })
    detector = triage.build_detector(broken(tmp_path, add_rule))
    assert detector.detect("cant stop throwing up").symptoms == ("vomiting",)
    assert detector.detect("vomitting all night").level == "urgent"
    assert detector.detect("what if i cant stop throwing up?").level is None


# ------------------------------------------------------------------------------------- robustness


URGENT_TAIL = ". ok and now i cant feel my legs"
BAD_INPUTS = [
    "", " ", "\n\t", None, 42, 3.5, ["fever"], {"text": "fever"}, b"i have a fever", b"\xff\xfe\x00",
    "😀😀😀🙏", "🔥" * 3000, "这个注射疼吗", "我发烧了", "هل الحقنة مؤلمة؟", "¿Cuánto tiempo dura la inyección?",
    "<script>alert('hi')</script>", "<p><b>hello</b></p>" * 200, "&lt;&gt;&amp;&#39;" * 50, "\x00\x01\x02\x7f",
    "x" * 10_000, ("word " * 2_000), "a" * 50_000, "?" * 5_000, "." * 5_000, "1" * 5_000, "101.5" * 2_000,
    "\u200b\u200f\ufeff", "İ" * 100 + " fever", "ＦＥＶＥＲ", "\r\n" * 500, "can't " * 1_000, "'" * 500,
    "-" * 1000 + "fever" + "-" * 1000,
]


@pytest.mark.parametrize("value", BAD_INPUTS, ids=lambda v: repr(v)[:30])
def test_bad_input_never_raises(value):
    result = triage.detect(value)
    assert isinstance(result, triage.TriageResult)
    assert result.error is None, result.error
    assert result.level in (None, *triage.LEVELS)


def test_bytes_are_read_as_text():
    assert triage.detect(b"i have a fever of 101").level == "urgent"


@pytest.mark.parametrize("filler", [
    "when can i shower? ", "x" * 9_990 + " ", "la la la " * 1_200, "<div>can i drive?</div> " * 500,
    "no " * 3_400, "i do not have a fever. ", "what if i get a fever? ",
], ids=["questions", "one-long-word", "la-la", "html", "no-no-no", "negated-sentences", "hypothetical-sentences"])
def test_urgent_phrase_at_the_end_of_a_very_long_message_is_found(filler):
    room = 10_000 - len(URGENT_TAIL)
    body = filler * (room // len(filler)) if len(filler) <= room else filler[:room]
    text = body + " " * (room - len(body)) + URGENT_TAIL
    assert len(text) == 10_000
    result = triage.detect(text)
    assert result.level == "emergency", describe({"line": "-", "text": text[-200:]}, result)
    span = result.spans[-1]
    assert text[span.start:span.end] == span.text and span.start > 9_900


def test_a_negation_does_not_reach_past_and():
    assert triage.detect("no no no ok and now i cant feel my legs").level == "emergency"
    assert triage.detect("i dont have a fever and my site is red and oozing").level == "urgent"


def test_urgent_phrase_past_the_scanned_window_at_the_end_is_found():
    text = "how long does it last? " * 3_000 + "my site is red and oozing pus"
    assert len(text) > triage.MAX_SCAN_CHARS
    assert triage.detect(text).level == "urgent"


def test_html_wrapped_urgent_message():
    result = triage.detect("<p>hi</p><p>my site is <b>red</b> and <i>oozing</i></p>")
    assert result.level == "urgent" and result.symptoms == ("site_infection",)


def test_random_noise_never_raises():
    rng = random.Random(1234)
    alphabet = "abcdefghijklmnopqrstuvwxyz '.,?!-/0123456789°\n<>&é中😀"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
        result = triage.detect(text)
        assert result.error is None, (text, result.error)


def test_detection_is_deterministic(tmp_path):
    texts = [c["text"] for c in CASES[::7]]
    first = [triage.detect(t) for t in texts]
    again = [triage.detect(t) for t in reversed(texts)][::-1]
    fresh = triage.build_detector()
    rebuilt = [fresh.detect(t) for t in texts]
    assert first == again == rebuilt


def test_result_is_frozen():
    result = triage.detect("i have a fever")
    with pytest.raises(AttributeError):
        result.level = None  # type: ignore[misc]


def test_broken_rules_file_in_a_running_process_does_not_raise(monkeypatch, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("rules: nope", encoding="utf-8")
    monkeypatch.setattr(triage, "RULES_PATH", bad)
    triage.reset_detector()
    try:
        result = triage.detect("i have a fever")
        assert result.level is None and "rules" in (result.error or "")
    finally:
        monkeypatch.undo()
        triage.reset_detector()
    assert triage.detect("i have a fever").level == "urgent"


# ------------------------------------------------------------------------------------- normalising, spelling


@pytest.mark.parametrize(("raw", "normal"), [
    ("I cant pee", "i can not pee"),
    ("u r sure? pls call", "you are sure? please call"),
    ("temp 101F", "temperature 101 f"),
    ("38,5°C", "38.5 degrees c"),
    ("20hrs after", "20 hours after"),
    ("pain 10/10", "pain 10 out of 10"),
    ("feeeever", "feever"),
    ("light-headed", "light headed"),
    ("I\u2019m numb", "i am numb"),
    ("<b>red</b> site", "red site"),
])
def test_sms_shorthand_is_spelled_out(raw, normal):
    assert re.sub(r"\s+", " ", triage.normalise_text(raw)) == normal


def test_normalised_positions_map_back_to_the_original():
    text = "OMG I cant pee!! temp 101F b/c of the shot"
    normal, offsets = triage.normalise(text)
    assert len(offsets) == len(normal) + 1 and offsets[-1] == len(text)
    assert all(0 <= o <= len(text) for o in offsets) and offsets == sorted(offsets)


@pytest.mark.parametrize("word", ["feaver", "fevar", "numbnes", "bleding", "cheills", "headach", "swolen", "tempature",
                                  "incontinance", "paralized", "vison", "dizzyness"])
def test_misspellings_are_corrected(detector, word):
    assert detector._correct(word) is not None, word


@pytest.mark.parametrize("word", ["never", "fewer", "favor", "clever", "number", "blessing", "breeding", "chilli",
                                  "swallow", "heading", "numbers", "lumbar", "cervical", "shower", "bandage"])
def test_ordinary_words_are_not_corrected_into_symptoms(detector, word):
    doc = detector.nlp.make_doc(word)
    detector._flag_tokens(doc)
    assert doc[0].norm_ == word


def test_fuzzy_matching_does_not_fire_on_project_text(detector):
    """Every word of the NLU data, the knowledge base and the non-urgent samples: list the corrections."""
    texts = [c["text"] for c in NEGATIVE] + nlu_texts(urgent=False)
    corrected = {}
    for text in texts:
        doc = detector.nlp.make_doc(triage.normalise_text(text))
        detector._flag_tokens(doc)
        corrected.update({t.lower_: t.norm_ for t in doc if t.norm_ != t.lower_})
    # a typo corrected into a symptom word is fine; a real word turned into one is not
    _, _, known = triage._lookups()
    assert not {w: c for w, c in corrected.items() if w in known}, corrected


# ------------------------------------------------------------------------------------- project data


def nlu_texts(urgent: bool) -> list[str]:
    texts = []
    for path in sorted([*ROOT.glob("data/nlu/*.yml"), *ROOT.glob("tests/nlu/*.yml")]):
        for item in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu", []) or []:
            if "intent" not in item or (item["intent"] == "report_urgent_symptom") != urgent:
                continue
            for line in (item.get("examples") or "").splitlines():
                if line.strip().startswith("- "):
                    texts.append(re.sub(r"\[([^\]]+)\][({][^)}]*[)}]", r"\1", line.strip()[2:]))
    if not urgent:
        for path in ROOT.glob("knowledge/topics/*.yml"):
            for entry in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("entries", []):
                texts.extend(entry.get("examples") or [])
    return texts


def test_no_false_alarms_on_the_project_nlu_data():
    texts = nlu_texts(urgent=False)
    if not texts:
        pytest.skip("no NLU data yet")
    fired = [f"  {t!r} -> {triage.detect(t).symptoms}" for t in texts if triage.detect(t).level]
    assert len(fired) <= 0.02 * len(texts), f"{len(fired)} of {len(texts)} non-urgent NLU examples escalate:\n" + \
        "\n".join(fired)


def test_the_report_urgent_symptom_training_examples_escalate():
    texts = nlu_texts(urgent=True)
    if not texts:
        pytest.skip("no report_urgent_symptom examples yet")
    missed = [f"  {t!r}" for t in texts if triage.detect(t).level is None]
    assert not missed, f"{len(missed)} report_urgent_symptom examples are not caught by the rules:\n" + "\n".join(missed)


def test_median_time_per_message_is_under_2_ms(detector):
    texts = [c["text"] for c in CASES]
    for text in texts[:20]:
        detector.detect(text)
    timings = []
    for text in texts:
        start = time.perf_counter()
        detector.detect(text)
        timings.append(time.perf_counter() - start)
    assert statistics.median(timings) < 0.002, f"median {statistics.median(timings) * 1e6:.0f} us"
