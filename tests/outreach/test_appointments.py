"""Appointments: E.164 phone numbers, checked values, reschedule versions, and the all-or-nothing CSV import,
on SQLite and PostgreSQL (the `outreach_url` fixture)."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

from bot.outreach import appointments as ap
from bot.outreach.db import metadata, outreach_engine
from tests.scratch_db import scratch_postgres_database

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc).timestamp()
HEADER = "phone,procedure,date,time,time_zone,consent\n"


@pytest.fixture(scope="module")
def postgres_database(postgres_server_url):
    """One PostgreSQL database for the module (emptied before each test): creating one per test costs seconds."""
    if not postgres_server_url:
        if os.environ.get("REVIEW_REQUIRE_POSTGRES") == "1":
            pytest.fail("no PostgreSQL: scripts/ensure_postgres.sh failed")
        pytest.skip("no PostgreSQL available")
    with scratch_postgres_database(postgres_server_url, "outreach") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def outreach_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outreach.db'}"
    url = request.getfixturevalue("postgres_database")
    engine = outreach_engine(url)
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())
    return url


@pytest.fixture
def store(outreach_url):
    return ap.AppointmentStore(outreach_url)


def values(phone="312 555 0142", procedure="lumbar", day="2026-03-15", at="09:30", zone="America/Chicago",
           consent="yes"):
    return ap.check_values(phone, procedure, day, at, zone, consent, now=NOW)


# --- phone numbers ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "expected"), [
    ("(312) 555-0142", "+13125550142"),
    ("312.555.0142", "+13125550142"),
    ("1 312 555 0142", "+13125550142"),
    ("+1 (312) 555-0142", "+13125550142"),
    ("+44 7911 123456", "+447911123456"),
    ("0044 7911 123456", "+447911123456"),
    ("+49 30 1234567", "+49301234567"),
])
def test_phone_numbers_are_normalised_to_e164(raw, expected):
    assert ap.normalise_phone(raw, country_code="1") == expected


def test_national_numbers_get_the_configured_country_code(monkeypatch):
    monkeypatch.setenv("OUTREACH_COUNTRY_CODE", "44")
    assert ap.normalise_phone("07911 123456") == "+447911123456"
    monkeypatch.setenv("OUTREACH_COUNTRY_CODE", "1")
    assert ap.normalise_phone("312-555-0142") == "+13125550142"


@pytest.mark.parametrize("raw", ["", "  ", "555-0142", "(012) 555-0142", "(112) 555-0142", "+1 312 555 01420",
                                 "phone", "312-555-0142 ext 4", "+44 12", "++13125550142", "+0 312 555 0142",
                                 "3125550142+", "+" + "9" * 16, "\x00312"])
def test_invalid_phone_numbers_are_refused(raw):
    with pytest.raises(ap.PhoneError):
        ap.normalise_phone(raw, country_code="1")


# --- checked values ----------------------------------------------------------------------------------
def test_check_values_names_every_bad_field():
    with pytest.raises(ap.AppointmentError) as caught:
        ap.check_values("12", "knee", "2026-02-30", "25:00", "Mars/Olympus", "maybe", now=NOW)
    assert set(caught.value.problems) == {"phone", "procedure", "date", "time", "time_zone", "consent"}


def test_local_time_is_stored_in_utc_with_the_zone():
    checked = values(day="2026-03-15", at="09:30", zone="America/Chicago")  # after the March 8 clock change
    assert checked.starts_at == datetime(2026, 3, 15, 14, 30, tzinfo=timezone.utc)
    winter = values(day="2026-03-05", at="09:30")
    assert winter.starts_at == datetime(2026, 3, 5, 15, 30, tzinfo=timezone.utc)


def test_a_time_that_happens_twice_when_clocks_go_back_is_the_first_one():
    checked = ap.check_values("312 555 0142", "lumbar", "2026-11-01", "01:30", "America/Chicago", "yes", now=NOW)
    assert checked.starts_at == datetime(2026, 11, 1, 6, 30, tzinfo=timezone.utc)  # 01:30 CDT, before the change


def test_a_time_skipped_by_the_clock_change_and_a_past_time_are_refused():
    with pytest.raises(ap.AppointmentError) as caught:
        values(day="2026-03-08", at="02:30")  # clocks jump from 2:00 to 3:00 in Chicago
    assert "clocks change" in caught.value.problems["time"]
    with pytest.raises(ap.AppointmentError) as caught:
        values(day="2026-02-27")
    assert caught.value.problems == {"date": "is in the past"}
    own_time = values(day="2026-03-15").starts_at  # a booked appointment keeps its time once it has passed
    later = datetime(2026, 3, 20, tzinfo=timezone.utc).timestamp()
    kept = ap.check_values("312 555 0142", "lumbar", "2026-03-15", "09:30", "America/Chicago", "no", now=later,
                           past_start=own_time)
    assert kept.starts_at == own_time and not kept.consent
    with pytest.raises(ap.AppointmentError):  # but it cannot be moved to another past time
        ap.check_values("312 555 0142", "lumbar", "2026-03-16", "09:30", "America/Chicago", "no", now=later,
                        past_start=own_time)


# --- the store ------------------------------------------------------------------------------------------
def test_add_get_update_cancel(store):
    booked = store.add(values(), "nurse.kim", now=NOW)
    assert (booked.phone, booked.procedure, booked.status, booked.version, booked.consent) == (
        "+13125550142", "lumbar", "active", 1, True)
    assert booked.local_start.strftime("%Y-%m-%d %H:%M %Z") == "2026-03-15 09:30 CDT"
    assert store.get(booked.id) == booked

    same_time = store.update(booked.id, values(consent="no"), "dr.lee", now=NOW + 60)
    assert (same_time.version, same_time.consent, same_time.updated_by) == (1, False, "dr.lee")
    moved = store.update(booked.id, values(day="2026-03-16"), "dr.lee", now=NOW + 120)
    assert moved.version == 2 and moved.created_by == "nurse.kim" and moved.updated_at == NOW + 120

    cancelled = store.cancel(booked.id, "dr.lee", now=NOW + 180)
    assert cancelled.status == "cancelled" and cancelled.version == 2
    assert store.cancel(booked.id, "someone.else", now=NOW + 240).updated_by == "dr.lee"  # twice: no change
    with pytest.raises(ap.AppointmentError):
        store.update(booked.id, values(), "dr.lee", now=NOW + 300)
    with pytest.raises(ap.NotFound):
        store.get(booked.id + 1000)


def test_list_active_keeps_recent_and_future_active_appointments(store):
    soon = store.add(values(day="2026-03-15"), "kim", now=NOW)
    later = store.add(values(phone="312 555 0143", day="2026-04-15"), "kim", now=NOW)
    gone = store.add(values(phone="312 555 0144", day="2026-03-20"), "kim", now=NOW)
    store.cancel(gone.id, "kim", now=NOW)
    assert [a.id for a in store.list_active(now=NOW)] == [soon.id, later.id]
    a_month_later = datetime(2026, 4, 14, tzinfo=timezone.utc).timestamp()
    assert [a.id for a in store.list_active(now=a_month_later)] == [later.id]
    assert store.count(status="cancelled") == 1 and store.count() == 3


def test_change_hooks_run_in_the_same_transaction(store):
    seen = []

    def hook(connection, appointment, now):
        seen.append((appointment.status, appointment.version, now))
        if appointment.procedure == "cervical":
            raise RuntimeError("the outbox refused")

    ap.add_change_hook(hook)
    try:
        booked = store.add(values(), "kim", now=NOW)
        store.update(booked.id, values(day="2026-03-16"), "kim", now=NOW + 1)
        store.cancel(booked.id, "kim", now=NOW + 2)
        with pytest.raises(RuntimeError):
            store.add(values(phone="312 555 0199", procedure="cervical"), "kim", now=NOW)
    finally:
        ap._change_hooks.remove(hook)
    assert seen[:3] == [("active", 1, NOW), ("active", 2, NOW + 1), ("cancelled", 2, NOW + 2)]
    assert store.list_appointments(phone="+13125550199") == []  # the failed hook rolled the booking back


# --- CSV import ------------------------------------------------------------------------------------------
def test_a_good_file_is_imported_and_a_second_import_books_nothing_twice(store):
    text = (HEADER + "(312) 555-0142,lumbar,2026-03-15,09:30,America/Chicago,yes\n"
            "\n"
            "+44 7911 123456,Cervical,2026-03-16,14:00,Europe/London,no\n")
    report = store.import_csv(text, "kim", now=NOW)
    assert report.ok and len(report.added) == 2 and report.duplicates == []
    rows = store.list_appointments()
    assert [(a.phone, a.procedure, a.time_zone, a.consent) for a in rows] == [
        ("+13125550142", "lumbar", "America/Chicago", True), ("+447911123456", "cervical", "Europe/London", False)]
    again = store.import_csv(text, "kim", now=NOW)
    assert again.ok and again.added == [] and again.duplicates == [2, 4]
    assert store.count() == 2


def test_one_bad_row_stores_nothing_and_every_problem_is_named_by_line_and_field(store):
    text = (HEADER + "3125550142,lumbar,2026-03-15,09:30,America/Chicago,yes\n"
            "555-01,lumbar,2026-03-15,09:30,America/Chicago,yes\n"
            "3125550143,knee,2026-03-32,9am,America/Chicago,sure\n"
            "3125550144,cervical,2026-03-15,09:30,Chicago,yes\n"
            "3125550142,lumbar,2026-03-15,09:30,America/Chicago,yes\n"
            "3125550145,lumbar,2026-03-15\n")
    report = store.import_csv(text, "kim", now=NOW)
    assert not report.ok and report.added == []
    found = {(error.line, error.field) for error in report.errors}
    assert found == {(3, "phone"), (4, "procedure"), (4, "date"), (4, "time"), (4, "consent"), (5, "time_zone"),
                     (6, "row"), (7, "row")}
    assert "line 2" in next(str(e) for e in report.errors if e.line == 6)
    assert store.count() == 0


@pytest.mark.parametrize(("text", "problem"), [
    ("", "is empty"),
    ("phone,procedure,date,time,consent\n", "missing column(s): time_zone"),
    (HEADER.strip() + ",notes\n", "unknown column(s): notes"),
    ("phone,phone,procedure,date,time,time_zone,consent\n", "named twice"),
])
def test_header_problems(store, text, problem):
    report = store.import_csv(text, "kim", now=NOW)
    assert report.errors and report.errors[0].line == 1 and problem in report.errors[0].message


def test_header_may_be_in_any_order_with_a_byte_order_mark_and_spreadsheet_quoting(store):
    text = ('\ufeffConsent,Time Zone,Time,Date,Procedure,Phone\r\n'
            '"yes","America/New_York","08:00","2026-03-20","lumbar","(212) 555-0100"\r\n')
    report = store.import_csv(text, "kim", now=NOW)
    assert report.ok, report.errors
    assert store.get(report.added[0]).phone == "+12125550100"


def test_a_failure_while_storing_rolls_the_whole_file_back(store):
    def refuse_second(connection, appointment, now):
        if appointment.phone.endswith("0143"):
            raise RuntimeError("database went away")

    ap.add_change_hook(refuse_second)
    try:
        with pytest.raises(RuntimeError):
            store.import_csv(HEADER + "3125550142,lumbar,2026-03-15,09:30,America/Chicago,yes\n"
                                      "3125550143,lumbar,2026-03-15,09:30,America/Chicago,yes\n", "kim", now=NOW)
    finally:
        ap._change_hooks.remove(refuse_second)
    assert store.count() == 0


def test_too_many_rows_are_refused(store):
    rows = "".join(f"312555{1000 + n:04d},lumbar,2026-03-15,09:30,America/Chicago,yes\n"
                   for n in range(ap.MAX_CSV_ROWS + 1))
    report = store.import_csv(HEADER + rows, "kim", now=NOW)
    assert not report.ok and any(f"more than {ap.MAX_CSV_ROWS}" in e.message for e in report.errors)
    assert store.count() == 0
