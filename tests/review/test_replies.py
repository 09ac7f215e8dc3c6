"""Staff replies and takeovers through the running review app and the running bot.

Real parts: the Rasa server and action server (BotStack), the review app on a real port (werkzeug), real
HTTP with login and CSRF, the website chat over socket.io, signed Twilio webhooks into the SMS channel, and
headless Debian Chromium for the "send a reply" step. Twilio's REST API is the one fake (a local server).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from werkzeug.serving import make_server

from bot.devtools.red_flags import RED_FLAG
from bot.devtools.socketio_client import MiniSocketIO
from bot.devtools.twilio_requests import new_phone, post_sms, twilio_params
from bot.messages import HANDBACK_NOTICE, TAKEOVER_NOTICE
from bot.review import accesslog
from bot.settings import fill_placeholders
from bot.vocabulary import SEEK_CARE_KIND, STAFF_MESSAGE_KEY, STAFF_REPLY_KIND
from tests.channels.browser import axe_violations

pytestmark = [pytest.mark.stack, pytest.mark.server]

USERNAME = "nurse.kim"
PASSWORD = "correct horse battery staple"
QUESTION = "will the injection hurt?"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def twilio(staff_twilio):
    return staff_twilio


@pytest.fixture(scope="module")
def stack(staff_stack):
    return staff_stack


@pytest.fixture(scope="module")
def review(stack, tmp_path_factory):
    """The review app on a real port, talking to the running bot with its token."""
    from bot.review import auth
    from bot.review.app import create_app

    with pytest.MonkeyPatch.context() as env:
        env.setenv("REVIEW_COOKIE_SECURE", "0")
        env.setenv("REVIEW_TIMEZONE", "UTC")
        env.setenv("RASA_SERVER_URL", stack.url)
        env.setenv("RASA_AUTH_TOKEN", stack.token)
        env.setenv("VAR_DIR", str(tmp_path_factory.mktemp("review-var")))
        review_url = f"sqlite:///{tmp_path_factory.mktemp('review') / 'review.db'}"
        app = create_app(stack.tracker_url, review_url, SECRET_KEY="replies-test-" + "k" * 40)
        auth.create_user(app.extensions["review"].review_db, USERNAME, PASSWORD)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        app.base_url = f"http://127.0.0.1:{server.server_port}"
        yield app
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def staff(review) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{review.base_url}/login")
    signed_in = session.post(f"{review.base_url}/login", allow_redirects=False,
                             data={"username": USERNAME, "password": PASSWORD, "csrf_token": csrf(page.text)})
    assert signed_in.status_code == 302
    return session


def csrf(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def ref_of(stack, sender: str) -> int:
    """The review app's number of a conversation; waits for it to be stored (the web chat streams replies first)."""
    engine = sa.create_engine(stack.tracker_url)
    deadline = time.monotonic() + 10
    ref = None
    while ref is None and time.monotonic() < deadline:
        with engine.connect() as connection:
            ref = connection.execute(sa.text("SELECT MIN(id) FROM events WHERE sender_id = :s"), {"s": sender}).scalar()
        time.sleep(0 if ref else 0.05)
    engine.dispose()
    assert ref, sender
    return int(ref)


def post_form(session: requests.Session, review, ref: int, action: str, **form: str) -> requests.Response:
    page = session.get(f"{review.base_url}/conversations/{ref}")
    assert page.status_code == 200
    return session.post(f"{review.base_url}/conversations/{ref}/{action}", data={**form, "csrf_token": csrf(page.text)})


def staff_events(stack, sender: str) -> list[dict]:
    return [e for e in stack.tracker(sender)["events"]
            if e["event"] == "bot" and (e.get("metadata") or {}).get(STAFF_MESSAGE_KEY)]


def log_entries(review, action: str) -> list[accesslog.AccessEntry]:
    return accesslog.read(review.extensions["review"].review_db, 100, action=action)[0]


def test_sms_reply_goes_out_by_twilio_and_is_recorded_as_staff(stack, review, staff, twilio):
    phone = new_phone()
    assert post_sms(stack.sms_url, twilio_params(phone, "hello")).messages
    ref = ref_of(stack, phone)
    text = "Hi, this is the clinic. A nurse will call you at 3 pm today."

    sent = post_form(staff, review, ref, "reply", text=text)
    assert sent.status_code == 200 and sent.history[0].status_code == 303
    assert "Sent as a text message." in sent.text
    assert [(sms.to, sms.body) for sms in twilio.received() if sms.to == phone] == [(phone, text)]

    [event] = staff_events(stack, phone)  # recorded in the tracker, marked as staff, with who
    assert event["text"] == text and event["metadata"][STAFF_MESSAGE_KEY] == USERNAME
    assert event["data"]["custom"]["kind"] == STAFF_REPLY_KIND
    assert f"Sent by staff: {USERNAME}" in sent.text and "Staff</span>" in sent.text  # the transcript shows it

    exported = json.loads(staff.get(f"{review.base_url}/conversations/{ref}/export?format=json").text)
    assert {"speaker": "staff", "text": text, "note": f"Sent by staff: {USERNAME}"}.items() <= next(
        turn for turn in exported["turns"] if turn["speaker"] == "staff").items()

    [entry] = [e for e in log_entries(review, "staff_reply") if e.sender_id == phone]
    assert entry.username == USERNAME and "sms" in entry.detail and text not in entry.detail


def test_the_cli_shows_staff_messages_and_takeovers(stack, review, staff, monkeypatch, capsys):
    from bot.review.cli import main

    phone = new_phone()
    assert post_sms(stack.sms_url, twilio_params(phone, "hello")).messages
    ref = ref_of(stack, phone)
    assert post_form(staff, review, ref, "takeover").status_code == 200
    monkeypatch.setenv("TRACKER_DB_URL", stack.tracker_url)
    monkeypatch.setenv("REVIEW_DB_URL", f"sqlite:///{stack.tracker_url.split('///')[1]}.review-cli.db")
    assert main(["show", str(ref)]) == 0
    shown = capsys.readouterr().out
    assert f"--- {USERNAME} took over from the assistant" in shown
    assert "STAFF" in shown and fill_placeholders(TAKEOVER_NOTICE) in shown


def test_takeover_from_the_review_app_on_web_chat(stack, review, staff):
    asyncio.run(_web_chat_takeover(stack, review, staff))


async def _web_chat_takeover(stack, review, staff) -> None:
    async with MiniSocketIO(stack.url) as patient:
        session = await patient.session(None)
        await patient.emit("user_uttered", {"message": "hello", "session_id": session})
        assert (await patient.receive("bot_uttered"))["text"]
        ref = ref_of(stack, session)

        taken = await asyncio.to_thread(post_form, staff, review, ref, "takeover")
        assert taken.status_code == 200 and "You have taken over" in taken.text
        assert f"{USERNAME} took over from the assistant" in taken.text and 'id="handback"' in taken.text
        assert (await patient.receive("bot_uttered"))["text"] == fill_placeholders(TAKEOVER_NOTICE)
        again = await asyncio.to_thread(post_form, staff, review, ref, "takeover")  # a second click
        assert "has already taken over" in again.text  # and no second notice (checked below: next is seek-care)

        await patient.emit("user_uttered", {"message": QUESTION, "session_id": session})
        await asyncio.sleep(0.3)
        await patient.emit("user_uttered", {"message": RED_FLAG, "session_id": session})
        urgent = await patient.receive("bot_uttered")  # the question got no answer; seek-care did go out
        assert urgent["metadata"] == {**urgent["metadata"], "kind": SEEK_CARE_KIND, "level": "emergency"}

        replied = await asyncio.to_thread(post_form, staff, review, ref, "reply",
                                          text="Please call 911 now. We are calling you as well.")
        assert replied.status_code == 200 and "Sent to the web chat" in replied.text
        live = await patient.receive("bot_uttered")
        assert live["text"] == "Please call 911 now. We are calling you as well."
        assert USERNAME not in json.dumps(live)  # the patient sees the clinic, not the staff member's name

        page = replied.text  # the transcript: withheld answers marked, the escalation shown
        assert "Not sent: staff had taken over" in page and "badge-emergency" in page

        handed = await asyncio.to_thread(post_form, staff, review, ref, "handback")
        assert handed.status_code == 200 and 'id="takeover"' in handed.text
        assert (await patient.receive("bot_uttered"))["text"] == fill_placeholders(HANDBACK_NOTICE)
        await patient.emit("user_uttered", {"message": QUESTION, "session_id": session})
        assert (await patient.receive("bot_uttered"))["text"]  # the assistant answers again

    notices = [e for e in staff_events(stack, session) if e["text"] == fill_placeholders(TAKEOVER_NOTICE)]
    assert len(notices) == 1  # told once
    actions = {action: [e for e in log_entries(review, action) if e.sender_id == session]
               for action in ("takeover", "staff_reply", "handback")}
    assert all(len(entries) == 1 and entries[0].username == USERNAME for entries in actions.values()), actions


def test_refused_replies_say_why_and_record_nothing(stack, review, staff, twilio):
    phone = new_phone()
    assert post_sms(stack.sms_url, twilio_params(phone, "hello")).messages
    assert post_sms(stack.sms_url, twilio_params(phone, "STOP")).messages  # opted out of texts
    ref = ref_of(stack, phone)

    refused = post_form(staff, review, ref, "reply", text="Are you feeling better?")
    assert refused.status_code == 502 and "opted out" in refused.text
    assert "Are you feeling better?</textarea>" in refused.text  # the draft is kept
    assert staff_events(stack, phone) == [] and not [s for s in twilio.received() if s.to == phone]
    assert [e.username for e in log_entries(review, "staff_reply_failed") if e.sender_id == phone] == [USERNAME]

    reachable = new_phone()
    assert post_sms(stack.sms_url, twilio_params(reachable, "hello")).messages
    twilio.status_override = 500  # Twilio's API fails: the text is not sent, so nothing is recorded
    try:
        failed = post_form(staff, review, ref_of(stack, reachable), "reply", text="Please call us.")
    finally:
        twilio.status_override = None
    assert failed.status_code == 502 and "Twilio answered 500" in failed.text and reachable not in failed.text
    assert staff_events(stack, reachable) == []

    empty = post_form(staff, review, ref, "reply", text="   ")
    assert empty.status_code == 400 and "Please write a message" in empty.text
    too_long = post_form(staff, review, ref, "reply", text="x" * 1601)
    assert too_long.status_code == 400 and "at most 1,600" in too_long.text
    no_csrf = staff.post(f"{review.base_url}/conversations/{ref}/reply", data={"text": "hi"})
    assert no_csrf.status_code == 400
    anonymous = requests.post(f"{review.base_url}/conversations/{ref}/reply", data={"text": "hi"},
                              allow_redirects=False)
    assert anonymous.status_code in (302, 400)

    rest_sender = f"rest-{uuid.uuid4().hex[:8]}"
    assert stack.ask(rest_sender, "hello")
    rest = post_form(staff, review, ref_of(stack, rest_sender), "reply", text="hello")
    assert rest.status_code == 400 and "REST API" in rest.text
    assert staff_events(stack, phone) == [] and staff_events(stack, rest_sender) == []


@pytest.mark.browser
def test_send_a_reply_in_a_browser(stack, review, twilio):
    if not CHROMIUM.exists():
        pytest.fail("Debian chromium is missing: apt-get install chromium (make setup-test does it)")
    from playwright.sync_api import sync_playwright

    phone = new_phone()
    assert post_sms(stack.sms_url, twilio_params(phone, "my injection site is a bit sore")).messages
    ref = ref_of(stack, phone)
    text = "Thanks for your message. <b>A nurse</b> will call you today."
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            # CSP bypassed only to inject axe-core at the end (the page itself must carry no script: checked)
            page = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True).new_page()
            page.goto(f"{review.base_url}/conversations/{ref}")
            page.fill("#username", USERNAME)
            page.fill("#password", PASSWORD)
            page.click("form.stack button[type=submit]")
            page.wait_for_url(f"**/conversations/{ref}")
            page.fill("#reply-text", text)
            page.click("#send-reply")
            page.wait_for_url(f"**/conversations/{ref}")
            assert "Sent as a text message." in page.locator(".notice").first.inner_text()
            staff_turn = page.locator("li.turn-staff").last
            assert staff_turn.locator(".turn-text").inner_text() == text  # shown as text, never as HTML
            assert f"Sent by staff: {USERNAME}" in staff_turn.inner_text()
            assert page.evaluate("document.scripts.length") == 0
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "review-reply.png"), full_page=True)  # README "Replying to patients"
            page.click("#takeover")  # the form while taken over: hand back instead
            page.wait_for_selector("#handback")
            assert axe_violations(page, "main") == []  # WCAG 2.1 A/AA: forms labelled, contrast, landmarks
        finally:
            browser.close()
    assert [sms.body for sms in twilio.received() if sms.to == phone] == [text, fill_placeholders(TAKEOVER_NOTICE)]
