from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.plans import Plan, ReportSchedule, SchedulePeriod, last_day_to_submit
from lhpn_shared.contracts.units import UnitLevel, UnitTree
from reminders.domain.obligations import (
    ObligationStatus,
    derive_obligations,
    fulfil,
    status_at,
    to_facts,
)


def vn(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LOCAL_TZ)


def test_the_default_plan_expects_1428_monthly_reports_from_110_communes_and_9_districts(
    default_plan, phu_yen_units
):
    monthly = [
        o for o in derive_obligations(default_plan, phu_yen_units) if o.report_type == "monthly"
    ]

    assert len(monthly) == 1428
    assert Counter(o.unit_level for o in monthly) == {
        UnitLevel.commune: 110 * 12,
        UnitLevel.district: 9 * 12,
    }
    assert len({o.obligation_id for o in monthly}) == 1428
    assert all(
        len([o for o in monthly if o.unit_id == u]) == 12 for u in {o.unit_id for o in monthly}
    )


def test_communes_are_due_before_the_16th_and_districts_before_the_18th_at_midnight_vietnam_time(
    default_plan, phu_yen_units
):
    monthly = [
        o for o in derive_obligations(default_plan, phu_yen_units) if o.report_type == "monthly"
    ]

    for o in monthly:
        month = int(o.period[-2:])
        day = 16 if o.unit_level is UnitLevel.commune else 18
        assert o.due_at == vn(2021, month, day), o.obligation_id
        assert o.due_at.utcoffset() == timedelta(hours=7)


def test_each_unit_reports_to_its_parent_and_the_id_names_plan_type_period_and_unit(
    default_plan, phu_yen_units
):
    obligations = derive_obligations(default_plan, phu_yen_units)

    for o in obligations:
        unit = phu_yen_units.get(o.unit_id)
        assert unit is not None
        assert o.recipient_unit_id == unit.parent_id
        assert o.obligation_id == f"PY-2021-460:{o.report_type}:{o.period}:{o.unit_id}"
    commune = next(o for o in obligations if o.unit_id == "22015" and o.period == "2021-03")
    assert commune.recipient_unit_id == "555"
    assert commune.obligation_id == "PY-2021-460:monthly:2021-03:22015"


def test_the_thematic_report_is_owed_by_the_9_districts_before_30_october_2021(
    default_plan, phu_yen_units
):
    thematic = [
        o
        for o in derive_obligations(default_plan, phu_yen_units)
        if o.report_type == "thematic_annual"
    ]

    assert sorted(o.unit_id for o in thematic) == [
        "555", "557", "558", "559", "560", "561", "562", "563", "564",
    ]  # fmt: skip
    assert {o.due_at for o in thematic} == {vn(2021, 10, 30)}
    assert {o.recipient_unit_id for o in thematic} == {"54"}
    assert last_day_to_submit(thematic[0].due_at) == date(2021, 10, 29)


def test_the_province_owes_no_report_because_no_schedule_names_its_level(
    default_plan, phu_yen_units
):
    assert not [o for o in derive_obligations(default_plan, phu_yen_units) if o.unit_id == "54"]


def test_a_unit_owes_only_the_periods_whose_due_date_it_exists_on(make_unit):
    province = make_unit(level=UnitLevel.province, kind="tỉnh", name="Tỉnh A")
    merged_away = make_unit(parent_id=province.unit_id, valid_to=date(2021, 2, 20))
    created = make_unit(parent_id=province.unit_id, valid_from=date(2021, 2, 20))
    plan = Plan(
        plan_id="P",
        year=2021,
        number="1/KH",
        issuing_unit_id=province.unit_id,
        title="Kế hoạch",
        report_schedules=[
            ReportSchedule(
                report_type="monthly",
                title="Báo cáo tháng",
                levels=[UnitLevel.commune],
                periods=[
                    SchedulePeriod(
                        period=f"2021-0{m}",
                        window_start_on=date(2021, m - 1, 15) if m > 1 else date(2020, 12, 15),
                        window_end_on=date(2021, m, 14),
                        due_at={UnitLevel.commune: vn(2021, m, 16)},
                    )
                    for m in (1, 2, 3, 4)
                ],
            )
        ],
    )

    obligations = derive_obligations(plan, UnitTree([province, merged_away, created]))

    periods = {
        u.unit_id: [o.period for o in obligations if o.unit_id == u.unit_id]
        for u in (merged_away, created)
    }
    # gone on 21/02: the March report (due 16/03) is its successor's, though its window began
    # while it still existed
    assert periods[merged_away.unit_id] == ["2021-01", "2021-02"]
    assert periods[created.unit_id] == ["2021-03", "2021-04"]


def test_without_a_report_an_obligation_is_open_until_its_due_instant_then_overdue(make_obligation):
    o = make_obligation(due_at=vn(2021, 3, 16))

    assert status_at(o, vn(2021, 3, 15, 23, 59)) is ObligationStatus.open
    assert status_at(o, vn(2021, 3, 16)) is ObligationStatus.overdue


def test_a_report_received_before_the_due_instant_is_on_time_and_one_at_it_is_late(make_obligation):
    o = make_obligation(due_at=vn(2021, 3, 16))
    as_of = vn(2021, 4, 1)

    just_before = fulfil(o, vn(2021, 3, 16) - timedelta(microseconds=1))
    at_due = fulfil(o, vn(2021, 3, 16))

    assert status_at(just_before, as_of) is ObligationStatus.fulfilled_on_time
    assert status_at(at_due, as_of) is ObligationStatus.fulfilled_late


def test_a_report_received_after_the_as_of_instant_is_not_known_yet(make_obligation):
    o = fulfil(make_obligation(due_at=vn(2021, 3, 16)), vn(2021, 3, 20))

    assert status_at(o, vn(2021, 3, 18)) is ObligationStatus.overdue
    assert status_at(o, vn(2021, 3, 20)) is ObligationStatus.fulfilled_late


def test_a_resubmission_keeps_the_first_received_at(make_obligation):
    first = vn(2021, 3, 10, 9)

    o = fulfil(fulfil(make_obligation(), first), vn(2021, 3, 20))

    assert o.received_at == first
    assert fulfil(o, vn(2021, 3, 1)).received_at == vn(2021, 3, 1)


def test_a_naive_received_at_is_refused(make_obligation):
    with pytest.raises(ValueError, match="timezone-aware"):
        fulfil(make_obligation(), datetime(2021, 3, 10, 9))


def test_the_event_facts_carry_the_status_as_of_the_given_instant(make_obligation):
    o = fulfil(make_obligation(due_at=vn(2021, 3, 16)), vn(2021, 3, 17, 8))

    before = to_facts(o, vn(2021, 3, 16, 12))
    after = to_facts(o, vn(2021, 3, 18))

    assert (before.status, before.received_at) == ("overdue", None)
    assert (after.status, after.received_at) == ("fulfilled_late", vn(2021, 3, 17, 8))
    assert after.received_at is not None and after.received_at.astimezone(UTC).hour == 1
