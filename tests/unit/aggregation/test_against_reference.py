"""The answers built from the rollups equal a plain recount of the raw events, for the
province and every district of the real 2021 tree, whatever the order and however often the
events arrive, and whatever size the batches are."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from aggregation.service import Aggregation
from lhpn_shared.clock import LOCAL_TZ, FixedClock
from lhpn_shared.contracts.units import UnitLevel
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
    stream,
)
from tests.unit.aggregation.memory import consume, events_of, service, store_of

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


NOW = datetime(2021, 7, 20, 9, 0, tzinfo=LOCAL_TZ)
"""The service's clock: cases become overdue when their deadline passes before it."""
_WORLDS: dict[int, tuple[Generated, Raw, Aggregation]] = {}


async def world(seed: int) -> tuple[Generated, Raw, Aggregation]:
    """The generated province consumed in order, in batches of 500 (computed once per seed)."""
    if seed not in _WORLDS:
        generated = generate(seed)
        svc = await consume(stream(generated), clock=FixedClock(NOW))
        _WORLDS[seed] = (generated, raw(generated.events), svc)
    return _WORLDS[seed]


def roots(generated: Generated) -> list[str]:
    return [
        u.unit_id for u in generated.units if u.level in (UnitLevel.province, UnitLevel.district)
    ]


def _expected_percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 2) if whole else None


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("as_of", AS_OF, ids=lambda d: d.isoformat())
async def test_compliance_equals_a_recount_of_the_events_for_the_province_and_every_district(
    seed, as_of
):
    generated, events, svc = await world(seed)
    for root in roots(generated):
        result = await svc.compliance(generated.plan.plan_id, root, as_of, with_units=True)
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


async def test_the_generated_year_is_neither_all_met_nor_all_missed():
    generated, events, _ = await world(SEEDS[0])
    reference = reference_compliance(generated.units, generated.plan, "54", AS_OF[-1], events)
    for code in ("T2", "T3", "T6"):
        assert 0 < reference[code].good < reference[code].total, code
    mid_may = reference_compliance(generated.units, generated.plan, "54", AS_OF[0], events)
    assert mid_may["T6"].good == 0  # no half-year over: nobody meets the each-half-year target


@pytest.mark.parametrize("seed", SEEDS)
async def test_reporting_rates_equal_a_recount_for_every_schedule_period_and_subtree(seed):
    generated, events, svc = await world(seed)
    for schedule in generated.plan.report_schedules:
        for period in schedule.periods:
            for root in roots(generated):
                result = await svc.reporting_rates(schedule.report_type, period.period, root)
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
async def test_indicator_totals_equal_a_recount_for_every_period_and_subtree(seed):
    generated, events, svc = await world(seed)
    for period in PERIODS:
        for root in roots(generated):
            result = await svc.indicators(root, period)
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
async def test_case_statistics_equal_a_recount_for_every_period_and_subtree(seed):
    generated, events, svc = await world(seed)
    for period in PERIODS:
        for root in roots(generated):
            result = await svc.case_stats(root, period)
            expected = reference_case_stats(generated.units, root, period, events, NOW)
            assert (result.received, result.overdue) == (expected["received"], expected["overdue"])
            for name in ("by_kind", "by_topic", "by_status", "by_outcome", "by_flag"):
                mine = {k: n for k, n in getattr(result, name).items() if n}
                assert mine == dict(expected[name]), (period, root, name)


async def _answers(generated: Generated, svc: Aggregation) -> list[dict]:
    plan = generated.plan
    out = []
    for root in ["54", "555", "22015"]:
        for as_of in AS_OF:
            result = await svc.compliance(plan.plan_id, root, as_of, with_units=True)
            out.append(result.model_dump())
        for schedule in plan.report_schedules:
            for p in schedule.periods:
                rates = await svc.reporting_rates(schedule.report_type, p.period, root)
                out.append(rates.model_dump())
        for period in PERIODS:
            out.append((await svc.indicators(root, period)).model_dump())
            out.append((await svc.case_stats(root, period)).model_dump())
    return out


async def test_events_delivered_twice_and_in_any_order_give_the_same_answers():
    seed = SEEDS[0]
    generated, _, svc = await world(seed)
    shuffled = stream(generated) * 2
    random.Random(seed + 1).shuffle(shuffled)
    again = await consume(shuffled, batch=337, clock=FixedClock(NOW))
    assert await _answers(generated, again) == await _answers(generated, svc)
    assert store_of(again).read_models() == store_of(svc).read_models()


async def test_each_entity_s_events_in_reverse_order_give_the_same_answers():
    seed = SEEDS[1]
    generated, _, svc = await world(seed)
    backwards = await consume(reversed(stream(generated)), batch=50, clock=FixedClock(NOW))
    assert await _answers(generated, backwards) == await _answers(generated, svc)
    assert store_of(backwards).read_models() == store_of(svc).read_models()


async def test_one_event_per_batch_gives_the_same_read_models():
    small = generate(SEEDS[0], activities=150, cases=30)
    one = await consume(stream(small), batch=1, clock=FixedClock(NOW))
    many = await consume(stream(small), batch=1000, clock=FixedClock(NOW))
    assert store_of(one).read_models() == store_of(many).read_models()


async def test_writers_taking_turns_on_one_store_leave_the_documents_one_writer_leaves():
    """The writer keeps the documents it wrote; another writer's batches (a standby consumer
    taking over, a rebuild) must make it read them again."""
    small = generate(SEEDS[1], activities=400, cases=60)
    events = events_of(stream(small))
    one = await consume(stream(small), batch=100, clock=FixedClock(NOW))
    first, store = service(clock=FixedClock(NOW))
    second, _ = service(store, clock=FixedClock(NOW))
    for turn, start in enumerate(range(0, len(events), 100)):
        writer = (first, second)[turn % 3 == 2]  # two batches by one, then one by the other
        await writer.apply(events[start : start + 100])
    assert store.read_models() == store_of(one).read_models()
