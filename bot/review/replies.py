"""Staff write to the patient, and take a conversation over from the assistant, from the transcript page.

Everything goes through the running bot's HTTP API (RASA_SERVER_URL, RASA_AUTH_TOKEN), one call per action:
`POST /conversations/{id}/tracker/events?execute_side_effects=true&output_channel=latest`. Under the
conversation's lock Rasa appends the events, sends the bot messages among them on the conversation's own
channel (bot/channels/staff.py: SMS through Twilio's REST API; web chat to the connected widget, or on the
patient's next visit) and then saves the tracker. A message that cannot be delivered is not recorded and the
API's error is shown to staff, so the transcript never claims a message the patient did not get.

- reply: a bot event with the staff text, `data.custom.kind = staff_reply` and
  `metadata.sent_by_staff = <username>` (transcripts and exports show "Staff" and who).
- take over: the `staff_takeover` slot {"staff", "since", "until"} (STAFF_TAKEOVER_MINUTES) plus the notice
  that a person is replying (bot.messages.TAKEOVER_NOTICE), sent once, now. The channel guard then withholds
  the bot's ordinary answers (bot/takeover.py); seek-care still goes out.
- hand back: the slot set to null plus bot.messages.HANDBACK_NOTICE.

Each is recorded in the access log with the staff member's name (bot.review.accesslog).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, flash, redirect, render_template, request, url_for

from bot import config
from bot.messages import HANDBACK_NOTICE, TAKEOVER_NOTICE
from bot.review.masking import mask_text
from bot.review.transcript import Transcript
from bot.takeover import Takeover
from bot.vocabulary import (
    CHANNEL_REST,
    CHANNEL_SMS,
    CHANNEL_WEB,
    SLOT_STAFF_TAKEOVER,
    STAFF_MESSAGE_KEY,
    STAFF_NOTICE_KIND,
    STAFF_REPLY_KIND,
    STAFF_REPLY_MAX_CHARS,
)

API_TIMEOUT_S = 30.0  # Twilio's REST API is called inside this request
DELIVERY = {
    CHANNEL_SMS: "Sent as a text message.",
    CHANNEL_WEB: "Sent to the web chat: the patient sees it now if the chat is open, otherwise on their next visit.",
}


class ReplyProblem(ValueError):
    """Staff input that cannot be sent (shown on the page, 400)."""


class BotUnreachable(RuntimeError):
    """The bot's HTTP API refused or failed the call (shown on the page, 502); nothing was recorded."""


@dataclass(frozen=True)
class RasaApi:
    """The running bot's HTTP API (the token goes in `?token=`, as Rasa's --auth-token expects)."""

    url: str
    token: str | None

    @classmethod
    def from_config(cls) -> RasaApi:
        return cls(config.rasa_server_url(), config.rasa_auth_token())

    def append_and_send(self, sender_id: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        if not self.token:
            raise BotUnreachable("the review app has no RASA_AUTH_TOKEN, so it cannot reach the bot")
        query = urllib.parse.urlencode({"token": self.token, "execute_side_effects": "true",
                                        "output_channel": "latest", "include_events": "NONE"})
        url = f"{self.url}/conversations/{api_path_id(sender_id)}/tracker/events?{query}"
        body = json.dumps(events).encode()
        call = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(call, timeout=API_TIMEOUT_S) as reply:
                raw = reply.read()
        except urllib.error.HTTPError as error:
            raise BotUnreachable(_api_error(error)) from error
        except OSError as error:
            raise BotUnreachable(f"the bot did not answer ({type(error).__name__})") from error
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return {}


# Rasa's routes (Sanic, `<conversation_id:path>`) match the raw path and do not percent-decode it, so an id is
# sent as it is; one that would need escaping (space, ?, #, %, non-ASCII) cannot be addressed safely.
PATH_SAFE = "/:@!$&'()*+,;=-._~"


def api_path_id(sender_id: str) -> str:
    """The conversation id as it goes into the API's path; refused if it could reach another conversation."""
    if not sender_id or urllib.parse.quote(sender_id, safe=PATH_SAFE) != sender_id:
        raise BotUnreachable("this conversation's id cannot be used with the bot's HTTP API")
    return sender_id


def _api_error(error: urllib.error.HTTPError) -> str:
    """The reason Rasa gave (its `message`), without the URL (which holds the token)."""
    try:
        message = str(json.loads(error.read() or b"{}").get("message") or "")
    except (ValueError, AttributeError, OSError):
        message = ""
    message = mask_text(message.removeprefix("An unexpected error occurred. Error: "))  # e.g. Twilio naming the number
    return f"the bot answered {error.code}" + (f": {message[:300]}" if message else "")


def staff_text(raw: str | None) -> str:
    """The reply as it will be sent: trimmed, Windows line ends made plain; refused if empty or too long."""
    text = (raw or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise ReplyProblem("Please write a message before sending.")
    if len(text) > STAFF_REPLY_MAX_CHARS:
        raise ReplyProblem(f"The message is {len(text):,} characters long; at most {STAFF_REPLY_MAX_CHARS:,} can be sent.")
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in text):
        raise ReplyProblem("The message contains control characters that cannot be sent.")
    return text


def _filled(text: str) -> str:
    from bot.settings import fill_placeholders

    return fill_placeholders(text)


def staff_message(text: str, kind: str, staff: str) -> dict[str, Any]:
    """A bot event written by staff: the text, its kind for the widget, the staff member in the metadata."""
    return {"event": "bot", "text": text, "timestamp": time.time(), "data": {"custom": {"kind": kind}},
            "metadata": {STAFF_MESSAGE_KEY: staff}}


def takeover_events(staff: str, minutes: float) -> list[dict[str, Any]]:
    takeover = Takeover.start(staff, minutes)
    return [{"event": "slot", "name": SLOT_STAFF_TAKEOVER, "value": takeover.slot_value(), "timestamp": takeover.since},
            staff_message(_filled(TAKEOVER_NOTICE), STAFF_NOTICE_KIND, staff)]


def handback_events(staff: str) -> list[dict[str, Any]]:
    return [{"event": "slot", "name": SLOT_STAFF_TAKEOVER, "value": None, "timestamp": time.time()},
            staff_message(_filled(HANDBACK_NOTICE), STAFF_NOTICE_KIND, staff)]


@dataclass(frozen=True)
class ReplyPanel:
    """What the transcript page offers: the takeover state, and whether a reply can reach the patient."""

    takeover: Takeover | None
    can_send: bool
    why_not: str
    minutes: int
    channel_note: str


def reply_panel(transcript: Transcript, minutes: float = config.DEFAULT_STAFF_TAKEOVER_MINUTES) -> ReplyPanel:
    takeover = transcript.takeover if transcript.takeover and transcript.takeover.active() else None
    why_not = ""
    if transcript.channel == CHANNEL_REST:
        why_not = ("This conversation came through the REST API (an integration): a reply cannot reach the patient. "
                   "Taking over still stops the assistant's ordinary answers.")
    elif transcript.channel not in DELIVERY:
        why_not = "The channel of this conversation is not known, so a reply cannot be sent."
    note = {CHANNEL_SMS: "Sent as a text message from the clinic's number.",
            CHANNEL_WEB: "Sent to the website chat; shown on the patient's next visit if the chat is closed."}
    return ReplyPanel(takeover=takeover, can_send=not why_not, why_not=why_not,
                      minutes=round(minutes), channel_note=note.get(transcript.channel or "", ""))


def register(app: Flask, load_transcript: Callable[[int], Transcript], service: Callable[[], Any]) -> None:
    """Add the reply, take-over and hand-back forms' endpoints (login and CSRF as every other page).

    STAFF_TAKEOVER_MINUTES is read here, when the app starts: a bad value stops it instead of failing pages.
    """
    minutes = config.staff_takeover_minutes()
    app.jinja_env.globals["staff_reply_panel"] = lambda transcript: reply_panel(transcript, minutes)

    def page(transcript: Transcript, status: int, draft: str = ""):
        return render_template("conversation.html", t=transcript, back_url=url_for("conversations"),
                               reply_draft=draft), status

    def send(transcript: Transcript, events: list[dict[str, Any]], action: str, detail: str) -> None:
        try:
            RasaApi.from_config().append_and_send(transcript.sender_id, events)
        except BotUnreachable as error:
            service().record(f"{action}_failed", transcript.sender_id, f"conversation {transcript.ref}; {error}")
            raise
        service().record(action, transcript.sender_id, f"conversation {transcript.ref}; {detail}")

    @app.post("/conversations/<int:ref>/reply")
    def staff_reply(ref: int):
        transcript = load_transcript(ref)
        draft = (request.form.get("text") or "")[:STAFF_REPLY_MAX_CHARS * 2]
        panel = reply_panel(transcript, minutes)
        try:
            if not panel.can_send:
                raise ReplyProblem(panel.why_not)
            text = staff_text(draft)
        except ReplyProblem as problem:
            flash(str(problem), "error")
            return page(transcript, 400, draft)
        staff = service().staff
        try:
            send(transcript, [staff_message(text, STAFF_REPLY_KIND, staff)], "staff_reply",
                 f"{transcript.channel}; {len(text)} characters")
        except BotUnreachable as error:
            flash(f"Not sent: {error}.", "error")
            return page(transcript, 502, draft)
        flash(DELIVERY[transcript.channel or ""], "info")
        return redirect(url_for("conversation", ref=ref), code=303)

    @app.post("/conversations/<int:ref>/takeover")
    def staff_takeover(ref: int):
        transcript = load_transcript(ref)
        current = reply_panel(transcript, minutes).takeover
        if current is not None:  # a second click, or a colleague: the patient is told only once
            flash(f"{current.staff} has already taken over this conversation.", "info")
            return redirect(url_for("conversation", ref=ref), code=303)
        staff = service().staff
        try:
            send(transcript, takeover_events(staff, minutes), "takeover", f"{minutes:g} minutes")
        except BotUnreachable as error:
            flash(f"Not taken over: {error}.", "error")
            return page(transcript, 502)
        flash(f"You have taken over for {minutes:g} minutes: the assistant answers only urgent symptoms, and the "
              "patient was told a person is replying.", "info")
        return redirect(url_for("conversation", ref=ref), code=303)

    @app.post("/conversations/<int:ref>/handback")
    def staff_handback(ref: int):
        transcript = load_transcript(ref)
        if reply_panel(transcript).takeover is None:
            flash("The assistant is already answering this patient.", "info")
            return redirect(url_for("conversation", ref=ref), code=303)
        staff = service().staff
        try:
            send(transcript, handback_events(staff), "handback", "")
        except BotUnreachable as error:
            flash(f"Not handed back: {error}.", "error")
            return page(transcript, 502)
        flash("The assistant answers this patient again.", "info")
        return redirect(url_for("conversation", ref=ref), code=303)
