"""The outreach schedule: the shipped file reads plainly, fits in a text, copies no leaflet sentence, cites
leaflet sections; a broken file names the file, message and field; due times follow the patient's wall clock
across clock changes and skip quiet hours; plans skip what must not be sent."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import yaml

from bot.datafile import DataFileError
from bot.knowledge_lint import SECTIONS
from bot.outreach.appointments import Appointment
from bot.outreach.schedule import (
    CHECKIN,
    REMINDER,
    QuietHours,
    appointment_placeholders,
    load_schedule,
    longest_rendering,
    render,
    schedule_path,
)
from bot.readability import reading_grade
from bot.settings import load_clinic_settings
from bot.shingles import copied_runs, read_hashes
from bot.vocabulary import SMS_MAX_CHARS

CHICAGO = "America/Chicago"
MAX_GRADE = 8.0


@pytest.fixture(scope="module")
def shipped():
    return load_schedule()


@pytest.fixture(scope="module")
def settings():
    return load_clinic_settings()


def appointment(local: str, zone: str = CHICAGO, procedure: str = "lumbar", **changes) -> Appointment:
    start = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone)).astimezone(timezone.utc)
    booked = Appointment(id=1, phone="+13125550142", procedure=procedure, starts_at=start, time_zone=zone,
                         consent=True, status="active", version=1, created_by="kim", created_at=0.0,
                         updated_by="kim", updated_at=0.0)
    return replace(booked, **changes)


def texts(schedule, settings):
    for message in schedule.messages:
        for variant, text in message.texts.items():
            yield f"{message.key}.{variant}", longest_rendering(text, settings)


# --- the shipped file ---------------------------------------------------------------------------------
def test_the_shipped_schedule_has_the_reminders_and_check_ins_of_the_issue(shipped):
    kinds = {message.key: (message.kind, message.days) for message in shipped.messages}
    assert kinds == {"week_before": (REMINDER, -7), "day_before": (REMINDER, -1), "checkin_next_day": (CHECKIN, 1),
                     "checkin_day_3": (CHECKIN, 3)}
    assert shipped.quiet_hours == QuietHours(time(20, 0), time(9, 0))
    assert shipped.checkin_no_reply == timedelta(hours=24)
    for message in shipped.messages:
        if message.kind == CHECKIN:
            for text in message.texts.values():
                assert "Reply 1 if you feel OK, 2 if you have a question" in text, message.key


def test_texts_fit_in_one_sms_reply_with_the_longest_values(shipped, settings):
    assert {name: len(text) for name, text in texts(shipped, settings) if len(text) > SMS_MAX_CHARS} == {}


def test_texts_read_at_grade_8_or_below(shipped, settings):
    hard = {name: round(reading_grade(text), 1) for name, text in texts(shipped, settings)
            if reading_grade(text) > MAX_GRADE}
    assert hard == {}


def test_no_run_of_eight_words_is_copied_from_a_leaflet(shipped, settings):
    hashes = read_hashes()
    assert len(hashes) > 1000
    assert {name: copied_runs(text, hashes) for name, text in texts(shipped, settings)
            if copied_runs(text, hashes)} == {}


def test_every_message_cites_real_leaflet_sections(shipped):
    for message in shipped.messages:
        for source in message.sources:
            assert source.section in SECTIONS[source.leaflet], (message.key, source)


def test_lumbar_and_cervical_variants_name_their_own_body_part(shipped):
    """Where a text names the body part, each procedure gets its own variant (lower back / neck)."""
    for message in shipped.messages:
        for variant, text in message.texts.items():
            if variant == "lumbar":
                assert "neck" not in text and "shoulder" not in text, message.key
            if variant == "cervical":
                assert "lower back" not in text and "leg" not in text, message.key
            if variant == "general":
                assert "neck" not in text and "lower back" not in text, message.key
    day_before = shipped.message("day_before")
    assert "sleep" in day_before.text_for("lumbar") and "sleep" not in day_before.text_for("cervical")


def test_render_fills_clinic_and_appointment_values(shipped, settings):
    booked = appointment("2026-03-09T09:30", procedure="cervical")
    text = render(shipped.message("week_before"), booked, settings)
    assert "neck" in text and "Monday, March 9 at 9:30 AM" in text and settings.clinic_name in text
    assert "{" not in text
    assert appointment_placeholders(datetime(2026, 1, 1, 0, 5)) == {"date": "Thursday, January 1", "time": "12:05 AM"}
    assert appointment_placeholders(datetime(2026, 1, 1, 12, 0))["time"] == "12:00 PM"


# --- validation -----------------------------------------------------------------------------------------
GOOD = """
quiet_hours: {start: "20:00", end: "09:00"}
checkin_no_reply_hours: 24
messages:
  - key: week_before
    kind: reminder
    days: -7
    at: "10:00"
    sources: [{leaflet: lumbar, section: "The week before your procedure"}]
    text: {general: "Your shot is {date} at {time}. Plan a ride home."}
"""


def write(tmp_path, text):
    path = tmp_path / "outreach_schedule.yml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(("old", "new", "entry", "field"), [
    ('kind: reminder', 'kind: nudge', "week_before", "kind"),
    ('days: -7', 'days: 2', "week_before", "days"),
    ('days: -7', 'days: "-7"', "week_before", "days"),
    ('at: "10:00"', 'at: "25:00"', "week_before", "at"),
    ('at: "10:00"', 'at: 10', "week_before", "at"),
    ('key: week_before', 'key: Week Before', "message 1", "key"),
    ('{general: "Your', '{knee: "Your', "week_before", "text"),
    ('{general: "Your', '{lumbar: "Your', "week_before", "text"),
    ('{time}.', '{room}.', "week_before", "text.general"),
    ('Plan a ride home.', 'Plan a ride home. ' + 'Bring your list. ' * 20, "week_before", "text.general"),
    ('text: {general', 'txt: {general', "week_before", "txt"),
    ('leaflet: lumbar', 'leaflet: knee', "week_before", "sources"),
    ('sources: [{leaflet: lumbar, section: "The week before your procedure"}]', 'sources: []', "week_before",
     "sources"),
    ('end: "09:00"', 'end: "9am"', None, "quiet_hours.end"),
    ('{start: "20:00", end: "09:00"}', '"20:00-09:00"', None, "quiet_hours"),
    ('checkin_no_reply_hours: 24', 'checkin_no_reply_hours: 0', None, "checkin_no_reply_hours"),
    ('checkin_no_reply_hours: 24', 'checkin_no_reply: 24', None, "checkin_no_reply"),
])
def test_a_broken_file_names_the_file_the_message_and_the_field(tmp_path, settings, old, new, entry, field):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(DataFileError) as caught:
        load_schedule(path, settings)
    assert caught.value.path == str(path) and caught.value.field == field and caught.value.entry == entry
    assert str(path) in str(caught.value)


def test_a_check_in_must_come_after_and_keys_must_be_unique(tmp_path, settings):
    checkin = GOOD.replace("kind: reminder", "kind: checkin")
    with pytest.raises(DataFileError, match="days must be 1 or more"):
        load_schedule(write(tmp_path, checkin), settings)
    twice = GOOD + GOOD.split("messages:\n", 1)[1]
    with pytest.raises(DataFileError, match="key used twice: week_before"):
        load_schedule(write(tmp_path, twice), settings)
    with pytest.raises(DataFileError, match="not valid YAML"):
        load_schedule(write(tmp_path, "messages: [\n"), settings)
    with pytest.raises(DataFileError, match="file not found"):
        load_schedule(tmp_path / "missing.yml", settings)


def test_the_shipped_file_is_plain_yaml_a_clinic_can_edit():
    raw = yaml.safe_load(schedule_path().read_text())
    assert set(raw) == {"quiet_hours", "checkin_no_reply_hours", "messages"}


# --- due times ------------------------------------------------------------------------------------------
def local(due: datetime, zone: str = CHICAGO) -> str:
    return due.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def test_due_times_follow_the_patients_wall_clock_across_a_clock_change(shipped):
    # Chicago moves its clocks forward on 2026-03-08 and back on 2026-11-01.
    spring = appointment("2026-03-12T09:30")
    due = {m.key: local(shipped.due_at(m, spring.starts_at, CHICAGO)) for m in shipped.messages}
    assert due == {"week_before": "2026-03-05 10:00 CST", "day_before": "2026-03-11 17:00 CDT",
                   "checkin_next_day": "2026-03-13 10:00 CDT", "checkin_day_3": "2026-03-15 10:00 CDT"}
    autumn = appointment("2026-11-05T08:00")
    week_before = shipped.due_at(shipped.message("week_before"), autumn.starts_at, CHICAGO)
    assert local(week_before) == "2026-10-29 10:00 CDT" and week_before.hour == 15  # 10:00 CDT is 15:00 UTC
    assert shipped.due_at(shipped.message("checkin_next_day"), autumn.starts_at, CHICAGO).hour == 16  # CST


def test_the_same_schedule_in_another_zone_is_that_zones_wall_clock(shipped):
    tokyo = appointment("2026-06-10T13:00", zone="Asia/Tokyo")
    due = shipped.due_at(shipped.message("day_before"), tokyo.starts_at, "Asia/Tokyo")
    assert local(due, "Asia/Tokyo") == "2026-06-09 17:00 JST"


@pytest.mark.parametrize(("at", "expected"), [
    ("19:59", "2026-05-04 19:59"),  # just before quiet hours: as planned
    ("20:00", "2026-05-05 09:00"),  # quiet from 20:00: next morning
    ("23:30", "2026-05-05 09:00"),
    ("00:10", "2026-05-04 09:00"),  # after midnight: the same morning
    ("08:59", "2026-05-04 09:00"),
    ("09:00", "2026-05-04 09:00"),
])
def test_a_message_due_in_quiet_hours_goes_at_the_next_allowed_time(shipped, at, expected):
    hour, minute = map(int, at.split(":"))
    message = replace(shipped.message("checkin_next_day"), at=time(hour, minute))
    booked = appointment("2026-05-03T11:00")
    due = shipped.due_at(message, booked.starts_at, CHICAGO)
    assert local(due)[:16] == expected


def test_quiet_hours_that_do_not_span_midnight_and_none():
    zone = ZoneInfo("UTC")
    lunch = QuietHours(time(12, 0), time(13, 0))
    noon = datetime(2026, 5, 4, 12, 30, tzinfo=timezone.utc)
    assert lunch.next_allowed(noon, zone) == datetime(2026, 5, 4, 13, 0, tzinfo=timezone.utc)
    assert QuietHours(time(0, 0), time(0, 0)).next_allowed(noon, zone) == noon


def test_a_wall_time_skipped_by_the_clock_change_moves_forward(shipped):
    message = replace(shipped.message("checkin_next_day"), at=time(2, 30))
    quiet_free = replace(shipped, quiet_hours=QuietHours(time(0, 0), time(0, 0)))
    booked = appointment("2026-03-07T11:00")  # the next day is 2026-03-08: 02:30 does not exist in Chicago
    assert local(quiet_free.due_at(message, booked.starts_at, CHICAGO)) == "2026-03-08 03:30 CDT"


# --- plans ----------------------------------------------------------------------------------------------
def test_plan_lists_every_message_in_time_order(shipped):
    booked = appointment("2026-03-12T09:30")
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert [m.key for m, _ in shipped.plan(booked, now)] == ["week_before", "day_before", "checkin_next_day",
                                                              "checkin_day_3"]


def test_plan_skips_what_must_not_be_sent(shipped):
    booked = appointment("2026-03-12T09:30")
    late_booking = datetime(2026, 3, 8, tzinfo=timezone.utc)  # the week-before reminder's time has passed
    assert [m.key for m, _ in shipped.plan(booked, late_booking)] == ["day_before", "checkin_next_day",
                                                                      "checkin_day_3"]
    after = datetime(2026, 3, 14, tzinfo=timezone.utc)
    assert [m.key for m, _ in shipped.plan(booked, after)] == ["checkin_day_3"]
    assert shipped.plan(booked, datetime(2026, 4, 1, tzinfo=timezone.utc)) == []  # a past appointment: nothing
    assert shipped.plan(replace(booked, consent=False), datetime(2026, 3, 1, tzinfo=timezone.utc)) == []
    assert shipped.plan(replace(booked, status="cancelled"), datetime(2026, 3, 1, tzinfo=timezone.utc)) == []


def test_a_reminder_that_quiet_hours_would_push_past_the_appointment_is_dropped(shipped):
    early = appointment("2026-03-12T08:00")
    same_day = replace(shipped.message("day_before"), days=0, at=time(7, 0))  # 07:00 is quiet: 09:00 is too late
    schedule = replace(shipped, messages=(same_day,))
    assert schedule.plan(early, datetime(2026, 3, 1, tzinfo=timezone.utc)) == []
