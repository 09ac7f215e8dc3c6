"""Appointment pages of the review app on SQLite and PostgreSQL: add, change, move, cancel, CSV import, the texts
of each appointment (planned by the real outbox), unanswered check-ins; login, CSRF, escaping, access log."""

from __future__ import annotations

import io
import re
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.outreach import appointments as ap
from bot.review import accesslog
from tests.review.conftest import SECRET, csrf_token, login

outbox = pytest.importorskip("bot.outreach.outbox")

ZONE = "America/Chicago"
HEADER = "phone,procedure,date,time,time_zone,consent\n"
# The pages' storage paths (add, move, import, unanswered check-ins) run on both databases; the rest on SQLite only
# (a PostgreSQL database per test costs seconds).
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def outreach_url(fresh_db, monkeypatch) -> str:
    url = fresh_db("outreach")
    monkeypatch.setenv("OUTREACH_DB_URL", url)
    return url


@pytest.fixture
def app(review_env, outreach_url):
    from bot.review.app import create_app

    app = create_app(review_env["tracker"], review_env["review"], SECRET_KEY=SECRET)
    app.config["TESTING"] = True
    yield app
    context = app.extensions["review"]
    context.store.engine.dispose()
    context.review_db.dispose()
    app.extensions["appointments"].engine.dispose()


def local_day(days: int) -> str:
    return (datetime.now(ZoneInfo(ZONE)) + timedelta(days=days)).date().isoformat()


def form(client, path: str, **fields) -> dict:
    token = csrf_token(client.get(path).get_data(as_text=True))
    base = {"phone": "(312) 555-0142", "procedure": "lumbar", "date": local_day(10), "time": "09:30",
            "time_zone": ZONE, "consent": "yes", "csrf_token": token}
    return {**base, **fields}


def add(client, **fields):
    return client.post("/appointments/new", data=form(client, "/appointments/new", **fields))


def record_sent(box, message, body: str, at: float) -> None:
    """What the outreach worker records for a text Twilio accepted (its claim, then the outcome)."""
    assert box.claim(message, "test-worker", at)
    assert box.finish_many([(message.id, box.sent(body, "SM" + "0" * 32, at, at))], "test-worker") == 1


def store(app) -> ap.AppointmentStore:
    return app.extensions["appointments"]


def actions(app) -> list[str]:
    entries, _ = accesslog.read(app.extensions["review"].review_db, limit=200)
    return [entry.action for entry in entries]


@sqlite_only
def test_pages_need_a_signed_in_user(anon):
    for path in ("/appointments", "/appointments/new", "/appointments/1", "/appointments/import",
                 "/appointments/no-reply"):
        response = anon.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path
    assert anon.post("/appointments/new", data={"phone": "3125550142"}).status_code in (302, 400)


def test_add_shows_the_appointment_and_its_planned_texts(app, client):
    response = add(client)
    assert response.status_code == 302
    booked = store(app).list_appointments()[0]
    assert response.headers["Location"].endswith(f"/appointments/{booked.id}")
    assert (booked.phone, booked.procedure, booked.time_zone, booked.consent, booked.created_by) == (
        "+13125550142", "lumbar", ZONE, True, "nurse.kim")
    assert booked.local_start.strftime("%H:%M") == "09:30"
    page = client.get(f"/appointments/{booked.id}").get_data(as_text=True)
    assert "+13125550142" in page and "Lumbar (lower back)" in page
    rows = re.findall(r'<tr class="ap-msg-row[^"]*" id="message-\d+">', page)
    planned = outbox.messages_for_appointment(booked.id, url=app.extensions["appointments_url"])
    assert len(rows) == len(planned) == 4  # a week before, the day before, two check-ins
    assert page.count(">Waiting<") == 4
    assert "Day before" in page and "Check-in next day" in page
    assert actions(app)[:2] == ["view_appointment", "appointment_add"]
    listing = client.get("/appointments").get_data(as_text=True)
    assert f'id="appointment-{booked.id}"' in listing and "+13125550142" not in listing  # masked in the list
    assert "+1•••••0142" in listing


@sqlite_only
def test_bad_values_are_shown_per_field_and_nothing_is_stored(app, client):
    response = add(client, phone="<script>alert(1)</script>", procedure="knee", date="2020-01-01", time="9am",
                   time_zone="Mars/Olympus")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Nothing was saved" in page and "<script>alert(1)" not in page and "&lt;script&gt;" in page
    for field in ("phone", "procedure", "time", "time_zone"):
        assert f'id="p-{field}"' in page, field
    assert store(app).count() == 0
    past = add(client, date=local_day(-2))
    assert past.status_code == 400 and "Is in the past" in past.get_data(as_text=True)
    assert store(app).count() == 0


@sqlite_only
def test_without_consent_nothing_is_planned(app, client):
    add(client, consent="")
    booked = store(app).list_appointments()[0]
    assert not booked.consent
    page = client.get(f"/appointments/{booked.id}").get_data(as_text=True)
    assert "No consent: no texts" in page and "the patient has not agreed" in page
    assert outbox.messages_for_appointment(booked.id, url=app.extensions["appointments_url"]) == []


def test_moving_an_appointment_moves_its_waiting_texts(app, client):
    add(client)
    booked = store(app).list_appointments()[0]
    edit_page = client.get(f"/appointments/{booked.id}/edit").get_data(as_text=True)
    assert 'value="+13125550142"' in edit_page and f'value="{local_day(10)}"' in edit_page
    stamp = re.search(r'name="stamp" value="([^"]+)"', edit_page).group(1)
    response = client.post(f"/appointments/{booked.id}/edit", data=form(
        client, f"/appointments/{booked.id}/edit", date=local_day(12), time="14:00", stamp=stamp))
    assert response.status_code == 302
    moved = store(app).get(booked.id)
    assert moved.version == 2 and moved.local_start.strftime("%H:%M") == "14:00"
    rows = outbox.messages_for_appointment(booked.id, url=app.extensions["appointments_url"])
    assert sorted((row.appointment_version, row.status, row.reason) for row in rows) == (
        [(1, "cancelled", "rescheduled")] * 4 + [(2, "pending", None)] * 4)
    page = client.get(f"/appointments/{booked.id}").get_data(as_text=True)
    assert page.count("appointment moved") == 4 and "moved 1 time" in page

    # a form loaded before someone else's change does not overwrite it
    stale = client.post(f"/appointments/{booked.id}/edit", data=form(
        client, f"/appointments/{booked.id}/edit", date=local_day(20), stamp=stamp))
    assert stale.status_code == 302 and store(app).get(booked.id).version == 2
    assert "Someone changed this appointment" in client.get(f"/appointments/{booked.id}").get_data(as_text=True)


@sqlite_only
def test_cancelling_needs_the_box_ticked_and_cancels_waiting_texts(app, client):
    add(client)
    booked = store(app).list_appointments()[0]
    token = csrf_token(client.get(f"/appointments/{booked.id}").get_data(as_text=True))
    client.post(f"/appointments/{booked.id}/cancel", data={"csrf_token": token})
    assert store(app).get(booked.id).active
    response = client.post(f"/appointments/{booked.id}/cancel", data={"csrf_token": token, "confirm": "1"})
    assert response.status_code == 302 and store(app).get(booked.id).status == "cancelled"
    rows = outbox.messages_for_appointment(booked.id, url=app.extensions["appointments_url"])
    assert {(row.status, row.reason) for row in rows} == {("cancelled", "appointment_cancelled")}
    page = client.get(f"/appointments/{booked.id}").get_data(as_text=True)
    assert "Cancel this appointment" not in page and "Change or move" not in page
    assert client.get(f"/appointments/{booked.id}/edit").status_code == 302  # no editing a cancelled one
    assert "appointment_cancel" in actions(app)


@sqlite_only
def test_a_post_without_the_csrf_token_is_refused(app, client):
    response = client.post("/appointments/new", data={"phone": "3125550142", "procedure": "lumbar",
                                                      "date": local_day(5), "time": "10:00", "time_zone": ZONE})
    assert response.status_code == 400 and store(app).count() == 0


def test_csv_import_all_or_nothing(app, client):
    good = (HEADER + f"(312) 555-0142,lumbar,{local_day(8)},09:30,{ZONE},yes\n"
            f"+44 7911 123456,cervical,{local_day(9)},14:00,Europe/London,no\n")
    token = csrf_token(client.get("/appointments/import").get_data(as_text=True))
    bad = good + f"555-01,lumbar,{local_day(9)},25:00,{ZONE},yes\n"
    response = client.post("/appointments/import", data={
        "csrf_token": token, "file": (io.BytesIO(bad.encode()), "week.csv")}, content_type="multipart/form-data")
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "Nothing was imported" in page
    assert "Line 4, phone:" in page and "Line 4, time:" in page
    assert store(app).count() == 0

    response = client.post("/appointments/import", data={
        "csrf_token": token, "file": (io.BytesIO(good.encode("utf-8-sig")), "week.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 302
    assert [a.phone for a in store(app).list_appointments()] == ["+13125550142", "+447911123456"]
    assert "Imported 2 appointment(s)." in client.get("/appointments").get_data(as_text=True)

    again = client.post("/appointments/import", data={"csrf_token": token, "text": good})
    assert again.status_code == 302 and store(app).count() == 2
    assert "2 row(s) were already booked" in client.get("/appointments").get_data(as_text=True)
    assert actions(app).count("appointment_import") == 2


@sqlite_only
def test_csv_import_refuses_an_empty_or_non_utf8_file(app, client):
    token = csrf_token(client.get("/appointments/import").get_data(as_text=True))
    assert client.post("/appointments/import", data={"csrf_token": token}).status_code == 400
    latin1 = (HEADER + f"3125550142,lumbar,{local_day(8)},09:30,{ZONE},sí\n").encode("latin-1")
    response = client.post("/appointments/import", data={
        "csrf_token": token, "file": (io.BytesIO(latin1), "week.csv")}, content_type="multipart/form-data")
    assert response.status_code == 400 and "not UTF-8" in response.get_data(as_text=True)
    assert store(app).count() == 0


def test_list_filters(app, client):
    for phone, days in (("3125550142", 3), ("3125550143", 4)):
        add(client, phone=phone, date=local_day(days))
    first = store(app).list_appointments()[0]
    token = csrf_token(client.get("/appointments").get_data(as_text=True))
    client.post(f"/appointments/{first.id}/cancel", data={"csrf_token": token, "confirm": "1"})

    def ids(query: str) -> list[str]:
        return re.findall(r'id="appointment-(\d+)"', client.get("/appointments" + query).get_data(as_text=True))

    assert len(ids("")) == 1 and len(ids("?status=all")) == 2 and ids("?status=cancelled") == [str(first.id)]
    assert ids("?status=all&phone=(312)+555-0143") == [str(first.id + 1)]
    assert ids("?when=past&status=all") == []
    for query in ("?status=maybe", "?when=tomorrow", "?phone=abc", "?page=0", "?page=x"):
        assert client.get("/appointments" + query).status_code == 400, query
    assert client.get("/appointments/999999").status_code == 404
    assert client.get("/appointments/0").status_code == 404


def test_unanswered_check_ins_are_listed_until_the_patient_writes(app, client):
    """Check-ins sent (by the outbox, as the worker would) to the two SMS patients of the test conversations:
    +447700900123 last wrote 45 days ago (after the check-in: no reply), +15551234567 two days ago."""
    url = app.extensions["appointments_url"]
    now = time.time()
    sent = {}
    for phone in ("+447700900123", "+15551234567"):
        booked_at = now - 10 * 86400
        start = datetime.fromtimestamp(now - 4 * 86400, ZoneInfo(ZONE))
        values = ap.check_values(phone, "cervical", start.date().isoformat(), start.strftime("%H:%M"), ZONE, "yes",
                                 now=booked_at)
        appointment = ap.AppointmentStore(url).add(values, "nurse.kim", now=booked_at)
        box = outbox.Outbox(url)
        checkin = next(m for m in box.messages_for_appointment(appointment.id) if m.message_key == "checkin_next_day")
        sent_at = now - 3 * 86400
        record_sent(box, checkin, "How are you feeling since your shot?", sent_at)
        sent[phone] = appointment.id
    page = client.get("/appointments/no-reply").get_data(as_text=True)
    assert f'id="no-reply-{sent["+447700900123"]}"' in page and "+447700900123" in page
    assert f'id="no-reply-{sent["+15551234567"]}"' not in page
    assert "3 d 0 h" in page and "within 24 hours" in page
    assert 'title="Check-ins with no reply: consider calling"' in page  # the count on every page, in the nav
    assert re.search(r"\(check-ins with no reply: </span>1<", page)
    assert "view_no_reply" in actions(app)


@sqlite_only
def test_the_access_log_names_the_appointment_actions(app, client):
    client.get(add(client).headers["Location"])
    page = client.get("/access-log").get_data(as_text=True)
    assert "Added an appointment" in page and "Viewed an appointment and its texts" in page


@sqlite_only
def test_a_second_staff_member_sees_who_added_and_changed(app, client, staff_user):
    from bot.review import auth

    auth.create_user(app.extensions["review"].review_db, "dr.lee", "another long pass phrase")
    add(client)
    booked = store(app).list_appointments()[0]
    other = app.test_client()
    assert login(other, "dr.lee", "another long pass phrase").status_code == 302
    edit_page = other.get(f"/appointments/{booked.id}/edit").get_data(as_text=True)
    stamp = re.search(r'name="stamp" value="([^"]+)"', edit_page).group(1)
    other.post(f"/appointments/{booked.id}/edit", data=form(other, f"/appointments/{booked.id}/edit", consent="",
                                                             stamp=stamp))
    page = client.get(f"/appointments/{booked.id}").get_data(as_text=True)
    assert "Added by nurse.kim" in page and "last changed by dr.lee" in page and "moved" not in page
    assert {(r.status, r.reason) for r in outbox.messages_for_appointment(booked.id, url=app.extensions[
        "appointments_url"])} == {("cancelled", "no_consent")}


@sqlite_only
def test_a_broken_schedule_file_refuses_changes_with_its_error(app, client, monkeypatch, tmp_path):
    from bot.outreach import schedule

    broken = tmp_path / "knowledge"
    broken.mkdir()
    text = (schedule.schedule_path()).read_text().replace('at: "17:00"', 'at: "5pm"')
    (broken / "outreach_schedule.yml").write_text(text)
    monkeypatch.setattr(schedule, "schedule_path", lambda: broken / "outreach_schedule.yml")
    schedule.schedule.cache_clear()
    try:
        response = add(client)
        page = response.get_data(as_text=True)
        assert response.status_code == 503 and "Nothing was changed" in page
        assert "entry &#39;day_before&#39;, field &#39;at&#39;" in page
        assert store(app).count() == 0
    finally:
        schedule.schedule.cache_clear()


@sqlite_only
def test_a_patient_who_texted_stop_is_shown_as_such(app, client, review_env):
    from bot.channels.sms import SmsStateStore

    add(client)
    booked = store(app).list_appointments()[0]
    assert "Texted STOP" not in client.get(f"/appointments/{booked.id}").get_data(as_text=True)
    SmsStateStore(review_env["tracker"], redis_url="").set_opted_out(booked.phone, True)  # what STOP records
    assert "Texted STOP: no texts" in client.get(f"/appointments/{booked.id}").get_data(as_text=True)


@sqlite_only
def test_an_appointment_already_past_can_still_change_consent_but_not_move_into_the_past(app, client):
    now = time.time()
    start = datetime.fromtimestamp(now - 86400, ZoneInfo(ZONE))
    values = ap.check_values("3125550142", "lumbar", start.date().isoformat(), start.strftime("%H:%M"), ZONE, "yes",
                             now=now - 5 * 86400)
    booked = store(app).add(values, "nurse.kim", now=now - 5 * 86400)
    page = client.get(f"/appointments/{booked.id}/edit").get_data(as_text=True)
    stamp = re.search(r'name="stamp" value="([^"]+)"', page).group(1)
    fields = {"date": start.date().isoformat(), "time": start.strftime("%H:%M"), "stamp": stamp}
    earlier = client.post(f"/appointments/{booked.id}/edit", data=form(
        client, f"/appointments/{booked.id}/edit", **{**fields, "time": "00:00" if start.hour else "00:01"}))
    assert earlier.status_code == 400 and "Is in the past" in earlier.get_data(as_text=True)
    kept = client.post(f"/appointments/{booked.id}/edit", data=form(
        client, f"/appointments/{booked.id}/edit", consent="", **fields))
    assert kept.status_code == 302
    changed = store(app).get(booked.id)
    assert not changed.consent and changed.version == 1 and changed.starts_at == booked.starts_at


@sqlite_only
def test_a_file_over_the_upload_limit_gets_a_page_that_says_what_to_do(app, client):
    token = csrf_token(client.get("/appointments/import").get_data(as_text=True))
    rows = "".join(f"312555{1000 + n:04d},lumbar,{local_day(8)},09:30,{ZONE},yes\n" for n in range(1500))
    response = client.post("/appointments/import", data={
        "csrf_token": token, "file": (io.BytesIO((HEADER + rows).encode()), "big.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 413 and "python -m bot.outreach import FILE" in response.get_data(as_text=True)
    assert store(app).count() == 0
