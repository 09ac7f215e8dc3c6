"""Regenerate tests/fixtures/leaflet_shingles.txt from the leaflets in ../shared/seeds (hashes only)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.shingles import hashed_shingles  # noqa: E402


def main() -> None:
    seeds = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "seeds"
    texts = [path.read_text(errors="ignore") for path in sorted(seeds.glob("*.txt"))]
    if not texts:
        sys.exit(f"no leaflets found in {seeds}")
    hashes = sorted(hashed_shingles(texts))
    target = ROOT / "tests" / "fixtures" / "leaflet_shingles.txt"
    target.write_text("# sha256[:20] of every 8-word shingle of the source leaflets (scripts/make_shingle_fixture.py)\n"
                      + "\n".join(hashes) + "\n")
    print(f"{len(hashes)} shingle hashes -> {target}")


if __name__ == "__main__":
    main()
