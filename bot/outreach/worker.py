"""The outreach worker (`python -m bot.outreach.worker`, a supervised part of `make run`).

Every OUTREACH_POLL_S it
1. plans the messages of appointments changed since its last pass (a full pass at start, so a changed
   schedule file reaches every booked appointment after a restart; changes made through
   bot.outreach.appointments are planned at once by the outbox's change hook);
2. claims each due row (bot.outreach.outbox: one conditional UPDATE, so two workers never both win), checks
   the appointment once more (still active, same version, consent), the clock (a reminder after the start or
   a check-in a day late is dropped; quiet hours in the patient's zone push it to the next allowed time) and
   the SMS channel's opt-out store (STOP: never sent), renders the text and creates the message through
   Twilio's REST API with a status callback (delivered / failed come back to /webhooks/sms/status);
3. appends the text to the patient's conversation through Rasa's HTTP API (a bot event marked `outreach`
   and the `last_outreach` slot), so a "1" or "2" reply is read in context; when the bot is unreachable the
   row waits and is appended on a later pass.

Nothing twice, nothing lost: a worker that dies after claiming leaves a claim that expires (CLAIM_S); the next
worker asks Twilio whether a message with that text went to that number since the claim (GET Messages.json)
and records it as sent, or sends it now. The clock is injectable (`clock=`, or `--clock-file` for tests and
the benchmark), so a week of schedule runs in seconds.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from bot import config
from bot.outreach.appointments import Appointment
from bot.outreach.outbox import (
    APPOINTMENT_CANCELLED,
    CHECKIN,
    NO_CONSENT,
    OPTED_OUT,
    RESCHEDULED,
    SENDING,
    TOO_LATE,
    Outbox,
    OutreachMessage,
    too_late,
)
from bot.outreach.schedule import Schedule, load_schedule, render
from bot.privacy import mask_sender
from bot.vocabulary import OUTREACH_CHECKIN_KIND, OUTREACH_MESSAGE_KEY, OUTREACH_REMINDER_KIND, SLOT_LAST_OUTREACH

logger = logging.getLogger("bot.outreach.worker")

Clock = Callable[[], float]
SEND_TIMEOUT_S = 20.0  # one Twilio or Rasa request; well below outbox.CLAIM_S
MAX_ATTEMPTS = 6  # Twilio unreachable or 5xx: retried after 1, 2, 4, 8, 16 minutes, then `failed`
RETRY_BASE_S = 60.0
NOT_IN_SCHEDULE = "not_in_schedule"
PLAN_MARGIN_S = 5.0  # re-read appointments changed this long before the last pass (clock skew between processes)


class SendError(RuntimeError):
    """Twilio did not take the message; `permanent` when trying again cannot help (4xx)."""

    def __init__(self, message: str, permanent: bool = False, code: int | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.code = code


def file_clock(path: Path) -> Clock:
    """A clock read from a file holding seconds since the epoch (tests and the benchmark move it)."""

    def now() -> float:
        return float(Path(path).read_text().strip())

    return now


# --- Twilio's REST API ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TwilioAccount:
    api_url: str
    account_sid: str
    auth_token: str
    from_number: str

    @classmethod
    def from_config(cls) -> TwilioAccount | None:
        sid, token, sender = config.twilio_account_sid(), config.twilio_auth_token(), config.twilio_from_number()
        if not (sid and token and sender):
            return None
        return cls(config.twilio_api_url(), sid, token, sender)

    @property
    def messages_url(self) -> str:
        return f"{self.api_url}/2010-04-01/Accounts/{urllib.parse.quote(self.account_sid)}/Messages.json"

    def _call(self, url: str, data: bytes | None = None) -> dict[str, Any]:
        credentials = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        headers = {"Authorization": f"Basic {credentials}"}
        if data is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S) as reply:
                return json.loads(reply.read() or b"{}")
        except urllib.error.HTTPError as error:
            detail = error.read()[:200].decode(errors="replace")
            try:
                code = int(json.loads(detail).get("code"))
            except (ValueError, TypeError, AttributeError):
                code = None
            permanent = 400 <= error.code < 500 and error.code not in (408, 429)
            raise SendError(f"Twilio answered {error.code}: {detail}", permanent=permanent, code=code) from error
        except (OSError, ValueError) as error:
            raise SendError(f"Twilio: {type(error).__name__}: {error}") from error

    def send(self, to: str, body: str, status_callback: str | None) -> str:
        """Create the message (POST Messages.json); its sid."""
        fields = {"To": to, "From": self.from_number, "Body": body}
        if status_callback:
            fields["StatusCallback"] = status_callback
        payload = self._call(self.messages_url, urllib.parse.urlencode(fields).encode())
        return str(payload.get("sid") or "")

    def find_sent(self, to: str, body: str, since: float) -> str | None:
        """The sid of a message with this text to this number created at or after `since`, if Twilio has one."""
        day = datetime.fromtimestamp(since - 86400, timezone.utc).strftime("%Y-%m-%d")
        query = urllib.parse.urlencode({"To": to, "From": self.from_number, "DateSent>": day, "PageSize": 50})
        for item in self._call(f"{self.messages_url}?{query}").get("messages") or []:
            try:
                created = parsedate_to_datetime(str(item.get("date_created"))).timestamp()
            except (TypeError, ValueError):
                continue
            if item.get("body") == body and created >= since - 1:
                return str(item.get("sid") or "") or None
        return None


# --- the patient's conversation ------------------------------------------------------------------------
@dataclass(frozen=True)
class RasaTracker:
    """Appends outreach texts to conversations through the running bot's HTTP API (RASA_AUTH_TOKEN)."""

    url: str
    token: str | None

    @classmethod
    def from_config(cls) -> RasaTracker | None:
        """None without RASA_AUTH_TOKEN: texts are sent but not added to conversations (logged at start)."""
        token = config.rasa_auth_token()
        return cls(config.rasa_server_url().rstrip("/"), token) if token else None

    def append(self, message: OutreachMessage, sent_at: float) -> None:
        if not self.token:
            raise SendError("no RASA_AUTH_TOKEN: the text cannot be added to the conversation")
        kind = OUTREACH_CHECKIN_KIND if message.kind == CHECKIN else OUTREACH_REMINDER_KIND
        marker = {"message_id": message.id, "key": message.message_key, "kind": message.kind,
                  "appointment_id": message.appointment_id}
        events = [
            {"event": "bot", "text": message.body, "timestamp": time.time(), "data": {"custom": {"kind": kind}},
             "metadata": {OUTREACH_MESSAGE_KEY: marker}},
            {"event": "slot", "name": SLOT_LAST_OUTREACH, "value": {**marker, "sent_at": sent_at},
             "timestamp": time.time()},
        ]
        query = urllib.parse.urlencode({"token": self.token, "include_events": "NONE"})
        conversation = urllib.parse.quote(message.phone, safe="+")
        request = urllib.request.Request(f"{self.url}/conversations/{conversation}/tracker/events?{query}",
                                         data=json.dumps(events).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S) as reply:
                reply.read()
        except urllib.error.HTTPError as error:
            raise SendError(f"the bot answered {error.code}") from error
        except OSError as error:
            raise SendError(f"the bot did not answer ({type(error).__name__})") from error


def status_callback_url(message_id: int) -> str | None:
    base = config.outreach_status_url()
    if not base:
        return None
    return f"{base}{'&' if '?' in base else '?'}{urllib.parse.urlencode({'outreach_message': message_id})}"


@dataclass
class PassCounts:
    planned: int = 0
    sent: int = 0
    deferred: int = 0
    cancelled: int = 0
    failed: int = 0
    recovered: int = 0  # claims of a dead worker found sent at Twilio
    in_tracker: int = 0
    lost_races: int = 0

    def add(self, other: PassCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class OptOutReader:
    """Reads the SMS channel's opt-out record (bot.channels.sms.SmsStateStore, table `sms_opt_outs` in
    SMS_STATE_DB_URL) without importing the channel, which would load Rasa and TensorFlow into the worker."""

    TABLE = "sms_opt_outs"

    def __init__(self, url: str | None = None):
        from bot.privacy import private_sqlite_file

        self.url = url or config.sms_state_db_url()
        private_sqlite_file(self.url)
        options = {"connect_args": {"timeout": 15}} if self.url.startswith("sqlite") else {"pool_pre_ping": True}
        self.engine = sa.create_engine(self.url, future=True, **options)

    def is_opted_out(self, phone: str) -> bool:
        try:
            with self.engine.connect() as connection:
                row = connection.execute(sa.text(f"SELECT opted_out FROM {self.TABLE} WHERE phone = :phone"),
                                         {"phone": phone}).first()
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as error:
            if sa.inspect(self.engine).has_table(self.TABLE):
                raise SendError(f"opt-out record unreadable: {error}") from error
            return False  # nobody has texted STOP yet: the channel creates the table on first use
        return bool(row and row[0])


def _default_opt_outs() -> Callable[[str], bool]:
    return OptOutReader().is_opted_out


@dataclass
class OutreachWorker:
    outbox: Outbox = field(default_factory=Outbox)
    twilio: TwilioAccount | None = field(default_factory=TwilioAccount.from_config)
    tracker: RasaTracker | None = field(default_factory=RasaTracker.from_config)
    is_opted_out: Callable[[str], bool] = field(default_factory=_default_opt_outs)
    clock: Clock = time.time
    schedule: Schedule = field(default_factory=load_schedule)
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}")
    concurrency: int = 4
    _planned_until: float = 0.0

    # --- one pass ------------------------------------------------------------------------------------
    def run_once(self, limit: int = 500) -> PassCounts:
        """Plan, send what is due, add sent texts to conversations; what happened."""
        counts = PassCounts()
        now = self.clock()
        counts.planned, high = self.outbox.plan_changed(max(self._planned_until - PLAN_MARGIN_S, 0.0),
                                                        self.schedule, now)
        self._planned_until = max(high, self._planned_until)
        while True:
            due = self.outbox.due(self.clock(), limit=limit)
            if not due:
                break
            if self.concurrency > 1 and len(due) > 1:
                with ThreadPoolExecutor(self.concurrency) as pool:
                    results = list(pool.map(self.deliver, due))
            else:
                results = [self.deliver(message) for message in due]
            for result in results:
                counts.add(result)
            if len(due) < limit or not any(r.sent or r.cancelled or r.failed or r.recovered for r in results):
                break
        counts.in_tracker += self.record_in_tracker()
        return counts

    def deliver(self, message: OutreachMessage) -> PassCounts:
        counts = PassCounts()
        now = self.clock()
        if not self.outbox.claim(message, self.worker_id, now):
            counts.lost_races += 1
            return counts
        abandoned = message.status == SENDING  # a worker died holding it
        appointment = self.outbox.appointment_of(message)
        reason = self._reason_not_to_send(message, appointment, now)
        if reason:
            self.outbox.mark_cancelled(message, self.worker_id, reason, now)
            counts.cancelled += 1
            logger.info("Outreach %d (%s) not sent: %s.", message.id, message.message_key, reason)
            return counts
        assert appointment is not None
        body = render(self.schedule.message(message.message_key), appointment)
        if self.twilio is None:
            self.outbox.defer(message, self.worker_id, now + RETRY_BASE_S, now,
                              error="Twilio is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER)")
            counts.deferred += 1
            return counts
        try:
            if abandoned and message.claimed_at is not None:
                sid = self.twilio.find_sent(message.phone, body, message.claimed_at)
                if sid:
                    self.outbox.mark_sent(message, self.worker_id, body, sid, message.claimed_at)
                    counts.recovered += 1
                    logger.info("Outreach %d was sent before its worker stopped (Twilio %s).", message.id, sid)
                    return counts
            wake = self._quiet_until(appointment, now)
            if wake is not None:
                self.outbox.defer(message, self.worker_id, wake, now)
                counts.deferred += 1
                return counts
            if self.is_opted_out(message.phone):
                self.outbox.mark_cancelled(message, self.worker_id, OPTED_OUT, now)
                counts.cancelled += 1
                return counts
            sid = self.twilio.send(message.phone, body, status_callback_url(message.id))
        except SendError as error:
            attempts = message.attempts + 1
            if error.permanent or attempts >= MAX_ATTEMPTS:
                self.outbox.mark_failed(message, self.worker_id, str(error), now)
                counts.failed += 1
                logger.error("Outreach %d to %s failed: %s", message.id, mask_sender(message.phone), error)
            else:
                self.outbox.defer(message, self.worker_id, now + RETRY_BASE_S * 2 ** (attempts - 1), now,
                                  error=str(error))
                counts.deferred += 1
                logger.warning("Outreach %d: %s; will retry.", message.id, error)
            return counts
        if self.outbox.mark_sent(message, self.worker_id, body, sid, now):
            counts.sent += 1
            logger.info("Outreach %d (%s) sent to %s (Twilio %s).", message.id, message.message_key,
                        mask_sender(message.phone), sid or "no sid")
        return counts

    def _reason_not_to_send(self, message: OutreachMessage, appointment: Appointment | None, now: float) -> str | None:
        if appointment is None or not appointment.active:
            return APPOINTMENT_CANCELLED
        if appointment.version != message.appointment_version:
            return RESCHEDULED
        if not appointment.consent:
            return NO_CONSENT
        if message.message_key not in self.schedule.keys:
            return NOT_IN_SCHEDULE
        if too_late(message.kind, message.due_at, appointment.starts_at.timestamp(), now):
            return TOO_LATE
        return None

    def _quiet_until(self, appointment: Appointment, now: float) -> float | None:
        """The end of the quiet hours when `now` is inside them on the patient's clock."""
        instant = datetime.fromtimestamp(now, timezone.utc)
        allowed = self.schedule.quiet_hours.next_allowed(instant, ZoneInfo(appointment.time_zone))
        return allowed.timestamp() if allowed > instant + timedelta(seconds=1) else None

    def record_in_tracker(self) -> int:
        """Append sent texts not yet in their conversations; the number appended."""
        if self.tracker is None:
            return 0
        done = 0
        for message in self.outbox.not_in_tracker():
            try:
                self.tracker.append(message, message.sent_at or self.clock())
            except SendError as error:
                logger.warning("Outreach %d: not yet in the conversation (%s); will try again.", message.id, error)
                break  # the bot is down: try again on the next pass
            self.outbox.mark_in_tracker(message.id, self.clock())
            done += 1
        return done

    # --- forever ------------------------------------------------------------------------------------------
    def run(self, stop: threading.Event, poll_s: float) -> None:
        logger.info("Outreach worker %s started: every %g s; Twilio %s; conversations %s; status callbacks %s.",
                    self.worker_id, poll_s, "configured" if self.twilio else "NOT configured (texts wait)",
                    "updated" if self.tracker else "NOT updated (no RASA_AUTH_TOKEN)",
                    "on" if config.outreach_status_url() else "off (no TWILIO_WEBHOOK_URL / OUTREACH_STATUS_URL)")
        while not stop.is_set():
            try:
                counts = self.run_once()
                if counts.sent or counts.cancelled or counts.failed or counts.planned:
                    logger.info("Outreach pass: %s", counts)
            except Exception:  # noqa: BLE001 - the database or the schedule file is unavailable: keep trying
                logger.exception("Outreach pass failed; trying again.")
            stop.wait(poll_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.outreach.worker",
                                     description="send due reminders and check-ins until stopped")
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    parser.add_argument("--clock-file", type=Path, help="(tests, benchmark) read the time from this file")
    parser.add_argument("--poll-s", type=float, help="seconds between passes (default OUTREACH_POLL_S)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    clock = file_clock(args.clock_file) if args.clock_file else time.time
    outreach = OutreachWorker(clock=clock)
    if args.once:
        logger.info("Outreach pass: %s", outreach.run_once())
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    outreach.run(stop, args.poll_s or config.outreach_poll_s())
    return 0


if __name__ == "__main__":
    sys.exit(main())
