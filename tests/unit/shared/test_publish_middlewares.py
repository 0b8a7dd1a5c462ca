"""A broker middleware that FastStream would build for every published message is built once
per broker for publishing (`built_once_for_publishing`); each delivery still gets its own."""

from __future__ import annotations

from typing import Any

from faststream import BaseMiddleware
from faststream.rabbit import RabbitBroker, TestRabbitBroker

from lhpn_shared.broker import built_once_for_publishing


class Counting(BaseMiddleware):
    published = 0

    async def publish_scope(self, call_next: Any, cmd: Any) -> Any:
        Counting.published += 1
        return await call_next(cmd)


async def test_the_publishing_middleware_is_built_once_and_runs_for_every_message() -> None:
    built: list[object] = []

    def factory(msg: Any, /, *, context: Any) -> BaseMiddleware:
        built.append(msg)
        return Counting(msg, context=context)

    broker = RabbitBroker(middlewares=[built_once_for_publishing(factory)])
    received: list[bytes] = []

    @broker.subscriber("bench.q")
    async def handle(body: bytes) -> None:
        received.append(body)

    publisher = broker.publisher("bench.q")
    Counting.published = 0
    async with TestRabbitBroker(broker):
        for n in range(5):
            await publisher.publish(f"event {n}".encode())
    assert len(received) == 5
    assert Counting.published == 5  # it still runs for each message
    built_for_publishing = [m for m in built if m is None]
    built_for_deliveries = [m for m in built if m is not None]
    assert len(built_for_publishing) == 1
    assert len(built_for_deliveries) == 5
