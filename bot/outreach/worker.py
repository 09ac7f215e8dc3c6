"""The outreach worker (`python -m bot.outreach.worker`, a supervised part of `make run`).

Every OUTREACH_POLL_S it
1. plans the messages of appointments changed since its last pass (every appointment at start and once an
   hour, so a changed schedule file reaches every booked appointment after a restart; changes made through
   bot.outreach.appointments are planned at once by the outbox's change hook: this is the safety net);
2. claims each due row (bot.outreach.outbox: one conditional UPDATE, so two workers never both win), checks
   the appointment once more (still active, same version, consent), the clock (a reminder after the start or
   a check-in a day late is dropped; quiet hours in the patient's zone push it to the next allowed time) and
   the SMS channel's opt-out store (STOP: never sent), renders the text and creates the message through
   Twilio's REST API with a status callback (delivered / failed come back to /webhooks/sms/status);
3. appends the text to the patient's conversation through Rasa's HTTP API (a bot event marked `outreach`
   and the `last_outreach` slot), so a "1" or "2" reply is read in context; when the bot is unreachable the
   row waits and is appended on a later pass.

Nothing twice, nothing lost: a worker that dies after claiming leaves a claim that expires (CLAIM_S); the next
worker asks Twilio whether a message with that text went to that number since it was due (GET Messages.json)
and records it as sent, or sends it now. A retry after an error (Twilio's answer may have been lost) asks the
same question first. The clock is injectable (`clock=`, or `--clock-file` for tests and
the benchmark), so a week of schedule runs in seconds.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import logging
import os
import random
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
BATCH = 50  # rows claimed and recorded per transaction (a crash leaves at most this many to check with Twilio)
FULL_PLAN_EVERY_S = 3600.0  # besides the change hook and the cursor, every appointment is planned again this often


_connections = threading.local()


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

    def _connection(self, fresh: bool = False) -> http.client.HTTPConnection:
        """This thread's kept-alive connection to Twilio (a TLS handshake per text would cost more than the text)."""
        connection = getattr(_connections, "twilio", None)
        if connection is None or fresh or getattr(_connections, "twilio_base", None) != self.api_url:
            if connection is not None:
                connection.close()
            parts = urllib.parse.urlsplit(self.api_url)
            kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            connection = kind(parts.netloc, timeout=SEND_TIMEOUT_S)
            _connections.twilio, _connections.twilio_base = connection, self.api_url
        return connection

    def _call(self, url: str, data: bytes | None = None) -> dict[str, Any]:
        credentials = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        headers = {"Authorization": f"Basic {credentials}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        parts = urllib.parse.urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        for attempt in (1, 2):
            connection = self._connection(fresh=attempt == 2)
            try:
                connection.request("POST" if data is not None else "GET", path, body=data, headers=headers)
                reply = connection.getresponse()
                raw = reply.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as error:
                if attempt == 2 or data is not None and not isinstance(error, BrokenPipeError):
                    # a POST that may have reached Twilio is not repeated blindly: the claim is settled later
                    connection.close()
                    raise SendError(f"Twilio: {type(error).__name__}: {error}") from error
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                _connections.twilio = None
                raise SendError(f"Twilio: {type(error).__name__}: {error}") from error
        if reply.status >= 400:
            detail = raw[:200].decode(errors="replace")
            try:
                code = int(json.loads(detail).get("code"))
            except (ValueError, TypeError, AttributeError):
                code = None
            permanent = reply.status not in (408, 429) and reply.status < 500
            raise SendError(f"Twilio answered {reply.status}: {detail}", permanent=permanent, code=code)
        try:
            return json.loads(raw or b"{}")
        except ValueError as error:
            raise SendError(f"Twilio: not JSON ({error})") from error

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
    _plan_cursor: tuple[float, int] = (0.0, 0)
    _full_plan_at: float = 0.0  # time.monotonic() of the last full planning pass
    _executor: ThreadPoolExecutor | None = None

    # --- one pass ------------------------------------------------------------------------------------
    def run_once(self, limit: int = 500) -> PassCounts:
        """Plan, send what is due, add sent texts to conversations; what happened."""
        counts = PassCounts()
        now = self.clock()
        if not self._full_plan_at or time.monotonic() - self._full_plan_at > FULL_PLAN_EVERY_S:
            self._plan_cursor, self._full_plan_at = (0.0, 0), time.monotonic()  # a change another clock dated late
        counts.planned, self._plan_cursor = self.outbox.plan_changed(self._plan_cursor, self.schedule, now)
        while True:
            due = self.outbox.due(self.clock(), limit=limit)
            batches = [due[start:start + BATCH] for start in range(0, len(due), BATCH)]
            random.shuffle(batches)  # two workers reading the same due rows mostly take different batches
            progress = 0
            for batch in batches:
                result = self.deliver_batch(batch)
                counts.add(result)
                progress += result.sent + result.cancelled + result.failed + result.recovered + result.deferred
            if len(due) < limit or not progress:
                break
        counts.in_tracker += self.record_in_tracker()
        return counts

    def deliver_batch(self, messages: list[OutreachMessage]) -> PassCounts:
        """Claim the rows (one transaction), check and send each (SEND_THREADS at a time), record (one
        transaction). A worker that dies in between leaves claims that the next one settles with Twilio."""
        counts = PassCounts()
        now = self.clock()
        won = self.outbox.claim_many(messages, self.worker_id, now)
        counts.lost_races += len(messages) - len(won)
        if not won:
            return counts
        appointments = self.outbox.appointments_by_id(message.appointment_id for message in won)
        work = [(message, appointments.get(message.appointment_id), now) for message in won]
        if self.concurrency > 1 and len(work) > 1:
            outcomes = list(self._pool().map(lambda item: self._one(*item), work))
        else:
            outcomes = [self._one(*item) for item in work]
        self.outbox.finish_many(((message.id, values) for message, _, values in outcomes), self.worker_id)
        for _, kind, _ in outcomes:
            setattr(counts, kind, getattr(counts, kind) + 1)
        return counts

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="outreach-send")
        return self._executor

    def _one(self, message: OutreachMessage, appointment: Appointment | None,
             now: float) -> tuple[OutreachMessage, str, dict]:
        """What to do with one claimed row, done: (row, outcome counted in PassCounts, values to record)."""
        reason = self._reason_not_to_send(message, appointment, now)
        if reason:
            logger.info("Outreach %d (%s) not sent: %s.", message.id, message.message_key, reason)
            return message, "cancelled", Outbox.cancelled(reason, now)
        assert appointment is not None
        body = render(self.schedule.message(message.message_key), appointment)
        if self.twilio is None:
            return message, "deferred", Outbox.deferred(
                now + RETRY_BASE_S, now, "Twilio is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, "
                "TWILIO_FROM_NUMBER)")
        try:
            if message.attempts:  # tried before: its worker died, or Twilio's answer was lost - did it go out?
                sid = self.twilio.find_sent(message.phone, body, message.due_at)
                if sid:
                    logger.info("Outreach %d was sent by an earlier attempt (Twilio %s)%s.", message.id, sid,
                                ", before its worker stopped" if message.status == SENDING else "")
                    return message, "recovered", Outbox.sent(body, sid, message.claimed_at or now, now)
            wake = self._quiet_until(appointment, now)
            if wake is not None:
                return message, "deferred", Outbox.deferred(wake, now)
            if self.is_opted_out(message.phone):
                return message, "cancelled", Outbox.cancelled(OPTED_OUT, now)
            sid = self.twilio.send(message.phone, body, status_callback_url(message.id))
        except SendError as error:
            attempts = message.attempts + 1
            if error.permanent or attempts >= MAX_ATTEMPTS:
                logger.error("Outreach %d to %s failed: %s", message.id, mask_sender(message.phone), error)
                return message, "failed", Outbox.failed(str(error), now)
            logger.warning("Outreach %d: %s; will retry.", message.id, error)
            return message, "deferred", Outbox.deferred(now + RETRY_BASE_S * 2 ** (attempts - 1), now, str(error))
        logger.info("Outreach %d (%s) sent to %s (Twilio %s).", message.id, message.message_key,
                    mask_sender(message.phone), sid or "no sid")
        return message, "sent", Outbox.sent(body, sid, now, now)

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
