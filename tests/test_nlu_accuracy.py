"""Held-out NLU accuracy of the trained model, through the real server's /model/parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.devtools.stack import http_json
from bot.nlu_eval import evaluate, load_labelled_examples

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = ROOT / "tests" / "nlu" / "heldout.yml"
ACCURACY_FLOOR = 0.90


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def test_held_out_set_shares_no_line_with_training():
    training = {normalise(t) for path in (ROOT / "data" / "nlu").glob("*.yml") for t, _ in load_labelled_examples(path)}
    held_out = load_labelled_examples(HELD_OUT)
    assert len(held_out) >= 200
    overlap = [t for t, _ in held_out if normalise(t) in training]
    assert not overlap, overlap[:10]


def test_held_out_intent_accuracy_meets_the_floor(bot_stack):
    def predict(text: str) -> str:
        status, body = http_json("POST", f"{bot_stack.url}/model/parse?token={bot_stack.token}", {"text": text})
        assert status == 200, body
        return body["intent"]["name"]

    report = evaluate(load_labelled_examples(HELD_OUT), predict)
    print(report.summary())
    assert report.accuracy >= ACCURACY_FLOOR, report.summary()
