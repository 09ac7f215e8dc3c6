"""Frozen patient-message sets, scored through the real REST API and tracker as the clinic scores the bot.

`tests/eval/fresh_a/`, `fresh_b/` and `fresh_c/` were written by authors who never saw the training data,
rules or tests (see their READMEs for how, and for their first-look scores). All are now regression sets:
the bot was tuned on their misses after each first look, so these floors guard against going back, they do
not measure unseen wording. `tests/eval/patterns/` holds the conversation patterns of the real-wording issue.
`../shared/eval/` (the sample and released batch 1) is read where it is present beside the repo (CI has it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.devtools.patient_eval import SetScore, rest_scorer

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[1]
FRESH_A = ROOT / "tests" / "eval" / "fresh_a"
FRESH_B = ROOT / "tests" / "eval" / "fresh_b"
FRESH_C = ROOT / "tests" / "eval" / "fresh_c"
PATTERNS = ROOT / "tests" / "eval" / "patterns"
STAFF_LABELS = ROOT / "tests" / "eval" / "staff_labels"  # written by `python -m bot.review export-training`
SHARED_EVAL = ROOT.parent / "shared" / "eval"

# Floors a little under the measured score, so a real regression fails and noise does not.
FLOORS = {
    FRESH_A: {"answered": 0.97, "declined": 0.97, "urgent_escalated": 1.0, "negatives_calm": 0.99,
              "conversations": 0.96, "in_scope_told_emergency": 0},
    FRESH_B: {"answered": 0.97, "declined": 0.96, "urgent_escalated": 1.0, "negatives_calm": 0.98,
              "conversations": 0.95, "in_scope_told_emergency": 0},
    FRESH_C: {"answered": 0.97, "declined": 0.92, "urgent_escalated": 1.0, "negatives_calm": 0.98,
              "conversations": 0.95, "in_scope_told_emergency": 0},
    PATTERNS: {"conversations": 1.0},
    STAFF_LABELS: {"answered": 0.9, "declined": 0.9, "in_scope_told_emergency": 0},
    SHARED_EVAL: {"answered": 1.0, "declined": 1.0, "urgent_escalated": 1.0, "negatives_calm": 1.0,
                  "in_scope_told_emergency": 0},
    SHARED_EVAL / "released-batch-1": {"answered": 0.98, "declined": 0.9, "urgent_escalated": 1.0,
                                       "negatives_calm": 1.0, "in_scope_told_emergency": 0},
}


def below_floor(score: SetScore, floors: dict[str, float]) -> list[str]:
    problems = []
    for measure, floor in floors.items():
        if measure == "in_scope_told_emergency":
            if score.in_scope_told_emergency > floor:
                problems.append(f"{score.in_scope_told_emergency} in-scope questions were told to call 911")
        elif getattr(score, measure).rate < floor:
            problems.append(f"{measure} {getattr(score, measure).rate:.3f} < {floor}")
    return problems


@pytest.mark.parametrize("folder", list(FLOORS), ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_frozen_patient_set_meets_its_floors(bot_stack, folder):
    if not folder.is_dir():
        pytest.skip(f"{folder} is not beside this checkout")
    score = rest_scorer(bot_stack.url, bot_stack.token).score(folder)
    print(score.summary(show_misses=20))
    assert not below_floor(score, FLOORS[folder]), score.summary(show_misses=20)


def test_the_first_fresh_set_is_as_large_as_the_issue_asks():
    from bot.devtools.patient_eval import read_jsonl

    urgent = read_jsonl(FRESH_A / "urgent.jsonl")
    assert len(read_jsonl(FRESH_A / "questions.jsonl")) >= 300
    assert len(read_jsonl(FRESH_A / "out_of_scope.jsonl")) >= 100
    assert sum(row["urgent"] for row in urgent) >= 150
    assert sum(not row["urgent"] for row in urgent) >= 100
    assert len(read_jsonl(FRESH_A / "conversations.jsonl")) >= 40
