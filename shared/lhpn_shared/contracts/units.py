"""Organisation units (SPEC §2) and the tree queries every service needs.

Units change over time (SPEC §2: merges, splits; since 1 July 2025 two tiers, no districts).
A unit's id never changes meaning: each unit has one parent and one validity interval
(`valid_from`..`valid_to`, both inclusive, `None` = open). A reorganisation closes units and
opens others, and records the lineage on both sides: the closed unit lists its `successors`,
the new one its `predecessors`, each link with the day the change took effect (the successor's
first day). The tree valid on a day is the units valid that day (`UnitTree.as_of`).

A rename keeps the unit (same id, same records) and remembers the name it bore before in
`former_names`, so the tree of an earlier day shows the earlier name. When a unit is gone, the
units answerable for its records on a later day are its successors valid that day, or, for a
unit dissolved without successors (the districts in July 2025), those answerable for its
parent (`UnitTree.responsible`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field


class UnitLevel(StrEnum):
    national = "national"
    province = "province"
    district = "district"
    commune = "commune"


class LineageChange(StrEnum):
    MERGE = "merge"
    """several units became one"""
    SPLIT = "split"
    """one unit became several"""
    SUCCEED = "succeed"
    """one unit became one other (e.g. re-coded under a new parent when districts ended)"""


class UnitLink(BaseModel):
    """One edge of a unit's lineage."""

    unit_id: str = Field(min_length=1, max_length=32)
    on: date = Field(description="the day the change took effect: the successor's first day")
    change: LineageChange


LEVEL_RANK: dict[UnitLevel, int] = {
    UnitLevel.national: 0,
    UnitLevel.province: 1,
    UnitLevel.district: 2,
    UnitLevel.commune: 3,
}
"""A unit's parent has a lower rank than the unit (a commune may sit under a province)."""


class FormerName(BaseModel):
    """A name a unit bore up to and including `until` (then it was renamed)."""

    name: str = Field(min_length=1)
    kind: str
    until: date


class Unit(BaseModel):
    unit_id: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1)
    kind: str = Field(description="tỉnh, thành phố, thị xã, huyện, xã, phường, thị trấn…")
    level: UnitLevel
    parent_id: str | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    predecessors: list[UnitLink] = Field(
        default_factory=list, description="units this one continues, with the day it began"
    )
    successors: list[UnitLink] = Field(
        default_factory=list, description="units that continue this one, with the day they began"
    )
    former_names: list[FormerName] = Field(
        default_factory=list, description="earlier names, oldest first, each with its last day"
    )
    revision: int = Field(default=1, ge=1)

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_to is None or day <= self.valid_to
        )

    def valid_during(self, start: date, end: date) -> bool:
        """True when the unit existed on at least one day of [start, end]."""
        return (self.valid_from is None or self.valid_from <= end) and (
            self.valid_to is None or start <= self.valid_to
        )

    def named_on(self, day: date) -> Unit:
        """The unit with the name (and kind) it bore on `day`."""
        for former in self.former_names:
            if day <= former.until:
                return self.model_copy(update={"name": former.name, "kind": former.kind})
        return self


def day_before(day: date) -> date:
    """A unit closed by a change effective on `day` is valid up to the day before."""
    return day - timedelta(days=1)


class UnitTree:
    """An in-memory view of the unit tree: ancestors, subtrees, children."""

    def __init__(self, units: Iterable[Unit]) -> None:
        self.units: dict[str, Unit] = {u.unit_id: u for u in units}
        self._children: dict[str, list[str]] = {}
        for u in self.units.values():
            if u.parent_id is not None:
                self._children.setdefault(u.parent_id, []).append(u.unit_id)
        for kids in self._children.values():
            kids.sort()

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self.units

    def get(self, unit_id: str) -> Unit | None:
        return self.units.get(unit_id)

    def children(self, unit_id: str) -> list[str]:
        return list(self._children.get(unit_id, []))

    def ancestors(self, unit_id: str) -> list[str]:
        """Parent first, root last; the unit itself is not included."""
        out: list[str] = []
        seen = {unit_id}
        current = self.units.get(unit_id)
        while current is not None and current.parent_id is not None:
            if current.parent_id in seen:  # a cycle in bad data must not hang a request
                break
            out.append(current.parent_id)
            seen.add(current.parent_id)
            current = self.units.get(current.parent_id)
        return out

    def is_within(self, unit_id: str, root_id: str) -> bool:
        """True when `unit_id` is `root_id` or one of its descendants."""
        return unit_id == root_id or root_id in self.ancestors(unit_id)

    def subtree(self, root_id: str) -> list[str]:
        """`root_id` and all its descendants, depth first."""
        if root_id not in self.units:
            return []
        out: list[str] = []
        stack = [root_id]
        while stack:
            uid = stack.pop()
            out.append(uid)
            stack.extend(reversed(self._children.get(uid, [])))
        return out

    def roots(self) -> list[str]:
        return sorted(u.unit_id for u in self.units.values() if u.parent_id is None)

    def as_of(self, day: date) -> UnitTree:
        """The tree valid on `day`: only the units valid that day, with the names of that day."""
        return UnitTree(u.named_on(day) for u in self.units.values() if u.valid_on(day))

    def responsible(self, unit_id: str, day: date) -> list[str]:
        """The units answerable on `day` for what `unit_id` recorded: itself while it is valid;
        once it is gone, its successors valid that day (following later changes too); for a
        unit dissolved without successors, those answerable for its parent. Empty when nothing
        valid that day continues it (or the unit is unknown, or `day` is before it began)."""
        out: list[str] = []
        seen: set[str] = set()
        stack = [unit_id]
        while stack:
            uid = stack.pop()
            if uid in seen:
                continue
            seen.add(uid)
            unit = self.units.get(uid)
            if unit is None:
                continue
            if unit.valid_on(day):
                if uid not in out:
                    out.append(uid)
                continue
            if unit.valid_from is not None and day < unit.valid_from:
                continue  # not yet there: nothing of it to answer for
            nxt = [link.unit_id for link in unit.successors if link.on <= day]
            if not nxt and unit.parent_id is not None:
                nxt = [unit.parent_id]
            stack.extend(reversed(nxt))
        return out

    def lineage_links(self, unit_id: str, side: str) -> list[tuple[str, UnitLink]]:
        """Every (unit, link) edge on one side ('predecessors' or 'successors') of `unit_id`,
        transitively, nearest first: the unit each edge starts from, and the link."""
        out: list[tuple[str, UnitLink]] = []
        seen = {unit_id}
        frontier = [unit_id]
        while frontier:
            nxt: list[str] = []
            for uid in frontier:
                unit = self.units.get(uid)
                if unit is None:
                    continue
                for link in getattr(unit, side):
                    out.append((uid, link))
                    if link.unit_id not in seen:
                        seen.add(link.unit_id)
                        nxt.append(link.unit_id)
            frontier = nxt
        return out

    def predecessors(self, unit_id: str) -> list[str]:
        """Every unit `unit_id` continues, transitively (nearest first)."""
        return self._lineage(unit_id, "predecessors")

    def successors(self, unit_id: str) -> list[str]:
        """Every unit that continues `unit_id`, transitively (nearest first)."""
        return self._lineage(unit_id, "successors")

    def _lineage(self, unit_id: str, side: str) -> list[str]:
        out: list[str] = []
        seen = {unit_id}
        frontier = [unit_id]
        while frontier:
            nxt: list[str] = []
            for uid in frontier:
                unit = self.units.get(uid)
                if unit is None:
                    continue
                for link in getattr(unit, side):
                    if link.unit_id not in seen:
                        seen.add(link.unit_id)
                        out.append(link.unit_id)
                        nxt.append(link.unit_id)
            frontier = nxt
        return out
