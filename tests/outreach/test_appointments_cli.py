"""`python -m bot.outreach`: add, import, list, show, change, cancel, no-reply, check-schedule; access-logged."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.outreach import appointments as ap
from bot.outreach.cli import main

ROOT = Path(__file__).resolve().parents[2]
ZONE = "America/Chicago"


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("OUTREACH_DB_URL", f"sqlite:///{tmp_path / 'outreach.db'}")
    monkeypatch.setenv("REVIEW_DB_URL", f"sqlite:///{tmp_path / 'review.db'}")
    monkeypatch.setenv("TRACKER_DB_URL", f"sqlite:///{tmp_path / 'tracker.db'}")
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    return tmp_path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def day(days: int) -> str:
    return (datetime.now(ZoneInfo(ZONE)) + timedelta(days=days)).date().isoformat()


def access_actions(tmp_path) -> list[tuple[str, str]]:
    from bot.review import accesslog
    from bot.review.db import review_engine

    entries, _ = accesslog.read(review_engine(f"sqlite:///{tmp_path / 'review.db'}"), limit=100)
    return [(entry.action, entry.username) for entry in reversed(entries)]


def add(capsys, *extra: str) -> tuple[int, str, str]:
    values = {"--phone": "(312) 555-0142", "--procedure": "lumbar", "--date": day(10), "--time": "09:30",
              "--time-zone": ZONE, "--consent": "yes"}
    for name, value in zip(extra[::2], extra[1::2], strict=True):
        values[name] = value
    return run(capsys, "add", *[item for pair in values.items() for item in pair])


def test_add_change_show_cancel(env, capsys):
    code, out, _ = add(capsys)
    assert code == 0 and "appointment 1:" in out and "+13125550142" in out and "09:30 C" in out
    code, out, _ = run(capsys, "change", "1", "--time", "14:00")
    assert code == 0 and "14:00" in out and "version 2" in out
    code, out, _ = run(capsys, "show", "1")
    assert code == 0 and "version 2" in out
    outbox = pytest.importorskip("bot.outreach.outbox")
    rows = outbox.messages_for_appointment(1)
    assert sorted({(row.appointment_version, row.status) for row in rows}) == [(1, "cancelled"), (2, "pending")]
    assert "checkin_next_day" in out and "(rescheduled)" in out
    code, out, _ = run(capsys, "cancel", "1")
    assert code == 0 and "cancelled" in out
    assert {row.status for row in outbox.messages_for_appointment(1)} == {"cancelled"}
    actions = [action for action, _ in access_actions(env)]
    assert actions == ["appointment_add", "appointment_update", "view_appointment", "appointment_cancel"]
    assert all(user.startswith("cli:") for _, user in access_actions(env))


def test_bad_values_are_named_and_nothing_is_stored(env, capsys):
    code, _, err = add(capsys, "--phone", "555-01", "--date", "2020-02-30", "--time-zone", "Mars/Olympus")
    assert code == 1
    assert "error: phone" in err and "error: date" in err and "error: time zone" in err
    assert ap.AppointmentStore().count() == 0
    code, _, err = run(capsys, "change", "7", "--time", "10:00")
    assert code == 1 and "no appointment 7" in err


def test_import_is_all_or_nothing_and_list_masks_numbers(env, capsys):
    good = env / "week.csv"
    good.write_text("phone,procedure,date,time,time_zone,consent\n"
                    f"(312) 555-0142,lumbar,{day(5)},09:30,{ZONE},yes\n"
                    f"(312) 555-0143,cervical,{day(6)},10:00,{ZONE},no\n", encoding="utf-8")
    bad = env / "bad.csv"
    bad.write_text(good.read_text() + f"(312) 555-0144,knee,{day(6)},10:00,{ZONE},yes\n", encoding="utf-8")
    code, _, err = run(capsys, "import", str(bad))
    assert code == 1 and f"{bad}: line 4, procedure: must be lumbar or cervical" in err and "Nothing imported" in err
    assert ap.AppointmentStore().count() == 0
    code, out, _ = run(capsys, "import", str(good))
    assert code == 0 and "Imported 2 appointment(s); 0 already booked" in out
    code, out, _ = run(capsys, "import", str(good))
    assert code == 0 and "Imported 0 appointment(s); 2 already booked" in out
    code, out, _ = run(capsys, "list")
    assert code == 0 and out.count("appointment ") == 2 and "+13125550142" not in out and "0142" in out
    code, out, _ = run(capsys, "list", "--unmask")
    assert "+13125550142" in out and "texts NOT agreed" in out
    missing = run(capsys, "import", str(env / "missing.csv"))
    assert missing[0] == 1 and "cannot read" in missing[2]
    latin = env / "latin.csv"
    latin.write_bytes("phone,procedure,date,time,time_zone,consent\nsí\n".encode("latin-1"))
    assert run(capsys, "import", str(latin))[0] == 1


def test_check_schedule_prints_the_times_and_names_a_broken_file(env, capsys, tmp_path):
    code, out, _ = run(capsys, "check-schedule")
    assert code == 0 and "quiet hours 20:00-09:00" in out and "week_before" in out and "7 day(s) before at 10:00" in out
    broken = tmp_path / "schedule.yml"
    broken.write_text((ROOT / "knowledge" / "outreach_schedule.yml").read_text().replace('at: "17:00"', 'at: "5pm"'))
    code, _, err = run(capsys, "check-schedule", str(broken))
    assert code == 1 and str(broken) in err and "entry 'day_before', field 'at'" in err


def test_module_entry_point(env):
    done = subprocess.run([sys.executable, "-m", "bot.outreach", "check-schedule"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "checkin_day_3" in done.stdout
