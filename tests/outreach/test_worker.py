"""The outreach worker on a fake clock against a real database (SQLite and PostgreSQL) and the Twilio stand-in:
local times across a daylight-saving change, quiet hours, reschedule, cancel, STOP, a worker killed mid-run
and two workers at once (separate processes), nothing sent twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.channels.sms import SmsStateStore
from bot.devtools.stack import ROOT, base_env
from bot.devtools.twilio_messages import FakeTwilioMessages
from bot.outreach import appointments as ap
from bot.outreach import outbox as ob
from bot.outreach.schedule import load_schedule
from bot.outreach.worker import OptOutReader, OutreachWorker, TwilioAccount
from tests.scratch_db import scratch_postgres_database

pytestmark = pytest.mark.server

CHICAGO = ZoneInfo("America/Chicago")
HOUR = 3600.0


class FakeClock:
    """Seconds since the epoch that only move when told to (also written to a file for worker processes)."""

    def __init__(self, start: datetime, path: Path | None = None):
        self.now = start.timestamp()
        self.path = path
        self._write()

    def __call__(self) -> float:
        return self.now

    def set(self, moment: datetime | float) -> None:
        self.now = moment.timestamp() if isinstance(moment, datetime) else float(moment)
        self._write()

    def advance(self, seconds: float) -> None:
        self.set(self.now + seconds)

    def _write(self) -> None:
        if self.path is not None:
            self.path.write_text(repr(self.now))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def outreach_url(request, tmp_path, postgres_server_url):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'outreach.db'}"
        return
    if not postgres_server_url:
        if os.environ.get("REVIEW_REQUIRE_POSTGRES") == "1":
            pytest.fail("no PostgreSQL: scripts/ensure_postgres.sh failed")
        pytest.skip("no PostgreSQL available")
    with scratch_postgres_database(postgres_server_url, "outreach") as url:
        yield url
        ap.AppointmentStore(url).engine.dispose()


@pytest.fixture
def twilio():
    with FakeTwilioMessages() as fake:
        yield fake


@pytest.fixture
def opt_outs(tmp_path):
    store = SmsStateStore(f"sqlite:///{tmp_path / 'sms_state.db'}", redis_url="")
    store.reader = OptOutReader(store.url)  # what the worker reads: the same table
    return store


def account(twilio: FakeTwilioMessages) -> TwilioAccount:
    env = twilio.env()
    return TwilioAccount(env["TWILIO_API_URL"], env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"],
                         env["TWILIO_FROM_NUMBER"])


def make_worker(url, twilio, opt_outs, clock, worker_id="w1") -> OutreachWorker:
    return OutreachWorker(outbox=ob.Outbox(url), twilio=account(twilio), tracker=None,
                          is_opted_out=opt_outs.reader.is_opted_out, clock=clock, schedule=load_schedule(), worker_id=worker_id)


def book(url, clock, phone="312 555 0142", day="2027-03-16", at="09:30", zone="America/Chicago", procedure="lumbar"):
    values = ap.check_values(phone, procedure, day, at, zone, "yes", now=clock())
    return ap.AppointmentStore(url).add(values, by="test", now=clock())


def run_until(worker: OutreachWorker, clock: FakeClock, until: datetime, step_s: float = 6 * HOUR) -> None:
    """A worker pass, then the clock moves to the next due text (at most `step_s` on), until `until`."""
    end = until.timestamp()
    while True:
        worker.run_once()
        if clock() >= end:
            return
        due = worker.outbox.next_due_at()
        clock.set(min(end, clock() + step_s, max(due, clock() + 1) if due is not None else end))


def local_sent_times(twilio: FakeTwilioMessages, zone: ZoneInfo = CHICAGO) -> list[datetime]:
    return [datetime.fromtimestamp(m.created_at, zone) for m in twilio.received()]


def test_texts_go_out_at_local_times_across_a_daylight_saving_change(outreach_url, twilio, opt_outs):
    # US clocks go forward on Sunday 14 March 2027: the week-before text is on CST, the rest on CDT
    clock = FakeClock(datetime(2027, 3, 5, 12, 0, tzinfo=timezone.utc))
    twilio.clock = clock
    appointment = book(outreach_url, clock)
    worker = make_worker(outreach_url, twilio, opt_outs, clock)
    run_until(worker, clock, datetime(2027, 3, 21, tzinfo=CHICAGO))
    sent = twilio.received()
    local = local_sent_times(twilio)
    planned = [(datetime(2027, 3, 9, 10, 0), "CST"), (datetime(2027, 3, 15, 17, 0), "CDT"),
               (datetime(2027, 3, 17, 10, 0), "CDT"), (datetime(2027, 3, 19, 10, 0), "CDT")]
    assert len(local) == len(planned)
    for moment, (wall, zone_name) in zip(local, planned, strict=True):
        assert moment.tzname() == zone_name
        assert moment.replace(tzinfo=None) == wall  # sent when due, on the patient's clock
    messages = ob.messages_for_appointment(appointment.id, url=outreach_url)
    assert [m.status for m in messages] == [ob.SENT] * 4
    assert all(m.to == appointment.phone for m in sent)
    assert "Tuesday, March 16" in sent[0].body and "9:30 AM" in sent[0].body  # the local date and time


def test_quiet_hours_hold_a_late_text_until_morning_and_a_reminder_is_never_sent_after_the_start(
        outreach_url, twilio, opt_outs):
    clock = FakeClock(datetime(2027, 3, 5, 12, 0, tzinfo=timezone.utc))
    twilio.clock = clock
    late = book(outreach_url, clock, phone="312 555 0143", at="11:00")  # day-before text 17:00 on the 15th
    early = book(outreach_url, clock, phone="312 555 0144", at="08:30")  # starts before quiet hours end (09:00)
    worker = make_worker(outreach_url, twilio, opt_outs, clock)
    run_until(worker, clock, datetime(2027, 3, 10, tzinfo=CHICAGO))  # the week-before texts go out
    # the worker is down from before 17:00 on the 15th until 22:00 (quiet hours, 20:00-09:00)
    clock.set(datetime(2027, 3, 15, 22, 0, tzinfo=CHICAGO))
    worker.run_once()
    assert len(twilio.received()) == 2
    held = [m for m in ob.messages_for_appointment(late.id, url=outreach_url) if m.message_key == "day_before"][0]
    assert held.status == ob.PENDING
    assert datetime.fromtimestamp(held.due_at, CHICAGO) == datetime(2027, 3, 16, 9, 0, tzinfo=CHICAGO)
    run_until(worker, clock, datetime(2027, 3, 16, 10, 0, tzinfo=CHICAGO))
    day_before = [m for m in twilio.received() if "tomorrow" in m.body]
    assert [m.to for m in day_before] == [late.phone]
    assert datetime.fromtimestamp(day_before[0].created_at, CHICAGO).hour == 9
    skipped = [m for m in ob.messages_for_appointment(early.id, url=outreach_url) if m.message_key == "day_before"][0]
    assert (skipped.status, skipped.reason) == (ob.CANCELLED, ob.TOO_LATE)
    # no text ever left during quiet hours
    quiet = load_schedule().quiet_hours
    assert not [t for t in local_sent_times(twilio) if quiet.is_quiet(t.time().replace(tzinfo=None))]


def test_reschedule_moves_and_cancel_stops_the_waiting_texts(outreach_url, twilio, opt_outs):
    clock = FakeClock(datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc))
    twilio.clock = clock
    store = ap.AppointmentStore(outreach_url)
    moved = book(outreach_url, clock, phone="312 555 0145")
    cancelled = book(outreach_url, clock, phone="312 555 0146")
    worker = make_worker(outreach_url, twilio, opt_outs, clock)
    run_until(worker, clock, datetime(2027, 3, 10, tzinfo=CHICAGO))
    assert Counter(m.to for m in twilio.received()) == {moved.phone: 1, cancelled.phone: 1}  # the week-before texts
    new_values = ap.check_values(moved.phone, "lumbar", "2027-03-23", "14:00", "America/Chicago", "yes", now=clock())
    moved = store.update(moved.id, new_values, by="test", now=clock())
    store.cancel(cancelled.id, by="test", now=clock())
    rows = ob.messages_for_appointment(moved.id, url=outreach_url)
    assert {(m.appointment_version, m.message_key, m.status, m.reason) for m in rows if m.appointment_version == 1} == {
        (1, "week_before", ob.SENT, None), (1, "day_before", ob.CANCELLED, ob.RESCHEDULED),
        (1, "checkin_next_day", ob.CANCELLED, ob.RESCHEDULED), (1, "checkin_day_3", ob.CANCELLED, ob.RESCHEDULED)}
    assert all(m.status == ob.CANCELLED and m.reason == ob.APPOINTMENT_CANCELLED
               for m in ob.messages_for_appointment(cancelled.id, url=outreach_url) if m.status != ob.SENT)
    run_until(worker, clock, datetime(2027, 3, 28, tzinfo=CHICAGO))
    to_moved = [m for m in twilio.received() if m.to == moved.phone]
    # the old week-before, the new date's week-before (16 March), the day before the new date, two check-ins
    assert len(to_moved) == 5
    assert "Tuesday, March 23" in to_moved[1].body and "2:00 PM" in to_moved[1].body
    assert datetime.fromtimestamp(to_moved[2].created_at, CHICAGO).date() == datetime(2027, 3, 22).date()
    assert [m for m in twilio.received() if m.to == cancelled.phone] == [twilio.received(cancelled.phone)[0]]


def test_no_text_after_stop_in_the_sms_channels_opt_out_store(outreach_url, twilio, opt_outs):
    clock = FakeClock(datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc))
    twilio.clock = clock
    appointment = book(outreach_url, clock, phone="312 555 0147")
    opt_outs.set_opted_out(appointment.phone, True)  # what the SMS channel records for STOP
    worker = make_worker(outreach_url, twilio, opt_outs, clock)
    run_until(worker, clock, datetime(2027, 3, 21, tzinfo=CHICAGO))
    assert twilio.received() == []
    assert {(m.status, m.reason) for m in ob.messages_for_appointment(appointment.id, url=outreach_url)} == {
        (ob.CANCELLED, ob.OPTED_OUT)}


def test_a_failing_twilio_is_retried_then_marked_failed(outreach_url, twilio, opt_outs):
    clock = FakeClock(datetime(2027, 3, 9, 15, 59, tzinfo=timezone.utc))
    twilio.clock = clock
    appointment = book(outreach_url, clock, phone="312 555 0148")
    worker = make_worker(outreach_url, twilio, opt_outs, clock)
    twilio.fail_with = 503
    clock.set(datetime(2027, 3, 9, 10, 0, tzinfo=CHICAGO))
    worker.run_once()
    row = ob.messages_for_appointment(appointment.id, url=outreach_url)[0]
    assert (row.status, row.attempts) == (ob.PENDING, 1) and "503" in row.last_error
    twilio.fail_with = None
    clock.advance(61)
    worker.run_once()
    assert ob.messages_for_appointment(appointment.id, url=outreach_url)[0].status == ob.SENT
    assert len(twilio.received()) == 1


# --- worker processes: killed mid-run, two at once ------------------------------------------------------------
def worker_process(url: str, twilio: FakeTwilioMessages, clock_file: Path, log: Path, once: bool) -> subprocess.Popen:
    env = base_env({"OUTREACH_DB_URL": url, **twilio.env(), "SMS_STATE_DB_URL": f"sqlite:///{clock_file.parent / 's.db'}",
                    "RASA_AUTH_TOKEN": "", "TWILIO_WEBHOOK_URL": "", "OUTREACH_STATUS_URL": "", "REDIS_URL": ""})
    args = [sys.executable, "-m", "bot.outreach.worker", "--clock-file", str(clock_file), "--poll-s", "1"]
    return subprocess.Popen(args + (["--once"] if once else []), cwd=ROOT, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def book_many(url: str, clock: FakeClock, count: int) -> list[ap.Appointment]:
    return [book(url, clock, phone=f"312 555 {1000 + index:04d}") for index in range(count)]


def test_two_worker_processes_at_once_send_each_text_once(outreach_url, tmp_path):
    clock = FakeClock(datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc), tmp_path / "clock")
    with FakeTwilioMessages(clock=clock, delay_s=0.1) as twilio:
        booked = book_many(outreach_url, clock, 60)
        logs = [tmp_path / f"w{index}.log" for index in range(2)]
        workers = [worker_process(outreach_url, twilio, clock.path, log, once=False) for log in logs]
        try:
            time.sleep(3)  # both idle, polling every second
            clock.set(datetime(2027, 3, 9, 10, 5, tzinfo=CHICAGO))  # every week-before text is due at once
            deadline = time.monotonic() + 60
            while len(twilio.received()) < len(booked) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.5)  # a second pass of both: nothing more may go out
        finally:
            for process in workers:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
        assert Counter(m.to for m in twilio.received()) == {appointment.phone: 1 for appointment in booked}
        per_worker = [log.read_text().count(" sent to ") for log in logs]
        assert sum(per_worker) == len(booked) and min(per_worker) > 0, per_worker  # both sent, neither twice


def test_a_worker_killed_mid_run_loses_nothing_and_sends_nothing_twice(outreach_url, tmp_path):
    clock = FakeClock(datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc), tmp_path / "clock")
    with FakeTwilioMessages(clock=clock, delay_s=0.5) as twilio:  # each create answers after 0.5 s
        booked = book_many(outreach_url, clock, 24)
        clock.set(datetime(2027, 3, 9, 10, 5, tzinfo=CHICAGO))
        first = worker_process(outreach_url, twilio, clock.path, tmp_path / "first.log", once=False)
        deadline = time.monotonic() + 60
        while len(twilio.received()) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)  # mid-send: some creates are answered, some in flight
        first.wait()
        sent_before = len(twilio.received())
        assert 6 <= sent_before < len(booked)
        twilio.delay_s = 0.0
        clock.advance(ob.CLAIM_S + 1)  # the dead worker's claims expire
        second = worker_process(outreach_url, twilio, clock.path, tmp_path / "second.log", once=True)
        assert second.wait(timeout=120) == 0, (tmp_path / "second.log").read_text()[-2000:]
        assert Counter(m.to for m in twilio.received()) == {appointment.phone: 1 for appointment in booked}
        assert "before its worker stopped" in (tmp_path / "second.log").read_text()
        rows = [m for appointment in booked for m in ob.messages_for_appointment(appointment.id, url=outreach_url)
                if m.message_key == "week_before"]
        assert {m.status for m in rows} == {ob.SENT}
        assert len({m.twilio_sid for m in rows}) == len(booked)
