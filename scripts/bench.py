"""`make bench`: accuracy, training time, ready time, latency and memory, then the other benchmarks.

Prints numbers; asserts nothing. Run from the project root with the venv's python.
"""

from __future__ import annotations

import asyncio
import json
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

from bot.devtools.patient_eval import rest_scorer  # noqa: E402
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


PATIENT_SETS = [
    ("fresh set A (tuned on after its first look)", ROOT / "tests" / "eval" / "fresh_a"),
    ("fresh set B (unseen until its first look)", ROOT / "tests" / "eval" / "fresh_b"),
    ("fresh set C (unseen until its first look)", ROOT / "tests" / "eval" / "fresh_c"),
    ("shared sample (../shared/eval)", ROOT.parent / "shared" / "eval"),
    ("released batch 1 (../shared/eval)", ROOT.parent / "shared" / "eval" / "released-batch-1"),
]
MEASURES = ("answered", "declined", "urgent_escalated", "negatives_calm", "conversations")


def without_embeddings_config() -> str:
    """Our pipeline with the sentence-embedding block switched off: the comparison for what it adds."""
    config = (ROOT / "config.yml").read_text()
    marker = "  - name: bot.components.linear_intent_classifier.LinearIntentClassifier\n"
    return config.replace(marker, marker + "    embedding_weight: 0\n")


def train(config_text: str | None, out: str) -> tuple[Path, float]:
    args = [str(VENV_BIN / "rasa"), "train", "--out", out, "--force", "--quiet", "--fixed-model-name", "bench"]
    if config_text is not None:
        config = Path(out) / "config.yml"
        config.write_text(config_text)
        args += ["--config", str(config)]
    start = time.monotonic()
    subprocess.run(args, cwd=ROOT, env=base_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Path(out) / "bench.tar.gz", time.monotonic() - start


def rate(tally: dict) -> str:
    return f"{tally['right']}/{tally['total']} = {tally['right'] / tally['total']:.1%}" if tally["total"] else "-"


def measure(model: Path) -> dict:
    """Everything measured on one running stack of `model`."""
    results: dict = {}
    stack = BotStack(model=model)
    start = time.monotonic()
    stack.start()
    results["ready_s"] = time.monotonic() - start
    try:
        def parse(text: str) -> str:
            return http_json("POST", f"{stack.url}/model/parse?token={stack.token}", {"text": text})[1]["intent"]["name"]

        results["held_out"] = evaluate(load_labelled_examples(HELD_OUT), parse)
        scorer = rest_scorer(stack.url, stack.token)
        results["sets"] = {name: scorer.score(folder) for name, folder in PATIENT_SETS if folder.is_dir()}
        latencies = []
        for _ in range(12):
            sender = f"bench-{uuid.uuid4().hex[:8]}"
            for question in QUESTIONS:
                began = time.perf_counter()
                stack.send(sender, question)
                latencies.append((time.perf_counter() - began) * 1000)
        latencies = latencies[len(QUESTIONS):]  # first round warms up
        results["latency"] = (len(latencies), statistics.median(latencies), percentile(latencies, 0.95))
        results["rss"] = (rss_mb(stack.processes["rasa"].pid), rss_mb(stack.processes["actions"].pid))
    finally:
        stack.stop()
    return results


def first_look(folder: Path) -> dict | None:
    path = folder / "first_look.json"
    return json.loads(path.read_text()) if path.exists() else None


def print_patient_sets(ours: dict, plain: dict) -> None:
    print("\n== Real patient wording (REST + tracker, as the clinic scores): first look / now / now without embeddings")
    for name, folder in PATIENT_SETS:
        if name not in ours["sets"]:
            continue
        look = first_look(folder)
        print(f"-- {name}" + (f"  [first look: {look['scored']}]" if look else ""))
        now, without = ours["sets"][name].as_dict(), plain["sets"][name].as_dict()
        for measure_name in MEASURES:
            if not now[measure_name]["total"]:
                continue
            before = rate(look[measure_name]) if look else "-"
            print(f"   {measure_name:<18} {before:>20} | {rate(now[measure_name]):>20} | {rate(without[measure_name]):>20}")
        told = now["in_scope_told_emergency"]
        print(f"   {'in-scope told 911':<18} {look['in_scope_told_emergency'] if look else '-':>20} | {told:>20} | "
              f"{without['in_scope_told_emergency']:>20}")


def print_per_intent(report) -> None:
    print("\n== Held-out set (tests/nlu/heldout.yml): per-intent precision / recall (support), ours")
    for intent, (precision, recall, support) in report.per_intent().items():
        print(f"   {intent:<24} P {precision:.2f}  R {recall:.2f}  ({support})")
    print("   most frequent confusions (gold -> predicted): " + ", ".join(
        f"{gold}->{predicted} {count}" for (gold, predicted), count in report.confusions.most_common(10)))


def main() -> None:
    with tempfile.TemporaryDirectory() as ours_dir, tempfile.TemporaryDirectory() as plain_dir:
        ours_model, ours_train = train(None, ours_dir)
        plain_model, plain_train = train(without_embeddings_config(), plain_dir)
        ours, plain = measure(ours_model), measure(plain_model)

    print("== Core bot: ours | ours without the sentence-embedding block")
    rows = [
        ("full training (rasa train --force)", f"{ours_train:.0f} s", f"{plain_train:.0f} s"),
        ("server ready (action server + Rasa)", f"{ours['ready_s']:.1f} s", f"{plain['ready_s']:.1f} s"),
        ("held-out intent accuracy", f"{ours['held_out'].accuracy:.3f}", f"{plain['held_out'].accuracy:.3f}"),
        ("REST latency single user p50 / p95",
         f"{ours['latency'][1]:.0f} / {ours['latency'][2]:.0f} ms (n={ours['latency'][0]})",
         f"{plain['latency'][1]:.0f} / {plain['latency'][2]:.0f} ms"),
        ("RSS Rasa / action server", f"{ours['rss'][0]:.0f} / {ours['rss'][1]:.0f} MB",
         f"{plain['rss'][0]:.0f} / {plain['rss'][1]:.0f} MB"),
    ]
    for label, left, right in rows:
        print(f"   {label:<38} {left:>26} | {right}")
    print_patient_sets(ours, plain)
    print_per_intent(ours["held_out"])
    print(f"\nheld-out intent accuracy, Rasa default pipeline: {default_pipeline_accuracy():.3f}")
    print_encoder_costs()
    for script in ("bench_triage.py", "bench_channels.py", "bench_review.py", "bench_reply_path.py",
                   "bench_faults.py", "bench_cluster.py", "bench_takeover.py", "bench_followup.py", "bench_alerts.py",
                   "bench_outreach.py"):
        path = ROOT / "scripts" / script
        if path.exists():
            print(f"\n== {script}")
            sys.stdout.flush()
            subprocess.run([sys.executable, str(path)], cwd=ROOT, env=base_env(), check=False)


def print_encoder_costs() -> None:
    """What the sentence encoder costs: install size, load time, time per message (numpy, one thread pool)."""
    from bot.sentence_encoder import ENCODER_DIR, SentenceEncoder

    package = ENCODER_DIR.parents[1]
    size = sum(f.stat().st_size for f in package.rglob("*") if f.is_file()) / 1e6
    start = time.perf_counter()
    encoder = SentenceEncoder()
    load_s = time.perf_counter() - start
    times = []
    for question in QUESTIONS * 10:
        began = time.perf_counter()
        encoder.encode([question])
        times.append((time.perf_counter() - began) * 1000)
    print(f"sentence encoder: install {size:.0f} MB (.encoder/), load {load_s:.2f} s, per message "
          f"p50 {statistics.median(times):.1f} ms / p95 {percentile(times, 0.95):.1f} ms")


if __name__ == "__main__":
    main()
