"""The rules of each answer on small hand-made trees, through the service's own writer and
queries (in memory): scope, as-of, half-years, goals, rates, the indicator codes, the list
limits, and the refusals."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from aggregation.domain.rates import UnknownSchedule
from aggregation.service import Aggregation, BadInput, NotFound
from lhpn_shared.clock import LOCAL_TZ, FixedClock
from lhpn_shared.contracts.activities import Activity, ActivityKind
from lhpn_shared.contracts.cases import CaseFacts
from lhpn_shared.contracts.events import Envelope, make_event
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.reports import Report
from lhpn_shared.contracts.units import Unit, UnitLevel
from tests.unit.aggregation.memory import consume

AT = datetime(2021, 1, 1, tzinfo=LOCAL_TZ)


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


def vn(*args: int) -> datetime:
    return datetime(*args, tzinfo=LOCAL_TZ)


class World:
    """province → district → two communes, and a commune merged away at the end of 2020; the
    events are collected, then consumed by a fresh service."""

    def __init__(self) -> None:
        self.province = make_unit(UnitLevel.province)
        self.plan = make_plan(issuing_unit_id=self.province.unit_id)
        self.district = make_unit(UnitLevel.district, self.province)
        self.busy = make_unit(UnitLevel.commune, self.district, name="Xã Xuân Lãnh")
        self.idle = make_unit(UnitLevel.commune, self.district, name="Xã Đa Lộc")
        self.merged = make_unit(
            UnitLevel.commune, self.district, name="Xã Xuân Quang 1", valid_to=date(2020, 12, 31)
        )
        self.events: list[Envelope] = [
            make_event("unit.upserted", u, source="test", occurred_at=AT)
            for u in (self.province, self.district, self.busy, self.idle, self.merged)
        ]
        self.events.append(make_event("plan.published", self.plan, source="test", occurred_at=AT))

    def did(self, unit: Unit, kind: ActivityKind, *days: date, **metrics: int) -> None:
        for day in days:
            activity = Activity(
                activity_id=uuid.uuid4(),
                unit_id=unit.unit_id,
                kind=kind,
                occurred_on=day,
                title="Hoạt động",
                metrics=metrics,
            )
            self.events.append(
                make_event("activity.recorded", activity, source="test", occurred_at=AT)
            )

    def reported(
        self,
        unit: Unit,
        on_time: bool,
        report_type: str = "monthly",
        period: str = "2021-06",
        **indicators: int,
    ) -> None:
        due = vn(2021, 6, 16)
        report = Report(
            report_id=uuid.uuid4(),
            unit_id=unit.unit_id,
            report_type=report_type,
            period=period,
            indicators=indicators,
            received_at=due + timedelta(hours=-1 if on_time else 1),
            due_at=due,
            on_time=on_time,
        )
        self.events.append(make_event("report.submitted", report, source="test", occurred_at=AT))

    def opened_case(self, unit: Unit, day: date, **overrides: Any) -> None:
        fields: dict[str, Any] = {
            "case_id": uuid.uuid4(),
            "unit_id": unit.unit_id,
            "kind": "mediation",
            "topic": "domestic_violence",
            "channel": "hotline",
            "status": "received",
            "received_on": day,
        }
        fields.update(overrides)
        facts = CaseFacts(**fields)
        self.events.append(make_event("case.opened", facts, source="test", occurred_at=AT))

    async def service(self, now: datetime | None = None) -> Aggregation:
        return await consume(self.events, clock=FixedClock(now or vn(2021, 12, 31, 12)))


async def test_units_not_valid_on_the_scope_day_are_out_of_scope():
    world = World()
    world.did(world.busy, ActivityKind.supervision, date(2021, 2, 1))
    svc = await world.service()
    result = await svc.compliance(world.plan.plan_id, world.province.unit_id, vn(2021, 12, 31, 12))
    target = result.targets[0]
    assert (target.in_scope, target.met) == (3, 1)
    assert {u.unit_id for u in target.not_met} == {world.district.unit_id, world.idle.unit_id}
    assert target.percent == 33.33 and target.goal_reached is False
    assert result.scope_on == date(2021, 12, 31)


async def test_an_activity_counts_from_its_local_day_on():
    world = World()
    world.did(world.busy, ActivityKind.supervision, date(2021, 7, 1))
    svc = await world.service()
    plan_id, busy = world.plan.plan_id, world.busy.unit_id
    before = await svc.compliance(plan_id, busy, datetime(2021, 6, 30, 16, 59, tzinfo=UTC))
    on_the_day = await svc.compliance(plan_id, busy, datetime(2021, 6, 30, 17, 0, tzinfo=UTC))
    assert (before.as_of_on, before.targets[0].met) == (date(2021, 6, 30), 0)
    assert (on_the_day.as_of_on, on_the_day.targets[0].met) == (date(2021, 7, 1), 1)


async def test_the_half_year_target_is_missed_until_a_half_year_is_over_and_then_needs_each_one():
    world = World()
    world.did(world.busy, ActivityKind.decree56_meeting, date(2021, 3, 1), date(2021, 8, 1))
    world.did(world.idle, ActivityKind.decree56_meeting, date(2021, 3, 1), date(2021, 3, 2))
    svc = await world.service()

    async def met(as_of: datetime) -> set[str]:
        result = await svc.compliance(
            world.plan.plan_id, world.district.unit_id, as_of, with_units=True
        )
        return {u.unit_id for u in result.targets[1].units if u.met}

    assert await met(vn(2021, 6, 30, 23, 59)) == set()
    assert await met(vn(2021, 7, 1)) == {world.busy.unit_id, world.idle.unit_id}
    assert await met(vn(2021, 12, 31, 23, 59)) == {world.busy.unit_id, world.idle.unit_id}
    assert await met(vn(2022, 1, 1)) == {world.busy.unit_id}


async def test_a_target_needing_two_activities_counts_every_listed_kind_and_a_partial_goal():
    world = World()
    world.did(world.busy, ActivityKind.draft_comment, date(2021, 4, 1))
    world.did(world.busy, ActivityKind.social_criticism, date(2021, 5, 1))
    world.did(world.idle, ActivityKind.draft_comment, date(2021, 4, 1))
    svc = await world.service()
    result = await svc.compliance(world.plan.plan_id, world.province.unit_id, vn(2021, 12, 1))
    target = result.targets[2]
    assert (target.in_scope, target.met, target.percent, target.goal_reached) == (2, 1, 50.0, True)
    (child,) = target.children
    assert (child.unit_id, child.in_scope, child.met) == (world.district.unit_id, 2, 1)
    with_units = await svc.compliance(
        world.plan.plan_id, world.province.unit_id, vn(2021, 12, 1), with_units=True
    )
    busy = next(u for u in with_units.targets[2].units if u.unit_id == world.busy.unit_id)
    assert (busy.met, busy.met_on) == (True, date(2021, 5, 1))
    assert busy.parent_id == world.district.unit_id


async def test_a_target_with_no_unit_in_scope_has_no_percent():
    world = World()
    svc = await world.service()
    result = await svc.compliance(world.plan.plan_id, world.busy.unit_id, vn(2021, 12, 1))
    first = result.targets[0]
    assert (first.in_scope, first.percent, first.goal_reached) == (1, 0.0, False)
    whole = await svc.compliance(world.plan.plan_id, world.province.unit_id, vn(2021, 12, 1))
    assert whole.targets[2].children[0].in_scope == 2
    alone = World()
    alone.events = alone.events[:1] + alone.events[-1:]  # the province and the plan only
    lonely = await alone.service()
    empty = await lonely.compliance(alone.plan.plan_id, alone.province.unit_id, vn(2021, 12, 1))
    assert (empty.targets[0].in_scope, empty.targets[0].percent) == (0, None)
    assert empty.targets[0].goal_reached is None


async def test_compliance_refuses_an_unknown_unit_or_plan_and_a_naive_instant():
    world = World()
    svc = await world.service()
    with pytest.raises(NotFound, match="'nowhere'"):
        await svc.compliance(world.plan.plan_id, "nowhere", vn(2021, 12, 1))
    with pytest.raises(NotFound, match="'KH-0'"):
        await svc.compliance("KH-0", world.province.unit_id, vn(2021, 12, 1))
    with pytest.raises(BadInput, match="múi giờ"):
        await svc.compliance(world.plan.plan_id, world.province.unit_id, datetime(2021, 12, 1))


async def test_lists_hold_at_most_the_limit_asked_while_the_counts_stay_whole():
    world = World()
    svc = await world.service()
    result = await svc.compliance(
        world.plan.plan_id, world.province.unit_id, vn(2021, 12, 1), list_limit=1
    )
    target = result.targets[0]
    assert (target.in_scope, target.met, len(target.not_met)) == (3, 0, 1)
    assert target.not_met[0].unit_id == world.district.unit_id  # tree order: the district first
    assert result.list_limit == 1


async def test_reporting_rates_count_expected_received_and_on_time_units():
    world = World()
    world.reported(world.busy, True)
    world.reported(world.district, False)
    world.reported(world.merged, True)  # not valid during the data window: not counted
    world.reported(world.idle, True, period="2021-05")
    svc = await world.service()
    result = await svc.reporting_rates("monthly", "2021-06", world.province.unit_id)
    assert (result.expected, result.received, result.on_time) == (3, 2, 1)
    assert (result.reporting_rate, result.on_time_rate) == (66.67, 33.33)
    assert [u.unit_id for u in result.missing] == [world.idle.unit_id]
    assert [u.unit_id for u in result.late] == [world.district.unit_id]
    (child,) = result.children
    assert (child.expected, child.received, child.on_time) == (3, 2, 1)


async def test_reporting_rates_refuse_a_report_type_or_period_the_plan_does_not_schedule():
    world = World()
    svc = await world.service()
    with pytest.raises(NotFound, match="'weekly'"):
        await svc.reporting_rates("weekly", "2021-06", world.province.unit_id)
    with pytest.raises(NotFound, match="'2021-07'"):
        await svc.reporting_rates("monthly", "2021-07", world.province.unit_id)


async def test_all_reporting_rates_can_leave_out_periods_not_yet_due():
    from aggregation.domain.rates import all_reporting_rates

    world = World()
    svc = await world.service()
    node = await svc.node(world.province.unit_id)
    part = await svc.plan_part(world.plan, world.province.unit_id)
    everything = all_reporting_rates(world.plan, node.unit, node.children, part)
    assert len(everything) == 1
    due_by = all_reporting_rates(world.plan, node.unit, node.children, part, due_by=vn(2021, 6, 17))
    assert due_by == []
    with pytest.raises(UnknownSchedule):
        from aggregation.domain.rates import reporting_rates

        reporting_rates(world.plan, node.unit, node.children, part, "weekly", "2021-06")


async def test_indicators_set_declared_totals_beside_recorded_ones_and_flag_differences():
    world = World()
    world.did(
        world.busy, ActivityKind.supervision, date(2021, 6, 1), date(2021, 6, 2), recommendations=3
    )
    world.did(world.busy, ActivityKind.exemplar, date(2021, 6, 3), count=4)
    world.reported(
        world.busy,
        True,
        **{
            "supervision.count": 2,
            "supervision.recommendations": 5,
            "exemplar.count": 4,
            "custom.thing": 1,
        },
    )
    world.reported(world.district, True, report_type="other", **{"supervision.count": 1})
    svc = await world.service()
    result = await svc.indicators(world.province.unit_id, "2021-06")
    rows = {row.code: row for row in result.rows}
    supervision = rows["supervision.count"]
    assert (supervision.recorded, supervision.declared, supervision.difference) == (2, 3, 1)
    recommendations = rows["supervision.recommendations"]
    assert recommendations.differs and recommendations.difference == -1
    assert (rows["exemplar.count"].recorded, rows["exemplar.count"].differs) == (4, False)
    custom = rows["custom.thing"]
    assert (custom.kind, custom.recorded, custom.differs) == (None, None, False)
    training = rows["training.count"]
    assert (training.recorded, training.declared, training.differs) == (0, None, False)
    assert next(k for k in result.kinds if k.kind is ActivityKind.exemplar).activities == 1
    assert result.reports == 2 and result.differing == 2
    assert result.report_types == ["monthly", "other"]
    only_monthly = await svc.indicators(world.province.unit_id, "2021-06", "monthly")
    assert {row.code: row for row in only_monthly.rows}["supervision.count"].declared == 2


async def test_indicators_sum_whole_months_of_the_period():
    world = World()
    world.did(
        world.busy,
        ActivityKind.training,
        date(2021, 6, 30),
        date(2021, 7, 1),
        date(2021, 9, 30),
        sessions=2,
    )
    svc = await world.service()
    counts = []
    for period in ("2021-Q3", "2021-H1", "2021"):
        result = await svc.indicators(world.province.unit_id, period)
        counts.append({r.code: r.recorded for r in result.rows}["training.sessions"])
    assert counts == [4, 2, 6]


async def test_case_statistics_count_cases_received_in_the_period_per_child_valid_then():
    world = World()
    world.opened_case(world.busy, date(2021, 3, 2))
    world.opened_case(world.busy, date(2021, 4, 2))
    world.opened_case(world.district, date(2021, 3, 9))
    svc = await world.service()
    result = await svc.case_stats(world.province.unit_id, "2021-03")
    assert result.received == 2
    assert (result.by_kind["mediation"], result.by_kind["complaint"]) == (2, 0)
    assert result.children[0].received == 2
    quarter = await svc.case_stats(world.district.unit_id, "2021-Q2")
    assert quarter.received == 1
    by_child = {c.unit_id: c.received for c in quarter.children}
    # the merged commune ended in 2020: not a child of the district in 2021 (issue 10)
    assert by_child == {world.busy.unit_id: 1, world.idle.unit_id: 0}


async def test_a_plan_counts_only_the_units_of_its_issuer_s_province():
    """`Plan.covers`: a province's plan does not judge another province's unions."""
    world = World()
    root = Unit(unit_id=f"R{uuid.uuid4().hex[:5]}", name="Trung ương", kind="tw", level="national")
    other = make_unit(UnitLevel.province, root, name="Tỉnh Khác")
    commune = make_unit(UnitLevel.commune, other, name="Xã Khác")
    world.province = world.province.model_copy(update={"parent_id": root.unit_id, "revision": 2})
    world.events += [
        make_event("unit.upserted", u, source="test", occurred_at=AT)
        for u in (root, other, commune, world.province)
    ]
    world.did(commune, ActivityKind.supervision, date(2021, 3, 1))
    world.reported(commune, True)
    svc = await world.service()
    whole = await svc.compliance(world.plan.plan_id, root.unit_id, vn(2021, 12, 1))
    assert whole.targets[0].in_scope == 3  # the district and the two communes of its province
    assert {c.unit_id for c in whole.targets[0].children} == {world.province.unit_id}
    elsewhere = await svc.compliance(world.plan.plan_id, other.unit_id, vn(2021, 12, 1))
    assert [t.in_scope for t in elsewhere.targets] == [0, 0, 0]
    rates = await svc.reporting_rates("monthly", "2021-06", root.unit_id)
    assert (rates.expected, rates.received) == (3, 0)


async def test_a_code_declared_as_zero_is_declared_not_missing():
    world = World()
    world.did(world.busy, ActivityKind.training, date(2021, 6, 1), sessions=2)
    world.reported(world.busy, True, **{"training.sessions": 0, "training.count": 1})
    svc = await world.service()
    rows = {r.code: r for r in (await svc.indicators(world.province.unit_id, "2021-06")).rows}
    assert (rows["training.sessions"].declared, rows["training.sessions"].differs) == (0, True)
    assert (rows["training.count"].declared, rows["training.count"].differs) == (1, False)
    assert rows["dialogue.count"].declared is None
