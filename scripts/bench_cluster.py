"""Cluster numbers for `make bench`: several Rasa servers behind nginx over PostgreSQL and Redis, under load and faults.

Bounded (about 6 minutes): one cluster of 3 Rasa servers (bot/devtools/cluster.py, private PostgreSQL and Redis),
locust runs of patients from tests/eval/ (loadtest/), each followed by the exactly-once check against the
tracker table (loadtest/check.py):
- closed loop to saturation: 1 server (its own port) vs 3 servers behind nginx: throughput, p50/p95/p99, errors;
- open loop: 50 patients, one message every 5 s each (patient-like think time): p95 and errors;
- faults during load (open loop, 15 patients, one message a second each): kill a Rasa server (SIGKILL), restart
  PostgreSQL, stop Redis for 5 s, stop the action server for 5 s: errors, safe replies, lost / duplicated
  messages, red flags without seek-care, and recovery time (from the end of the fault to the last degraded reply);
- the lock race of Rasa issue #9213: two processes taking one conversation's lock, Rasa's RedisLockStore vs ours.
Prints numbers; asserts nothing. Numbers depend on what else runs on the machine's 2 cores.

    .venv/bin/python scripts/bench_cluster.py [--servers 3] [--seconds 25]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.devtools.cluster import Cluster  # noqa: E402
from loadtest.check import answered, client_summary, exactly_once, is_safe_reply, load_log  # noqa: E402
from loadtest.run import run_load, start_load  # noqa: E402
from tests.cluster.lock_race import race  # noqa: E402

OUT = ROOT / "var" / "loadtest"


def row(label: str, result: dict[str, Any]) -> None:
    check = result["exactly_once"]
    problems = ", ".join(f"{k} {v}" for k, v in check["problems"].items()) or "none"
    print(f"   {label:<34} {result['messages']:>5} msgs {result['throughput_msg_s']:>6} msg/s   "
          f"p50 {result['p50_ms']:>5} p95 {result['p95_ms']:>5} p99 {result['p99_ms']:>5} ms   "
          f"errors {result['errors']}  safe {result['safe_replies']}  red flags {result['red_flags']}   "
          f"exactly-once: {'ok' if check['ok'] else 'FAILED'} ({problems})", flush=True)


def fault_run(cluster: Cluster, name: str, inject: Callable[[], None], heal: Callable[[], None] | None,
              seconds: float, users: int = 15, fault_at_s: float = 8.0, fault_for_s: float = 5.0) -> dict[str, Any]:
    """Open-loop load; the fault starts at `fault_at_s` and is healed `fault_for_s` later (if it needs healing)."""
    log = OUT / f"fault-{name}.jsonl"
    if log.exists():
        log.unlink()
    process = start_load(cluster.url, cluster.token, log, users=users, seconds=seconds, think_s=1.0, pacing=True)
    time.sleep(fault_at_s)
    fault_started = time.time()
    inject()
    if heal is not None:
        time.sleep(fault_for_s)
        heal()
    healed = time.time()
    process.wait(timeout=seconds + 120)
    records = load_log(log) if log.exists() else []
    time.sleep(3)  # turns answered with the safe reply may still be finishing
    degraded = [r for r in records if not answered(r) or is_safe_reply(r["reply"])]
    last_degraded_end = max((r["sent_at"] + r["latency_s"] for r in degraded), default=None)
    recovery = max(0.0, last_degraded_end - healed) if last_degraded_end else 0.0
    return {**client_summary(records), "exactly_once": exactly_once(records, cluster.tracker_db_url),
            "fault_s": round(healed - fault_started, 1), "degraded": len(degraded), "recovery_s": round(recovery, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=25, help="length of each closed-loop and fault run")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}

    started = time.monotonic()
    with Cluster(servers=args.servers) as cluster:
        print(f"== cluster of {args.servers} Rasa servers + nginx + PostgreSQL + Redis ready in "
              f"{time.monotonic() - started:.0f} s", flush=True)
        print("\n== Rasa #9213 lock race (2 processes, one conversation, up to 100 entries each in 20 s, real Redis)")
        for kind, label in (("rasa", "Rasa's RedisLockStore"), ("atomic", "ours (bot/redis_lock.py)")):
            outcome = race(kind, cluster.redis_url, rounds=100)
            results[f"race_{kind}"] = outcome
            print(f"   {label:<28} two holders at once {outcome['overlaps']:>3} times, failed entries "
                  f"{outcome['errors']}, stalled > 2 s {outcome['stalls']} (of {outcome['entries']} entries)", flush=True)

        print("\n== Load (REST, locust, patients from tests/eval: conversations with follow-ups, questions, red flags)")
        users = 8 * args.servers
        one = run_load(cluster.server_url(0), cluster.token, cluster.tracker_db_url, OUT / "closed-1.jsonl",
                       users=users, seconds=args.seconds, think_s=0, pacing=False)
        row(f"closed loop, 1 server, {users} users", one)
        many = run_load(cluster.url, cluster.token, cluster.tracker_db_url, OUT / f"closed-{args.servers}.jsonl",
                        users=users, seconds=args.seconds, think_s=0, pacing=False)
        row(f"closed loop, {args.servers} servers + nginx", many)
        print(f"   throughput {args.servers} servers / 1 server: "
              f"{many['throughput_msg_s'] / max(one['throughput_msg_s'], 1e-9):.2f}x", flush=True)
        open_loop = run_load(cluster.url, cluster.token, cluster.tracker_db_url, OUT / "open-50.jsonl",
                             users=50, seconds=max(40.0, args.seconds), think_s=5.0, pacing=True, spawn_rate=10)
        row("open loop, 50 patients, 5 s think", open_loop)
        results.update(closed_1=one, closed_n=many, open_50=open_loop)

        print("\n== Faults during load (open loop, 15 patients, 1 message/s each)")
        restarted: dict[str, float] = {}

        def kill() -> None:
            cluster.kill_rasa(0)

            def restart() -> None:
                begun = time.monotonic()
                cluster.start_rasa(0)
                restarted["rasa0"] = time.monotonic() - begun
            threading.Thread(target=restart, daemon=True).start()

        def pg_restart() -> None:
            begun = time.monotonic()
            cluster.postgres.restart()
            restarted["postgres"] = time.monotonic() - begun

        faults = [
            ("kill-rasa", "kill -9 one Rasa server", kill, None),
            ("postgres", "restart PostgreSQL", pg_restart, None),
            ("redis", "stop Redis for 5 s", cluster.redis.stop, cluster.redis.start),
            ("actions", "stop the action server for 5 s", cluster.stop_actions, cluster.start_actions),
        ]
        for name, label, inject, heal in faults:
            outcome = fault_run(cluster, name, inject, heal, seconds=args.seconds)
            results[f"fault_{name}"] = outcome
            row(label, outcome)
            print(f"      fault lasted {outcome['fault_s']} s; replies that were errors or the safe reply: "
                  f"{outcome['degraded']}; recovery {outcome['recovery_s']} s after the fault ended", flush=True)
            if name == "kill-rasa":
                deadline = time.monotonic() + 120
                while "rasa0" not in restarted and time.monotonic() < deadline:
                    time.sleep(1)
                print(f"      the killed server was back in rotation {restarted.get('rasa0', float('nan')):.0f} s "
                      "after the kill (restarted by this bench; `make run-cluster` restarts it itself)", flush=True)
            if name == "postgres":
                print(f"      PostgreSQL was down and back in {restarted['postgres']:.1f} s", flush=True)
    (OUT / "bench_cluster.json").write_text(json.dumps(results, indent=2))
    print(f"\n   (every message of every run: {OUT}/*.jsonl; summary: {OUT / 'bench_cluster.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
