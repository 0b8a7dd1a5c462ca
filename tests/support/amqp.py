"""Test-side AMQP helpers, with aio-pika directly: a listener on `lhpn.events` and a publisher,
as another system would use them.

`publish_raw` sets the AMQP `user_id` to the user of the URL it connects with, as every
publisher should: publish as a service with `rabbit.url_for("intake")`, as an inbound system
with `rabbit.system.url`; anything else (the operator's `rabbit.url`) is a stranger to the
consumers."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
from aio_pika.abc import AbstractIncomingMessage


class EventListener:
    """Collects every message routed to an exclusive queue bound to `exchange` with `keys`."""

    def __init__(self, url: str, exchange: str = "lhpn.events", keys: tuple[str, ...] = ("#",)):
        self.url, self.exchange, self.keys = url, exchange, keys
        self.messages: list[AbstractIncomingMessage] = []
        self._conn: aio_pika.abc.AbstractRobustConnection | None = None
        self._marker_key = f"test-marker.{uuid.uuid4().hex}"
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._markers: set[str] = set()

    async def __aenter__(self) -> EventListener:
        self._conn = await aio_pika.connect_robust(self.url)
        channel = await self._conn.channel()
        exchange = await channel.declare_exchange(
            self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        for key in (*self.keys, self._marker_key):
            await queue.bind(exchange, routing_key=key)
        self._exchange = exchange

        async def on_message(message: AbstractIncomingMessage) -> None:
            if message.routing_key == self._marker_key:
                self._markers.add(str(message.message_id))
            else:
                self.messages.append(message)
            await message.ack()

        await queue.consume(on_message)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None:
            await self._conn.close()

    def bodies(self, routing_key: str | None = None) -> list[dict[str, Any]]:
        return [
            json.loads(m.body)
            for m in self.messages
            if routing_key is None or m.routing_key == routing_key
        ]

    async def flush(self, timeout: float = 10.0) -> None:
        """Publish a marker to this listener's queue and wait for it: every message the broker
        had routed here before — all that was published and confirmed so far — has then arrived
        (a queue keeps its order). Instead of a sleep for "nothing more arrives"."""
        assert self._exchange is not None
        marker = uuid.uuid4().hex
        await self._exchange.publish(
            aio_pika.Message(marker.encode(), message_id=marker), routing_key=self._marker_key
        )
        deadline = time.monotonic() + timeout
        while marker not in self._markers:
            if time.monotonic() > deadline:
                raise AssertionError("the listener's marker never came back")
            await asyncio.sleep(0.05)

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            bodies = self.bodies()
            if predicate(bodies):
                return bodies
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out; got {len(self.bodies())} messages")


_OWN_USER: Any = object()


async def publish_raw(
    url: str,
    exchange: str,
    routing_key: str,
    body: bytes,
    message_id: str | None = None,
    *,
    user_id: str | None = _OWN_USER,
) -> None:
    """Publish one persistent message with confirms; `user_id`: the connection's own user
    unless given (None: no user_id; another user's: the broker refuses it)."""
    if user_id is _OWN_USER:
        user_id = unquote(urlsplit(url).username or "guest")
    conn = await aio_pika.connect_robust(url)
    try:
        channel = await conn.channel(publisher_confirms=True)
        exch = await channel.get_exchange(exchange, ensure=True)  # passive: it must exist
        await exch.publish(
            aio_pika.Message(
                body,
                content_type="application/json",
                message_id=message_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                user_id=user_id,
            ),
            routing_key=routing_key,
        )
    finally:
        await conn.close()


async def drain_queue(url: str, queue: str, timeout: float = 5.0) -> list[AbstractIncomingMessage]:
    """Everything currently in `queue` (e.g. a DLQ), acked."""
    conn = await aio_pika.connect_robust(url)
    out: list[AbstractIncomingMessage] = []
    try:
        channel = await conn.channel()
        q = await channel.get_queue(queue, ensure=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = await q.get(fail=False)
            if msg is None:
                if out:
                    break
                await asyncio.sleep(0.1)
                continue
            await msg.ack()
            out.append(msg)
    finally:
        await conn.close()
    return out


async def purge_queues(url: str, *names: str) -> None:
    """Empty durable queues left over from earlier tests in this session's vhost."""
    conn = await aio_pika.connect_robust(url)
    try:
        channel = await conn.channel()
        for name in names:
            try:
                q = await channel.get_queue(name, ensure=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                channel = await conn.channel()
                continue
            await q.purge()
    finally:
        await conn.close()
