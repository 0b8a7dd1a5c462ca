"""The event consumer's batching: the subscriber only parses and buffers deliveries
(AckPolicy.MANUAL); a flusher task applies them as one batch and acks them only once the batch
is stored — with one `multiple` ack when the batch follows on from what is already settled.

- a message that is not a consumable event is dead-lettered with `x-rejection-reason` at once;
- the database is down (or a rebuild is running): the batch is nacked with requeue after a
  pause, so nothing is lost and nothing is acked unwritten;
- any other failure of a batch: its events are applied one at a time, so only the event that
  fails is dead-lettered (with the error's class name) and the others go through.
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

from lhpn_shared.broker import TRANSIENT_ERRORS, Reject, dead_letter
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
    ) -> None:
        self._broker = broker
        self._owners = owners
        self._queue = queue_name
        self._apply = apply
        self._size = size
        self._interval = interval
        self._retry_delay = retry_delay
        self._outcome = outcome or (lambda _type, _outcome, _n: None)
        self._buffer: list[RabbitMessage] = []
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
        try:
            self._parsed[id(msg)] = parse_event(
                msg.raw_message.body, publisher=msg.raw_message.user_id, owners=self._owners
            )
        except Reject as exc:
            self._parsed[id(msg)] = exc
        self._buffer.append(msg)
        self._arrived_at.append(time.monotonic())
        self._arrived.set()
        if len(self._buffer) >= self._size:
            self._full.set()

    def stop(self) -> None:
        """Ask `run` to return after the batch in hand (the rest is requeued by the broker)."""
        self._stopped = True
        self._arrived.set()
        self._full.set()

    async def run(self) -> None:
        while not self._stopped:
            await self._arrived.wait()
            if self._stopped:
                return
            wait = self._arrived_at[0] + self._interval - time.monotonic()
            if len(self._buffer) < self._size and wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), timeout=wait)
            batch = self._buffer[: self._size]
            del self._buffer[: self._size]
            del self._arrived_at[: self._size]
            self._full.clear()
            if len(self._buffer) >= self._size:
                self._full.set()
            elif not self._buffer:
                self._arrived.clear()
            if batch:
                await self._flush(batch)

    async def _flush(self, messages: list[RabbitMessage]) -> None:
        accepted: list[tuple[RabbitMessage, Event]] = []
        for msg in messages:
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
                log.exception("event failed", extra={"event_id": str(event.envelope.event_id)})
                await self._reject(msg, f"handler error: {type(exc).__name__}", event.envelope.type)
                continue
            self._outcome(event.envelope.type, "applied" if did else "unchanged", 1)
            await self._ack(msg)

    async def _requeue(self, messages: list[RabbitMessage], exc: BaseException) -> None:
        log.warning(
            "batch not stored, requeued",
            extra={"queue": self._queue, "messages": len(messages), "error": type(exc).__name__},
        )
        await asyncio.sleep(self._retry_delay)
        for msg in messages:
            self._mark_settled(msg)
            with contextlib.suppress(Exception):  # a closed channel requeues them anyway
                await msg.nack(requeue=True)

    async def _reject(self, msg: RabbitMessage, reason: str, event_type: str) -> None:
        log.warning(
            "message dead-lettered",
            extra={"queue": self._queue, "message_id": msg.message_id, "reason": reason},
        )
        try:
            await dead_letter(self._broker, msg, self._queue, reason)
        except Exception:
            log.exception("could not dead-letter, message requeued", extra={"queue": self._queue})
            await asyncio.sleep(self._retry_delay)
            self._mark_settled(msg)
            with contextlib.suppress(Exception):
                await msg.nack(requeue=True)
            return
        self._outcome(event_type, "rejected", 1)
        await self._ack(msg)

    async def _ack_all(self, messages: list[RabbitMessage]) -> None:
        """Ack a stored batch: one `multiple` ack for the deliveries that follow on from the
        ones already settled, one ack each for the rest (deliveries reach the buffer nearly in
        order, not exactly). Measured: acking one by one, each waiting for its frame to reach
        the socket, took a third of the consumer's time."""
        by_channel: dict[int, list[RabbitMessage]] = {}
        for msg in messages:
            by_channel.setdefault(id(msg.raw_message.channel), []).append(msg)
        for group in by_channel.values():
            channel = group[0].raw_message.channel
            tags = [t for m in group if (t := m.raw_message.delivery_tag) is not None]
            settled = self._settled_on(channel)
            settled.add(tags)
            covered = [t for t in tags if t <= settled.upto]
            try:
                if covered:
                    await channel.basic_ack(delivery_tag=max(covered), multiple=True, wait=False)
                for tag in tags:
                    if tag > settled.upto:
                        await channel.basic_ack(delivery_tag=tag, wait=False)
            except Exception as exc:  # the channel closed: the broker redelivers, and
                # applying an event again changes nothing
                log.warning("ack failed", extra={"queue": self._queue, "error": repr(exc)[:200]})

    def _settled_on(self, channel: Any) -> Settled:
        entry = self._settled.get(id(channel))
        if entry is None or entry[0] is not channel:
            self._settled = {k: v for k, v in self._settled.items() if not v[0].is_closed}
            entry = self._settled[id(channel)] = (channel, Settled())
        return entry[1]

    def _mark_settled(self, msg: RabbitMessage) -> None:
        raw = msg.raw_message
        if raw.delivery_tag is not None:
            self._settled_on(raw.channel).add([raw.delivery_tag])

    async def _ack(self, msg: RabbitMessage) -> None:
        self._mark_settled(msg)
        try:
            await msg.ack()
        except Exception as exc:  # the channel closed: the broker redelivers
            log.warning("ack failed", extra={"queue": self._queue, "error": repr(exc)[:200]})


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
