"""The cases service's composition root: one bootstrap builds the dependencies and hands them down.

`create_app(settings, clock)` returns a FastAPI app whose lifespan opens Mongo, starts the
broker (retrying while RabbitMQ is down), the outbox relay and two subscribers, supervised by
the shared runtime (`lhpn_shared.runtime.Background`):
- `cases.events` ← `lhpn.events` `unit.upserted.v1` (from intake's broker user only): this
  service's copy of the unit tree;
- `cases.inbound` ← `lhpn.inbound` `case.opened.v1` (from bound systems, within their subtree):
  cases other systems open (no personal data); a refused message is dead-lettered with its
  personal data sealed (`adapters.dead_letters`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from faststream.middlewares import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from faststream.specification import AsyncAPI
from pymongo import AsyncMongoClient

from lhpn_shared import dead_letters
from lhpn_shared.access import Guard, document_permissions, uuid_key
from lhpn_shared.accounts import (
    AccessCopy,
    AccessRegistry,
    KeyInboundBindings,
    subscribe_access,
)
from lhpn_shared.audit import audit_router
from lhpn_shared.auth import Authenticator, Principal
from lhpn_shared.broker import (
    TOPOLOGY,
    DeadLetterFilter,
    EventPublisher,
    make_broker,
    process_delivery,
)
from lhpn_shared.clock import LOCAL_TZ, Clock, SystemClock
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
from lhpn_shared.inbound import SettingsInboundBindings
from lhpn_shared.mongo import Doc, database, make_client
from lhpn_shared.runtime import (
    Background,
    instrument,
    make_relay,
    readiness_checks,
    retry_while_database_down,
)
from lhpn_shared.trust import Admission, EventOwners, InboundGate

from .adapters.dead_letters import DeadLetterSealer, opener
from .api import build_router
from .data import load_vn_holidays
from .domain.succession import handlers
from .domain.workflow import CaseConflict, InvalidTransition
from .errors import Conflict, Forbidden, NotFound
from .repository import CasesStore
from .service import Cases
from .settings import CasesSettings

log = logging.getLogger("cases")

PUBLISHES = [("case.opened", 1), ("case.status_changed", 1), ("case.closed", 1)]
EVENTS_QUEUE, INBOUND_QUEUE = "cases.events", "cases.inbound"

Handler = Callable[[Cases, Envelope, Principal], Awaitable[str]]


def build_broker(
    settings: CasesSettings,
    cases_ref: dict[str, Cases],
    consumers: Consumers | None = None,
    metrics: Metrics | None = None,
    access_ref: dict[str, AccessCopy] | None = None,
    registry: AccessRegistry | None = None,
) -> RabbitBroker:
    """The broker with the service's subscribers (its publishers are added by `EventPublisher`),
    reporting what they hold to `consumers`."""
    broker = make_broker(settings)
    consumers = consumers if consumers is not None else Consumers()

    async def tree_for(unit_id: str) -> UnitTree:
        return await cases_ref["cases"].tree_with(unit_id)

    def subscribe(
        queue_name: str,
        handler: Handler,
        admission: Admission,
        who: str,
        dead_letter_filter: DeadLetterFilter | None = None,
    ) -> None:
        binding = TOPOLOGY[queue_name]
        progress = consumers.queue(queue_name)

        async def on_message(msg: RabbitMessage) -> None:
            async def handle(envelope: Envelope, principal: Principal) -> None:
                outcome = await handler(cases_ref["cases"], envelope, principal)
                if metrics is not None:
                    metrics.events.labels("cases", envelope.type, outcome).inc()

            await process_delivery(
                broker,
                msg,
                queue_name,
                handle,
                admission=admission,
                dead_letter_filter=dead_letter_filter,
                progress=progress,
                own_user=settings.broker_user,
                max_attempts=settings.consumer_max_attempts,
            )

        broker.subscriber(
            binding.rabbit_queue(),
            binding.exchange,
            ack_policy=AckPolicy.MANUAL,
            title=f"{queue_name}:{binding.exchange.name}",
            description=f"{', '.join(binding.routing_keys)} {who}; refused messages go to "
            f"{queue_name}.dlq "
            "with x-rejection-reason.",
        )(on_message)

    subscribe(
        EVENTS_QUEUE,
        Cases.handle_event,
        EventOwners(settings.broker_user_prefix),
        "from its owning service (AMQP user_id)",
    )
    # other systems' messages may carry personal data by mistake: sealed before the DLQ
    subscribe(
        INBOUND_QUEUE,
        Cases.handle_inbound,
        InboundGate(
            KeyInboundBindings(
                registry or AccessRegistry(),
                SettingsInboundBindings(settings.parsed_inbound_systems()),
            ),
            tree_for,
        ),
        "from a bound system (AMQP user_id) within its unit subtree",
        DeadLetterSealer(settings.cipher().keyring),
    )
    refs = access_ref if access_ref is not None else {}
    subscribe_access(
        broker,
        "cases.access",
        lambda: refs.get("copy"),
        EventOwners(settings.broker_user_prefix),
        consumers.queue("cases.access"),
    )
    return broker


def create_app(settings: CasesSettings, clock: Clock | None = None) -> FastAPI:
    clock = clock or SystemClock()
    cipher = settings.cipher()
    holidays = load_vn_holidays()
    metrics = Metrics("cases")
    cases_ref: dict[str, Cases] = {}
    consumers = Consumers()
    registry = AccessRegistry()
    access_ref: dict[str, AccessCopy] = {}
    broker = build_broker(settings, cases_ref, consumers, metrics, access_ref, registry)
    background = Background(settings, broker, consumers)
    publisher = EventPublisher(broker, PUBLISHES)
    spec = AsyncAPI(broker, title="LHPN cases", version="1.0.0")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = make_client(settings)
        store = CasesStore(database(client, settings.database))
        relay = make_relay(store.outbox_collections, publisher, settings, audit=store.audit)
        cases = Cases(
            store,
            cipher,
            clock,
            holidays=holidays,
            deadline_config=settings.case_deadlines,
            wake_relay=relay.wake,
            units_refresh_seconds=settings.units_refresh_seconds,
        )
        cases_ref["cases"] = cases
        app.state.cases, app.state.relay = cases, relay

        access = AccessCopy(registry, store.db["access"])
        app.state.audit = cases.audit

        async def prepare() -> None:
            """Indexes and the access copy."""
            await store.ensure_indexes()
            await cases.audit.ensure_indexes()
            await access.load()
            access_ref["copy"] = access

        prepared = background.start(lambda: retry_while_database_down(prepare), "prepare")
        background.start_broker(after=prepared, relay=relay)
        try:
            yield
        finally:
            await background.stop()
            await client.close()

    app = FastAPI(
        title="LHPN cases",
        version="1.0.0",
        description="Legal-aid cases: consultations, letters, mediation; deadlines; protected "
        "personal data (SPEC §6).",
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
        cases = cases_ref.get("cases")
        return cases.store.db.client if cases else None

    app.include_router(
        ops_router(
            checks=readiness_checks(broker, mongo_client, background),
            metrics=metrics,
            asyncapi=lambda: spec.to_specification().to_json(),
        )
    )

    def service() -> Cases:
        if "cases" not in cases_ref:
            raise NotFound("Dịch vụ đang khởi động.")
        return cases_ref["cases"]

    async def tree() -> UnitTree:
        return await service().tree()

    async def stored_case(case_id: str) -> Doc | None:
        key = uuid_key(case_id)  # as the route will parse it; not a UUID: the route answers 422
        if key is None:
            return None
        return await service().store.cases.find_one({"_id": key}, {"unit_id": 1, "referred_up": 1})

    async def case_units(case_id: str) -> tuple[str, ...] | None:
        """The units answerable for a stored case today: the one that received it and, once it
        is merged or split, the units continuing it (`domain.succession`)."""
        doc = await stored_case(case_id)
        if doc is None:
            return None
        today = service().now().astimezone(LOCAL_TZ).date()
        return (doc["unit_id"], *handlers(doc["unit_id"], await tree(), today))

    async def answerable(unit_id: str) -> tuple[str, ...]:
        """The units handling the cases of `unit_id` today (its successors once it is gone)."""
        today = service().now().astimezone(LOCAL_TZ).date()
        return tuple(handlers(unit_id, await tree(), today))

    async def case_holders(case_id: str) -> tuple[str, ...] | None:
        """The unions holding a stored case today: its own (or its successors), then those it
        is referred up to (or theirs)."""
        doc = await stored_case(case_id)
        if doc is None:
            return None
        units, today = await tree(), service().now().astimezone(LOCAL_TZ).date()
        held = (doc["unit_id"], *doc.get("referred_up", []))
        return tuple(dict.fromkeys(h for u in held for h in handlers(u, units, today)))

    guard = Guard(
        Authenticator(settings, clock, registry),
        tree,
        {"case_id": case_units},
        holders={"case_id": case_holders},
        answerable=answerable,
        audit=lambda: getattr(app.state, "audit", None),
    )
    app.include_router(build_router(guard))
    app.include_router(audit_router(guard, lambda: app.state.audit, tree))
    dead_letters.install(
        app, broker, settings, guard, openers={INBOUND_QUEUE: opener(cipher.keyring)}
    )
    document_permissions(app)

    answer_with_status(app, {NotFound: 404, Forbidden: 403, Conflict: 409})

    async def case_conflict(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, CaseConflict)
        body: dict[str, object] = {"detail": exc.message}
        if isinstance(exc, InvalidTransition):
            body["allowed"] = [s.value for s in exc.allowed]
        return JSONResponse(body, status_code=409)

    app.add_exception_handler(CaseConflict, case_conflict)
    return app
