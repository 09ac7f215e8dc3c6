"""`python -m bot.review ...`: create-user, list, show, export, purge, access-log."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys

import pytest
import sqlalchemy as sa

from bot.review import accesslog, auth
from bot.review.cli import main
from bot.review.db import review_engine
from tests.review.conversations import ROOT, by_key

PHONE = by_key("sms_emergency").sender_id
MASKED = "+1•••••4567"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def events_count(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        count = connection.execute(sa.text("SELECT COUNT(*) FROM events")).scalar_one()
    engine.dispose()
    return count


def test_create_user_from_the_environment(review_env, monkeypatch, capsys):
    monkeypatch.setenv("REVIEW_NEW_PASSWORD", "short")
    code, _, err = run(capsys, "create-user", "dr.lee")
    assert code == 1 and "at least 12 characters" in err
    monkeypatch.setenv("REVIEW_NEW_PASSWORD", "a long enough passphrase")
    code, out, _ = run(capsys, "create-user", "Dr.Lee")
    assert code == 0 and "dr.lee" in out
    code, _, err = run(capsys, "create-user", "dr.lee")
    assert code == 1 and "already exists" in err
    engine = review_engine(review_env["review"])
    result, user = auth.authenticate(engine, "dr.lee", "a long enough passphrase", "127.0.0.1")
    assert result is auth.LoginResult.OK and user.username == "dr.lee"
    monkeypatch.setenv("REVIEW_NEW_PASSWORD", "another long passphrase")
    assert run(capsys, "create-user", "dr.lee", "--reset-password")[0] == 0
    assert auth.authenticate(engine, "dr.lee", "another long passphrase", "127.0.0.1")[0] is auth.LoginResult.OK
    hashed = engine.connect().execute(sa.text("SELECT password_hash FROM review_staff_users")).scalar_one()
    assert hashed.startswith("$argon2") and "passphrase" not in hashed
    engine.dispose()


def test_create_user_prompts_twice(review_env, monkeypatch, capsys):
    monkeypatch.delenv("REVIEW_NEW_PASSWORD", raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    answers = iter(["a long enough passphrase", "a different passphrase"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    code, _, err = run(capsys, "create-user", "dr.mo")
    assert code == 1 and "do not match" in err
    answers = iter(["a long enough passphrase"] * 2)
    assert run(capsys, "create-user", "dr.mo")[0] == 0


def test_there_is_no_default_account(review_env):
    engine = review_engine(review_env["review"])
    assert auth.list_users(engine) == []
    engine.dispose()


def test_list_and_filters(review_env, capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0 and MASKED in out and PHONE not in out and "4 conversations" in out
    code, out, _ = run(capsys, "list", "--escalated", "emergency")
    assert MASKED in out and "1 conversations" in out and "EMERGENCY" in out
    code, out, _ = run(capsys, "list", "--channel", "web", "--search", "fever")
    assert "1 conversations" in out and "Web chat" in out


def test_show_masks_unless_asked(review_env, capsys):
    code, out, _ = run(capsys, "show", PHONE)
    assert code == 0 and MASKED in out and PHONE not in out and "EMERGENCY" in out
    assert "my leg gave out" in out
    code, out, _ = run(capsys, "show", PHONE, "--unmask")
    assert PHONE in out
    assert run(capsys, "show", "nobody")[0] == 1
    actions = [e.action for e in accesslog.read(review_engine(review_env["review"]))[0]]
    assert "show_unmasked" in actions and "view_conversation" in actions


def test_show_masks_numbers_typed_in_messages_unless_asked(review_env, capsys):
    from tests.review.conversations import TYPED_EMAIL, TYPED_PHONE, by_key

    sender = by_key("rest_unanswered").sender_id
    code, out, _ = run(capsys, "show", sender)
    assert code == 0 and TYPED_PHONE not in out and TYPED_EMAIL not in out and "5•••••9876" in out
    code, out, _ = run(capsys, "show", sender, "--unmask")
    assert TYPED_PHONE in out and TYPED_EMAIL in out


def test_export(review_env, capsys, tmp_path):
    code, out, _ = run(capsys, "export", "--format", "csv", "--escalated", "any")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 2 and PHONE not in out
    target = tmp_path / "list.json"
    assert run(capsys, "export", "--format", "json", "--unmask", "-o", str(target))[0] == 0
    assert PHONE in target.read_text() and stat.S_IMODE(target.stat().st_mode) == 0o600
    code, out, _ = run(capsys, "export", "--format", "json", "--conversation", PHONE)
    data = json.loads(out)
    assert data["patient"] == MASKED and data["escalation"] == "emergency"
    entries = accesslog.read(review_engine(review_env["review"]))[0]
    assert {"export_list", "export_list_unmasked", "export_conversation"} <= {e.action for e in entries}
    assert all(e.username.startswith("cli:") for e in entries)


def test_purge_is_a_dry_run_unless_yes(review_env, capsys):
    before = events_count(review_env["tracker"])
    code, out, _ = run(capsys, "purge", "--older-than-days", "30")
    assert code == 0 and "Would delete" in out and "Dry run" in out and "+4•••••0123" in out
    assert events_count(review_env["tracker"]) == before
    code, out, _ = run(capsys, "purge", "--older-than-days", "30", "--yes")
    assert code == 0 and "Deleted" in out
    assert events_count(review_env["tracker"]) < before
    code, out, _ = run(capsys, "list")
    assert "3 conversations" in out
    code, out, _ = run(capsys, "purge", "--older-than-days", "30")
    assert "Nothing to delete" in out
    assert "purge" in {e.action for e in accesslog.read(review_engine(review_env["review"]))[0]}


def test_purge_keeps_the_current_session_of_an_active_sender(review_env, capsys):
    """A patient who texted 45 days ago and again today: only the old session goes."""
    from rasa.shared.core.events import ActionExecuted, SessionStarted, UserUttered

    from tests.review.conversations import sql_tracker_store

    old = by_key("sms_old").sender_id
    store = sql_tracker_store(review_env["tracker"])
    engine = store.engine
    with engine.begin() as connection:
        table = store.SQLEvent.__table__
        import time
        now = time.time()
        for event in (ActionExecuted("action_session_start", timestamp=now), SessionStarted(timestamp=now),
                      UserUttered("is it tomorrow?", intent={"name": "ask_appointment", "confidence": 0.9},
                                  input_channel="sms", timestamp=now + 1)):
            data = event.as_dict()
            connection.execute(table.insert().values(sender_id=old, type_name=event.type_name, timestamp=now,
                                                     intent_name=None, action_name=data.get("name"),
                                                     data=json.dumps(data)))
    engine.dispose()
    code, out, _ = run(capsys, "purge", "--older-than-days", "30", "--yes")
    assert "1 only their old sessions" in out
    code, out, _ = run(capsys, "show", old)
    assert "is it tomorrow?" in out and "thanks" not in out


def test_access_log_command(review_env, capsys):
    run(capsys, "list")
    code, out, _ = run(capsys, "access-log")
    assert code == 0 and "view_list" in out and "cli:" in out


def test_module_entry_point(review_env):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "bot.review", "--help"], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 0
    for command in ("serve", "create-user", "list", "show", "export", "purge", "access-log"):
        assert command in result.stdout


@pytest.mark.parametrize("argv", [["purge"], ["export"], ["list", "--channel", "fax"]])
def test_bad_arguments(review_env, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2


@pytest.mark.server
def test_serve_runs_the_app_over_real_http(review_env):
    import time
    import urllib.error
    import urllib.request

    from bot.devtools.stack import free_port

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "bot.review", "serve", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as reply:
                    assert reply.status == 200 and b"Staff sign in" in reply.read()
                    break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as error:
            opener.open(f"http://127.0.0.1:{port}/conversations", timeout=5)
        assert error.value.code == 302 and error.value.headers["Location"].startswith("/login")
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_purge_never_creates_a_missing_store(monkeypatch, tmp_path, capsys, review_url):
    missing = tmp_path / "nothing-here.db"
    monkeypatch.setenv("TRACKER_DB_URL", f"sqlite:///{missing}")
    monkeypatch.setenv("REVIEW_DB_URL", review_url)
    code, out, _ = run(capsys, "purge", "--older-than-days", "1", "--yes")
    assert code == 0 and "Nothing to delete" in out and not missing.exists()
    code, out, _ = run(capsys, "list")
    assert code == 0 and "No conversations" in out and not missing.exists()


def test_purge_deletes_the_follow_up_actions_and_labels_of_purged_messages(review_env, capsys):
    """They hold the conversation id (a phone number for SMS), so they go with the messages."""
    import time

    from bot.review import followup, labels

    old, recent = by_key("sms_old").sender_id, PHONE
    now = time.time()
    engine = review_engine(review_env["review"])
    followup.ensure_tables(engine)
    labels.ensure_tables(engine)
    with engine.begin() as connection:
        for n, (sender, at) in enumerate(((old, now - 40 * 86400), (recent, now))):
            connection.execute(followup.followup_actions.insert().values(
                sender_id=sender, trigger_id=n + 1, action="acknowledge", state="acknowledged", username="dr.lee",
                at=at, note=None))
            connection.execute(labels.message_labels.insert().values(
                event_id=n + 1, sender_id=sender, text_sha256="0" * 64, message_at=at, topic="driving",
                labelled_by="dr.lee", labelled_at=now))
    code, out, _ = run(capsys, "purge", "--older-than-days", "30", "--yes")
    assert code == 0 and "2 follow-up actions and labels" in out
    with engine.connect() as connection:
        for table in (followup.followup_actions, labels.message_labels):
            assert [row.sender_id for row in connection.execute(sa.select(table))] == [recent]
    engine.dispose()
