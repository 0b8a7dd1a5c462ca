"""The default plan against SPEC §3, with every expected value typed from the SPEC's tables —
not read from the plan file or the code — and the one open-ended data window every service
uses ("2021-01-01 – report date")."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime
from pathlib import Path

import pytest

from aggregation.domain.rates import ReportingRates
from intake import domain as intake_domain
from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.events import make_event
from lhpn_shared.contracts.plans import Plan, TargetRule
from lhpn_shared.contracts.units import Unit, UnitLevel, UnitTree
from lhpn_shared.unit_files import read_units_csv
from reminders.domain.obligations import derive_obligations
from tests.unit.aggregation.memory import consume

DATA = Path(__file__).resolve().parents[2] / "services" / "intake" / "intake" / "data"
P, D, C = UnitLevel.province, UnitLevel.district, UnitLevel.commune


def plan() -> Plan:
    return Plan.model_validate(json.loads((DATA / "plan-PY-2021-460.json").read_text("utf-8")))


def vn(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=LOCAL_TZ)


# SPEC §3, targets: code → (units in scope, kinds, met when)
TARGETS = {
    "T1": ({P}, {"supervision"}, TargetRule.any_in_year),
    "T2": ({D, C}, {"supervision"}, TargetRule.any_in_year),
    "T3": ({P, D, C}, {"draft_comment", "social_criticism"}, TargetRule.any_in_year),
    "T4": ({D, C}, {"opinion_digest"}, TargetRule.any_in_year),
    "T5": ({P, D, C}, {"representation"}, TargetRule.any_in_year),
    "T6": ({P, D, C}, {"decree56_meeting"}, TargetRule.each_ended_half_year),
}


@pytest.mark.parametrize("code", sorted(TARGETS))
def test_each_target_has_the_scope_kinds_rule_and_goal_of_the_spec(code: str) -> None:
    levels, kinds, rule = TARGETS[code]
    target = next(t for t in plan().targets if t.code == code)
    assert set(target.levels) == levels
    assert {k.value for k in target.activity_kinds} == kinds
    assert target.rule is rule
    # "≥1 … activity"; goal: 100% of units in scope (T1: the one province union)
    assert (target.min_count, target.goal_percent) == (1, 100.0)


def test_the_plan_has_exactly_the_spec_targets_and_schedules() -> None:
    p = plan()
    assert (p.plan_id, p.year, p.number) == ("PY-2021-460", 2021, "460/KH-BTV")
    assert sorted(t.code for t in p.targets) == sorted(TARGETS)
    assert sorted(s.report_type for s in p.report_schedules) == sorted(
        ["monthly", "decree56_h1", "decree56_annual", "thematic_annual"]
    )


def test_monthly_reports_cover_the_15th_to_the_14th_and_are_due_on_the_16th_and_18th() -> None:
    monthly = plan().schedule("monthly")
    assert monthly is not None
    assert set(monthly.levels) == {C, D}
    assert [p.period for p in monthly.periods] == [f"2021-{m:02d}" for m in range(1, 13)]
    for m, p in enumerate(monthly.periods, start=1):
        previous = date(2020, 12, 15) if m == 1 else date(2021, m - 1, 15)
        assert p.data_window() == (previous, date(2021, m, 14))
        # communes before the 16th 00:00, districts before the 18th 00:00 of the period month
        assert p.due_at[C] == vn(2021, m, 16)
        assert p.due_at[D] == vn(2021, m, 18)


@pytest.mark.parametrize(
    ("report_type", "period", "window", "due"),
    [
        ("decree56_h1", "2021-H1", (date(2020, 12, 15), date(2021, 6, 14)), vn(2021, 6, 18)),
        ("decree56_annual", "2021", (date(2020, 12, 15), date(2021, 12, 14)), vn(2021, 12, 18)),
        # "2021-01-01 – report date", due "trước ngày 30/10/2021": the report date is 29/10
        ("thematic_annual", "2021", (date(2021, 1, 1), date(2021, 10, 29)), vn(2021, 10, 30)),
    ],
)
def test_district_reports_have_the_spec_period_window_and_due_instant(
    report_type: str, period: str, window: tuple[date, date], due: datetime
) -> None:
    schedule = plan().schedule(report_type)
    assert schedule is not None
    assert schedule.levels == [D]
    (p,) = schedule.periods
    assert p.period == period
    assert p.data_window() == window
    assert p.due_at == {D: due}


def test_communes_report_to_their_district_and_districts_to_the_province() -> None:
    tree = UnitTree(read_units_csv(DATA / "phu-yen-2021-units.csv"))
    for ob in derive_obligations(plan(), tree):
        reporter = tree.units[ob.unit_id]
        recipient = tree.units[ob.recipient_unit_id or ""]
        assert (reporter.level, recipient.level) in {(C, D), (D, P)}
        assert reporter.parent_id == recipient.unit_id


async def aggregation_rates(p: Plan, units: list[Unit]) -> ReportingRates:
    """The thematic report's rates as the aggregation service answers them, from the events."""
    at = vn(2021, 1, 1)
    events = [make_event("unit.upserted", u, source="intake", occurred_at=at) for u in units]
    events.append(make_event("plan.published", p, source="intake", occurred_at=at))
    svc = await consume(events)
    return await svc.reporting_rates("thematic_annual", "2021", "54")


def test_intake_reminders_and_aggregation_read_the_open_ended_window_the_same_way() -> None:
    """A district union founded on 1 November 2021 did not exist on the thematic report's date
    (29/10): no service expects its thematic report; one founded on 29/10 is expected by all."""
    p = plan()
    province = Unit(unit_id="54", name="Tỉnh Phú Yên", kind="tỉnh", level=P)
    late = Unit(
        unit_id="599", name="Huyện Mới", kind="huyện", level=D, parent_id="54",
        valid_from=date(2021, 11, 1),
    )  # fmt: skip
    just = late.model_copy(update={"unit_id": "598", "valid_from": date(2021, 10, 29)})
    tree = UnitTree([province, late, just])

    owed = {o.unit_id for o in derive_obligations(p, tree) if o.report_type == "thematic_annual"}
    rates = asyncio.run(aggregation_rates(p, [province, late, just]))
    expected_by_intake = {
        u.unit_id
        for u in (late, just)
        if not isinstance(
            intake_domain.report_expectation([p], tree, u.unit_id, "thematic_annual", "2021"),
            list,
        )
    }
    assert owed == expected_by_intake == {"598"}
    assert rates.expected == 1
    assert (rates.window_start_on, rates.window_end_on) == (date(2021, 1, 1), date(2021, 10, 29))
