"""Run locust headless against a bot and check the run: `run_load(...)` for bench and tests, or

    python -m loadtest.run --host http://127.0.0.1:5005 --token T --tracker-db-url postgresql://... \
        --users 50 --think-s 5 --pacing --seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from loadtest.check import client_summary, exactly_once, load_log

ROOT = Path(__file__).resolve().parents[1]
LOCUST = ROOT / ".venv" / "bin" / "locust"


def start_load(host: str, token: str, log_file: Path, users: int, seconds: float, think_s: float,
               pacing: bool, spawn_rate: float | None = None, seed: int = 0, run_id: str | None = None) -> subprocess.Popen:
    """Start locust in the background (bounded by `seconds`); wait() on it, then read `log_file`."""
    run_id = run_id or f"lt{uuid.uuid4().hex[:8]}"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    args = [str(LOCUST), "-f", str(ROOT / "loadtest" / "locustfile.py"), "--headless", "--host", host,
            "-u", str(users), "-r", str(spawn_rate or max(1, users)), "-t", f"{int(seconds)}s", "--stop-timeout", "30",
            "--only-summary", "--loglevel", "WARNING", "--token", token, "--think-s", str(think_s),
            "--log-file", str(log_file), "--run-id", run_id, "--seed", str(seed)]
    if pacing:
        args.append("--pacing")
    output = open(log_file.with_suffix(".locust.txt"), "w")
    return subprocess.Popen(args, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def settle(records_count: int, pause_s: float = 3.0) -> None:
    """Turns answered with the safe reply may still be running: give them a moment before reading the tracker."""
    time.sleep(pause_s if records_count else 0)


def run_load(host: str, token: str, tracker_db_url: str, log_file: Path, users: int, seconds: float,
             think_s: float, pacing: bool, settle_s: float = 3.0, **kwargs: Any) -> dict[str, Any]:
    """One bounded locust run, then the client summary and the exactly-once check of its conversations."""
    if log_file.exists():
        log_file.unlink()
    process = start_load(host, token, log_file, users, seconds, think_s, pacing, **kwargs)
    process.wait(timeout=seconds + 120)
    records = load_log(log_file) if log_file.exists() else []
    settle(len(records), settle_s)
    return {"users": users, "think_s": think_s, "pacing": pacing, **client_summary(records),
            "exactly_once": exactly_once(records, tracker_db_url)}


def main() -> int:
    parser = argparse.ArgumentParser(description="locust load test of the REST channel + exactly-once check")
    parser.add_argument("--host", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--tracker-db-url", required=True)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--think-s", type=float, default=5.0)
    parser.add_argument("--pacing", action="store_true")
    parser.add_argument("--log-file", default=str(ROOT / "var" / "loadtest" / "run.jsonl"))
    args = parser.parse_args()
    result = run_load(args.host, args.token, args.tracker_db_url, Path(args.log_file), args.users, args.seconds,
                      args.think_s, args.pacing)
    print(json.dumps(result, indent=2))
    return 0 if result["exactly_once"]["ok"] and not result.get("errors") else 1


if __name__ == "__main__":
    sys.exit(main())
