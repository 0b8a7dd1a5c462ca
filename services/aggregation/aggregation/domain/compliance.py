"""Compliance with a plan's targets (SPEC §3, §8), for a unit's subtree, as of an instant.

Read from the unit's own plan part (`rollup.PlanPart`): the counts of its subtree and of each
child, kept by the consumer; the lists of units not meeting a target come from the entries kept
beside them. Nothing here walks the tree.

Across a reorganisation (issue 10; docs/aggregation.md says why):
- the units in scope of a target are those of its levels valid on the *scope day*: the as-of
  day, clamped to the plan year (once the year is over, its last day: "100% of units" means the
  units that exist at the end of the year; during the year, the units that exist that day);
- a unit has done what its predecessors did before the change (`standing`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.activities import ActivityKind
from lhpn_shared.contracts.plans import Plan, TargetRule
from lhpn_shared.contracts.units import Unit, UnitLevel

from .rollup import SELF, PlanPart, PlanShape
from .scope import ChildRef, UnitRef, percent, ref_fields
from .tree import day_index, last_index

DEFAULT_LIST_LIMIT = 200
LEVELS = {level.value: level for level in UnitLevel}
_ANY = TargetRule.any_in_year


class UnitCompliance(UnitRef):
    parent_id: str | None
    met_on: date | None = Field(
        description="the day the unit met the target (targets met within the year)"
    )
    met: bool


class ChildCompliance(UnitRef):
    """One target's figures over the subtree of one child of the requested unit."""

    in_scope: int
    met: int
    percent: float | None
    not_met: list[UnitRef] = Field(
        description="this child's units among the target's `not_met` (whole when that is)"
    )


class TargetCompliance(BaseModel):
    code: str
    title: str
    rule: TargetRule
    levels: list[UnitLevel]
    activity_kinds: list[ActivityKind]
    min_count: int
    goal_percent: float
    in_scope: int = Field(description="units of the target's levels valid on the scope day")
    met: int
    percent: float | None = Field(description="met / in_scope × 100; None when none in scope")
    goal_reached: bool | None
    not_met: list[UnitRef] = Field(
        description="units not meeting it, in tree order: the first `list_limit` (the count "
        "is in_scope − met)"
    )
    children: list[ChildCompliance] = Field(description="children with units in scope")
    units: list[UnitCompliance] = Field(
        default_factory=list, description="every unit in scope; filled only when asked for"
    )


class ComplianceResult(BaseModel):
    plan_id: str
    plan_number: str
    plan_title: str
    year: int
    unit: UnitRef
    as_of: AwareDatetime
    as_of_on: date = Field(description="the as-of date in Asia/Ho_Chi_Minh")
    scope_on: date = Field(
        description="the day whose units are in scope: the as-of date within the plan year, "
        "its last day once the year is over (its first before it begins)"
    )
    ended_half_years: list[str]
    list_limit: int = Field(description="the most units any list of this answer holds")
    targets: list[TargetCompliance]


@dataclass(frozen=True)
class AsOf:
    """The as-of day as the counts read it: day indexes in the plan year."""

    day: int
    """the as-of day (may fall outside the year)"""
    scope: int
    """the scope day: `day` clamped to the year"""
    month: int
    """the as-of day's month in the plan year: 0 before it, 13 after it"""
    first_half_over: bool
    year_over: bool

    @classmethod
    def of(cls, year: int, as_of_on: date) -> AsOf:
        day, last = day_index(year, as_of_on), last_index(year)
        return cls(
            day=day,
            scope=min(max(day, 0), last),
            month=as_of_on.month if as_of_on.year == year else 0 if day < 0 else 13,
            first_half_over=as_of_on >= date(year, 7, 1),
            year_over=day > last,
        )

    def in_scope(self, valid: tuple[int, int] | None) -> bool:
        return valid is not None and valid[0] <= self.scope <= valid[1]

    def met(self, rule: TargetRule, value: int | tuple[int, int] | None) -> bool:
        if value is None:
            return False
        if rule is _ANY:
            assert isinstance(value, int)
            return 0 <= value <= self.day
        assert isinstance(value, tuple)
        if self.year_over:
            return bool(value[0] and value[1])
        return self.first_half_over and bool(value[0])


def target_figures(summary: Mapping[str, Any], rule: TargetRule, when: AsOf) -> tuple[int, int]:
    """(in scope, met) from one target's counts: validity interval → counts."""
    in_scope = met = 0
    for interval, counts in summary.items():
        first, _, last = interval.partition(":")
        if not int(first) <= when.scope <= int(last):
            continue
        in_scope += counts.get("n", 0)
        if rule is _ANY:
            for month, days in counts.get("m", {}).items():
                if int(month) < when.month:
                    met += sum(days.values())
                elif int(month) == when.month:
                    met += sum(n for day, n in days.items() if int(day) <= when.day)
        elif when.year_over:
            met += counts.get("hb", 0)
        elif when.first_half_over:
            met += counts.get("h1", 0)
    return in_scope, met


def compliance(
    plan: Plan,
    unit: Unit,
    children: list[ChildRef],
    part: PlanPart,
    as_of: datetime,
    *,
    list_limit: int = DEFAULT_LIST_LIMIT,
    with_units: bool = False,
) -> ComplianceResult:
    """Every target of `plan` over the subtree of `unit`, as of the instant `as_of`, from the
    unit's plan part. `with_units` adds every unit in scope (for exports)."""
    if as_of.tzinfo is None:
        raise ValueError(
            "as_of must be an instant with a time zone, e.g. 2021-07-01T00:00:00+07:00"
        )
    shape = PlanShape.of(plan)
    as_of_on = as_of.astimezone(LOCAL_TZ).date()
    when = AsOf.of(plan.year, as_of_on)
    start = date(plan.year, 1, 1)
    names = {c.unit_id: c for c in children}
    targets_summary = part.summary.get("t", {})
    results: list[TargetCompliance] = []
    for index, target in enumerate(plan.targets):
        in_scope, met = target_figures(targets_summary.get(str(index), {}), target.rule, when)
        per_child: list[ChildCompliance] = []
        for child_id in sorted(part.children):
            figures = part.children[child_id].get("t", {}).get(str(index), {})
            child_in, child_met = target_figures(figures, target.rule, when)
            if child_in:
                per_child.append(
                    ChildCompliance(
                        **_child_ref(child_id, names, part),
                        in_scope=child_in,
                        met=child_met,
                        percent=percent(child_met, child_in),
                        not_met=[],
                    )
                )
        results.append(
            TargetCompliance(
                code=target.code,
                title=target.title,
                rule=target.rule,
                levels=target.levels,
                activity_kinds=target.activity_kinds,
                min_count=target.min_count,
                goal_percent=target.goal_percent,
                in_scope=in_scope,
                met=met,
                percent=percent(met, in_scope),
                goal_reached=met * 100 >= target.goal_percent * in_scope if in_scope else None,
                not_met=[],
                children=per_child,
            )
        )
    _list_units(part, shape, when, results, list_limit, with_units, start)
    return ComplianceResult(
        plan_id=plan.plan_id,
        plan_number=plan.number,
        plan_title=plan.title,
        year=plan.year,
        unit=UnitRef.of(unit),
        as_of=as_of,
        as_of_on=as_of_on,
        scope_on=start + timedelta(days=when.scope),
        ended_half_years=[f"{plan.year}-H1"] * when.first_half_over
        + [f"{plan.year}-H2"] * when.year_over,
        list_limit=list_limit,
        targets=results,
    )


def _child_ref(child_id: str, names: Mapping[str, ChildRef], part: PlanPart) -> dict[str, Any]:
    ref = names.get(child_id)
    if ref is not None:
        return ref_fields(ref)
    entry = part.entry(child_id)  # a child the tree no longer lists: its own entry
    if entry is not None:
        return {"unit_id": child_id, "name": entry.name, "level": entry.level}
    return {"unit_id": child_id, "name": child_id, "level": UnitLevel.commune}


def _list_units(
    part: PlanPart,
    shape: PlanShape,
    when: AsOf,
    results: list[TargetCompliance],
    limit: int,
    with_units: bool,
    start: date,
) -> None:
    """Fill the lists from the roster, in tree order: the first `limit` units not meeting each
    target (each also listed under its child: the children's lists are views of the target's),
    and every unit in scope when asked.

    The roster holds every unit of the subtree (the whole country for the country), so only
    what the lists need is read: a line only for the targets still listing, a child's lines
    only while the child's counts say a unit of it is still to be listed."""
    any_rule = shape.any_in_year
    children = [{c.unit_id: c for c in r.children} for r in results]
    wanted = [min(limit, r.in_scope - r.met) for r in results]
    listing = list(range(len(results))) if with_units else [i for i, n in enumerate(wanted) if n]
    day, scope = when.day, when.scope
    refs: dict[str, UnitRef] = {}
    for branch, lines in part.branches():
        if not listing:
            return
        counted = not with_units and branch not in (None, SELF)
        behind: dict[int, int] = {}  # target → units of this child not meeting it, unseen
        if counted:
            for i in listing:
                child = children[i].get(str(branch))
                if child is not None and child.in_scope > child.met:
                    behind[i] = child.in_scope - child.met
            if not behind:
                continue
        for line in lines:
            unit_id, own_branch, name, level, parent, first, last, targets, _ = line.split("\t")
            if not first or not int(first) <= scope <= int(last):
                continue
            tokens = targets.split(",")
            filled = False
            for index in listing:
                token = tokens[index]
                if not token:
                    continue
                if any_rule[index]:
                    met_day = int(token)
                    ok = 0 <= met_day <= day
                    value: int | tuple[int, int] = met_day
                else:
                    value = _value(token)
                    ok = when.met(_HALF, value)
                result = results[index]
                if with_units:
                    result.units.append(
                        UnitCompliance.model_construct(
                            unit_id=unit_id,
                            name=name,
                            level=LEVELS[level],
                            parent_id=parent or None,
                            met_on=_met_on(value, start) if ok else None,
                            met=ok,
                        )
                    )
                if ok:
                    continue
                if index in behind:
                    behind[index] -= 1
                    if not behind[index]:
                        del behind[index]
                if len(result.not_met) >= wanted[index]:
                    continue
                ref = refs.get(unit_id)
                if ref is None:  # one per unit, however many targets it does not meet
                    ref = refs[unit_id] = UnitRef.model_construct(
                        unit_id=unit_id, name=name, level=LEVELS[level]
                    )
                result.not_met.append(ref)
                child = children[index].get(own_branch)
                if child is not None:
                    child.not_met.append(ref)
                filled = filled or len(result.not_met) >= wanted[index]
            if filled and not with_units:
                listing = [i for i in listing if len(results[i].not_met) < wanted[i]]
                if not listing:
                    return
                behind = {i: n for i, n in behind.items() if i in listing}
            if counted and not behind:
                break  # nothing more of this child to list


_HALF = TargetRule.each_ended_half_year


def _value(token: str) -> int | tuple[int, int]:
    first, sep, second = token.partition(":")
    return (int(first), int(second)) if sep else int(first)


def _met_on(value: int | tuple[int, int], start: date) -> date | None:
    return start + timedelta(days=value) if isinstance(value, int) and value >= 0 else None
