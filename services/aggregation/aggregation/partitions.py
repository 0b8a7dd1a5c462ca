"""The broker side of partitions (`AGGREGATION_PARTITIONS` > 1): the partition queues, their
declaration, and the router's way of sending to them.

`aggregation.events` stays the queue every owner's events arrive on; with N partitions it is
consumed by the router (one active at a time), which sends each event through the service's own
direct exchange `aggregation.partitions` to `aggregation.events.p<k>` (bound with `<k>`), each
with a single active consumer: the writer of partition k. The router computes k itself
(`routing`), so no broker plugin is needed; the key it used travels in `lhpn-partition-key`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import ChannelClosed
from faststream.rabbit import RabbitBroker, RabbitQueue

from lhpn_shared.broker import (
    AGGREGATION_PARTITIONS,
    DEAD_LETTERS,
    REPLAY,
    consumer_queue,
    dead_letter_queue,
)

from .batch import Event
from .router import Send
from .routing import PARTITION_HEADER


def partition_queue_name(partition: int) -> str:
    return f"aggregation.events.p{partition}"


def partition_queue(partition: int) -> RabbitQueue:
    """Durable, dead-lettering into `<name>.dlq`, one active consumer (order per entity)."""
    return consumer_queue(
        partition_queue_name(partition), str(partition), single_active_consumer=True
    )


def partition_queue_names(partitions: int) -> list[str]:
    """The partition queues (none when the stream is not partitioned: `aggregation.events`)."""
    return [partition_queue_name(k) for k in range(partitions)] if partitions > 1 else []


async def declare_partitions(broker: RabbitBroker, partitions: int) -> None:
    """The exchange, every partition queue with its DLQ and bindings (idempotent): declared by
    the router before it sends, so nothing it sends is dropped for want of a queue. Each queue
    is also bound on `lhpn.replay` with its own name, as every consumer queue is: an operator
    replays its dead letters to it (`lhpn_shared.dead_letters`)."""
    exchange = await broker.declare_exchange(AGGREGATION_PARTITIONS)
    dlx = await broker.declare_exchange(DEAD_LETTERS)
    replay = await broker.declare_exchange(REPLAY)
    for partition in range(partitions):
        queue = partition_queue(partition)
        dlq = await broker.declare_queue(dead_letter_queue(queue.name))
        await dlq.bind(dlx, routing_key=queue.name)
        declared = await broker.declare_queue(queue)
        await declared.bind(exchange, routing_key=str(partition))
        await declared.bind(replay, routing_key=queue.name)


def sender(broker: RabbitBroker, partitions: int) -> Send:
    """The router's `send`: persistent, confirmed, the event's id as `message_id`."""
    declared = False

    async def send(event: Event, partition: int, key: str) -> None:
        nonlocal declared
        if not declared:
            await declare_partitions(broker, partitions)
            declared = True
        await broker.publish(
            event.body.encode("utf-8"),
            exchange=AGGREGATION_PARTITIONS,
            routing_key=str(partition),
            headers={PARTITION_HEADER: key},
            persist=True,
            content_type="application/json",
            message_id=str(event.envelope.event_id),
        )

    return send


class RerouteRefused(Exception):
    """`reroute` cannot start: the message says why and what the operator does first."""


class PartitionsBusy(RerouteRefused):
    """A partition queue has a consumer: an aggregation process is running."""


class PartitionDeadLetters(RerouteRefused):
    """A partition's dead-letter queue holds messages: replayed after a repair that changed the
    groups, they would go straight to a partition the router no longer sends them to."""


@dataclass
class Held:
    """What `held_partition_queues` took: the bodies, and `ack` to remove them from the queues
    once they are stored elsewhere (`reroute` calls it before it ends the replacement)."""

    bodies: list[bytes]
    _messages: list[AbstractIncomingMessage]
    _acked: bool = False

    async def ack(self) -> None:
        if not self._acked:
            for message in self._messages:
                await message.ack()
            self._acked = True


async def _existing_queues(connection: AbstractConnection, partitions: int) -> list[str]:
    """The partition queues that exist, checked on throwaway channels (a passive declare of a
    missing queue closes its channel): refuses while one has a consumer or a partition's
    dead-letter queue holds messages."""
    existing: list[str] = []
    dead_letters: list[tuple[str, int, str]] = []
    channel = await connection.channel()
    for partition in range(partitions):
        name = partition_queue_name(partition)
        for queue_name in (name, dead_letter_queue(name).name):
            try:
                queue = await channel.declare_queue(queue_name, passive=True)
            except ChannelClosed:  # not declared yet: nothing was ever sent to it
                channel = await connection.channel()
                continue
            result = queue.declaration_result
            if queue_name == name:
                if result.consumer_count:
                    raise PartitionsBusy(
                        f"{name} has {result.consumer_count} consumer(s): stop every "
                        "aggregation process before the repair"
                    )
                existing.append(name)
            elif result.message_count:
                dead_letters.append((queue_name, result.message_count, name))
    await channel.close()
    if dead_letters:
        waiting = ", ".join(f"{dlq} ({count} message(s))" for dlq, count, _ in dead_letters)
        first = dead_letters[0][2]
        raise PartitionDeadLetters(
            f"dead letters wait in {waiting}: replay them with the aggregation processes "
            f"running (lhpn dead-letters replay {first}) or purge them (lhpn dead-letters "
            f"purge {first}), then stop the processes and run the repair"
        )
    return existing


@contextlib.asynccontextmanager
async def held_partition_queues(url: str, partitions: int) -> AsyncIterator[Held]:
    """What waits in the partition queues (`reroute`'s in-flight events), held unacknowledged
    on a connection of its own: acked by `Held.ack` (or when the block ends without an error),
    given back otherwise (the connection closes). Refuses (`RerouteRefused`) while a partition
    queue has a consumer (a process running would take messages the repair must see) or a
    partition dead-letter queue holds messages; a queue never declared is empty. Every check
    comes first, so the messages are taken on one channel that nothing closes."""
    connection = await aio_pika.connect(url)
    async with connection:
        names = await _existing_queues(connection, partitions)
        channel = await connection.channel()
        messages: list[AbstractIncomingMessage] = []
        for name in names:
            queue = await channel.declare_queue(name, passive=True)
            while (message := await queue.get(no_ack=False, fail=False)) is not None:
                messages.append(message)
        held = Held([m.body for m in messages], messages)
        yield held
        await held.ack()
