"""Escalation alerts end to end on `make run`'s path (scripts/run.sh under supervisord, the alert worker one
of its parts): red flags through the real bot reach a real SMTP server (aiosmtpd) and the on-call phone
through Twilio's REST API (a local stand-in for api.twilio.com), through a real RabbitMQ node of the test's
own (so it can be restarted; without rabbitmq-server both workers read the events table and the two
broker-only tests are skipped) - and, through the embedded default, a second worker without RabbitMQ
reading the same tracker store's events table into its own outbox and its own SMTP server.

Exactly once: every escalated message gives one e-mail and one SMS per worker, through a duplicate
broker message, a stopped and a SIGKILLed worker, and a RabbitMQ restart. The tests run in order and
share one stack; the last one checks the totals.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
import uuid

import pytest

from bot.devtools.alert_sinks import FakeTwilio, SmtpSink
from bot.devtools.alert_worker import AlertWorkerProcess, PrivateRabbitMQ
from bot.devtools.red_flags import QUESTION, RED_FLAG, over_rest, over_sms
from bot.devtools.stack import wait_until
from bot.devtools.twilio_requests import TEST_AUTH_TOKEN, new_phone
from bot.vocabulary import EMERGENCY

pytestmark = [pytest.mark.stack, pytest.mark.server]

ON_CALL = "+15550100199"
REVIEW = "https://review.clinic.example"
ALERT_WAIT_S = 60  # the promise: staff hear within a minute
SEEK_CARE_WITHIN_S = 5.0  # the guard's path must stay fast with alerts on (its real numbers: make bench)
sent: list[str] = []  # every escalated conversation of this module, in order


@pytest.fixture(scope="module")
def rabbitmq():
    """A RabbitMQ node of this module's own; None without rabbitmq-server (then both workers read the table)."""
    if not PrivateRabbitMQ.available():
        yield None
        return
    node = PrivateRabbitMQ().start()
    yield node
    node.close()


@pytest.fixture()
def broker(rabbitmq):
    if rabbitmq is None:
        pytest.skip("rabbitmq-server is not installed (scripts/setup_test_deps.sh installs it as root)")
    return rabbitmq


@pytest.fixture(scope="module")
def sinks():
    smtp, table_smtp, twilio = SmtpSink().start(), SmtpSink().start(), FakeTwilio(auth_token=TEST_AUTH_TOKEN).start()
    yield smtp, table_smtp, twilio
    smtp.stop()
    table_smtp.stop()
    twilio.stop()


@pytest.fixture(scope="module")
def stack(rabbitmq, sinks):
    from bot.devtools.supervised import SupervisedStack

    smtp, table_smtp, twilio = sinks
    settings = {"ALERT_ON_CALL_PHONE": ON_CALL, "REVIEW_PUBLIC_URL": REVIEW,
                "ALERT_OFFICE_HOURS": "Mon-Sun 00:00-24:00", "ALERT_EMAIL_TO": "desk@clinic.example"}
    run = SupervisedStack(env={"RABBITMQ_URL": rabbitmq.url if rabbitmq else "", "ALERT_SMTP_URL": smtp.url,
                               **twilio.env(), **settings})
    run.start()
    table_worker = AlertWorkerProcess({
        "VAR_DIR": str(run.var_dir), "TRACKER_DB_URL": f"sqlite:///{run.var_dir / 'tracker.db'}",
        "ALERTS_DB_URL": f"sqlite:///{run.var_dir / 'table-alerts.db'}", "RABBITMQ_URL": "",
        "ALERT_SMTP_URL": table_smtp.url, **settings}, log=run.var_dir / "table-worker.log").start()
    run.table_worker = table_worker
    yield run
    table_worker.stop()
    run.stop()


def ref_of(stack, sender: str) -> int:
    with sqlite3.connect(stack.var_dir / "tracker.db") as db:
        return db.execute("SELECT MIN(id) FROM events WHERE sender_id = ?", (sender,)).fetchone()[0]


def mails_for(sink: SmtpSink, stack, sender: str) -> list:
    link = f"{REVIEW}/conversations/{ref_of(stack, sender)}\n"
    return [mail for mail in sink.received() if link in mail.body]


def texts_for(twilio: FakeTwilio, stack, sender: str) -> list:
    link = f"{REVIEW}/conversations/{ref_of(stack, sender)}"
    return [sms for sms in twilio.received() if sms.body.endswith(link)]


def wait_alerted(stack, sinks, senders: list[str]) -> None:
    """Each conversation's e-mail (both workers) and SMS arrived; then a moment for any duplicate to show."""
    smtp, table_smtp, twilio = sinks
    for sender in senders:
        try:
            wait_until(lambda s=sender: mails_for(smtp, stack, s) and mails_for(table_smtp, stack, s)
                       and texts_for(twilio, stack, s), ALERT_WAIT_S, f"alerts for {sender}")
        except TimeoutError as error:
            raise AssertionError(
                f"{error}\nmails {len(mails_for(smtp, stack, sender))}, table worker mails "
                f"{len(mails_for(table_smtp, stack, sender))}, SMS {len(texts_for(twilio, stack, sender))}\n"
                f"--- alerts.log\n{(stack.var_dir / 'alerts.log').read_text()[-3000:]}\n"
                f"--- table worker\n{stack.table_worker.output()[-3000:]}") from None
    time.sleep(1.5)
    for sender in senders:
        assert len(mails_for(smtp, stack, sender)) == 1, sender
        assert len(mails_for(table_smtp, stack, sender)) == 1, sender
        assert len(texts_for(twilio, stack, sender)) == 1, sender


def escalate(stack, sender: str | None = None) -> str:
    sender = sender or f"alert-{uuid.uuid4().hex[:10]}"
    escalation = over_rest(stack, sender)
    assert escalation.level == EMERGENCY and escalation.seconds < SEEK_CARE_WITHIN_S, escalation
    sent.append(sender)
    return sender


def test_a_red_flag_reaches_staff_once_by_email_and_sms_without_the_patients_words(stack, sinks, rabbitmq):
    smtp, table_smtp, twilio = sinks
    assert stack.status().get("alerts") == "RUNNING"
    sender = f"alert-{uuid.uuid4().hex[:10]}"
    stack.send(sender, QUESTION)  # an ordinary question alerts nobody
    escalate(stack, sender)
    wait_alerted(stack, sinks, [sender])
    mail = mails_for(smtp, stack, sender)[0]
    assert mail.recipients == ["desk@clinic.example"] and "EMERGENCY" in mail.message["Subject"]
    body = mail.body
    for expected in ("Level:      EMERGENCY", "Symptoms:   ", "bladder", "Channel:    REST API", "Time:       ",
                     f"Transcript: {REVIEW}/conversations/{ref_of(stack, sender)}"):
        assert expected in body
    for patient_words in ("peed myself", "shower", RED_FLAG, QUESTION):
        assert patient_words not in body and patient_words not in mail.message["Subject"]
    sms = texts_for(twilio, stack, sender)[0]
    assert sms.to == ON_CALL and "EMERGENCY" in sms.body and "peed myself" not in sms.body
    assert ("Alert recorded from RabbitMQ" if rabbitmq else "Alert recorded from the events table") in (
        stack.var_dir / "alerts.log").read_text()


def test_the_symptom_check_flag_alerts_staff_too(stack, sinks):
    smtp, _, _ = sinks
    sender = f"alert-{uuid.uuid4().hex[:10]}"
    stack.send(sender, "my leg just doesnt feel right since the shot")  # no rule fires: the check-in, flagged
    sent.append(sender)
    wait_alerted(stack, sinks, [sender])
    assert "Level:      Symptom check" in mails_for(smtp, stack, sender)[0].body


def test_an_sms_patients_number_is_not_in_the_alert(stack, sinks):
    smtp, _, twilio = sinks
    phone = new_phone()
    escalation = over_sms(stack, phone)
    assert escalation.level == EMERGENCY and escalation.seconds < SEEK_CARE_WITHIN_S
    sent.append(phone)
    wait_alerted(stack, sinks, [phone])
    mail, sms = mails_for(smtp, stack, phone)[0], texts_for(twilio, stack, phone)[0]
    assert "Channel:    SMS" in mail.body
    for shown in (mail.body, mail.message["Subject"], sms.body):
        assert phone not in shown and phone[-7:] not in shown and phone[-4:] not in shown


def test_a_duplicate_broker_message_sends_no_second_alert(stack, sinks, broker):
    rabbitmq = broker
    sender = escalate(stack)
    wait_alerted(stack, sinks, [sender])
    stored = next(event for event in stack.tracker(sender)["events"]
                  if event["event"] == "user" and event["text"] == RED_FLAG)

    async def publish_again() -> None:
        import aio_pika

        connection = await aio_pika.connect_robust(rabbitmq.url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange("rasa-exchange", aio_pika.ExchangeType.FANOUT)
            for _ in range(2):
                await exchange.publish(aio_pika.Message(json.dumps({"sender_id": sender, **stored}).encode(),
                                                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT), "")

    asyncio.run(publish_again())
    log = stack.var_dir / "alerts.log"
    wait_until(lambda: not _queue_backlog(rabbitmq), 30, "the duplicates consumed")
    time.sleep(2)
    wait_alerted(stack, sinks, [sender])  # still exactly one of each
    assert log.read_text().count("Alert recorded") == len(sent)


def _queue_state(rabbitmq) -> tuple[int, int]:
    """(messages waiting, consumers) of the worker's queue."""
    async def state() -> tuple[int, int]:
        import aio_pika

        connection = await aio_pika.connect(rabbitmq.url)
        async with connection:
            queue = await (await connection.channel()).declare_queue("clinic_alerts", passive=True)
            return queue.declaration_result.message_count, queue.declaration_result.consumer_count

    return asyncio.run(state())


def _queue_backlog(rabbitmq) -> int:
    return _queue_state(rabbitmq)[0]


def test_a_stopped_or_killed_worker_loses_no_alert_and_sends_none_twice(stack, sinks):
    stack.ctl("stop", "alerts")
    while_stopped = [escalate(stack) for _ in range(3)]
    stack.ctl("start", "alerts")
    wait_alerted(stack, sinks, while_stopped)
    old = stack.pid("alerts")
    killed_mid_work = [escalate(stack) for _ in range(2)]
    stack.signal("alerts", signal.SIGKILL)  # a crash, while those may still be in flight
    stack.wait_restarted("alerts", old, 60)
    wait_alerted(stack, sinks, killed_mid_work)


def test_a_rabbitmq_restart_loses_no_alert_and_sends_none_twice(stack, sinks, broker):
    rabbitmq = broker
    rabbitmq.stop()
    while_down = [escalate(stack) for _ in range(2)]
    rabbitmq.start()
    wait_alerted(stack, sinks, while_down)
    # both ends are back on the broker: the bot's publisher reconnected, the worker consumes the queue again
    wait_until(lambda: (stack.var_dir / "rasa.log").read_text().count("RabbitMQ publisher connected") == 2, 60,
               "the bot's publisher reconnected")
    wait_until(lambda: _queue_state(rabbitmq)[1] == 1, 60, "the worker consuming again")
    after = escalate(stack)
    wait_alerted(stack, sinks, [after])


def test_totals_one_alert_per_escalated_message(stack, sinks):
    smtp, table_smtp, twilio = sinks
    assert len(smtp.received()) == len(table_smtp.received()) == len(twilio.received()) == len(sent)
    assert all(len(mails_for(smtp, stack, sender)) == 1 for sender in sent)
