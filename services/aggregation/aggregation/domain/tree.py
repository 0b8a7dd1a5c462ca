"""The unit tree as the rollups follow it: chains of ancestors, lineage with cut-off days, and
the order units are listed in.

Each unit has one parent for its whole life (`lhpn_shared.contracts.units`), so the units under
an ancestor never depend on the day: a reorganisation closes units and opens others. What
depends on the day is which of them are valid, and that is the answers' business.

Lineage is read from both sides: a predecessor's `successors` and a successor's `predecessors`
(events arrive in any order, and one side may be known before the other).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from lhpn_shared.contracts.units import Unit, UnitTree


def chain(tree: UnitTree, unit_id: str) -> list[str]:
    """`unit_id`, then its ancestors, parent first.

    A parent not known yet ends the chain (it is included: its rollup already holds this
    branch, and adds it to its own ancestors once it arrives)."""
    return [unit_id, *tree.ancestors(unit_id)]


def tree_order(tree: UnitTree) -> dict[str, int]:
    """Every known unit's position in the order lists use: depth first from the roots, children
    by id. A unit whose parent is unknown starts a tree of its own."""
    starts = sorted(
        u.unit_id for u in tree.units.values() if u.parent_id is None or u.parent_id not in tree
    )
    order: dict[str, int] = {}
    for start in starts:
        stack = [start]
        while stack:
            unit_id = stack.pop()
            if unit_id in order:  # a cycle in bad data
                continue
            order[unit_id] = len(order)
            stack.extend(reversed(tree.children(unit_id)))
    for unit_id in sorted(tree.units):  # units caught in a cycle of parents
        order.setdefault(unit_id, len(order))
    return order


def day_index(year: int, day: date) -> int:
    """Days since 1 January of `year` (0 for 1 January; negative before it)."""
    return day.toordinal() - date(year, 1, 1).toordinal()


def last_index(year: int) -> int:
    return day_index(year, date(year, 12, 31))


@dataclass
class Lineage:
    """Who continues whom, from both sides of each link: unit → other unit → the day the change
    took effect (the successor's first day)."""

    predecessors: dict[str, dict[str, date]] = field(default_factory=dict)
    successors: dict[str, dict[str, date]] = field(default_factory=dict)

    @classmethod
    def of(cls, units: Iterable[Unit]) -> Lineage:
        lineage = cls()
        stated_by_successor: set[tuple[str, str]] = set()
        units = list(units)
        for unit in units:
            for link in unit.predecessors:
                lineage._link(link.unit_id, unit.unit_id, link.on)
                stated_by_successor.add((link.unit_id, unit.unit_id))
        for unit in units:
            for link in unit.successors:
                if (unit.unit_id, link.unit_id) not in stated_by_successor:
                    lineage._link(unit.unit_id, link.unit_id, link.on)
        return lineage

    def _link(self, before: str, after: str, on: date) -> None:
        if before == after:
            return
        self.predecessors.setdefault(after, {})[before] = on
        self.successors.setdefault(before, {})[after] = on

    def credit_sources(self, unit_id: str, year: int) -> dict[str, int]:
        """The units whose activities `unit_id` is credited with in `year`, each with the last
        day (index in the year) that counts: what a predecessor did before the change, and what
        its own predecessors did before theirs. Several paths to one unit: the latest day."""
        last = last_index(year)
        cutoff: dict[str, int] = {unit_id: last}
        frontier = [unit_id]
        while frontier:
            following: list[str] = []
            for successor in frontier:
                for before, on in self.predecessors.get(successor, {}).items():
                    day = min(cutoff[successor], day_index(year, on) - 1)
                    if day < 0 or day <= cutoff.get(before, -1):
                        continue
                    cutoff[before] = day
                    following.append(before)
            frontier = following
        del cutoff[unit_id]
        return cutoff

    def credited_to(self, unit_id: str, year: int) -> set[str]:
        """The units credited, in `year`, with what `unit_id` does (its successors, theirs…)."""
        out: set[str] = set()
        frontier = [unit_id]
        while frontier:
            following = []
            for before in frontier:
                for after, on in self.successors.get(before, {}).items():
                    if day_index(year, on) > 0 and after not in out and after != unit_id:
                        out.add(after)
                        following.append(after)
            frontier = following
        return out

    def continued_by(self, unit_id: str) -> set[str]:
        """Every unit `unit_id` continues, transitively, whenever the change took effect."""
        out: set[str] = set()
        frontier = [unit_id]
        while frontier:
            following = []
            for current in frontier:
                for before in self.predecessors.get(current, {}):
                    if before not in out and before != unit_id:
                        out.add(before)
                        following.append(before)
            frontier = following
        return out

    def neighbours(self, unit_ids: Iterable[str]) -> set[str]:
        """The units linked to any of `unit_ids`, on either side."""
        out: set[str] = set()
        for unit_id in unit_ids:
            out.update(self.predecessors.get(unit_id, {}))
            out.update(self.successors.get(unit_id, {}))
        return out


def plan_roots(issuer: str, lineage: Lineage) -> frozenset[str]:
    """The units whose subtrees a plan covers: its issuing unit's, and those of every unit the
    issuer continues (`Plan.covers`, with the lineage read from both sides)."""
    return frozenset({issuer} | lineage.continued_by(issuer))


def covered(tree: UnitTree, roots: frozenset[str], unit_id: str) -> bool:
    return any(u in roots for u in chain(tree, unit_id))


def links_of(unit: Unit | None) -> Mapping[str, object]:
    """What of a unit the lineage depends on (to tell whether a revision changed it)."""
    if unit is None:
        return {}
    return {
        "predecessors": sorted((link.unit_id, link.on) for link in unit.predecessors),
        "successors": sorted((link.unit_id, link.on) for link in unit.successors),
    }
