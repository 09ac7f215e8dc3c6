"""The alert worker (`python -m bot.alerts worker`, a supervised part of `make run`).

Two ways in, one outbox, one way out:
- RabbitMQ (RABBITMQ_URL set): consumes the durable queue `clinic_alerts` that Rasa's event broker fills
  with every stored event; a message is acknowledged only after its escalation is in the outbox, so a
  worker or broker restart redelivers instead of losing it.
- the tracker store's `events` table, read incrementally by id (the embedded default on a machine
  without RabbitMQ, every ALERT_POLL_S; with RabbitMQ, a safety sweep every SWEEP_WITH_BROKER_S that
  finds whatever the broker lost). Each read asks only for ids above the saved position (minus a small
  look-back for PostgreSQL transactions that commit out of id order) and only for rows whose JSON names
  a triage entity: an index range scan, not a scan of the store.
The outbox's unique key makes every way in idempotent; deliveries go out as soon as they are recorded,
with retries and a growing pause (bot.alerts.store).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot import config
from bot.alerts.delivery import (
    DeliveryError,
    alert_text,
    compose_email,
    compose_sms,
    send_email,
    send_sms,
    symptom_labels,
    transcript_link,
)
from bot.alerts.detect import ENTITY_MARKERS, Escalation, escalation_from_event
from bot.alerts.store import EMAIL, FAILED, SMS, AlertStore, DueDelivery
from bot.datafile import DataFileError
from bot.privacy import mask_sender, private_sqlite_file
from bot.settings import AlertSettings, clinic_settings, load_alert_settings

logger = logging.getLogger("bot.alerts.worker")

EVENTS_CURSOR = "tracker_events"
EVENTS_FLOOR = "tracker_events_floor"  # the position at the first start: the look-back never reads below it
LOOKBACK_IDS = 200  # ids below the saved position read again (out-of-order commits); the key de-duplicates
READ_LIMIT = 2_000
SWEEP_WITH_BROKER_S = 15.0
KNOWN_KEYS = 20_000  # recently recorded keys kept in memory so a re-read costs no database write
DEFAULT_RETRY_BASE_S = 5.0
DEFAULT_MAX_ATTEMPTS = 8  # 5 s, 10 s, 20 s ... about 10 minutes of trying before `failed`
SEND_CONCURRENCY = 4


class EventsTableReader:
    """New escalations in the tracker store's `events` table, read by id from a saved position."""

    def __init__(self, tracker_url: str, store: AlertStore):
        private_sqlite_file(tracker_url)
        options = {"connect_args": {"timeout": 15}} if tracker_url.startswith("sqlite") else {"pool_pre_ping": True}
        self.engine: Engine = sa.create_engine(tracker_url, future=True, **options)
        self.store = store

    def _has_events(self) -> bool:
        return sa.inspect(self.engine).has_table("events")

    def read(self) -> tuple[list[Escalation], int | None]:
        """Escalations after the saved position, and the new position to save once they are recorded."""
        if not self._has_events():
            if self.store.cursor(EVENTS_CURSOR) is None:
                self.store.set_cursor(EVENTS_FLOOR, 0)  # the table is new: everything in it will be new
                self.store.set_cursor(EVENTS_CURSOR, 0)
            return [], None
        with self.engine.connect() as connection:
            high = connection.execute(sa.text("SELECT MAX(id) FROM events")).scalar() or 0
            position = self.store.cursor(EVENTS_CURSOR)
            if position is None:  # first start on an existing store: alert from now on, not for the past
                logger.info("Alert worker: first start; reading tracker events after id %d.", high)
                self.store.set_cursor(EVENTS_FLOOR, high)
                return [], high
            # no early return when nothing is newer: a row below the position may have just been committed
            markers = " OR ".join(f"data LIKE :marker{index}" for index in range(len(ENTITY_MARKERS)))
            rows = connection.execute(sa.text(
                "SELECT id, sender_id, data FROM events WHERE id > :low AND id <= :high AND type_name = 'user' "
                f"AND ({markers}) ORDER BY id LIMIT :limit"),
                {"low": max(position - LOOKBACK_IDS, self.store.cursor(EVENTS_FLOOR) or 0), "high": high,
                 "limit": READ_LIMIT,
                 **{f"marker{index}": f"%{marker}%" for index, marker in enumerate(ENTITY_MARKERS)}},
            ).all()
        high = max(high, position)
        if len(rows) == READ_LIMIT:
            high = rows[-1].id  # a long backlog: continue from here next time
        found = []
        for row in rows:
            try:
                event = json.loads(row.data)
            except (TypeError, ValueError):
                continue
            escalation = escalation_from_event(event, row.sender_id)
            if escalation is not None:
                found.append(escalation)
        return found, (high if high != position else None)

    def conversation_ref(self, conversation_id: str) -> int | None:
        """The review app's reference of a conversation: the id of its first stored event."""
        try:
            with self.engine.connect() as connection:
                return connection.execute(sa.text("SELECT MIN(id) FROM events WHERE sender_id = :sender"),
                                          {"sender": conversation_id}).scalar()
        except sa.exc.SQLAlchemyError:
            return None


class AlertWorker:
    def __init__(self, store: AlertStore | None = None, tracker_url: str | None = None,
                 broker_url: str | None = None, poll_s: float | None = None,
                 retry_base_s: float = DEFAULT_RETRY_BASE_S, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 settings: AlertSettings | None = None):
        self.store = store or AlertStore()
        self.reader = EventsTableReader(tracker_url or config.tracker_db_url(), self.store)
        self.broker_url = broker_url if broker_url is not None else config.rabbitmq_url()
        self.poll_s = poll_s or config.alert_poll_s()
        self.sweep_s = max(SWEEP_WITH_BROKER_S, self.poll_s) if self.broker_url else self.poll_s
        self.retry_base_s = retry_base_s
        self.max_attempts = max_attempts
        self.settings = settings or load_alert_settings()
        self.clinic_name = clinic_settings().clinic_name
        self.tz = config.review_timezone()
        self.review_url = config.review_public_url()
        self.smtp_url = config.alert_smtp_url()
        self.twilio = (config.twilio_account_sid(), config.twilio_auth_token(), config.twilio_from_number())
        self.methods = self._methods()
        symptom_labels()  # the triage rules' staff labels, loaded before the first alert waits for them
        self._known: OrderedDict[str, None] = OrderedDict()
        self._intake_lock = threading.Lock()  # the sweep and the broker consumer record from their own threads
        self._wake: asyncio.Event | None = None
        self.broker_connected = False

    def _methods(self) -> tuple[str, ...]:
        methods = []
        if self.smtp_url:
            methods.append(EMAIL)
        else:
            logger.warning("Alert worker: ALERT_SMTP_URL is not set; alerts are recorded but not e-mailed.")
        if self.settings.on_call_phone and all(self.twilio):
            methods.append(SMS)
        elif self.settings.on_call_phone:
            logger.warning("Alert worker: an on-call phone is set but TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN or "
                           "TWILIO_FROM_NUMBER is not; no SMS alerts.")
        return tuple(methods)

    # --- intake ------------------------------------------------------------------------------------------
    def intake(self, escalations: Iterable[Escalation], source: str) -> int:
        """Record escalations not seen before; the number that were new."""
        with self._intake_lock:
            return self._intake(escalations, source)

    def _intake(self, escalations: Iterable[Escalation], source: str) -> int:
        new = 0
        for escalation in escalations:
            if escalation.key in self._known:
                continue
            if self.store.record(escalation, self.methods):
                new += 1
                logger.info("Alert recorded from %s: %s escalation in conversation %s (%.1f s after the message).",
                            source, escalation.level, mask_sender(escalation.conversation_id),
                            time.time() - escalation.occurred_at)
            self._known[escalation.key] = None
            if len(self._known) > KNOWN_KEYS:
                self._known.popitem(last=False)
        return new

    def sweep_once(self) -> int:
        escalations, position = self.reader.read()
        new = self.intake(escalations, "the events table")
        if position is not None:
            self.store.set_cursor(EVENTS_CURSOR, position)  # only after the escalations are recorded
        return new

    async def _sweep_forever(self) -> None:
        while True:
            try:
                if await asyncio.to_thread(self.sweep_once):
                    self._poke()
            except sa.exc.SQLAlchemyError as error:
                logger.warning("Alert worker: reading the tracker store failed (%s); trying again.",
                               str(error).splitlines()[0])
            await asyncio.sleep(self.sweep_s)

    async def _consume_broker(self) -> None:
        import aio_pika

        from bot.alerts.broker import ALERT_QUEUE, RASA_EXCHANGE

        while True:
            try:
                connection = await aio_pika.connect_robust(self.broker_url)
                break
            except Exception as error:  # noqa: BLE001 - RabbitMQ down or starting
                logger.warning("Alert worker: RabbitMQ not reachable (%s); trying again.", error)
                await asyncio.sleep(2.0)
        async with connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=64)
            exchange = await channel.declare_exchange(RASA_EXCHANGE, aio_pika.ExchangeType.FANOUT)
            queue = await channel.declare_queue(ALERT_QUEUE, durable=True)
            await queue.bind(exchange, "")
            self.broker_connected = True
            logger.info("Alert worker: consuming RabbitMQ queue %s.", ALERT_QUEUE)
            async with queue.iterator() as messages:
                async for message in messages:
                    await self._handle_broker_message(message)

    async def _handle_broker_message(self, message) -> None:  # noqa: ANN001 - aio_pika.IncomingMessage
        body = message.body
        escalation = None
        if any(marker.encode() in body for marker in ENTITY_MARKERS):
            try:
                escalation = escalation_from_event(json.loads(body))
            except ValueError:
                logger.warning("Alert worker: a broker message that is not JSON was skipped.")
        if escalation is not None:
            try:
                if await asyncio.to_thread(self.intake, [escalation], "RabbitMQ"):
                    self._poke()
            except sa.exc.SQLAlchemyError as error:
                logger.warning("Alert worker: outbox unavailable (%s); the message goes back to the queue.",
                               str(error).splitlines()[0])
                await asyncio.sleep(1.0)
                await message.nack(requeue=True)
                return
        await message.ack()

    # --- delivery -----------------------------------------------------------------------------------------
    def send(self, delivery: DueDelivery) -> None:
        alert = delivery.alert
        text = alert_text(alert, transcript_link(self.review_url, self.reader.conversation_ref(alert.conversation_id)),
                          self.tz)
        if delivery.method == EMAIL:
            from datetime import datetime

            recipients = self.settings.recipients_at(datetime.fromtimestamp(alert.occurred_at, self.tz))
            message = compose_email(alert, text, self.clinic_name, self.settings.email_from, recipients)
            send_email(self.smtp_url or "", message)
        elif delivery.method == SMS:
            sid, token, sender = self.twilio
            send_sms(config.twilio_api_url(), sid or "", token or "", sender or "", self.settings.on_call_phone or "",
                     compose_sms(alert, text, self.clinic_name))
        else:
            raise DeliveryError(f"unknown delivery method {delivery.method!r}")

    def deliver(self, delivery: DueDelivery) -> None:
        if not self.store.claim(delivery):
            return
        try:
            self.send(delivery)
        except DeliveryError as error:
            status = self.store.mark_failed_attempt(delivery, str(error), self.max_attempts, self.retry_base_s)
            log = logger.error if status == FAILED else logger.warning
            log("Alert %d %s attempt %d failed (%s)%s", delivery.alert_id, delivery.method, delivery.attempts + 1,
                error, ": giving up, shown as failed in the review app" if status == FAILED else "; will retry.")
            return
        self.store.mark_sent(delivery)
        logger.info("Alert %d sent by %s (%.1f s after the message).", delivery.alert_id, delivery.method,
                    time.time() - delivery.alert.occurred_at)

    async def _deliver_forever(self) -> None:
        limit = asyncio.Semaphore(SEND_CONCURRENCY)

        async def one(delivery: DueDelivery) -> None:
            async with limit:
                await asyncio.to_thread(self.deliver, delivery)

        while True:
            try:
                due = await asyncio.to_thread(self.store.due)
                if due:
                    await asyncio.gather(*(one(delivery) for delivery in due))
                    continue  # there may be more
            except sa.exc.SQLAlchemyError as error:
                logger.warning("Alert worker: outbox unavailable (%s); trying again.", str(error).splitlines()[0])
            assert self._wake is not None
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set."""
        self._wake = asyncio.Event()
        logger.info("Alert worker started: intake %s; delivery by %s.",
                    f"RabbitMQ + events table sweep every {self.sweep_s:g} s" if self.broker_url
                    else f"events table every {self.sweep_s:g} s", ", ".join(self.methods) or "nothing (not configured)")
        tasks = [asyncio.create_task(self._sweep_forever()), asyncio.create_task(self._deliver_forever())]
        if self.broker_url:
            tasks.append(asyncio.create_task(self._consume_broker()))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in [*tasks, stopper]:
            task.cancel()
        await asyncio.gather(*tasks, stopper, return_exceptions=True)
        for task in done:
            if task is not stopper and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.alerts", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="record escalations and deliver alerts until stopped")
    worker.add_argument("--retry-base-s", type=float, default=DEFAULT_RETRY_BASE_S,
                        help="pause after the first failed delivery (doubles each time, at most 5 min)")
    worker.add_argument("--max-attempts", type=int, default=DEFAULT_MAX_ATTEMPTS,
                        help="attempts before a delivery is marked failed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    try:
        alert_worker = AlertWorker(retry_base_s=args.retry_base_s, max_attempts=max(1, args.max_attempts))
    except (config.ConfigError, DataFileError) as error:  # a bad setting: say which, not a traceback
        logger.error("Alert worker cannot start: %s", error)
        return 2

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await alert_worker.run(stop)

    asyncio.run(run())
    return 0
