"""Check the wording of knowledge/topics/*.yml before it goes to review (the checks: bot/knowledge_lint.py).

Usage: .venv/bin/python scripts/check_knowledge_text.py [--seeds DIR]
With --seeds, 8-word runs are compared with the leaflet texts in DIR (default ../shared/seeds when it
exists); otherwise with the hashed runs in tests/fixtures/leaflet_shingles.txt.
Exit code 1 when anything is reported, 2 when the leaflets cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.knowledge_lint import lint_knowledge  # noqa: E402
from bot.shingles import LEAFLET_HASHES_PATH, hashed_shingles, read_hashes  # noqa: E402

DEFAULT_SEEDS = ROOT.parent / "shared" / "seeds"


def leaflet_hashes(seeds: Path | None) -> set[str]:
    """Hashed runs of the leaflet texts in `seeds`, else of the repository's fixture."""
    if seeds is None:
        return read_hashes(LEAFLET_HASHES_PATH)
    texts = [path.read_text(errors="ignore") for path in sorted(seeds.glob("*.txt"))]
    if not texts:
        print(f"no leaflets found in {seeds}", file=sys.stderr)
        raise SystemExit(2)
    return hashed_shingles(texts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS if DEFAULT_SEEDS.is_dir() else None,
                        help="directory of leaflet texts (*.txt)")
    args = parser.parse_args()
    report = lint_knowledge(leaflet_hashes(args.seeds))
    for problem in report.problems:
        print("PROBLEM", problem)
    print(report.summary())
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
