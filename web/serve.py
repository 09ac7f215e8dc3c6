"""Serve the demo clinic page and the chat widget (web/) on WEB_PORT (default 8080). No CDN.

    .venv/bin/python web/serve.py [--port 8080] [--host 127.0.0.1]

- /                    the demo clinic page (index.html, clinic settings filled in)
- /widget.js, /widget.css, /site.css, /*.svg   the widget and the page's assets
- /vendor/socket.io.min.js   socket.io-client from web/node_modules (installed by `npm ci --prefix web`)
- /config.json         clinic name, phone, hours, emergency number and the bot's URL, for the widget
- /rasa-webchat.html   the same bot in rasa-webchat 1.0.1, the standard third-party Rasa widget
                       (/vendor/rasa-webchat.js from web/node_modules, a dev dependency)

The bot's URL (what the page's snippet uses as data-server) is RASA_SERVER_URL, default
http://localhost:5005; port and host: WEB_PORT, WEB_HOST (all read in bot.config). The bot only
accepts pages from WEB_ALLOWED_ORIGINS (default: this server's http://localhost and 127.0.0.1 origins).
Clinic settings come from bot.settings (knowledge/clinic.yml + env overrides).
Only the files listed above are served; everything else is 404.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

WEB_DIR = Path(__file__).resolve().parent
ROOT = WEB_DIR.parent
SOCKET_IO_DIST = WEB_DIR / "node_modules" / "socket.io-client" / "dist"
RASA_WEBCHAT = WEB_DIR / "node_modules" / "rasa-webchat" / "lib" / "index.js"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot import config as settings  # noqa: E402 - the project root is on the path only now

STATIC = {
    "/widget.js": "text/javascript; charset=utf-8",
    "/widget.css": "text/css; charset=utf-8",
    "/site.css": "text/css; charset=utf-8",
    "/favicon.svg": "image/svg+xml",
    "/rasa-webchat-init.js": "text/javascript; charset=utf-8",
}
PAGES = {"/": "index.html", "/index.html": "index.html", "/rasa-webchat.html": "rasa-webchat.html"}
VENDOR = {
    "/vendor/socket.io.min.js": ("socket.io.min.js", "text/javascript; charset=utf-8"),
    "/vendor/socket.io.min.js.map": ("socket.io.min.js.map", "application/json"),
}


def clinic_config(server_url: str) -> dict[str, str]:
    from bot.settings import load_clinic_settings

    settings = load_clinic_settings()
    return {"server": server_url, **settings.as_placeholders()}


def render_page(template: str, config: dict[str, str]) -> str:
    """Fill {{name}} placeholders with HTML-escaped values."""
    page = template
    for key, value in config.items():
        page = page.replace("{{" + key + "}}", html.escape(value, quote=True))
        digits = "".join(ch for ch in value if ch.isdigit() or ch == "+")
        page = page.replace("{{" + key + "_tel}}", html.escape(digits, quote=True))
    return page


def content_security_policy(server_url: str, inline_styles: bool = False) -> str:
    """Only this server's files; the bot's origin for socket.io. rasa-webchat (React) adds <style> tags."""
    parts = urlsplit(server_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    ws_origin = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}"
    style = "'self' 'unsafe-inline'" if inline_styles else "'self'"
    return (
        f"default-src 'self'; script-src 'self'; style-src {style}; img-src 'self' data:; font-src 'self' data:; "
        f"connect-src 'self' {origin} {ws_origin}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


def make_handler(server_url: str) -> type[BaseHTTPRequestHandler]:
    config = clinic_config(server_url)
    csp = {False: content_security_policy(server_url), True: content_security_policy(server_url, inline_styles=True)}

    class Handler(BaseHTTPRequestHandler):
        server_version = "ClinicWeb"
        sys_version = ""

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            sys.stderr.write(f"web: {self.address_string()} {format % args}\n")

        def _send(self, status: int, body: bytes, content_type: str, cache: str = "no-cache") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", cache)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            if content_type.startswith("text/html"):
                path = urlsplit(self.path).path
                self.send_header("Content-Security-Policy", csp[path == "/rasa-webchat.html"])
            # the widget may be embedded on the clinic's own site (another origin)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            path = urlsplit(self.path).path
            if path in PAGES:
                page = render_page((WEB_DIR / PAGES[path]).read_text(encoding="utf-8"), config)
                self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
            elif path == "/config.json":
                self._send(HTTPStatus.OK, json.dumps(config).encode(), "application/json")
            elif path in STATIC:
                self._send(HTTPStatus.OK, (WEB_DIR / path.lstrip("/")).read_bytes(), STATIC[path])
            elif path == "/vendor/rasa-webchat.js":
                if not RASA_WEBCHAT.exists():
                    message = b"rasa-webchat is not installed: run `npm ci --prefix web`\n"
                    self._send(HTTPStatus.SERVICE_UNAVAILABLE, message, "text/plain; charset=utf-8")
                    return
                body = RASA_WEBCHAT.read_bytes()
                self._send(HTTPStatus.OK, body, "text/javascript; charset=utf-8", cache="public, max-age=86400")
            elif path in VENDOR:
                name, content_type = VENDOR[path]
                file = SOCKET_IO_DIST / name
                if not file.exists():
                    message = b"socket.io-client is not installed: run `npm ci --prefix web`\n"
                    self._send(HTTPStatus.SERVICE_UNAVAILABLE, message, "text/plain; charset=utf-8")
                    return
                self._send(HTTPStatus.OK, file.read_bytes(), content_type, cache="public, max-age=86400")
            elif path == "/health":
                self._send(HTTPStatus.OK, b'{"status": "ok"}', "application/json")
            else:
                self._send(HTTPStatus.NOT_FOUND, b"Not found\n", "text/plain; charset=utf-8")

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=settings.web_port())
    parser.add_argument("--host", default=settings.web_host())
    parser.add_argument("--server", default=settings.rasa_server_url(), help="the Rasa server the widget talks to")
    args = parser.parse_args(argv)
    if not (SOCKET_IO_DIST / "socket.io.min.js").exists():
        print("web: WARNING socket.io-client missing; run `npm ci --prefix web`", file=sys.stderr)
    httpd = ThreadingHTTPServer((args.host, args.port), make_handler(args.server))
    print(f"web: clinic demo page on http://{args.host}:{args.port}/ (bot at {args.server})", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main()
