"""What every service process does around its use cases: wait for the database, connect to the
broker, run its background work supervised, answer readiness, stop in order.

Every service's lifespan is built the same way:

    background = Background(settings, broker, consumers)          # in create_app
    ...
    prepared = background.start(lambda: retry_while_database_down(prepare), "prepare")
    background.start_broker(after=prepared, relay=relay)          # connect, topology, relay
    background.start(sweeper.run, "scheduler", forever=True, after=prepared)
    try:
        yield
    finally:
        await background.stop()

No background task dies silently: one that fails is logged with its traceback and started
again after a pause that doubles up to `MAX_BACKOFF_SECONDS`; while it waits, `/readyz` says
not ready (`readiness_checks`), and so it does while a consumer holds deliveries without
settling any for longer than `CONSUMER_STALL_SECONDS`. A task that works for a consumer queue
(`consumer=`) and stalls that long is cancelled and started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

from faststream.rabbit import RabbitBroker
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from .broker import EventPublisher, declare_own_topology, start_broker_with_retry, stop_broker
from .consumers import ConsumerMetrics, Consumers, QueueProgress
from .http import Metrics
from .mongo import TRANSIENT_DB_ERRORS, Doc, ping
from .outbox import OutboxRelay
from .settings import ServiceSettings

log = logging.getLogger("lhpn.runtime")

Check = Callable[[], Awaitable[bool]]
Work = Callable[[], Awaitable[Any]] | Coroutine[Any, Any, Any]

FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
HEALTHY_RUN_SECONDS = 60.0
"""A run that lasted this long resets the pause before the next restart to the first one."""
STOP_GRACE_SECONDS = 10.0


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


class TaskState(StrEnum):
    waiting = "waiting"
    """for the task it starts after"""
    running = "running"
    backoff = "backoff"
    """failed (or ended when it must not), starts again after a pause"""
    done = "done"
    failed = "failed"
    """failed and cannot be started again (it was given as a coroutine, not a function)"""


DOWN = frozenset({TaskState.backoff, TaskState.failed})


@dataclass
class Supervised:
    """One background task and what the supervisor knows of it."""

    name: str
    forever: bool
    consumer: QueueProgress | None = None
    stop: Callable[[], None] | None = None
    state: TaskState = TaskState.waiting
    restarts: int = 0
    started_at: float = 0.0
    task: asyncio.Task[bool] | None = field(default=None, repr=False)
    """the supervising task (returned by `Background.start`)"""
    run: asyncio.Future[Any] | None = field(default=None, repr=False)
    """the current run of the work"""
    cancelled_as_stalled: bool = False


class Background:
    """A service's background work under one supervisor: started watched, restarted with
    backoff when it fails, stopped in order (graceful stops first, then the tasks, then the
    broker). Built once per app; each lifespan starts its tasks and stops them."""

    def __init__(
        self,
        settings: ServiceSettings,
        broker: RabbitBroker,
        consumers: Consumers | None = None,
        *,
        backoff: tuple[float, float] = (FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS),
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.consumers = consumers if consumers is not None else Consumers()
        self.stall_seconds = settings.consumer_stall_seconds
        self.first_backoff, self.max_backoff = backoff
        self.consuming = asyncio.Event()
        """Set once connected with the topology declared: the subscribers are consuming."""
        self.relay: OutboxRelay | None = None
        """The outbox relay `start_broker` runs (its backlog is on `/metrics`)."""
        self._tasks: dict[str, Supervised] = {}
        self._watchdog: asyncio.Task[None] | None = None
        self._stopping = False

    # ---- starting ----------------------------------------------------------------------------

    def start(
        self,
        work: Work,
        name: str,
        *,
        forever: bool = False,
        after: Awaitable[bool] | None = None,
        stop: Callable[[], None] | None = None,
        consumer: QueueProgress | None = None,
    ) -> asyncio.Task[bool]:
        """Run `work` in the background, supervised.

        - `work` a function returning an awaitable: started again (with backoff) whenever it
          raises, or — with `forever` — returns; a coroutine object runs once (a failure is
          logged and leaves the service not ready).
        - `after`: a task returned by `start` to wait for first (e.g. the database preparation).
        - `stop`: asks the work to finish by itself at shutdown, before it is cancelled.
        - `consumer`: the queue this task settles; it is cancelled and started again when that
          queue holds deliveries without progress for longer than `CONSUMER_STALL_SECONDS`.

        The returned task ends with True once the work completed (a one-off step) and with
        False if it cannot (a failed coroutine), so it can be another task's `after`.
        """
        name = f"{self.settings.service_name}-{name}"
        if name in self._tasks:
            raise ValueError(f"a background task named {name} is already running")
        self._stopping = False
        supervised = Supervised(name, forever, consumer, stop)
        self._tasks[name] = supervised
        task = asyncio.create_task(self._supervise(supervised, work, after), name=name)
        supervised.task = task
        if consumer is not None and self._watchdog is None:
            self._watchdog = asyncio.create_task(self._watch(), name=f"{name}-watchdog")
        return task

    def start_broker(
        self, *, after: Awaitable[bool] | None = None, relay: OutboxRelay | None = None
    ) -> asyncio.Task[bool]:
        """Connect to RabbitMQ (retrying while it is down) once `after` is done, declare the
        service's own queues, then run the outbox relay (if any) for the life of the process."""
        connected = self.start(self.connect, "broker", after=after)
        self.relay = relay
        if relay is not None:
            self.start(relay.run, "relay", forever=True, after=connected, stop=relay.stop)
        return connected

    async def connect(self) -> None:
        service = self.settings.service_name
        await start_broker_with_retry(
            self.broker, on_started=lambda: declare_own_topology(self.broker, service)
        )
        self.consuming.set()

    # ---- supervising -------------------------------------------------------------------------

    async def _supervise(self, s: Supervised, work: Work, after: Awaitable[bool] | None) -> bool:
        if after is not None and not await after:
            return False  # what it waits for failed for good: that one marks us not ready
        delay = self.first_backoff
        once = inspect.iscoroutine(work)
        while True:
            s.state, s.started_at, s.cancelled_as_stalled = (
                TaskState.running,
                time.monotonic(),
                False,
            )
            run = asyncio.ensure_future(
                cast(Coroutine[Any, Any, Any], work) if once else cast(Callable[[], Any], work)()
            )
            s.run = run
            try:
                await asyncio.wait({run})
            except asyncio.CancelledError:  # we are stopping
                run.cancel()
                await asyncio.wait({run}, timeout=STOP_GRACE_SECONDS)
                s.state = TaskState.done
                raise
            if self._stopping:
                s.state = TaskState.done
                return True
            if run.cancelled():
                why = "made no progress" if s.cancelled_as_stalled else "was cancelled"
                log.error(
                    f"background task {why}, starting it again",
                    extra={"task": s.name, "restarts": s.restarts + 1, "retry_in": delay},
                )
            elif (exc := run.exception()) is not None:
                log.error(
                    "background task failed" + ("" if once else ", starting it again"),
                    extra={"task": s.name, "restarts": s.restarts + 1, "retry_in": delay},
                    exc_info=exc,
                )
            elif not s.forever:
                s.state = TaskState.done
                return True
            else:
                log.error(
                    "background task ended unexpectedly, starting it again",
                    extra={"task": s.name, "restarts": s.restarts + 1, "retry_in": delay},
                )
            if once:
                s.state = TaskState.failed
                return False
            if time.monotonic() - s.started_at >= HEALTHY_RUN_SECONDS:
                delay = self.first_backoff
            s.state = TaskState.backoff
            s.restarts += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)

    async def _watch(self) -> None:
        """Cancel (so the supervisor restarts) a task whose consumer queue stalled, at most
        once per `stall_seconds` of its run."""
        interval = min(1.0, max(0.1, self.stall_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for s in list(self._tasks.values()):
                if (
                    s.consumer is not None
                    and s.state is TaskState.running
                    and s.run is not None
                    and not s.run.done()
                    and now - s.started_at > self.stall_seconds
                    and s.consumer.stalled(self.stall_seconds)
                ):
                    s.cancelled_as_stalled = True
                    s.run.cancel()

    # ---- state -------------------------------------------------------------------------------

    def tasks(self) -> Iterator[Supervised]:
        return iter(list(self._tasks.values()))

    def down(self) -> list[str]:
        """The tasks that are not running when they should: failed, or waiting to restart."""
        return [s.name for s in self.tasks() if s.state in DOWN]

    def stalled(self) -> list[str]:
        """The consumer queues holding deliveries without progress for too long."""
        return self.consumers.stalled(self.stall_seconds)

    # ---- stopping ----------------------------------------------------------------------------

    async def stop(self) -> None:
        """Ask the running work that can finish by itself to do so (the relay, the batch in
        hand), cancel the rest, wait a little, cancel what is left, then stop the broker. The
        app can start its tasks again afterwards."""
        self._stopping = True
        graceful, cancelled = [], []
        for s in self.tasks():
            if s.task is None:
                continue
            if s.stop is not None and s.state is TaskState.running:
                s.stop()
                graceful.append(s.task)
            else:
                s.task.cancel()
                cancelled.append(s.task)
        if graceful:
            _, pending = await asyncio.wait(graceful, timeout=STOP_GRACE_SECONDS)
            for t in pending:
                t.cancel()
        if graceful or cancelled:
            await asyncio.wait([*graceful, *cancelled], timeout=STOP_GRACE_SECONDS)
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        await stop_broker(self.broker)
        self._tasks.clear()
        self._watchdog = None
        self.consuming.clear()


def readiness_checks(
    broker: RabbitBroker,
    client: Callable[[], AsyncMongoClient[Doc] | None],
    background: Background | None = None,
) -> dict[str, Check]:
    """`/readyz`: the database answers a ping; the broker connection is up and (with
    `background`) the subscribers have started consuming; no background task is down; no
    consumer holds deliveries without progress for longer than `CONSUMER_STALL_SECONDS`."""

    async def mongo() -> bool:
        c = client()
        return c is not None and await ping(c)

    async def rabbit() -> bool:
        if background is not None and not background.consuming.is_set():
            return False
        try:
            return bool(await broker.ping(timeout=1.0))
        except Exception:
            return False

    checks: dict[str, Check] = {"mongo": mongo, "broker": rabbit}
    if background is not None:

        async def tasks() -> bool:
            return not background.down()

        async def consumers() -> bool:
            return not background.stalled()

        checks |= {"tasks": tasks, "consumers": consumers}
    return checks


class BackgroundMetrics(Collector):
    def __init__(self, service: str, background: Background) -> None:
        self.service = service
        self.background = background

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        up = GaugeMetricFamily(
            "lhpn_background_task_up",
            "1 while a background task runs or has completed, 0 while it is down",
            labels=["service", "task"],
        )
        restarts = CounterMetricFamily(
            "lhpn_background_task_restarts",
            "Times a background task was started again after failing or stalling",
            labels=["service", "task"],
        )
        for s in self.background.tasks():
            up.add_metric([self.service, s.name], 0 if s.state in DOWN else 1)
            restarts.add_metric([self.service, s.name], s.restarts)
        yield up
        yield restarts


def instrument(metrics: Metrics, background: Background) -> None:
    """Expose on the app's `/metrics` the consumers' progress, the background tasks, the
    broker's messages in and out with the depth of the service's queues and DLQs, and the
    outbox backlog of its relay (`Metrics.observe_broker`, `Metrics.observe_outbox`)."""
    metrics.registry.register(ConsumerMetrics(metrics.service, background.consumers))
    metrics.registry.register(BackgroundMetrics(metrics.service, background))
    metrics.observe_broker(background.broker)
    metrics.observe_outbox(lambda: background.relay)
