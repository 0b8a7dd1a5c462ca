"""In-memory stand-ins for a consumer's deliveries, for unit tests without a broker.

They behave like aio-pika's where it matters to a consumer: delivery tags count up from 1 per
channel, an ack with `multiple` settles every outstanding delivery up to its tag, and once a
channel closed (a broker restart) reading `raw_message.channel` raises
`ChannelInvalidStateError`, as do acks and nacks on it.
"""

from __future__ import annotations

from typing import Any

from aiormq.exceptions import ChannelInvalidStateError


class FakeChannel:
    def __init__(self) -> None:
        self.is_closed = False
        self.delivered: dict[int, FakeMessage] = {}
        self.frames = 0
        self.errors: list[str] = []

    def deliver(self, body: bytes) -> FakeMessage:
        msg = FakeMessage(body, self, len(self.delivered) + 1)
        self.delivered[msg.raw_message.delivery_tag] = msg
        return msg

    def close(self) -> None:
        """The broker went away: what was not settled goes back to the queue."""
        self.is_closed = True
        for msg in self.delivered.values():
            if msg.state is None:
                msg.state = "returned"

    async def basic_ack(self, delivery_tag: int, multiple: bool = False, wait: bool = True) -> None:
        if self.is_closed:
            raise ChannelInvalidStateError("channel closed")
        self.frames += 1
        tags = [t for t in self.delivered if t <= delivery_tag] if multiple else [delivery_tag]
        if self.delivered[delivery_tag].state is not None:
            self.errors.append(f"ack of the settled delivery {delivery_tag}")
        for tag in tags:
            if self.delivered[tag].state is None:
                self.delivered[tag].state = "acked"


class FakeRaw:
    """What `RabbitMessage.raw_message` is: aio-pika's `IncomingMessage`."""

    def __init__(self, body: bytes, channel: FakeChannel, delivery_tag: int) -> None:
        self.body = body
        self._channel = channel
        self.delivery_tag = delivery_tag
        self.headers: dict[str, Any] = {}
        self.exchange = "lhpn.events"
        self.routing_key = "activity.recorded.v1"
        self.message_id: str | None = None
        self.user_id: str | None = None
        self.content_type = "application/json"
        self.redelivered = False

    @property
    def channel(self) -> FakeChannel:
        if self._channel.is_closed:
            raise ChannelInvalidStateError
        return self._channel


class FakeMessage:
    def __init__(self, body: bytes, channel: FakeChannel, tag: int) -> None:
        self.raw_message = FakeRaw(body, channel, tag)
        self.message_id: str | None = None
        self.state: str | None = None

    async def ack(self) -> None:
        await self.raw_message.channel.basic_ack(self.raw_message.delivery_tag)

    async def nack(self, requeue: bool = True) -> None:
        if self.raw_message._channel.is_closed:
            raise ChannelInvalidStateError("channel closed")
        if self.state is not None:
            self.raw_message._channel.errors.append(f"nack of the settled {self.state} delivery")
            return
        self.state = "requeued" if requeue else "dropped"


class FakeBroker:
    """Records what is dead-lettered through it."""

    def __init__(self) -> None:
        self.dead: list[tuple[bytes, dict[str, Any]]] = []

    async def publish(self, body: bytes, **kw: Any) -> None:
        self.dead.append((body, kw["headers"]))

    async def stop(self) -> None:
        pass
