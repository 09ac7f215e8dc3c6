"""Check-ins through the real bot: the worker sends through the Twilio stand-in and adds the text to the
patient's conversation (Rasa HTTP API); replies come as signed Twilio webhooks to the real SMS channel.
"1" thanks with the warning signs, "2" invites the question (also in a new session), "1" without a check-in
is not guessed at, an urgent reply escalates and alerts staff, STOP before a reminder stops it, Twilio's
signed status callbacks are recorded (forged ones refused), and unanswered check-ins are listed."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.alerts.store import AlertStore
from bot.alerts.worker import AlertWorker
from bot.devtools.stack import BotStack, http_json
from bot.devtools.twilio_messages import FakeTwilioMessages
from bot.devtools.twilio_requests import new_phone, post_sms, twilio_params
from bot.outreach import appointments as ap
from bot.outreach import outbox as ob
from bot.outreach.schedule import load_schedule
from bot.outreach.worker import OptOutReader, OutreachWorker, RasaTracker, TwilioAccount
from bot.vocabulary import OUTREACH_CHECKIN_KIND, OUTREACH_MESSAGE_KEY, SLOT_LAST_OUTREACH

pytestmark = [pytest.mark.stack, pytest.mark.server]

ZONES = ("Pacific/Honolulu", "America/Los_Angeles", "America/Chicago", "America/New_York", "UTC",
         "Europe/Berlin", "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland")


def daytime_zone() -> ZoneInfo:
    """A zone where it is now between 11:00 and 19:00, so today's 10:00 check-in is due and not in quiet hours."""
    for name in ZONES:
        if 11 <= datetime.now(ZoneInfo(name)).hour < 19:
            return ZoneInfo(name)
    raise AssertionError("no zone in daytime")  # the zones cover every hour of the day


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    root = tmp_path_factory.mktemp("outreach-stack")
    clock = Clock()
    with FakeTwilioMessages(clock=clock) as twilio:
        env = {"TRACKER_DB_URL": f"sqlite:///{root / 'tracker.db'}", "OUTREACH_DB_URL": f"sqlite:///{root / 'outreach.db'}",
               "SMS_STATE_DB_URL": f"sqlite:///{root / 'sms.db'}", "TWILIO_WEBHOOK_URL": "", "REDIS_URL": "",
               **twilio.env()}
        with BotStack(env=env) as stack:
            yield stack, twilio, clock, env


@pytest.fixture
def worker(running, monkeypatch):
    stack, twilio, clock, env = running
    monkeypatch.setenv("OUTREACH_STATUS_URL", f"{stack.url}/webhooks/sms/status")
    settings = twilio.env()
    return OutreachWorker(
        outbox=ob.Outbox(env["OUTREACH_DB_URL"]),
        twilio=TwilioAccount(settings["TWILIO_API_URL"], settings["TWILIO_ACCOUNT_SID"], settings["TWILIO_AUTH_TOKEN"],
                             settings["TWILIO_FROM_NUMBER"]),
        tracker=RasaTracker(stack.url, stack.token), is_opted_out=OptOutReader(env["SMS_STATE_DB_URL"]).is_opted_out,
        clock=clock, schedule=load_schedule(), worker_id="stack-test")


def book_yesterday(env: dict, clock: Clock, phone: str) -> ap.Appointment:
    """An appointment yesterday morning (booked three days before it): today's 10:00 check-in is due now."""
    zone = daytime_zone()
    day = (datetime.now(zone) - timedelta(days=1)).date()
    start = datetime(day.year, day.month, day.day, 9, 30, tzinfo=zone)
    booked_at = start.timestamp() - 3 * 86400
    values = ap.check_values(phone, "lumbar", day.isoformat(), "09:30", zone.key, "yes", now=booked_at)
    return ap.AppointmentStore(env["OUTREACH_DB_URL"]).add(values, by="test", now=booked_at)


def send_checkin(running, worker, phone: str) -> ob.OutreachMessage:
    stack, twilio, clock, env = running
    appointment = book_yesterday(env, clock, phone)
    clock.now = time.time()
    worker.run_once()
    rows = {m.message_key: m for m in ob.messages_for_appointment(appointment.id, url=env["OUTREACH_DB_URL"])}
    assert rows["day_before"].status == ob.CANCELLED and rows["day_before"].reason == ob.TOO_LATE
    assert rows["checkin_next_day"].status == ob.SENT and rows["checkin_next_day"].tracker_recorded_at
    return rows["checkin_next_day"]


def text(stack: BotStack, phone: str, body: str) -> str:
    reply = post_sms(f"{stack.url}/webhooks/sms/webhook", twilio_params(phone, body))
    assert reply.status == 200, reply.body
    return reply.text


def test_a_checkin_enters_the_conversation_and_1_or_2_are_read_in_context(running, worker):
    stack, twilio, clock, env = running
    fine, question, stranger = new_phone(), new_phone(), new_phone()
    sent = send_checkin(running, worker, fine)
    assert [m.body for m in twilio.received(fine)] == [sent.body]
    assert "Reply 1 if you feel OK" in sent.body
    tracker = stack.tracker(fine)
    bot_events = [e for e in tracker["events"] if e["event"] == "bot"]
    assert bot_events[-1]["text"] == sent.body
    assert bot_events[-1]["metadata"][OUTREACH_MESSAGE_KEY]["message_id"] == sent.id
    assert bot_events[-1]["data"]["custom"]["kind"] == OUTREACH_CHECKIN_KIND
    assert tracker["slots"][SLOT_LAST_OUTREACH]["kind"] == "checkin"

    assert "glad you feel OK" in text(stack, fine, "1")
    send_checkin(running, worker, question)
    assert "What is your question?" in text(stack, question, "2")
    assert "glad you feel OK" not in text(stack, stranger, "1")  # no check-in: not read as "I'm fine"


def test_a_reply_in_a_new_session_is_still_read_as_the_checkins_answer(running, worker):
    stack, twilio, clock, env = running
    phone = new_phone()
    send_checkin(running, worker, phone)
    # what a new Rasa session does to the slot after two idle hours (domain.yml session_config)
    events = [{"event": "slot", "name": SLOT_LAST_OUTREACH, "value": None, "timestamp": time.time()}]
    status, _ = http_json("POST", f"{stack.url}/conversations/{phone}/tracker/events?token={stack.token}", events)
    assert status == 200
    assert stack.tracker(phone)["slots"][SLOT_LAST_OUTREACH] is None
    assert "glad you feel OK" in text(stack, phone, "1")


def test_an_urgent_reply_to_a_checkin_escalates_and_alerts_staff(running, worker, tmp_path):
    stack, twilio, clock, env = running
    phone = new_phone()
    alerts = AlertWorker(AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}"), env["TRACKER_DB_URL"], broker_url="",
                         poll_s=1)
    alerts.sweep_once()  # first start: from now on
    send_checkin(running, worker, phone)
    reply = text(stack, phone, "2 my legs went weak and numb and I can't pee")
    assert "nearest ER" in reply  # the emergency seek-care text
    deadline = time.monotonic() + 10  # the alert worker reads the stored events every second
    while not alerts.sweep_once() and time.monotonic() < deadline:
        time.sleep(0.3)
    [alert] = alerts.store.alerts([phone])
    assert alert.level == "emergency" and alert.channel == "sms"


def test_stop_before_a_reminder_means_no_reminder(running, worker):
    stack, twilio, clock, env = running
    phone = new_phone()
    zone = daytime_zone()
    day = (datetime.now(zone) + timedelta(days=8)).date()
    values = ap.check_values(phone, "cervical", day.isoformat(), "09:30", zone.key, "yes", now=time.time())
    appointment = ap.AppointmentStore(env["OUTREACH_DB_URL"]).add(values, by="test", now=time.time())
    assert post_sms(f"{stack.url}/webhooks/sms/webhook", twilio_params(phone, "STOP")).status == 200
    week_before = [m for m in ob.messages_for_appointment(appointment.id, url=env["OUTREACH_DB_URL"])
                   if m.message_key == "week_before"][0]
    clock.now = week_before.due_at + 60
    worker.run_once()
    clock.now = time.time()
    row = [m for m in ob.messages_for_appointment(appointment.id, url=env["OUTREACH_DB_URL"]) if m.id == week_before.id][0]
    assert (row.status, row.reason) == (ob.CANCELLED, ob.OPTED_OUT)
    assert twilio.received(phone) == []


def test_signed_status_callbacks_are_recorded_and_forged_ones_refused(running, worker):
    stack, twilio, clock, env = running
    delivered_phone, failed_phone = new_phone(), new_phone()
    delivered = send_checkin(running, worker, delivered_phone)
    failed = send_checkin(running, worker, failed_phone)
    [delivered_msg], [failed_msg] = twilio.received(delivered_phone), twilio.received(failed_phone)
    assert delivered_msg.status_callback == f"{stack.url}/webhooks/sms/status?outreach_message={delivered.id}"
    assert twilio.post_status(delivered_msg, "delivered", token="not-the-auth-token-0000000000000") == 403
    assert twilio.post_status(delivered_msg, "sent") == 204
    assert twilio.post_status(delivered_msg, "delivered") == 204
    assert twilio.post_status(failed_msg, "undelivered", error_code="30003") == 204
    rows = {m.id: m for a in (delivered.appointment_id, failed.appointment_id)
            for m in ob.messages_for_appointment(a, url=env["OUTREACH_DB_URL"])}
    assert rows[delivered.id].status == ob.DELIVERED and rows[delivered.id].delivered_at
    assert rows[failed.id].status == ob.FAILED and "30003" in rows[failed.id].last_error


def test_unanswered_checkins_are_listed_for_staff(running, worker):
    stack, twilio, clock, env = running
    silent, answered = new_phone(), new_phone()
    send_checkin(running, worker, silent)
    send_checkin(running, worker, answered)
    text(stack, answered, "1")
    window = load_schedule().checkin_no_reply.total_seconds()
    later = time.time() + window + 60
    listed = {item.phone for item in ob.unanswered_checkins(now=later, url=env["OUTREACH_DB_URL"],
                                                            tracker_url=env["TRACKER_DB_URL"])}
    assert silent in listed and answered not in listed
    assert not ob.unanswered_checkins(now=time.time(), url=env["OUTREACH_DB_URL"], tracker_url=env["TRACKER_DB_URL"])
