"""The answers built from incremental facts equal a plain recount of the raw events, for the
province and every district of the real 2021 tree, whatever the order and however often the
events arrive."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from functools import cache

import pytest

from aggregation.domain.case_stats import case_stats
from aggregation.domain.compliance import compliance
from aggregation.domain.indicators import indicators
from aggregation.domain.rates import reporting_rates
from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.units import UnitLevel, UnitTree
from tests.unit.aggregation.generated import (
    Figures,
    Generated,
    Raw,
    generate,
    raw,
    reference_case_stats,
    reference_compliance,
    reference_indicators,
    reference_rates,
)
from tests.unit.aggregation.memory import MemoryReadModel

SEEDS = [20210, 460]
AS_OF = [
    datetime(2021, 5, 20, 10, 0, tzinfo=LOCAL_TZ),  # no half-year over yet
    datetime(2021, 6, 30, 17, 0, tzinfo=UTC),  # 1 July 00:00 local: the first half just over
    datetime(2021, 12, 31, 16, 59, 59, tzinfo=UTC),  # 31 December 23:59:59 local
    datetime(2021, 12, 31, 17, 30, tzinfo=UTC),  # 1 January 00:30 local: the year over
]
PERIODS = [
    "2021",
    "2021-H1",
    "2021-H2",
    "2021-Q1",
    "2021-Q3",
    "2021-01",
    "2021-03",
    "2021-12",
    "2020",
    "2022-01",
]


@cache
def world(seed: int) -> tuple[Generated, Raw, MemoryReadModel, UnitTree]:
    generated = generate(seed)
    model = MemoryReadModel().handle_all(generated.events)
    return generated, raw(generated.events), model, UnitTree(generated.units)


def roots(generated: Generated) -> list[str]:
    return [
        u.unit_id for u in generated.units if u.level in (UnitLevel.province, UnitLevel.district)
    ]


def _expected_percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 2) if whole else None


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("as_of", AS_OF, ids=lambda d: d.isoformat())
def test_compliance_equals_a_recount_of_the_events_for_the_province_and_every_district(seed, as_of):
    generated, events, model, tree = world(seed)
    counters = model.activity_counters_of(generated.plan.year)
    for root in roots(generated):
        result = compliance(generated.plan, tree, root, as_of, counters, with_units=True)
        reference = reference_compliance(generated.units, generated.plan, root, as_of, events)
        for target in result.targets:
            expected = reference[target.code]
            assert (target.in_scope, target.met) == (expected.total, expected.good), (
                root,
                target.code,
            )
            assert target.percent == _expected_percent(expected.good, expected.total)
            assert [u.unit_id for u in target.not_met] == expected.bad
            assert [u.unit_id for u in target.units if not u.met] == expected.bad
            assert len(target.units) == target.in_scope
            with_scope = {c for c, f in expected.children.items() if f.total}
            assert {c.unit_id for c in target.children} == with_scope
            for child in target.children:
                mine = expected.children[child.unit_id]
                assert (child.in_scope, child.met) == (mine.total, mine.good), (root, child.unit_id)
                assert [u.unit_id for u in child.not_met] == mine.bad


def test_the_generated_year_is_neither_all_met_nor_all_missed():
    generated, events, _, _ = world(SEEDS[0])
    reference = reference_compliance(generated.units, generated.plan, "54", AS_OF[-1], events)
    for code in ("T2", "T3", "T6"):
        assert 0 < reference[code].good < reference[code].total, code
    mid_may = reference_compliance(generated.units, generated.plan, "54", AS_OF[0], events)
    assert mid_may["T6"].good == 0  # no half-year over: nobody meets the each-half-year target


@pytest.mark.parametrize("seed", SEEDS)
def test_reporting_rates_equal_a_recount_for_every_schedule_period_and_subtree(seed):
    generated, events, model, tree = world(seed)
    reports = list(model.reports.values())
    for schedule in generated.plan.report_schedules:
        for period in schedule.periods:
            for root in roots(generated):
                result = reporting_rates(
                    generated.plan, tree, root, schedule.report_type, period.period, reports
                )
                expected = reference_rates(
                    generated.units,
                    generated.plan,
                    root,
                    schedule.report_type,
                    period.period,
                    events,
                )
                _assert_rates(result, expected)
                with_scope = {c for c, f in expected.children.items() if f.total}
                assert {c.unit_id for c in result.children} == with_scope
                for child in result.children:
                    _assert_rates(child, expected.children[child.unit_id])


def _assert_rates(result, expected: Figures) -> None:
    assert (result.expected, result.received, result.on_time) == (
        expected.total,
        expected.good,
        expected.on_time,
    )
    assert result.reporting_rate == _expected_percent(expected.good, expected.total)
    assert result.on_time_rate == _expected_percent(expected.on_time, expected.total)
    assert [u.unit_id for u in result.missing] == expected.bad
    assert [u.unit_id for u in result.late] == expected.late


@pytest.mark.parametrize("seed", SEEDS)
def test_indicator_totals_equal_a_recount_for_every_period_and_subtree(seed):
    generated, events, model, tree = world(seed)
    reports = list(model.reports.values())
    for period in PERIODS:
        counters = model.activity_counters_of(int(period[:4]))
        for root in roots(generated):
            result = indicators(tree, root, period, counters, reports)
            expected = reference_indicators(generated.units, root, period, events)
            assert result.reports == expected.reports
            by_code = {row.code: row for row in result.rows}
            assert set(expected.declared) <= set(by_code)
            for code, row in by_code.items():
                recorded, declared = expected.recorded.get(code, 0), expected.declared.get(code)
                assert (row.recorded, row.declared) == (recorded, declared), (period, root, code)
                assert row.differs == (declared is not None and declared != recorded)
            for totals in result.kinds:
                assert totals.activities == expected.activities.get(totals.kind.value, 0)


@pytest.mark.parametrize("seed", SEEDS)
def test_case_statistics_equal_a_recount_for_every_period_and_subtree(seed):
    generated, events, model, tree = world(seed)
    for period in PERIODS:
        counters = model.case_counters_of(int(period[:4]))
        for root in roots(generated):
            result = case_stats(tree, root, period, counters)
            expected = reference_case_stats(generated.units, root, period, events)
            assert (result.received, result.overdue) == (expected["received"], expected["overdue"])
            for name in ("by_kind", "by_topic", "by_status", "by_outcome", "by_flag"):
                mine = {k: n for k, n in getattr(result, name).items() if n}
                assert mine == dict(expected[name]), (period, root, name)


def _answers(generated: Generated, model: MemoryReadModel) -> list[dict]:
    tree = UnitTree(generated.units)
    plan = generated.plan
    reports = list(model.reports.values())
    out = []
    for root in ["54", "555", "22015"]:
        for as_of in AS_OF:
            result = compliance(
                plan, tree, root, as_of, model.activity_counters_of(2021), with_units=True
            )
            out.append(result.model_dump())
        for schedule in plan.report_schedules:
            for p in schedule.periods:
                out.append(
                    reporting_rates(
                        plan, tree, root, schedule.report_type, p.period, reports
                    ).model_dump()
                )
        for period in PERIODS:
            year = int(period[:4])
            out.append(
                indicators(
                    tree, root, period, model.activity_counters_of(year), reports
                ).model_dump()
            )
            out.append(case_stats(tree, root, period, model.case_counters_of(year)).model_dump())
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_events_delivered_twice_and_in_any_order_give_the_same_answers(seed):
    generated, _, model, _ = world(seed)
    shuffled = generated.events * 2
    random.Random(seed + 1).shuffle(shuffled)
    again = MemoryReadModel().handle_all(shuffled)
    assert _answers(generated, again) == _answers(generated, model)
    assert again.activities == model.activities
    assert again.reports == model.reports
    assert again.cases == model.cases


@pytest.mark.parametrize("seed", SEEDS)
def test_each_entity_s_events_in_reverse_order_give_the_same_answers(seed):
    generated, _, model, _ = world(seed)
    backwards = MemoryReadModel().handle_all(reversed(generated.events))
    assert _answers(generated, backwards) == _answers(generated, model)
