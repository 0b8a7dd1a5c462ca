"""Reporting rates (DHIS2 definitions, SPEC §3, §8) per report type and period, for a subtree.

expected: the units the schedule expects (`standing.report_status`: of its levels, valid during
the data window and still valid on the last day to report on time — or that sent the report);
received: expected units with a report; on time: received before the due instant (first
submission); reporting rate = received / expected × 100; on-time rate = on time / expected × 100.

Read from the unit's own plan part: the counts of its subtree and of each child, and the
entries for the lists of missing and late units.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from lhpn_shared.contracts.plans import Plan, SchedulePeriod
from lhpn_shared.contracts.units import Unit, UnitLevel

from .rollup import LATE, MISSING, SELF, PlanPart, PlanShape
from .scope import ChildRef, UnitRef, percent, ref_fields

DEFAULT_LIST_LIMIT = 200
LEVELS = {level.value: level for level in UnitLevel}


class UnknownSchedule(LookupError):
    pass


class RateFigures(BaseModel):
    expected: int
    received: int
    on_time: int
    reporting_rate: float | None = Field(description="received / expected × 100")
    on_time_rate: float | None = Field(description="on time / expected × 100")
    missing: list[UnitRef] = Field(
        default_factory=list,
        description="in tree order, the first `list_limit` (the count is expected − received); "
        "a child's: its units among the answer's",
    )
    late: list[UnitRef] = Field(
        default_factory=list,
        description="received, but not on time; the first `list_limit` (received − on_time); "
        "a child's: its units among the answer's",
    )


class ChildRates(RateFigures, UnitRef):
    """The figures over the subtree of one child of the requested unit."""


class ReportingRates(RateFigures):
    report_type: str
    title: str
    period: str
    levels: list[UnitLevel]
    window_start_on: date
    window_end_on: date
    unit: UnitRef
    list_limit: int = Field(description="the most units any list of this answer holds")
    children: list[ChildRates] = Field(description="children with units expected to report")


class RatesOfPeriods(BaseModel):
    """The rates of several periods over one unit's subtree, in the order they were asked."""

    rates: list[ReportingRates]


def data_window(
    schedule_period: SchedulePeriod, level: UnitLevel | None = None
) -> tuple[date, date]:
    return schedule_period.data_window(level)  # the one definition, in lhpn_shared


def _figures(counts: Mapping[str, int]) -> dict[str, Any]:
    expected, received, on_time = counts.get("e", 0), counts.get("r", 0), counts.get("o", 0)
    return {
        "expected": expected,
        "received": received,
        "on_time": on_time,
        "reporting_rate": percent(received, expected),
        "on_time_rate": percent(on_time, expected),
    }


def reporting_rates(
    plan: Plan,
    unit: Unit,
    children: list[ChildRef],
    part: PlanPart,
    report_type: str,
    period: str,
    *,
    list_limit: int = DEFAULT_LIST_LIMIT,
) -> ReportingRates:
    """Rates of one schedule period of `plan` over the subtree of `unit`."""
    shape = PlanShape.of(plan)
    index = shape.period_index(report_type, period)
    if index is None:
        if plan.schedule(report_type) is None:
            raise UnknownSchedule(
                f"report_type '{report_type}' is not scheduled by plan {plan.plan_id}"
            )
        raise UnknownSchedule(f"period '{period}' is not scheduled for report_type '{report_type}'")
    return _rates(shape, index, unit, children, part, list_limit)


def _rates(
    shape: PlanShape,
    index: int,
    unit: Unit,
    children: list[ChildRef],
    part: PlanPart,
    list_limit: int,
) -> ReportingRates:
    schedule, schedule_period = shape.periods[index]
    start, end = data_window(schedule_period)
    key = str(index)
    names = {c.unit_id: c for c in children}
    per_child = []
    for child_id in sorted(part.children):
        counts = part.children[child_id].get("r", {}).get(key, {})
        if counts.get("e"):
            named = names.get(child_id)
            fields = (
                ref_fields(named)
                if named is not None
                else {"unit_id": child_id, "name": child_id, "level": UnitLevel.commune}
            )
            per_child.append(ChildRates(**fields, **_figures(counts)))
    result = ReportingRates(
        **_figures(part.summary.get("r", {}).get(key, {})),
        report_type=schedule.report_type,
        title=schedule.title,
        period=schedule_period.period,
        levels=schedule.levels,
        window_start_on=start,
        window_end_on=end,
        unit=UnitRef.of(unit),
        list_limit=list_limit,
        children=per_child,
    )
    _list_units(part, index, result, per_child, list_limit)
    return result


def _list_units(
    part: PlanPart,
    index: int,
    result: ReportingRates,
    per_child: list[ChildRates],
    limit: int,
) -> None:
    """The first `limit` missing and late units in tree order, each also listed under its child
    (the children's lists are views of the answer's); the roster is read only as far as
    needed."""
    wanted = {
        MISSING: min(limit, result.expected - result.received),
        LATE: min(limit, result.received - result.on_time),
    }
    if not any(wanted.values()):
        return
    children = {c.unit_id: c for c in per_child}
    for branch, lines in part.branches():
        child = children.get(str(branch))
        if branch not in (None, SELF) and (child is None or child.expected == child.on_time):
            continue  # nothing of this child to list
        for line in lines:
            at = line.rindex("\t") + 1 + index  # the period's character in the last field
            status = line[at : at + 1]
            if status not in (MISSING, LATE):
                continue
            found = result.missing if status == MISSING else result.late
            if len(found) >= wanted[status]:
                continue
            unit_id, own_branch, name, level, *_ = line.split("\t")
            ref = UnitRef.model_construct(unit_id=unit_id, name=name, level=LEVELS[level])
            found.append(ref)
            own = children.get(own_branch)
            if own is not None:
                (own.missing if status == MISSING else own.late).append(ref)
            if len(result.missing) >= wanted[MISSING] and len(result.late) >= wanted[LATE]:
                return


def all_reporting_rates(
    plan: Plan,
    unit: Unit,
    children: list[ChildRef],
    part: PlanPart,
    *,
    due_by: datetime | None = None,
    list_limit: int = 0,
) -> list[ReportingRates]:
    """Rates of every schedule period of the plan, in the plan's order.

    With `due_by`, only the periods whose every due instant is at or before it."""
    shape = PlanShape.of(plan)
    out = []
    for index, (_, p) in enumerate(shape.periods):
        if due_by is not None and any(due > due_by for due in p.due_at.values()):
            continue
        out.append(_rates(shape, index, unit, children, part, list_limit))
    return out
