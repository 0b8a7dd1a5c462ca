"""Broker topology (SPEC §9.1) and the one way every service consumes events.

- `lhpn.events` (topic): every event the services publish.
- `lhpn.inbound` (topic): where other systems publish; intake validates and republishes.
- `lhpn.dead-letter` (direct): every consumer queue dead-letters into its own `<queue>.dlq`,
  both when the broker rejects a message and when we refuse one with `x-rejection-reason`.
- `lhpn.replay` (topic): every consumer queue is bound to it with its own name as the routing
  key, and each service may publish on it only with its own queues' names (a topic
  permission): an operator's replay of a dead letter reaches the one queue it came from, not
  every queue bound to its original exchange (`dead_letters`, `sender_of`).

Queues are durable classic queues with only `x-dead-letter-*` arguments, which RabbitMQ 3.10
and 4.x both accept.

Who declares what: each service connects as its own RabbitMQ user, which may not configure the
exchanges or other services' queues (`broker_accounts`). The whole topology — exchanges, every
consumer queue, DLQs, bindings — is declared beforehand from `TOPOLOGY` by whoever creates the
users (the run command, the test infrastructure, compose's definitions file), so an event
published before its consumer first started waits in that consumer's queue. A service checks
the exchanges passively and (re)declares only its own queues.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aio_pika.exceptions import AMQPError
from fast_depends.library.serializer import OptionItem, Serializer
from fast_depends.pydantic import PydanticSerializer
from faststream import BaseMiddleware
from faststream.rabbit import Channel, ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.message import RabbitMessage
from pydantic import ValidationError

from . import correlation
from .consumers import QueueProgress, delivery_channel, message_key
from .contracts.events import Envelope, UnknownEventType
from .mongo import TRANSIENT_DB_ERRORS
from .principal import Principal
from .settings import ServiceSettings

if TYPE_CHECKING:
    from .trust import Admission

log = logging.getLogger("lhpn.broker")

# declare=False: services only check that the exchanges exist (they may not configure them)
EVENTS = RabbitExchange("lhpn.events", type=ExchangeType.TOPIC, durable=True, declare=False)
INBOUND = RabbitExchange("lhpn.inbound", type=ExchangeType.TOPIC, durable=True, declare=False)
DEAD_LETTERS = RabbitExchange(
    "lhpn.dead-letter", type=ExchangeType.DIRECT, durable=True, declare=False
)
REPLAY = RabbitExchange("lhpn.replay", type=ExchangeType.TOPIC, durable=True, declare=False)
EXCHANGES = (EVENTS, INBOUND, DEAD_LETTERS, REPLAY)
AGGREGATION_PARTITIONS = RabbitExchange(
    "aggregation.partitions", type=ExchangeType.DIRECT, durable=True
)
"""Aggregation's own exchange, used only with `AGGREGATION_PARTITIONS` > 1: its router sends each
event to the queue of the event's partition, `aggregation.events.p<k>`, bound with `<k>`. The
service declares it and its partition queues itself (nobody else publishes there)."""
OWN_QUEUES: dict[str, str] = {
    "aggregation": r"aggregation\.events\.p[0-9]+",
}
"""Per service, a regex of the consumer queues besides its `TOPOLOGY` queues that it declares
itself (aggregation's partition queues): it may replay dead letters to them through
`lhpn.replay` as to its other queues (`broker_accounts`, `dead_letters`)."""
OWN_RESOURCES: dict[str, str] = {
    "aggregation": r"aggregation\.partitions|" + OWN_QUEUES["aggregation"] + r"(\.dlq)?",
}
"""Per service, a regex of the resources besides its `TOPOLOGY` queues that it declares, writes
and reads itself (`broker_accounts`)."""

REJECTION_HEADER = "x-rejection-reason"
ORIGINAL_EXCHANGE_HEADER = "x-original-exchange"
ORIGINAL_ROUTING_KEY_HEADER = "x-original-routing-key"
ORIGINAL_USER_HEADER = "x-original-user-id"
ATTEMPTS_HEADER = "x-attempts"
"""on a dead letter refused after repeated failures: how many times it was tried"""
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    *TRANSIENT_DB_ERRORS,
    AMQPError,
    ConnectionError,
    TimeoutError,
)


async def keep_raw_body(msg: Any) -> Any:
    """Decoder that leaves the body as bytes: `process_delivery` parses it itself, so a message
    that is not JSON reaches our handler (and the DLQ with a reason) instead of failing inside
    FastStream's JSON decoding, where a manually-acked message would never be settled."""
    return msg.body


class _PublishAs(BaseMiddleware):
    """Sets the AMQP `user_id` of everything the broker publishes to the connection's user."""

    user_id = ""

    async def publish_scope(self, call_next: Callable[[Any], Awaitable[Any]], cmd: Any) -> Any:
        cmd.message_options = {**cmd.message_options, "user_id": self.user_id}
        return await call_next(cmd)


def publish_as(user_id: str) -> Callable[..., BaseMiddleware]:
    """A broker middleware: every message published through the broker (relay, dead letters,
    anything else) carries `user_id`; RabbitMQ refuses it unless it is the connection's user."""

    def build(msg: Any, /, *, context: Any) -> BaseMiddleware:
        middleware = _PublishAs(msg, context=context)
        middleware.user_id = user_id
        return middleware

    return built_once_for_publishing(build)


class _BuiltOnceForPublishing:
    """See `built_once_for_publishing`."""

    def __init__(self, factory: Callable[..., Any]) -> None:
        self._factory = factory
        self._publishing: Any = None
        self._context: Any = None

    def __call__(self, msg: Any, /, *, context: Any) -> Any:
        if msg is not None:  # a delivery: its own instance, as FastStream expects
            return self._factory(msg, context=context)
        if self._publishing is None or self._context is not context:
            self._publishing, self._context = self._factory(None, context=context), context
        return self._publishing


def built_once_for_publishing(factory: Callable[..., Any]) -> Callable[..., Any]:
    """A broker middleware factory that FastStream calls once per published message (with no
    message: `factory(None, context=...)`) made to build that publishing instance once per
    broker and hand the same one out again. For a middleware whose `publish_scope` keeps no
    state of its own between calls (ours; FastStream's Prometheus middleware, which
    `_build_middlewares_stack` otherwise rebuilds — a generic class instantiated — for every
    event the relay publishes). Deliveries still get an instance each."""
    return _BuiltOnceForPublishing(factory)


class _Unvalidated(Serializer):
    """A handler's arguments described (the pydantic model the AsyncAPI document is made from)
    but passed through as they come."""

    def __init__(self, described: Serializer) -> None:
        self.name = described.name
        self.options = described.options
        self.response_option = described.response_option
        self.model = getattr(described, "model", None)
        self._described = described

    def get_aliases(self) -> tuple[str, ...]:
        return self._described.get_aliases()

    def __call__(self, call_kwargs: dict[str, Any]) -> dict[str, Any]:
        return {}  # nothing cast: the arguments stay as given


class DescribedNotValidated(PydanticSerializer):
    """FastStream's serializer of handler arguments, without the validation of each message.

    Every handler here takes the delivery (or its raw body) and parses the envelope itself,
    where a refusal is dead-lettered with its reason; the pydantic model FastStream otherwise
    builds for each message's arguments checked nothing and cost 5 % of the aggregation
    consumer's CPU. The model is still built once per handler, for the AsyncAPI document.

    A handler whose message argument is typed (a model, `str`…) would get the body uncast:
    refused when the broker starts, not found on the first message."""

    def __call__(  # type: ignore[override]
        self, *, name: str, options: list[OptionItem], response_type: Any
    ) -> Serializer:
        for option in options:
            if option.source is None and option.field_type is not Any:
                raise TypeError(
                    f"{name}: `{option.field_name}` is typed {option.field_type!r}; handlers "
                    "here take the message as `Any` (or `RabbitMessage`) and parse it themselves"
                )
        return _Unvalidated(
            super().__call__(name=name, options=options, response_type=response_type)
        )


def make_broker(settings: ServiceSettings) -> RabbitBroker:
    """A broker with bounded prefetch, raw bodies for our own envelope parsing, our own logger
    (FastStream's per-message lines off), and the service's broker user on every message."""
    if settings.broker_user != settings.expected_broker_user:  # refused in production
        log.warning(
            "RABBIT_URL does not connect as this service's own broker user: the other "
            "services will refuse the events it publishes",
            extra={"user": settings.broker_user, "expected": settings.expected_broker_user},
        )
    return RabbitBroker(
        settings.rabbit_url,
        decoder=keep_raw_body,
        default_channel=Channel(prefetch_count=settings.consumer_prefetch),
        reconnect_interval=1.0,
        logger=None,
        app_id=settings.service_name,
        middlewares=[publish_as(settings.broker_user)],
        # at shutdown a subscriber waits this long for the handlers it runs (`runtime`)
        graceful_timeout=settings.shutdown_grace_seconds,
        serializer=DescribedNotValidated(use_fastdepends_errors=False),
    )


def consumer_queue(
    name: str, routing_key: str = "#", *, single_active_consumer: bool = False
) -> RabbitQueue:
    """A durable queue that dead-letters into `<name>.dlq` through `lhpn.dead-letter`.

    `single_active_consumer`: with several replicas only one consumes at a time, so a
    consumer that batches keeps the queue's order."""
    arguments: dict[str, Any] = {
        "x-dead-letter-exchange": DEAD_LETTERS.name,
        "x-dead-letter-routing-key": name,
    }
    if single_active_consumer:
        arguments["x-single-active-consumer"] = True
    return RabbitQueue(  # type: ignore[call-overload]  # arguments: a TypedDict there
        name, durable=True, routing_key=routing_key, arguments=arguments
    )


def dead_letter_queue(name: str) -> RabbitQueue:
    return RabbitQueue(f"{name}.dlq", durable=True, routing_key=name)


async def declare_consumer_topology(
    broker: RabbitBroker,
    queue: RabbitQueue,
    exchange: RabbitExchange,
    routing_keys: Iterable[str],
) -> None:
    """Declare the queue, its DLQ and every binding (FastStream binds only one key itself),
    including the queue's own binding on `lhpn.replay`."""
    dlx = await broker.declare_exchange(DEAD_LETTERS)
    dlq = await broker.declare_queue(dead_letter_queue(queue.name))
    await dlq.bind(dlx, routing_key=queue.name)
    exch = await broker.declare_exchange(exchange)
    q = await broker.declare_queue(queue)
    for key in routing_keys:
        await q.bind(exch, routing_key=key)
    await q.bind(await broker.declare_exchange(REPLAY), routing_key=queue.name)


@dataclass(frozen=True)
class ConsumerBinding:
    queue: str
    exchange: RabbitExchange
    routing_keys: tuple[str, ...]
    single_active_consumer: bool = False

    @property
    def owner(self) -> str:
        """The service consuming it: queues are named `<service>.<name>`."""
        return self.queue.split(".", 1)[0]

    @property
    def arguments(self) -> dict[str, Any]:
        return dict(self.rabbit_queue().arguments or {})

    def rabbit_queue(self) -> RabbitQueue:
        return consumer_queue(
            self.queue, self.routing_keys[0], single_active_consumer=self.single_active_consumer
        )


_UNITS_PLANS = ("unit.upserted.v1", "plan.published.v1")
_CASES = ("case.opened.v1", "case.status_changed.v1", "case.closed.v1")
_ACCESS = ("user.upserted.v1", "api_key.upserted.v1")

TOPOLOGY: dict[str, ConsumerBinding] = {
    b.queue: b
    for b in (
        ConsumerBinding(
            "intake.inbound",
            INBOUND,
            ("activity.recorded.v1", "activity.voided.v1", "report.submitted.v1"),
        ),
        ConsumerBinding("cases.inbound", INBOUND, ("case.opened.v1",)),
        ConsumerBinding("cases.events", EVENTS, ("unit.upserted.v1",)),
        ConsumerBinding(
            "reminders.events", EVENTS, (*_UNITS_PLANS, "report.submitted.v1", *_CASES)
        ),
        ConsumerBinding(
            "aggregation.events",
            EVENTS,
            (
                *_UNITS_PLANS,
                "activity.recorded.v1",
                "activity.voided.v1",
                "report.submitted.v1",
                *_CASES,
            ),
            single_active_consumer=True,
        ),
        # every service's copy of users and API keys (lhpn_shared.accounts)
        *(
            ConsumerBinding(f"{service}.access", EVENTS, _ACCESS)
            for service in ("intake", "cases", "reminders", "aggregation")
        ),
    )
}
"""Every consumer queue of the system, in one place. It is all declared before the services
start (`broker_accounts.definitions`), so an event published before its consumer first started
is kept in that consumer's queue instead of being dropped by an exchange with no binding yet."""


def queues_of(service: str) -> list[ConsumerBinding]:
    return [b for b in TOPOLOGY.values() if b.owner == service]


async def declare_own_topology(broker: RabbitBroker, service: str) -> None:
    """What a service may declare itself: its own queues, their DLQs and bindings (the same as
    the pre-declared ones; the exchanges are only checked)."""
    for binding in queues_of(service):
        await declare_consumer_topology(
            broker, binding.rabbit_queue(), binding.exchange, binding.routing_keys
        )


class Reject(Exception):
    """This message can never be processed: dead-letter it with this reason, do not retry."""


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


DeadLetterFilter = Callable[[bytes, str | None], tuple[bytes, dict[str, str]]]
"""What a queue does to a refused body before it is dead-lettered: given the body and the
message id, the body to keep and the headers that say what was done (e.g. the cases inbound
queue seals personal data, so that the DLQ does not keep it readable)."""


def replayed(raw: Any) -> bool:
    """Delivered through `lhpn.replay`: a dead letter an operator replayed to this queue."""
    return bool(raw.exchange == REPLAY.name)


def sender_of(raw: Any, own_user: str | None) -> str | None:
    """Who published a delivery, as the admissions check it: its AMQP `user_id` (RabbitMQ
    refuses a forged one) — except for a dead letter this service replayed to its own queue.

    A replay reaches a consumer through `lhpn.replay` and carries this service's own user as
    `user_id` (only its connection can set that, and only it may publish to its own queues
    there); the publisher that counts is then the original one, which the service itself
    recorded in `x-original-user-id` when it dead-lettered the message (`dead_letter`), and
    which the admission checks as if the message had just arrived. Anything else arriving
    through `lhpn.replay` is refused."""
    if not replayed(raw):
        return str(raw.user_id) if raw.user_id else None
    if own_user is None or raw.user_id != own_user:
        sender = f"'{raw.user_id}'" if raw.user_id else "someone without a user_id"
        raise Reject(f"replayed through {REPLAY.name} by {sender}, not by the consuming service")
    original = (raw.headers or {}).get(ORIGINAL_USER_HEADER)
    return str(original) if original else None


def original_headers(raw: Any) -> dict[str, str]:
    """Where a delivery was first published, and by whom: from the delivery itself, or — for a
    replayed dead letter — from what was recorded when it was first dead-lettered."""
    if replayed(raw):
        headers = raw.headers or {}
        names = (ORIGINAL_EXCHANGE_HEADER, ORIGINAL_ROUTING_KEY_HEADER, ORIGINAL_USER_HEADER)
        return {name: str(headers.get(name) or "") for name in names}
    return {
        ORIGINAL_EXCHANGE_HEADER: raw.exchange or "",
        ORIGINAL_ROUTING_KEY_HEADER: raw.routing_key or "",
        ORIGINAL_USER_HEADER: raw.user_id or "",
    }


async def dead_letter(
    broker: RabbitBroker,
    msg: RabbitMessage,
    queue_name: str,
    reason: str,
    dead_letter_filter: DeadLetterFilter | None = None,
    *,
    attempts: int | None = None,
) -> None:
    """Publish a copy of the delivery to `<queue_name>.dlq` with the reason and where it was
    first published (a replayed dead letter keeps its first origin)."""
    raw = msg.raw_message
    headers: dict[str, Any] = dict(raw.headers or {})
    headers[REJECTION_HEADER] = reason[:1000]
    headers.update(original_headers(raw))
    if attempts is not None:
        headers[ATTEMPTS_HEADER] = attempts
    else:
        headers.pop(ATTEMPTS_HEADER, None)
    body, content_type = raw.body, raw.content_type
    if dead_letter_filter is not None:
        body, added = dead_letter_filter(raw.body, raw.message_id)
        headers.update(added)
        if body != raw.body:
            content_type = "application/json"
    await broker.publish(
        body,
        exchange=DEAD_LETTERS,
        routing_key=queue_name,
        headers=headers,
        persist=True,
        message_id=raw.message_id,
        content_type=content_type,
        timeout=10,
    )


EnvelopeHandler = Callable[[Envelope, Principal], Awaitable[None]]
"""handle(envelope, principal): `principal` is who sent it, as `admission` established."""


SETTLE_SECONDS = 10.0
"""Longest wait for an ack/nack to be written: a client stuck on a dead connection must not
hold the consumer (the broker redelivers what was not settled)."""


async def settle(step: Callable[[], Awaitable[Any]], msg: RabbitMessage, queue_name: str) -> bool:
    """Ack, nack or reject a delivery (`step`); False when that could not be done because its
    channel closed or the connection is stuck — the broker then redelivers it, and every
    consumer is idempotent. Never raises: a broker restart must not end a consumer."""
    if delivery_channel(msg) is None:
        log.warning(
            "delivery not settled: its channel closed, the broker redelivers it",
            extra={"queue": queue_name, "message_id": msg.message_id},
        )
        return False
    try:
        await asyncio.wait_for(step(), timeout=SETTLE_SECONDS)
    except Exception as exc:
        log.warning(
            "delivery not settled, the broker redelivers it",
            extra={"queue": queue_name, "message_id": msg.message_id, "error": repr(exc)[:300]},
        )
        return False
    return True


DEFAULT_MAX_ATTEMPTS = 5


async def process_delivery(
    broker: RabbitBroker,
    msg: RabbitMessage,
    queue_name: str,
    handle: EnvelopeHandler,
    *,
    admission: Admission,
    retry_delay: float = 1.0,
    dead_letter_filter: DeadLetterFilter | None = None,
    progress: QueueProgress | None = None,
    own_user: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> None:
    """Parse the envelope, admit its publisher, run `handle`, then ack; never ack a failure.

    - not an envelope, a publisher `admission` refuses (by the message's AMQP `user_id`, or for
      a dead letter replayed by this service — `own_user` — the original one: `sender_of`),
      `Reject`, a validation error or an unknown type: dead-letter with the reason in
      `x-rejection-reason`, then ack the original (it is safe in the DLQ);
    - database or broker unavailable: wait, then nack with requeue: nothing is lost, and such
      an outage never counts as a failure of the message;
    - any other error: requeued after a pause growing with each failure, and dead-lettered
      with the error's class name once it failed `max_attempts` times (a poison message never
      holds up the queue; a passing glitch does not lose the message);
    - the delivery's channel closed meanwhile (a broker restart): nothing to settle, the
      broker redelivers it.
    `progress` (the service's `Consumers.queue(queue_name)`) is told what is held and settled,
    and keeps the count of failures. While the event is handled, its correlation id (or its
    event id) is the current one: every log line carries it and every event the handler makes
    inherits it.
    """
    if progress is not None:
        progress.received(msg)
    try:
        with correlation.scope():
            applied = await _process(
                broker,
                msg,
                queue_name,
                handle,
                admission,
                _Retries(retry_delay, max_attempts, progress),
                dead_letter_filter,
                own_user,
            )
        if applied and progress is not None:
            progress.applied()
    finally:
        if progress is not None:
            progress.settled(msg)


@dataclass
class _Retries:
    delay: float
    max_attempts: int
    progress: QueueProgress | None

    def failed(self, msg: RabbitMessage) -> int:
        if self.progress is None:
            return self.max_attempts  # nobody counts: dead-letter at once
        return self.progress.attempts.failed(message_key(msg))

    def forget(self, msg: RabbitMessage) -> None:
        if self.progress is not None:
            self.progress.attempts.forget(message_key(msg))

    def pause(self, attempt: int) -> float:
        return min(self.delay * attempt, 10.0)


async def _process(
    broker: RabbitBroker,
    msg: RabbitMessage,
    queue_name: str,
    handle: EnvelopeHandler,
    admission: Admission,
    retries: _Retries,
    dead_letter_filter: DeadLetterFilter | None,
    own_user: str | None,
) -> bool:
    """True when the message was applied and acked."""
    try:
        try:
            envelope = Envelope.model_validate_json(msg.raw_message.body)
        except ValidationError as exc:
            raise Reject(f"invalid envelope: {describe_validation_error(exc)}") from exc
        correlation.set_current(correlation.for_event(envelope.correlation_id, envelope.event_id))
        principal = await admission.admit(envelope, sender_of(msg.raw_message, own_user))
        try:
            await handle(envelope, principal)
        except ValidationError as exc:
            raise Reject(f"invalid data: {describe_validation_error(exc)}") from exc
        except UnknownEventType as exc:
            raise Reject(str(exc)) from exc
    except Reject as exc:
        log.warning(
            "message dead-lettered",
            extra={"queue": queue_name, "message_id": msg.message_id, "reason": str(exc)},
        )
        retries.forget(msg)
        await _dead_letter_or_requeue(
            broker, msg, queue_name, str(exc), retries.delay, dead_letter_filter
        )
        return False
    except TRANSIENT_ERRORS as exc:
        log.warning(
            "dependency unavailable, message requeued",
            extra={"queue": queue_name, "message_id": msg.message_id, "error": type(exc).__name__},
        )
        await asyncio.sleep(retries.delay)
        await settle(lambda: msg.nack(requeue=True), msg, queue_name)
        return False
    except Exception as exc:
        attempt = retries.failed(msg)
        if attempt < retries.max_attempts:
            log.warning(
                "handler failed, message requeued",
                extra={
                    "queue": queue_name,
                    "message_id": msg.message_id,
                    "error": repr(exc)[:300],
                    "attempt": attempt,
                    "max_attempts": retries.max_attempts,
                },
            )
            await asyncio.sleep(retries.pause(attempt))
            await settle(lambda: msg.nack(requeue=True), msg, queue_name)
            return False
        log.exception(
            "handler failed again, message dead-lettered",
            extra={"queue": queue_name, "message_id": msg.message_id, "attempts": attempt},
        )
        retries.forget(msg)
        await _dead_letter_or_requeue(
            broker,
            msg,
            queue_name,
            f"handler error: {type(exc).__name__} (failed {attempt} times)",
            retries.delay,
            dead_letter_filter,
            attempts=attempt,
        )
        return False
    retries.forget(msg)
    acked = await settle(msg.ack, msg, queue_name)
    if acked:
        log.info(
            "event handled",
            extra={"queue": queue_name, "type": envelope.routing_key, "event_id": msg.message_id},
        )
    return acked


async def _dead_letter_or_requeue(
    broker: RabbitBroker,
    msg: RabbitMessage,
    queue_name: str,
    reason: str,
    retry_delay: float,
    dead_letter_filter: DeadLetterFilter | None,
    *,
    attempts: int | None = None,
) -> None:
    try:
        await dead_letter(broker, msg, queue_name, reason, dead_letter_filter, attempts=attempts)
    except Exception:
        log.exception("could not dead-letter, message requeued", extra={"queue": queue_name})
        await asyncio.sleep(retry_delay)
        await settle(lambda: msg.nack(requeue=True), msg, queue_name)
        return
    await settle(msg.ack, msg, queue_name)


async def start_broker_with_retry(
    broker: RabbitBroker, *, on_started: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Keep trying to connect: a service serves HTTP (and its outbox fills) while the broker
    is down, and picks up once it is back."""
    delay = 0.5
    while True:
        try:
            await broker.start()
            if on_started is not None:
                await on_started()
        except Exception as exc:
            log.warning("broker not ready, retrying", extra={"error": repr(exc)[:300]})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            continue
        return


class EventPublisher:
    """One documented FastStream publisher per event type a service emits.

    The publishers put each type in the service's AsyncAPI document with its schema; the
    outbox relay publishes through them (persistent, JSON, `message_id` = `event_id`, the
    service's broker user as `user_id`, publisher confirms awaited).
    """

    def __init__(self, broker: RabbitBroker, event_types: Iterable[tuple[str, int]]) -> None:
        from .contracts.events import DATA_MODELS, routing_key

        self._publishers = {}
        for event_type, version in event_types:
            key = routing_key(event_type, version)
            self._publishers[key] = broker.publisher(
                exchange=EVENTS,
                routing_key=key,
                persist=True,
                mandatory=False,  # an event nobody listens to yet is not an error
                content_type="application/json",
                title=f"lhpn.events:{key}",
                description=f"`{event_type}` v{version}: an Envelope whose `data` is "
                f"{DATA_MODELS[(event_type, version)].__name__}",
                schema=DATA_MODELS[(event_type, version)],
            )

    async def publish(self, routing_key: str, event_id: str, body: bytes) -> None:
        publisher = self._publishers.get(routing_key)
        if publisher is None:
            raise UnknownEventType(f"this service does not publish {routing_key}")
        await publisher.publish(body, message_id=event_id, timeout=10)


_PROBE_CHANNEL = Channel(publisher_confirms=False)
"""A channel of its own for passive declares: RabbitMQ closes a channel on a failed passive
declare (no such queue), which must never be the channel the service publishes on."""


async def queue_depths(broker: RabbitBroker, names: Iterable[str]) -> dict[str, int]:
    """Messages ready in each of these queues, from a passive declare (RabbitMQ's own count;
    unacknowledged deliveries are not in it). A queue that cannot be asked is left out."""
    depths: dict[str, int] = {}
    channel = await broker.config.channel_manager.get_channel(_PROBE_CHANNEL)
    underlay = await channel.get_underlay_channel()
    for name in names:
        try:
            ok = await underlay.queue_declare(queue=name, passive=True, timeout=2)
        except Exception as exc:  # a closed channel reopens by itself (robust)
            log.debug("queue depth unknown", extra={"queue": name, "error": type(exc).__name__})
            continue
        depths[name] = int(ok.message_count or 0)
    return depths


async def stop_broker(broker: RabbitBroker, seconds: float = 20.0) -> None:
    """Stop consuming and close; a broker that is already gone or slow must not fail shutdown
    (unacknowledged messages are redelivered to the next consumer anyway)."""
    try:
        await asyncio.wait_for(broker.stop(), timeout=seconds)
    except Exception as exc:
        log.warning("broker did not stop cleanly", extra={"error": repr(exc)[:300]})
