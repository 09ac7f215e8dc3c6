"""The numpy all-MiniLM-L6-v2 against reference vectors made with transformers' TFBertModel.

tests/fixtures/encoder_reference.json was written once with transformers 4.36.2 (TFBertModel +
BertTokenizer from the same .encoder/ files, mean pooling over the attention mask, L2 norm), outside
the project's dependencies; this checks our tokenizer and forward pass reproduce it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bot.sentence_encoder import MAX_TOKENS, EncoderMissing, SentenceEncoder, sentence_encoder

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "encoder_reference.json").read_text())


@pytest.mark.parametrize("case", REFERENCE["sentences"], ids=lambda case: case["text"][:30])
def test_tokens_and_vector_match_the_reference_implementation(case):
    encoder = sentence_encoder()
    assert encoder.tokenizer.encode(case["text"]) == case["ids"]
    vector = encoder.encode([case["text"]])[0]
    assert np.abs(vector - np.array(case["vector"])).max() < 1e-4


def test_vectors_are_unit_length_and_batching_does_not_change_them():
    texts = ["can i drive home", "what is in the shot and why", "hi", "x" * 50]
    together = sentence_encoder().encode(texts)
    one_by_one = np.stack([sentence_encoder().encode([text])[0] for text in texts])
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert np.abs(together - one_by_one).max() < 1e-5


def test_a_paraphrase_is_closer_than_an_unrelated_question():
    driver, ride, cost = sentence_encoder().encode(
        ["do i need someone to drive me home", "who is going to take me home afterwards", "how much does it cost"]
    )
    assert driver @ ride > driver @ cost + 0.2


def test_a_very_long_text_is_cut_to_the_model_limit():
    ids = sentence_encoder().tokenizer.encode("numb " * 1000)
    assert len(ids) == MAX_TOKENS
    assert sentence_encoder().encode(["numb " * 1000]).shape == (1, 384)


def test_missing_model_files_say_how_to_install_them(tmp_path):
    with pytest.raises(EncoderMissing, match="make setup"):
        SentenceEncoder(tmp_path)
