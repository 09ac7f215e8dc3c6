"""Where alerts land in tests and `make bench`: a real SMTP server (aiosmtpd) and a stand-in for
api.twilio.com (Twilio's servers are the one fake: a local HTTP server speaking the Messages API).

Both record what they received with the arrival time, can be told to refuse (to test retries), and
run in a thread of the test process on a free port.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from bot.devtools.stack import free_port


@dataclass
class ReceivedMail:
    at: float
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def body(self) -> str:
        """The text part, with the line ends of a Python string (SMTP carries CRLF)."""
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content().replace("\r\n", "\n") if part is not None else ""


class _Handler:
    def __init__(self, sink: SmtpSink):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, N802 - aiosmtpd's hook
        if self.sink.refuse:
            return "451 4.3.0 Try again later (test)"
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.sink.lock:
            self.sink.messages.append(ReceivedMail(time.time(), envelope.mail_from, list(envelope.rcpt_tos),
                                                   message))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


@dataclass
class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1:<free port>; `url` is an ALERT_SMTP_URL for it."""

    refuse: bool = False
    messages: list[ReceivedMail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.port = free_port()
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def received(self) -> list[ReceivedMail]:
        with self.lock:
            return list(self.messages)

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class SentSms:
    at: float
    account_sid: str
    to: str
    sender: str
    body: str


class FakeTwilio:
    """Answers POST /2010-04-01/Accounts/{sid}/Messages.json as Twilio does (201 + JSON), checking Basic auth."""

    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "test-token"):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: list[SentSms] = []
        self.status_override: int | None = None  # e.g. 500 to make every request fail
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's hook
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                expected = "Basic " + base64.b64encode(f"{sink.account_sid}:{sink.auth_token}".encode()).decode()
                path_ok = self.path == f"/2010-04-01/Accounts/{sink.account_sid}/Messages.json"
                if sink.status_override:
                    return self._reply(sink.status_override, {"message": "test failure"})
                if self.headers.get("Authorization") != expected:
                    return self._reply(401, {"code": 20003, "message": "Authenticate"})
                if not path_ok or not all(form.get(key) for key in ("To", "From", "Body")):
                    return self._reply(400, {"code": 21604, "message": "bad request"})
                sid = f"SM{len(sink.messages):032d}"
                with sink.lock:
                    sink.messages.append(SentSms(time.time(), sink.account_sid, form["To"][0], form["From"][0],
                                                 form["Body"][0]))
                return self._reply(201, {"sid": sid, "status": "queued", "to": form["To"][0]})

            def _reply(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def env(self, from_number: str = "+15550108888") -> dict[str, str]:
        """The settings that point the alert worker at this server."""
        return {"TWILIO_API_URL": self.url, "TWILIO_ACCOUNT_SID": self.account_sid,
                "TWILIO_AUTH_TOKEN": self.auth_token, "TWILIO_FROM_NUMBER": from_number}

    def received(self) -> list[SentSms]:
        with self.lock:
            return list(self.messages)

    def start(self) -> FakeTwilio:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
