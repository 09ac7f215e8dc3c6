"""`make bench`: accuracy, training time, ready time, latency and memory, then the other benchmarks.

Prints numbers; asserts nothing. Run from the project root with the venv's python.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchstats import percentile  # noqa: E402

from bot.devtools.stack import VENV_BIN, BotStack, base_env, http_json  # noqa: E402
from bot.nlu_eval import evaluate, load_labelled_examples  # noqa: E402

HELD_OUT = ROOT / "tests" / "nlu" / "heldout.yml"

# Rasa's own default pipeline (what `rasa init` writes), for comparison on the same data.
DEFAULT_CONFIG = """
recipe: default.v1
language: en
assistant_id: default-pipeline
pipeline:
  - name: WhitespaceTokenizer
  - name: RegexFeaturizer
  - name: LexicalSyntacticFeaturizer
  - name: CountVectorsFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: DIETClassifier
    epochs: 100
    constrain_similarities: true
  - name: EntitySynonymMapper
  - name: ResponseSelector
    epochs: 100
    constrain_similarities: true
  - name: FallbackClassifier
    threshold: 0.3
    ambiguity_threshold: 0.1
policies:
  - name: RulePolicy
"""

QUESTIONS = [
    "can i drive home after my nerve block",
    "do i stop aspirin before the injection",
    "what happens during the procedure",
    "will it hurt",
    "when can i take the bandage off",
    "what are the risks",
    "how do i lie on the table for the neck injection",
    "what do they inject",
]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def time_training() -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.monotonic()
        subprocess.run(
            [str(VENV_BIN / "rasa"), "train", "--out", out, "--force", "--quiet", "--fixed-model-name", "bench"],
            cwd=ROOT, env=base_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        return time.monotonic() - start


def default_pipeline_accuracy() -> float:
    from rasa.core.agent import Agent

    with tempfile.TemporaryDirectory() as out:
        config = Path(out) / "config.yml"
        config.write_text(DEFAULT_CONFIG)
        subprocess.run(
            [str(VENV_BIN / "rasa"), "train", "nlu", "--config", str(config), "--nlu", "data/nlu", "--out", out,
             "--fixed-model-name", "default", "--quiet"],
            cwd=ROOT, env=base_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        agent = Agent.load(str(Path(out) / "default.tar.gz"))

        def predict(text: str) -> str:
            return asyncio.run(agent.parse_message(text))["intent"]["name"]

        return evaluate(load_labelled_examples(HELD_OUT), predict).accuracy


def main() -> None:
    print("== Core bot")
    stack = BotStack()
    start = time.monotonic()
    stack.start()
    ready = time.monotonic() - start
    try:
        print(f"server ready (action server + Rasa, model loaded): {ready:.1f} s")

        def parse(text: str) -> str:
            return http_json("POST", f"{stack.url}/model/parse?token={stack.token}", {"text": text})[1]["intent"]["name"]

        ours = evaluate(load_labelled_examples(HELD_OUT), parse)
        print(f"held-out intent accuracy, our pipeline: {ours.accuracy:.3f} ({ours.correct}/{ours.total})")

        latencies = []
        for _ in range(12):
            sender = f"bench-{uuid.uuid4().hex[:8]}"
            for question in QUESTIONS:
                began = time.perf_counter()
                stack.send(sender, question)
                latencies.append((time.perf_counter() - began) * 1000)
        latencies = latencies[len(QUESTIONS):]  # first round warms up
        print(f"REST reply latency, single user, n={len(latencies)}: p50 {statistics.median(latencies):.0f} ms, "
              f"p95 {percentile(latencies, 0.95):.0f} ms")
        print(f"RSS: Rasa server {rss_mb(stack.processes['rasa'].pid):.0f} MB, "
              f"action server {rss_mb(stack.processes['actions'].pid):.0f} MB")
    finally:
        stack.stop()

    print(f"held-out intent accuracy, Rasa default pipeline: {default_pipeline_accuracy():.3f}")
    print(f"full training time (rasa train --force): {time_training():.0f} s")

    for script in ("bench_triage.py", "bench_channels.py", "bench_review.py"):
        path = ROOT / "scripts" / script
        if path.exists():
            print(f"\n== {script}")
            sys.stdout.flush()
            subprocess.run([sys.executable, str(path)], cwd=ROOT, env=base_env(), check=False)


if __name__ == "__main__":
    main()
