"""Per-message cost of one Rasa process: saturation, patient-like load, and long conversations.

Three measurements over REST (`/webhooks/rest/webhook?token=`), all against 127.0.0.1, all bounded:

- closed loop: N conversations at once, each sends its next message as soon as the reply arrives
  (5 turns a conversation, then a new conversation), for a fixed time per N: throughput and
  p50/p95/p99; the highest throughput over the N tried is the saturation throughput;
- open loop with think time: 50 conversations x 6 turns, each patient waits ~5 s (2.5-7.5 s,
  seeded) between turns, starts spread over the first think time: p50/p95/p99 and errors;
- one long conversation (300 turns): median latency of turns 1-10 vs 291-300.
With the Rasa server's pid, also its CPU time per message (per turn for the long conversation): on this
shared machine wall-clock figures are mostly time spent waiting for a core; CPU time is not.

Every reply is checked: HTTP 200 and at least one message with text, and for the red flags in the mix
(every 4th conversation) the seek-care message with the emergency number; anything else is an error.

Usage (from the project root, with the venv's python):
  python scripts/bench_reply_path.py            # stock Rasa vs the clinic's reply path, two stacks (make bench)
  python scripts/bench_reply_path.py --url URL --token T [--pid PID]   # one running server (e.g. a cluster)
  python scripts/bench_reply_path.py --only closed --levels 1,8,16 --seconds 10 --json out.json
The functions `closed_loop`, `open_loop` and `long_conversation` are importable (scripts/ on sys.path).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchstats import percentile  # noqa: E402

from bot.devtools.stack import BotStack  # noqa: E402
from bot.settings import clinic_settings  # noqa: E402

EMERGENCY_NUMBER = clinic_settings().emergency_number

# One conversation: questions, follow-ups, a thank-you; every 4th conversation also reports a red flag.
CONVERSATION = [
    "hi, I'm having the lumbar injection next week",
    "can i drive home after my nerve block",
    "what about the neck one?",
    "do i stop aspirin before the injection",
    "tell me more about that",
    "when can i take the bandage off",
    "what are the risks",
    "thanks",
]
RED_FLAG = "since the shot I can't feel my legs and I can't control my bladder"
# Long conversations cycle through these (questions and follow-ups, each answered by an action).
LONG_CYCLE = [
    "what happens during the procedure",
    "what about the neck one?",
    "will it hurt",
    "same for the other one?",
    "how do i lie on the table",
    "tell me more about that",
    "what do they inject",
    "can i shower after",
]

# Stock Rasa's figures, measured with this script before any change to the reply path (2026-12-07, on
# this 2-core machine shared with four other engineers' test runs: noisy; README "Per-message cost").
BASELINE = {
    "closed": {1: (14.7, 59, 134, 200), 8: (10.4, 658, 1307, 1320), 16: (9.4, 1826, 2404, 2638)},
    "open": (50, 6, 153, 2759, 3055, 0),
    "long": (68.6, 738.7),
}


@dataclass
class Tally:
    """Latencies (ms) of successful turns and a count of failed ones."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        lat = self.latencies
        return {
            "n": len(lat),
            "errors": self.errors,
            "p50": statistics.median(lat) if lat else float("nan"),
            "p95": percentile(lat, 0.95) if lat else float("nan"),
            "p99": percentile(lat, 0.99) if lat else float("nan"),
            "error_samples": self.error_samples[:3],
        }


def cpu_seconds(pid: int | None) -> float:
    """CPU time of a process's live threads (ns resolution, /proc/<pid>/task/*/schedstat); 0 without a pid."""
    if pid is None:
        return 0.0
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    return total / 1e9


def turn_messages(conversation_no: int, turns: int) -> list[str]:
    """The messages of one conversation: the scripted questions, a red flag in every 4th."""
    messages = [CONVERSATION[(conversation_no + i) % len(CONVERSATION)] for i in range(turns)]
    if conversation_no % 4 == 3:
        messages[min(2, turns - 1)] = RED_FLAG
    return messages


async def send(session: aiohttp.ClientSession, url: str, token: str, sender: str, text: str,
               tally: Tally, timeout_s: float = 30.0) -> float | None:
    """One turn; records its latency, or an error when the reply is not 200 with text."""
    began = time.perf_counter()
    try:
        async with session.post(f"{url}/webhooks/rest/webhook", params={"token": token},
                                json={"sender": sender, "message": text},
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as reply:
            body = await reply.json(content_type=None)
            ok = reply.status == 200 and isinstance(body, list) and any(m.get("text") for m in body)
            if ok and text == RED_FLAG:
                ok = any(EMERGENCY_NUMBER in (m.get("text") or "") for m in body)
            problem = f"{reply.status} {str(body)[:120]}"
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
        ok, problem = False, repr(error)
    elapsed = (time.perf_counter() - began) * 1000
    if ok:
        tally.latencies.append(elapsed)
        return elapsed
    tally.errors += 1
    tally.error_samples.append(problem)
    return None


async def closed_loop(url: str, token: str, concurrency: int, seconds: float, warmup_s: float = 2.0,
                      turns: int = 5, pid: int | None = None) -> dict:
    """`concurrency` patients send back to back for `seconds` (after a warm-up): throughput and latency.

    With the Rasa server's `pid`, also its CPU time per message: unlike wall-clock figures, this hardly
    depends on what else the (shared) machine is doing; 1000 / cpu_ms is what one core could serve.
    """
    cpu: dict[str, float] = {}
    tally, warm = Tally(), Tally()
    counter = iter(range(10**9))
    start = time.monotonic()
    measure_from, stop_at = start + warmup_s, start + warmup_s + seconds

    async def mark_cpu() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.monotonic()))
        cpu["start"], cpu["n0"] = cpu_seconds(pid), len(tally.latencies) + tally.errors

    async def patient(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < stop_at:
            number = next(counter)
            sender = f"load-{uuid.uuid4().hex[:10]}"
            for text in turn_messages(number, turns):
                if time.monotonic() >= stop_at:
                    return
                await send(session, url, token, sender, text, tally if time.monotonic() >= measure_from else warm)

    connector = aiohttp.TCPConnector(limit=concurrency + 4)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(mark_cpu(), *(patient(session) for _ in range(concurrency)))
    result = tally.summary()
    done = result["n"] + tally.errors
    cpu_ms = (cpu_seconds(pid) - cpu["start"]) * 1000 / max(1, done - cpu["n0"]) if pid else float("nan")
    result.update(concurrency=concurrency, seconds=seconds, throughput=done / seconds, cpu_ms=cpu_ms)
    return result


async def open_loop(url: str, token: str, conversations: int = 50, turns: int = 6, think_s: float = 5.0,
                    seed: int = 10) -> dict:
    """Patient-like load: each conversation waits ~think_s (uniform 0.5x-1.5x) between its turns."""
    tally = Tally()
    rng = random.Random(seed)
    plans = [(rng.uniform(0, think_s), [rng.uniform(0.5, 1.5) * think_s for _ in range(turns)])
             for _ in range(conversations)]

    async def patient(session: aiohttp.ClientSession, number: int) -> None:
        offset, thinks = plans[number]
        await asyncio.sleep(offset)
        sender = f"patient-{uuid.uuid4().hex[:10]}"
        for text, think in zip(turn_messages(number, turns), thinks, strict=True):
            await send(session, url, token, sender, text, tally)
            await asyncio.sleep(think)

    began = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conversations + 4)) as session:
        await asyncio.gather(*(patient(session, i) for i in range(conversations)))
    result = tally.summary()
    result.update(conversations=conversations, turns=turns, think_s=think_s, wall_s=time.monotonic() - began)
    return result


async def long_conversation(url: str, token: str, turns: int = 300, window: int = 10, pid: int | None = None) -> dict:
    """One conversation of `turns` turns: median latency (and Rasa CPU) of the first and last `window` turns."""
    tally = Tally()
    per_turn: list[float | None] = []
    cpu: list[float] = []
    sender = f"long-{uuid.uuid4().hex[:10]}"
    async with aiohttp.ClientSession() as session:
        for i in range(turns):
            before = cpu_seconds(pid)
            per_turn.append(await send(session, url, token, sender, LONG_CYCLE[i % len(LONG_CYCLE)], tally))
            cpu.append((cpu_seconds(pid) - before) * 1000)
    first = [t for t in per_turn[:window] if t is not None]
    last = [t for t in per_turn[-window:] if t is not None]
    first_ms = statistics.median(first) if first else float("nan")
    last_ms = statistics.median(last) if last else float("nan")
    first_cpu = statistics.median(cpu[:window]) if pid else float("nan")
    last_cpu = statistics.median(cpu[-window:]) if pid else float("nan")
    return {"turns": turns, "first_ms": first_ms, "last_ms": last_ms, "ratio": last_ms / first_ms,
            "first_cpu_ms": first_cpu, "last_cpu_ms": last_cpu, "cpu_ratio": last_cpu / first_cpu if pid else None,
            "errors": tally.errors, "error_samples": tally.error_samples[:3], "sender": sender}


def run_all(url: str, token: str, levels: list[int], seconds: float, only: set[str], long_turns: int,
            pid: int | None = None) -> dict:
    """Every selected measurement against one server, one after the other."""
    results: dict = {}
    if "closed" in only:
        results["closed"] = [asyncio.run(closed_loop(url, token, n, seconds, pid=pid)) for n in levels]
    if "open" in only:
        results["open"] = asyncio.run(open_loop(url, token))
    if "long" in only:
        results["long"] = asyncio.run(long_conversation(url, token, long_turns, pid=pid))
    return results


class StockRasaStack(BotStack):
    """A BotStack whose Rasa server runs Rasa's stock reply path (endpoints.yml `fast_reply_path: false`)."""

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        if name == "rasa":
            endpoints = self.workdir / "endpoints.yml"
            text = endpoints.read_text()
            if "fast_reply_path: true" not in text:
                raise RuntimeError("endpoints.yml no longer says `fast_reply_path: true`; update this bench")
            endpoints.write_text(text.replace("fast_reply_path: true", "fast_reply_path: false"))
        return super()._spawn(name, args)


def compare(levels: list[int], seconds: float, only: set[str], long_turns: int) -> dict:
    """Stock Rasa and the clinic's reply path side by side, each part measured on one, then the other.

    Both servers stay up (the idle one costs no CPU), so a noisy machine affects both columns alike.
    """
    results: dict = {"stock": {}, "fast": {}}
    with tempfile.TemporaryDirectory() as tmp:
        stock = StockRasaStack(env={"TRACKER_DB_URL": f"sqlite:///{tmp}/stock.db"})
        fast = BotStack(env={"TRACKER_DB_URL": f"sqlite:///{tmp}/fast.db"})
        try:
            stock.start()
            fast.start()
            stacks = (("stock", stock), ("fast", fast))
            if "closed" in only:  # level by level, one stack then the other: both see the same machine
                for level in levels:
                    for name, stack in stacks:
                        print(f"   measuring closed loop x{level} on {name} ...", file=sys.stderr, flush=True)
                        results[name].setdefault("closed", []).extend(
                            run_all(stack.url, stack.token, [level], seconds, {"closed"}, long_turns,
                                    stack.processes["rasa"].pid)["closed"])
            for part in ("open", "long"):
                if part not in only:
                    continue
                for name, stack in stacks:
                    print(f"   measuring {part} on {name} ...", file=sys.stderr, flush=True)
                    results[name].update(run_all(stack.url, stack.token, levels, seconds, {part}, long_turns,
                                                 stack.processes["rasa"].pid))
        finally:
            stock.stop()
            fast.stop()
    return results


def _closed_row(r: dict) -> str:
    return (f"{r['throughput']:5.1f}/s p50 {r['p50']:4.0f} p95 {r['p95']:4.0f} p99 {r['p99']:4.0f} ms, "
            f"CPU {r['cpu_ms']:4.1f} ms/msg, {r['errors']} err")


def report(results: dict, before: dict | None = None) -> None:
    """Print the figures: recorded baseline (README), and live stock vs clinic path when compared."""
    columns = [("recorded before (stock)", None)] + ([("stock now", before)] if before else []) + [("now", results)]
    print("   columns: " + " | ".join(name for name, _ in columns))
    if "closed" in results:
        print("closed loop, 5-turn conversations back to back (throughput, latency, Rasa CPU per message):")
        for i, r in enumerate(results["closed"]):
            base = BASELINE["closed"].get(r["concurrency"])
            cells = [f"{base[0]:5.1f}/s p50 {base[1]:4d} p95 {base[2]:4d} p99 {base[3]:4d} ms" if base else "-"]
            cells += [_closed_row(data["closed"][i]) for _, data in columns[1:]]
            print(f"   {r['concurrency']:3d} conversations: " + " | ".join(cells))
        best = max(r["throughput"] for r in results["closed"])
        line = f"   saturation throughput: recorded before {max(v[0] for v in BASELINE['closed'].values()):.1f}/s"
        if before:
            stock_best = max(r["throughput"] for r in before["closed"])
            line += f", stock now {stock_best:.1f}/s"
        line += f", now {best:.1f}/s"
        if before:
            line += f" = {best / stock_best:.2f}x stock now (target >= 2x)"
            cpu_stock = statistics.median(r["cpu_ms"] for r in before["closed"])
            cpu_now = statistics.median(r["cpu_ms"] for r in results["closed"])
            line += f"; Rasa CPU per message {cpu_stock:.1f} -> {cpu_now:.1f} ms ({cpu_stock / cpu_now:.2f}x)"
        print(line)
    if "open" in results:
        b = BASELINE["open"]
        cells = [f"p50 {b[2]} p95 {b[3]} p99 {b[4]} ms, {b[5]} errors"]
        cells += [f"p50 {d['open']['p50']:.0f} p95 {d['open']['p95']:.0f} p99 {d['open']['p99']:.0f} ms, "
                  f"{d['open']['errors']} errors" for _, d in columns[1:]]
        r = results["open"]
        print(f"open loop, {r['conversations']} conversations x {r['turns']} turns, ~{r['think_s']:.0f} s think time "
              "(target p95 <= 300 ms, 0 errors):\n   " + " | ".join(cells))
    if "long" in results:
        b = BASELINE["long"]
        cells = [f"{b[0]:.0f} -> {b[1]:.0f} ms ({b[1] / b[0]:.2f}x)"]
        for _, d in columns[1:]:
            r = d["long"]
            cell = f"{r['first_ms']:.0f} -> {r['last_ms']:.0f} ms ({r['ratio']:.2f}x)"
            if r.get("cpu_ratio"):
                cell += f", CPU {r['first_cpu_ms']:.0f} -> {r['last_cpu_ms']:.0f} ms ({r['cpu_ratio']:.2f}x)"
            cells.append(cell + f", {r['errors']} errors")
        r = results["long"]
        print(f"one long conversation, median latency (and Rasa CPU) of turns 1-10 -> {r['turns'] - 9}-{r['turns']} "
              "(target <= 1.5x):\n   " + " | ".join(cells))
    for _, data in columns[1:]:
        for part in ("closed", "open", "long"):
            rows = data.get(part)
            for r in rows if isinstance(rows, list) else [rows] if rows else []:
                if r["errors"]:
                    print(f"   {part} error samples: {r['error_samples']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running Rasa server (default: start stock + clinic stacks and compare)")
    parser.add_argument("--token", default="", help="its HTTP API token (RASA_AUTH_TOKEN)")
    parser.add_argument("--pid", type=int, help="with --url: the Rasa server's process id (CPU per message)")
    parser.add_argument("--levels", default="1,8,16", help="closed-loop concurrencies")
    parser.add_argument("--seconds", type=float, default=12.0, help="measured seconds per closed-loop level")
    parser.add_argument("--long-turns", type=int, default=300)
    parser.add_argument("--only", default="closed,open,long")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    only = set(args.only.split(","))
    if args.url:
        results = run_all(args.url.rstrip("/"), args.token, levels, args.seconds, only, args.long_turns, args.pid)
        report(results)
    else:
        results = compare(levels, args.seconds, only, args.long_turns)
        report(results["fast"], before=results["stock"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
