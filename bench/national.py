"""A read model of national size for the aggregation benchmark, built in a few minutes.

Pushing two million activities through the broker would take hours here, so the activities are
written the way the consumer leaves them (each unit's own days and its subtree's monthly totals,
summed up every chain of ancestors), and everything else goes through the service's own writer
in process: the units, then the plan — whose publication makes the writer compute every unit's
standing from those days, as it would for a plan published after the activities — then a
month of reports from every unit expected to send one, and cases.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from pymongo import InsertOne

from aggregation.batch import Event, parse_event
from aggregation.domain.tree import chain, day_index
from aggregation.repository import AggregationStore, unit_year_doc, unit_year_id
from aggregation.service import Aggregation
from aggregation.settings import AggregationSettings
from lhpn_shared.clock import LOCAL_TZ, SystemClock
from lhpn_shared.contracts.activities import METRICS, ActivityKind
from lhpn_shared.contracts.cases import CaseChannel, CaseFacts, CaseKind, CaseTopic
from lhpn_shared.contracts.events import Envelope, make_event
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.reports import Report
from lhpn_shared.contracts.units import Unit, UnitTree
from lhpn_shared.mongo import database, make_client

YEAR = 2021
REPORTED_PERIODS = ("2021-03", "2021-09")


@dataclass
class Built:
    activities: int
    reports: int
    cases: int
    seconds: dict[str, float]


def _events(envelopes: Sequence[Envelope]) -> list[Event]:
    return [
        parse_event(e.model_dump_json().encode(), publisher=None, owners=None) for e in envelopes
    ]


async def _apply(svc: Aggregation, events: list[Event], batch: int = 2000) -> None:
    for start in range(0, len(events), batch):
        await svc.apply(events[start : start + batch])


def _own_activities(
    units: list[Unit], activities: int, rng: random.Random
) -> dict[str, tuple[dict[str, list[int]], Counter[tuple[str, ...]]]]:
    """unit → (own days by kind, own monthly totals flattened), `activities` spread unevenly
    (a tenth of the units nearly idle)."""
    weights = [0.05 if rng.random() < 0.1 else rng.uniform(0.5, 1.5) for _ in units]
    per_unit = [0] * len(units)
    for i in rng.choices(range(len(units)), weights, k=activities):
        per_unit[i] += 1
    kinds = list(ActivityKind)
    start = date(YEAR, 1, 1)
    out = {}
    for unit, n in zip(units, per_unit, strict=True):
        days: dict[str, list[int]] = {}
        totals: Counter[tuple[str, ...]] = Counter()
        for _ in range(n):
            kind = kinds[int(rng.random() * len(kinds))]
            day = start + timedelta(days=int(rng.random() * 365))
            days.setdefault(kind.value, []).append(day_index(YEAR, day))
            month = f"{day.month:02d}"
            totals[(kind.value, month, "n")] += 1
            for name in METRICS[kind]:
                totals[(kind.value, month, "m", name)] += int(rng.random() * 20)
        out[unit.unit_id] = ({k: sorted(v) for k, v in days.items()}, totals)
    return out


def _nested(flat: Counter[tuple[str, ...]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for path, value in flat.items():
        if not value:
            continue
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})  # type: ignore[assignment]
        node[path[-1]] = value  # type: ignore[index]
    return out


async def build(
    settings: AggregationSettings, units: list[Unit], plan: Plan, activities: int, cases: int
) -> Built:
    import time

    rng = random.Random(10_600)
    seconds: dict[str, float] = {}
    client = make_client(settings)
    store = AggregationStore(database(client, settings.database))
    svc = Aggregation(store, SystemClock())
    at = datetime(YEAR, 1, 1, tzinfo=LOCAL_TZ)
    try:
        started = time.perf_counter()
        await _apply(
            svc,
            _events(
                [make_event("unit.upserted", u, source="bench", occurred_at=at) for u in units]
            ),
        )
        seconds["units"] = time.perf_counter() - started

        started = time.perf_counter()
        tree = UnitTree(units)
        own = _own_activities(units, activities, rng)
        subtree: dict[str, Counter[tuple[str, ...]]] = {u.unit_id: Counter() for u in units}
        for unit_id, (_, totals) in own.items():
            for ancestor in chain(tree, unit_id):
                subtree[ancestor].update(totals)
        ops = []
        for unit in units:
            days, _ = own[unit.unit_id]
            parts = {
                "activities": json.dumps(_nested(subtree[unit.unit_id]), separators=(",", ":"))
            }
            if days:
                parts["days"] = json.dumps(days, separators=(",", ":"))
            doc_id = unit_year_id(unit.unit_id, YEAR)
            ops.append(InsertOne(unit_year_doc(doc_id, unit.unit_id, YEAR, parts)))
        for start in range(0, len(ops), 500):
            await store.coll("unit_years").bulk_write(ops[start : start + 500], ordered=False)
        await store.write_list("years", [YEAR])
        seconds["activities"] = time.perf_counter() - started

        started = time.perf_counter()
        await svc.apply(
            _events([make_event("plan.published", plan, source="bench", occurred_at=at)])
        )
        seconds["plan"] = time.perf_counter() - started

        started = time.perf_counter()
        monthly = plan.schedule("monthly")
        assert monthly is not None
        reports = []
        for period_key in REPORTED_PERIODS:
            period = monthly.period(period_key)
            assert period is not None
            for unit in units:
                if unit.level not in monthly.levels or rng.random() < 0.12:
                    continue
                due = period.due_at[unit.level]
                received = due + timedelta(hours=rng.randint(-150, 40))
                report = Report(
                    report_id=uuid.UUID(int=rng.getrandbits(128)),
                    unit_id=unit.unit_id,
                    report_type="monthly",
                    period=period_key,
                    indicators={c: rng.randint(0, 30) for c in monthly.indicators[:12]},
                    received_at=received,
                    due_at=due,
                    on_time=received < due,
                )
                reports.append(
                    make_event("report.submitted", report, source="bench", occurred_at=at)
                )
        opened = []
        for _ in range(cases):
            unit = rng.choice(units)
            received_on = date(YEAR, 1, 1) + timedelta(days=rng.randrange(365))
            facts = CaseFacts(
                case_id=uuid.UUID(int=rng.getrandbits(128)),
                unit_id=unit.unit_id,
                kind=rng.choice(list(CaseKind)),
                topic=rng.choice(list(CaseTopic)),
                channel=rng.choice(list(CaseChannel)),
                status="received",
                received_on=received_on,
                flags=rng.sample(
                    ["poor_household", "ethnic_minority", "disability"], rng.randint(0, 2)
                ),
                next_due_at=datetime.combine(
                    received_on + timedelta(days=11), datetime.min.time(), tzinfo=LOCAL_TZ
                ),
            )
            opened.append(
                make_event("case.opened", facts, source="bench", occurred_at=datetime.now(UTC))
            )
        await _apply(svc, _events(reports + opened))
        seconds["reports and cases"] = time.perf_counter() - started
        return Built(activities, len(reports), len(opened), seconds)
    finally:
        await client.close()
