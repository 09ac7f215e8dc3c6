"""Score patient-message sets through the real REST API and tracker, as the clinic's evaluation does.

    .venv/bin/python scripts/score_eval.py tests/eval/fresh_a ../shared/eval [--misses 20] [--json out.json]

Starts its own action server + Rasa server on free ports (the trained model in models/), or uses a
running one with --url and --token.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.devtools.patient_eval import rest_scorer  # noqa: E402
from bot.devtools.stack import BotStack  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sets", nargs="+", type=Path)
    parser.add_argument("--url")
    parser.add_argument("--token", default="")
    parser.add_argument("--misses", type=int, default=0, help="print up to N misses per measure")
    parser.add_argument("--json", type=Path, help="write the scores as JSON")
    args = parser.parse_args()

    stack = None
    if args.url:
        scorer = rest_scorer(args.url, args.token)
    else:
        stack = BotStack().start()
        scorer = rest_scorer(stack.url, stack.token)
    results = {}
    try:
        for folder in args.sets:
            score = scorer.score(folder)
            results[str(folder)] = score.as_dict()
            print(f"\n== {folder}\n{score.summary(args.misses)}")
    finally:
        if stack:
            stack.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
