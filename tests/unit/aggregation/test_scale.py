"""Whatever the size of the subtree below a unit, its answers read the same few documents: the
country's cost what a commune's do (issue 13: rollups per ancestor, no request walks a
subtree)."""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime
from typing import Any

from aggregation.service import Aggregation
from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.activities import Activity, ActivityKind
from lhpn_shared.contracts.events import make_event
from lhpn_shared.contracts.units import UnitLevel
from tests.unit.aggregation.generated import NATIONAL_PLAN_ID, country, national_plan
from tests.unit.aggregation.memory import consume, store_of

AT = datetime(2021, 1, 1, tzinfo=LOCAL_TZ)
AS_OF = datetime(2021, 7, 1, tzinfo=LOCAL_TZ)


def counting(svc: Aggregation) -> list[tuple[str, Any]]:
    """Record every read the queries make of the store."""
    store = store_of(svc)
    reads: list[tuple[str, Any]] = []
    for name in ("get", "load", "all_docs", "unit_years_of", "read_list"):
        real = getattr(store, name)

        async def spy(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            reads.append((_name, args[0] if args else None))
            return await _real(*args, **kw)

        setattr(store, name, spy)
    return reads


async def answers(svc: Aggregation, unit_id: str) -> None:
    await svc.compliance(NATIONAL_PLAN_ID, unit_id, AS_OF)
    await svc.reporting_rates("monthly", "2021-03", unit_id)
    await svc.indicators(unit_id, "2021")
    await svc.case_stats(unit_id, "2021-H1")


async def test_the_country_s_answers_read_as_many_documents_as_a_commune_s():
    units = country(provinces=8, districts=40, communes=600)
    rng = random.Random(8)
    events = [make_event("unit.upserted", u, source="t", occurred_at=AT) for u in units]
    events.append(make_event("plan.published", national_plan(), source="t", occurred_at=AT))
    communes = [u for u in units if u.level is UnitLevel.commune]
    supervised = rng.sample(communes, 150)
    for unit in supervised:
        activity = Activity(
            activity_id=uuid.uuid4(),
            unit_id=unit.unit_id,
            kind=ActivityKind.supervision,
            occurred_on=date(2021, 3, rng.randint(1, 28)),
            title="Giám sát",
        )
        events.append(make_event("activity.recorded", activity, source="t", occurred_at=AT))
    svc = await consume(events, batch=1000)

    reads = counting(svc)
    await answers(svc, "VN")
    country_reads = list(reads)
    reads.clear()
    await answers(svc, communes[0].unit_id)
    assert len(country_reads) == len(reads) <= 12
    assert not {name for name, _ in country_reads} & {"load", "unit_years_of"}

    result = await svc.compliance(NATIONAL_PLAN_ID, "VN", AS_OF)
    t2 = next(t for t in result.targets if t.code == "T2")
    assert (t2.in_scope, t2.met) == (640, 150)
    assert sum(c.in_scope for c in t2.children) == 640 and len(t2.children) == 8
