"""Real Twilio-format webhook requests for the SMS tests and the benchmark (form-encoded, signed)."""

from __future__ import annotations

import secrets
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from twilio.request_validator import RequestValidator

TEST_AUTH_TOKEN = "0123456789abcdef0123456789abcdef"  # test-only, not a real account's token
CLINIC_NUMBER = "+15550109999"


def new_sid() -> str:
    return "SM" + secrets.token_hex(16)


def new_phone() -> str:
    return "+1555" + "".join(secrets.choice("0123456789") for _ in range(7))


def twilio_params(sender: str, body: str, message_sid: str | None = None, **extra: str) -> dict[str, str]:
    """The fields Twilio posts for an incoming SMS."""
    sid = message_sid or new_sid()
    params = {
        "ToCountry": "US", "ToState": "OR", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "PORTLAND",
        "FromZip": "97201", "SmsSid": sid, "FromState": "OR", "SmsStatus": "received", "FromCity": "PORTLAND",
        "Body": body, "FromCountry": "US", "To": CLINIC_NUMBER, "ToZip": "97201", "NumSegments": "1",
        "MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": sender, "ApiVersion": "2010-04-01",
    }
    params.update(extra)
    return params


def sign(url: str, params: dict[str, str], token: str = TEST_AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


@dataclass
class SmsReply:
    status: int
    body: str

    @property
    def messages(self) -> list[str]:
        """The <Message> bodies of the TwiML reply."""
        root = ET.fromstring(self.body)
        assert root.tag == "Response", self.body
        return [(element.text or "") for element in root.iter("Message")]

    @property
    def text(self) -> str:
        return "\n".join(self.messages)


def post_sms(
    url: str,
    params: dict[str, str],
    signature: str | None = "auto",
    token: str = TEST_AUTH_TOKEN,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> SmsReply:
    """POST like Twilio does. signature="auto" signs with `token`; None sends no signature header."""
    data = urllib.parse.urlencode(params).encode()
    all_headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1"}
    if signature == "auto":
        signature = sign(url, params, token)
    if signature is not None:
        all_headers["X-Twilio-Signature"] = signature
    all_headers.update(headers or {})
    request = urllib.request.Request(url, data=data, method="POST", headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return SmsReply(reply.status, reply.read().decode())
    except urllib.error.HTTPError as error:
        return SmsReply(error.code, error.read().decode(errors="replace"))
