"""The sentence embeddings of the messages being understood at the same moment, in one forward pass.

Why (README "Per-message cost"): the encoder's matrix products are inefficient for the dozen tokens of
one short message and cost little more for several messages at once (measured: 11 ms for one, 42 ms
for eight), and under load several conversations reach understanding within one turn of the event loop. Each message waits at most until the loop has run what was already ready, never on a
timer; alone, a message is encoded at once, as before. The vectors are the same as one at a time (to
float rounding; tests/test_sentence_encoder.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

logger = logging.getLogger(__name__)


class EncoderBatcher:
    """Gathers texts on the event loop and has the encoder prepare them together (bot/sentence_encoder.py)."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self._waiting: list[tuple[str, asyncio.Future]] = []
        self.batch_sizes: collections.Counter[int] = collections.Counter()  # for the bench and tests

    @contextlib.asynccontextmanager
    async def prepared(self, text: str) -> AsyncIterator[None]:
        """While inside, `text`'s embedding is ready in the encoder (or it is computed as usual if not)."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._waiting.append((text, done))
        if len(self._waiting) == 1:
            loop.call_soon(self._encode_waiting)  # after everything already ready on the loop
        try:
            await done
            yield
        finally:
            self.encoder.release(text)

    def _encode_waiting(self) -> None:
        batch, self._waiting = [(text, done) for text, done in self._waiting if not done.done()], []
        if not batch:
            return
        self.batch_sizes[len(batch)] += 1
        try:
            self.encoder.prepare([text for text, _ in batch])
        except Exception:  # noqa: BLE001 - the classifier then encodes each text itself
            logger.exception("Encoding a batch of %d messages failed; each is encoded on its own.", len(batch))
        for _, done in batch:
            done.set_result(None)
