"""A stand-in for api.twilio.com's Messages resource, for the outreach tests and `make bench`.

Twilio's servers are the one fake: a local HTTP server that creates messages (POST Messages.json, Basic auth,
201 + JSON like Twilio), lists them (GET Messages.json?To=&From=&DateSent>=, newest first: how the worker
checks whether a dead worker's claim went out) and sends signed status callbacks to the URL each message
asked for (`post_status`), as Twilio does. Its clock is injectable so message dates follow a test's fake time.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bot.devtools.stack import free_port
from bot.devtools.twilio_requests import TEST_AUTH_TOKEN

ACCOUNT_SID = "AC" + "1" * 32


@dataclass
class CreatedMessage:
    sid: str
    to: str
    sender: str
    body: str
    status_callback: str | None
    created_at: float  # by the fake's clock
    received_at: float  # real time

    def as_json(self) -> dict:
        created = format_datetime(datetime.fromtimestamp(self.created_at, timezone.utc))
        return {"sid": self.sid, "to": self.to, "from": self.sender, "body": self.body, "status": "queued",
                "date_created": created, "date_sent": created, "account_sid": ACCOUNT_SID}


class FakeTwilioMessages:
    """Run with `with FakeTwilioMessages() as twilio:`; `env()` gives the settings that point the bot at it."""

    def __init__(self, auth_token: str = TEST_AUTH_TOKEN, clock: Callable[[], float] = time.time,
                 delay_s: float = 0.0):
        self.auth_token = auth_token
        self.clock = clock
        self.delay_s = delay_s  # each create waits this long before answering (a slow edge)
        self.fail_with: int | None = None  # e.g. 500: every create fails
        self.messages: list[CreatedMessage] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as api.twilio.com

            def setup(self) -> None:
                super().setup()
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body: no 40 ms wait

            def log_message(self, *args: object) -> None:
                pass

            def _authorised(self) -> bool:
                expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{fake.auth_token}".encode()).decode()
                return self.headers.get("Authorization") == expected

            def do_GET(self) -> None:  # noqa: N802 - http.server's hook
                path, _, query = self.path.partition("?")
                if not self._authorised():
                    return self._reply(401, {"code": 20003, "message": "Authenticate"})
                if path != f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json":
                    return self._reply(404, {"code": 20404, "message": "not found"})
                args = {key: values[0] for key, values in urllib.parse.parse_qs(query).items()}
                since = args.get("DateSent>")
                with fake.lock:
                    found = [m for m in reversed(fake.messages)
                             if m.to == args.get("To", m.to) and m.sender == args.get("From", m.sender)
                             and (not since or datetime.fromtimestamp(m.created_at, timezone.utc)
                                  .strftime("%Y-%m-%d") >= since)]
                size = int(args.get("PageSize") or 50)
                return self._reply(200, {"messages": [m.as_json() for m in found[:size]]})

            def do_POST(self) -> None:  # noqa: N802 - http.server's hook
                length = int(self.headers.get("Content-Length") or 0)
                form = {key: values[0] for key, values in urllib.parse.parse_qs(self.rfile.read(length).decode()).items()}
                if not self._authorised():
                    return self._reply(401, {"code": 20003, "message": "Authenticate"})
                if self.path != f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json":
                    return self._reply(404, {"code": 20404, "message": "not found"})
                if fake.fail_with:
                    return self._reply(fake.fail_with, {"code": 30001, "message": "test failure"})
                if not all(form.get(key) for key in ("To", "From", "Body")):
                    return self._reply(400, {"code": 21604, "message": "A 'To' phone number is required."})
                with fake.lock:
                    message = CreatedMessage(f"SM{len(fake.messages) + 1:032x}", form["To"], form["From"], form["Body"],
                                             form.get("StatusCallback"), fake.clock(), time.time())
                    fake.messages.append(message)
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                return self._reply(201, message.as_json())

            def _reply(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def env(self, from_number: str = "+15550107777") -> dict[str, str]:
        return {"TWILIO_API_URL": self.url, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": self.auth_token,
                "TWILIO_FROM_NUMBER": from_number}

    def received(self, to: str | None = None) -> list[CreatedMessage]:
        with self.lock:
            return [m for m in self.messages if to is None or m.to == to]

    def post_status(self, message: CreatedMessage, status: str, error_code: str | None = None,
                    token: str | None = None) -> int:
        """Send the signed status callback Twilio would send for `message`; the HTTP status it got."""
        from bot.devtools.twilio_requests import sign

        assert message.status_callback, "the message asked for no status callback"
        params = {"MessageSid": message.sid, "SmsSid": message.sid, "MessageStatus": status, "SmsStatus": status,
                  "AccountSid": ACCOUNT_SID, "To": message.to, "From": message.sender, "ApiVersion": "2010-04-01"}
        if error_code:
            params["ErrorCode"] = error_code
        request = urllib.request.Request(
            message.status_callback, data=urllib.parse.urlencode(params).encode(), method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "X-Twilio-Signature": sign(message.status_callback, params, token or self.auth_token)})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status
        except urllib.error.HTTPError as error:
            return error.code

    def start(self) -> FakeTwilioMessages:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeTwilioMessages:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
