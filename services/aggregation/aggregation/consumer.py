"""The event consumer's batching: the subscriber only parses and buffers deliveries
(AckPolicy.MANUAL); a flusher task applies them as one batch and acks them only once the batch
is stored — with one `multiple` ack when the batch follows on from what is already settled.

- a message that is not a consumable event is dead-lettered with `x-rejection-reason` at once;
- the database is down (or a rebuild is running): the batch is nacked with requeue after a
  pause, so nothing is lost and nothing is acked unwritten;
- any other failure of a batch: its events are applied one at a time, so only the event that
  fails is held back: requeued, and dead-lettered (with the error's class name) once it has
  failed `max_attempts` times, while the others go through;
- a broker restart: deliveries whose channel closed are dropped from the buffer and from the
  batch in hand (RabbitMQ redelivers them on the new channel; applying an event twice changes
  nothing), and no ack, nack or dead-letter on a closed channel can end the flusher;
- the flusher failed anyway and was started again (`lhpn_shared.runtime.Background`): the
  deliveries of the batch it held are requeued first, so none is held forever.

What it holds and settles is reported to the queue's `QueueProgress` (`lhpn_shared.consumers`):
`/readyz` turns 503 when deliveries are held without progress, `/metrics` shows their age.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from faststream.rabbit import RabbitBroker
from faststream.rabbit.message import RabbitMessage

from lhpn_shared.broker import (
    DEFAULT_MAX_ATTEMPTS,
    ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_USER_HEADER,
    SETTLE_SECONDS,
    TRANSIENT_ERRORS,
    Reject,
    dead_letter,
    original_headers,
    sender_of,
    settle,
)
from lhpn_shared.consumers import QueueProgress, delivery_channel, message_key
from lhpn_shared.trust import EventOwners

from .batch import Event, parse_event
from .service import Rebuilding

RETRY_LATER: tuple[type[Exception], ...] = (*TRANSIENT_ERRORS, Rebuilding)
"""Failures after which a batch is requeued whole, nothing acked."""

log = logging.getLogger("aggregation.consumer")

ApplyBatch = Callable[[Sequence[Event]], Awaitable[list[bool]]]
Outcome = Callable[[str, str, int], None]
"""outcome(event type, 'applied' | 'unchanged' | 'rejected', count)"""


class Batcher:
    def __init__(
        self,
        broker: RabbitBroker,
        queue_name: str,
        apply: ApplyBatch,
        *,
        size: int,
        interval: float,
        retry_delay: float = 1.0,
        outcome: Outcome | None = None,
        owners: EventOwners,
        progress: QueueProgress | None = None,
        own_user: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        routed_by: str | None = None,
    ) -> None:
        self._broker = broker
        self._routed_by = routed_by
        """a partition's queue: the exchange the service's own router sends through (what
        arrives from it as the service's own user was admitted by the router already)"""
        self._owners = owners
        self._own_user = own_user
        """this service's broker user: a dead letter it replayed counts as its first sender's"""
        self._max_attempts = max_attempts
        self._queue = queue_name
        self._apply = apply
        self._size = size
        self._interval = interval
        self._retry_delay = retry_delay
        self._outcome = outcome or (lambda _type, _outcome, _n: None)
        self.progress = progress if progress is not None else QueueProgress(queue_name)
        self._buffer: list[RabbitMessage] = []
        self._in_hand: list[RabbitMessage] = []
        """the batch being flushed: requeued if the flusher dies holding it"""
        self._parsed: dict[int, Event | Reject] = {}
        """each buffered delivery (by id) parsed, or why it cannot be"""
        self._settled: dict[int, tuple[Any, Settled]] = {}
        """per channel (by id): the channel and its settled delivery tags"""
        self._arrived_at: list[float] = []
        """when each buffered delivery arrived: a batch waits at most `interval` for the first"""
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._stopped = False
        self.batches = 0

    async def add(self, msg: RabbitMessage) -> None:
        """The subscriber's handler: parse the delivery (here, while the flusher waits on the
        database) and keep it for the next batch, not acked yet."""
        raw = msg.raw_message
        try:
            if self._from_router(raw):
                self._parsed[id(msg)] = parse_event(raw.body, publisher=None, owners=None)
            else:
                self._parsed[id(msg)] = parse_event(
                    raw.body, publisher=sender_of(raw, self._own_user), owners=self._owners
                )
        except Reject as exc:
            self._parsed[id(msg)] = exc
        except Exception as exc:  # a bug: dead-letter it rather than hold it unsettled
            log.exception("event not parsed", extra={"queue": self._queue})
            self._parsed[id(msg)] = Reject(f"handler error: {type(exc).__name__}")
        self.progress.received(msg)
        self._buffer.append(msg)
        self._arrived_at.append(time.monotonic())
        self._arrived.set()
        if len(self._buffer) >= self._size:
            self._full.set()

    def _from_router(self, raw: Any) -> bool:
        """A partition's delivery sent by the service's own router: through its exchange, as
        the service's own user — directly, or replayed from the partition's DLQ (then the
        exchange and user are those the service recorded when it dead-lettered it, and only the
        service's own user can replay; `lhpn_shared.broker.sender_of`)."""
        if self._routed_by is None or self._own_user is None or raw.user_id != self._own_user:
            return False
        origin = original_headers(raw)
        return (
            origin[ORIGINAL_EXCHANGE_HEADER] == self._routed_by
            and origin[ORIGINAL_USER_HEADER] == self._own_user
        )

    def stop(self) -> None:
        """Ask `run` to flush what is buffered now, without waiting for a batch to fill, and
        return (at shutdown, once the subscriber takes no more deliveries)."""
        self._stopped = True
        self._arrived.set()
        self._full.set()

    async def run(self) -> None:
        """Flush batches until `stop()`, then what is left in the buffer. Started again after a
        failure, it first requeues the batch the failed run held."""
        await self._requeue_in_hand()
        while True:
            if self._stopped and not self._buffer:
                return
            await self._arrived.wait()
            if self._buffer and not self._stopped:
                wait = self._arrived_at[0] + self._interval - time.monotonic()
                if len(self._buffer) < self._size and wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._full.wait(), timeout=wait)
            self._in_hand = self._buffer[: self._size]
            del self._buffer[: self._size]
            del self._arrived_at[: self._size]
            self._full.clear()
            if len(self._buffer) >= self._size:
                self._full.set()
            elif not self._buffer:
                self._arrived.clear()
            if self._in_hand:
                await self._flush(self._in_hand)
            self._in_hand = []

    async def _requeue_in_hand(self) -> None:
        """Give back what a failed run held and did not settle (its channel still open)."""
        held, self._in_hand = self._in_hand, []
        unsettled = [m for m in held if not self._is_settled(m)]
        if unsettled:
            log.warning(
                "flusher started again, requeueing the batch it held",
                extra={"queue": self._queue, "messages": len(unsettled)},
            )
            await self._requeue(unsettled, None)
        for msg in held:
            self._forget(msg)

    def _forget(self, msg: RabbitMessage) -> None:
        self._parsed.pop(id(msg), None)
        self.progress.settled(msg)

    def _live(self, messages: list[RabbitMessage]) -> list[RabbitMessage]:
        """The deliveries whose channel is still open; the others are forgotten (RabbitMQ
        requeued them when their channel closed, and delivers them again)."""
        live = []
        for msg in messages:
            if delivery_channel(msg) is None:
                self._forget(msg)
            else:
                live.append(msg)
        if len(live) < len(messages):
            log.warning(
                "deliveries of a closed channel dropped, the broker redelivers them",
                extra={"queue": self._queue, "messages": len(messages) - len(live)},
            )
        return live

    async def _flush(self, messages: list[RabbitMessage]) -> None:
        accepted: list[tuple[RabbitMessage, Event]] = []
        for msg in self._live(messages):
            parsed = self._parsed.pop(id(msg))
            if isinstance(parsed, Reject):
                await self._reject(msg, str(parsed), "?")
            else:
                accepted.append((msg, parsed))
        if not accepted:
            return
        try:
            changed = await self._apply([event for _, event in accepted])
        except RETRY_LATER as exc:
            await self._requeue([msg for msg, _ in accepted], exc)
            return
        except Exception:
            log.exception("batch failed, applying its events one at a time")
            await self._one_at_a_time(accepted)
            return
        self.batches += 1
        self.progress.applied()
        for (_, event), did in zip(accepted, changed, strict=True):
            self._outcome(event.envelope.type, "applied" if did else "unchanged", 1)
        await self._ack_all([msg for msg, _ in accepted])

    async def _one_at_a_time(self, accepted: list[tuple[RabbitMessage, Event]]) -> None:
        for index, (msg, event) in enumerate(accepted):
            try:
                (did,) = await self._apply([event])
            except RETRY_LATER as exc:
                await self._requeue([m for m, _ in accepted[index:]], exc)
                return
            except Exception as exc:
                attempt = self.progress.attempts.failed(message_key(msg))
                if attempt < self._max_attempts:
                    log.warning(
                        "event failed, requeued",
                        extra={
                            "event_id": str(event.envelope.event_id),
                            "error": repr(exc)[:300],
                            "attempt": attempt,
                            "max_attempts": self._max_attempts,
                        },
                    )
                    await self._nack(msg)
                    continue
                log.exception(
                    "event failed again, dead-lettered",
                    extra={"event_id": str(event.envelope.event_id), "attempts": attempt},
                )
                self.progress.attempts.forget(message_key(msg))
                await self._reject(
                    msg,
                    f"handler error: {type(exc).__name__} (failed {attempt} times)",
                    event.envelope.type,
                    attempts=attempt,
                )
                continue
            self.progress.attempts.forget(message_key(msg))
            self.progress.applied()
            self._outcome(event.envelope.type, "applied" if did else "unchanged", 1)
            await self._ack(msg)

    async def _requeue(self, messages: list[RabbitMessage], exc: BaseException | None) -> None:
        if exc is not None:
            log.warning(
                "batch not stored, requeued",
                extra={
                    "queue": self._queue,
                    "messages": len(messages),
                    "error": type(exc).__name__,
                },
            )
            await asyncio.sleep(self._retry_delay)
        for msg in messages:
            await self._nack(msg)

    async def _reject(
        self, msg: RabbitMessage, reason: str, event_type: str, *, attempts: int | None = None
    ) -> None:
        log.warning(
            "message dead-lettered",
            extra={"queue": self._queue, "message_id": msg.message_id, "reason": reason},
        )
        try:
            await dead_letter(self._broker, msg, self._queue, reason, attempts=attempts)
        except Exception:
            log.exception("could not dead-letter, message requeued", extra={"queue": self._queue})
            await asyncio.sleep(self._retry_delay)
            await self._nack(msg)
            return
        self._outcome(event_type, "rejected", 1)
        await self._ack(msg)

    async def _ack_all(self, messages: list[RabbitMessage]) -> None:
        """Ack a stored batch: one `multiple` ack for the deliveries that follow on from the
        ones already settled, one ack each for the rest (deliveries reach the buffer nearly in
        order, not exactly). Measured: acking one by one, each waiting for its frame to reach
        the socket, took a third of the consumer's time. Deliveries whose channel closed
        meanwhile are left to the broker, which redelivers them."""
        by_channel: dict[int, tuple[Any, list[RabbitMessage]]] = {}
        for msg in messages:
            channel = delivery_channel(msg)
            if channel is None:
                self._forget(msg)
                continue
            by_channel.setdefault(id(channel), (channel, []))[1].append(msg)
        for channel, group in by_channel.values():
            tags = [t for m in group if (t := m.raw_message.delivery_tag) is not None]
            settled = self._settled_on(channel)
            settled.add(tags)
            covered = [t for t in tags if t <= settled.upto]
            try:
                if covered:
                    await asyncio.wait_for(
                        channel.basic_ack(delivery_tag=max(covered), multiple=True, wait=False),
                        timeout=SETTLE_SECONDS,
                    )
                for tag in tags:
                    if tag > settled.upto:
                        await asyncio.wait_for(
                            channel.basic_ack(delivery_tag=tag, wait=False),
                            timeout=SETTLE_SECONDS,
                        )
            except Exception as exc:  # the channel closed or is stuck: the broker redelivers,
                # and applying an event again changes nothing
                log.warning("ack failed", extra={"queue": self._queue, "error": repr(exc)[:200]})
            for msg in group:
                self.progress.settled(msg)

    def _settled_on(self, channel: Any) -> Settled:
        entry = self._settled.get(id(channel))
        if entry is None or entry[0] is not channel:
            self._settled = {k: v for k, v in self._settled.items() if not v[0].is_closed}
            entry = self._settled[id(channel)] = (channel, Settled())
        return entry[1]

    def _mark_settled(self, msg: RabbitMessage) -> None:
        channel = delivery_channel(msg)
        tag = msg.raw_message.delivery_tag
        if channel is not None and tag is not None:
            self._settled_on(channel).add([tag])

    def _is_settled(self, msg: RabbitMessage) -> bool:
        """Settled by this batcher already (so never to be settled twice), or gone with its
        channel."""
        channel = delivery_channel(msg)
        tag = msg.raw_message.delivery_tag
        if channel is None or tag is None:
            return True
        entry = self._settled.get(id(channel))
        return entry is not None and entry[0] is channel and tag in entry[1]

    async def _ack(self, msg: RabbitMessage) -> None:
        self._mark_settled(msg)
        await settle(msg.ack, msg, self._queue)
        self.progress.settled(msg)

    async def _nack(self, msg: RabbitMessage) -> None:
        """Requeue: the broker delivers it again."""
        self._mark_settled(msg)
        await settle(lambda: msg.nack(requeue=True), msg, self._queue)
        self.progress.settled(msg)


class Settled:
    """The delivery tags of one channel that are settled (acked, requeued or dead-lettered).

    Tags count up from 1 per channel: once every tag up to `upto` is settled, one ack with
    `multiple=True` on the highest tag of a batch below `upto` can only ack that batch's own
    deliveries, whatever order they reached the buffer in."""

    def __init__(self) -> None:
        self.upto = 0
        self._above: set[int] = set()

    def add(self, tags: Iterable[int]) -> None:
        self._above.update(t for t in tags if t > self.upto)
        while self.upto + 1 in self._above:
            self.upto += 1
            self._above.remove(self.upto)

    def __contains__(self, tag: int) -> bool:
        return tag <= self.upto or tag in self._above
