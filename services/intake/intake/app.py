"""Intake's composition root: one bootstrap builds the dependencies and hands them down.

`create_app(settings)` returns a FastAPI app whose lifespan opens Mongo, starts the broker
(retrying while RabbitMQ is down), the outbox relay and the inbound subscriber, supervised by
the shared runtime (`lhpn_shared.runtime.Background`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import FastAPI
from faststream.middlewares import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from faststream.specification import AsyncAPI
from pymongo import AsyncMongoClient

from lhpn_shared import dead_letters
from lhpn_shared.access import AccessDenied, Guard, document_permissions, uuid_key
from lhpn_shared.accounts import (
    AccessCopy,
    AccessRegistry,
    KeyInboundBindings,
    subscribe_access,
)
from lhpn_shared.audit import AuditLog, audit_router
from lhpn_shared.auth import Authenticator, Principal
from lhpn_shared.broker import (
    INBOUND,
    TOPOLOGY,
    EventPublisher,
    Reject,
    make_broker,
    process_delivery,
)
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
from lhpn_shared.inbound import SettingsInboundBindings
from lhpn_shared.mongo import Doc, database, make_client
from lhpn_shared.runtime import (
    Background,
    instrument,
    make_relay,
    readiness_checks,
    retry_while_database_down,
)
from lhpn_shared.settings import Environment
from lhpn_shared.trust import EventOwners, InboundGate

from . import seed
from .api import build_router
from .api_accounts import build_accounts_router
from .api_keys import ApiKeys
from .errors import Conflict, NotFound, NotReady
from .repository import IntakeStore
from .service import Intake
from .settings import IntakeSettings
from .signin import SignInThrottle
from .unit_api import build_unit_router
from .units import UnitConflict, UnitsNotReady
from .users import Passwords, Users

log = logging.getLogger("intake")

PUBLISHES = [
    ("unit.upserted", 1),
    ("plan.published", 1),
    ("activity.recorded", 1),
    ("activity.voided", 1),
    ("report.submitted", 1),
    ("user.upserted", 1),
    ("api_key.upserted", 1),
]
INBOUND_QUEUE = "intake.inbound"
ACCESS_QUEUE = "intake.access"
INBOUND_KEYS = TOPOLOGY[INBOUND_QUEUE].routing_keys


def build_broker(
    settings: IntakeSettings,
    intake_ref: dict[str, Intake],
    consumers: Consumers | None = None,
    access_ref: dict[str, AccessCopy] | None = None,
    registry: AccessRegistry | None = None,
) -> RabbitBroker:
    """The broker with intake's documented publishers, its inbound subscriber and the access
    events of its other replicas (reporting what they hold to `consumers`)."""
    broker = make_broker(settings)
    queue = TOPOLOGY[INBOUND_QUEUE].rabbit_queue()
    progress = (consumers if consumers is not None else Consumers()).queue(INBOUND_QUEUE)

    async def tree_for(unit_id: str) -> UnitTree:
        intake = intake_ref["intake"]
        if unit_id not in intake.tree:  # perhaps created through another replica just now
            await intake.refresh_reference_data()
        return intake.tree

    # the publisher must be a bound system, sending its event types for units of its subtree
    gate = InboundGate(
        KeyInboundBindings(
            registry or AccessRegistry(), SettingsInboundBindings(settings.parsed_inbound_systems())
        ),
        tree_for,
    )

    @broker.subscriber(
        queue,
        INBOUND,
        ack_policy=AckPolicy.MANUAL,
        title=f"{INBOUND_QUEUE}:inbound",
        description="Envelopes other systems publish on lhpn.inbound ("
        + ", ".join(INBOUND_KEYS)
        + "), each from a bound system (AMQP user_id) within its unit subtree: validated, "
        "stored and republished on lhpn.events; refused ones go to "
        f"{INBOUND_QUEUE}.dlq with x-rejection-reason.",
    )
    async def on_inbound(msg: RabbitMessage) -> None:
        async def handle(envelope: Envelope, principal: Principal) -> None:
            sender = principal.model_copy(update={"address": f"amqp:{INBOUND_QUEUE}"})
            try:
                await intake_ref["intake"].handle_inbound(envelope, sender)
            except (AccessDenied, Conflict) as exc:
                raise Reject(str(exc)) from exc

        await process_delivery(
            broker,
            msg,
            INBOUND_QUEUE,
            handle,
            admission=gate,
            progress=progress,
            own_user=settings.broker_user,
            max_attempts=settings.consumer_max_attempts,
        )

    refs = access_ref if access_ref is not None else {}
    subscribe_access(
        broker,
        ACCESS_QUEUE,
        lambda: refs.get("copy"),
        EventOwners(settings.broker_user_prefix),
        (consumers if consumers is not None else Consumers()).queue(ACCESS_QUEUE),
    )
    return broker


def create_app(settings: IntakeSettings, clock: Clock | None = None) -> FastAPI:
    clock = clock or SystemClock()
    intake_ref: dict[str, Intake] = {}
    consumers = Consumers()
    registry = AccessRegistry()
    access_ref: dict[str, AccessCopy] = {}
    broker = build_broker(settings, intake_ref, consumers, access_ref, registry)
    background = Background(settings, broker, consumers)
    publisher = EventPublisher(broker, PUBLISHES)
    spec = AsyncAPI(broker, title="LHPN intake", version="1.0.0")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = make_client(settings)
        store = IntakeStore(database(client, settings.database))
        relay = make_relay(store.outbox_collections, publisher, settings, audit=store.audit)
        audit = AuditLog(store.audit, clock)
        intake = Intake(store, clock, relay.wake, audit)
        intake.max_attachment_bytes = settings.max_attachment_bytes
        intake_ref["intake"] = intake
        passwords = Passwords(settings.password_hash_concurrency)
        users = Users(store.users, clock, registry, audit, passwords, relay.wake)
        keys = ApiKeys(store.api_keys, clock, registry, audit, relay.wake)
        app.state.intake, app.state.users, app.state.relay = intake, users, relay
        app.state.api_keys, app.state.audit = keys, audit
        app.state.sign_in_throttle = SignInThrottle(
            store.sign_in_failures,
            per_user=settings.sign_in_failures_per_user,
            per_address=settings.sign_in_failures_per_address,
            window=timedelta(seconds=settings.sign_in_window_seconds),
        )

        async def prepare() -> None:
            """Indexes, first admin, bootstrap keys, the access registry, reference data."""
            await store.ensure_indexes()
            await users.ensure_indexes()
            await audit.ensure_indexes()
            await users.ensure_admin(
                settings.admin_username, settings.admin_password.get_secret_value()
            )
            await keys.import_bootstrap(settings.parsed_api_keys())
            registry.load(await users.load(), await keys.load())
            access_ref["copy"] = AccessCopy(registry, None)
            await intake.load_reference_data()
            if settings.seed_default_data:
                await seed.load(intake, settings.units_file, settings.plan_files)

        if settings.env is Environment.production:
            # refuse to start while a stored admin keeps the development password (a database
            # first used in development): this waits for the database, unlike the rest
            await retry_while_database_down(users.refuse_development_admin_password)

        prepared = background.start(lambda: retry_while_database_down(prepare), "prepare")
        # consume inbound only once the reference data is there
        background.start_broker(after=prepared, relay=relay)
        try:
            yield
        finally:
            await background.stop()
            await client.close()

    app = FastAPI(
        title="LHPN intake",
        version="1.0.0",
        description="Units, plans, activities, reports and inbound events (SPEC §2–§5, §9).",
        lifespan=lifespan,
    )
    app.state.clock = clock
    app.state.settings = settings
    app.state.background = background
    install_error_handlers(app)
    limit_request_size(app, settings.max_request_bytes)
    metrics = Metrics("intake")
    metrics.install(app)
    instrument(metrics, background)

    def mongo_client() -> AsyncMongoClient[Doc] | None:
        intake = intake_ref.get("intake")
        return intake.store.db.client if intake else None

    app.include_router(
        ops_router(
            checks=readiness_checks(broker, mongo_client, background),
            metrics=metrics,
            asyncapi=lambda: spec.to_specification().to_json(),
        )
    )

    async def tree() -> UnitTree:
        return intake_ref["intake"].tree if "intake" in intake_ref else _not_ready()

    async def stored_unit(coll: str, entity_id: str) -> str | None:
        """The unit of a stored activity or report, by its id as the route will parse it."""
        if "intake" not in intake_ref:
            raise NotReady
        key = uuid_key(entity_id)
        if key is None:
            return None  # the route answers 422
        doc = await intake_ref["intake"].store.db[coll].find_one({"_id": key}, {"unit_id": 1})
        return None if doc is None else str(doc["unit_id"])

    guard = Guard(
        Authenticator(settings, clock, registry),
        tree,
        {
            "activity_id": lambda i: stored_unit("activities", i),
            "report_id": lambda i: stored_unit("reports", i),
        },
        audit=lambda: getattr(app.state, "audit", None),
    )
    app.include_router(build_accounts_router(settings, guard))
    app.include_router(build_router(guard))
    app.include_router(build_unit_router(guard))
    app.include_router(audit_router(guard, lambda: app.state.audit, tree))
    dead_letters.install(app, broker, settings, guard)
    document_permissions(app)

    answer_with_status(
        app, {NotFound: 404, Conflict: 409, NotReady: 503, UnitConflict: 409, UnitsNotReady: 503}
    )
    return app


def _not_ready() -> UnitTree:
    raise NotReady
