"""Telling staff: the alert e-mail (SMTP) and the SMS to the on-call phone (Twilio's REST API).

Both carry the level, the symptoms (the triage rules' staff labels), the channel, the time and a link to
the transcript in the review app - never the patient's words and never their phone number: the link
names the conversation by its review-app reference, not by its id (an SMS conversation's id is the
patient's number). Staff open the transcript behind the review app's login.
"""

from __future__ import annotations

import base64
import json
import smtplib
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from functools import lru_cache

from bot.alerts.detect import SYMPTOM_CHECK_LEVEL, Escalation
from bot.vocabulary import CHANNEL_REST, CHANNEL_SMS, CHANNEL_WEB, EMERGENCY, URGENT

SEND_TIMEOUT_S = 20.0  # one SMTP session or Twilio request; below store.CLAIM_S
LEVEL_TITLES = {EMERGENCY: "EMERGENCY", URGENT: "URGENT", SYMPTOM_CHECK_LEVEL: "Symptom check"}
LEVEL_MEANING = {
    EMERGENCY: "The bot told the patient to call the emergency number or go to the ER now.",
    URGENT: "The bot told the patient to call the clinic now (after hours: urgent care or the ER).",
    SYMPTOM_CHECK_LEVEL: "The patient described a possible new problem that no warning-sign rule confirms; "
                         "the bot told them to call if it is new or getting worse.",
}
CHANNEL_NAMES = {CHANNEL_WEB: "website chat", CHANNEL_SMS: "SMS", CHANNEL_REST: "REST API"}


class DeliveryError(RuntimeError):
    """An alert could not be handed over (SMTP or Twilio refused it, or could not be reached)."""


@dataclass(frozen=True)
class AlertText:
    """What staff read, built once per alert for both e-mail and SMS."""

    level: str
    symptoms: str
    channel: str
    when: str
    link: str


@lru_cache(maxsize=1)
def symptom_labels() -> dict[str, str]:
    from bot.triage.rules import load_rules

    try:
        return {rule.id: rule.label for rule in load_rules().rules}
    except Exception:  # noqa: BLE001 - the rule ids themselves are a fine fallback in an alert
        return {}


def alert_text(alert: Escalation, link: str, tz: tzinfo) -> AlertText:
    labels = symptom_labels()
    symptoms = ", ".join(labels.get(rule, rule.replace("_", " ")) for rule in alert.symptoms)
    moment = datetime.fromtimestamp(alert.occurred_at, tz)
    return AlertText(
        level=LEVEL_TITLES.get(alert.level, alert.level),
        symptoms=symptoms or "not named (possible new problem)",
        channel=CHANNEL_NAMES.get(alert.channel or "", alert.channel or "unknown"),
        when=moment.strftime("%a %d %b %Y, %H:%M:%S %Z"),
        link=link,
    )


def transcript_link(review_url: str, ref: int | None) -> str:
    """The review app's page for the conversation (its list, when the reference is not known yet)."""
    return f"{review_url}/conversations/{ref}" if ref else f"{review_url}/conversations"


def compose_email(alert: Escalation, text: AlertText, clinic_name: str, sender: str,
                  recipients: Sequence[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[{clinic_name}] {text.level} escalation: {text.symptoms}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    # one Message-ID per alert: a mail system that sees it twice can tell it is the same alert
    message["Message-ID"] = make_msgid(idstring=f"alert-{alert.key[:32]}", domain=sender.rpartition("@")[2])
    message["X-Clinic-Alert-Level"] = alert.level
    message.set_content(
        f"A patient reported a warning sign to the {clinic_name} assistant.\n\n"
        f"Level:      {text.level}\n"
        f"Symptoms:   {text.symptoms}\n"
        f"Channel:    {text.channel}\n"
        f"Time:       {text.when}\n"
        f"Transcript: {text.link}\n\n"
        f"{LEVEL_MEANING.get(alert.level, '')}\n"
        "Please read the transcript (staff login) and follow up with the patient; record what you did "
        "in the review app.\n\n"
        "This e-mail holds no patient words or contact details on purpose.\n"
    )
    return message


def compose_sms(alert: Escalation, text: AlertText, clinic_name: str) -> str:
    return (f"{clinic_name}: {text.level} escalation ({text.symptoms}) on {text.channel} at {text.when}. "
            f"Transcript: {text.link}")[:600]


def send_email(smtp_url: str, message: EmailMessage, timeout_s: float = SEND_TIMEOUT_S) -> None:
    """Hand the message to the SMTP server of ALERT_SMTP_URL; raises DeliveryError if it is not accepted."""
    parts = urllib.parse.urlsplit(smtp_url)
    host = parts.hostname or "localhost"
    try:
        if parts.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, parts.port or 465, timeout=timeout_s,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, parts.port or (587 if parts.scheme == "smtp+starttls" else 25),
                                  timeout=timeout_s)
        with client:
            if parts.scheme == "smtp+starttls":
                client.starttls(context=ssl.create_default_context())
            if parts.username:
                client.login(urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
            refused = client.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        raise DeliveryError(f"SMTP {host}: {type(error).__name__}: {error}") from error
    if refused:
        raise DeliveryError(f"SMTP {host} refused {len(refused)} recipient(s)")


def send_sms(api_url: str, account_sid: str, auth_token: str, from_number: str, to_number: str, body: str,
             timeout_s: float = SEND_TIMEOUT_S) -> str:
    """Create a message through Twilio's REST API (POST .../Messages.json); returns its sid."""
    url = f"{api_url}/2010-04-01/Accounts/{urllib.parse.quote(account_sid)}/Messages.json"
    data = urllib.parse.urlencode({"To": to_number, "From": from_number, "Body": body}).encode()
    credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Authorization": f"Basic {credentials}", "Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            payload = json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as error:
        detail = error.read()[:200].decode(errors="replace")
        raise DeliveryError(f"Twilio answered {error.code}: {detail}") from error
    except (OSError, ValueError) as error:
        raise DeliveryError(f"Twilio: {type(error).__name__}: {error}") from error
    return str(payload.get("sid", ""))
