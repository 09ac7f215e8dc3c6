"""The "Needs follow-up" queue on SQLite and PostgreSQL: what is queued and in which order, the staff actions
(acknowledge, note, resolve, reopen) with who and when, the open count on every page, filters, and the guards
(login, CSRF, escaping, 400s)."""

from __future__ import annotations

import json
import re
import time

import pytest

from bot.review import accesslog, followup
from bot.review.masking import mask_sender
from tests.review.conftest import USERNAME, csrf_token
from tests.review.conversations import by_key
from tests.review.followup_data import (
    CHECK_SENDER,
    IN_FLIGHT_SENDER,
    NO_REPLY_SENDER,
    UNANSWERED_SENDER,
    add_followup_conversations,
    escalate_again,
)

EMERGENCY_SENDER = by_key("sms_emergency").sender_id
# checks that do not depend on the database (validation, guards) run on SQLite only, to keep `make test` short
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
NAV_COUNT = re.compile(r'class="nav-count[^"]*"[^>]*><span class="visually-hidden">\(open items: </span>(\d+)<')


def html(response) -> str:
    return response.get_data(as_text=True)


def expected_queue(rows: list[dict], now: float) -> dict[str, str]:
    """Oracle: sender -> most severe reason, computed in Python from the stored rows."""
    facts: dict[str, dict] = {}
    for row in rows:
        fact = facts.setdefault(row["sender_id"], {"levels": set(), "check": False, "last_user": None,
                                                   "bot_after": False})
        data = json.loads(row["data"])
        if row["type_name"] == "user":
            fact["last_user"] = (row["intent_name"], row["timestamp"])
            fact["bot_after"] = False
            fact["check"] = fact["check"] or row["intent_name"] == "check_symptom"
        elif row["type_name"] == "bot":
            fact["bot_after"] = True
        elif row["type_name"] == "slot" and row["action_name"] == "triage_level" and data.get("value"):
            fact["levels"].add(data["value"])
    queue = {}
    for sender, fact in facts.items():
        if fact["last_user"] is None:
            continue
        intent, at = fact["last_user"]
        unanswered = intent in ("nlu_fallback", "out_of_scope") or (not fact["bot_after"] and at < now - 120)
        for reason, holds in (("emergency", "emergency" in fact["levels"]), ("urgent", "urgent" in fact["levels"]),
                              ("check", fact["check"]), ("unanswered", unanswered)):
            if holds:
                queue[sender] = reason
                break
    return queue


def all_rows(url: str) -> list[dict]:
    from tests.review.conversations import read_rows

    return read_rows(url)


@pytest.fixture
def queued(tracker_url) -> str:
    add_followup_conversations(tracker_url)
    return tracker_url


def store_of(app):
    return app.extensions["review"].store


def review_db(app):
    return app.extensions["review"].review_db


def item_of(app, sender: str) -> followup.QueueItem:
    item = followup.find_item(store_of(app), review_db(app), sender)
    assert item is not None, sender
    return item


def post_action(client, ref: int, action: str, trigger: int | None = None, note: str = "", back: str = ""):
    token = csrf_token(html(client.get("/follow-up")))
    data = {"csrf_token": token, "action": action, "note": note, "back": back}
    if trigger is not None:
        data["trigger"] = str(trigger)
    return client.post(f"/follow-up/{ref}", data=data)


def open_count(page: str) -> int:
    match = NAV_COUNT.search(page)
    assert match, "no open count in the navigation"
    return int(match.group(1))


# --- what is queued, and in which order ---------------------------------------------------------------
def test_queue_holds_escalated_flagged_and_unanswered_most_severe_then_newest(app, queued):
    now = time.time()
    items = followup.queue_items(store_of(app), review_db(app), now)
    expected = expected_queue(all_rows(queued), now)
    assert {item.sender_id: item.level for item in items} == expected
    assert expected[EMERGENCY_SENDER] == "emergency" and expected[CHECK_SENDER] == "check"
    assert expected[UNANSWERED_SENDER] == expected[NO_REPLY_SENDER] == "unanswered"
    assert IN_FLIGHT_SENDER not in expected  # the bot may still be answering it
    severities = [item.severity for item in items]
    assert severities == sorted(severities)
    for a, b in zip(items, items[1:], strict=False):
        if a.severity == b.severity:
            assert a.trigger_id > b.trigger_id  # newest first within a level
    assert all(item.state == "open" for item in items)


@SQLITE_ONLY
def test_landing_page_is_the_queue_with_the_open_count_on_every_page(app, client, queued):
    assert client.get("/").headers["Location"].endswith("/follow-up")
    assert client.get("/login").headers["Location"].endswith("/follow-up")
    queue_page = html(client.get("/follow-up"))
    total = len(expected_queue(all_rows(queued), time.time()))
    assert open_count(queue_page) == total
    assert queue_page.count('class="fu-item ') == total
    for path in ("/conversations", "/dashboard", "/access-log", "/learning", f"/conversations/{item_of(app, CHECK_SENDER).ref}"):
        assert open_count(html(client.get(path))) == total, path


@SQLITE_ONLY
def test_sign_in_lands_on_the_queue(anon, queued):
    from tests.review.conftest import login

    response = login(anon)
    assert response.status_code == 302 and response.headers["Location"].endswith("/follow-up")


# --- staff actions ------------------------------------------------------------------------------------
def test_acknowledge_note_resolve_are_kept_with_who_and_when(app, client, queued):
    item = item_of(app, EMERGENCY_SENDER)
    before = open_count(html(client.get("/follow-up")))
    started = time.time()

    response = post_action(client, item.ref, "acknowledge", item.trigger_id, back="state=all")
    assert response.status_code == 302 and response.headers["Location"].endswith("/follow-up?state=all")
    page = html(client.get("/follow-up"))
    assert f"Conversation {item.ref} acknowledged." in page
    assert open_count(page) == before - 1  # the count is refreshed at once, not after the cache expires

    post_action(client, item.ref, "note", item.trigger_id, note="Called back at 14:05.\nBooked for tomorrow <b>9am</b>")
    post_action(client, item.ref, "resolve", item.trigger_id)
    current = item_of(app, EMERGENCY_SENDER)
    assert current.state == "resolved"
    assert [(entry.action, entry.username) for entry in current.history] == [
        ("acknowledge", USERNAME), ("note", USERNAME), ("resolve", USERNAME)]
    assert all(started - 1 <= entry.at <= time.time() + 1 for entry in current.history)
    assert current.notes[0].note == "Called back at 14:05.\nBooked for tomorrow <b>9am</b>"

    # resolved items leave the default view and show under "resolved", note escaped
    assert f'id="item-{item.ref}"' not in html(client.get("/follow-up"))
    resolved = html(client.get("/follow-up?state=resolved"))
    assert f'id="item-{item.ref}"' in resolved and "fu-reopen" in resolved
    assert "&lt;b&gt;9am&lt;/b&gt;" in resolved and "<b>9am</b>" not in resolved
    assert f"by {USERNAME}" in resolved

    log = accesslog.read(review_db(app), limit=100)[0]
    actions = [(entry.action, entry.sender_id) for entry in log if entry.action.startswith("followup_")]
    assert actions == [("followup_resolve", EMERGENCY_SENDER), ("followup_note", EMERGENCY_SENDER),
                       ("followup_acknowledge", EMERGENCY_SENDER)]
    assert all(entry.username == USERNAME and entry.ip for entry in log if entry.action.startswith("followup_"))
    assert "Called back" not in " ".join(entry.detail for entry in log)  # the note stays in the follow-up table
    assert "Resolved a follow-up" in html(client.get("/access-log"))


@SQLITE_ONLY
def test_an_action_that_does_not_apply_changes_nothing(app, client, queued):
    item = item_of(app, CHECK_SENDER)
    post_action(client, item.ref, "acknowledge", item.trigger_id)
    response = post_action(client, item.ref, "acknowledge", item.trigger_id)
    assert response.status_code == 302
    assert f"Already acknowledged by {USERNAME}" in html(client.get("/follow-up"))
    assert post_action(client, item.ref, "note", item.trigger_id, note="   ").status_code == 302
    assert "Write a note before saving it." in html(client.get("/follow-up"))
    assert [entry.action for entry in item_of(app, CHECK_SENDER).history] == ["acknowledge"]
    # a conversation that needs no follow-up cannot be acted on
    old_ref = store_of(app).ref_for_sender(by_key("sms_old").sender_id)
    post_action(client, old_ref, "resolve")
    assert "no longer needs follow-up" in html(client.get("/follow-up"))


def test_a_new_escalation_reopens_a_resolved_conversation(app, client, queued):
    item = item_of(app, EMERGENCY_SENDER)
    post_action(client, item.ref, "resolve", item.trigger_id, note="Patient went to the ER, doing fine.")
    assert item_of(app, EMERGENCY_SENDER).state == "resolved"

    escalate_again(queued, EMERGENCY_SENDER, "urgent")
    again = item_of(app, EMERGENCY_SENDER)
    assert again.state == "open" and again.trigger_id > item.trigger_id
    assert [entry.current for entry in again.history] == [False]  # the earlier resolution is kept, as history
    page = html(client.get("/follow-up"))
    assert f'id="item-{item.ref}"' in page and "earlier escalation or message" in page

    # staff who loaded the page before the new message acknowledge what they saw: the new trigger stays open
    post_action(client, item.ref, "reopen", item.trigger_id)
    response = post_action(client, item.ref, "acknowledge", item.trigger_id)
    assert response.status_code == 302
    assert "newer activity since the page was loaded" in html(client.get("/follow-up"))
    assert item_of(app, EMERGENCY_SENDER).state == "open"


# --- filters --------------------------------------------------------------------------------------------
def rows_on(client, query: str) -> set[int]:
    return {int(ref) for ref in re.findall(r'id="item-(\d+)"', html(client.get("/follow-up?" + query)))}


def test_filters_level_channel_state_and_date(app, client, queued):
    refs = {sender: item_of(app, sender).ref for sender in (EMERGENCY_SENDER, CHECK_SENDER, UNANSWERED_SENDER,
                                                            NO_REPLY_SENDER)}
    assert rows_on(client, "level=emergency") == {refs[EMERGENCY_SENDER]}
    assert rows_on(client, "level=check") == {refs[CHECK_SENDER]}
    assert {refs[UNANSWERED_SENDER], refs[NO_REPLY_SENDER]} <= rows_on(client, "level=unanswered")
    sms = rows_on(client, "channel=sms")
    assert {refs[EMERGENCY_SENDER], refs[CHECK_SENDER]} <= sms and refs[UNANSWERED_SENDER] not in sms
    assert rows_on(client, "channel=rest&level=unanswered") >= {refs[NO_REPLY_SENDER]}
    assert refs[NO_REPLY_SENDER] not in rows_on(client, "channel=web")

    post_action(client, refs[CHECK_SENDER], "acknowledge")
    post_action(client, refs[NO_REPLY_SENDER], "resolve")
    assert rows_on(client, "state=acknowledged") == {refs[CHECK_SENDER]}
    assert rows_on(client, "state=resolved") == {refs[NO_REPLY_SENDER]}
    assert refs[CHECK_SENDER] not in rows_on(client, "state=open")
    assert refs[NO_REPLY_SENDER] in rows_on(client, "state=all")

    # the scripted emergency is two days old; today's items are newer
    today = time.strftime("%Y-%m-%d", time.gmtime())
    two_days_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 2 * 86400))
    assert refs[EMERGENCY_SENDER] not in rows_on(client, f"from={today}")
    assert refs[UNANSWERED_SENDER] in rows_on(client, f"from={today}")
    assert rows_on(client, f"from={two_days_ago}&to={two_days_ago}&state=all") == {refs[EMERGENCY_SENDER]}
    assert rows_on(client, "from=2001-01-01&to=2001-01-02") == set()
    assert "Nothing needs follow-up with these filters" in html(client.get("/follow-up?from=2001-01-01&to=2001-01-02"))


@SQLITE_ONLY
def test_bad_filters_are_a_400_that_says_why(client, queued):
    for query, why in (("level=severe", "Level must be one of"), ("channel=fax", "Channel must be one of"),
                       ("state=closed", "State must be one of"), ("from=2024-13-01", "From date must be a date"),
                       ("to=1999-01-01", "To date must be between"), ("page=0", "Page must be"),
                       ("page=abc", "Page must be")):
        response = client.get("/follow-up?" + query)
        assert response.status_code == 400 and why in html(response), query


# --- guards ---------------------------------------------------------------------------------------------
@SQLITE_ONLY
def test_queue_and_actions_need_a_login(app, anon, queued):
    assert anon.get("/follow-up").headers["Location"].startswith("/login?next=")
    ref = item_of(app, EMERGENCY_SENDER).ref
    response = anon.post(f"/follow-up/{ref}", data={"action": "resolve"})
    assert response.status_code in (302, 400)
    assert item_of(app, EMERGENCY_SENDER).history == []


@SQLITE_ONLY
def test_actions_need_the_csrf_token(app, client, queued):
    ref = item_of(app, EMERGENCY_SENDER).ref
    response = client.post(f"/follow-up/{ref}", data={"action": "resolve"})
    assert response.status_code == 400 and "Form expired" in html(response)
    response = client.post(f"/follow-up/{ref}", data={"action": "resolve", "csrf_token": "forged"})
    assert response.status_code == 400
    assert item_of(app, EMERGENCY_SENDER).history == []


@SQLITE_ONLY
def test_bad_actions_are_a_400(app, client, queued):
    ref = item_of(app, EMERGENCY_SENDER).ref
    token = csrf_token(html(client.get("/follow-up")))
    for form in ({"action": "delete"}, {"action": "resolve", "trigger": "abc"},
                 {"action": "resolve", "trigger": "99999999999"}, {"action": "resolve", "trigger": "0"},
                 {"action": "note", "note": "x" * 2001}):
        assert client.post(f"/follow-up/{ref}", data={**form, "csrf_token": token}).status_code == 400, form
    assert item_of(app, EMERGENCY_SENDER).history == []


@SQLITE_ONLY
def test_unknown_conversations_are_404(client, queued):
    token = csrf_token(html(client.get("/follow-up")))
    for ref in ("999999", "0", str(2**63)):
        assert client.post(f"/follow-up/{ref}", data={"action": "resolve", "csrf_token": token}).status_code == 404


@SQLITE_ONLY
def test_patients_are_masked_and_their_text_never_shown_in_the_queue(app, client, queued):
    page = html(client.get("/follow-up?state=all"))
    assert mask_sender(EMERGENCY_SENDER) in page and EMERGENCY_SENDER not in page
    assert "groin" not in page and "<script>alert" not in page  # reasons only, no message text


@SQLITE_ONLY
def test_open_count_is_cached_briefly_and_refreshed_by_actions(app, queued):
    counter = followup.OpenCount(ttl_s=60)
    first = counter.get(store_of(app), review_db(app))
    escalate_again(queued, "brand-new-sender", "emergency")
    assert counter.get(store_of(app), review_db(app)) == first  # cached
    counter.invalidate()
    assert counter.get(store_of(app), review_db(app)) == first + 1
    counter.prime(99)
    assert counter.get(store_of(app), review_db(app)) == 99


@SQLITE_ONLY
def test_alert_delivery_status_shows_in_the_queue(app, client, queued, tmp_path, monkeypatch):
    """bot.alerts' outbox (ALERTS_DB_URL): a failed alert stands out on its conversation's row."""
    from bot.alerts.detect import Escalation
    from bot.alerts.store import AlertStore

    monkeypatch.setenv("ALERTS_DB_URL", f"sqlite:///{tmp_path / 'alerts.db'}")
    outbox = AlertStore()
    outbox.record(Escalation("k1", EMERGENCY_SENDER, "emergency", ("saddle_numbness",), "sms", time.time()), ["email"])
    outbox.record(Escalation("k2", CHECK_SENDER, "symptom_check", (), "sms", time.time()), ["email"])
    delivery = next(due for due in outbox.due() if due.alert.conversation_id == EMERGENCY_SENDER)
    assert outbox.claim(delivery)
    outbox.mark_failed_attempt(delivery, "SMTP refused", max_attempts=1, base_delay_s=1)
    page = html(client.get("/follow-up"))
    row = page[page.index(f'id="item-{item_of(app, EMERGENCY_SENDER).ref}"'):]
    assert 'fu-alert-failed">Alert failed<' in row[:row.index("</tr>")]
    row = page[page.index(f'id="item-{item_of(app, CHECK_SENDER).ref}"'):]
    assert "Alert pending" in row[:row.index("</tr>")]


@SQLITE_ONLY
def test_the_transcript_shows_the_follow_up_state_and_alert_status(app, client, queued, tmp_path, monkeypatch):
    from bot.alerts.detect import Escalation
    from bot.alerts.store import AlertStore

    monkeypatch.setenv("ALERTS_DB_URL", f"sqlite:///{tmp_path / 'alerts.db'}")
    item = item_of(app, EMERGENCY_SENDER)
    page = html(client.get(f"/conversations/{item.ref}"))
    assert re.search(r'<dt>Follow-up</dt><dd class="fu-status"><a class="fu-state fu-state-open" href="/follow-up\?state=all#item-\d+">Open</a></dd>', page)
    post_action(client, item.ref, "resolve", item.trigger_id)
    outbox = AlertStore()
    outbox.record(Escalation("k1", EMERGENCY_SENDER, "emergency", (), "sms", time.time()), ["sms"])
    delivery = outbox.due()[0]
    outbox.claim(delivery)
    outbox.mark_failed_attempt(delivery, "Twilio 500", max_attempts=1, base_delay_s=1)
    page = html(client.get(f"/conversations/{item.ref}"))
    assert ">Resolved</a>" in page and 'fu-alert-failed">Alert failed<' in page
    calm = store_of(app).ref_for_sender(by_key("sms_old").sender_id)
    assert "<dt>Follow-up</dt>" not in html(client.get(f"/conversations/{calm}"))


@SQLITE_ONLY
def test_the_queue_from_the_terminal(app, queued, capsys):
    from bot.review.cli import main

    item = item_of(app, EMERGENCY_SENDER)
    followup.act(store_of(app), review_db(app), USERNAME, EMERGENCY_SENDER, "acknowledge", item.trigger_id)
    assert main(["follow-up"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["REF", "LEVEL", "WHEN"]
    assert lines[1].split()[1] == "EMERGENCY" and "acknowledged" in lines[1] and USERNAME in lines[1]
    assert mask_sender(EMERGENCY_SENDER) in out and EMERGENCY_SENDER not in out
    assert main(["follow-up", "--level", "check", "--state", "open"]) == 0
    out = capsys.readouterr().out
    assert "CHECK" in out and "EMERGENCY" not in out
    assert main(["follow-up", "--from", "2024-13-01"]) == 2
    assert any(entry.action == "view_followup" and entry.username.startswith("cli:")
               for entry in accesslog.read(review_db(app), limit=20)[0])


def test_two_staff_acknowledging_at_once_one_is_told_the_other_has_it(app, queued, backend, monkeypatch):
    """On PostgreSQL the database lock alone must hold (several review-app processes share one database)."""
    import contextlib
    import threading

    if backend == "postgresql":
        monkeypatch.setattr(followup, "_ACT_LOCK", contextlib.nullcontext())
    trigger = item_of(app, EMERGENCY_SENDER).trigger_id
    # widen the race: each action, once it has read the history, waits (briefly) for the other to read it too;
    # without a lock both would see "open" and both would be recorded
    both_read = threading.Barrier(2, timeout=1.5)
    original = followup.apply_history

    def apply_then_wait(item, rows):
        original(item, rows)
        if item.patient_turns == 0:  # the check inside act(), not the page's item
            with contextlib.suppress(threading.BrokenBarrierError):
                both_read.wait()

    monkeypatch.setattr(followup, "apply_history", apply_then_wait)
    barrier = threading.Barrier(2)
    results: list[tuple[str, str]] = []

    def acknowledge(name: str) -> None:
        barrier.wait()
        try:
            followup.act(store_of(app), review_db(app), name, EMERGENCY_SENDER, "acknowledge", trigger)
            results.append(("ok", name))
        except followup.ActionRefused as refused:
            results.append(("refused", str(refused)))

    threads = [threading.Thread(target=acknowledge, args=(name,)) for name in ("nurse.a", "nurse.b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(kind for kind, _ in results) == ["ok", "refused"]
    winner = next(name for kind, name in results if kind == "ok")
    assert next(text for kind, text in results if kind == "refused") == \
        f"Already acknowledged by {winner}; nothing was changed."
    assert [(entry.action, entry.username) for entry in item_of(app, EMERGENCY_SENDER).history] == \
        [("acknowledge", winner)]
