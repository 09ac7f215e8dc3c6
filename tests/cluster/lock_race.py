"""Two processes (two "servers") taking the same conversation's lock at once, on a real Redis.

Each worker enters the lock `rounds` times (each entry bounded to a few seconds); inside, it increments a
Redis counter of holders. A correct lock never lets two holders in, never fails an entry and never stalls.
Used by tests/cluster/test_redis_lock.py and by scripts/bench_cluster.py (which also runs Rasa's own
RedisLockStore through it, to show the race of Rasa issue #9213).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid

ENTRY_TIMEOUT_S = 2.0


def _worker(kind: str, redis_url: str, prefix: str, conversation: str, rounds: int, start_at: float,
            budget_s: float, results: multiprocessing.Queue) -> None:
    import redis
    from rasa.core.lock_store import RedisLockStore

    from bot.redis_lock import AtomicRedisLockStore

    url = redis.connection.parse_url(redis_url)
    host, port, db = url.get("host", "127.0.0.1"), url.get("port", 6379), url.get("db", 0)
    if kind == "atomic":
        store = AtomicRedisLockStore(host=host, port=port, db=db, key_prefix=prefix)
    else:
        store = RedisLockStore(host=host, port=port, db=db, key_prefix=prefix)
    client = redis.Redis(host=host, port=port, db=db)
    inside_key = f"{prefix}:inside:{conversation}"
    overlaps = errors = stalls = done = 0

    async def enter_once() -> None:
        nonlocal overlaps
        async with store.lock(conversation, wait_time_in_seconds=0.005):
            if client.incr(inside_key) > 1:
                overlaps += 1
            await asyncio.sleep(0.002)
            client.decr(inside_key)

    async def run() -> None:
        nonlocal errors, stalls, done
        while time.time() < start_at:
            await asyncio.sleep(0.001)
        for _ in range(rounds):
            if time.time() > start_at + budget_s:  # bounded: a stalled lock must not hold the run
                break
            done += 1
            try:
                await asyncio.wait_for(enter_once(), timeout=ENTRY_TIMEOUT_S)
            except asyncio.TimeoutError:  # a lost ticket: the conversation waits for the 60 s lifetime
                stalls += 1
                client.set(inside_key, 0)
            except Exception:  # LockError from the racing stock store
                errors += 1

    asyncio.run(run())
    results.put((overlaps, errors, stalls, done))


def race(kind: str, redis_url: str, rounds: int = 100, workers: int = 2, budget_s: float = 20.0) -> dict[str, int]:
    """Run `workers` processes against one conversation for at most `budget_s`: entries tried, overlapping
    holders, failed entries (LockError), stalled entries (no turn within ENTRY_TIMEOUT_S)."""
    prefix = f"race{uuid.uuid4().hex[:8]}"
    conversation = "same-conversation"
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = context.Queue()
    start_at = time.time() + 3.0  # every worker has imported Rasa by then
    processes = [context.Process(target=_worker, args=(kind, redis_url, prefix, conversation, rounds, start_at, budget_s, results))
                 for _ in range(workers)]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=60 + budget_s + ENTRY_TIMEOUT_S) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
    return {"entries": sum(o[3] for o in outcomes), "overlaps": sum(o[0] for o in outcomes),
            "errors": sum(o[1] for o in outcomes), "stalls": sum(o[2] for o in outcomes)}


if __name__ == "__main__":
    import sys

    print(race(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "redis://127.0.0.1:6379/0"))
