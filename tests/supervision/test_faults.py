"""`make run` under faults: parts that crash are restarted, and a red flag always gets its seek-care message.

One supervised stack (scripts/run.sh: supervisord, action server, Rasa, web demo, review app) on free
ports over PostgreSQL, hurt the way production gets hurt: a part killed, the action server stuck (SIGSTOP:
it accepts connections and never answers), a conversation's previous turn stuck, the tracker database
locked. Every fault is checked on REST, the web chat (socket.io) and SMS (signed Twilio requests), and
the escalation must still reach the tracker once the fault is over. The seek-care *latency* under each
fault is measured by `make bench` (scripts/bench_faults.py); here the bound is only "before the safe-reply
timeout", i.e. the warning did not wait for the stuck part.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
import uuid
from contextlib import contextmanager

import psycopg2
import pytest
from sqlalchemy.engine.url import make_url

from bot.channels.guard import safe_reply_text
from bot.devtools.red_flags import QUESTION, over_rest, over_sms, over_web
from bot.devtools.stack import http_json, wait_until
from bot.devtools.supervised import PARTS, listening_addresses
from bot.devtools.twilio_requests import new_phone, post_sms, twilio_params
from bot.vocabulary import EMERGENCY

from .conftest import REPLY_TIMEOUT_S

pytestmark = [pytest.mark.stack, pytest.mark.postgres]


def sender() -> str:
    return f"fault-{uuid.uuid4().hex[:12]}"


def assert_warned_in_time(escalation) -> None:
    assert escalation.level == EMERGENCY, (escalation.channel, escalation.texts)
    assert escalation.seconds < REPLY_TIMEOUT_S, (escalation.channel, escalation.seconds)


def wait_escalation_recorded(stack, conversation: str, timeout_s: float = 90) -> None:
    wait_until(lambda: stack.tracker(conversation)["slots"].get("triage_level") == EMERGENCY, timeout_s,
               f"triage_level recorded for {conversation}")


@contextmanager
def actions_stopped(stack):
    """The action server frozen (SIGSTOP): its socket still accepts connections, nothing ever answers."""
    pid = stack.signal("actions", signal.SIGSTOP)
    try:
        yield pid
    finally:
        stack.signal("actions", signal.SIGCONT)


@contextmanager
def events_table_locked(db_url: str):
    """Another session holds an exclusive lock on the tracker's events table: every read and write waits."""
    url = make_url(db_url)
    connection = psycopg2.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                                  dbname=url.database)
    try:
        connection.cursor().execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        connection.rollback()
        connection.close()


def in_background(function, *args):
    thread = threading.Thread(target=function, args=args, daemon=True)
    thread.start()
    return thread


def test_every_part_runs_supervised_and_the_action_server_is_local_only(run_stack):
    assert run_stack.status() == {name: "RUNNING" for name in PARTS}
    assert listening_addresses(run_stack.ports["actions"]) == {"127.0.0.1"}
    with socket.socket() as probe:  # its address is loopback, whatever other interfaces the machine has
        probe.settimeout(2)
        probe.connect(("127.0.0.1", run_stack.ports["actions"]))


def test_a_killed_action_server_is_restarted_and_red_flags_meanwhile_get_seek_care(run_stack):
    before = run_stack.pids()
    restarts = run_stack.restarts("actions")
    run_stack.signal("actions", signal.SIGKILL)
    rest, phone = sender(), new_phone()
    escalations = [over_rest(run_stack, rest), over_sms(run_stack, phone), over_web(run_stack)[1]]
    for escalation in escalations:
        assert_warned_in_time(escalation)
    new_pid = run_stack.wait_restarted("actions", before["actions"], 120)
    assert new_pid != before["actions"] and run_stack.restarts("actions") == restarts + 1
    after = run_stack.pids()
    assert {name: after[name] for name in ("rasa", "web", "review")} == {
        name: before[name] for name in ("rasa", "web", "review")}  # the rest kept serving
    assert all(run_stack.part_ok(name) for name in ("web", "review")) and run_stack.rasa_ready()
    wait_escalation_recorded(run_stack, rest)
    wait_escalation_recorded(run_stack, phone)
    _, answer = run_stack.send(sender(), QUESTION)  # a custom action answers again
    assert answer and safe_reply_text() not in [m.get("text") for m in answer]


@pytest.mark.parametrize("part", ["web", "review"])
def test_a_killed_web_demo_or_review_app_is_restarted_while_the_bot_keeps_answering(run_stack, part):
    before = run_stack.pids()
    run_stack.signal(part, signal.SIGKILL)
    assert_warned_in_time(over_rest(run_stack, sender()))
    run_stack.wait_restarted(part, before[part], 60)
    after = run_stack.pids()
    assert {n: after[n] for n in PARTS if n != part} == {n: before[n] for n in PARTS if n != part}
    assert f"exited: {part} (terminated by SIGKILL" in run_stack.supervisor_log()


def test_a_stuck_action_server_does_not_hold_back_the_warning(run_stack):
    rest, phone = sender(), new_phone()
    with actions_stopped(run_stack):
        escalations = [over_rest(run_stack, rest), over_sms(run_stack, phone)]
        web_session, web = over_web(run_stack)
        escalations.append(web)
        for escalation in escalations:
            assert_warned_in_time(escalation)
            assert sum(text.count("This could be serious") for text in escalation.texts) <= 1  # never twice
    for conversation in (rest, phone, web_session):  # recorded once the action server runs again
        wait_escalation_recorded(run_stack, conversation)


def test_a_red_flag_behind_a_stuck_turn_of_the_same_conversation_gets_seek_care(run_stack):
    """Rasa's lock store makes the second message wait for the first; the guard's clock starts on arrival."""
    rest, phone = sender(), new_phone()
    with actions_stopped(run_stack):
        first_turns = [
            in_background(run_stack.send, rest, QUESTION),
            in_background(post_sms, run_stack.sms_url, twilio_params(phone, QUESTION)),
        ]
        time.sleep(0.5)  # the first turns hold the conversations' locks
        escalations = [over_rest(run_stack, rest), over_sms(run_stack, phone)]
        web_session, web = over_web(run_stack, before=QUESTION)
        escalations.append(web)
        for escalation in escalations:
            assert_warned_in_time(escalation)
        for thread in first_turns:
            thread.join(REPLY_TIMEOUT_S + 10)
    for conversation in (rest, phone, web_session):
        wait_escalation_recorded(run_stack, conversation)


def test_a_locked_tracker_database_does_not_hold_back_the_warning(run_stack, fault_db_url):
    known_rest, known_phone = sender(), new_phone()
    run_stack.send(known_rest, "hello")  # conversations that exist before the database stalls
    post_sms(run_stack.sms_url, twilio_params(known_phone, "hello"))
    new_rest, new_sms = sender(), new_phone()
    with events_table_locked(fault_db_url):
        escalations = [over_rest(run_stack, known_rest), over_sms(run_stack, known_phone),
                       over_rest(run_stack, new_rest), over_sms(run_stack, new_sms)]
        web_session, web = over_web(run_stack)
        escalations.append(web)
        status, _ = http_json("GET", f"{run_stack.url}/status?token={run_stack.token}", timeout=5)
        assert status == 200  # the server as a whole is not frozen
        for escalation in escalations:
            assert_warned_in_time(escalation)
    for conversation in (known_rest, known_phone, new_rest, new_sms, web_session):
        wait_escalation_recorded(run_stack, conversation)


def test_a_killed_rasa_server_is_restarted_while_the_web_demo_and_review_app_keep_serving(run_stack):
    before = run_stack.pids()
    run_stack.signal("rasa", signal.SIGKILL)
    assert run_stack.part_ok("web") and run_stack.part_ok("review")
    run_stack.wait_restarted("rasa", before["rasa"], 240)
    after = run_stack.pids()
    assert {n: after[n] for n in PARTS if n != "rasa"} == {n: before[n] for n in PARTS if n != "rasa"}
    assert "exited: rasa (terminated by SIGKILL" in run_stack.supervisor_log()
    assert_warned_in_time(over_rest(run_stack, sender()))
