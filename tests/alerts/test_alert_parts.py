"""bot/alerts without servers: which message is an escalation, the alert settings, the outbox's exactly-once
and retry bookkeeping and its read API for the review app, the incremental read of the events table, and
what an alert says (and does not say)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from bot import config
from bot.alerts import store as alert_store
from bot.alerts.delivery import alert_text, compose_email, compose_sms, transcript_link
from bot.alerts.detect import SYMPTOM_CHECK_LEVEL, escalation_from_event
from bot.alerts.store import (
    EMAIL,
    FAILED,
    NOT_CONFIGURED,
    PENDING,
    RETRYING,
    SENT,
    SMS,
    AlertStore,
    alert_status_by_conversation,
    alerts_for_conversation,
    retry_delay_s,
)
from bot.alerts.worker import EVENTS_CURSOR, AlertWorker
from bot.datafile import DataFileError
from bot.settings import load_alert_settings


def user_event(text: str = "x", entities: list | None = None, message_id: str | None = "m1", **extra) -> dict:
    return {"event": "user", "timestamp": 1_800_000_000.5, "text": text, "message_id": message_id,
            "input_channel": "rest", "parse_data": {"intent": {"name": "greet"}, "entities": entities or []}, **extra}


EMERGENCY_ENTITIES = [{"entity": "triage_level", "value": "emergency"},
                      {"entity": "symptom", "value": "bladder_bowel"}, {"entity": "symptom", "value": "saddle_numbness"}]


# --- detect -----------------------------------------------------------------------------------------------
def test_an_escalated_user_event_gives_level_symptoms_channel_and_a_stable_key():
    escalation = escalation_from_event(user_event(entities=EMERGENCY_ENTITIES), "p1")
    assert (escalation.level, escalation.symptoms, escalation.channel) == (
        "emergency", ("bladder_bowel", "saddle_numbness"), "rest")
    assert escalation.key == escalation_from_event({**user_event(entities=EMERGENCY_ENTITIES), "sender_id": "p1"}).key
    assert escalation.key != escalation_from_event(user_event(entities=EMERGENCY_ENTITIES, message_id="m2"), "p1").key
    assert escalation.key != escalation_from_event(user_event(entities=EMERGENCY_ENTITIES), "p2").key


def test_emergency_wins_and_the_symptom_check_flag_counts():
    both = [{"entity": "triage_level", "value": "urgent"}, {"entity": "triage_level", "value": "emergency"}]
    assert escalation_from_event(user_event(entities=both), "p").level == "emergency"
    flagged = escalation_from_event(user_event(entities=[{"entity": "symptom_check", "value": True}]), "p")
    assert flagged.level == SYMPTOM_CHECK_LEVEL and flagged.symptoms == ()


@pytest.mark.parametrize("event", [
    user_event(), {"event": "bot", "text": "hi"}, {"event": "slot", "name": "triage_level", "value": "urgent"},
    user_event(entities=[{"entity": "triage_level", "value": "mild"}]), {"event": "user", "parse_data": "junk"},
    "not a dict", {}, user_event(entities=["junk", {"entity": "procedure", "value": "lumbar"}]),
])
def test_ordinary_messages_other_events_and_junk_are_not_escalations(event):
    assert escalation_from_event(event, "p") is None


def test_an_event_without_message_id_is_keyed_by_its_time():
    first = escalation_from_event(user_event(entities=EMERGENCY_ENTITIES, message_id=None), "p")
    later = escalation_from_event({**user_event(entities=EMERGENCY_ENTITIES, message_id=None), "timestamp": 2e9}, "p")
    assert first.key != later.key


# --- settings --------------------------------------------------------------------------------------------------
def test_alert_settings_from_the_clinic_file_with_overrides_and_office_hours():
    settings = load_alert_settings(environ={})
    assert settings.email_to and settings.email_from and settings.after_hours_email_to
    settings = load_alert_settings(environ={"ALERT_EMAIL_TO": "a@x.example, b@x.example",
                                            "ALERT_ON_CALL_PHONE": "+15550100199",
                                            "ALERT_OFFICE_HOURS": "Mon-Fri 08:00-17:00, Sat 09:00-12:00"})
    assert settings.email_to == ("a@x.example", "b@x.example") and settings.on_call_phone == "+15550100199"
    chicago = ZoneInfo("America/Chicago")
    assert settings.recipients_at(datetime(2026, 12, 7, 9, 0, tzinfo=chicago)) == settings.email_to  # Monday
    assert settings.recipients_at(datetime(2026, 12, 7, 17, 0, tzinfo=chicago)) == settings.after_hours_email_to
    assert settings.recipients_at(datetime(2026, 12, 12, 11, 59, tzinfo=chicago)) == settings.email_to  # Saturday
    assert settings.recipients_at(datetime(2026, 12, 13, 10, 0, tzinfo=chicago)) == settings.after_hours_email_to


@pytest.mark.parametrize(("variable", "value", "field"), [
    ("ALERT_EMAIL_TO", "front desk", "email_to"), ("ALERT_ON_CALL_PHONE", "555-0100", "on_call_phone"),
    ("ALERT_OFFICE_HOURS", "weekdays 8-5", "office_hours"), ("ALERT_OFFICE_HOURS", "Mon-Fri 17:00-08:00", "office_hours"),
    ("ALERT_EMAIL_FROM", "a@x.example,b@x.example", "email_from"), ("ALERT_OFFICE_HOURS", "Mon 25:00-26:00", "office_hours"),
])
def test_unusable_alert_settings_are_named(variable, value, field):
    with pytest.raises(DataFileError, match=f"alerts', field '{field}'.*environment variable {variable}"):
        load_alert_settings(environ={variable: value})


def test_unknown_alert_setting_is_named(tmp_path):
    path = tmp_path / "clinic.yml"
    path.write_text("alerts:\n  email_from: a@x.example\n  email_to: [b@x.example]\n  office_hours: Mon 08:00-17:00\n"
                    "  pager: 1\n")
    with pytest.raises(DataFileError, match="pager"):
        load_alert_settings(path, environ={})


def test_alert_connection_settings(monkeypatch):
    monkeypatch.setenv("ALERT_SMTP_URL", "http://user:hunter2@mail.example")
    with pytest.raises(config.ConfigError) as error:
        config.alert_smtp_url()
    assert "hunter2" not in str(error.value) and "ALERT_SMTP_URL" in str(error.value)
    monkeypatch.setenv("ALERT_SMTP_URL", "smtp+starttls://u:p@mail.example:587")
    assert config.alert_smtp_url() == "smtp+starttls://u:p@mail.example:587"
    monkeypatch.setenv("RABBITMQ_URL", "redis://localhost")
    with pytest.raises(config.ConfigError, match="RABBITMQ_URL"):
        config.rabbitmq_url()
    monkeypatch.delenv("RABBITMQ_URL")
    assert config.rabbitmq_url() is None
    monkeypatch.setenv("ALERT_POLL_S", "0.1")
    with pytest.raises(config.ConfigError, match="ALERT_POLL_S"):
        config.alert_poll_s()


# --- outbox ----------------------------------------------------------------------------------------------------
@pytest.fixture()
def outbox(tmp_path):
    return AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}")


def test_the_same_escalation_is_recorded_once(outbox):
    escalation = escalation_from_event(user_event(entities=EMERGENCY_ENTITIES), "p1")
    assert outbox.record(escalation, [EMAIL, SMS]) is True
    assert outbox.record(escalation, [EMAIL, SMS]) is False
    assert AlertStore(outbox.url).record(escalation, [EMAIL]) is False  # another worker / a restarted one
    assert [(d.method, d.status) for d in alerts_for_conversation("p1", outbox.url)[0].deliveries] == [
        (EMAIL, PENDING), (SMS, PENDING)]
    assert len(outbox.due()) == 2


def test_a_delivery_is_claimed_by_one_worker_only_and_a_dead_workers_claim_expires(outbox):
    outbox.record(escalation_from_event(user_event(entities=EMERGENCY_ENTITIES), "p1"), [EMAIL])
    due = outbox.due(now=2e9)[0]
    assert outbox.claim(due, now=2e9) is True
    assert outbox.claim(due, now=2e9) is False
    assert outbox.due(now=2e9 + 1) == []  # being sent
    again = outbox.due(now=2e9 + alert_store.CLAIM_S + 1)  # its worker died mid-send
    assert len(again) == 1 and again[0].attempts == 1


def test_failed_attempts_back_off_then_fail_and_the_review_app_sees_it(outbox):
    outbox.record(escalation_from_event(user_event(entities=EMERGENCY_ENTITIES), "p1"), [EMAIL])
    outbox.record(escalation_from_event(user_event(entities=EMERGENCY_ENTITIES), "p2"), [EMAIL])
    outbox.record(escalation_from_event(user_event(entities=EMERGENCY_ENTITIES), "p3"), [])
    now = 2e9
    for attempt in range(1, 4):
        delivery = next(d for d in outbox.due(now=now) if d.alert.conversation_id == "p1")
        assert outbox.claim(delivery, now=now)
        status = outbox.mark_failed_attempt(delivery, "SMTP down", max_attempts=3, base_delay_s=5, now=now)
        assert status == (FAILED if attempt == 3 else PENDING)
        if attempt < 3:
            assert alert_status_by_conversation(["p1"], outbox.url) == {"p1": RETRYING}
            assert not [d for d in outbox.due(now=now + retry_delay_s(attempt, 5) - 0.1)
                        if d.alert.conversation_id == "p1"]
            now += retry_delay_s(attempt, 5)
    delivery = next(d for d in outbox.due(now=now) if d.alert.conversation_id == "p2")
    assert outbox.claim(delivery, now=now)
    outbox.mark_sent(delivery, now=now)
    assert alert_status_by_conversation(["p1", "p2", "p3", "nobody"], outbox.url) == {
        "p1": FAILED, "p2": SENT, "p3": NOT_CONFIGURED}
    failed = alerts_for_conversation("p1", outbox.url)[0]
    assert failed.status == FAILED and failed.deliveries[0].attempts == 3 and failed.deliveries[0].last_error == "SMTP down"
    assert [d.alert.conversation_id for d in outbox.due(now=now + 1e6)] == []  # given up: not retried


def test_backoff_doubles_up_to_five_minutes():
    assert [retry_delay_s(n, 5) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert retry_delay_s(20, 5) == 300


def test_reading_without_an_alerts_database_shows_nothing_and_creates_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'none.db'}"
    assert alerts_for_conversation("p1", url) == [] and alert_status_by_conversation(["p1"], url) == {}
    with sqlite3.connect(tmp_path / "none.db") as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == []


# --- the events table, read incrementally -------------------------------------------------------------------
def make_events_table(path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, sender_id VARCHAR(255), type_name VARCHAR(255),"
               " timestamp FLOAT, intent_name VARCHAR(255), action_name VARCHAR(255), data TEXT)")
    return db


def add_event(db: sqlite3.Connection, sender: str, event: dict) -> None:
    db.execute("INSERT INTO events (sender_id, type_name, timestamp, data) VALUES (?, ?, ?, ?)",
               (sender, event.get("event"), event.get("timestamp"), json.dumps(event)))
    db.commit()


def test_the_worker_reads_only_new_escalations_from_the_events_table(tmp_path, monkeypatch):
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    db = make_events_table(tmp_path / "tracker.db")
    add_event(db, "old", user_event(entities=EMERGENCY_ENTITIES))  # before the worker's first start
    worker = AlertWorker(AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}"), f"sqlite:///{tmp_path / 'tracker.db'}",
                         broker_url="", poll_s=1)
    assert worker.sweep_once() == 0  # first start: from now on, the past is not alerted
    assert worker.store.cursor(EVENTS_CURSOR) == 1
    add_event(db, "p1", user_event("can i drive"))
    add_event(db, "p1", {"event": "bot", "text": "yes", "timestamp": 1.0})
    add_event(db, "p1", user_event(entities=EMERGENCY_ENTITIES, message_id="a"))
    add_event(db, "p2", user_event(entities=[{"entity": "triage_level", "value": "urgent"}], message_id="b"))
    assert worker.sweep_once() == 2
    assert worker.sweep_once() == 0  # the look-back reads them again: nothing new
    restarted = AlertWorker(AlertStore(worker.store.url), f"sqlite:///{tmp_path / 'tracker.db'}", broker_url="")
    assert restarted.sweep_once() == 0  # a restart neither re-sends nor skips
    add_event(db, "p3", user_event(entities=EMERGENCY_ENTITIES, message_id="c"))
    assert restarted.sweep_once() == 1
    assert alert_status_by_conversation(["old", "p1", "p2", "p3"], worker.store.url) == {
        "p1": NOT_CONFIGURED, "p2": NOT_CONFIGURED, "p3": NOT_CONFIGURED}
    assert restarted.reader.conversation_ref("p1") == 2


# --- what an alert says ---------------------------------------------------------------------------------------
def test_the_alert_names_level_symptoms_channel_time_and_link_but_no_words_or_number():
    phone = "+15551234567"
    event = user_event("I peed myself and cannot feel my groin, call me on 555 123 4567", EMERGENCY_ENTITIES,
                       input_channel="sms")
    escalation = escalation_from_event(event, phone)
    text = alert_text(escalation, transcript_link("https://review.example", 42), timezone.utc)
    mail = compose_email(escalation, text, "Riverside", "alerts@x.example", ["desk@x.example"])
    body, subject = mail.get_content(), mail["Subject"]
    assert "EMERGENCY" in subject and "Loss of bladder or bowel control" in body
    assert "Channel:    SMS" in body and "Transcript: https://review.example/conversations/42" in body
    assert "Time:       " in body and "2027" in body
    sms = compose_sms(escalation, text, "Riverside")
    for shown in (body, subject, sms):
        assert "peed" not in shown and "4567" not in shown and "555" not in shown
    assert transcript_link("https://review.example", None) == "https://review.example/conversations"


def test_retention_purge_deletes_old_alerts_of_purged_conversations(outbox):
    old = escalation_from_event(user_event(entities=EMERGENCY_ENTITIES), "+15551234567")
    recent = escalation_from_event({**user_event(entities=EMERGENCY_ENTITIES, message_id="r"), "timestamp": 2e9},
                                   "+15551234567")
    other = escalation_from_event(user_event(entities=EMERGENCY_ENTITIES), "kept")
    for escalation in (old, recent, other):
        outbox.record(escalation, [EMAIL, SMS])
    assert alert_store.purge_alerts(["+15551234567"], before=1.9e9, url=outbox.url) == 1
    assert [a.occurred_at for a in alerts_for_conversation("+15551234567", outbox.url)] == [2e9]
    assert len(alerts_for_conversation("kept", outbox.url)) == 1
    assert len(outbox.due(now=3e9)) == 4  # the deleted alert's deliveries went with it
