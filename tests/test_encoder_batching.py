"""Sentence embeddings of concurrent messages in one forward pass (bot/encoder_batching.py).

The real encoder: a batch gives each text the vector it gets alone, messages that reach understanding
in the same turn of the event loop share one pass, a lone message is not held back, and nothing stays
held afterwards (cancelled and failed batches included).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bot.encoder_batching import EncoderBatcher
from bot.sentence_encoder import sentence_encoder

TEXTS = ["can i drive home after my nerve block", "what about the neck one?",
         "since the shot I can't feel my legs", "thanks", "can i drive home after my nerve block"]


@pytest.fixture()
def encoder():
    encoder = sentence_encoder()
    assert not encoder._prepared
    yield encoder
    assert not encoder._prepared, "a prepared embedding was never released"


def test_prepared_texts_get_the_vectors_they_get_alone_and_are_not_computed_again(encoder, monkeypatch):
    alone = np.stack([encoder.encode([text])[0] for text in TEXTS])
    encoder.prepare(TEXTS)
    computed = []
    original = encoder._compute
    monkeypatch.setattr(encoder, "_compute", lambda texts, *a: computed.append(texts) or original(texts, *a))
    together = encoder.encode(TEXTS)
    assert computed == []
    assert np.abs(together - alone).max() < 1e-5
    for text in TEXTS:
        encoder.release(text)
    encoder.encode(TEXTS[:1])
    assert computed == [TEXTS[:1]]


def test_a_text_held_twice_stays_until_both_release_it(encoder):
    encoder.prepare(["thanks", "thanks"])
    encoder.release("thanks")
    assert "thanks" in encoder._prepared
    encoder.release("thanks")
    encoder.release("thanks")  # one release too many does no harm
    assert "thanks" not in encoder._prepared


async def understand(batcher: EncoderBatcher, text: str, seen: dict) -> None:
    await asyncio.sleep(0)
    async with batcher.prepared(text):
        seen[text] = text in batcher.encoder._prepared


def test_messages_in_the_same_loop_turn_share_one_pass_and_a_lone_one_is_not_held(encoder):
    batcher = EncoderBatcher(encoder)
    seen: dict = {}

    async def main() -> None:
        await asyncio.gather(*(understand(batcher, text, seen) for text in TEXTS))
        await understand(batcher, "a message on its own", seen)

    asyncio.run(main())
    assert dict(batcher.batch_sizes) == {len(TEXTS): 1, 1: 1}
    assert all(seen.values()) and len(seen) == len(set(TEXTS)) + 1


def test_a_cancelled_message_is_left_out_and_releases_nothing_it_did_not_hold(encoder):
    batcher = EncoderBatcher(encoder)
    seen: dict = {}

    async def main() -> None:
        tasks = [asyncio.create_task(understand(batcher, text, seen)) for text in TEXTS[:3]]
        await asyncio.sleep(0)  # all three are waiting for the pass
        tasks[1].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    assert dict(batcher.batch_sizes) == {2: 1}
    assert set(seen) == {TEXTS[0], TEXTS[2]}


def test_a_failed_pass_lets_each_message_be_encoded_as_usual(encoder, monkeypatch, caplog):
    batcher = EncoderBatcher(encoder)

    def broken(texts):
        raise MemoryError("no room")

    monkeypatch.setattr(encoder, "prepare", broken)
    vectors = {}

    async def one(text: str) -> None:
        async with batcher.prepared(text):
            vectors[text] = encoder.encode([text])[0]

    async def main() -> None:
        await asyncio.gather(*(one(text) for text in TEXTS[:3]))

    asyncio.run(main())
    assert set(vectors) == set(TEXTS[:3])
    assert "Encoding a batch of 3 messages failed" in caplog.text
