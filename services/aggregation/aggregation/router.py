"""The router's use case (`AGGREGATION_PARTITIONS` > 1): it consumes `aggregation.events` (single
active consumer, so in arrival order) and hands each event to its partition's queue
(`routing.Routes` says which), in order, before the batch is acked.

Its state, in the service's database: every unit (`router.units`, the latest revision of each:
the groups of provinces need the whole tree), the events waiting for their unit
(`router.parked`, in arrival order) and, per activity and case, the version it routed last and
where (`router.entities`, `moves.Whereabouts`: read for the entities of each batch), so that a
correction moving one to another partition takes it out of the old one (`moves.place`). A batch
is sent first and recorded after: a crash in between sends its events again, and the same
departures (a writer applies an event twice as once). Another router that took over (the stamp
in `router.meta` is not this one's) is read again before the next batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from uuid import uuid4

from pymongo import DeleteOne, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from lhpn_shared.contracts.units import Unit
from lhpn_shared.mongo import Doc

from .batch import Event, parse_event, state_key, state_of
from .moves import Whereabouts, entity_id, place
from .repository import ID_CHUNK
from .routing import EVERY, Route, Routes

log = logging.getLogger("aggregation.router")

REROUTE_NEEDED = "reroute_needed"
"""`router.meta` document: the provinces a join moved after their events, until `reroute`."""

Send = Callable[[Event, int, str], Awaitable[None]]
"""send(event, partition, key): publish it to that partition's queue, confirmed."""


class RouterStore:
    """The router's documents (`router.units`, `router.parked`, `router.entities`,
    `router.meta`)."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.units = db["router.units"]
        self.parked = db["router.parked"]
        self.entities = db["router.entities"]
        self.meta = db["router.meta"]

    async def load_units(self) -> list[Doc]:
        return await self.units.find({}, batch_size=1000).to_list(None)

    async def load_parked(self) -> list[Doc]:
        return await self.parked.find({}).sort("_id", 1).to_list(None)

    async def load_entities(self, ids: Sequence[str]) -> list[Doc]:
        found: list[Doc] = []
        for start in range(0, len(ids), ID_CHUNK):
            chunk = list(ids[start : start + ID_CHUNK])
            found += await self.entities.find({"_id": {"$in": chunk}}).to_list(None)
        return found

    async def replace_entities(self, entities: Sequence[Doc]) -> None:
        """All the whereabouts at once (a re-routing repair, `reroute`)."""
        await self.entities.delete_many({})
        for start in range(0, len(entities), 1000):
            await self.entities.insert_many(list(entities[start : start + 1000]), ordered=False)

    async def save(
        self,
        units: dict[str, str],
        parked: list[Doc],
        released: list[str],
        entities: Sequence[Doc] = (),
    ) -> None:
        if entities:
            await self.entities.bulk_write(
                [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in entities], ordered=False
            )
        if units:
            await self.units.bulk_write(
                [
                    ReplaceOne({"_id": i}, {"_id": i, "json": j}, upsert=True)
                    for i, j in units.items()
                ],
                ordered=False,
            )
        ops: list[ReplaceOne[Doc] | DeleteOne] = [
            ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in parked
        ]
        ops += [DeleteOne({"_id": i}) for i in released]
        if ops:
            await self.parked.bulk_write(ops, ordered=True)

    async def read_stamp(self) -> str | None:
        doc = await self.meta.find_one({"_id": "stamp"})
        return None if doc is None else str(doc["value"])

    async def write_stamp(self, value: str) -> None:
        await self.meta.replace_one({"_id": "stamp"}, {"value": value}, upsert=True)

    async def mark_reroute_needed(self, provinces: Sequence[str]) -> None:
        """Remember that a join moved `provinces` to other partitions after their events: the
        partitions' answers are wrong until `reroute` (which clears it) has run."""
        await self.meta.update_one(
            {"_id": REROUTE_NEEDED},
            {"$addToSet": {"provinces": {"$each": list(provinces)}}},
            upsert=True,
        )

    async def reroute_needed(self) -> list[str]:
        """The provinces moved since the last `reroute` (none: the partitions are right)."""
        doc = await self.meta.find_one({"_id": REROUTE_NEEDED})
        return sorted(doc.get("provinces", [])) if doc is not None else []

    async def clear_reroute_needed(self, provinces: Sequence[str]) -> None:
        """Forget `provinces` (those a repair read before it started: a move recorded while it
        ran, by a process started by mistake, stays)."""
        await self.meta.update_one(
            {"_id": REROUTE_NEEDED}, {"$pullAll": {"provinces": list(provinces)}}
        )
        await self.meta.delete_one({"_id": REROUTE_NEEDED, "provinces": {"$size": 0}})


@dataclass
class Parked:
    doc_id: str
    event: Event


def waves(sends: Sequence[tuple[Event, Route]]) -> list[list[tuple[Event, Route]]]:
    """The sends in waves that may go out at once: at most one event of an entity per wave, and
    an entity's events in successive waves in their order (a wave's sends are confirmed before
    the next wave's go out). Measured: one confirmed send at a time made the router the
    slowest step."""
    out: list[list[tuple[Event, Route]]] = []
    last: dict[tuple[str, str], int] = {}
    for send in sends:
        entity = state_key(send[0].data)
        at = last.get(entity, -1) + 1
        if at == len(out):
            out.append([])
        out[at].append(send)
        last[entity] = at
    return out


class Router:
    def __init__(
        self,
        store: RouterStore,
        partitions: int,
        send: Send,
        *,
        moved: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.store = store
        self.partitions = partitions
        self._send = send
        self._moved = moved or (lambda provinces: None)
        self.routes: Routes | None = None
        self.parked: list[Parked] = []
        self._seq = 0
        self.stamp: str | None = None

    async def load(self) -> None:
        routes = Routes(self.partitions)
        routes.add_units(state_of(Unit, d) for d in await self.store.load_units())
        routes.count_as_routed()
        self.parked = [
            Parked(str(d["_id"]), parse_event(d["body"].encode(), publisher=None, owners=None))
            for d in await self.store.load_parked()
        ]
        self._seq = max((int(p.doc_id) for p in self.parked), default=0)
        self.routes = routes
        self.stamp = await self.store.read_stamp()

    async def apply(self, events: Sequence[Event]) -> list[bool]:
        """Send each event to its partition, or park it; returns True for each (a routed
        event is never 'unchanged')."""
        if self.routes is None or await self.store.read_stamp() != self.stamp:
            await self.load()
        try:
            return await self._apply(events)
        except BaseException:
            self.routes = None  # what was sent or recorded is unknown: read it again
            raise

    async def _apply(self, events: Sequence[Event]) -> list[bool]:
        routes = self.routes
        assert routes is not None
        sends: list[tuple[Event, Route]] = []
        units: dict[str, str] = {}
        new_parked: list[Parked] = []
        released: list[str] = []
        for event in events:
            if isinstance(event.data, Unit):
                moved = routes.add_units([event.data])
                if moved:
                    # before anything is sent or saved: a crash after the save would route
                    # the batch again over units that no longer show the move
                    await self.store.mark_reroute_needed(moved)
                    log.error(
                        "a reorganisation joined provinces of different partitions after "
                        "their events: stop every aggregation process and run "
                        "`python -m aggregation reroute`",
                        extra={"provinces": moved},
                    )
                    self._moved(moved)
                units[event.data.unit_id] = routes.units[event.data.unit_id].model_dump_json()
            route = routes.route(event.data)
            if route is None:
                self._seq += 1
                parked = Parked(f"{self._seq:012d}", event)
                self.parked.append(parked)
                new_parked.append(parked)
            else:
                sends.append((event, route))
            if isinstance(event.data, Unit) and self.parked:
                still: list[Parked] = []
                for parked in self.parked:
                    placed = routes.route(parked.event.data)
                    if placed is None:
                        still.append(parked)
                        continue
                    sends.append((parked.event, placed))
                    if parked in new_parked:
                        new_parked.remove(parked)
                    else:
                        released.append(parked.doc_id)
                self.parked = still
        sends, whereabouts = await self._placed(sends)
        for wave in waves(sends):
            await asyncio.gather(
                *(
                    self._send(event, partition, route.key)
                    for event, route in wave
                    for partition in (
                        range(self.partitions) if route.partition == EVERY else [route.partition]
                    )
                )
            )
        stored = [{"_id": p.doc_id, "body": p.event.body} for p in new_parked]
        if units or stored or released:
            await self.store.save(units, stored, released, whereabouts)
            self.stamp = uuid4().hex
            await self.store.write_stamp(self.stamp)
        elif whereabouts:  # read per batch, never kept: no new stamp needed
            await self.store.save({}, [], [], whereabouts)
        return [True] * len(events)

    async def _placed(
        self, sends: list[tuple[Event, Route]]
    ) -> tuple[list[tuple[Event, Route]], list[Doc]]:
        """The sends with each activity's and case's moves between partitions taken into
        account (`moves.place`), and the entities' new whereabouts to record."""
        ids = sorted({i for event, _ in sends if (i := entity_id(event.data)) is not None})
        last = {str(d["_id"]): Whereabouts.of_doc(d) for d in await self.store.load_entities(ids)}
        changed: set[str] = set()
        out: list[tuple[Event, Route]] = []
        for event, route in sends:
            entity = entity_id(event.data)
            before = last.get(entity) if entity is not None else None
            placed, after = place(event, route, before)
            out += placed
            if entity is None or after is None or after == before:
                continue
            last[entity] = after
            changed.add(entity)
            if len(placed) > 1:
                log.info(
                    "a correction moved an entity to another partition",
                    extra={"entity": entity, "partition": after.partition},
                )
        return out, [last[i].to_doc(i) for i in sorted(changed)]
