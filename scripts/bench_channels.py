"""Round-trip latency of the patient channels on localhost: website chat (socket.io) and SMS (Twilio webhook).

    .venv/bin/python scripts/bench_channels.py                      # starts its own stack (needs models/clinic.tar.gz)
    .venv/bin/python scripts/bench_channels.py --url http://localhost:5005 --twilio-token "$TWILIO_AUTH_TOKEN"

socket.io: one websocket per conversation (as the browser widget does), time from `user_uttered`
to the first `bot_uttered`. SMS: a signed, form-encoded Twilio request, time to the full TwiML reply.
Prints p50/p95/max in milliseconds; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchstats import percentile  # noqa: E402

from bot.devtools.socketio_client import MiniSocketIO  # noqa: E402
from bot.devtools.stack import BotStack  # noqa: E402
from bot.devtools.twilio_requests import TEST_AUTH_TOKEN, new_phone, post_sms, twilio_params  # noqa: E402

QUESTIONS = [
    "can i drive home after my nerve block",
    "do i stop aspirin before the injection",
    "what happens during the procedure",
    "will it hurt",
    "when can i take the bandage off",
    "what are the risks",
    "how do i lie on the table for the neck injection",
    "can i eat the night before",
    "my leg gave out and i cant feel my groin",
    "thanks",
]


def summary(name: str, millis: list[float], extra: str = "") -> str:
    if not millis:
        return f"{name:<28} no samples"
    return (
        f"{name:<28} n={len(millis):<4} p50={percentile(millis, 0.50):7.0f} ms  p95={percentile(millis, 0.95):7.0f} ms  "
        f"max={max(millis):7.0f} ms  mean={statistics.fmean(millis):7.0f} ms{extra}"
    )


async def socketio_conversation(url: str, rounds: int, offset: int) -> list[float]:
    timings = []
    async with MiniSocketIO(url) as client:
        session = await client.session(uuid.uuid4().hex)
        for i in range(rounds):
            text = QUESTIONS[(offset + i) % len(QUESTIONS)]
            started = time.perf_counter()
            await client.emit("user_uttered", {"message": text, "session_id": session})
            await client.receive("bot_uttered", timeout=30)
            timings.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.05)
            while not client.queues["bot_uttered"].empty():  # further messages of the same reply
                client.queues["bot_uttered"].get_nowait()
    return timings


async def bench_socketio(url: str, rounds: int, concurrency: int) -> list[float]:
    per = max(1, rounds // concurrency)
    results = await asyncio.gather(*(socketio_conversation(url, per, k * 3) for k in range(concurrency)))
    return [t for result in results for t in result]


def bench_sms(url: str, token: str, rounds: int) -> tuple[list[float], list[int], int]:
    timings, counts, longest = [], [], 0
    phone = new_phone()
    for i in range(rounds):
        params = twilio_params(phone, QUESTIONS[i % len(QUESTIONS)])
        started = time.perf_counter()
        reply = post_sms(f"{url}/webhooks/sms/webhook", params, token=token)
        timings.append((time.perf_counter() - started) * 1000)
        if reply.status != 200:
            raise SystemExit(f"SMS webhook answered {reply.status}: {reply.body[:200]} (wrong --twilio-token?)")
        counts.append(len(reply.messages))
        longest = max([longest, *(len(m) for m in reply.messages)])
    return timings, counts, longest


def run(url: str, token: str | None, rounds: int, concurrency: int) -> None:
    print(f"bot at {url}; {rounds} messages per channel (+3 warm-up)")
    asyncio.run(bench_socketio(url, 3, 1))
    print(summary("socket.io round trip", asyncio.run(bench_socketio(url, rounds, 1))))
    if concurrency > 1:
        millis = asyncio.run(bench_socketio(url, rounds, concurrency))
        print(summary(f"socket.io x{concurrency} parallel", millis))
    if not token:
        print("SMS: skipped (pass --twilio-token, the server's TWILIO_AUTH_TOKEN)")
        return
    bench_sms(url, token, 3)
    millis, counts, longest = bench_sms(url, token, rounds)
    print(summary("SMS webhook round trip", millis,
                  f"  <Message>s per reply: mean {statistics.fmean(counts):.1f}, max {max(counts)}; longest {longest} chars"))


def main() -> None:
    parser = argparse.ArgumentParser(description="socket.io and SMS round-trip latency")
    parser.add_argument("--url", help="a running Rasa server (default: start one with the test Twilio token)")
    parser.add_argument("--twilio-token", help="the running server's TWILIO_AUTH_TOKEN (for the SMS part)")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4, help="parallel socket.io conversations (1 = skip)")
    args = parser.parse_args()
    if args.url:
        run(args.url.rstrip("/"), args.twilio_token, args.rounds, args.concurrency)
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        env = {"TRACKER_DB_URL": f"sqlite:///{tmp}/tracker.db", "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN}
        print("starting the bot (action server + Rasa server) ...", flush=True)
        started = time.perf_counter()
        with BotStack(env=env) as stack:
            print(f"ready in {time.perf_counter() - started:.1f} s")
            run(stack.url, TEST_AUTH_TOKEN, args.rounds, args.concurrency)


if __name__ == "__main__":
    main()
