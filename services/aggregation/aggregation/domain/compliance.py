"""Compliance with a plan's targets (SPEC §3, §8), for a unit's subtree, as of an instant.

Reads only the per-unit activity counters of the plan year: O(units × targets), each unit and
target costing at most one lookup per activity kind and month.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from pydantic import AwareDatetime, BaseModel, Field

from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.activities import ActivityKind
from lhpn_shared.contracts.plans import Plan, Target, TargetRule
from lhpn_shared.contracts.units import UnitLevel, UnitTree
from lhpn_shared.periods import ended_by, half_years

from .facts import DayWindow, UnitActivityCounters
from .scope import Subtree, UnitRef, percent, ref_fields, subtree_of


class UnitCompliance(UnitRef):
    parent_id: str | None
    activities: int = Field(description="matching activities from 1 January to the as-of date")
    met: bool


class ChildCompliance(UnitRef):
    """One target's figures over the subtree of one child of the requested unit."""

    in_scope: int
    met: int
    percent: float | None
    not_met: list[UnitRef]


class TargetCompliance(BaseModel):
    code: str
    title: str
    rule: TargetRule
    levels: list[UnitLevel]
    activity_kinds: list[ActivityKind]
    min_count: int
    goal_percent: float
    in_scope: int = Field(description="units of the target's levels valid during the plan year")
    met: int
    percent: float | None = Field(description="met / in_scope × 100; None when none in scope")
    goal_reached: bool | None
    not_met: list[UnitRef]
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
    ended_half_years: list[str]
    targets: list[TargetCompliance]


@dataclass(frozen=True)
class _AsOf:
    year_start: date
    year_end: date
    to_date: DayWindow
    """1 January to the as-of date"""
    ended: list[tuple[str, DayWindow]]
    """half-years over by the as-of instant"""


def compliance(
    plan: Plan,
    tree: UnitTree,
    unit_id: str,
    as_of: datetime,
    counters: Mapping[str, UnitActivityCounters],
    *,
    with_units: bool = False,
) -> ComplianceResult:
    """Every target of `plan` over the subtree of `unit_id`, as of the instant `as_of`.

    `counters` maps unit_id → that unit's counters for the plan year (missing: no activity).
    `with_units` adds every unit in scope with its count and status (for exports).
    """
    if as_of.tzinfo is None:
        raise ValueError(
            "as_of must be an instant with a time zone, e.g. 2021-07-01T00:00:00+07:00"
        )
    scope = subtree_of(tree, unit_id)
    year_start, year_end = plan.year_bounds()
    as_of_on = as_of.astimezone(LOCAL_TZ).date()
    when = _AsOf(
        year_start=year_start,
        year_end=year_end,
        to_date=DayWindow.of(plan.year, year_start, min(year_end, as_of_on)),
        ended=[
            (key, DayWindow.of(plan.year, first, last))
            for key, first, last in half_years(plan.year)
            if ended_by(last, as_of)
        ],
    )
    return ComplianceResult(
        plan_id=plan.plan_id,
        plan_number=plan.number,
        plan_title=plan.title,
        year=plan.year,
        unit=UnitRef.of(scope.root),
        as_of=as_of,
        as_of_on=as_of_on,
        ended_half_years=[key for key, _ in when.ended],
        targets=[_target(t, scope, counters, when, with_units) for t in plan.targets],
    )


def _target(
    target: Target,
    scope: Subtree,
    counters: Mapping[str, UnitActivityCounters],
    when: _AsOf,
    with_units: bool,
) -> TargetCompliance:
    kinds = [k.value for k in target.activity_kinds]
    needed = target.min_count
    levels = set(target.levels)
    empty = UnitActivityCounters(unit_id="", year=when.year_start.year)
    units: list[UnitCompliance] = []
    met_by_branch: dict[str, list[int]] = {c.unit_id: [0, 0] for c in scope.children}
    not_met_by_branch: dict[str, list[UnitRef]] = {c.unit_id: [] for c in scope.children}
    in_scope = met = 0
    not_met: list[UnitRef] = []
    for unit in scope.units:
        if unit.level not in levels or not unit.valid_during(when.year_start, when.year_end):
            continue
        unit_counters = counters.get(unit.unit_id, empty)
        count = unit_counters.count(kinds, when.to_date, enough=None if with_units else needed)
        if target.rule is TargetRule.any_in_year:
            ok = count >= needed
        else:  # each_ended_half_year
            ok = bool(when.ended) and all(
                unit_counters.count(kinds, half, enough=needed) >= needed for _, half in when.ended
            )
        branch = scope.branch.get(unit.unit_id)
        in_scope += 1
        met += ok
        if branch is not None:
            met_by_branch[branch][0] += 1
            met_by_branch[branch][1] += ok
        if not ok:
            ref = UnitRef.of(unit)
            not_met.append(ref)
            if branch is not None:
                not_met_by_branch[branch].append(ref)
        if with_units:
            units.append(
                UnitCompliance(
                    **ref_fields(unit), parent_id=unit.parent_id, activities=count, met=ok
                )
            )
    children = [
        ChildCompliance(
            **ref_fields(child),
            in_scope=met_by_branch[child.unit_id][0],
            met=met_by_branch[child.unit_id][1],
            percent=percent(met_by_branch[child.unit_id][1], met_by_branch[child.unit_id][0]),
            not_met=not_met_by_branch[child.unit_id],
        )
        for child in scope.children
        if met_by_branch[child.unit_id][0]
    ]
    return TargetCompliance(
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
        not_met=not_met,
        children=children,
        units=units,
    )
