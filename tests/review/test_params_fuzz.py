"""Every route of the review app, signed in, with generated parameters: a 2xx, 3xx or 4xx, never a 500.

Property-based (hypothesis): each route's parameters get values from a strategy mixing well-formed values,
edge cases (far-future and ancient dates, huge and negative numbers, NUL and other control characters,
very long text, odd Unicode) and arbitrary text, plus parameters the route does not know. The route list
is checked against the app's URL map, so a new route without a strategy fails the test.
"""

from __future__ import annotations

import string
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.review.conftest import csrf_token

EDGE_TEXT = [
    "", " ", "0", "-1", "1", "01", "1e309", "NaN", "inf", "9" * 30, "9" * 5000, "2024-02-30", "2024-13-01",
    "0001-01-01", "9999-12-31", "1969-12-31", "2100-01-01", "+99999-01-01", "2024-05-31T10:00", "\x00",
    "a\x00b", "\x7f", "\ud7ff", "\u202e", "é", "％", "%", "_", "!", "'", '"', "<script>", "../..", "//evil.example",
    "\r\n", "\t", "x" * 3000, "csv", "json", "CSV", "xml", "web", "sms", "rest", "fax", "any", "emergency",
    "urgent", "check", "on", "true", "unanswered", "open", "acknowledged", "resolved", "unresolved", "all",
    "acknowledge", "resolve", "reopen", "note", "unsure", "unlabelled", "labelled", "driving", "not_in_knowledge",
    "list", "lumbar", "cervical", "America/Chicago", "yes", "no", "upcoming", "past", "active", "cancelled",
    "+13125550142", "(312) 555-0142", "09:30", "1:1.0",
]
DATES = st.dates().map(lambda day: day.isoformat())
VALUES = st.one_of(
    st.sampled_from(EDGE_TEXT),
    DATES,
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.text(max_size=60),
    st.text(alphabet=string.printable, max_size=60),
)
PARAMS = ("from", "to", "channel", "escalated", "unanswered", "q", "page", "format", "back", "user", "next",
          "unmask", "confirm", "zzz", "page[]",
          "level", "state", "kind", "action", "trigger", "note", "topic", "return",  # follow-up queue, learning
          "text",  # staff reply
          "status", "when", "phone", "procedure", "date", "time", "time_zone", "consent", "stamp")  # appointments
QUERY = st.dictionaries(st.sampled_from(PARAMS), VALUES, max_size=6)
REFS = st.one_of(
    st.sampled_from(["1", "0", "-1", "9" * 19, "9223372036854775807", "9223372036854775808", "9" * 40, "1.5",
                     "abc", "%00", "1%00"]),
    st.integers(min_value=0, max_value=10**30).map(str),
)

GET_ROUTES = ["/", "/login", "/conversations", "/conversations/export", "/dashboard", "/access-log",
              "/follow-up", "/learning"]
REF_ROUTES = ["/conversations/{ref}", "/conversations/{ref}/export", "/learning/message/{ref}"]
POST_ROUTES = ["/conversations/export", "/conversations/{ref}/export", "/follow-up/{ref}", "/learning/message/{ref}",
               "/conversations/{ref}/reply", "/conversations/{ref}/takeover", "/conversations/{ref}/handback"]
# The appointment pages (OUTREACH_DB_URL) check their parameters before any query: fuzzed on SQLite only; their
# storage runs on both databases in tests/review/test_appointments_web.py.
APPOINTMENT_ROUTES = [("GET", "/appointments"), ("GET", "/appointments/new"), ("GET", "/appointments/import"),
                      ("GET", "/appointments/no-reply"), ("GET", "/appointments/{ref}"), ("GET", "/appointments/{ref}/edit"),
                      ("POST", "/appointments/new"), ("POST", "/appointments/import"),
                      ("POST", "/appointments/{ref}/edit"), ("POST", "/appointments/{ref}/cancel")]
# a sign-in attempt spends ~0.3 s in argon2 on purpose, so that route gets fewer examples
LOGIN_EXAMPLES = 12
KNOWN_RULES = {"/", "/login", "/logout", "/conversations", "/conversations/export", "/conversations/<int:ref>",
               "/conversations/<int:ref>/export", "/dashboard", "/access-log", "/static/<path:filename>",
               "/follow-up", "/follow-up/<int:ref>", "/learning", "/learning/message/<int:event_id>",
               "/conversations/<int:ref>/reply", "/conversations/<int:ref>/takeover", "/conversations/<int:ref>/handback",
               "/appointments", "/appointments/new", "/appointments/import", "/appointments/no-reply",
               "/appointments/<int:appointment_id>", "/appointments/<int:appointment_id>/edit",
               "/appointments/<int:appointment_id>/cancel"}
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])


def check(response) -> None:
    # 502 (the one 5xx): a staff reply or takeover the bot did not accept (here: no bot, RASA_AUTH_TOKEN unset)
    assert response.status_code < 500 or response.status_code == 502, (response.status_code,
                                                                        response.get_data(as_text=True)[:500])
    assert response.status_code in {200, 302, 303, 400, 401, 404, 405, 413, 429, 502}, response.status_code


def test_every_route_is_fuzzed(app):
    assert {rule.rule for rule in app.url_map.iter_rules()} == KNOWN_RULES


@pytest.mark.parametrize("path", GET_ROUTES)
@FUZZ
@given(query=QUERY)
@example(query={"to": "9999-12-31"})
@example(query={"from": "0001-01-01"})
@example(query={"from": "0001-01-01", "to": "0001-01-02"})
@example(query={"q": "a\x00b"})
@example(query={"user": "\x00"})
@example(query={"page": "9" * 5000})
def test_get_routes(client, path, query):
    check(client.get(path + ("?" + urlencode(query) if query else "")))


@pytest.mark.parametrize("path", REF_ROUTES)
@FUZZ
@given(ref=REFS, query=QUERY)
@example(ref="9" * 40, query={})
@example(ref="9223372036854775808", query={"format": "json"})
def test_conversation_routes(client, path, ref, query):
    check(client.get(path.format(ref=ref) + ("?" + urlencode(query) if query else "")))


@pytest.mark.parametrize("path", POST_ROUTES)
@FUZZ
@given(ref=REFS, form=QUERY)
@example(ref="1", form={"unmask": "1", "confirm": "1", "to": "9999-12-31"})
@example(ref="9" * 40, form={"unmask": "1", "confirm": "1", "format": "json"})
def test_post_routes(client, path, ref, form):
    token = csrf_token(client.get("/conversations").get_data(as_text=True))
    check(client.post(path.format(ref=ref), data={**form, "csrf_token": token}))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("method", "path"), APPOINTMENT_ROUTES)
@FUZZ
@given(ref=REFS, query=QUERY)
@example(ref="1", query={"phone": "3125550142", "procedure": "lumbar", "date": "2100-01-01", "time": "09:30",
                         "time_zone": "America/Chicago", "consent": "yes"})
@example(ref="9" * 40, query={"status": "all", "when": "past", "page": "9" * 5000})
def test_appointment_routes(client, method, path, ref, query):
    if method == "GET":
        check(client.get(path.format(ref=ref) + ("?" + urlencode(query) if query else "")))
        return
    token = csrf_token(client.get("/appointments").get_data(as_text=True))
    check(client.post(path.format(ref=ref), data={**query, "csrf_token": token}))


@settings(FUZZ, max_examples=LOGIN_EXAMPLES)
@given(form=QUERY, extra=st.dictionaries(st.sampled_from(["username", "password"]), VALUES, max_size=2))
@example(form={}, extra={"username": "\x00", "password": "\x00"})
@example(form={"next": "//evil.example"}, extra={"username": "x" * 3000})
def test_login_post(anon, form, extra):
    token = csrf_token(anon.get("/login").get_data(as_text=True))
    check(anon.post("/login", data={**form, **extra, "csrf_token": token}))
