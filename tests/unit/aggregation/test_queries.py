"""The rules of each answer on small hand-made trees: scope, as-of, half-years, goals, rates,
the indicator codes, and the refusals."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from aggregation.domain.case_stats import case_stats
from aggregation.domain.compliance import compliance
from aggregation.domain.facts import (
    ActivityDelta,
    ReportState,
    UnitActivityCounters,
    UnitCaseCounters,
    on_case_event,
)
from aggregation.domain.indicators import indicators
from aggregation.domain.rates import UnknownSchedule, all_reporting_rates, reporting_rates
from aggregation.domain.scope import UnknownUnit
from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.activities import ActivityKind
from lhpn_shared.contracts.cases import CaseFacts
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.units import Unit, UnitLevel, UnitTree


def make_unit(level: UnitLevel, parent: Unit | None = None, **overrides: Any) -> Unit:
    fields: dict[str, Any] = {
        "unit_id": f"U{uuid.uuid4().hex[:6]}",
        "name": {
            "province": "Tỉnh Phú Yên",
            "district": "Huyện Đồng Xuân",
            "commune": "Xã Xuân Sơn Bắc",
        }[level],
        "kind": {"province": "tỉnh", "district": "huyện", "commune": "xã"}[level],
        "level": level,
        "parent_id": parent.unit_id if parent else None,
    }
    fields.update(overrides)
    return Unit(**fields)


def make_plan(**overrides: Any) -> Plan:
    due = {"district": "2021-06-18T00:00:00+07:00", "commune": "2021-06-16T00:00:00+07:00"}
    fields: dict[str, Any] = {
        "plan_id": f"PLAN-{uuid.uuid4().hex[:6]}",
        "year": 2021,
        "number": "460/KH-BTV",
        "issuing_unit_id": "54",
        "title": "Kế hoạch giám sát năm 2021",
        "targets": [
            {
                "code": "A",
                "title": "Giám sát",
                "levels": ["district", "commune"],
                "activity_kinds": ["supervision"],
            },
            {
                "code": "B",
                "title": "Làm việc NĐ 56",
                "levels": ["district", "commune"],
                "activity_kinds": ["decree56_meeting"],
                "rule": "each_ended_half_year",
            },
            {
                "code": "C",
                "title": "Hai lần góp ý",
                "levels": ["commune"],
                "activity_kinds": ["draft_comment", "social_criticism"],
                "min_count": 2,
                "goal_percent": 50,
            },
        ],
        "report_schedules": [
            {
                "report_type": "monthly",
                "title": "Báo cáo tháng",
                "levels": ["district", "commune"],
                "periods": [
                    {
                        "period": "2021-06",
                        "window_start_on": "2021-05-15",
                        "window_end_on": "2021-06-14",
                        "due_at": due,
                    }
                ],
            }
        ],
    }
    fields.update(overrides)
    return Plan.model_validate(fields)


class World:
    """province → district → two communes, and a commune merged away at the end of 2020."""

    def __init__(self) -> None:
        self.province = make_unit(UnitLevel.province)
        self.district = make_unit(UnitLevel.district, self.province)
        self.busy = make_unit(UnitLevel.commune, self.district, name="Xã Xuân Lãnh")
        self.idle = make_unit(UnitLevel.commune, self.district, name="Xã Đa Lộc")
        self.merged = make_unit(
            UnitLevel.commune, self.district, name="Xã Xuân Quang 1", valid_to=date(2020, 12, 31)
        )
        self.tree = UnitTree([self.province, self.district, self.busy, self.idle, self.merged])
        self.counters: dict[str, UnitActivityCounters] = {}

    def did(self, unit: Unit, kind: ActivityKind, *days: date, **metrics: int) -> None:
        for day in days:
            counters = self.counters.setdefault(
                unit.unit_id, UnitActivityCounters(unit.unit_id, day.year)
            )
            counters.apply(
                ActivityDelta(
                    unit_id=unit.unit_id, kind=kind, occurred_on=day, sign=1, metrics=metrics
                )
            )


def vn(*args: int) -> datetime:
    return datetime(*args, tzinfo=LOCAL_TZ)


def test_units_not_valid_during_the_plan_year_are_out_of_scope():
    world = World()
    world.did(world.busy, ActivityKind.supervision, date(2021, 2, 1))
    result = compliance(
        make_plan(), world.tree, world.province.unit_id, vn(2021, 12, 31, 12), world.counters
    )
    target = result.targets[0]
    assert (target.in_scope, target.met) == (3, 1)
    assert {u.unit_id for u in target.not_met} == {world.district.unit_id, world.idle.unit_id}
    assert target.percent == 33.33 and target.goal_reached is False


def test_an_activity_counts_from_its_local_day_on():
    world = World()
    world.did(world.busy, ActivityKind.supervision, date(2021, 7, 1))
    plan = make_plan()
    before = compliance(
        plan,
        world.tree,
        world.busy.unit_id,
        datetime(2021, 6, 30, 16, 59, tzinfo=UTC),
        world.counters,
    )
    on_the_day = compliance(
        plan,
        world.tree,
        world.busy.unit_id,
        datetime(2021, 6, 30, 17, 0, tzinfo=UTC),
        world.counters,
    )
    assert (before.as_of_on, before.targets[0].met) == (date(2021, 6, 30), 0)
    assert (on_the_day.as_of_on, on_the_day.targets[0].met) == (date(2021, 7, 1), 1)


def test_the_half_year_target_is_missed_until_a_half_year_is_over_and_then_needs_each_one():
    world = World()
    world.did(world.busy, ActivityKind.decree56_meeting, date(2021, 3, 1), date(2021, 8, 1))
    world.did(world.idle, ActivityKind.decree56_meeting, date(2021, 3, 1), date(2021, 3, 2))
    plan = make_plan()

    def met(as_of: datetime) -> set[str]:
        result = compliance(
            plan, world.tree, world.district.unit_id, as_of, world.counters, with_units=True
        )
        return {u.unit_id for u in result.targets[1].units if u.met}

    assert met(vn(2021, 6, 30, 23, 59)) == set()
    assert met(vn(2021, 7, 1)) == {world.busy.unit_id, world.idle.unit_id}
    assert met(vn(2021, 12, 31, 23, 59)) == {world.busy.unit_id, world.idle.unit_id}
    assert met(vn(2022, 1, 1)) == {world.busy.unit_id}


def test_a_target_needing_two_activities_counts_every_listed_kind_and_reaches_a_partial_goal():
    world = World()
    world.did(world.busy, ActivityKind.draft_comment, date(2021, 4, 1))
    world.did(world.busy, ActivityKind.social_criticism, date(2021, 5, 1))
    world.did(world.idle, ActivityKind.draft_comment, date(2021, 4, 1))
    result = compliance(
        make_plan(), world.tree, world.province.unit_id, vn(2021, 12, 1), world.counters
    )
    target = result.targets[2]
    assert (target.in_scope, target.met, target.percent, target.goal_reached) == (2, 1, 50.0, True)
    (child,) = target.children
    assert (child.unit_id, child.in_scope, child.met) == (world.district.unit_id, 2, 1)


def test_a_target_with_no_unit_in_scope_has_no_percent():
    world = World()
    result = compliance(
        make_plan(), world.tree, world.busy.unit_id, vn(2021, 12, 1), world.counters
    )
    assert (
        result.targets[0].in_scope,
        result.targets[0].percent,
        result.targets[0].goal_reached,
    ) == (1, 0.0, False)
    district_only = compliance(make_plan(), world.tree, world.province.unit_id, vn(2021, 12, 1), {})
    assert district_only.targets[2].children[0].in_scope == 2
    alone = UnitTree([world.province])
    empty = compliance(make_plan(), alone, world.province.unit_id, vn(2021, 12, 1), {})
    assert (empty.targets[0].in_scope, empty.targets[0].percent, empty.targets[0].goal_reached) == (
        0,
        None,
        None,
    )


def test_compliance_refuses_an_unknown_unit_and_a_naive_instant():
    world = World()
    with pytest.raises(UnknownUnit, match="'nowhere'"):
        compliance(make_plan(), world.tree, "nowhere", vn(2021, 12, 1), {})
    with pytest.raises(ValueError, match="time zone"):
        compliance(make_plan(), world.tree, world.province.unit_id, datetime(2021, 12, 1), {})


def _report(
    unit: Unit,
    on_time: bool,
    report_type: str = "monthly",
    period: str = "2021-06",
    **indicators: int,
) -> ReportState:
    due = vn(2021, 6, 16)
    return ReportState(
        unit_id=unit.unit_id,
        report_type=report_type,
        period=period,
        report_id=uuid.uuid4(),
        revision=1,
        received_at=due + timedelta(hours=-1 if on_time else 1),
        on_time=on_time,
        due_at=due,
        indicators=indicators,
    )


def test_reporting_rates_count_expected_received_and_on_time_units():
    world = World()
    reports = [
        _report(world.busy, True),
        _report(world.district, False),
        _report(world.merged, True),
        _report(world.idle, True, period="2021-05"),
    ]
    result = reporting_rates(
        make_plan(), world.tree, world.province.unit_id, "monthly", "2021-06", reports
    )
    assert (result.expected, result.received, result.on_time) == (3, 2, 1)
    assert (result.reporting_rate, result.on_time_rate) == (66.67, 33.33)
    assert [u.unit_id for u in result.missing] == [world.idle.unit_id]
    assert [u.unit_id for u in result.late] == [world.district.unit_id]
    (child,) = result.children
    assert (child.expected, child.received, child.on_time) == (3, 2, 1)


def test_reporting_rates_refuse_a_report_type_or_period_the_plan_does_not_schedule():
    world = World()
    with pytest.raises(UnknownSchedule, match="'weekly'"):
        reporting_rates(make_plan(), world.tree, world.province.unit_id, "weekly", "2021-06", [])
    with pytest.raises(UnknownSchedule, match="'2021-07'"):
        reporting_rates(make_plan(), world.tree, world.province.unit_id, "monthly", "2021-07", [])


def test_all_reporting_rates_can_leave_out_periods_not_yet_due():
    world = World()
    assert len(all_reporting_rates(make_plan(), world.tree, world.province.unit_id, [])) == 1
    assert (
        all_reporting_rates(
            make_plan(), world.tree, world.province.unit_id, [], due_by=vn(2021, 6, 17)
        )
        == []
    )


def test_indicators_set_declared_totals_beside_recorded_ones_and_flag_differences():
    world = World()
    world.did(
        world.busy, ActivityKind.supervision, date(2021, 6, 1), date(2021, 6, 2), recommendations=3
    )
    world.did(world.busy, ActivityKind.exemplar, date(2021, 6, 3), count=4)
    reports = [
        _report(
            world.busy,
            True,
            **{
                "supervision.count": 2,
                "supervision.recommendations": 5,
                "exemplar.count": 4,
                "custom.thing": 1,
            },
        ),
        _report(world.district, True, report_type="other", **{"supervision.count": 1}),
    ]
    result = indicators(world.tree, world.province.unit_id, "2021-06", world.counters, reports)
    rows = {row.code: row for row in result.rows}
    assert (
        rows["supervision.count"].recorded,
        rows["supervision.count"].declared,
        rows["supervision.count"].difference,
    ) == (2, 3, 1)
    assert (
        rows["supervision.recommendations"].differs
        and rows["supervision.recommendations"].difference == -1
    )
    assert (rows["exemplar.count"].recorded, rows["exemplar.count"].differs) == (4, False)
    assert (
        rows["custom.thing"].kind,
        rows["custom.thing"].recorded,
        rows["custom.thing"].differs,
    ) == (None, None, False)
    assert (
        rows["training.count"].recorded,
        rows["training.count"].declared,
        rows["training.count"].differs,
    ) == (0, None, False)
    assert next(k for k in result.kinds if k.kind is ActivityKind.exemplar).activities == 1
    assert result.reports == 2 and result.differing == 2
    only_monthly = indicators(
        world.tree,
        world.province.unit_id,
        "2021-06",
        world.counters,
        reports,
        report_type="monthly",
    )
    assert {row.code: row for row in only_monthly.rows}["supervision.count"].declared == 2


def test_indicators_sum_whole_months_of_the_period():
    world = World()
    world.did(
        world.busy,
        ActivityKind.training,
        date(2021, 6, 30),
        date(2021, 7, 1),
        date(2021, 9, 30),
        sessions=2,
    )
    quarter = indicators(world.tree, world.province.unit_id, "2021-Q3", world.counters, [])
    half = indicators(world.tree, world.province.unit_id, "2021-H1", world.counters, [])
    year = indicators(world.tree, world.province.unit_id, "2021", world.counters, [])
    counts = [
        {r.code: r.recorded for r in x.rows}["training.sessions"] for x in (quarter, half, year)
    ]
    assert counts == [4, 2, 6]


def test_case_statistics_count_cases_received_in_the_period_per_child():
    world = World()
    counters: dict[str, UnitCaseCounters] = {}
    for unit, day in [
        (world.busy, date(2021, 3, 2)),
        (world.busy, date(2021, 4, 2)),
        (world.district, date(2021, 3, 9)),
    ]:
        facts = CaseFacts(
            case_id=uuid.uuid4(),
            unit_id=unit.unit_id,
            kind="mediation",
            topic="domestic_violence",
            channel="hotline",
            status="received",
            received_on=day,
        )
        for delta in on_case_event(None, facts).deltas:
            counters.setdefault(unit.unit_id, UnitCaseCounters(unit.unit_id, 2021)).apply(delta)
    result = case_stats(world.tree, world.province.unit_id, "2021-03", counters)
    assert (
        result.received == 2
        and result.by_kind["mediation"] == 2
        and result.by_kind["complaint"] == 0
    )
    assert result.children[0].received == 2
    quarter = case_stats(world.tree, world.district.unit_id, "2021-Q2", counters)
    assert quarter.received == 1
    by_child = {c.unit_id: c.received for c in quarter.children}
    assert by_child == {world.busy.unit_id: 1, world.idle.unit_id: 0, world.merged.unit_id: 0}
