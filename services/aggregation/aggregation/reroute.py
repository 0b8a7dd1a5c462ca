"""The repair after a reorganisation joined provinces of two partitions after events of theirs
were routed (`AGGREGATION_PARTITIONS` > 1; the router logs it and counts
`lhpn_aggregation_partition_moves_total`): every partition rebuilt from the events of every
partition, each routed again with the unit groups as they are now.

`python -m aggregation reroute`, with every aggregation process stopped (the routers and the
writers; the command refuses while a partition queue has a consumer, and while a partition's
dead-letter queue holds messages: replayed after the repair they would skip the router). It
takes:

- every partition's archive, and what still waits in the partition queues (held unacked by
  the command, acked once everything is stored, before the rebuild flags are cleared), each
  event once (by `event_id`), without the
  departures (`aggregation.departed`): they are made again;
- the units as the router keeps them (`router.units`: the whole tree, so the groups are the
  final ones), and a fresh memory of where each activity and case went (`router.entities`,
  replaced at the end).

It routes them with the router's own code (`Router`, over an in-memory router store), and each
partition's writer applies its share into emptied read models and archives it (the rebuild
flag is set meanwhile: a consumer started by mistake requeues its batches). The old archive
documents are dropped only once every partition is written, so a repair that fails can simply
be run again: it reads the old documents and the new ones, each event once. The writers are
order-tolerant (revisions), so reading partition after partition gives the documents one
stream would have given. Events parked by the router (`router.parked`) stay parked; the router
releases them as before, with the new memory.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from uuid import UUID, uuid4

from lhpn_shared.broker import Reject
from lhpn_shared.clock import Clock
from lhpn_shared.mongo import Doc

from .batch import Event, parse_event
from .domain.facts import Departed
from .repository import AggregationStore
from .router import Router, RouterStore
from .writer import Writer

log = logging.getLogger("aggregation.reroute")


class _Routed:
    """The router's store, in memory: the units read once, nothing parked, the entities'
    whereabouts as they are routed again."""

    def __init__(self, units: list[Doc]) -> None:
        self.units = units
        self.entities: dict[str, Doc] = {}
        self.stamp = "reroute"

    async def load_units(self) -> list[Doc]:
        return self.units

    async def load_parked(self) -> list[Doc]:
        return []

    async def load_entities(self, ids: Sequence[str]) -> list[Doc]:
        return [self.entities[i] for i in ids if i in self.entities]

    async def save(
        self,
        units: dict[str, str],
        parked: list[Doc],
        released: list[str],
        entities: Sequence[Doc] = (),
    ) -> None:
        if parked:
            raise RuntimeError(
                f"{len(parked)} archived events name a unit the router does not know "
                "(router.units): the repair stops here, the old archives are kept; run it "
                "again once the units are there"
            )
        self.entities.update({str(d["_id"]): d for d in entities})

    async def read_stamp(self) -> str | None:
        return self.stamp

    async def write_stamp(self, value: str) -> None:
        self.stamp = value

    async def mark_reroute_needed(self, provinces: Sequence[str]) -> None:
        """Never: the units are read once, as they are now, so nothing moves."""


async def reroute(
    stores: Sequence[AggregationStore],
    router_store: RouterStore,
    clock: Clock,
    *,
    batch_size: int,
    in_flight: Iterable[bytes] = (),
    taken: Callable[[], Awaitable[None]] | None = None,
) -> list[int]:
    """Rebuild every partition (`stores[k]` is partition k's) from every partition's events
    routed again; returns how many events each partition was given. `taken` (the queues' ack
    of `in_flight`) is awaited once everything is stored but before the replacement ends: if
    it fails, the rebuild flags are still set and the old archives kept, so the repair can be
    run again (the in-flight events it stored are in the new archives)."""
    partitions = len(stores)
    writers = [Writer(store, clock) for store in stores]
    moved = await router_store.reroute_needed()  # what this repair mends
    routed = _Routed(await router_store.load_units())
    pending: list[list[Event]] = [[] for _ in stores]
    given = [0] * partitions

    async def send(event: Event, partition: int, key: str) -> None:
        pending[partition].append(event)

    router = Router(routed, partitions, send)  # type: ignore[arg-type]  # the same methods
    await router.load()  # the units, before anything is dropped
    old = [await writer.begin_replace() for writer in writers]
    seen: set[UUID] = set()
    batch: list[Event] = []

    async def flush(final: bool) -> None:
        if batch:
            await router.apply(batch)
            batch.clear()
        for k, writer in enumerate(writers):
            while len(pending[k]) >= batch_size or (final and pending[k]):
                chunk = pending[k][:batch_size]
                del pending[k][:batch_size]
                await writer.apply_replacing(chunk)
                given[k] += len(chunk)

    def take(body: str) -> None:
        try:
            event = parse_event(body.encode("utf-8"), publisher=None, owners=None)
        except Reject as exc:  # archived events were valid when they arrived
            log.warning("archived event skipped", extra={"reason": str(exc)})
            return
        if isinstance(event.data, Departed) or event.envelope.event_id in seen:
            return
        seen.add(event.envelope.event_id)
        batch.append(event)

    for store, ids in zip(stores, old, strict=True):
        async for bodies in store.archived(ids):
            for body in bodies:
                take(body)
            if len(batch) >= batch_size:
                await flush(final=False)
    for raw in in_flight:
        take(raw.decode("utf-8"))
    await flush(final=True)
    await router_store.replace_entities(list(routed.entities.values()))
    if taken is not None:
        await taken()
    for writer, ids in zip(writers, old, strict=True):
        await writer.end_replace(ids)
    await router_store.write_stamp(uuid4().hex)
    await router_store.clear_reroute_needed(moved)
    log.info("partitions rerouted", extra={"events": given, "events_read": len(seen)})
    return given
