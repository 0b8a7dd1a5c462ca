"""What each consumer queue of a service holds, and whether it moves.

A consumer with `AckPolicy.MANUAL` holds every delivery from the moment it arrives until it
settles it (ack, requeue or dead-letter). Held deliveries that stop being settled are the worst
failure an event-driven read model can have: the queue looks consumed, the answers go stale, and
nothing else notices. So every consumer reports here what it receives and what it settles —
`process_delivery` for the per-message consumers, aggregation's batcher for its batches — and
`/readyz` and `/metrics` read it:

- held: deliveries received and not settled yet (a delivery whose channel closed is no longer
  held: the broker has put it back in the queue);
- the age of the oldest held delivery;
- stalled: something is held and nothing was settled for longer than the configured time;
- when a batch (for a per-message consumer: a message) was last applied.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from aiormq.exceptions import ChannelInvalidStateError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

Clock = Callable[[], float]


def delivery_channel(msg: Any) -> Any | None:
    """The channel a delivery came on, or None once it closed (RabbitMQ requeued the delivery
    then, and the only thing left to do with it is to forget it).

    aio-pika's `IncomingMessage.channel` raises `ChannelInvalidStateError` on a closed channel:
    never read it unguarded in code that must keep running across a broker restart."""
    try:
        channel = msg.raw_message.channel
    except ChannelInvalidStateError:
        return None
    return None if channel.is_closed else channel


def message_key(msg: Any) -> str:
    """What identifies a message across its redeliveries: its `message_id` (our `event_id`),
    or a digest of its body when it has none."""
    raw = msg.raw_message
    if raw.message_id:
        return f"id:{raw.message_id}"
    return "body:" + hashlib.sha256(raw.body or b"").hexdigest()


class Attempts:
    """How many times each message has failed in this consumer, so that one failing the same
    way again and again is dead-lettered after a bounded number of attempts (RabbitMQ's classic
    queues count no deliveries; a requeued message comes straight back).

    Kept in memory, at most `capacity` messages (the oldest forgotten first): a message failing
    in several replicas is tried at most `max_attempts` times in each; one that kills the process
    itself is not counted (the run command's restart log shows it)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._failures: OrderedDict[str, int] = OrderedDict()
        self._capacity = capacity

    def failed(self, key: str) -> int:
        """Count one more failure of `key`; returns how many so far."""
        count = self._failures.pop(key, 0) + 1
        self._failures[key] = count
        while len(self._failures) > self._capacity:
            self._failures.popitem(last=False)
        return count

    def forget(self, key: str) -> None:
        """It succeeded, or was dead-lettered."""
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)


class QueueProgress:
    """The deliveries one consumer queue holds, and when it last made progress."""

    def __init__(self, queue: str, *, now: Clock = time.monotonic, wall: Clock = time.time):
        self.queue = queue
        self.attempts = Attempts()
        """failures per message, for the bound on attempts (`broker.process_delivery`)"""
        self._now = now
        self._wall = wall
        self._held: dict[int, tuple[Any, float, int]] = {}
        """id(raw delivery) -> (the delivery, when it arrived, id of its channel), in the order
        they arrived"""
        self._channels: dict[int, Any] = {}
        """id -> the channels deliveries came on (None: closed when the delivery arrived), kept
        until they close, even with nothing held on them"""
        self._last_settled = now()
        self.last_applied_at: float | None = None
        """Unix time of the last batch applied (a per-message consumer: the last message)."""
        self.received_total = 0
        self.settled_total = 0
        self.redelivered_total = 0
        """deliveries the broker marked as delivered before (requeued, or held by a consumer,
        a channel or a process that went away): what failures cost in work done again"""

    def received(self, msg: Any) -> None:
        channel = delivery_channel(msg)
        self._channels.setdefault(id(channel), channel)
        self._held[id(msg.raw_message)] = (msg, self._now(), id(channel))
        self.received_total += 1
        if getattr(msg.raw_message, "redelivered", False):
            self.redelivered_total += 1

    def settled(self, msg: Any) -> None:
        """The delivery was acked, requeued or dead-lettered — or given up because its channel
        closed. Either way this consumer no longer holds it."""
        if self._held.pop(id(msg.raw_message), None) is not None:
            self.settled_total += 1
            self._last_settled = self._now()

    def applied(self) -> None:
        """A batch (or a message) was written to the service's state."""
        self.last_applied_at = self._wall()

    def _prune(self) -> None:
        """Forget deliveries whose channel closed: the broker redelivers them. A consumer holds
        thousands of deliveries on a channel or two: a scrape asks each channel, not each
        delivery (the deliveries are walked only when a channel closed)."""
        closed = {k for k, ch in self._channels.items() if ch is None or ch.is_closed}
        if not closed:
            return
        self._held = {k: v for k, v in self._held.items() if v[2] not in closed}
        for key in closed:
            del self._channels[key]

    def _oldest(self) -> float | None:
        """When the oldest held delivery arrived (the first held: they are kept in order)."""
        self._prune()
        for _, at, _ in self._held.values():
            return at
        return None

    def held(self) -> int:
        self._prune()
        return len(self._held)

    def oldest_age(self) -> float:
        """Seconds the oldest held delivery has waited; 0 when nothing is held."""
        oldest = self._oldest()
        return 0.0 if oldest is None else max(0.0, self._now() - oldest)

    def idle_for(self) -> float:
        """Seconds since something was held and nothing settled; 0 when nothing is held."""
        oldest = self._oldest()
        if oldest is None:
            return 0.0
        return max(0.0, self._now() - max(oldest, self._last_settled))

    def stalled(self, limit: float) -> bool:
        """Deliveries held and none settled for longer than `limit` seconds."""
        return self.idle_for() > limit


class Consumers:
    """The consumer queues of one service process (one per subscriber)."""

    def __init__(self, *, now: Clock = time.monotonic, wall: Clock = time.time) -> None:
        self._queues: dict[str, QueueProgress] = {}
        self._now, self._wall = now, wall

    def queue(self, name: str) -> QueueProgress:
        if name not in self._queues:
            self._queues[name] = QueueProgress(name, now=self._now, wall=self._wall)
        return self._queues[name]

    def __iter__(self) -> Iterator[QueueProgress]:
        return iter(list(self._queues.values()))

    def stalled(self, limit: float) -> list[str]:
        """The queues holding deliveries without progress for longer than `limit` seconds."""
        return [q.queue for q in self if q.stalled(limit)]


class ConsumerMetrics(Collector):
    """`/metrics` for the consumers, read at scrape time."""

    def __init__(self, service: str, consumers: Consumers) -> None:
        self.service = service
        self.consumers = consumers

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        labels = ["service", "queue"]
        redelivered = CounterMetricFamily(
            "lhpn_consumer_redelivered",
            "Deliveries the broker had delivered before: requeued after a failure or an outage, "
            "or held by a consumer, channel or process that went away",
            labels=labels,
        )
        held = GaugeMetricFamily(
            "lhpn_consumer_unacked_messages",
            "Deliveries received by the consumer and not settled yet",
            labels=labels,
        )
        oldest = GaugeMetricFamily(
            "lhpn_consumer_oldest_unacked_age_seconds",
            "Age of the oldest delivery the consumer holds unacknowledged (0: none)",
            labels=labels,
        )
        idle = GaugeMetricFamily(
            "lhpn_consumer_stalled_seconds",
            "Seconds the consumer has held deliveries without settling any (0: none held)",
            labels=labels,
        )
        applied = GaugeMetricFamily(
            "lhpn_consumer_last_batch_applied_timestamp_seconds",
            "Unix time of the last batch applied to the read models (per-message consumers: "
            "the last message)",
            labels=labels,
        )
        for q in self.consumers:
            key = [self.service, q.queue]
            held.add_metric(key, q.held())
            oldest.add_metric(key, q.oldest_age())
            idle.add_metric(key, q.idle_for())
            if q.last_applied_at is not None:
                applied.add_metric(key, q.last_applied_at)
            redelivered.add_metric(key, q.redelivered_total)
        yield from (held, oldest, idle, applied, redelivered)
