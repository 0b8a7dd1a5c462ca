"""Reminders' composition root: one bootstrap builds the dependencies and hands them down.

`create_app(settings, clock)` returns a FastAPI app whose lifespan opens Mongo, starts the
broker (retrying while RabbitMQ is down), the outbox relay, the `reminders.events` subscriber,
the sweep scheduler and the delivery worker, supervised by the shared runtime
(`lhpn_shared.runtime.Background`). Time comes from `clock` everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import httpx
from fastapi import FastAPI
from faststream.middlewares import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from faststream.specification import AsyncAPI
from prometheus_client import Counter
from pymongo import AsyncMongoClient

from lhpn_shared import dead_letters
from lhpn_shared.access import Guard, document_permissions
from lhpn_shared.accounts import AccessCopy, AccessRegistry, subscribe_access
from lhpn_shared.audit import AuditLog, audit_router
from lhpn_shared.auth import Authenticator, Principal
from lhpn_shared.broker import EVENTS, TOPOLOGY, EventPublisher, make_broker, process_delivery
from lhpn_shared.clock import Clock, SystemClock
from lhpn_shared.consumers import Consumers
from lhpn_shared.contracts.events import Envelope
from lhpn_shared.contracts.units import UnitTree
from lhpn_shared.http import (
    Metrics,
    answer_with_status,
    install_error_handlers,
    limit_request_size,
    ops_router,
)
from lhpn_shared.mongo import TRANSIENT_DB_ERRORS, Doc, database, make_client
from lhpn_shared.runtime import (
    Background,
    instrument,
    make_relay,
    readiness_checks,
    retry_while_database_down,
)
from lhpn_shared.trust import EventOwners

from .api import build_router
from .context import NotReady
from .delivery.addresses import AddressGuard, Resolver, system_resolver
from .delivery.render import build_environment
from .dispatch import DeliveryOptions, Dispatcher
from .repository import RemindersStore
from .service import Reminders
from .settings import RemindersSettings
from .sweep import Sweeper

log = logging.getLogger("reminders")

PUBLISHES = [
    ("obligation.fulfilled", 1),
    ("obligation.overdue", 1),
    ("notification.sent", 1),
    ("notification.failed", 1),
]
QUEUE = "reminders.events"
KEYS = TOPOLOGY[QUEUE].routing_keys


def build_broker(
    settings: RemindersSettings,
    ref: dict[str, Reminders],
    consumers: Consumers | None = None,
    access_ref: dict[str, AccessCopy] | None = None,
) -> tuple[RabbitBroker, EventPublisher]:
    """The broker with reminders' documented publishers, its event subscriber and its copy
    of the access events (reporting what they hold to `consumers`)."""
    broker = make_broker(settings)
    publisher = EventPublisher(broker, PUBLISHES)
    owners = EventOwners(settings.broker_user_prefix)  # each fact only from its owning service
    progress = (consumers if consumers is not None else Consumers()).queue(QUEUE)

    @broker.subscriber(
        TOPOLOGY[QUEUE].rabbit_queue(),
        EVENTS,
        ack_policy=AckPolicy.MANUAL,
        title=f"{QUEUE}:events",
        description="Units, plans, reports and case facts from lhpn.events ("
        + ", ".join(KEYS)
        + "), each from its owning service (AMQP user_id): obligations and case deadlines to "
        "remind about. Refused messages go to "
        f"{QUEUE}.dlq with x-rejection-reason.",
    )
    async def on_event(msg: RabbitMessage) -> None:
        async def handle(envelope: Envelope, publisher: Principal) -> None:
            await ref["reminders"].handle(envelope)

        await process_delivery(
            broker,
            msg,
            QUEUE,
            handle,
            admission=owners,
            progress=progress,
            own_user=settings.broker_user,
            max_attempts=settings.consumer_max_attempts,
        )

    refs = access_ref if access_ref is not None else {}
    subscribe_access(
        broker,
        "reminders.access",
        lambda: refs.get("copy"),
        EventOwners(settings.broker_user_prefix),
        (consumers if consumers is not None else Consumers()).queue("reminders.access"),
    )
    return broker, publisher


class Every:
    """Run `work` forever, `seconds` apart; with `again`, at once while it reports progress. A
    failure is logged and tried at the next turn (database or SMTP down, a bug in one run).
    `stop()` lets the run in hand finish, then `run` returns (shutdown)."""

    def __init__(
        self, name: str, seconds: float, work: Callable[[], Awaitable[object]], *, again: bool
    ) -> None:
        self.name, self.seconds, self.work, self.again = name, seconds, work, again
        self._stopped = asyncio.Event()

    def stop(self) -> None:
        self._stopped.set()

    async def run(self) -> None:
        task = asyncio.current_task()
        self._stopped.clear()
        while not self._stopped.is_set():
            progressed: object = False
            try:
                progressed = await self.work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if task is not None and task.cancelling():
                    # a library turned our cancellation into another error: still stop
                    raise asyncio.CancelledError from exc
                level = logging.WARNING if isinstance(exc, TRANSIENT_DB_ERRORS) else logging.ERROR
                log.log(level, "%s failed, trying again later", self.name, exc_info=exc)
            if not (self.again and progressed):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), timeout=self.seconds)


def create_app(
    settings: RemindersSettings, clock: Clock | None = None, resolver: Resolver | None = None
) -> FastAPI:
    """`resolver`: how webhook host names are resolved (tests give their own answers)."""
    clock = clock or SystemClock()
    guard = AddressGuard(settings.allowed_networks(), resolver or system_resolver)
    secrets = settings.webhook_keyring()
    ref: dict[str, Reminders] = {}
    consumers = Consumers()
    registry = AccessRegistry()
    access_ref: dict[str, AccessCopy] = {}
    broker, publisher = build_broker(settings, ref, consumers, access_ref)
    background = Background(settings, broker, consumers)
    metrics = Metrics("reminders")
    notifications = Counter(
        "lhpn_notifications_total",
        "Reminder deliveries that ended, by channel and status (sent | failed)",
        ["service", "channel", "status"],
        registry=metrics.registry,
    )
    scheduled_sweeps = Counter(
        "lhpn_scheduled_sweeps_total",
        "Sweeps the scheduler ran to their end (their sends attempted)",
        ["service"],
        registry=metrics.registry,
    )
    spec = AsyncAPI(broker, title="LHPN reminders", version="1.0.0")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = make_client(settings)
        store = RemindersStore(database(client, settings.database))
        relay = make_relay(store.outbox_collections, publisher, settings, audit=store.audit)
        reminders = Reminders(
            store,
            clock,
            settings.reminder_policy,
            settings.case_reminder_policy,
            relay.wake,
            secrets=secrets,
            guard=guard,
        )
        # no proxy from the environment and no redirects: a webhook goes to the address checked
        http = httpx.AsyncClient(
            timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False
        )
        lease = timedelta(seconds=settings.delivery_lease_seconds)
        options = DeliveryOptions(
            smtp=settings.smtp_config(),
            portal_url=settings.portal_url,
            retry=settings.retry_policy(),
            lease=lease,
            concurrency=settings.delivery_concurrency,
            batch=settings.delivery_batch,
        )
        dispatcher = Dispatcher(
            reminders,
            options,
            http,
            build_environment(),
            on_outcome=lambda channel, status: notifications.labels(
                "reminders", channel, status
            ).inc(),
        )
        sweeper = Sweeper(reminders, dispatcher, lease)
        ref["reminders"] = reminders
        access = AccessCopy(registry, store.db["access"])
        audit = AuditLog(store.audit, clock)
        app.state.reminders, app.state.sweeper, app.state.audit = reminders, sweeper, audit
        app.state.dispatcher, app.state.relay = dispatcher, relay

        async def prepare() -> None:
            """Indexes, reference data, the access copy."""
            await store.ensure_indexes()
            await audit.ensure_indexes()
            await reminders.load_reference_data()
            await reminders.refresh_policy()
            await access.load()
            access_ref["copy"] = access

        async def scheduled_sweep() -> object:
            result = await sweeper.run(clock.now())
            scheduled_sweeps.labels("reminders").inc()
            return result

        scheduler = Every("sweep", settings.sweep_interval_seconds, scheduled_sweep, again=False)
        worker = Every(
            "delivery", settings.delivery_poll_seconds, dispatcher.deliver_due, again=True
        )

        def stop_sending() -> None:
            """At shutdown: the deliveries already started finish and are recorded; the others
            are released at once for the next process (`Dispatcher.stop`)."""
            dispatcher.stop()
            worker.stop()

        def stop_sweeping() -> None:
            dispatcher.stop()
            scheduler.stop()

        prepared = background.start(lambda: retry_while_database_down(prepare), "prepare")
        background.start_broker(after=prepared, relay=relay)
        background.start(worker.run, "delivery", forever=True, after=prepared, stop=stop_sending)
        if settings.sweep_interval_seconds > 0:
            background.start(
                scheduler.run,
                "scheduler",
                forever=True,
                after=prepared,
                stop=stop_sweeping,
            )
        try:
            yield
        finally:
            await background.stop()
            await http.aclose()
            await client.close()

    app = FastAPI(
        title="LHPN reminders",
        version="1.0.0",
        description="Obligations, deadline reminders, escalation, e-mail and webhook delivery "
        "(SPEC §7, §9).",
        lifespan=lifespan,
    )
    app.state.clock = clock
    app.state.settings = settings
    app.state.background = background
    install_error_handlers(app)
    limit_request_size(app, settings.max_request_bytes)
    metrics.install(app)
    instrument(metrics, background)

    def mongo_client() -> AsyncMongoClient[Doc] | None:
        reminders = ref.get("reminders")
        return reminders.store.db.client if reminders else None

    app.include_router(
        ops_router(
            checks=readiness_checks(broker, mongo_client, background),
            metrics=metrics,
            asyncapi=lambda: spec.to_specification().to_json(),
        )
    )

    async def tree() -> UnitTree:
        if "reminders" not in ref:
            raise NotReady
        return ref["reminders"].tree

    access = Guard(
        Authenticator(settings, clock, registry),
        tree,
        audit=lambda: getattr(app.state, "audit", None),
    )
    app.include_router(build_router(access))
    app.include_router(audit_router(access, lambda: app.state.audit, tree))
    dead_letters.install(app, broker, settings, access)
    document_permissions(app)

    answer_with_status(app, {NotReady: 503})
    return app
