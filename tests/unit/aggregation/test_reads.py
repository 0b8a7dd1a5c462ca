"""The read side's own work: parsed documents reused only while their text is the same, and
the rates of several periods in one call."""

from __future__ import annotations

import pytest

from aggregation.api import MAX_PERIODS, _periods
from aggregation.errors import BadInput
from aggregation.parsed import ParsedTexts
from aggregation.service import NotFound
from lhpn_shared.contracts.activities import ActivityKind
from tests.unit.aggregation.memory import consume, service, store_of
from tests.unit.aggregation.test_queries import World, vn


def test_a_text_seen_before_is_not_parsed_again_and_a_changed_one_is():
    parsed = ParsedTexts()
    first = parsed.get("k", '{"a": 1}', lambda t: {"n": len(t)})
    again = parsed.get("k", '{"a": 1}', lambda t: {"n": -1})
    changed = parsed.get("k", '{"a": 2, "b": 3}', lambda t: {"n": len(t)})
    assert again is first and changed == {"n": 16} and parsed.parsed == 2


def test_the_kept_texts_stay_within_their_bounds_least_recently_used_first():
    parsed = ParsedTexts(max_chars=40, max_entries=3)
    for key in "abc":
        parsed.get(key, key * 10, str.upper)
    parsed.get("a", "a" * 10, str.upper)  # used again: now the most recent
    parsed.get("d", "d" * 10, str.upper)  # 40 chars, 4 entries: "b" goes
    assert len(parsed) == 3
    parsed.get("b", "b" * 10, str.upper)
    assert parsed.parsed == 5  # "b" parsed again, "a" was not
    parsed.get("huge", "x" * 11, str.upper)  # over a quarter of the bound: never kept
    assert "huge" not in parsed._entries


async def test_an_answer_follows_the_documents_written_after_it_was_first_given():
    world = World()
    svc = await world.service()
    before = await svc.compliance(world.plan.plan_id, world.province.unit_id, vn(2021, 12, 31))
    again = await svc.compliance(world.plan.plan_id, world.province.unit_id, vn(2021, 12, 31))
    assert again == before
    # another process (same store, its own writer) records an activity
    other, _ = service(store_of(svc))
    world.events.clear()
    world.did(world.idle, ActivityKind.supervision, vn(2021, 3, 1).date())
    await consume(world.events, svc=other)
    after = await svc.compliance(world.plan.plan_id, world.province.unit_id, vn(2021, 12, 31))
    assert (after.targets[0].met, before.targets[0].met) == (before.targets[0].met + 1, 0)


async def test_the_rates_of_several_periods_are_those_of_one_call_each_in_the_order_asked():
    world = World()
    world.reported(world.busy, True)
    world.reported(world.district, False)
    world.reported(world.idle, True, period="2021-05")
    svc = await world.service()
    unit = world.province.unit_id
    asked = [("monthly", "2021-06"), ("monthly", "2021-06")]
    several = await svc.reporting_rates_of(asked, unit, list_limit=1)
    one = await svc.reporting_rates("monthly", "2021-06", unit, list_limit=1)
    assert several == [one, one]
    assert (one.expected, one.received, one.on_time, len(one.missing)) == (3, 2, 1, 1)
    with pytest.raises(NotFound, match="'2021-07'"):
        await svc.reporting_rates_of([("monthly", "2021-06"), ("monthly", "2021-07")], unit)


def test_periods_are_read_as_type_and_period_pairs_and_anything_else_is_refused_by_name():
    assert _periods("monthly:2021-03, quarterly:2021-Q1") == [
        ("monthly", "2021-03"),
        ("quarterly", "2021-Q1"),
    ]
    for bad in ("", "monthly", "monthly:", ":2021-03", ",".join(["m:1"] * (MAX_PERIODS + 1))):
        with pytest.raises(BadInput, match=r"^periods: "):
            _periods(bad)


async def test_the_warm_up_parses_what_the_root_s_first_answers_read_and_keeps_no_answer():
    world = World()
    svc = await world.service()
    await svc.warm()
    parsed = svc.parsed.parsed
    assert parsed > 0
    first = await svc.compliance(world.plan.plan_id, world.province.unit_id, vn(2021, 12, 31))
    await svc.case_stats(world.province.unit_id, "2021")
    assert svc.parsed.parsed == parsed  # nothing parsed again: the same texts
    world.events.clear()
    world.did(world.idle, ActivityKind.supervision, vn(2021, 3, 1).date())
    await consume(world.events, svc=svc)
    after = await svc.compliance(world.plan.plan_id, world.province.unit_id, vn(2021, 12, 31))
    assert after.targets[0].met == first.targets[0].met + 1
