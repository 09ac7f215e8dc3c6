"""The follow-up queue in headless Chromium (Debian's /usr/bin/chromium): staff sign in, land on the queue,
acknowledge a queued escalation, add a note and resolve it; the open count in the navigation follows."""

from __future__ import annotations

import re

import pytest

from tests.review.conftest import PASSWORD, USERNAME
from tests.review.conversations import by_key
from tests.review.followup_data import add_followup_conversations
from tests.review.test_browser import ARTIFACTS, browser, live_app  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser

EMERGENCY = by_key("sms_emergency").sender_id


@pytest.fixture
def queued(tracker_url) -> str:
    add_followup_conversations(tracker_url)
    return tracker_url


@pytest.fixture
def alerts(tmp_path, monkeypatch):
    """bot.alerts' outbox: the emergency's SMS to the on-call phone failed, the urgent one's e-mail went out."""
    import time

    from bot.alerts.detect import Escalation
    from bot.alerts.store import AlertStore

    monkeypatch.setenv("ALERTS_DB_URL", f"sqlite:///{tmp_path / 'alerts.db'}")
    outbox = AlertStore()
    outbox.record(Escalation("e1", EMERGENCY, "emergency", ("saddle_numbness",), "sms", time.time()), ["sms"])
    outbox.record(Escalation("u1", by_key("web_urgent_xss").sender_id, "urgent", ("fever",), "socketio", time.time()),
                  ["email"])
    for delivery in outbox.due():
        assert outbox.claim(delivery)
        if delivery.method == "sms":
            outbox.mark_failed_attempt(delivery, "Twilio answered 500", max_attempts=1, base_delay_s=1)
        else:
            outbox.mark_sent(delivery)


def open_count(page) -> int:
    text = page.locator(".nav .nav-count").inner_text()
    return int(re.search(r"\d+", text).group(0))


def test_staff_acknowledge_note_and_resolve_a_queued_escalation(queued, alerts, live_app, browser, backend):  # noqa: F811
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    # signing in lands on the queue, the emergency first
    page.goto(live_app)
    assert "/login" in page.url
    page.fill("#username", USERNAME)
    page.fill("#password", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_url("**/follow-up")
    rows = page.locator("tr.fu-item")
    assert rows.count() >= 4
    first = rows.first
    assert "fu-level-emergency" in first.get_attribute("class")
    assert "+1•••••4567" in first.inner_text() and EMERGENCY not in page.content()
    opened = open_count(page)
    assert opened == rows.count()
    assert first.locator(".fu-alert-failed").inner_text() == "Alert failed"  # staff were not told: it stands out
    assert rows.nth(1).locator(".fu-alert").inner_text() == "Alert sent"

    # acknowledge: the row says who, the open count drops on every page
    item_id = first.get_attribute("id")
    first.locator("button.fu-acknowledge").click()
    page.wait_for_load_state()
    assert "acknowledged." in page.locator(".notice-info").inner_text()
    row = page.locator(f"#{item_id}")
    assert row.locator(".fu-state").inner_text() == "Acknowledged"
    assert f"by {USERNAME}" in row.locator(".fu-status").inner_text()
    assert open_count(page) == opened - 1
    if backend == "sqlite":
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "followup-queue.png"), full_page=True)
    page.click("nav >> text=Dashboard")
    assert open_count(page) == opened - 1
    page.click("nav >> text=Needs follow-up")

    # a note, then resolve: the item leaves the default view and shows under "Resolved" with its history
    row = page.locator(f"#{item_id}")
    row.locator(".fu-note-form summary").click()
    row.locator("textarea[name=note]").fill("Called the patient back; she is on her way to the ER. <b>ok</b>")
    row.locator("button.fu-save-note").click()
    page.wait_for_load_state()
    assert "Note added" in page.locator(".notice-info").inner_text()
    page.locator(f"#{item_id} button.fu-resolve").click()
    page.wait_for_load_state()
    assert "resolved." in page.locator(".notice-info").inner_text()
    assert page.locator(f"#{item_id}").count() == 0
    page.select_option("#q-state", "resolved")
    page.click("text=Apply filters")
    page.wait_for_url("**state=resolved**")
    row = page.locator(f"#{item_id}")
    assert row.locator(".fu-state").inner_text() == "Resolved"
    row.locator(".fu-history summary").click()
    history = row.locator(".fu-history").inner_text()
    assert "Acknowledged by" in history and "Resolved by" in history and "<b>ok</b>" in history  # text, not markup
    if backend == "sqlite":
        page.screenshot(path=str(ARTIFACTS / "followup-resolved.png"), full_page=True)

    # the access log names who did what
    page.click("nav >> text=Access log")
    log = page.locator("table.data").inner_text()
    assert "Acknowledged a follow-up" in log and "Resolved a follow-up" in log and "Added a follow-up note" in log
    assert dialogs == [] and page.evaluate("document.scripts.length") == 0
    context.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the SQL side: test_labels.py, both backends
def test_staff_label_an_unanswered_message_in_a_browser(queued, live_app, browser, backend):  # noqa: F811
    """Learning: the unanswered message gets "Not in our knowledge", leaves the to-do list, and the dashboard
    counts it."""
    from tests.review.followup_data import DECLINED_TEXT

    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.goto(f"{live_app}/learning")
    page.fill("#username", USERNAME)
    page.fill("#password", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_url("**/learning")
    row = page.locator("tr", has_text=DECLINED_TEXT)
    assert row.count() == 1
    before = page.locator(".lb-table tbody tr").count()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "learning.png"), full_page=True)
    row.locator("select").select_option("not_in_knowledge")
    row.locator("button[type=submit]").click()
    page.wait_for_load_state()
    assert "Labelled as “Not in our knowledge”" in page.locator(".notice-info").inner_text()
    assert page.locator("tr", has_text=DECLINED_TEXT).count() == 0
    assert page.locator(".lb-table tbody tr").count() == before - 1
    page.select_option("#l-state", "labelled")
    page.click("text=Show")
    page.wait_for_url("**state=labelled**")
    assert f"Labelled by {USERNAME}" in page.locator("tr", has_text=DECLINED_TEXT).inner_text()
    page.click("nav >> text=Dashboard")
    assert re.search(r"\b1\b of \d+ unanswered messages labelled", page.locator(".lb-labelled").inner_text())
    page.screenshot(path=str(ARTIFACTS / "learning-dashboard.png"), full_page=True)
    context.close()
