"""Browser test support: the web/ server as a subprocess, headless Debian Chromium, and page helpers."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.devtools.stack import ROOT, free_port

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
WEB_DIR = ROOT / "web"
SOCKET_IO_CLIENT = WEB_DIR / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
RASA_WEBCHAT = WEB_DIR / "node_modules" / "rasa-webchat" / "lib" / "index.js"
AXE = WEB_DIR / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "artifacts"


def require_browser_setup() -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium chromium-driver (make setup-test does it)")
    if not SOCKET_IO_CLIENT.exists() or not RASA_WEBCHAT.exists():
        pytest.fail("web/node_modules is missing or old: run `npm ci --prefix web` (make setup-test does it)")


def web_origin(port: int) -> str:
    """The origin of the page web_server(port=port) serves: what the bot must allow (WEB_ALLOWED_ORIGINS)."""
    return f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def web_server(bot_url: str, port: int | None = None) -> Iterator[str]:
    """Serve web/ like `make run` does, pointing the widget at `bot_url`. Yields the page URL.

    The bot only accepts pages from allowed origins, so tests choose the port first (web_origin).
    """
    port = port or free_port()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, str(WEB_DIR / "serve.py"), "--port", str(port), "--host", "127.0.0.1", "--server", bot_url],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(url + "health", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"web/serve.py did not start: {log.read().decode()[-2000:]}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    require_browser_setup()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class ChatPage:
    """The demo page with the widget, driven like a patient would (roles and labels, keyboard)."""

    def __init__(self, page, url: str) -> None:
        self.page = page
        self.url = url
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def open_page(self) -> ChatPage:
        self.page.goto(self.url)
        self.page.get_by_role("button", name="Ask a question").or_(self.panel).first.wait_for()
        return self

    @property
    def panel(self):
        return self.page.get_by_role("dialog", name="Ask")

    @property
    def log(self):
        return self.page.get_by_role("log", name="Conversation")

    @property
    def input(self):
        return self.page.get_by_role("textbox", name="Your question")

    def open_chat(self) -> None:
        if not self.panel.is_visible():
            self.page.get_by_role("button", name="Ask a question").click()
        self.input.wait_for()

    def wait_connected(self, timeout_ms: float = 30_000) -> None:
        self.page.locator("#clinic-chat-widget[data-connected='true']").wait_for(state="attached", timeout=timeout_ms)

    def bot_messages(self):
        return self.log.locator(".cc-bot:not(.cc-intro), .cc-seek")

    def ask(self, text: str, timeout_ms: float = 30_000) -> str:
        """Type a question, press Enter, return the text of the next bot message."""
        before = self.bot_messages().count()
        self.input.fill(text)
        self.input.press("Enter")
        self.bot_messages().nth(before).wait_for(timeout=timeout_ms)
        return self.bot_messages().nth(before).inner_text()

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path))
        return path


class Webchat:
    """web/rasa-webchat.html (rasa-webchat 1.0.1), driven through rasa-webchat's own markup."""

    def __init__(self, page, site: str) -> None:
        self.page = page
        self.url = site + "rasa-webchat.html"
        self.errors: list[str] = []
        self.frames: list[str] = []
        self.sent: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("websocket", self._watch)

    def _watch(self, websocket) -> None:
        websocket.on("framereceived", lambda frame: self.frames.append(str(frame)))
        websocket.on("framesent", lambda frame: self.sent.append(str(frame)))

    @property
    def input(self):
        return self.page.get_by_placeholder("Type your question...")

    @property
    def bot_messages(self):
        return self.page.locator(".rw-response .rw-message-text")

    def open(self) -> Webchat:
        self.page.goto(self.url)
        self.page.locator(".rw-launcher").wait_for()
        return self

    def open_chat(self) -> None:
        """Open the chat unless rasa-webchat reopens it by itself (it keeps an open chat open after a reload)."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        self.page.locator(".rw-launcher").wait_for()
        try:
            self.input.wait_for(timeout=3_000)
        except PlaywrightTimeout:
            self.page.locator(".rw-launcher").click()
            self.input.wait_for()

    def session_id(self) -> str | None:
        stored = self.page.evaluate("() => localStorage.getItem('chat_session')")
        return json.loads(stored).get("session_id") if stored else None

    def wait_session(self, timeout_s: float = 30) -> str:
        """rasa-webchat keeps the session id the bot confirmed in localStorage."""
        self.page.wait_for_function(
            "() => { const s = localStorage.getItem('chat_session'); return s && JSON.parse(s).session_id; }",
            timeout=timeout_s * 1000,
        )
        return self.session_id()

    def ask(self, text: str, timeout_ms: float = 30_000) -> str:
        before = self.bot_messages.count()
        self.input.fill(text)
        self.input.press("Enter")
        self.bot_messages.nth(before).wait_for(timeout=timeout_ms)
        return self.bot_messages.nth(before).inner_text()


def axe_violations(page, selector: str = "body") -> list[dict]:
    """Serious/critical axe-core (WCAG 2.x A/AA) violations on the page, shadow DOM included."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async (selector) => {
            const r = await axe.run(document.querySelector(selector), {runOnly: {type: 'tag',
                values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }""",
        selector,
    )
    return [v for v in result if v["impact"] in {"serious", "critical"}]
