"""`python -m bot.review serve` (what `make run` starts): waitress, not the development server, and a
session that ends on the server at logout, checked over real HTTP with a copied cookie."""

from __future__ import annotations

import http.cookiejar
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from bot.devtools.stack import free_port
from tests.review.conftest import PASSWORD, SECRET, USERNAME

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[2]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def browser(jar: http.cookiejar.CookieJar) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)


def fetch(opener, url: str, data: dict | None = None) -> tuple[int, dict, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with opener.open(url, data=body, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode(errors="replace")


def token_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


@pytest.fixture
def served(tmp_path):
    from bot.review import auth
    from bot.review.db import review_engine

    review_url = f"sqlite:///{tmp_path / 'review.db'}"
    engine = review_engine(review_url)
    auth.create_user(engine, USERNAME, PASSWORD)
    engine.dispose()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRACKER_DB_URL": f"sqlite:///{tmp_path / 'tracker.db'}",
           "REVIEW_DB_URL": review_url, "REVIEW_SECRET_KEY": SECRET, "REVIEW_COOKIE_SECURE": "0",
           "REVIEW_TIMEZONE": "UTC", "VAR_DIR": str(tmp_path / "var")}
    log = open(tmp_path / "review.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "bot.review", "serve", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/login", timeout=1)
            break
        except OSError:
            assert process.poll() is None, (tmp_path / "review.log").read_text()
            time.sleep(0.2)
    yield url, tmp_path / "review.log"
    process.terminate()
    process.wait(timeout=10)
    log.close()


def test_serve_runs_under_waitress_and_logout_ends_the_session(served):
    url, log = served
    staff_jar = http.cookiejar.CookieJar()
    staff = browser(staff_jar)
    status, headers, page = fetch(staff, url + "/login")
    assert status == 200 and "Werkzeug" not in headers.get("Server", "")
    assert "waitress" in log.read_text()
    status, headers, _ = fetch(staff, url + "/login", {"username": USERNAME, "password": PASSWORD,
                                                       "csrf_token": token_of(page)})
    assert status == 302 and headers["Location"].endswith("/follow-up")  # the landing page
    status, _, page = fetch(staff, url + "/conversations")
    assert status == 200

    copied = http.cookiejar.CookieJar()  # someone copies the session cookie before the logout
    for cookie in staff_jar:
        copied.set_cookie(cookie)
    thief = browser(copied)
    assert fetch(thief, url + "/dashboard")[0] == 200

    status, _, _ = fetch(staff, url + "/logout", {"csrf_token": token_of(page)})
    assert status == 302
    for path in ("/conversations", "/dashboard", "/access-log", "/conversations/export?format=csv"):
        status, headers, _ = fetch(thief, url + path)
        assert status == 302 and "/login" in headers["Location"], path


def test_odd_parameters_over_real_http_are_4xx(served):
    url, _ = served
    jar = http.cookiejar.CookieJar()
    staff = browser(jar)
    _, _, page = fetch(staff, url + "/login")
    fetch(staff, url + "/login", {"username": USERNAME, "password": PASSWORD, "csrf_token": token_of(page)})
    for path in ("/conversations?to=9999-12-31", "/dashboard?to=9999-12-31", "/conversations/" + "9" * 40,
                 "/conversations?q=%00", "/conversations?page=" + "9" * 5000):
        assert fetch(staff, url + path)[0] in {400, 404}, path
