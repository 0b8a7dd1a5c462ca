"""Where an activity or case went, and what the router sends when a correction moves it to
another partition (`AGGREGATION_PARTITIONS` > 1). Pure: no I/O.

An activity or case is routed by its unit; a correction (or a void, or a case's next event)
may name a unit of another partition's province group. The router remembers, per entity, the
version it routed last (`Whereabouts`: revision, void, partition). For each event of an
activity or case, `place` says what to send:

- a newer version to the same partition: the event, as before;
- a newer version to another partition: first a `Departed` of that revision to the old
  partition (its writer applies it as a void, or a case's tombstone: the old contribution goes,
  with the writers' own delta logic), then the event to the new partition, where the entity
  counts from now on;
- an older version (or a duplicate) than the one remembered: to the partition of the version
  remembered, whose writer holds a newer revision and applies it as nothing. Sent to its own
  unit's partition it would be counted there, with nothing to take it out again.

"Newer" is the writers' rule (`domain.facts`): a higher revision, or at the same revision a
void over a record. Reports are keyed by their unit, so they never move.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid5

from pydantic import BaseModel

from lhpn_shared.contracts.activities import Activity
from lhpn_shared.contracts.cases import CaseFacts
from lhpn_shared.contracts.events import ActivityVoided, Envelope

from .batch import DEPARTED, Event, state_key
from .domain.facts import Departed
from .routing import EVERY, Route

DEPARTURES = UUID("5b0c3f57-0d6e-4a63-9d38-6f2f5d0c2a11")
"""Namespace of the departures' event ids: the same move always makes the same id, so a
router that sends a batch again after a crash sends the same departure (applied once)."""


@dataclass(frozen=True)
class Whereabouts:
    """The version of an entity the router routed last, and where it went."""

    revision: int
    void: bool
    partition: int
    key: str

    def to_doc(self, doc_id: str) -> dict[str, object]:
        return {
            "_id": doc_id,
            "r": self.revision,
            "v": self.void,
            "p": self.partition,
            "k": self.key,
        }

    @classmethod
    def of_doc(cls, doc: dict[str, object]) -> Whereabouts:
        return cls(int(str(doc["r"])), bool(doc["v"]), int(str(doc["p"])), str(doc["k"]))


def entity_id(data: BaseModel) -> str | None:
    """`<collection>/<id>` of an activity or case (what can move); None for anything else."""
    if isinstance(data, Activity | ActivityVoided | CaseFacts):
        name, doc_id = state_key(data)
        return f"{name}/{doc_id}"
    return None


def version_of(data: BaseModel) -> tuple[int, bool]:
    """(revision, is a void) of an activity's or case's event."""
    if isinstance(data, Activity):
        return data.revision, data.voided
    if isinstance(data, ActivityVoided):
        return data.revision, True
    if isinstance(data, CaseFacts):
        return data.revision, False
    raise TypeError(f"no version in {type(data).__name__}")


def newer(revision: int, void: bool, than: Whereabouts) -> bool:
    if revision != than.revision:
        return revision > than.revision
    return void and not than.void


Send = tuple[Event, Route]


def place(
    event: Event, route: Route, last: Whereabouts | None
) -> tuple[list[Send], Whereabouts | None]:
    """What to send for an event routed to `route`, given where its entity's latest version
    went (`last`); and the entity's whereabouts after it (None: not an entity that moves)."""
    entity = entity_id(event.data)
    if entity is None or route.partition == EVERY:
        return [(event, route)], None
    revision, void = version_of(event.data)
    if last is None:
        return [(event, route)], Whereabouts(revision, void, route.partition, route.key)
    if not newer(revision, void, last):
        return [(event, Route(last.partition, last.key))], last
    sends: list[Send] = []
    if last.partition != route.partition:
        sends.append(
            (departure(event, entity, revision, route.partition), Route(last.partition, last.key))
        )
    sends.append((event, route))
    return sends, Whereabouts(revision, void, route.partition, route.key)


def departure(event: Event, entity: str, revision: int, to_partition: int) -> Event:
    """The `aggregation.departed` event telling the old partition that `event` moved its
    entity to `to_partition`."""
    name, doc_id = entity.split("/", 1)
    data = Departed.model_validate(
        {"entity": name, "entity_id": doc_id, "revision": revision, "partition": to_partition}
    )
    envelope = Envelope(
        event_id=uuid5(DEPARTURES, f"{event.envelope.event_id}/{to_partition}"),
        type=DEPARTED,
        version=1,
        occurred_at=event.envelope.occurred_at,
        source="aggregation",
        correlation_id=event.envelope.correlation_id,
        data=data.model_dump(mode="json"),
    )
    return Event(envelope, data, envelope.model_dump_json())
