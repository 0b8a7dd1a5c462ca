"""The compact day index the compliance cache keeps counts exactly what the counters count."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from aggregation.domain.day_index import DayIndex
from aggregation.domain.facts import ActivityDelta, DayWindow, UnitActivityCounters
from lhpn_shared.contracts.activities import ActivityKind
from tests.unit.aggregation.generated import generate
from tests.unit.aggregation.memory import MemoryReadModel


def windows(rng: random.Random, year: int) -> list[DayWindow]:
    out = [DayWindow.of(year, date(year, 1, 1), date(year, 12, 31))]
    for _ in range(40):
        first = date(year, 1, 1) + timedelta(days=rng.randrange(365))
        last = first + timedelta(days=rng.randrange(-30, 200))
        out.append(DayWindow.of(year, first, last))
    return out


def test_a_day_index_counts_like_the_counters_for_any_kinds_and_days():
    model = MemoryReadModel().handle_all(generate(11).events)
    rng = random.Random(11)
    kinds = [k.value for k in ActivityKind]
    checked = 0
    for counters in model.activity_counters_of(2021).values():
        index = DayIndex.from_counters(counters.to_document())
        for window in windows(rng, 2021):
            chosen = rng.sample(kinds, rng.randint(1, 3))
            assert index.count(chosen, window) == counters.count(chosen, window)
            checked += 1
    assert checked > 1000


def test_a_day_index_follows_the_deltas_the_counters_get():
    counters = UnitActivityCounters("22015", 2021)
    index = DayIndex("22015", 2021)
    rng = random.Random(3)
    alive: list[ActivityDelta] = []
    for _ in range(300):
        if alive and rng.random() < 0.4:
            removed = alive.pop(rng.randrange(len(alive)))
            delta = removed.model_copy(update={"sign": -1})
        else:
            delta = ActivityDelta(
                unit_id="22015",
                kind=rng.choice(list(ActivityKind)),
                occurred_on=date(2021, 1, 1) + timedelta(days=rng.randrange(365)),
                sign=1,
            )
            alive.append(delta)
        counters.apply(delta)
        index.apply(delta)
    for window in windows(rng, 2021):
        for kind in ActivityKind:
            assert index.count([kind.value], window) == counters.count([kind.value], window)
    rebuilt = DayIndex.from_counters(counters.to_document())
    assert rebuilt.days == {k: v for k, v in index.days.items() if v}


def test_removing_an_activity_the_index_never_had_is_refused():
    index = DayIndex("22015", 2021)
    delta = ActivityDelta(
        unit_id="22015", kind=ActivityKind.training, occurred_on=date(2021, 3, 5), sign=-1
    )
    with pytest.raises(ValueError, match="no activity"):
        index.apply(delta)
