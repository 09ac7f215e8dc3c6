"""Several Rasa servers behind nginx over PostgreSQL and Redis (bot/devtools/cluster.py, `make run-cluster`).

Short and bounded (about two minutes with the cluster's start): nginx routes REST and socket.io (sticky), two
servers taking the same conversation at once keep it whole and in order (Rasa #9213), a small locust load is
exactly-once, and a Rasa server killed under load loses nothing. The long runs and the other faults are in
`make bench` (scripts/bench_cluster.py).
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
import uuid
from http.cookies import SimpleCookie

import pytest

from bot.channels.guard import seek_care_level
from bot.devtools.cluster import WORKERS
from bot.devtools.socketio_client import MiniSocketIO
from bot.devtools.stack import http_json, wait_until
from bot.vocabulary import SLOT_TRIAGE_LEVEL, TRIAGE_LEVELS
from loadtest.check import _tracker_events, _turns, client_summary, exactly_once, load_log
from loadtest.run import start_load
from tests.cluster.lock_race import race

pytestmark = [pytest.mark.stack, pytest.mark.cluster]

RED_FLAG = "since the shot yesterday both my legs are numb and weak and I can't pee"
QUESTION = "can I drive myself home after the injection"


def post(base_url: str, token: str, sender: str, text: str) -> tuple[int, object]:
    return http_json("POST", f"{base_url}/webhooks/rest/webhook?token={token}", {"sender": sender, "message": text})


def has_seek_care(reply: object) -> bool:
    return isinstance(reply, list) and any(isinstance(m, dict) and seek_care_level(m) for m in reply)


def test_nginx_spreads_rest_over_the_servers(cluster):
    before = len(cluster.upstreams_used())
    for turn in range(6):
        status, reply = post(cluster.url, cluster.token, f"spread-{uuid.uuid4().hex[:8]}", QUESTION)
        assert status == 200 and reply, (turn, status, reply)
    used = set(cluster.upstreams_used()[before:])
    assert used == {f"127.0.0.1:{port}" for port in cluster.rasa_ports}


def test_rest_without_the_token_is_refused_through_nginx(cluster):
    status, _ = http_json("POST", f"{cluster.url}/webhooks/rest/webhook", {"sender": "x", "message": "hi"})
    assert status == 401


def test_socketio_through_nginx_answers_and_escalates(cluster):
    async def talk() -> list[dict]:
        async with MiniSocketIO(cluster.url) as client:
            sid = await client.session(None)
            await client.emit("user_uttered", {"message": RED_FLAG, "session_id": sid})
            events = [await client.receive("bot_uttered", 20)]
            while not any(seek_care_level(event) for event in events):  # the seek-care message may come second
                events.append(await client.receive("bot_uttered", 10))
            return events

    events = asyncio.run(talk())
    assert any(seek_care_level(event) for event in events), events


def test_socketio_polling_sessions_stay_on_one_server(cluster):
    """engine.io long-polling needs every request of a session on the server that made it: the cookie does it."""

    def polling_session(cookie: str | None) -> str:
        base = f"{cluster.url}/socket.io/?EIO=4&transport=polling"
        headers = {"Cookie": f"clinic_route={cookie}"} if cookie else {}
        with urllib.request.urlopen(urllib.request.Request(base, headers=headers), timeout=10) as reply:
            body = reply.read().decode()
            set_cookie = SimpleCookie(reply.headers.get("Set-Cookie", ""))
        route = cookie or set_cookie["clinic_route"].value
        sid = body[body.index('"sid":"') + 7:].split('"')[0]
        headers = {"Cookie": f"clinic_route={route}"}

        def exchange(packet: str, expect: str) -> None:
            request = urllib.request.Request(f"{base}&sid={sid}", data=packet.encode(), headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=10) as reply:
                assert reply.status == 200
            for _ in range(5):  # the server made the session: any other server answers 400 "Invalid session"
                with urllib.request.urlopen(urllib.request.Request(f"{base}&sid={sid}", headers=headers), timeout=30) as reply:
                    if expect in reply.read().decode():
                        return
            raise AssertionError(f"no {expect!r} after {packet!r}")

        exchange("40", "40")
        for _ in range(3):
            exchange('42["session_request",{"session_id":null}]', "session_confirm")
        return route

    assert polling_session(None)  # no cookie yet: nginx routes by address and sets the cookie
    before = len(cluster.upstreams_used())
    # different patients' cookies spread over the servers (consistent hashing: with 8, all on one server
    # happened about 1 run in 100; with 24, about 1 in 10 million), each session staying on one
    for index in range(24):
        polling_session(f"patient-{index}")
    assert len(set(cluster.upstreams_used()[before:])) == len(cluster.rasa_ports)


def test_redis_lock_lets_one_server_in_at_a_time(cluster):
    """Two processes racing for one conversation's lock on the cluster's Redis: never both inside."""
    outcome = race("atomic", cluster.redis_url, rounds=60)
    assert outcome == {"entries": 120, "overlaps": 0, "errors": 0, "stalls": 0}


def test_same_conversation_on_two_servers_at_once_is_handled_whole_and_in_order(cluster):
    """Rasa #9213: a red flag to server 0 and a question to server 1 in one conversation. Even pairs: both at
    the same moment (either may go first; each message once, each turn whole). Odd pairs: the question is sent
    while server 0 is working on the red flag (its ticket is in Redis): it must wait and come second."""
    import redis

    red = redis.Redis.from_url(cluster.redis_url)
    pairs = 12
    senders = [f"race-{uuid.uuid4().hex[:8]}-{i}" for i in range(pairs)]
    replies: dict[tuple[str, str], object] = {}
    barrier = threading.Barrier(pairs + pairs // 2)

    def send(server: int, sender: str, text: str) -> None:
        status, reply = post(cluster.server_url(server), cluster.token, sender, text)
        replies[(sender, text)] = reply if status == 200 else status

    def at_once(sender: str, server: int, text: str) -> None:
        barrier.wait()
        send(server, sender, text)

    def while_first_is_served(sender: str) -> None:
        barrier.wait()
        first = threading.Thread(target=send, args=(0, sender, RED_FLAG))
        first.start()
        deadline = time.monotonic() + 20
        while not red.exists(f"spineclinic:convlock:{sender}:queue") and first.is_alive() and time.monotonic() < deadline:
            time.sleep(0.002)
        send(1, sender, QUESTION)
        first.join(timeout=60)

    threads = []
    for index, sender in enumerate(senders):
        if index % 2:
            threads.append(threading.Thread(target=while_first_is_served, args=(sender,)))
        else:
            threads.append(threading.Thread(target=at_once, args=(sender, 0, RED_FLAG)))
            threads.append(threading.Thread(target=at_once, args=(sender, 1, QUESTION)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)

    stored = _tracker_events(cluster.tracker_db_url, senders)
    for index, sender in enumerate(senders):
        assert has_seek_care(replies[(sender, RED_FLAG)]), (sender, replies[(sender, RED_FLAG)])
        assert isinstance(replies[(sender, QUESTION)], list) and not has_seek_care(replies[(sender, QUESTION)])
        turns = _turns(stored[sender])
        texts = [turn[0]["text"] for turn in turns]
        assert sorted(texts) == sorted([RED_FLAG, QUESTION]), (sender, texts)
        if index % 2:
            assert texts == [RED_FLAG, QUESTION], (sender, texts)
        for turn in turns:  # whole turns: each message's replies follow it, the bot listens again at its end
            assert any(e.get("event") == "bot" for e in turn), (sender, turn)
            assert turn[-1].get("event") == "action" and turn[-1].get("name") == "action_listen", (sender, turn[-1])
        red_turn = turns[texts.index(RED_FLAG)]
        assert any(e.get("event") == "slot" and e.get("name") == SLOT_TRIAGE_LEVEL and e.get("value") in TRIAGE_LEVELS
                   for e in red_turn), (sender, red_turn)


def test_small_load_is_exactly_once(cluster, tmp_path):
    log = tmp_path / "load.jsonl"
    process = start_load(cluster.url, cluster.token, log, users=12, seconds=15, think_s=0.2, pacing=False)
    assert process.wait(timeout=120) == 0, (log.with_suffix(".locust.txt")).read_text()[-2000:]
    records = load_log(log)
    time.sleep(2)
    summary = client_summary(records)
    check = exactly_once(records, cluster.tracker_db_url)
    assert summary["messages"] >= 30 and summary["red_flags"] >= 1, summary
    assert summary["errors"] == 0, summary
    assert check["ok"], check


def test_a_rasa_server_killed_under_load_loses_nothing(cluster, tmp_path):
    log = tmp_path / "kill.jsonl"
    process = start_load(cluster.url, cluster.token, log, users=8, seconds=20, think_s=0.3, pacing=False)
    time.sleep(8)
    killed_at = time.time()
    cluster.kill_rasa(0)
    try:
        assert process.wait(timeout=120) == 0, (log.with_suffix(".locust.txt")).read_text()[-2000:]
        records = load_log(log)
        time.sleep(2)
        summary = client_summary(records)
        check = exactly_once(records, cluster.tracker_db_url)
        assert summary["errors"] == 0, summary
        assert check["ok"], check
        assert sum(r["sent_at"] > killed_at + 1 for r in records) >= 10, summary  # the load went on after the kill
    finally:
        cluster.start_rasa(0, wait=False)


def test_one_alert_worker_records_a_red_flag_sent_through_nginx(cluster):
    from bot.alerts.store import alerts_for_conversation

    assert all(cluster.processes[name].poll() is None for name in WORKERS)
    sender = f"cluster-alert-{uuid.uuid4().hex[:8]}"
    status, reply = http_json("POST", cluster.rest_url, {"sender": sender, "message": "i cant feel my groin and i wet myself"})
    assert status == 200 and any(seek_care_level(m) == "emergency" for m in reply)
    alerts_db = cluster.env["ALERTS_DB_URL"]
    wait_until(lambda: len(alerts_for_conversation(sender, alerts_db)) == 1, 60, "the alert worker's record")
    assert alerts_for_conversation(sender, alerts_db)[0].level == "emergency"
