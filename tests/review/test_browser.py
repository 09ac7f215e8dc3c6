"""The review app in headless Chromium (Debian's /usr/bin/chromium): login, filter, transcript, export."""

from __future__ import annotations

import csv
import io
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.review.conftest import PASSWORD, USERNAME
from tests.review.conversations import ROOT, SCRIPT_TAG

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "artifacts"

pytestmark = pytest.mark.browser


@pytest.fixture
def live_app(app, staff_user):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        if __import__("os").environ.get("CI"):
            pytest.fail("Debian chromium is missing: apt-get install chromium chromium-driver")
        pytest.skip("Debian chromium is missing")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def test_staff_review_in_a_browser(live_app, browser, backend, tmp_path):
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    # unauthenticated -> login page; a wrong password is refused
    page.goto(f"{live_app}/conversations?escalated=any")
    assert "/login" in page.url
    page.fill("#username", USERNAME)
    page.fill("#password", "not my password at all")
    page.click("button[type=submit]")
    assert page.locator(".notice-error").inner_text() == "Wrong username or password."

    # sign in -> back to the page asked for
    page.fill("#username", USERNAME)
    page.fill("#password", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_url("**/conversations?escalated=any")

    # filter: escalated conversations only
    page.goto(f"{live_app}/conversations")
    assert page.locator("table.data tbody tr").count() == 4
    page.select_option("#f-escalated", "any")
    page.click("text=Apply filters")
    page.wait_for_url("**escalated=any**")
    rows = page.locator("table.data tbody tr")
    assert rows.count() == 2
    assert page.locator("tr.row-emergency .badge-emergency").inner_text().strip().endswith("Emergency")
    assert page.locator("tr.row-urgent .badge-urgent").count() == 1
    assert "+1•••••4567" in page.locator("table.data").inner_text()
    if backend == "sqlite":
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "review.png"), full_page=True)

    # export the filtered list as CSV
    with page.expect_download() as download_info:
        page.click(".toolbar a:text-is('CSV')")
    download = download_info.value
    target = tmp_path / "export.csv"
    download.save_as(target)
    exported = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert len(exported) == 2 and {r["escalation"] for r in exported} == {"emergency", "urgent"}
    assert "+15551234567" not in target.read_text(encoding="utf-8")

    # open the urgent web-chat transcript: the <script> message is shown as text and never runs
    page.click("tr.row-urgent a.patient-link")
    page.wait_for_url("**/conversations/*")
    transcript_url = page.url
    patient_turn = page.locator("li.turn-patient.turn-urgent .turn-text")
    assert SCRIPT_TAG in patient_turn.inner_text()
    assert page.locator("li.turn-urgent .badge-urgent").count() >= 2  # patient message and the bot's reply
    assert dialogs == []
    assert page.evaluate("document.scripts.length") == 0
    if backend == "sqlite":
        page.screenshot(path=str(ARTIFACTS / "review-transcript.png"), full_page=True)
        page.goto(f"{live_app}/dashboard")
        page.screenshot(path=str(ARTIFACTS / "review-dashboard.png"), full_page=True)

    # sign out -> pages need a login again
    page.click("text=Sign out")
    page.wait_for_url("**/login")
    page.goto(transcript_url)
    assert "/login" in page.url and "the injection site is red" not in page.content()
    context.close()
