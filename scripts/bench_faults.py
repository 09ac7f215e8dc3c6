"""Seek-care latency under faults, on the `make run` path (scripts/run.sh under supervisord), per channel.

Starts the supervised stack on free ports over a fresh PostgreSQL database (SQLite when none is found:
then the database fault is skipped), with the default BOT_REPLY_TIMEOUT_S (10 s), and for each fault
sends red flags over REST, the web chat (socket.io) and SMS (signed Twilio requests), timing each until
its seek-care message arrives. Target: under 1 s whatever the fault (the guard answers at SEEK_CARE_DEADLINE_S, 0.7 s).
Also: how long the supervisor takes to bring a killed action server and a killed Rasa server back.

Prints numbers; asserts nothing. `make bench` runs it; alone: .venv/bin/python scripts/bench_faults.py [--n 5]
"""

from __future__ import annotations

import argparse
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.devtools.red_flags import QUESTION, Escalation, over_rest, over_sms, over_web  # noqa: E402
from bot.devtools.supervised import SupervisedStack  # noqa: E402
from bot.devtools.twilio_requests import new_phone, post_sms, twilio_params  # noqa: E402
from bot.vocabulary import SEEK_CARE_DEADLINE_S  # noqa: E402

CHANNELS = ("rest", "web", "sms")


def postgres_database() -> tuple[str | None, Callable[[], None]]:
    """(URL of a fresh database, drop it) or (None, no-op) without PostgreSQL."""
    found = subprocess.run(["bash", str(ROOT / "scripts" / "ensure_postgres.sh")], capture_output=True, text=True,
                           cwd=ROOT, timeout=300)
    lines = found.stdout.strip().splitlines()
    if found.returncode != 0 or not lines:
        return None, lambda: None
    import psycopg2
    from sqlalchemy.engine.url import make_url

    url = make_url(lines[-1])
    name = f"clinic_bench_faults_{secrets.token_hex(4)}"
    admin = psycopg2.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                             dbname=url.database)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return str(url.set(database=name)), drop


def red_flag(stack: SupervisedStack, channel: str, before: str | None = None) -> Escalation:
    """One red flag in a new conversation; `before`: a first message of that conversation, left pending."""
    conversation = new_phone() if channel == "sms" else f"bench-{uuid.uuid4().hex[:12]}"
    if before and channel != "web":
        send = (lambda: stack.send(conversation, before, timeout=60)) if channel == "rest" else (
            lambda: post_sms(stack.sms_url, twilio_params(conversation, before), timeout=60))
        threading.Thread(target=send, daemon=True).start()
        time.sleep(0.3)  # it now holds the conversation's lock
    if channel == "rest":
        return over_rest(stack, conversation)
    if channel == "sms":
        return over_sms(stack, conversation)
    return over_web(stack, before=before)[1]


@contextmanager
def action_server_stopped(stack: SupervisedStack):
    stack.signal("actions", signal.SIGSTOP)
    try:
        yield
    finally:
        stack.signal("actions", signal.SIGCONT)


@contextmanager
def events_locked(db_url: str):
    import psycopg2
    from sqlalchemy.engine.url import make_url

    url = make_url(db_url)
    connection = psycopg2.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                                  dbname=url.database)
    try:
        connection.cursor().execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        connection.rollback()
        connection.close()


def measure(stack: SupervisedStack, n: int, before: str | None = None) -> dict[str, list[Escalation]]:
    return {channel: [red_flag(stack, channel, before) for _ in range(n)] for channel in CHANNELS}


def row(label: str, results: dict[str, list[Escalation]]) -> str:
    cells = []
    for channel in CHANNELS:
        runs = results.get(channel, [])
        times = [r.seconds for r in runs if r.seconds is not None]
        missed = len(runs) - len(times)
        if not runs:
            cells.append(f"{'-':>22}")
        elif not times:
            cells.append(f"{'never (' + str(missed) + ' missed)':>22}")
        else:
            text = f"{statistics.median(times):.2f} / {max(times):.2f} s"
            cells.append(f"{text + (f' ({missed} MISSED)' if missed else ''):>22}")
    return f"   {label:<40}" + "".join(cells)


def moment_when(check: Callable[[], bool], timeout_s: float) -> float | None:
    """perf_counter() when `check` first passes (polled every 0.1 s), None when it never does."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        try:
            if check():
                return time.perf_counter()
        except Exception:  # noqa: BLE001 - a part on its way back may refuse or fail a request
            pass
        time.sleep(0.1)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5, help="red flags per channel and fault")
    args = parser.parse_args()
    db_url, drop = postgres_database()
    env = {"TRACKER_DB_URL": db_url} if db_url else {}
    print(f"Seek-care latency (median / max over {args.n} per channel; target < 1 s, guard deadline "
          f"{SEEK_CARE_DEADLINE_S} s, safe reply at 10 s), make run path, tracker: "
          f"{'PostgreSQL' if db_url else 'SQLite (no PostgreSQL: database fault skipped)'}.")
    print("Noisy when other work shares the machine; re-run on a quiet one.")
    started = time.perf_counter()
    stack = SupervisedStack(env=env)
    try:
        stack.start()
        print(f"   make run ready (all four parts): {time.perf_counter() - started:.1f} s")
        print(f"   {'fault':<40}" + "".join(f"{c:>22}" for c in CHANNELS))
        red_flag(stack, "rest")  # warm-up
        print(row("none", measure(stack, args.n)), flush=True)

        with action_server_stopped(stack):
            print(row("action server stuck (SIGSTOP)", measure(stack, args.n)), flush=True)
        with action_server_stopped(stack):
            print(row("previous turn of the conversation stuck", measure(stack, max(1, args.n // 2), QUESTION)),
                  flush=True)
        time.sleep(2)
        if db_url:
            with events_locked(db_url):
                print(row("tracker database locked (events table)", measure(stack, args.n)), flush=True)
            time.sleep(2)

        old = stack.signal("actions", signal.SIGKILL)
        killed = time.perf_counter()
        down = {channel: [red_flag(stack, channel)] for channel in CHANNELS}
        back = moment_when(lambda: stack.pid("actions") != old and stack.part_ok("actions"), 120)
        print(row("action server killed (restarting)", down))
        print(f"   action server answering again {back - killed:.1f} s after SIGKILL (supervisord restart)"
              if back else "   action server did not come back within 120 s")
        old = stack.signal("rasa", signal.SIGKILL)
        killed = time.perf_counter()
        back = moment_when(lambda: stack.pid("rasa") != old and stack.rasa_ready(), 300)
        print(f"   Rasa server answering again {back - killed:.1f} s after SIGKILL (restart + model load)"
              if back else "   Rasa server did not come back within 300 s")
        print(f"   restarts logged in supervisord.log: actions {stack.restarts('actions')}, rasa {stack.restarts('rasa')}")
    finally:
        stack.stop()
        drop()


if __name__ == "__main__":
    main()
