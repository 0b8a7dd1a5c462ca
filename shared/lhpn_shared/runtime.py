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

On SIGTERM (`serve` runs uvicorn, which first finishes the HTTP requests in flight) the lifespan
calls `Background.stop()`, which shuts down in order within `SHUTDOWN_GRACE_SECONDS`: stop
consuming and let the handlers in flight finish, let the work in hand finish (tasks given a
`stop`), flush the outbox, close the broker connection — and logs how long each step took.
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
CANCELLED_WAIT_SECONDS = 2.0
"""At the shutdown deadline: how long cancelled tasks get to unwind."""


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
    audit: AsyncCollection[Doc] | None = None,
) -> OutboxRelay:
    """The service's outbox relay over the collections whose documents carry an outbox (and
    the audit records of their writes, moved to `audit`, the service's `audit` collection)."""
    return OutboxRelay(
        collections,
        publisher.publish,
        audit=audit,
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
    last: bool = False
    """stopped after every other task: the outbox relay, which publishes what they wrote"""
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
        self.last_stop_seconds: float | None = None
        """how long the last `stop()` took"""

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
        last: bool = False,
    ) -> asyncio.Task[bool]:
        """Run `work` in the background, supervised.

        - `work` a function returning an awaitable: started again (with backoff) whenever it
          raises, or — with `forever` — returns; a coroutine object runs once (a failure is
          logged and leaves the service not ready).
        - `after`: a task returned by `start` to wait for first (e.g. the database preparation).
        - `stop`: asks the work to finish what it has in hand and return at shutdown (it is
          cancelled if it has not by the end of the grace period); without one, a task is
          cancelled at once. `last`: stopped after all the others (the outbox relay).
        - `consumer`: the queue this task settles; it is cancelled and started again when that
          queue holds deliveries without progress for longer than `CONSUMER_STALL_SECONDS`.

        The returned task ends with True once the work completed (a one-off step) and with
        False if it cannot (a failed coroutine), so it can be another task's `after`.
        """
        name = f"{self.settings.service_name}-{name}"
        if name in self._tasks:
            raise ValueError(f"a background task named {name} is already running")
        self._stopping = False
        supervised = Supervised(name, forever, consumer, stop, last)
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
            self.start(
                relay.run, "relay", forever=True, after=connected, stop=relay.stop, last=True
            )
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
        """Shut down in order, within `SHUTDOWN_GRACE_SECONDS` less what HTTP was given:

        1. stop consuming: the subscribers take no new delivery, and the handlers in flight
           finish and settle theirs (what a subscriber had prefetched goes back to the queue);
        2. finish the work in hand: tasks with a `stop` finish by themselves (a batch flusher
           its buffer, the delivery worker the deliveries it started); the others are cancelled;
        3. flush the outbox: the relay publishes what is pending (`last` tasks), then returns;
        4. close the broker connection.

        Whatever still runs when the time is up is cancelled: what it held goes back to the
        queue (every consumer is idempotent) or stays in the outbox for the next start. The app
        can start its tasks again afterwards."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        budget = max(self.settings.shutdown_grace_seconds - self.settings.http_drain_seconds, 1.0)
        deadline = began + budget
        # the work in hand may not take the time the outbox needs to be published
        work_deadline = deadline - min(5.0, budget / 3)
        self._stopping = True
        took: dict[str, float] = {}

        def left() -> float:
            return max(deadline - loop.time(), 0.0)

        def left_for_work() -> float:
            return max(work_deadline - loop.time(), 0.0)

        def lap(name: str, since: float) -> float:
            took[name] = round(loop.time() - since, 3)
            return loop.time()

        await self._stop_consuming(left)
        at = lap("consumers", began)
        tasks = [s for s in self.tasks() if s.task is not None and not s.task.done()]
        graceful = [s for s in tasks if s.stop is not None and not s.last]
        flushers = [s for s in tasks if s.stop is not None and s.last]
        for s in tasks:
            if s.stop is None:
                cast(asyncio.Task[bool], s.task).cancel()
        await self._finish([s for s in graceful if s.state is TaskState.running], left_for_work)
        at = lap("work", at)
        await self._finish([s for s in flushers if s.state is TaskState.running], left)
        at = lap("outbox", at)
        pending = [t for s in tasks if (t := s.task) is not None and not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=CANCELLED_WAIT_SECONDS)
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        await stop_broker(self.broker, max(left(), 2.0))
        lap("broker", at)
        total = round(loop.time() - began, 3)
        (log.warning if pending else log.info)(
            "stopped" + (f": {len(pending)} task(s) cancelled at the deadline" if pending else ""),
            extra={
                "service": self.settings.service_name,
                "seconds": total,
                "steps": took,
                "cancelled": [t.get_name() for t in pending],
            },
        )
        self.last_stop_seconds = total
        self._tasks.clear()
        self._watchdog = None
        self.consuming.clear()

    async def _stop_consuming(self, left: Callable[[], float]) -> None:
        """Every subscriber stops taking deliveries and waits for its handlers in flight
        (FastStream's own graceful stop, bounded by the broker's `graceful_timeout`)."""
        subscribers = list(getattr(self.broker, "subscribers", []))
        if not subscribers:
            return
        try:
            await asyncio.wait_for(
                asyncio.gather(*(sub.stop() for sub in subscribers), return_exceptions=True),
                timeout=left(),
            )
        except TimeoutError:
            log.warning("handlers still running at the shutdown deadline")

    async def _finish(self, supervised: list[Supervised], left: Callable[[], float]) -> None:
        """Ask each to stop by itself, and wait for them until the deadline."""
        for s in supervised:
            cast(Callable[[], None], s.stop)()
        running = [cast(asyncio.Task[bool], s.task) for s in supervised]
        if running:
            await asyncio.wait(running, timeout=left())


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
