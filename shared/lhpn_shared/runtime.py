"""What every service process does around its use cases: wait for the database, run the
broker and the outbox relay in the background, answer readiness, stop in order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from faststream.rabbit import RabbitBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from .broker import (
    EventPublisher,
    declare_own_topology,
    start_broker_with_retry,
    stop_broker,
)
from .logs import watch
from .mongo import TRANSIENT_DB_ERRORS, Doc, ping
from .outbox import OutboxRelay
from .settings import ServiceSettings

log = logging.getLogger("lhpn.runtime")

Check = Callable[[], Awaitable[bool]]


async def retry_while_database_down(step: Callable[[], Awaitable[None]]) -> None:
    """Run `step` until it gets through: a service starts even when its database does not
    answer yet, and catches up as soon as it does."""
    delay = 0.5
    while True:
        try:
            await step()
            return
        except TRANSIENT_DB_ERRORS as exc:
            log.warning("database not reachable, retrying", extra={"error": type(exc).__name__})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def make_relay(
    collections: Sequence[AsyncCollection[Doc]],
    publisher: EventPublisher,
    settings: ServiceSettings,
) -> OutboxRelay:
    """The service's outbox relay over the collections whose documents carry an outbox."""
    return OutboxRelay(
        collections,
        publisher.publish,
        batch=settings.relay_batch,
        idle_seconds=settings.relay_idle_seconds,
    )


class Background:
    """A service's background work, started watched (a failure is logged) and stopped in order:
    relay first, then the tasks, then the broker."""

    def __init__(
        self, broker: RabbitBroker, relay: OutboxRelay | None = None, *, service: str
    ) -> None:
        self.broker = broker
        self.relay = relay
        self.service = service
        self._tasks: list[asyncio.Task[Any]] = []
        self.consuming = asyncio.Event()
        """Set once connected with the topology declared: the subscribers are consuming."""

    def start(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = watch(asyncio.create_task(coro, name=name))
        self._tasks.append(task)
        return task

    async def run_broker(self, after: Awaitable[Any] | None = None) -> None:
        """Wait for `after` (e.g. the database preparation), connect to RabbitMQ (retrying),
        declare the service's own queues, then run the outbox relay for the life of the
        process."""
        if after is not None:
            await after
        await start_broker_with_retry(
            self.broker, on_started=lambda: declare_own_topology(self.broker, self.service)
        )
        self.consuming.set()
        if self.relay is not None:
            await self.relay.run()

    async def stop(self) -> None:
        if self.relay is not None:
            self.relay.stop()
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        await stop_broker(self.broker)


def readiness_checks(
    broker: RabbitBroker,
    client: Callable[[], AsyncMongoClient[Doc] | None],
    background: Callable[[], Background | None] = lambda: None,
) -> dict[str, Check]:
    """`/readyz`: the database answers a ping, the broker connection is up and (when given)
    the service's subscribers have started consuming."""

    async def mongo() -> bool:
        c = client()
        return c is not None and await ping(c)

    async def rabbit() -> bool:
        bg = background()
        if bg is not None and not bg.consuming.is_set():
            return False
        try:
            return bool(await broker.ping(timeout=1.0))
        except Exception:
            return False

    return {"mongo": mongo, "broker": rabbit}
