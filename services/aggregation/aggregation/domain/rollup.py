"""What the read model keeps per unit and year: its own activity days, and the rollups of its
whole subtree — the answers of any unit are read from its own document, whatever the size of
the subtree below it.

One `UnitYear` per (unit, year), in parts:
- `days`: the unit's own activities, kind → sorted day indexes in the year (one per activity):
  what compliance credits it (and its successors) with;
- `activities`: over the subtree, kind → month `MM` → `{"n": activities, "m": {metric: sum}}`;
- `cases`: over the subtree, `{"s": {MM: month}, "c": {child: {MM: month}}}`, a month being
  `{"received", "overdue", "by_kind": {…}, "by_topic", "by_status", "by_outcome", "by_flag",
  "due": {epoch ms: cases}}` (`due`: open cases not flagged overdue, by next due instant);
- `declared`: over the subtree, report type → period → `{"n": reports, "c": {code: sum}}`;
- one `PlanPart` per plan of the year: every unit of the subtree with its standing (`Entry`),
  grouped by the child it is under, and the counts the answers need, for the subtree and per
  child.

Every count is a nested map of integers added with `add_into`, zeros pruned, so a rollup is the
sum of its contributions whatever order they were added and removed in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.plans import Plan, ReportSchedule, SchedulePeriod, TargetRule
from lhpn_shared.contracts.units import Unit, UnitLevel

from .tree import day_index

Counts = dict[str, Any]
"""A nested map whose leaves are integers."""

SELF = ""
"""The branch of a unit's own entry in its plan part."""


def add_into(target: Counts, source: Mapping[str, Any], sign: int = 1) -> None:
    """target += sign × source, leaf by leaf; zeros and empty maps are removed."""
    for key, value in source.items():
        if type(value) is dict:
            inner = target.get(key)
            if inner is None:
                inner = target[key] = {}
            add_into(inner, value, sign)
            if not inner:
                del target[key]
        elif value:
            total = target.get(key, 0) + sign * value
            if total:
                target[key] = total
            else:
                target.pop(key, None)


Leaves = dict[tuple[str, ...], int]
"""A nested count map flattened: path → integer."""


def add_leaves(target: Counts, leaves: Leaves) -> None:
    """target += leaves, each added at its path; zeros and empty maps are removed."""
    for path, value in leaves.items():
        if not value:
            continue
        nodes = [target]
        node = target
        for key in path[:-1]:
            inner = node.get(key)
            if inner is None:
                inner = node[key] = {}
            nodes.append(inner)
            node = inner
        leaf = path[-1]
        total = node.get(leaf, 0) + value
        if total:
            node[leaf] = total
            continue
        node.pop(leaf, None)
        for depth in range(len(path) - 1, 0, -1):  # prune the maps left empty
            if nodes[depth]:
                break
            del nodes[depth - 1][path[depth - 1]]


def difference(new: Leaves, old: Leaves) -> Leaves:
    """new − old, only the leaves that differ."""
    out = {k: v - old.get(k, 0) for k, v in new.items() if v != old.get(k, 0)}
    out.update({k: -v for k, v in old.items() if k not in new})
    return out


def month_key(day: date) -> str:
    return f"{day.month:02d}"


# --- plans: the shape of a plan part, and a unit's standing in it ---------------------------


@dataclass(frozen=True)
class PlanShape:
    """The targets and the schedule periods of a plan, in the order a plan part lists them."""

    plan: Plan
    periods: tuple[tuple[ReportSchedule, SchedulePeriod], ...]
    any_in_year: tuple[bool, ...]
    """per target: its rule is `any_in_year` (else `each_ended_half_year`)"""
    levels: tuple[frozenset[str], ...]
    """per target: the levels in its scope"""
    kinds: tuple[tuple[str, ...], ...]
    """per target: the activity kinds it counts"""

    @classmethod
    def of(cls, plan: Plan) -> PlanShape:
        return cls(
            plan,
            tuple((s, p) for s in plan.report_schedules for p in s.periods),
            tuple(t.rule is TargetRule.any_in_year for t in plan.targets),
            tuple(frozenset(lv.value for lv in t.levels) for t in plan.targets),
            tuple(tuple(k.value for k in t.activity_kinds) for t in plan.targets),
        )

    @property
    def year(self) -> int:
        return self.plan.year

    def period_index(self, report_type: str, period: str) -> int | None:
        for index, (schedule, p) in enumerate(self.periods):
            if schedule.report_type == report_type and p.period == period:
                return index
        return None

    def first_half_end(self) -> int:
        """Index of 30 June: the last day of the first half-year."""
        return day_index(self.year, date(self.year, 6, 30))


def last_day_on_time(due_at: datetime) -> date:
    """The last local day a report that is due before `due_at` can still be sent on time."""
    return (due_at.astimezone(LOCAL_TZ) - timedelta(microseconds=1)).date()


NOT_EXPECTED, MISSING, ON_TIME, LATE = "-", "m", "o", "l"


@dataclass(frozen=True)
class Entry:
    """A unit's standing in a plan: what its ancestors count and list it by.

    - `name`, `level`, `parent_id`: as the unit is now (for the lists);
    - `valid`: the days of the plan year it is valid on (first, last index), None if none;
    - `targets`, one per target of the plan: None when the unit's level is not in the target's
      scope; for `any_in_year`, the day index it met the target on (−1: not met in the year);
      for `each_ended_half_year`, `(first half met, second half met)` as 0/1;
    - `reports`, one character per schedule period of the plan: `-` not expected, `m` expected
      and missing, `o` received on time, `l` received late.
    """

    name: str
    level: str
    parent_id: str | None
    valid: tuple[int, int] | None
    targets: tuple[int | tuple[int, int] | None, ...]
    reports: str

    def to_json(self) -> list[Any]:
        first, last = self.valid if self.valid is not None else (None, None)
        targets = [list(t) if isinstance(t, tuple) else t for t in self.targets]
        return [self.name, self.level, self.parent_id, first, last, targets, self.reports]

    @classmethod
    def from_json(cls, raw: list[Any]) -> Entry:
        name, level, parent_id, first, last, targets, reports = raw
        return cls(
            name=name,
            level=level,
            parent_id=parent_id,
            valid=None if first is None else (first, last),
            targets=tuple(tuple(t) if isinstance(t, list) else t for t in targets),
            reports=reports,
        )

    def contribution(self, shape: PlanShape) -> Leaves:
        """What this entry adds to a summary, flattened: per target, per validity interval,
        the units in scope (`n`) and when they met it (`m`: day → units; for half-years `h1`
        and `hb`, both halves); per schedule period, expected, received and on time."""
        out: Leaves = {}
        if self.valid is not None:
            interval = f"{self.valid[0]}:{self.valid[1]}"
            for index, value in enumerate(self.targets):
                if value is None:
                    continue
                key = str(index)
                out[("t", key, interval, "n")] = 1
                if isinstance(value, int):
                    if value >= 0:
                        out[("t", key, interval, "m", str(value))] = 1
                else:
                    first, second = value
                    if first:
                        out[("t", key, interval, "h1")] = 1
                        if second:
                            out[("t", key, interval, "hb")] = 1
        for index, status in enumerate(self.reports):
            if status == NOT_EXPECTED:
                continue
            key = str(index)
            out[("r", key, "e")] = 1
            if status != MISSING:
                out[("r", key, "r")] = 1
                if status == ON_TIME:
                    out[("r", key, "o")] = 1
        return out


def unit_interval(unit: Unit, year: int) -> tuple[int, int] | None:
    """The days of `year` the unit is valid on, as day indexes, or None."""
    start, end = date(year, 1, 1), date(year, 12, 31)
    first = max(start, unit.valid_from) if unit.valid_from else start
    last = min(end, unit.valid_to) if unit.valid_to else end
    if first > last:
        return None
    return day_index(year, first), day_index(year, last)


class PlanPart:
    """A plan's rollup in one unit's document (see the module docstring).

    `data` = `{"m": {branch: {unit_id: entry}}, "s": summary, "c": {child: summary}}`; the
    branch of a unit is the child of this unit it is under (`SELF` for the unit itself); a
    summary is the sum of its entries' `Entry.contribution`."""

    def __init__(self, data: Counts | None = None) -> None:
        self.data: Counts = data if data is not None else {"m": {}, "s": {}, "c": {}}
        self.unsorted: set[str] = set()
        """branches given a member they did not have (their order is restored before writing)"""

    @property
    def members(self) -> dict[str, dict[str, list[Any]]]:
        members: dict[str, dict[str, list[Any]]] = self.data["m"]
        return members

    @property
    def summary(self) -> Counts:
        summary: Counts = self.data["s"]
        return summary

    @property
    def children(self) -> dict[str, Counts]:
        children: dict[str, Counts] = self.data["c"]
        return children

    def entry(self, unit_id: str, branch: str = SELF) -> Entry | None:
        raw = self.members.get(branch, {}).get(unit_id)
        return None if raw is None else Entry.from_json(raw)

    def set_member(
        self,
        branch: str,
        unit_id: str,
        new: Entry | None,
        shape: PlanShape,
        change: Leaves | None = None,
    ) -> None:
        """Put `new` in place of the unit's entry (None removes it), counts included;
        `change` is the difference of the contributions, when the caller has it."""
        group = self.members.get(branch)
        old = group.get(unit_id) if group is not None else None
        if change is None:
            before = Entry.from_json(old).contribution(shape) if old is not None else {}
            after = new.contribution(shape) if new is not None else {}
            change = difference(after, before)
        self._add(branch, change)
        if new is None:
            if group is not None and old is not None:
                del group[unit_id]
                if not group:
                    del self.members[branch]
            return
        if group is None:
            group = self.members[branch] = {}
        if unit_id not in group:
            self.unsorted.add(branch)
        group[unit_id] = new.to_json()

    def add_member(self, branch: str, unit_id: str, entry: Entry, contribution: Leaves) -> None:
        """Add a member known to be absent, its contribution computed once by the caller."""
        group = self.members.get(branch)
        if group is None:
            group = self.members[branch] = {}
        self.unsorted.add(branch)
        group[unit_id] = entry.to_json()
        self._add(branch, contribution)

    def add_subtree(self, branch: str, other: PlanPart, sign: int) -> None:
        """Add (sign 1) or remove (−1) every member of a child's part, under `branch`."""
        group = self.members.setdefault(branch, {})
        for members in other.members.values():
            for unit_id, raw in members.items():
                if sign > 0:
                    if unit_id not in group:
                        self.unsorted.add(branch)
                    group[unit_id] = raw
                else:
                    group.pop(unit_id, None)
        if not group:
            del self.members[branch]
        self._count(branch, other.summary, sign)

    def _add(self, branch: str, change: Leaves) -> None:
        if not change:
            return
        add_leaves(self.summary, change)
        if branch != SELF:
            child = self.children.setdefault(branch, {})
            add_leaves(child, change)
            if not child:
                del self.children[branch]

    def _count(self, branch: str, counts: Mapping[str, Any], sign: int) -> None:
        add_into(self.summary, counts, sign)
        if branch != SELF:
            child = self.children.setdefault(branch, {})
            add_into(child, counts, sign)
            if not child:
                del self.children[branch]

    def sort(self, order: Mapping[str, int]) -> None:
        """Restore the listing order (tree order) of the branches that gained members."""
        end = len(order)
        for branch in self.unsorted:
            group = self.members.get(branch)
            if group:
                self.members[branch] = dict(
                    sorted(group.items(), key=lambda item: (order.get(item[0], end), item[0]))
                )
        self.unsorted.clear()

    def ordered_members(self) -> list[tuple[str, str, Entry]]:
        """(branch, unit_id, entry) of every member: the unit itself, then each child's
        subtree in the order of the children's ids."""
        out: list[tuple[str, str, Entry]] = []
        for branch in sorted(self.members):
            for unit_id, raw in self.members[branch].items():
                out.append((branch, unit_id, Entry.from_json(raw)))
        return out

    def is_empty(self) -> bool:
        return not self.members and not self.summary


# --- the unit-year document ---------------------------------------------------------------

PARTS = ("days", "activities", "cases", "declared")
"""The parts of every unit-year document; plan parts are named `plan_part_name(plan_id)`."""


def empty_part(name: str) -> Counts:
    return {"s": {}, "c": {}} if name == "cases" else {}


@dataclass
class UnitYear:
    """One unit's document for one year (see the module docstring). Parts are kept as stored
    (`raw`, JSON) until used, and only the parts marked changed are written again."""

    unit_id: str
    year: int
    parts: dict[str, Any]
    """part name → parsed part (`PlanPart` for plan parts)"""
    dirty: set[str]
    raw: dict[str, str] = field(default_factory=dict)
    """part name → the part as stored, not parsed yet"""

    @classmethod
    def new(cls, unit_id: str, year: int) -> UnitYear:
        return cls(unit_id, year, {}, set())

    def part_names(self) -> list[str]:
        return sorted(set(self.parts) | set(self.raw))

    def has_part(self, name: str) -> bool:
        return name in self.parts or name in self.raw

    def part(self, name: str) -> Any:
        """A part to read (not marked changed); an empty one if the document has none."""
        if name not in self.parts:
            stored = self.raw.pop(name, None)
            data = json.loads(stored) if stored is not None else None
            if is_plan_part(name):
                self.parts[name] = PlanPart(data)
            else:
                self.parts[name] = data if data is not None else empty_part(name)
        return self.parts[name]

    def change(self, name: str) -> Any:
        """A part to change: it will be written."""
        self.dirty.add(name)
        return self.part(name)

    def plan(self, plan_id: str) -> PlanPart:
        part: PlanPart = self.part(plan_part_name(plan_id))
        return part

    def change_plan(self, plan_id: str) -> PlanPart:
        part: PlanPart = self.change(plan_part_name(plan_id))
        return part

    def own_days(self) -> dict[str, list[int]]:
        days: dict[str, list[int]] = self.part("days")
        return days

    def dumped(self, name: str) -> str | None:
        """A part as stored: JSON, or None when it is empty (not stored)."""
        if name in self.raw:
            return self.raw[name]
        value = self.parts.get(name)
        if isinstance(value, PlanPart):
            value = None if value.is_empty() else value.data
        elif value in ({}, {"s": {}, "c": {}}):
            value = None
        return (
            None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        )


def plan_part_name(plan_id: str) -> str:
    return f"plan:{plan_id}"


def is_plan_part(name: str) -> bool:
    return name.startswith("plan:")


def levels_of(values: list[UnitLevel]) -> set[str]:
    return {v.value for v in values}
