"""Time a 5,000-row appointments CSV import (bookings and their planned texts, one transaction), and the refusal
of the same file with a bad row. Usage: .venv/bin/python scripts/bench_appointments_import.py [OUTREACH_DB_URL]
(default: a new SQLite file; give an empty PostgreSQL database to measure PostgreSQL)."""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.outreach import appointments as ap  # noqa: E402
from bot.outreach import outbox  # noqa: E402,F401 - its change hook plans each appointment's texts

ROWS = 5000


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{tempfile.mkdtemp()}/outreach.db"
    first_day = (datetime.now(ZoneInfo("America/Chicago")) + timedelta(days=10)).date()
    rows = "".join(f"+1312{5550000 + n:07d},{'lumbar' if n % 2 else 'cervical'},{first_day + timedelta(days=n % 30)},"
                   f"{8 + n % 9:02d}:30,America/Chicago,yes\n" for n in range(ROWS))
    text = "phone,procedure,date,time,time_zone,consent\n" + rows
    store = ap.AppointmentStore(url)
    started = time.perf_counter()
    report = store.import_csv(text, "bench")
    took = time.perf_counter() - started
    with store.engine.connect() as connection:
        texts = connection.execute(sa.text("SELECT COUNT(*) FROM outreach_messages")).scalar()
    print(f"{store.engine.dialect.name}: {len(text) / 1000:.0f} kB, {len(report.added)} appointments and {texts} "
          f"planned texts in {took:.2f} s ({took / max(len(report.added), 1) * 1000:.2f} ms a row)")
    bad = "\n".join(text.splitlines()[:ROWS]) + "\n555-01,knee,2020-01-01,25:00,Mars/Base,maybe\n"
    started = time.perf_counter()
    refused = store.import_csv(bad, "bench")
    print(f"the same file with one bad row: refused in {time.perf_counter() - started:.2f} s "
          f"({len(refused.errors)} problems named, nothing stored)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
