"""The review web app through Flask's test client: login, CSRF, rate limit, pages, escaping, exports, access log."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from bot.review import accesslog, auth
from bot.review.masking import mask_sender
from tests.review.conftest import PASSWORD, USERNAME, csrf_token, login
from tests.review.conversations import CONVERSATIONS, SCRIPT_TAG, by_key

PHONE = by_key("sms_emergency").sender_id  # +15551234567
MASKED = "+1•••••4567"


def html(response) -> str:
    return response.get_data(as_text=True)


def ref_of(client, key: str) -> int:
    page = html(client.get("/conversations"))
    sender = mask_sender(by_key(key).sender_id)
    match = re.search(r'href="/conversations/(\d+)[^"]*">' + re.escape(sender.replace("'", "&#39;")) + "<", page)
    assert match, f"no row for {sender}"
    return int(match.group(1))


def log_entries(app):
    return accesslog.read(app.extensions["review"].review_db, limit=500)[0]


# --- authentication ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/conversations", "/conversations/1", "/dashboard", "/access-log",
                                  "/conversations/export?format=csv", "/conversations/1/export?format=json"])
def test_every_page_needs_a_login(anon, path):
    response = anon.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_unknown_pages_are_404_without_revealing_anything(anon):
    response = anon.get("/nope")
    assert response.status_code == 404 and "Conversation with" not in html(response)


def test_wrong_password_is_refused(anon):
    response = login(anon, password="not the right password")
    assert response.status_code == 401
    assert "Wrong username or password" in html(response)
    assert anon.get("/conversations").status_code == 302
    response = login(anon, username="nobody")
    assert response.status_code == 401


def test_login_needs_the_csrf_token(anon):
    response = anon.post("/login", data={"username": USERNAME, "password": PASSWORD})
    assert response.status_code == 400
    assert anon.get("/conversations").status_code == 302


def test_login_and_logout(anon):
    response = login(anon)
    assert response.status_code == 302 and response.headers["Location"] == "/follow-up"  # staff land on the follow-up queue
    page = anon.get("/conversations")
    assert page.status_code == 200 and USERNAME in html(page)
    assert anon.post("/logout").status_code == 400  # logout needs the CSRF token too
    response = anon.post("/logout", data={"csrf_token": csrf_token(html(page))})
    assert response.status_code == 302
    assert anon.get("/conversations").status_code == 302


def test_login_redirects_back_to_a_local_page_only(anon):
    page = anon.get("/login?next=/dashboard")
    token = csrf_token(html(page))
    response = anon.post("/login", data={"username": USERNAME, "password": PASSWORD, "csrf_token": token,
                                         "next": "/dashboard"})
    assert response.headers["Location"] == "/dashboard"
    anon.post("/logout", data={"csrf_token": csrf_token(html(anon.get("/dashboard")))})
    token = csrf_token(html(anon.get("/login")))
    response = anon.post("/login", data={"username": USERNAME, "password": PASSWORD, "csrf_token": token,
                                         "next": "//evil.example/"})
    assert response.headers["Location"] == "/follow-up"


def test_failed_logins_are_rate_limited_per_username_and_address(anon):
    for _ in range(auth.MAX_FAILURES):
        assert login(anon, password="wrong password!!").status_code == 401
    locked = login(anon)  # even the right password is refused while locked
    assert locked.status_code == 429 and "Too many" in html(locked)
    assert login(anon, ip="10.9.8.7").status_code == 302  # another address is not locked out


def test_session_cookie_flags(app, anon):
    login(anon)
    cookie = anon.get_cookie("review_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    assert app.config["SESSION_COOKIE_SECURE"] is False  # REVIEW_COOKIE_SECURE=0 in tests


def test_cookies_are_secure_by_default(review_env, monkeypatch):
    from bot.review.app import create_app

    monkeypatch.delenv("REVIEW_COOKIE_SECURE")
    app = create_app(review_env["tracker"], review_env["review"])
    assert app.config["SESSION_COOKIE_SECURE"] is True
    response = app.test_client().get("/login", base_url="https://review.example")
    assert "Secure" in response.headers["Set-Cookie"] and "HttpOnly" in response.headers["Set-Cookie"]


def test_security_headers(client):
    response = client.get("/conversations")
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "script-src" not in response.headers["Content-Security-Policy"]  # no scripts at all
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"


# --- pages ---------------------------------------------------------------------------------------
def test_conversation_list(client):
    page = html(client.get("/conversations"))
    assert "Showing 1–4 of 4" in page
    assert MASKED in page and PHONE not in page
    assert "+4•••••0123" in page
    assert "Emergency" in page and "Urgent" in page and "unanswered" in page
    assert SCRIPT_TAG not in page


def test_list_filters_through_the_query_string(client):
    page = html(client.get("/conversations?escalated=emergency"))
    assert "of 1." in page and MASKED in page and "+4•••••0123" not in page
    page = html(client.get("/conversations?channel=sms&escalated=urgent"))
    assert "No conversations found" in page
    page = html(client.get("/conversations?from=not-a-date"))
    assert "must be a date" in page


def test_transcript_escapes_patient_text(client):
    ref = ref_of(client, "web_urgent_xss")
    response = client.get(f"/conversations/{ref}")
    page = html(response)
    assert response.status_code == 200
    assert SCRIPT_TAG not in page
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert "turn-escalated turn-urgent" in page and "Urgent" in page


def test_transcript_shows_intent_topic_and_escalation(client):
    ref = ref_of(client, "sms_emergency")
    page = html(client.get(f"/conversations/{ref}"))
    assert "Conversation with " + MASKED in page and PHONE not in page
    assert "turn-escalated turn-emergency" in page and "Emergency" in page
    assert "confidence" in page and "Answered from" in page
    for message in by_key("sms_emergency").messages:
        assert message.text in page


def test_transcript_shows_the_channel_of_every_patient_message(client):
    for key, label in (("sms_emergency", "SMS"), ("web_urgent_xss", "Web chat"), ("rest_unanswered", "REST")):
        page = html(client.get(f"/conversations/{ref_of(client, key)}"))
        assert page.count(f"<dt>Came in on</dt><dd>{label}</dd>") == len(by_key(key).messages), key


def test_unknown_conversation_is_404(client):
    assert client.get("/conversations/999999").status_code == 404


def test_dashboard_page(client):
    page = html(client.get("/dashboard"))
    assert "Conversations per day" in page and "Escalations per day" in page
    assert "Fallback rate" in page and "Most frequent unanswered questions" in page
    assert "<svg" in page
    assert "<script" not in page.lower()


# --- exports -----------------------------------------------------------------------------------
def test_csv_export_of_the_filtered_list_is_masked_and_formula_safe(client):
    response = client.get("/conversations/export?format=csv&channel=sms")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(html(response))))
    assert [r["patient"] for r in rows] == ["'" + MASKED, "'+4•••••0123"]  # leading + is a formula prefix
    assert PHONE not in html(response)
    assert rows[0]["escalation"] == "emergency"


def test_json_export_of_the_list(client):
    data = json.loads(html(client.get("/conversations/export?format=json")))
    assert data["count"] == len(CONVERSATIONS) and data["phone_numbers"] == "masked"
    assert MASKED in {c["patient"] for c in data["conversations"]}


def test_transcript_export_guards_formulas(client):
    ref = ref_of(client, "rest_unanswered")
    text = html(client.get(f"/conversations/{ref}/export?format=csv"))
    rows = list(csv.DictReader(io.StringIO(text)))
    texts = [r["text"] for r in rows if r["speaker"] == "patient"]
    assert "'=HYPERLINK(\"http://evil.example\",\"click\")" in texts
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row.values() if cell)
    data = json.loads(html(client.get(f"/conversations/{ref}/export?format=json")))
    assert any(t["text"].startswith("=HYPERLINK") for t in data["turns"])  # JSON keeps the text as it is


def test_unmasked_export_needs_a_confirmed_post_and_is_logged(app, client):
    page = html(client.get("/conversations"))
    token = csrf_token(page)
    assert client.post("/conversations/export", data={"format": "csv", "unmask": "1"}).status_code == 400  # no CSRF
    response = client.post("/conversations/export", data={"format": "csv", "unmask": "1", "csrf_token": token})
    assert response.status_code == 302  # not confirmed
    response = client.post("/conversations/export", data={"format": "csv", "unmask": "1", "confirm": "1",
                                                          "channel": "sms", "csrf_token": token})
    assert response.status_code == 200 and PHONE in html(response)
    # the GET export never unmasks
    assert PHONE not in html(client.get("/conversations/export?format=csv&unmask=1&confirm=1"))
    actions = [e.action for e in log_entries(app)]
    assert "export_list_unmasked" in actions


def test_access_log_records_views_and_exports(app, client):
    ref = ref_of(client, "sms_emergency")
    client.get(f"/conversations/{ref}")
    client.get(f"/conversations/{ref}/export?format=json")
    entries = log_entries(app)
    assert {"login", "view_list", "view_conversation", "export_conversation"} <= {e.action for e in entries}
    viewed = [e for e in entries if e.action == "view_conversation"]
    assert viewed[0].sender_id == PHONE and viewed[0].username == USERNAME
    page = html(client.get("/access-log"))
    assert "Viewed conversation" in page and MASKED in page and PHONE not in page
    assert USERNAME in page


def age_sessions(app, column: str, seconds: float) -> None:
    """Move every stored session's time back (the server-side record is what counts, not the cookie)."""
    from bot.review.db import staff_sessions

    with app.extensions["review"].review_db.begin() as connection:
        connection.execute(staff_sessions.update().values({column: getattr(staff_sessions.c, column) - seconds}))


def test_an_idle_session_expires(app, client):
    from bot.review.app import IDLE_TIMEOUT_S

    assert client.get("/conversations").status_code == 200
    age_sessions(app, "seen_at", IDLE_TIMEOUT_S + 5)
    response = client.get("/conversations")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_a_session_ends_after_twelve_hours_even_when_active(app, client):
    age_sessions(app, "created_at", 12 * 3600 + 5)
    assert client.get("/conversations").status_code == 302


def copy_cookie(source, target) -> None:
    cookie = source.get_cookie("review_session")
    target.set_cookie("review_session", cookie.value, domain=cookie.domain)


def test_a_cookie_copied_before_logout_does_not_work_after_it(app, client):
    thief = app.test_client()
    copy_cookie(client, thief)
    assert thief.get("/conversations").status_code == 200  # a copied cookie works while the session lives
    token = csrf_token(html(client.get("/conversations")))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert thief.get("/conversations").status_code == 302
    assert thief.get("/dashboard").status_code == 302


def test_logout_ends_only_that_session(app, client):
    other = app.test_client()
    assert login(other).status_code == 302
    client.post("/logout", data={"csrf_token": csrf_token(html(client.get("/conversations")))})
    assert client.get("/conversations").status_code == 302
    assert other.get("/conversations").status_code == 200


def test_a_password_reset_ends_every_session(app, client):
    thief = app.test_client()
    copy_cookie(client, thief)
    auth.create_user(app.extensions["review"].review_db, USERNAME, "another long passphrase", replace=True)
    assert client.get("/conversations").status_code == 302 and thief.get("/conversations").status_code == 302


def test_the_cookie_holds_no_user_id_and_the_database_no_token(app, client):
    import sqlalchemy as sa

    from bot.review.db import staff_sessions

    with client.session_transaction() as session:
        assert set(session) <= {"sid", "csrf_token", "_permanent", "_flashes"} and "uid" not in session
        token = session["sid"]
    with app.extensions["review"].review_db.connect() as connection:
        hashes = [row.token_hash for row in connection.execute(sa.select(staff_sessions))]
    assert hashes and token not in hashes


def test_a_disabled_account_loses_its_session(app, client):
    auth.set_disabled(app.extensions["review"].review_db, USERNAME, True)
    assert client.get("/conversations").status_code == 302
    assert login(client).status_code == 401


def test_the_secret_key_file_is_created_private(tmp_path, monkeypatch):
    import stat

    from bot import config

    monkeypatch.delenv("REVIEW_SECRET_KEY", raising=False)
    path = tmp_path / "var" / "review_secret"
    key = config.review_secret_key(path)
    assert len(key) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config.review_secret_key(path) == key  # kept across restarts
    monkeypatch.setenv("REVIEW_SECRET_KEY", "from-the-environment-" + "z" * 20)
    assert config.review_secret_key(path).startswith("from-the-environment-")


def test_login_over_https_behind_the_secure_cookie(review_env, monkeypatch):
    """On HTTPS Flask-WTF also checks the Referer is this site (the Referrer-Policy keeps it same-origin)."""
    from bot.review.app import create_app

    monkeypatch.setenv("REVIEW_COOKIE_SECURE", "1")
    app = create_app(review_env["tracker"], review_env["review"])
    auth.create_user(app.extensions["review"].review_db, USERNAME, PASSWORD)
    client = app.test_client()
    base = "https://review.example"
    page = client.get("/login", base_url=base)
    assert page.headers["Referrer-Policy"] == "same-origin"
    form = {"username": USERNAME, "password": PASSWORD, "csrf_token": csrf_token(html(page))}
    assert client.post("/login", data=form, base_url=base, headers={"Referer": "https://evil.example/"}).status_code == 400
    response = client.post("/login", data=form, base_url=base, headers={"Referer": f"{base}/login"})
    assert response.status_code == 302 and response.headers["Location"] == "/follow-up"
    assert client.get("/conversations", base_url=base).status_code == 200


# --- odd parameters: a clear 4xx, never a 500 (the fuzz test in test_params_fuzz.py covers every route) ------
@pytest.mark.parametrize("url", ["/conversations?to=9999-12-31", "/dashboard?to=9999-12-31",
                                 "/dashboard?from=0001-01-01", "/conversations/export?format=csv&from=1999-12-31",
                                 "/conversations?channel=fax", "/conversations?page=0", "/conversations?page=abc",
                                 "/access-log?page=-3", "/conversations/1/export?format=xml", "/conversations?q=a%00b"])
def test_unusable_parameters_are_a_400_that_says_why(client, url):
    response = client.get(url)
    assert response.status_code == 400 and "Bad request" in html(response)
    assert any(word in html(response) for word in ("must be", "must not"))


@pytest.mark.parametrize("ref", ["9" * 19, "9223372036854775808", "9" * 40])
def test_a_conversation_number_that_cannot_exist_is_404(client, ref):
    assert client.get(f"/conversations/{ref}").status_code == 404
    assert client.get(f"/conversations/{ref}/export?format=json").status_code == 404


def test_dates_at_the_edges_of_the_range_work(client):
    assert client.get("/conversations?from=2000-01-01&to=2099-12-31").status_code == 200
    assert client.get("/dashboard?from=2098-12-31&to=2099-12-31").status_code == 200
    assert client.get("/dashboard?to=2000-01-01").status_code == 200


# --- phone numbers and e-mail addresses typed inside messages ------------------------------------------
def test_typed_numbers_and_addresses_are_masked_on_pages_and_exports(app, client):
    from tests.review.conversations import TYPED_EMAIL, TYPED_PHONE

    ref = ref_of(client, "rest_unanswered")
    for body in (html(client.get(f"/conversations/{ref}")), html(client.get(f"/conversations/{ref}/export?format=csv")),
                 html(client.get(f"/conversations/{ref}/export?format=json")), html(client.get("/dashboard"))):
        assert TYPED_PHONE not in body and TYPED_EMAIL not in body and "123-9876" not in body
    page = html(client.get(f"/conversations/{ref}"))
    assert "5•••••9876" in page and "j•••@example.org" in page
    assert "(555) 010-0142" in page  # the bot's own text (the clinic's number) is not masked
    token = csrf_token(page)
    unmasked = client.post(f"/conversations/{ref}/export", data={"format": "json", "unmask": "1", "confirm": "1",
                                                                 "csrf_token": token})
    assert TYPED_PHONE in html(unmasked) and TYPED_EMAIL in html(unmasked)  # the recorded unmasked export
    assert "export_conversation_unmasked" in [e.action for e in log_entries(app)]
