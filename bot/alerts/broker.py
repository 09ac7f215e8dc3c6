"""Rasa's event broker for endpoints.yml: RabbitMQ when RABBITMQ_URL is set, no broker otherwise.

endpoints.yml names `bot.alerts.broker.AlertEventBroker`; without RABBITMQ_URL `from_endpoint_config`
returns None, which Rasa reads as "no event broker" (a fresh machine: the alert worker reads the tracker
store's events table instead). With it, every stored event goes to RabbitMQ as Rasa's own PikaEventBroker
sends it (the body `{"sender_id": ..., **event}` as JSON, persistent, to the fanout exchange `rasa-exchange`
and its durable queues; `clinic_alerts`, the alert worker's, always among them), so anything written for
Rasa's broker reads it. What differs, so that the bot never waits for RabbitMQ and RabbitMQ never waits
for the bot:
- publishing runs on a thread and event loop of its own. Rasa's event loop is busy with each message's
  model predictions (synchronous) under load, and aio-pika's I/O on that loop fell seconds behind
  (measured: 20 conversations at once, 4 s median lag to the worker's queue; README "Escalation alerts");
- it connects in the background and reconnects forever (Rasa holds the server's start for up to 100 s,
  then fails), keeping events while RabbitMQ is away (at most MAX_UNPUBLISHED, oldest dropped; the
  worker's events-table sweep finds those) and sending them once it is back, in order.
bot.storage.ClinicTrackerStore publishes a turn's events after they are stored, never before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from rasa.core.brokers.broker import EventBroker

from bot.config import rabbitmq_url

logger = logging.getLogger(__name__)

ALERT_QUEUE = "clinic_alerts"
RASA_EXCHANGE = "rasa-exchange"  # rasa.core.brokers.pika.RABBITMQ_EXCHANGE: fanout, declared with defaults
MAX_UNPUBLISHED = 10_000
BATCH = 200  # events published at once (pipelined, confirmed together)
RECONNECT_PAUSE_S = 2.0


def redacted(url: str) -> str:
    password = urlsplit(url).password
    return url.replace(f":{password}@", ":***@", 1) if password else url


class AlertEventBroker(EventBroker):
    """Publishes Rasa's events to RabbitMQ from a thread of its own (see the module docstring)."""

    def __init__(self, url: str, queues: list[str]) -> None:
        self.url = url
        self.queues = queues
        self._pending: deque[tuple[int, dict[str, Any]]] = deque(maxlen=MAX_UNPUBLISHED)  # (number, event)
        self._published = 0  # events handed to `publish` so far: each one's number
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop = threading.Event()
        self._connected = False
        self._thread = threading.Thread(target=self._run, name="rabbitmq-publisher", daemon=True)

    @classmethod
    async def from_endpoint_config(cls, broker_config: Any = None, event_loop: Any = None) -> AlertEventBroker | None:
        url = rabbitmq_url()
        if not url:
            return None
        queues = list((getattr(broker_config, "kwargs", None) or {}).get("queues") or [])
        if ALERT_QUEUE not in queues:
            queues.append(ALERT_QUEUE)
        broker = cls(url, queues)
        broker.start()
        return broker

    def start(self) -> None:
        self._thread.start()

    # --- Rasa's side (its event loop's thread): never blocks -------------------------------------------
    def publish(self, event: dict[str, Any]) -> None:
        with self._lock:
            if len(self._pending) == MAX_UNPUBLISHED:
                logger.warning("RabbitMQ publisher: %d events waiting; the oldest is dropped (the alert worker's "
                               "events-table sweep still finds it).", MAX_UNPUBLISHED)
            self._published += 1
            self._pending.append((self._published, event))
        self._poke()

    def is_ready(self) -> bool:
        return self._connected

    async def close(self) -> None:
        self._stop.set()
        self._poke()
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 5.0)

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # its loop just closed
                pass

    # --- the publisher's thread ------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while not self._stop.is_set():
            try:
                await self._publish_while_connected()
            except Exception as error:  # noqa: BLE001 - RabbitMQ down, restarting or refusing: try again
                self._connected = False
                logger.warning("RabbitMQ publisher: %s (%s: %s); reconnecting in %.0f s; events are kept.",
                               redacted(self.url), type(error).__name__, error, RECONNECT_PAUSE_S)
                await asyncio.sleep(RECONNECT_PAUSE_S)

    async def _publish_while_connected(self) -> None:
        import aio_pika

        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel()  # publisher confirms: an event leaves `_pending` once RabbitMQ has it
            exchange = await channel.declare_exchange(RASA_EXCHANGE, aio_pika.ExchangeType.FANOUT)
            for name in self.queues:
                queue = await channel.declare_queue(name, durable=True)
                await queue.bind(exchange, "")
            self._connected = True
            logger.info("RabbitMQ publisher connected to %s (queues: %s).", redacted(self.url), ", ".join(self.queues))
            while not self._stop.is_set() or self._pending:
                with self._lock:
                    batch = [self._pending[index] for index in range(min(BATCH, len(self._pending)))]
                if not batch:
                    assert self._wake is not None
                    await self._wake.wait()
                    self._wake.clear()
                    continue
                await asyncio.gather(*(exchange.publish(aio_pika.Message(
                    json.dumps(event).encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT), "")
                    for _, event in batch))
                with self._lock:  # confirmed: drop them (events added meanwhile are behind them)
                    while self._pending and self._pending[0][0] <= batch[-1][0]:
                        self._pending.popleft()
