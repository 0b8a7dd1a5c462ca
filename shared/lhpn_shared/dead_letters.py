"""A service's dead-letter queues, for operators: list them with counts and reasons, show one
message, replay messages to the queue they came from, purge — the logic behind each service's
admin routes (`/api/v1/dead-letters`, `router`) and the `lhpn dead-letters` command.

How a replay stays inside broker trust (`broker.sender_of`):

- a service only ever reads and replays its own queues' DLQs, and only dead letters whose AMQP
  `user_id` is its own broker user — RabbitMQ refuses a publish whose `user_id` is not the
  connection's user, so such a message is one this service itself dead-lettered (`dead_letter`),
  and the `x-original-*` headers in it are the ones it recorded from the delivery it refused.
  Anything else in the DLQ (published there by another account, or dead-lettered by the broker
  itself) is listed but refused for replay;
- the replay is published on `lhpn.replay` with the consumer queue's own name as routing key
  (each service's topic permission there: its own queues' names only), as the service's own
  user; the consumer then admits it as if its original publisher (`x-original-user-id`) had just
  sent it: an event type on `lhpn.events` still needs its owning service as original publisher,
  an inbound message a bound system within its subtree. A replay cannot make anything new;
- not to the original exchange: that would deliver it again to every queue bound there, which
  processed it already (they would dedupe it, but as work done twice), and a service may not
  publish there anyway (`lhpn.inbound`: nobody's but the other systems'; `lhpn.events`: only its
  own event types). The original exchange and routing key stay in the headers and are what the
  consumer sees as the message's origin.

Reading a DLQ is non-destructive: each message is taken unacknowledged on a channel of its own,
and what is neither replayed nor purged is given back (`nack`, requeued) at the end.
"""

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, status
from faststream.exceptions import IncorrectState
from faststream.rabbit import Channel, RabbitBroker
from pydantic import BaseModel, Field

from .access import ADMINS, READ, WRITE, Guard, Permission
from .broker import (
    ATTEMPTS_HEADER,
    ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_USER_HEADER,
    REJECTION_HEADER,
    REPLAY,
    TRANSIENT_ERRORS,
)
from .principal import Principal

log = logging.getLogger("lhpn.dead_letters")

MAX_EXAMINED = 10_000
"""At most this many messages of one DLQ are read for a listing, a replay or a purge."""

Opener = Callable[[bytes, dict[str, Any], str | None], tuple[bytes, list[str]]]
"""What a queue does to a dead letter's body before replaying it: given the body, the headers
and the message id, the body as first published and the headers to drop (the cases inbound
queue opens what it sealed, `cases.adapters.dead_letters`)."""

_UNAVAILABLE: tuple[type[Exception], ...] = (*TRANSIENT_ERRORS, IncorrectState)


class UnknownQueue(Exception):
    """Not one of this service's consumer queues."""


@dataclass
class _Held:
    message: Any
    """aio_pika IncomingMessage, unacknowledged"""

    @property
    def reason(self) -> str:
        return str((self.message.headers or {}).get(REJECTION_HEADER) or "(no reason)")

    def matches(self, reason: str | None, message_ids: set[str] | None) -> bool:
        if message_ids is not None and str(self.message.message_id) not in message_ids:
            return False
        return reason is None or reason in self.reason


class DeadLetters:
    """The DLQs of one service's consumer queues (`queues`: their names)."""

    def __init__(
        self,
        broker: RabbitBroker,
        queues: Iterable[str],
        own_user: str,
        openers: Mapping[str, Opener] | None = None,
    ) -> None:
        self.broker = broker
        self.queues = list(queues)
        self.own_user = own_user
        self.openers = dict(openers or {})
        self._lock = asyncio.Lock()
        # a channel of its own: what it holds unacknowledged is not the consumers' business
        self._channel = Channel(publisher_confirms=False)

    def _check(self, queue: str) -> str:
        if queue not in self.queues:
            raise UnknownQueue(
                f"Hàng đợi '{queue}' không thuộc dịch vụ này; các hàng đợi của nó: "
                + ", ".join(self.queues)
            )
        return f"{queue}.dlq"

    @contextlib.asynccontextmanager
    async def _held(self, queue: str) -> AsyncIterator[tuple[int, list[_Held]]]:
        """(messages in the DLQ, the first `MAX_EXAMINED` of them held unacknowledged); what
        is still held at the end goes back to the queue."""
        dlq = self._check(queue)
        async with self._lock:
            channel = await self.broker.config.channel_manager.get_channel(self._channel)
            declared = await channel.declare_queue(dlq, passive=True, robust=False, timeout=10)
            total = int(declared.declaration_result.message_count or 0)
            held: list[_Held] = []
            try:
                # until the queue answers empty, not up to `total`: a count is only a moment's
                while len(held) < MAX_EXAMINED:
                    message = await declared.get(no_ack=False, fail=False, timeout=10)
                    if message is None:
                        break
                    held.append(_Held(message))
                yield total, held
            finally:
                for h in held:
                    if not h.message.processed:
                        with contextlib.suppress(Exception):  # a closed channel requeues them
                            await h.message.nack(requeue=True)

    async def summary(self) -> list[dict[str, Any]]:
        """Per consumer queue: the messages in its DLQ and how many for each reason."""
        out = []
        for queue in self.queues:
            async with self._held(queue) as (total, held):
                reasons = Counter(h.reason for h in held)
            out.append(
                {
                    "queue": queue,
                    "dead_letter_queue": f"{queue}.dlq",
                    "messages": max(total, len(held)),
                    "examined": len(held),
                    "reasons": [{"reason": r, "messages": n} for r, n in sorted(reasons.items())],
                }
            )
        return out

    async def show(self, queue: str, message_id: str) -> dict[str, Any] | None:
        """One dead letter as it lies in the DLQ (a sealed body stays sealed)."""
        async with self._held(queue) as (_, held):
            for h in held:
                m = h.message
                if str(m.message_id) == message_id:
                    return {
                        "queue": queue,
                        "message_id": message_id,
                        "reason": h.reason,
                        "replayable": self._refusal(m) is None,
                        "published_by": m.user_id,
                        "headers": {k: _plain(v) for k, v in (m.headers or {}).items()},
                        "content_type": m.content_type,
                        "body": m.body.decode("utf-8", errors="replace"),
                        "size": len(m.body),
                    }
        return None

    def _refusal(self, m: Any) -> str | None:
        """Why this dead letter may not be replayed, or None."""
        if m.user_id != self.own_user:
            return (
                f"không do dịch vụ này chuyển vào DLQ (user_id '{m.user_id or ''}'): "
                "không được phát lại"
            )
        headers = m.headers or {}
        if not headers.get(ORIGINAL_EXCHANGE_HEADER) or not headers.get(ORIGINAL_USER_HEADER):
            return "thiếu x-original-exchange / x-original-user-id: không được phát lại"
        return None

    async def replay(
        self, queue: str, reason: str | None = None, message_ids: set[str] | None = None
    ) -> dict[str, Any]:
        """Publish the matching dead letters again to `queue` (through `lhpn.replay`), each
        acknowledged in the DLQ once the broker confirmed its replay."""
        replayed, refused = 0, []
        opener = self.openers.get(queue)
        async with self._held(queue) as (_, held):
            for h in held:
                if not h.matches(reason, message_ids):
                    continue
                m = h.message
                why = self._refusal(m)
                if why is not None:
                    refused.append({"message_id": m.message_id, "why": why})
                    continue
                headers = {
                    k: v
                    for k, v in (m.headers or {}).items()
                    if k not in (REJECTION_HEADER, ATTEMPTS_HEADER)
                }
                body = m.body
                if opener is not None:
                    body, dropped = opener(body, headers, m.message_id)
                    for name in dropped:
                        headers.pop(name, None)
                await self.broker.publish(
                    body,
                    exchange=REPLAY,
                    routing_key=queue,
                    headers=headers,
                    persist=True,
                    message_id=m.message_id,
                    content_type=m.content_type,
                    timeout=10,
                )
                await m.ack()
                replayed += 1
        log.info(
            "dead letters replayed",
            extra={"queue": queue, "replayed": replayed, "refused": len(refused)},
        )
        return {"queue": queue, "replayed": replayed, "refused": refused}

    async def purge(
        self, queue: str, reason: str | None = None, message_ids: set[str] | None = None
    ) -> dict[str, Any]:
        """Delete the matching dead letters (all of them when nothing is given)."""
        purged = 0
        async with self._held(queue) as (_, held):
            for h in held:
                if h.matches(reason, message_ids):
                    await h.message.ack()
                    purged += 1
        log.info("dead letters purged", extra={"queue": queue, "purged": purged})
        return {"queue": queue, "purged": purged}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


# ---- the admin routes every service with consumer queues has ----------------------------------


class Selection(BaseModel):
    """Which dead letters of `queue`: those whose reason contains `reason`, and/or those with
    these message ids; every one of them when neither is given."""

    queue: str = Field(description="a consumer queue of this service, e.g. 'intake.inbound'")
    reason: str | None = Field(default=None, min_length=1, max_length=1000)
    message_ids: list[str] | None = Field(default=None, max_length=MAX_EXAMINED)


DEAD_LETTERS_READ = Permission("dead-letters.read", READ, ADMINS)
DEAD_LETTERS_REPLAY = Permission("dead-letters.replay", WRITE, ADMINS)
DEAD_LETTERS_PURGE = Permission("dead-letters.purge", WRITE, ADMINS)


def router(guard: Guard, dead_letters: DeadLetters) -> APIRouter:
    """`GET /api/v1/dead-letters`, `GET /api/v1/dead-letters/{queue}/{message_id}`,
    `POST /api/v1/dead-letters/replay`, `POST /api/v1/dead-letters/purge` — admins only."""
    api = APIRouter(prefix="/api/v1/dead-letters", tags=["dead letters"])

    def ready() -> DeadLetters:
        return dead_letters

    def selection(body: Selection) -> tuple[str, str | None, set[str] | None]:
        return body.queue, body.reason, set(body.message_ids) if body.message_ids else None

    @api.get("")
    async def list_dead_letters(
        caller: Annotated[Principal, guard(DEAD_LETTERS_READ)],
    ) -> dict[str, Any]:
        """Each DLQ of this service: its messages and how many for each reason."""
        return {"queues": await _answer(ready().summary())}

    @api.get("/{queue}/{message_id}")
    async def show_dead_letter(
        caller: Annotated[Principal, guard(DEAD_LETTERS_READ)], queue: str, message_id: str
    ) -> dict[str, Any]:
        """One dead letter: reason, headers, body as it lies in the DLQ."""
        found = await _answer(ready().show(queue, message_id))
        if found is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"Không có thư {message_id} trong {queue}.dlq.",
            )
        return found

    @api.post("/replay")
    async def replay_dead_letters(
        caller: Annotated[Principal, guard(DEAD_LETTERS_REPLAY)], body: Selection
    ) -> dict[str, Any]:
        """Publish the selected dead letters again to the queue they came from."""
        return await _answer(ready().replay(*selection(body)))

    @api.post("/purge")
    async def purge_dead_letters(
        caller: Annotated[Principal, guard(DEAD_LETTERS_PURGE)], body: Selection
    ) -> dict[str, Any]:
        """Delete the selected dead letters."""
        return await _answer(ready().purge(*selection(body)))

    return api


async def _answer(work: Any) -> Any:
    try:
        return await work
    except UnknownQueue as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except _UNAVAILABLE as exc:
        log.warning("dead letters: broker unavailable", extra={"error": repr(exc)[:300]})
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "Không kết nối được RabbitMQ, thử lại sau."
        ) from exc


def install(
    app: Any,
    broker: RabbitBroker,
    settings: Any,
    guard: Guard,
    openers: Mapping[str, Opener] | None = None,
    own_queues: Iterable[str] = (),
) -> DeadLetters:
    """Give a service's app the dead-letter routes for its own consumer queues: those of the
    topology, and `own_queues`, the ones it declares itself (aggregation's partition queues)."""
    from .broker import queues_of

    dead_letters = DeadLetters(
        broker,
        [*(b.queue for b in queues_of(settings.service_name)), *own_queues],
        settings.broker_user,
        openers,
    )
    app.include_router(router(guard, dead_letters))
    return dead_letters
