"""Reporting rates (DHIS2 definitions, SPEC §3, §8) per report type and period, for a subtree.

expected: units of the schedule's levels in the subtree, valid during the period's data window;
received: expected units with a report; on time: received before the due instant (first
submission); reporting rate = received / expected × 100; on-time rate = on time / expected × 100.
Reads one `ReportState` per submitted report of the period: O(units + reports).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from pydantic import BaseModel, Field

from lhpn_shared.contracts.plans import Plan, ReportSchedule, SchedulePeriod
from lhpn_shared.contracts.units import UnitLevel, UnitTree

from .facts import ReportState
from .scope import UnitRef, percent, ref_fields, subtree_of


class UnknownSchedule(LookupError):
    pass


class RateFigures(BaseModel):
    expected: int
    received: int
    on_time: int
    reporting_rate: float | None = Field(description="received / expected × 100")
    on_time_rate: float | None = Field(description="on time / expected × 100")
    missing: list[UnitRef] = Field(default_factory=list)
    late: list[UnitRef] = Field(default_factory=list, description="received, but not on time")


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
    children: list[ChildRates] = Field(description="children with units expected to report")


def _window(schedule_period: SchedulePeriod) -> tuple[date, date]:
    return schedule_period.data_window()  # the one definition, in lhpn_shared


def reporting_rates(
    plan: Plan,
    tree: UnitTree,
    unit_id: str,
    report_type: str,
    period: str,
    reports: Iterable[ReportState],
) -> ReportingRates:
    """Rates of one schedule period over the subtree of `unit_id`.

    `reports` are the stored report states; those of other types or periods are ignored.
    """
    schedule = plan.schedule(report_type)
    if schedule is None:
        raise UnknownSchedule(
            f"report_type '{report_type}' is not scheduled by plan {plan.plan_id}"
        )
    schedule_period = schedule.period(period)
    if schedule_period is None:
        raise UnknownSchedule(f"period '{period}' is not scheduled for report_type '{report_type}'")
    return _rates(schedule, schedule_period, tree, unit_id, reports)


def _rates(
    schedule: ReportSchedule,
    schedule_period: SchedulePeriod,
    tree: UnitTree,
    unit_id: str,
    reports: Iterable[ReportState],
) -> ReportingRates:
    scope = subtree_of(tree, unit_id)
    start, end = _window(schedule_period)
    on_time = {
        r.unit_id: r.on_time
        for r in reports
        if r.report_type == schedule.report_type and r.period == schedule_period.period
    }
    levels = set(schedule.levels)
    empty: dict[str, int] = {"expected": 0, "received": 0, "on_time": 0}
    total = ReportingRates(
        **empty,
        reporting_rate=None,
        on_time_rate=None,
        report_type=schedule.report_type,
        title=schedule.title,
        period=schedule_period.period,
        levels=schedule.levels,
        window_start_on=start,
        window_end_on=end,
        unit=UnitRef.of(scope.root),
        children=[],
    )
    per_child = {
        c.unit_id: ChildRates(**ref_fields(c), **empty, reporting_rate=None, on_time_rate=None)
        for c in scope.children
    }
    for unit in scope.units:
        if unit.level not in levels or not unit.valid_during(start, end):
            continue
        child = per_child.get(scope.branch.get(unit.unit_id, ""))
        scopes: tuple[RateFigures, ...] = (total, child) if child is not None else (total,)
        for figures in scopes:
            figures.expected += 1
            if unit.unit_id not in on_time:
                figures.missing.append(UnitRef.of(unit))
                continue
            figures.received += 1
            if on_time[unit.unit_id]:
                figures.on_time += 1
            else:
                figures.late.append(UnitRef.of(unit))
    for done in (total, *per_child.values()):
        done.reporting_rate = percent(done.received, done.expected)
        done.on_time_rate = percent(done.on_time, done.expected)
    total.children = [child for child in per_child.values() if child.expected]
    return total


def all_reporting_rates(
    plan: Plan,
    tree: UnitTree,
    unit_id: str,
    reports: Iterable[ReportState],
    *,
    due_by: datetime | None = None,
) -> list[ReportingRates]:
    """Rates of every schedule period of the plan, in the plan's order.

    With `due_by`, only the periods whose every due instant is at or before it.
    """
    by_key: dict[tuple[str, str], list[ReportState]] = {}
    for r in reports:
        by_key.setdefault((r.report_type, r.period), []).append(r)
    out = []
    for schedule in plan.report_schedules:
        for p in schedule.periods:
            if due_by is not None and any(due > due_by for due in p.due_at.values()):
                continue
            found = by_key.get((schedule.report_type, p.period), [])
            out.append(_rates(schedule, p, tree, unit_id, found))
    return out
