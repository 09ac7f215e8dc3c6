"""The outbox's parts on a real SQLite database: planning is idempotent and follows the appointment, a row is
claimed by one worker only, status callbacks never go backwards, the worker reads the SMS channel's STOP
record, a check-in reply is read in context, and unanswered check-ins come from the tracker store's events."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from bot.outreach import appointments as ap
from bot.outreach import outbox as ob
from bot.outreach.context import CHECKIN_CONTEXT_S, recent_checkin
from bot.outreach.schedule import load_schedule
from bot.outreach.worker import OptOutReader, status_callback_url

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'outreach.db'}"


def book(url, phone="312 555 0142", day="2027-03-16", at="09:30", consent="yes"):
    values = ap.check_values(phone, "lumbar", day, at, "America/Chicago", consent, now=NOW)
    return ap.AppointmentStore(url).add(values, by="test", now=NOW)


def test_booking_plans_each_text_once_and_planning_again_adds_nothing(url):
    appointment = book(url)
    rows = ob.messages_for_appointment(appointment.id, url=url)
    assert [m.message_key for m in rows] == ["week_before", "day_before", "checkin_next_day", "checkin_day_3"]
    assert {m.status for m in rows} == {ob.PENDING}
    outbox = ob.Outbox(url)
    with outbox.engine.begin() as connection:
        assert ob.plan_appointment(connection, appointment, load_schedule(), NOW) == 0
    assert outbox.plan_changed((0.0, 0), load_schedule(), NOW)[0] == 0
    with pytest.raises(sa.exc.IntegrityError):  # the unique key itself refuses a second row
        with outbox.engine.begin() as connection:
            connection.execute(ob.messages_table.insert().values(
                appointment_id=appointment.id, message_key="week_before", appointment_version=1, kind="reminder",
                phone=appointment.phone, due_at=NOW, status=ob.PENDING, attempts=0, created_at=NOW, updated_at=NOW))


def test_no_consent_and_a_past_appointment_get_no_texts(url):
    without = book(url, phone="312 555 0150", consent="no")
    assert ob.messages_for_appointment(without.id, url=url) == []
    appointment = book(url, phone="312 555 0151")
    later = datetime(2027, 3, 17, tzinfo=timezone.utc).timestamp()  # after the appointment
    with ob.Outbox(url).engine.begin() as connection:
        moved = ap.Appointment(**{**appointment.__dict__, "version": 2})
        assert ob.plan_appointment(connection, moved, load_schedule(), later) == 0
    assert {(m.status, m.reason) for m in ob.messages_for_appointment(appointment.id, url=url)} == {
        (ob.CANCELLED, ob.RESCHEDULED)}


def test_of_two_workers_claiming_the_same_row_one_wins(url):
    appointment = book(url)
    row = ob.messages_for_appointment(appointment.id, url=url)[0]
    first, second = ob.Outbox(url), ob.Outbox(url)
    assert first.claim_many([row], "w1", NOW) == [row]
    assert second.claim_many([row], "w2", NOW) == []  # the row it read is no longer pending
    assert second.finish_many([(row.id, ob.Outbox.sent("x", "SM1", NOW, NOW))], "w2") == 0  # not its claim
    assert first.finish_many([(row.id, ob.Outbox.sent("x", "SM1", NOW, NOW))], "w1") == 1
    stale = ob.messages_for_appointment(appointment.id, url=url)[0]
    assert (stale.status, stale.attempts, stale.twilio_sid) == (ob.SENT, 1, "SM1")


def test_an_abandoned_claim_is_due_again_only_after_it_expires(url):
    appointment = book(url)
    row = ob.messages_for_appointment(appointment.id, url=url)[0]
    outbox = ob.Outbox(url)
    assert outbox.claim_many([row], "dead", row.due_at)
    assert row.id not in {m.id for m in outbox.due(row.due_at + ob.CLAIM_S - 1)}
    [again] = [m for m in outbox.due(row.due_at + ob.CLAIM_S + 1) if m.id == row.id]
    assert again.status == ob.SENDING and again.claimed_at == row.due_at
    assert outbox.claim_many([again], "alive", row.due_at + ob.CLAIM_S + 1) == [again]


def test_status_callbacks_record_delivery_and_never_go_backwards(url):
    appointment = book(url)
    row = ob.messages_for_appointment(appointment.id, url=url)[0]
    outbox = ob.Outbox(url)
    outbox.claim_many([row], "w", NOW)
    outbox.finish_many([(row.id, ob.Outbox.sent("hello", "SMabc", NOW, NOW))], "w")
    assert not outbox.record_status(row.id, "SMother", "delivered", None, NOW)  # another message's sid
    assert not outbox.record_status(row.id, "SMabc", "sent", None, NOW)
    assert outbox.record_status(row.id, "SMabc", "delivered", None, NOW + 5)
    assert outbox.record_status(row.id, "SMabc", "undelivered", "30003", NOW + 9)  # a later carrier report
    stored = ob.messages_for_appointment(appointment.id, url=url)[0]
    assert stored.status == ob.FAILED and "30003" in stored.last_error and stored.delivered_at == NOW + 5


def test_the_worker_reads_the_sms_channels_stop_record(tmp_path):
    from bot.channels.sms import SmsStateStore

    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    reader = OptOutReader(state_url)
    assert reader.is_opted_out("+13125550142") is False  # no table yet: nobody has texted STOP
    channel = SmsStateStore(state_url, redis_url="")
    channel.set_opted_out("+13125550142", True)
    assert reader.is_opted_out("+13125550142") is True
    channel.set_opted_out("+13125550142", False)
    assert reader.is_opted_out("+13125550142") is False


def test_status_callback_url_follows_the_sms_webhook(monkeypatch):
    monkeypatch.delenv("OUTREACH_STATUS_URL", raising=False)
    monkeypatch.setenv("TWILIO_WEBHOOK_URL", "https://clinic.example.org/webhooks/sms/webhook")
    assert status_callback_url(7) == "https://clinic.example.org/webhooks/sms/status?outreach_message=7"
    monkeypatch.setenv("OUTREACH_STATUS_URL", "https://status.example.org/cb?x=1")
    assert status_callback_url(7) == "https://status.example.org/cb?x=1&outreach_message=7"
    monkeypatch.delenv("OUTREACH_STATUS_URL")
    monkeypatch.delenv("TWILIO_WEBHOOK_URL")
    assert status_callback_url(7) is None


def test_a_reply_is_read_as_a_checkin_answer_only_after_a_recent_checkin(url, monkeypatch):
    monkeypatch.setenv("OUTREACH_DB_URL", url)
    appointment = book(url)
    checkin = [m for m in ob.messages_for_appointment(appointment.id, url=url) if m.kind == ob.CHECKIN][0]
    outbox = ob.Outbox(url)
    outbox.claim_many([checkin], "w", checkin.due_at)
    outbox.finish_many([(checkin.id, ob.Outbox.sent("How are you?", "SM1", checkin.due_at, checkin.due_at))], "w")
    slot = {"kind": "checkin", "sent_at": checkin.due_at}
    assert recent_checkin("anyone", slot, now=checkin.due_at + 60)
    assert not recent_checkin("anyone", {"kind": "reminder", "sent_at": checkin.due_at}, now=checkin.due_at + 60)
    assert recent_checkin(appointment.phone, None, now=checkin.due_at + 3600)  # a new session: the outbox knows
    assert not recent_checkin(appointment.phone, None, now=checkin.due_at + CHECKIN_CONTEXT_S + 60)
    assert not recent_checkin("+13125559999", None, now=checkin.due_at + 60)
    assert not recent_checkin("web-session-id", None, now=checkin.due_at + 60)


def test_unanswered_checkins_come_from_the_tracker_stores_events(url, tmp_path):
    tracker_url = f"sqlite:///{tmp_path / 'tracker.db'}"
    engine = sa.create_engine(tracker_url, future=True)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id TEXT, type_name TEXT, "
                                   "timestamp FLOAT, intent_name TEXT, action_name TEXT, data TEXT)"))
    outbox = ob.Outbox(url)
    sent = {}
    for phone in ("312 555 0160", "312 555 0161", "312 555 0162"):
        appointment = book(url, phone=phone)
        checkin = [m for m in ob.messages_for_appointment(appointment.id, url=url) if m.kind == ob.CHECKIN][0]
        outbox.claim_many([checkin], "w", checkin.due_at)
        outbox.finish_many([(checkin.id, ob.Outbox.sent("How are you?", "SM", checkin.due_at, checkin.due_at))], "w")
        sent[appointment.phone] = checkin.due_at
    replied, before, silent = sent
    with engine.begin() as connection:
        for phone, at in ((replied, sent[replied] + 600), (before, sent[before] - 600)):
            connection.execute(sa.text("INSERT INTO events (sender_id, type_name, timestamp, data) "
                                       "VALUES (:s, 'user', :t, :d)"), {"s": phone, "t": at, "d": json.dumps({})})
    window = load_schedule().checkin_no_reply.total_seconds()
    later = sent[silent] + window + 60
    listed = ob.unanswered_checkins(now=later, url=url, tracker_url=tracker_url)
    assert {item.phone for item in listed} == {before, silent}  # a message before the check-in is no answer
    assert all(item.waiting_s >= window and item.procedure == "lumbar" for item in listed)
    assert ob.unanswered_checkins(now=sent[silent] + window - 60, url=url, tracker_url=tracker_url) == []


def test_a_status_callback_before_the_send_is_recorded_is_kept(url):
    first, second = book(url, phone="312 555 0170"), book(url, phone="312 555 0171")
    outbox = ob.Outbox(url)
    rows = [ob.messages_for_appointment(a.id, url=url)[0] for a in (first, second)]
    outbox.claim_many(rows, "w", NOW)
    assert outbox.record_status(rows[0].id, "SM1", "delivered", None, NOW + 1)  # Twilio was quicker than us
    assert outbox.record_status(rows[1].id, "SM2", "undelivered", "30005", NOW + 1)
    outbox.finish_many([(rows[0].id, ob.Outbox.sent("a", "SM1", NOW, NOW)),
                        (rows[1].id, ob.Outbox.sent("b", "SM2", NOW, NOW))], "w")
    delivered, failed = (ob.messages_for_appointment(a.id, url=url)[0] for a in (first, second))
    assert (delivered.status, delivered.body, delivered.last_error) == (ob.DELIVERED, "a", None)
    assert (failed.status, failed.body) == (ob.FAILED, "b") and "30005" in failed.last_error


def test_consent_withdrawn_cancels_the_waiting_texts_and_given_again_brings_them_back(url):
    appointment = book(url, phone="312 555 0180")
    store = ap.AppointmentStore(url)
    no = ap.check_values(appointment.phone, "lumbar", "2027-03-16", "09:30", "America/Chicago", "no", now=NOW)
    store.update(appointment.id, no, by="test", now=NOW + 60)
    assert {(m.status, m.reason) for m in ob.messages_for_appointment(appointment.id, url=url)} == {
        (ob.CANCELLED, ob.NO_CONSENT)}
    yes = ap.check_values(appointment.phone, "lumbar", "2027-03-16", "09:30", "America/Chicago", "yes", now=NOW)
    store.update(appointment.id, yes, by="test", now=NOW + 120)
    rows = ob.messages_for_appointment(appointment.id, url=url)
    assert len(rows) == 4 and {(m.status, m.appointment_version) for m in rows} == {(ob.PENDING, 1)}
