"""Test-side AMQP tools that survive a broker restart: a durable capture of what is published on
`lhpn.events`, and a publisher that retries until the broker confirms."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from lhpn_shared.contracts.events import Envelope


class Capture:
    """Every event routed to a durable queue of its own, bound to `exchange` with `keys`:
    declared before the events flow, it keeps what was published while nobody reads it and
    across broker restarts (it is acked only once recorded; a redelivery is recorded once)."""

    def __init__(
        self, url: str, queue: str, keys: Iterable[str], exchange: str = "lhpn.events"
    ) -> None:
        self.url, self.queue, self.keys, self.exchange = url, queue, tuple(keys), exchange
        self.events: dict[str, Envelope] = {}
        """by event_id, in the order first received"""
        self._conn: aio_pika.abc.AbstractRobustConnection | None = None

    async def __aenter__(self) -> Capture:
        self._conn = await aio_pika.connect_robust(self.url, reconnect_interval=0.5)
        channel = await self._conn.channel()
        exchange = await channel.declare_exchange(
            self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(self.queue, durable=True)
        for key in self.keys:
            await queue.bind(exchange, routing_key=key)

        async def on_message(message: AbstractIncomingMessage) -> None:
            envelope = Envelope.model_validate_json(message.body)
            self.events.setdefault(str(envelope.event_id), envelope)
            await message.ack()

        await queue.consume(on_message)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None:
            await self._conn.close()

    def of_type(self, *types: str) -> list[Envelope]:
        return [e for e in self.events.values() if e.type in types]


class RetryingPublisher:
    """Publishes persistent envelopes with publisher confirms as `user_id` (the URL's user),
    retrying each one until the broker confirms it (so through a broker restart some may
    arrive twice: consumers dedupe)."""

    def __init__(self, url: str, user_id: str, exchange: str = "lhpn.inbound") -> None:
        self.url, self.user_id, self.exchange_name = url, user_id, exchange
        self.sent = 0
        self.retries = 0
        self._conn: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchange: Any = None

    async def __aenter__(self) -> RetryingPublisher:
        self._conn = await aio_pika.connect_robust(self.url, reconnect_interval=0.5)
        channel = await self._conn.channel(publisher_confirms=True)
        self._exchange = await channel.get_exchange(self.exchange_name, ensure=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def publish(self, envelope: Envelope) -> None:
        message = aio_pika.Message(
            envelope.model_dump_json().encode(),
            content_type="application/json",
            message_id=str(envelope.event_id),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            user_id=self.user_id,
        )
        while True:
            try:
                await self._exchange.publish(message, routing_key=envelope.routing_key, timeout=5)
                break
            except Exception:  # the broker is away: try again once it is back
                self.retries += 1
                await asyncio.sleep(0.2)
        self.sent += 1
