"""Aggregation's composition root: one bootstrap builds the dependencies and hands them down.

`create_app(settings)` returns a FastAPI app whose lifespan opens Mongo, finishes any batch a
crash interrupted, starts the broker (retrying while RabbitMQ is down), the event subscriber
and the flusher that writes its batches — supervised by the shared runtime
(`lhpn_shared.runtime.Background`): a flusher that fails, or holds deliveries without settling
any for `CONSUMER_STALL_SECONDS`, is logged, started again and meanwhile reported not ready.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitBroker
from faststream.specification import AsyncAPI
from prometheus_client import Counter
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from lhpn_shared import dead_letters
from lhpn_shared.access import Guard, document_permissions
from lhpn_shared.accounts import AccessCopy, AccessRegistry, subscribe_access
from lhpn_shared.audit import AuditLog, audit_router
from lhpn_shared.auth import Authenticator
from lhpn_shared.broker import AGGREGATION_PARTITIONS, EVENTS, TOPOLOGY, make_broker
from lhpn_shared.clock import Clock, SystemClock
from lhpn_shared.consumers import Consumers
from lhpn_shared.contracts.units import UnitTree
from lhpn_shared.http import Metrics, install_error_handlers, limit_request_size, ops_router
from lhpn_shared.mongo import Doc, database, make_client
from lhpn_shared.runtime import (
    Background,
    instrument,
    readiness_checks,
    retry_while_database_down,
)
from lhpn_shared.trust import EventOwners

from .api import build_router
from .batch import CONSUMED_KEYS, EVENTS_QUEUE
from .consumer import ApplyBatch, Batcher
from .partitioned import PartitionedReads
from .partitions import partition_queue, partition_queue_name, partition_queue_names, sender
from .repository import AggregationStore
from .router import Router, RouterStore
from .service import Aggregation, BadInput, NotFound
from .settings import AggregationSettings

log = logging.getLogger("aggregation")


async def delivery(msg: StreamMessage[Any]) -> StreamMessage[Any]:
    """Hand the handler the delivery itself, undecoded: the batcher parses and acks it.

    Measured (profiler): FastStream's default decoder parses the JSON in a worker thread, and
    injecting the message as `Context("message")` resolves it in another one, for every
    message — together about half of FastStream's cost per message."""
    return msg


def build_broker(
    settings: AggregationSettings,
    batcher_ref: dict[str, Batcher],
    access_ref: dict[str, AccessCopy] | None = None,
    consumers: Consumers | None = None,
) -> RabbitBroker:
    """The broker with the documented subscriber (it only hands deliveries to the batcher) and
    the service's copy of the access events."""
    broker = make_broker(settings)
    description = (
        "The facts the read models are built from ("
        + ", ".join(CONSUMED_KEYS)
        + "), each from its owning service (AMQP user_id), applied in batches and acked once "
        "stored; refused ones go to "
        f"{EVENTS_QUEUE}.dlq with x-rejection-reason."
    )
    events_handler = "router" if settings.partitioned else "batcher"

    @broker.subscriber(
        # dead-letters into `aggregation.events.dlq`; a single active consumer, so a second
        # instance stands by and batches are never written (or routed) by two processes at once
        TOPOLOGY[EVENTS_QUEUE].rabbit_queue(),
        EVENTS,
        channel=Channel(prefetch_count=settings.events_prefetch),
        ack_policy=AckPolicy.MANUAL,
        decoder=delivery,
        title=f"{EVENTS_QUEUE}:events",
        description=description
        if not settings.partitioned
        else "Every event, placed by the router on the queue of its partition "
        "(aggregation.events.p<k>) before it is acked.",
    )
    async def on_event(msg: Any) -> None:
        await batcher_ref[events_handler].add(msg)

    if settings.partitioned:
        partition = partition_queue(settings.aggregation_partition)

        @broker.subscriber(
            partition,
            AGGREGATION_PARTITIONS,
            channel=Channel(prefetch_count=settings.events_prefetch),
            ack_policy=AckPolicy.MANUAL,
            decoder=delivery,
            title=f"{partition.name}:events",
            description=f"This process's partition of {EVENTS_QUEUE}: " + description,
        )
        async def on_partition_event(msg: Any) -> None:
            await batcher_ref["batcher"].add(msg)

    refs = access_ref if access_ref is not None else {}
    subscribe_access(
        broker,
        "aggregation.access",
        lambda: refs.get("copy"),
        EventOwners(settings.broker_user_prefix),
        (consumers if consumers is not None else Consumers()).queue("aggregation.access"),
    )
    return broker


def create_app(settings: AggregationSettings, clock: Clock | None = None) -> FastAPI:
    clock = clock or SystemClock()
    batcher_ref: dict[str, Batcher] = {}
    registry = AccessRegistry()
    access_ref: dict[str, AccessCopy] = {}
    consumers = Consumers()
    broker = build_broker(settings, batcher_ref, access_ref, consumers)
    background = Background(settings, broker, consumers)
    spec = AsyncAPI(broker, title="LHPN aggregation", version="1.0.0")
    metrics = Metrics("aggregation")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = make_client(settings)
        db = database(client, settings.database)
        router: Router | None = None
        if settings.partitioned:
            moves = Counter(
                "lhpn_aggregation_partition_moves_total",
                "Provinces a reorganisation moved to another partition after events of theirs "
                "were routed (repair: every aggregation process stopped, "
                "`python -m aggregation reroute`)",
                registry=metrics.registry,
            )
            stores = [
                AggregationStore(db, f"p{k}.") for k in range(settings.aggregation_partitions)
            ]
            store = stores[settings.aggregation_partition]
            aggregation = Aggregation(store, clock, PartitionedReads(stores))
            app.state.router_store = RouterStore(db)
            router = Router(
                app.state.router_store,
                settings.aggregation_partitions,
                sender(broker, settings.aggregation_partitions),
                moved=lambda provinces: moves.inc(len(provinces)),
            )
        else:
            store = AggregationStore(db)
            aggregation = Aggregation(store, clock)
        queue = (
            partition_queue_name(settings.aggregation_partition)
            if settings.partitioned
            else EVENTS_QUEUE
        )

        def batcher_of(
            queue: str, apply: ApplyBatch, routed_by: str | None = None, *, routing: bool = False
        ) -> Batcher:
            def outcome(event_type: str, outcome: str, n: int) -> None:
                if routing and outcome != "rejected":
                    outcome = "routed"
                metrics.events.labels("aggregation", event_type, outcome).inc(n)

            return Batcher(
                broker,
                queue,
                apply,
                size=settings.batch_size,
                interval=settings.flush_interval_seconds,
                retry_delay=settings.retry_delay_seconds,
                outcome=outcome,
                owners=EventOwners(settings.broker_user_prefix),
                progress=consumers.queue(queue),
                own_user=settings.broker_user,
                max_attempts=settings.consumer_max_attempts,
                routed_by=routed_by,
            )

        batcher = batcher_of(
            queue, aggregation.apply, AGGREGATION_PARTITIONS.name if router else None
        )
        if router is not None:
            batcher_ref["router"] = batcher_of(EVENTS_QUEUE, router.apply, routing=True)
        batcher_ref["batcher"] = batcher
        access = AccessCopy(registry, store.db["access"])
        app.state.aggregation, app.state.batcher = aggregation, batcher
        app.state.audit = AuditLog(store.db["audit"], clock)

        async def prepare() -> None:
            """Indexes, the access copy, an interrupted batch, the writer's unit tree, one
            answer of the root's (`Queries.warm`). (The answers need none of it: they read the
            documents.)"""
            await store.ensure_indexes()
            await app.state.audit.ensure_indexes()
            await access.load()
            access_ref["copy"] = access
            await aggregation.recover()
            await aggregation.writer.load()
            if router is not None:
                await router.load()
            try:
                await aggregation.warm()
            except Exception:  # an answer that cannot be given yet is not a reason not to start
                log.warning("the warm-up answer failed", exc_info=True)

        # consume only once a crashed batch is finished
        prepared = background.start(lambda: retry_while_database_down(prepare), "prepare")
        background.start_broker(after=prepared)
        background.start(
            batcher.run,
            "flusher",
            forever=True,
            after=prepared,
            stop=batcher.stop,  # the batch in hand is finished, the rest is requeued
            consumer=batcher.progress,
        )
        if router is not None:
            routing = batcher_ref["router"]
            background.start(
                routing.run,
                "router",
                forever=True,
                after=prepared,
                stop=routing.stop,
                consumer=routing.progress,
            )
        try:
            yield
        finally:
            await background.stop()
            await client.close()

    app = FastAPI(
        title="LHPN aggregation",
        version="1.0.0",
        description="Compliance with the plan's targets, reporting rates, indicators, case "
        "statistics and their exports, from events only (SPEC §8).",
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
        aggregation = getattr(app.state, "aggregation", None)
        return aggregation.store.db.client if aggregation is not None else None

    checks = readiness_checks(broker, mongo_client, background)
    if settings.partitioned:

        async def partitions() -> bool:
            """False while a join moved provinces after their events and `reroute` has not
            run: every partition's answers are wrong until then (docs/aggregation.md)."""
            store: RouterStore | None = getattr(app.state, "router_store", None)
            try:
                return store is not None and not await store.reroute_needed()
            except PyMongoError:
                return False

        checks["partitions"] = partitions
    app.include_router(
        ops_router(
            checks=checks,
            metrics=metrics,
            asyncapi=lambda: spec.to_specification().to_json(),
        )
    )

    def answers() -> Aggregation:
        aggregation: Aggregation | None = getattr(app.state, "aggregation", None)
        if aggregation is None:
            raise NotFound("Dịch vụ đang khởi động.")
        return aggregation

    async def tree() -> UnitTree:
        return await answers().unit_tree()

    async def tree_of(unit_ids: Sequence[str]) -> UnitTree:
        # no tree in memory for the answers: the guard reads the units a request names
        return await answers().access_tree(unit_ids)

    guard = Guard(
        Authenticator(settings, clock, registry),
        tree,
        audit=lambda: getattr(app.state, "audit", None),
        tree_of=tree_of,
    )
    app.include_router(build_router(guard))
    app.include_router(audit_router(guard, lambda: app.state.audit, tree))
    dead_letters.install(
        app,
        broker,
        settings,
        guard,
        own_queues=partition_queue_names(settings.aggregation_partitions),
    )
    document_permissions(app)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, exc: BadInput) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    return app
