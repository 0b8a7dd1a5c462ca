"""Which partition of the aggregation stream an event belongs to (`AGGREGATION_PARTITIONS` > 1).

Pure: no I/O. The key of an event is its unit's province, where provinces joined by a
reorganisation (a unit of one with a predecessor or successor in the other) count as one and
are named by the smallest province id of the group: a unit's lineage never crosses partitions,
so the credit for what a predecessor did is written by the same writer as the successor's
standing (docs/aggregation.md, "Partitions"). The partition is `crc32(key) mod N`.

- A unit above the provinces (the central union) is in every partition's tree: its
  `unit.upserted` goes to every partition; its own activities, reports and cases go to the
  partition of its own id (the *owner*), and the answers count its own entry once, from there.
- A plan goes to every partition.
- An event whose unit cannot be placed yet (the unit, or an ancestor up to its province, has
  not arrived) is *parked*, in arrival order, and released as soon as the units that place it
  have arrived: so an entity's events still reach its partition in the order they came.
- A reorganisation announced after events of two provinces of different partitions joins them
  into one group: the events routed before went to the other partition. `Routes.add_units`
  reports such provinces (`moved`): the router says so in its logs and metrics, and the
  partitions are repaired by rebuilding them all from their events routed again
  (`reroute`, `python -m aggregation reroute`, every aggregation process stopped).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel

from lhpn_shared.contracts.activities import Activity
from lhpn_shared.contracts.cases import CaseFacts
from lhpn_shared.contracts.events import ActivityVoided
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.reports import Report
from lhpn_shared.contracts.units import Unit, UnitLevel

PARTITION_HEADER = "lhpn-partition-key"
"""The key an event was routed by (the group's province, or a central unit's own id)."""

EVERY = -1
"""`Route.partition` of an event every partition receives."""


def partition_of(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode("utf-8")) % partitions


@dataclass(frozen=True)
class Route:
    partition: int
    """the partition (0…N−1), or `EVERY`"""
    key: str


@dataclass
class Routes:
    """The units as the router knows them (every unit, whole: the partitions each hold a part),
    and the groups of provinces, kept as units arrive (a union-find: joins only)."""

    partitions: int
    units: dict[str, Unit] = field(default_factory=dict)
    _parent: dict[str, str] = field(default_factory=dict)
    """province → a province of its group; a group's root is its smallest id, its key"""
    _members: dict[str, set[str]] = field(default_factory=dict)
    """group key → its provinces"""
    _pending: set[str] = field(default_factory=set)
    """units with lineage not all placed yet (a side, or an ancestor, has not arrived)"""
    _linked_from: dict[str, set[str]] = field(default_factory=dict)
    """unit → the units whose lineage names it"""
    _used: set[str] = field(default_factory=set)
    """group keys an event was routed by"""

    def add_units(self, units: Iterable[Unit]) -> list[str]:
        """Take in arriving units (a revision never goes back); returns the provinces whose
        partition changed after events of theirs were routed, because a reorganisation joined
        their group to one of another partition."""
        changed: list[Unit] = []
        for unit in units:
            stored = self.units.get(unit.unit_id)
            if stored is None or unit.revision > stored.revision:
                self.units[unit.unit_id] = unit
                changed.append(unit)
        moved: list[str] = []
        for unit in changed:
            if unit.level is UnitLevel.province:
                self._find(unit.unit_id)
            links = (*unit.predecessors, *unit.successors)
            if links:
                self._pending.add(unit.unit_id)
            for link in links:
                self._linked_from.setdefault(link.unit_id, set()).add(unit.unit_id)
            self._pending |= self._linked_from.get(unit.unit_id, set())
        if changed:
            for unit_id in sorted(self._pending):
                moved += self._join_lineage(unit_id)
        return sorted(set(moved))

    def count_as_routed(self) -> None:
        """Every province known has had events routed: its own `unit.upserted`, at least. For
        units read back from the router's store (`Router.load`), so that a join after a
        restart or a failover is seen as one, as it is in the session that routed them."""
        for unit in self.units.values():
            if unit.level is UnitLevel.province:
                self._used.add(self._find(unit.unit_id))

    def _join_lineage(self, unit_id: str) -> list[str]:
        """Join the groups of a unit and of its lineage, as far as they can be placed."""
        here = self.province_of(unit_id)
        if here is None:
            return []
        unit = self.units[unit_id]
        moved: list[str] = []
        placed = True
        for link in (*unit.predecessors, *unit.successors):
            there = self.province_of(link.unit_id)
            if there is None:
                placed = False
            elif here and there:
                moved += self._union(here, there)
        if placed:
            self._pending.discard(unit_id)
        return moved

    def _find(self, province: str) -> str:
        parent = self._parent.setdefault(province, province)
        if parent == province:
            self._members.setdefault(province, {province})
            return province
        root = self._find(parent)
        self._parent[province] = root
        return root

    def _union(self, a: str, b: str) -> list[str]:
        """Join two groups; the provinces that moved to another partition with events of
        theirs already routed."""
        ra, rb = self._find(a), self._find(b)
        if ra == rb:
            return []
        key, old = min(ra, rb), max(ra, rb)
        self._parent[old] = key
        members = self._members.pop(old)
        self._members[key] |= members
        if old in self._used:
            self._used.add(key)
            if partition_of(old, self.partitions) != partition_of(key, self.partitions):
                return sorted(members)
        return []

    def province_of(self, unit_id: str) -> str | None:
        """The unit's province; `""` for a unit above the provinces; None while the unit or
        one of its ancestors up to the province has not arrived."""
        seen: set[str] = set()
        current = self.units.get(unit_id)
        while current is not None and current.unit_id not in seen:
            if current.level is UnitLevel.province:
                return current.unit_id
            if current.level is UnitLevel.national:
                return ""
            seen.add(current.unit_id)
            if current.parent_id is None:
                return None
            current = self.units.get(current.parent_id)
        return None

    def key_of(self, province: str) -> str:
        """The key of a province's group (the smallest province id of the group)."""
        return self._find(province)

    def route(self, data: BaseModel) -> Route | None:
        """Where an event goes, or None: park it until its unit can be placed."""
        if isinstance(data, Plan):
            return Route(EVERY, "")
        unit_id = unit_of(data)
        province = self.province_of(unit_id)
        if province is None:
            return None
        if province == "":  # a central unit: in every tree, its own facts at its owner
            if isinstance(data, Unit):
                return Route(EVERY, "")
            return Route(partition_of(unit_id, self.partitions), unit_id)
        key = self.key_of(province)
        self._used.add(key)
        return Route(partition_of(key, self.partitions), key)


def unit_of(data: BaseModel) -> str:
    """The unit an event is about."""
    if isinstance(data, Unit | Activity | ActivityVoided | Report | CaseFacts):
        return data.unit_id
    raise TypeError(f"no unit in {type(data).__name__}")


def owner_of(unit_id: str, partitions: int) -> int:
    """The partition that holds a central unit's own facts (its entry counts from there)."""
    return partition_of(unit_id, partitions)
