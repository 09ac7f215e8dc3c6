"""8-word shingles, hashed, to prove our text never copies the source leaflets.

The repo keeps only the hashes (tests/fixtures/leaflet_shingles.txt), never the leaflet text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

SHINGLE_WORDS = 8
LEAFLET_HASHES_PATH = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "leaflet_shingles.txt"
WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def shingles(text: str, size: int = SHINGLE_WORDS) -> Iterator[str]:
    tokens = words(text)
    for start in range(len(tokens) - size + 1):
        yield " ".join(tokens[start : start + size])


def shingle_hash(shingle: str) -> str:
    return hashlib.sha256(shingle.encode()).hexdigest()[:20]


def hashed_shingles(texts: Iterable[str]) -> set[str]:
    return {shingle_hash(s) for text in texts for s in shingles(text)}


def copied_runs(text: str, leaflet_hashes: set[str]) -> list[str]:
    """The 8-word runs of `text` that also occur in a leaflet."""
    return [s for s in shingles(text) if shingle_hash(s) in leaflet_hashes]


def read_hashes(path: Path = LEAFLET_HASHES_PATH) -> set[str]:
    """The hashes kept in a fixture file written by scripts/make_shingle_fixture.py (one a line, # comments)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}
