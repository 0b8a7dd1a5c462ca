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
- `declared`: over the subtree, report type → period → `{"n": reports, "c": {code: sum},
  "k": {code: reports declaring it}}` (a declared 0 is a declaration);
- two parts per plan of the year (`PlanPart`): the counts the answers need, for the subtree
  and per child (`plan:<plan_id>`, JSON), and the roster of every unit of the subtree with its
  standing (`roster:<plan_id>`, one text line per unit, see `Roster`).

Every count is a nested map of integers added with `add_into`, zeros pruned, so a rollup is the
sum of its contributions whatever order they were added and removed in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from pydantic_core import to_json

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

    def month_of(self, day: int) -> int:
        """The month of a day index of the plan year."""
        return (date(self.year, 1, 1) + timedelta(days=day)).month


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

    def to_line(self, unit_id: str, branch: str) -> str:
        """The entry as one line of a roster (tab-separated, see `Roster`)."""
        first, last = self.valid if self.valid is not None else ("", "")
        targets = ",".join(
            "" if t is None else f"{t[0]}:{t[1]}" if isinstance(t, tuple) else str(t)
            for t in self.targets
        )
        name = _PLAIN.sub(" ", self.name)
        return (
            f"{unit_id}\t{branch}\t{name}\t{self.level}\t{self.parent_id or ''}\t{first}\t{last}"
            f"\t{targets}\t{self.reports}"
        )

    @classmethod
    def from_line(cls, line: str) -> tuple[str, str, Entry]:
        """(unit_id, branch, entry) of a roster line."""
        unit_id, branch, name, level, parent, first, last, targets, reports = line.split("\t")
        return (
            unit_id,
            branch,
            cls(
                name=name,
                level=level,
                parent_id=parent or None,
                valid=(int(first), int(last)) if first else None,
                targets=tuple(_target(t) for t in targets.split(",")) if targets else (),
                reports=reports,
            ),
        )

    def contribution(self, shape: PlanShape) -> Leaves:
        """What this entry adds to a summary, flattened: per target, per validity interval,
        the units in scope (`n`) and when they met it (`m`: month → day → units; for
        half-years `h1` and `hb`, both halves); per schedule period, expected, received and
        on time; and one member (`u`: a child's count is its number of roster lines)."""
        out: Leaves = {("u",): 1}
        if self.valid is not None:
            interval = f"{self.valid[0]}:{self.valid[1]}"
            for index, value in enumerate(self.targets):
                if value is None:
                    continue
                key = str(index)
                out[("t", key, interval, "n")] = 1
                if isinstance(value, int):
                    if value >= 0:
                        month = f"{shape.month_of(value):02d}"
                        out[("t", key, interval, "m", month, str(value))] = 1
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


_PLAIN = re.compile(r"[\t\r\n]")
"""What a name may not hold in a roster line."""


def _target(token: str) -> int | tuple[int, int] | None:
    if not token:
        return None
    first, sep, second = token.partition(":")
    return (int(first), int(second)) if sep else int(first)


def unit_interval(unit: Unit, year: int) -> tuple[int, int] | None:
    """The days of `year` the unit is valid on, as day indexes, or None."""
    start, end = date(year, 1, 1), date(year, 12, 31)
    first = max(start, unit.valid_from) if unit.valid_from else start
    last = min(end, unit.valid_to) if unit.valid_to else end
    if first > last:
        return None
    return day_index(year, first), day_index(year, last)


class Roster:
    """The members of a plan part: one line per unit of the subtree, in tree order (the unit
    itself first, then each child's subtree by the child's id), each line
    `unit_id, branch, name, level, parent_id, first day, last day, targets, reports`
    separated by tabs (`Entry.to_line`).

    Kept as text, not JSON: the country's roster holds every unit of it, and a batch changes a
    few hundred lines of it; splitting it into lines, replacing those and joining them again
    costs a few milliseconds, where parsing and writing it as JSON cost a hundred. The lines
    are indexed on first use; the changes are applied by `finish`."""

    def __init__(self, text: str = "") -> None:
        self.text = text
        self._lines: list[str] | None = None
        self._index: dict[str, int] | None = None
        self.changes: dict[str, str | None] = {}

    def _indexed(self) -> tuple[list[str], dict[str, int]]:
        if self._lines is None:
            self._lines = self.text.split("\n") if self.text else []
        if self._index is None:
            self._index = {line[: line.index("\t")]: n for n, line in enumerate(self._lines)}
        return self._lines, self._index

    def line(self, unit_id: str) -> str | None:
        if unit_id in self.changes:
            return self.changes[unit_id]
        lines, index = self._indexed()
        at = index.get(unit_id)
        return None if at is None else lines[at]

    def set(self, unit_id: str, line: str | None) -> None:
        self.changes[unit_id] = line

    def lines(self) -> list[str]:
        """Every line as it is now (changes not yet in order: call `finish` first)."""
        if not self.changes:
            if self._lines is None:
                self._lines = self.text.split("\n") if self.text else []
            return self._lines
        lines, _ = self._indexed()
        out = [line for line in lines if line[: line.index("\t")] not in self.changes]
        out += [line for line in self.changes.values() if line is not None]
        return out

    def finish(self, order: Mapping[str, int]) -> None:
        """Apply the changes: lines replaced in place, removed, or added in tree order."""
        if not self.changes:
            return
        lines, index = self._indexed()
        kept: list[str | None] = list(lines)
        added = False
        for unit_id, line in self.changes.items():
            at = index.get(unit_id)
            if at is not None:
                kept[at] = line
            elif line is not None:
                kept.append(line)
                added = True
        result = [line for line in kept if line is not None]
        if added:
            end = len(order)

            def position(line: str) -> tuple[int, str]:
                unit_id = line[: line.index("\t")]
                return order.get(unit_id, end), unit_id

            result.sort(key=position)
        self.text = "\n".join(result)
        self._lines = result
        if added or len(result) != len(lines):
            self._index = None  # lines moved: index them again when next used
        self.changes = {}

    def __iter__(self) -> Iterator[tuple[str, str, Entry]]:
        for line in self.lines():
            yield Entry.from_line(line)


class PlanPart:
    """A plan's rollup in one unit's document (see the module docstring): `summary` (the sum
    of its members' `Entry.contribution`), `children` (the same per child, by the child's id),
    and the `roster` of its members. The branch of a member is the child of this unit it is
    under (`SELF` for the unit itself).

    The counts are read (parsed) only when first used: a batch reads many units' own entries
    and changes few of them."""

    def __init__(
        self,
        counts: Counts | Callable[[], Counts] | None = None,
        roster: Roster | None = None,
    ) -> None:
        self._counts = counts if counts is not None else {"s": {}, "c": {}}
        self.roster = roster if roster is not None else Roster()

    @property
    def counts(self) -> Counts:
        if callable(self._counts):
            self._counts = self._counts()
        return self._counts

    @property
    def summary(self) -> Counts:
        summary: Counts = self.counts["s"]
        return summary

    @property
    def children(self) -> dict[str, Counts]:
        children: dict[str, Counts] = self.counts["c"]
        return children

    def entry(self, unit_id: str) -> Entry | None:
        line = self.roster.line(unit_id)
        return None if line is None else Entry.from_line(line)[2]

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
        if change is None:
            line = self.roster.line(unit_id)
            before = Entry.from_line(line)[2].contribution(shape) if line is not None else {}
            after = new.contribution(shape) if new is not None else {}
            change = difference(after, before)
        self._add(branch, change)
        self.roster.set(unit_id, None if new is None else new.to_line(unit_id, branch))

    def add_member(self, branch: str, unit_id: str, entry: Entry, contribution: Leaves) -> None:
        """Add a member known to be absent, its contribution computed once by the caller."""
        self.roster.set(unit_id, entry.to_line(unit_id, branch))
        self._add(branch, contribution)

    def add_subtree(self, branch: str, other: PlanPart, sign: int) -> None:
        """Add (sign 1) or remove (−1) every member of a child's part, under `branch`."""
        for line in other.roster.lines():
            unit_id, _, rest = line.partition("\t")
            _, _, rest = rest.partition("\t")
            self.roster.set(unit_id, f"{unit_id}\t{branch}\t{rest}" if sign > 0 else None)
        add_into(self.summary, other.summary, sign)
        if branch != SELF:
            child = self.children.setdefault(branch, {})
            add_into(child, other.summary, sign)
            if not child:
                del self.children[branch]

    def _add(self, branch: str, change: Leaves) -> None:
        if not change:
            return
        add_leaves(self.summary, change)
        if branch != SELF:
            child = self.children.setdefault(branch, {})
            add_leaves(child, change)
            if not child:
                del self.children[branch]

    def finish(self, order: Mapping[str, int]) -> None:
        self.roster.finish(order)

    def segments(self) -> list[tuple[str, int, int]] | None:
        """(branch, first line, lines) of the roster, in its order: the unit itself, then each
        child's subtree by the child's id — or None when the counts cannot tell."""
        total = self.summary.get("u")
        if total is None:
            return None
        out: list[tuple[str, int, int]] = []
        at = total - sum(c.get("u", 0) for c in self.children.values())
        if at:
            out.append((SELF, 0, at))
        for child in sorted(self.children):
            lines = self.children[child].get("u", 0)
            if lines:
                out.append((child, at, lines))
                at += lines
        return out

    def branches(self) -> list[tuple[str | None, list[str]]]:
        """The roster's lines by branch, in order; one group of unknown branch (None) when the
        roster's layout does not match its counts (the caller then reads every line)."""
        lines = self.roster.lines()
        segments = self.segments()
        if segments is None or sum(n for _, _, n in segments) != len(lines):
            return [(None, lines)]
        out: list[tuple[str | None, list[str]]] = []
        for branch, first, count in segments:
            if lines[first].split("\t", 2)[1] != branch:
                return [(None, lines)]
            out.append((branch, lines[first : first + count]))
        return out

    def is_empty(self) -> bool:
        return not self.summary and not self.children and not self.roster.text


# --- the unit-year document ---------------------------------------------------------------

PARTS = ("days", "activities", "cases", "declared")
"""The parts of every unit-year document; a plan has two: `plan:<plan_id>` (its counts, JSON)
and `roster:<plan_id>` (its members, text)."""


def empty_part(name: str) -> Any:
    if is_roster(name):
        return Roster()
    if is_plan_part(name):
        return {"s": {}, "c": {}}
    return {"s": {}, "c": {}} if name == "cases" else {}


@dataclass
class UnitYear:
    """One unit's document for one year (see the module docstring). Parts are kept as stored
    (`raw`: JSON, or text for rosters) until used, and only the parts marked changed are
    written again."""

    unit_id: str
    year: int
    parts: dict[str, Any]
    """part name → parsed part (a dict, or a `Roster`)"""
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
            if stored is None:
                self.parts[name] = empty_part(name)
            elif is_roster(name):
                self.parts[name] = Roster(stored)
            else:
                self.parts[name] = json.loads(stored)
        return self.parts[name]

    def change(self, name: str) -> Any:
        """A part to change: it will be written."""
        self.dirty.add(name)
        return self.part(name)

    def plan(self, plan_id: str) -> PlanPart:
        """A plan's part to read; its counts are parsed when first used."""
        name = plan_part_name(plan_id)
        return PlanPart(lambda: self.part(name), self.part(roster_name(plan_id)))

    def change_plan(self, plan_id: str) -> PlanPart:
        name = plan_part_name(plan_id)
        return PlanPart(lambda: self.change(name), self.change(roster_name(plan_id)))

    def set_plan(self, plan_id: str, part: PlanPart) -> None:
        for name, value in (
            (plan_part_name(plan_id), part.counts),
            (roster_name(plan_id), part.roster),
        ):
            self.raw.pop(name, None)
            self.parts[name] = value
            self.dirty.add(name)

    def plan_ids(self) -> list[str]:
        return [n.removeprefix("plan:") for n in self.part_names() if is_plan_part(n)]

    def own_days(self) -> dict[str, list[int]]:
        days: dict[str, list[int]] = self.part("days")
        return days

    def dumped(self, name: str) -> str | None:
        """A part as stored: JSON (text for a roster), or None when it is empty."""
        if name in self.raw:
            return self.raw[name]
        value = self.parts.get(name)
        if isinstance(value, Roster):
            return value.text or None
        if value in (None, {}, {"s": {}, "c": {}}):
            return None
        return to_json(value).decode()


def plan_part_name(plan_id: str) -> str:
    return f"plan:{plan_id}"


def roster_name(plan_id: str) -> str:
    return f"roster:{plan_id}"


def is_plan_part(name: str) -> bool:
    return name.startswith("plan:")


def is_roster(name: str) -> bool:
    return name.startswith("roster:")


def levels_of(values: list[UnitLevel]) -> set[str]:
    return {v.value for v in values}
