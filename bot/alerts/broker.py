"""Rasa's event broker for endpoints.yml: RabbitMQ when RABBITMQ_URL is set, no broker otherwise.

endpoints.yml names `bot.alerts.broker.AlertEventBroker`; without RABBITMQ_URL `from_endpoint_config`
returns None, which Rasa reads as "no event broker" (a fresh machine: the alert worker reads the tracker
store's events table instead). With it, Rasa's own PikaEventBroker publishes every stored event to the
fanout exchange `rasa-exchange` and its durable queues, `clinic_alerts` (the alert worker's) always
among them; messages are persistent. Two changes to Rasa's broker, both so that the bot never waits for
RabbitMQ: it connects in the background (Rasa would hold the server's start for up to 100 s, then fail),
and events published while it is not connected are kept (at most MAX_UNPUBLISHED, oldest dropped; the
worker's table sweep still finds those) and sent once it is (Rasa drops them before the first connect).
bot.storage.ClinicTrackerStore publishes a turn's events after they are stored, never before.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import aio_pika
from rasa.core.brokers.pika import PikaEventBroker

from bot.config import rabbitmq_url

logger = logging.getLogger(__name__)

ALERT_QUEUE = "clinic_alerts"
RASA_EXCHANGE = "rasa-exchange"  # rasa.core.brokers.pika.RABBITMQ_EXCHANGE: fanout, declared with defaults
MAX_UNPUBLISHED = 10_000
RECONNECT_PAUSE_S = 2.0


class AlertEventBroker(PikaEventBroker):
    """PikaEventBroker configured from RABBITMQ_URL, connecting in the background."""

    def __init__(self, url: str, queues: list[str], **kwargs: Any) -> None:
        super().__init__(host=url, username="", password="", queues=queues, **kwargs)
        self.url = url
        password = urlsplit(url).password
        self.host = url.replace(f":{password}@", ":***@", 1) if password else url  # Rasa logs `host`
        self._unpublished_events = deque(maxlen=MAX_UNPUBLISHED)
        self._connecting: asyncio.Task | None = None

    @classmethod
    async def from_endpoint_config(cls, broker_config: Any = None, event_loop: Any = None) -> AlertEventBroker | None:
        url = rabbitmq_url()
        if not url:
            return None
        kwargs = dict(getattr(broker_config, "kwargs", None) or {})
        for ignored in ("url", "username", "password", "port", "event_loop"):
            kwargs.pop(ignored, None)
        queues = list(kwargs.pop("queues", None) or [])
        if ALERT_QUEUE not in queues:
            queues.append(ALERT_QUEUE)
        broker = cls(url, queues=queues, event_loop=event_loop or asyncio.get_running_loop(), **kwargs)
        broker._connecting = broker._loop.create_task(broker._connect_until_connected())
        return broker

    async def _connect(self) -> aio_pika.abc.AbstractRobustConnection:
        return await aio_pika.connect_robust(self.url)

    async def _connect_until_connected(self) -> None:
        while True:
            try:
                await self.connect()
            except Exception as error:  # noqa: BLE001 - RabbitMQ down or starting: try again, the bot goes on
                logger.warning("RabbitMQ not reachable (%s: %s); trying again in %.0f s.", type(error).__name__,
                               error, RECONNECT_PAUSE_S)
                await asyncio.sleep(RECONNECT_PAUSE_S)
                continue
            self._publish_unpublished_messages()
            return

    async def _publish(self, event: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        if self._exchange is None:  # not connected yet: keep it for later (Rasa would drop it)
            self._unpublished_events.append(event)
            return
        await super()._publish(event, headers)

    async def close(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        await super().close()
