"""At the size of the country (63 provinces, 700 districts, 10,600 communes) the answers are
computed from the per-unit counters alone, in well under a request's time."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

from aggregation.domain.compliance import compliance
from aggregation.domain.facts import UnitActivityCounters
from aggregation.domain.indicators import indicators
from lhpn_shared.contracts.units import Unit, UnitLevel, UnitTree
from tests.unit.aggregation.generated import country, load_plan

BUDGET_SECONDS = 10  # measured ≈ 0.3 s; the budget only catches a change of complexity


def counters_for(
    units: list[Unit], rng: random.Random
) -> tuple[dict[str, UnitActivityCounters], int]:
    """Per unit, supervision on a few random days (none for about one unit in ten); returns
    the counters and how many district and commune units have a supervision by 1 July (local)."""
    out: dict[str, UnitActivityCounters] = {}
    by_july = 0
    for unit in units:
        days = [
            (rng.randint(1, 12), rng.randint(1, 28))
            for _ in range(rng.choice([0, 1, 2, 3, 5, 8, 13, 20, 40, 60]))
        ]
        months: dict[str, dict] = {}
        for month, day in days:
            m = months.setdefault(f"{month:02d}", {"activities": 0, "metrics": {}, "days": {}})
            m["activities"] += 1
            m["days"][f"{day:02d}"] = m["days"].get(f"{day:02d}", 0) + 1
        kinds = (
            {"supervision": {"activities": len(days), "metrics": {}, "months": months}}
            if days
            else {}
        )
        out[unit.unit_id] = UnitActivityCounters.from_document(
            {"unit_id": unit.unit_id, "year": 2021, "kinds": kinds}
        )
        if unit.level is not UnitLevel.province and any(
            (month, day) <= (7, 1) for month, day in days
        ):
            by_july += 1
    return out, by_july


def test_country_wide_compliance_and_indicators_come_from_the_counters_in_time():
    units = country()
    tree = UnitTree(units)
    counters, by_july = counters_for(units, random.Random(10_600))
    plan = load_plan()

    started = time.perf_counter()
    as_of = datetime(2021, 6, 30, 17, tzinfo=UTC)  # 1 July 00:00 local
    result = compliance(plan, tree, "VN", as_of, counters)
    took = time.perf_counter() - started
    print(f"country-wide compliance: {took:.3f} s")
    assert took < BUDGET_SECONDS
    t2 = next(t for t in result.targets if t.code == "T2")
    assert (t2.in_scope, t2.met) == (11_300, by_july)
    assert sum(c.in_scope for c in t2.children) == 11_300 and len(t2.children) == 63

    started = time.perf_counter()
    totals = indicators(tree, "VN", "2021", counters, [])
    took = time.perf_counter() - started
    print(f"country-wide indicators: {took:.3f} s")
    assert took < BUDGET_SECONDS
    recorded = {r.code: r.recorded for r in totals.rows}
    assert recorded["supervision.count"] == sum(
        c.kinds["supervision"]["activities"] for c in counters.values() if c.kinds
    )
