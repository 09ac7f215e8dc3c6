"""Alert delivery against a real SMTP server (aiosmtpd) and the stand-in for Twilio's REST API: the worker's
loop from a stored escalation to the e-mail and SMS, office-hours and after-hours recipients, retries with
a growing pause while the server refuses, and `failed` (visible to the review app) when it never accepts."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from bot.alerts.delivery import DeliveryError, send_sms
from bot.alerts.store import FAILED, RETRYING, SENT, AlertStore, alert_status_by_conversation, alerts_for_conversation
from bot.alerts.worker import AlertWorker
from bot.devtools.alert_sinks import FakeTwilio, SmtpSink
from bot.devtools.stack import wait_until

from .test_alert_parts import EMERGENCY_ENTITIES, add_event, make_events_table, user_event

pytestmark = pytest.mark.server
ON_CALL = "+15550100199"


@pytest.fixture()
def sinks():
    with SmtpSink() as smtp, FakeTwilio() as twilio:
        yield smtp, twilio


@pytest.fixture()
def make_worker(tmp_path, monkeypatch, sinks):
    smtp, twilio = sinks
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    monkeypatch.setenv("ALERT_SMTP_URL", smtp.url)
    monkeypatch.setenv("ALERT_ON_CALL_PHONE", ON_CALL)
    monkeypatch.setenv("REVIEW_PUBLIC_URL", "https://review.example")
    monkeypatch.setenv("REVIEW_TIMEZONE", "America/Chicago")
    for name, value in twilio.env().items():
        monkeypatch.setenv(name, value)
    db = make_events_table(tmp_path / "tracker.db")

    def make(**options) -> AlertWorker:
        worker = AlertWorker(AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}"), f"sqlite:///{tmp_path / 'tracker.db'}",
                             broker_url="", poll_s=0.5, **options)
        worker.sweep_once()  # first start
        return worker

    make.db = db
    return make


def deliver_due(worker: AlertWorker) -> None:
    for delivery in worker.store.due():
        worker.deliver(delivery)


def test_the_worker_loop_delivers_a_new_escalation_by_email_and_sms(make_worker, sinks):
    smtp, twilio = sinks
    worker = make_worker()
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(stop),), daemon=True)
    thread.start()
    try:
        add_event(make_worker.db, "p1", user_event("a", EMERGENCY_ENTITIES, timestamp=time.time()))
        wait_until(lambda: smtp.received() and twilio.received(), 30, "the alert")
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
    assert not thread.is_alive()
    mail, sms = smtp.received()[0], twilio.received()[0]
    assert "Transcript: https://review.example/conversations/1" in mail.body and "CST" in mail.body
    assert sms.to == ON_CALL and sms.sender == "+15550108888"
    assert alert_status_by_conversation(["p1"], worker.store.url) == {"p1": SENT}


def test_office_hours_and_after_hours_recipients(make_worker, sinks, monkeypatch):
    smtp, _ = sinks
    monkeypatch.setenv("ALERT_EMAIL_TO", "desk@clinic.example")
    monkeypatch.setenv("ALERT_AFTER_HOURS_EMAIL_TO", "night@clinic.example")
    worker = make_worker()
    monday_10am = 1796659200  # Mon 7 Dec 2026 16:00 UTC = 10:00 in Chicago (UTC-6 in December)
    sunday_10am = monday_10am - 86400
    add_event(make_worker.db, "day", user_event("a", EMERGENCY_ENTITIES, timestamp=monday_10am, message_id="d"))
    add_event(make_worker.db, "night", user_event("a", EMERGENCY_ENTITIES, timestamp=sunday_10am, message_id="n"))
    worker.sweep_once()
    deliver_due(worker)
    by_subject_time = {mail.recipients[0]: mail.body for mail in smtp.received()}
    assert set(by_subject_time) == {"desk@clinic.example", "night@clinic.example"}
    assert "Mon 07 Dec 2026, 10:00:00 CST" in by_subject_time["desk@clinic.example"]
    assert "Sun 06 Dec 2026, 10:00:00 CST" in by_subject_time["night@clinic.example"]


def test_a_refusing_smtp_server_is_retried_with_backoff_then_the_alert_goes_out_once(make_worker, sinks):
    smtp, twilio = sinks
    worker = make_worker(retry_base_s=0.2, max_attempts=5)
    smtp.refuse = True
    add_event(make_worker.db, "p1", user_event("a", EMERGENCY_ENTITIES, timestamp=time.time()))
    worker.sweep_once()
    deliver_due(worker)
    assert alert_status_by_conversation(["p1"], worker.store.url) == {"p1": RETRYING}
    assert len(twilio.received()) == 1 and worker.store.due() == []  # SMS went out; e-mail waits for its pause
    time.sleep(0.25)
    deliver_due(worker)  # second attempt, still refused; the next pause is twice as long
    time.sleep(0.25)
    assert worker.store.due() == []
    smtp.refuse = False
    wait_until(lambda: bool(worker.store.due()), 5, "the third attempt")
    deliver_due(worker)
    deliver_due(worker)
    assert len(smtp.received()) == 1 and len(twilio.received()) == 1
    email = next(d for d in alerts_for_conversation("p1", worker.store.url)[0].deliveries if d.method == "email")
    assert (email.status, email.attempts) == (SENT, 3) and "451" in email.last_error


def test_a_delivery_that_never_succeeds_is_marked_failed_for_the_review_app(make_worker, sinks):
    _, twilio = sinks
    twilio.status_override = 500
    worker = make_worker(retry_base_s=0.05, max_attempts=3)
    add_event(make_worker.db, "p1", user_event("a", EMERGENCY_ENTITIES, timestamp=time.time()))
    worker.sweep_once()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and alert_status_by_conversation(["p1"], worker.store.url)["p1"] != FAILED:
        deliver_due(worker)
        time.sleep(0.05)
    alert = alerts_for_conversation("p1", worker.store.url)[0]
    assert alert.status == FAILED
    sms = next(d for d in alert.deliveries if d.method == "sms")
    assert (sms.status, sms.attempts) == (FAILED, 3) and "500" in sms.last_error
    assert next(d for d in alert.deliveries if d.method == "email").status == SENT


def test_twilio_refuses_a_wrong_token(sinks):
    _, twilio = sinks
    with pytest.raises(DeliveryError, match="401"):
        send_sms(twilio.url, twilio.account_sid, "wrong", "+15550108888", ON_CALL, "hello")
    assert send_sms(twilio.url, twilio.account_sid, twilio.auth_token, "+15550108888", ON_CALL, "hello").startswith("SM")
