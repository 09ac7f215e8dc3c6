"""Reminders and check-ins at scale: book N appointments, then send every text through the Twilio stand-in.

    .venv/bin/python scripts/bench_outreach.py [--appointments 10000] [--workers 1] [--url postgresql://.../db]

Imports N appointments over 30 days in four time zones (bot.outreach.appointments CSV import; each booking
plans its texts in the same transaction: the outbox's change hook), then runs the outreach worker on a fake clock
that jumps to the next due text until every text is out: claims, checks (appointment, quiet hours, the SMS
opt-out record), rendering and one POST to the local Twilio stand-in per text (HTTP, Basic auth, JSON reply).
Adding texts to the conversations (Rasa's HTTP API) is off here: that cost is the bot's, measured in
bench_reply_path.py. Prints booking time, sending time, texts per second, the worker's peak memory and a
check that each text went out exactly once. SQLite in a temporary folder unless --url is given (an empty
database; its outreach tables are dropped afterwards). With --workers 2 two workers (threads, separate
engines) share the outbox, as two processes would.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def book(url: str, count: int, start: datetime, seed: int = 11) -> tuple[float, int]:
    """Import `count` appointments as CSV files of at most 5,000 rows (each booking plans its texts in the
    import's transaction); (seconds, texts planned)."""
    import sqlalchemy as sa

    from bot.outreach import appointments as ap
    from bot.outreach import outbox as ob

    store = ap.AppointmentStore(engine=ob.Outbox(url).engine)  # the worker's pooled engine (see outbox_engine)
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        day = (start + timedelta(days=8 + rng.randrange(30))).date()
        at = f"{rng.randrange(8, 16):02d}:{rng.choice(('00', '15', '30', '45'))}"
        rows.append(f"+1312{5550000 + index:07d},{rng.choice(ap.PROCEDURES)},{day.isoformat()},{at},"
                    f"{ZONES[index % len(ZONES)]},yes")
    began = time.perf_counter()
    for first in range(0, count, ap.MAX_CSV_ROWS):
        report = store.import_csv("phone,procedure,date,time,time_zone,consent\n" +
                                  "\n".join(rows[first:first + ap.MAX_CSV_ROWS]) + "\n", by="bench",
                                  now=start.timestamp())
        assert report.ok, report.errors[:3]
    seconds = time.perf_counter() - began
    with store.engine.connect() as connection:
        planned = connection.execute(sa.select(sa.func.count()).select_from(ob.messages_table)).scalar()
    return seconds, int(planned)


def send_all(url: str, workers: int, start: datetime, twilio) -> tuple[float, int, Counter]:  # noqa: ANN001
    from bot.outreach import outbox as ob
    from bot.outreach.schedule import load_schedule
    from bot.outreach.worker import OutreachWorker, TwilioAccount

    env = twilio.env()
    account = TwilioAccount(env["TWILIO_API_URL"], env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"],
                            env["TWILIO_FROM_NUMBER"])
    clock_lock = threading.Lock()
    state = {"now": start.timestamp()}

    def clock() -> float:
        with clock_lock:
            return state["now"]

    twilio.clock = clock
    schedule = load_schedule()
    pool = [OutreachWorker(outbox=ob.Outbox(url), twilio=account, tracker=None, is_opted_out=lambda phone: False,
                           clock=clock, schedule=schedule, worker_id=f"bench-{index}", concurrency=4)
            for index in range(workers)]
    counts: Counter = Counter()
    outbox = ob.Outbox(url)
    began = time.perf_counter()
    while True:
        threads = [threading.Thread(target=lambda w=worker: counts.update(vars(w.run_once(limit=1000))))
                   for worker in pool]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        due = outbox.next_due_at()
        if due is None:
            break
        with clock_lock:
            state["now"] = max(due, state["now"] + 1)
    return time.perf_counter() - began, len(twilio.received()), counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appointments", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--url", help="an empty database (default: SQLite in a temporary folder)")
    args = parser.parse_args()

    from bot.devtools.twilio_messages import FakeTwilioMessages

    start = datetime(2027, 1, 4, 12, 0, tzinfo=timezone.utc)
    with tempfile.TemporaryDirectory(prefix="bench-outreach-") as folder:
        url = args.url or f"sqlite:///{Path(folder) / 'outreach.db'}"
        with FakeTwilioMessages() as twilio:
            rss_before = peak_rss_mb()
            book_s, planned = book(url, args.appointments, start)
            send_s, sent, counts = send_all(url, args.workers, start, twilio)
            per_phone = Counter((m.to, m.body) for m in twilio.received())
            twice = sum(1 for n in per_phone.values() if n > 1)
        if args.url:
            import sqlalchemy as sa

            from bot.outreach.appointments import appointments_table
            from bot.outreach.outbox import messages_table

            engine = sa.create_engine(args.url, future=True)
            messages_table.drop(engine, checkfirst=True)
            appointments_table.drop(engine, checkfirst=True)
    backend = "PostgreSQL" if args.url and args.url.startswith("postgres") else "SQLite"
    print(f"\nOutreach ({backend}, {args.appointments:,} appointments over 30 days in {len(ZONES)} zones, "
          f"{args.workers} worker(s) x 4 sending threads, Twilio stand-in on localhost)")
    print(f"  booking + planning:  {book_s:7.1f} s   {args.appointments / book_s:8.0f} appointments/s   "
          f"{planned:,} texts planned")
    print(f"  sending:             {send_s:7.1f} s   {sent / send_s:8.0f} texts/s   {sent:,} sent, "
          f"{counts['cancelled']:,} not sent (too late / quiet hours moved: {counts['deferred']:,} deferred)")
    print(f"  exactly once:        {'yes' if twice == 0 and sent == planned - counts['cancelled'] else 'NO'} "
          f"({twice} texts sent more than once; rows a worker found already taken by the other: "
          f"{counts['lost_races']:,})")
    print(f"  peak memory:         {peak_rss_mb():7.0f} MB (process; {rss_before:.0f} MB before booking)")


if __name__ == "__main__":
    main()
