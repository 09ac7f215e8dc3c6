"""Appointment pages in headless Chromium (Debian's /usr/bin/chromium): staff add an appointment through the form,
see its planned texts (one already delivered, as the worker and Twilio's callback would record it), cancel it."""

from __future__ import annotations

import pytest

from bot.outreach import outbox
from bot.outreach.schedule import render, schedule
from tests.review.conftest import PASSWORD, USERNAME
from tests.review.test_appointments_web import ZONE, app, local_day, outreach_url, record_sent  # noqa: F401
from tests.review.test_browser import ARTIFACTS, browser, live_app  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


def deliver_first_text(url: str, appointment_id: int) -> None:
    """What the worker and Twilio's status callback record for the week-before reminder."""
    from bot.outreach.appointments import AppointmentStore

    box = outbox.Outbox(url)
    first = box.messages_for_appointment(appointment_id)[0]
    appointment = AppointmentStore(url).get(appointment_id)
    now = first.due_at + 2  # sent on time (the page is under test, not the worker)
    record_sent(box, first, render(schedule().message(first.message_key), appointment), now)
    assert box.record_status(first.id, "SM" + "0" * 32, "delivered", None, now + 5)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_add_an_appointment_see_its_texts_and_cancel_it(app, live_app, browser, staff_user):  # noqa: F811
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{live_app}/appointments")
    page.fill("#username", USERNAME)
    page.fill("#password", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_url("**/appointments")
    assert page.locator('.nav a[aria-current="page"]').inner_text() == "Appointments"

    # a mistake first: the form says which field, and keeps what was typed
    page.click("text=Add an appointment")
    page.fill("#ap-phone", "555-01")
    page.fill("#ap-date", local_day(8))
    page.fill("#ap-time", "09:30")
    page.select_option("#ap-zone", ZONE)
    page.select_option("#ap-procedure", "cervical")
    page.check("#ap-consent")
    page.click("text=Add appointment")
    assert page.locator("#p-phone").is_visible() and page.locator("#ap-phone").input_value() == "555-01"
    assert page.locator("#ap-phone").get_attribute("aria-invalid") == "true"
    page.fill("#ap-phone", "(312) 555-0142")
    page.click("text=Add appointment")
    page.wait_for_url("**/appointments/1")
    assert "Appointment 1 added." in page.locator(".notice-info").inner_text()
    assert page.locator("tr.ap-msg-row").count() == 4
    assert "Cervical (neck)" in page.locator(".facts").inner_text()

    deliver_first_text(app.extensions["appointments_url"], 1)
    page.reload()
    first = page.locator("tr.ap-msg-row").first
    assert "Delivered" in first.inner_text() and "neck shot" in first.locator(".ap-body").inner_text()
    assert page.locator(".ap-msg-pending").count() == 3
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "appointment.png"), full_page=True)

    # cancel: needs the box ticked (the browser enforces `required`), then the waiting texts are not sent
    page.click("text=Cancel this appointment…")
    page.check("#cancel-confirm")
    page.click("button:has-text('Cancel appointment')")
    page.wait_for_url("**/appointments/1")
    assert "Appointment 1 cancelled." in page.locator(".notice-info").inner_text()
    assert page.locator(".ap-msg-cancelled").count() == 3 and page.locator(".ap-msg-delivered").count() == 1
    assert page.locator("text=appointment cancelled").count() == 3

    # the list: upcoming active ones by default, the cancelled one under "All"
    page.click("text=← Back to appointments")
    assert page.locator("table.ap-table").count() == 0
    page.select_option("#a-status", "all")
    page.click("text=Apply filters")
    page.wait_for_url("**status=all**")
    row = page.locator("#appointment-1")
    assert "Cancelled" in row.inner_text() and "+1•••••0142" in row.inner_text()
    page.goto(f"{live_app}/appointments/new")
    page.screenshot(path=str(ARTIFACTS / "appointment-form.png"), full_page=True)
    assert dialogs == []
