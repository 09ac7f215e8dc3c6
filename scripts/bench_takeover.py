"""Staff takeover: seek-care latency with a takeover active vs none, per channel; the guard's lookup; staff replies.

    .venv/bin/python scripts/bench_takeover.py [--n 20]     # starts its own stack (needs models/clinic.tar.gz)

For each channel (REST, SMS webhook, web chat over socket.io) and each condition (no takeover / taken over
through the HTTP API exactly as the review app does it), N fresh conversations say hello and then send a red
flag; the time is from sending the red flag until the seek-care message arrives. (On the web chat the red flag
is sent 0.5 s after the greeting's answer in both conditions: sent at once, it waits for the previous turn's
lock, and the guard's 0.7 s deadline answers it.) Also: the cost of the guard's
takeover lookup on the tracker database, and the round trip of a staff reply through Rasa's HTTP API (SMS via
the local Twilio stand-in; web chat to a connected widget). Prints p50/p95/max; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchstats import percentile  # noqa: E402

from bot.devtools.alert_sinks import FakeTwilio  # noqa: E402
from bot.devtools.red_flags import RED_FLAG, sms_wordings  # noqa: E402
from bot.devtools.socketio_client import MiniSocketIO  # noqa: E402
from bot.devtools.stack import BotStack, http_json  # noqa: E402
from bot.devtools.twilio_requests import TEST_AUTH_TOKEN, new_phone, post_sms, twilio_params  # noqa: E402
from bot.review.replies import RasaApi, staff_message, takeover_events  # noqa: E402
from bot.takeover import TakeoverLookup  # noqa: E402
from bot.vocabulary import SEEK_CARE_KIND, STAFF_REPLY_KIND  # noqa: E402


def line(name: str, seconds: list[float], note: str = "") -> str:
    millis = [s * 1000 for s in seconds]
    if not millis:
        return f"{name:<44} no samples"
    return (f"{name:<44} n={len(millis):<3} p50={percentile(millis, 0.5):6.0f} ms  p95={percentile(millis, 0.95):6.0f} ms"
            f"  max={max(millis):6.0f} ms{note}")


def rest_seek_care(stack: BotStack, api: RasaApi, take_over: bool) -> float | None:
    sender = f"bench-takeover-{uuid.uuid4().hex[:10]}"
    stack.send(sender, "hello")
    if take_over:
        api.append_and_send(sender, takeover_events("bench", 60))
    started = time.perf_counter()
    status, body = http_json("POST", f"{stack.url}/webhooks/rest/webhook?token={stack.token}",
                             {"sender": sender, "message": RED_FLAG})
    elapsed = time.perf_counter() - started
    warned = status == 200 and any((m.get("custom") or {}).get("kind") == SEEK_CARE_KIND for m in body)
    return elapsed if warned else None


def sms_seek_care(stack: BotStack, api: RasaApi, take_over: bool) -> float | None:
    phone = new_phone()
    post_sms(stack.sms_url, twilio_params(phone, "hello"))
    if take_over:
        api.append_and_send(phone, takeover_events("bench", 60))
    started = time.perf_counter()
    reply = post_sms(stack.sms_url, twilio_params(phone, RED_FLAG))
    elapsed = time.perf_counter() - started
    return elapsed if sms_wordings()["emergency"] in reply.text else None


async def web_seek_care(stack: BotStack, api: RasaApi, take_over: bool) -> tuple[float | None, float | None]:
    """(seek-care seconds, staff reply seconds until the connected widget shows it)."""
    async with MiniSocketIO(stack.url) as client:
        session = await client.session(None)
        await client.emit("user_uttered", {"message": "hello", "session_id": session})
        await client.receive("bot_uttered")
        await asyncio.sleep(0.5)  # the turn finishes (tracker saved, lock released) in both conditions alike
        if take_over:
            await asyncio.to_thread(api.append_and_send, session, takeover_events("bench", 60))
            await client.receive("bot_uttered")  # the notice
        started = time.perf_counter()
        await client.emit("user_uttered", {"message": RED_FLAG, "session_id": session})
        seek_care = None
        while seek_care is None:
            try:
                event = await client.receive("bot_uttered", 15)
            except asyncio.TimeoutError:
                return None, None
            if (event.get("metadata") or {}).get("kind") == SEEK_CARE_KIND:
                seek_care = time.perf_counter() - started
        if not take_over:
            return seek_care, None
        await asyncio.sleep(0.5)  # let the held-back rest of the turn pass
        while not client.queues["bot_uttered"].empty():
            client.queues["bot_uttered"].get_nowait()
        started = time.perf_counter()
        await asyncio.to_thread(api.append_and_send, session, [staff_message("We are calling you now.",
                                                                             STAFF_REPLY_KIND, "bench")])
        await client.receive("bot_uttered", 15)
        return seek_care, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20, help="conversations per channel and condition")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-takeover-"))
    db_url = f"sqlite:///{workdir / 'tracker.db'}"
    print(f"Staff takeover (n={args.n} per channel and condition; seek-care = red flag sent -> seek-care received)")
    with FakeTwilio(auth_token=TEST_AUTH_TOKEN) as twilio, \
            BotStack(env={"TRACKER_DB_URL": db_url, "TWILIO_WEBHOOK_URL": "", **twilio.env()}) as stack:
        stack.sms_url = f"{stack.url}/webhooks/sms/webhook"
        api = RasaApi(stack.url, stack.token)
        sms_wordings()
        for take_over in (False, True):
            label = "taken over" if take_over else "no takeover"
            rest = [rest_seek_care(stack, api, take_over) for _ in range(args.n)]
            sms = [sms_seek_care(stack, api, take_over) for _ in range(args.n)]
            web = [asyncio.run(web_seek_care(stack, api, take_over)) for _ in range(args.n)]
            for name, values in (("REST", rest), ("SMS", sms), ("web chat", [w[0] for w in web])):
                got = [v for v in values if v is not None]
                print(line(f"seek-care, {name}, {label}", got, f"  missing={len(values) - len(got)}"))
            if take_over:
                print(line("staff reply -> connected web chat", [w[1] for w in web if w[1] is not None]))
        replies = []
        for _ in range(args.n):
            phone = new_phone()
            post_sms(stack.sms_url, twilio_params(phone, "hello"))
            started = time.perf_counter()
            api.append_and_send(phone, [staff_message("A nurse will call you today.", STAFF_REPLY_KIND, "bench")])
            replies.append(time.perf_counter() - started)
        print(line("staff reply -> SMS (Twilio stand-in), API call", replies))
        lookup = TakeoverLookup(db_url)
        senders = [f"bench-takeover-{uuid.uuid4().hex[:10]}" for _ in range(3)]
        lookup.current(senders[0])
        timings = []
        for i in range(300):
            started = time.perf_counter()
            lookup.current(senders[i % 3])
            timings.append(time.perf_counter() - started)
        micros = [t * 1e6 for t in timings]
        print(f"{'guard takeover lookup, SQLite, per message':<44} n={len(micros):<3} p50={percentile(micros, 0.5):6.0f} us"
              f"  p95={percentile(micros, 0.95):6.0f} us  max={max(micros):6.0f} us")


if __name__ == "__main__":
    main()
