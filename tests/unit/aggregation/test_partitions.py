"""Issue 13, partitions: the same stream through the router and two partitions gives the answers
of one partition and of the independent recounts — a country (the central union above two
generated worlds: the real 2021 province with its plan, and two provinces joined by the July
2025 reorganisation), with events that arrive before their units (parked by the router), and a
central unit's own activity (counted once, from the partition that owns it)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest

from aggregation.batch import Event, parse_event
from aggregation.partitioned import PartitionedReads
from aggregation.router import Router
from aggregation.routing import EVERY, Route, Routes, partition_of
from aggregation.service import Aggregation
from lhpn_shared.clock import LOCAL_TZ, FixedClock
from lhpn_shared.contracts.activities import Activity
from lhpn_shared.contracts.events import Envelope, make_event
from lhpn_shared.contracts.units import LineageChange, Unit, UnitLevel, UnitLink
from tests.unit.aggregation import test_against_reference as reference_tests
from tests.unit.aggregation import test_reorganisation as reorganisation_tests
from tests.unit.aggregation.generated import (
    Generated,
    generate,
    national_plan,
    raw,
    reference_compliance,
    reference_indicators,
    setup_events,
)
from tests.unit.aggregation.memory import MemoryStore, consume, events_of
from tests.unit.aggregation.reorganisation import (
    PLAN_ID,
    Scenario,
    facts_of,
    recount_compliance,
    scenario,
)

NOW = datetime(2021, 7, 20, 9, 0, tzinfo=LOCAL_TZ)
CENTRAL = Unit(
    unit_id="VN", name="Trung ương Hội LHPN Việt Nam", kind="trung ương", level=UnitLevel.national
)


class MemoryRouterStore:
    def __init__(self) -> None:
        self.units: dict[str, dict[str, Any]] = {}
        self.parked: dict[str, dict[str, Any]] = {}
        self.stamp: str | None = None

    async def load_units(self) -> list[dict[str, Any]]:
        return list(self.units.values())

    async def load_parked(self) -> list[dict[str, Any]]:
        return [self.parked[k] for k in sorted(self.parked)]

    async def save(
        self, units: dict[str, str], parked: list[dict[str, Any]], released: list[str]
    ) -> None:
        self.units.update({i: {"_id": i, "json": j} for i, j in units.items()})
        self.parked.update({d["_id"]: d for d in parked})
        for doc_id in released:
            del self.parked[doc_id]

    async def read_stamp(self) -> str | None:
        return self.stamp

    async def write_stamp(self, value: str) -> None:
        self.stamp = value


def _under_central(unit: Unit) -> Unit:
    if unit.level is UnitLevel.province:
        return unit.model_copy(update={"parent_id": "VN"})
    return unit


@dataclasses.dataclass
class Country:
    generated: Generated
    world: Scenario
    events: list[Envelope]
    own: Envelope
    """an activity of the central union itself"""


def country() -> Country:
    generated = generate(reference_tests.SEEDS[0])
    generated = dataclasses.replace(generated, units=[_under_central(u) for u in generated.units])
    world = scenario(reorganisation_tests.SEED)
    world = dataclasses.replace(
        world,
        before=[_under_central(u) for u in world.before],
        after=[_under_central(u) for u in world.after],
    )
    at = datetime(2021, 1, 1, tzinfo=LOCAL_TZ)
    own = Activity.model_validate(
        {
            **generated.events[0].data,
            "activity_id": str(uuid.UUID(int=7)),
            "unit_id": "VN",
            "revision": 1,
        }
    )
    setup = setup_events(generated)  # the units, then the plan
    units, plan = setup[:-1], setup[-1]
    own_event = make_event("activity.recorded", own, source="t", occurred_at=at)
    early = generated.events[:1000]  # before their units: parked by the router
    events = [
        make_event("unit.upserted", CENTRAL, source="t", occurred_at=at),
        make_event("plan.published", national_plan(), source="t", occurred_at=at),
        plan,
        *early,
        *units,
        *generated.events[1000:],
        own_event,
        *world.events(),  # the reorganisation announced in the middle of the year's work
    ]
    return Country(generated, world, events, own_event)


async def partitioned(events: list[Envelope], partitions: int) -> tuple[Aggregation, list[int]]:
    """The stream through the router (batches of 300) and `partitions` writers (batches of
    500); the answers read every partition. Returns the service and each partition's share."""
    sent: dict[int, list[str]] = defaultdict(list)

    async def send(event: Event, partition: int, key: str) -> None:
        sent[partition].append(event.body)

    router = Router(MemoryRouterStore(), partitions, send)  # type: ignore[arg-type]
    parsed = events_of(events)
    for start in range(0, len(parsed), 300):
        await router.apply(parsed[start : start + 300])
    assert not router.parked
    stores = [MemoryStore() for _ in range(partitions)]
    reads = PartitionedReads(stores)  # type: ignore[arg-type]
    services = [Aggregation(s, FixedClock(NOW), reads) for s in stores]  # type: ignore[arg-type]
    for partition, svc in enumerate(services):
        bodies = sent[partition]
        for start in range(0, len(bodies), 500):
            await svc.apply(
                [
                    parse_event(b.encode(), publisher=None, owners=None)
                    for b in bodies[start : start + 500]
                ]
            )
    return services[0], [len(sent[p]) for p in range(partitions)]


_RUNS: dict[int, tuple[Country, Aggregation, list[int]]] = {}


async def run(partitions: int) -> tuple[Country, Aggregation, list[int]]:
    if partitions not in _RUNS:
        world = country()
        if partitions == 1:
            svc = await consume(world.events, clock=FixedClock(NOW))
            _RUNS[1] = (world, svc, [len(world.events)])
        else:
            svc, shares = await partitioned(world.events, partitions)
            _RUNS[partitions] = (world, svc, shares)
    return _RUNS[partitions]


async def answers(world: Country, svc: Aggregation) -> dict[str, object]:
    out: dict[str, object] = {}
    plans = [world.generated.plan, national_plan()]
    for root in ["VN", "54", "555", "22015"]:
        for plan in plans:
            for as_of in reference_tests.AS_OF:
                result = await svc.compliance(plan.plan_id, root, as_of, with_units=True)
                out[f"compliance {plan.plan_id} {root} {as_of}"] = result.model_dump()
            for schedule in plan.report_schedules:
                for p in schedule.periods:
                    rates = await svc.reporting_rates(
                        schedule.report_type, p.period, root, plan.plan_id
                    )
                    out[f"rates {plan.plan_id} {root} {p.period}"] = rates.model_dump()
        for period in reference_tests.PERIODS:
            out[f"indicators {root} {period}"] = (await svc.indicators(root, period)).model_dump()
            out[f"cases {root} {period}"] = (await svc.case_stats(root, period)).model_dump()
    out |= await reorganisation_tests.answers(svc, world.world)
    for as_of in reorganisation_tests.AS_OF:
        out[f"compliance VN {PLAN_ID} {as_of}"] = (
            await svc.compliance(PLAN_ID, "VN", as_of)
        ).model_dump()
    out["roots"] = await svc.roots()
    out["tree"] = sorted((await svc.unit_tree()).units)
    return out


async def test_two_partitions_answer_as_one_for_the_country_every_province_and_unit():
    world, one, _ = await run(1)
    _, two, shares = await run(2)
    assert min(shares) > 300  # both partitions did work
    assert {partition_of("54", 2), partition_of("A", 2)} == {0, 1}
    assert await answers(world, two) == await answers(world, one)


async def test_through_two_partitions_the_country_counts_a_central_units_own_activity_once():
    world, two, _ = await run(2)
    generated = world.generated
    events = raw([*generated.events, world.own])
    for period in ("2021", "2021-Q1", "2021-01"):
        year = await two.indicators("VN", period)
        expected = reference_indicators(generated.units, "VN", period, events)
        assert expected.activities  # the central union has activities of its own
        for totals in year.kinds:
            assert totals.activities == expected.activities.get(totals.kind.value, 0), period
    with_own = reference_indicators(generated.units, "VN", "2021", events)
    without = reference_indicators(generated.units, "VN", "2021", raw(generated.events))
    kind = world.own.data["kind"]
    assert with_own.activities[kind] == without.activities.get(kind, 0) + 1


@pytest.mark.parametrize("as_of", reference_tests.AS_OF, ids=lambda d: d.isoformat())
async def test_two_partitions_equal_the_recount_for_the_generated_province_and_its_districts(
    as_of,
):
    world, two, _ = await run(2)
    generated = world.generated
    events = raw(generated.events)
    for root in reference_tests.roots(generated):
        result = await two.compliance(generated.plan.plan_id, root, as_of, with_units=True)
        expected = reference_compliance(generated.units, generated.plan, root, as_of, events)
        for target in result.targets:
            mine = expected[target.code]
            assert (target.in_scope, target.met) == (mine.total, mine.good), (root, target.code)
            assert [u.unit_id for u in target.not_met] == mine.bad
    for period in ("2021", "2021-Q3", "2021-03"):
        indicators = await two.indicators("54", period)
        expected_totals = reference_indicators(generated.units, "54", period, events)
        for totals in indicators.kinds:
            assert totals.activities == expected_totals.activities.get(totals.kind.value, 0)


async def test_two_partitions_equal_the_recount_across_a_reorganisation_joining_two_provinces():
    world, two, _ = await run(2)
    facts = facts_of(world.world.events())
    checked = 0
    for root in ["A", "B", *sorted(world.world.merged)]:
        for as_of in reorganisation_tests.AS_OF:
            result = await two.compliance(PLAN_ID, root, as_of)
            expected = recount_compliance(facts, root, as_of)
            for target in result.targets:
                whole = expected[target.code].get("")
                assert (target.in_scope, target.met) == (
                    (whole.in_scope, whole.met) if whole else (0, 0)
                ), (root, as_of, target.code)
                checked += 1
    assert checked > 100


def _province(uid: str, **links: list[UnitLink]) -> Unit:
    return Unit(
        unit_id=uid,
        name=f"Tỉnh {uid}",
        kind="tỉnh",
        level=UnitLevel.province,
        parent_id="VN",
        **links,  # type: ignore[arg-type]
    )


def test_a_reorganisation_joins_provinces_into_one_key_and_says_when_a_group_moved():
    partitions = 5
    a, b = "A", "B"
    assert partition_of(a, partitions) != partition_of(b, partitions)
    routes = Routes(partitions)
    assert routes.add_units([CENTRAL, _province(a), _province(b)]) == []
    commune = Unit(unit_id="BX", name="Xã BX", kind="xã", level=UnitLevel.commune, parent_id=b)
    routes.add_units([commune])
    assert routes.route(commune).partition == partition_of(b, partitions)
    merged = _province(
        b,
        successors=[
            UnitLink(unit_id=a, on=datetime(2025, 7, 1).date(), change=LineageChange.MERGE)
        ],
    ).model_copy(update={"revision": 2})
    assert routes.add_units([merged]) == [b]  # B's events so far are in another partition
    assert routes.route(commune).key == a
    assert routes.route(CENTRAL).partition == EVERY
    quiet = Routes(partitions)  # the same join before any event was routed: nothing moved
    assert quiet.add_units([CENTRAL, _province(a), _province(b), commune, merged]) == []
    assert quiet.route(commune).key == a
    unknown = commune.model_copy(update={"unit_id": "CX", "parent_id": "DX"})
    assert routes.route(unknown) is None  # parked until its district arrives


async def test_the_router_parks_an_event_until_its_unit_and_the_units_above_it_arrive():
    sent: list[tuple[int, str]] = []

    async def send(event: Event, partition: int, key: str) -> None:
        sent.append((partition, key))

    store = MemoryRouterStore()
    router = Router(store, 2, send)  # type: ignore[arg-type]
    at = datetime(2025, 1, 1, tzinfo=UTC)
    district = Unit(
        unit_id="D1", name="Huyện 1", kind="huyện", level=UnitLevel.district, parent_id="P9"
    )
    generated = generate(1, activities=1, cases=0)
    activity = Activity.model_validate({**generated.events[0].data, "unit_id": "D1"})
    events = [
        make_event("activity.recorded", activity, source="t", occurred_at=at),
        make_event("unit.upserted", district, source="t", occurred_at=at),
    ]
    await router.apply(events_of(events))
    assert sent == [] and len(store.parked) == 2  # D1's province is not known yet
    restarted = Router(store, 2, send)  # type: ignore[arg-type]
    await restarted.apply(
        events_of([make_event("unit.upserted", _province("P9"), source="t", occurred_at=at)])
    )
    key = partition_of("P9", 2)
    assert sent == [(key, "P9")] * 3  # the province, then what waited for it, in order
    assert store.parked == {}


@pytest.mark.parametrize("doc_id", ["VN/2021", "VN/2025", "54/2021", "555/2021", "A/2025"])
async def test_the_partitions_documents_summed_are_the_document_of_one_partition(doc_id):
    """Counts, per-child counts and rosters alike, the central union's own entry once."""
    _, one, _ = await run(1)
    _, two, _ = await run(2)
    whole = await one.store.get("unit_years", doc_id)
    summed = await two.reads.get("unit_years", doc_id)
    assert whole is not None and summed is not None
    parts = {k: v for k, v in whole.items() if k != "days"}
    assert len(parts) > 4
    mine = {k: _parsed(v) for k, v in summed.items() if k != "days"}
    assert mine == {k: _parsed(v) for k, v in parts.items()}


def _parsed(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def test_the_router_sends_an_entitys_events_in_successive_waves_and_the_rest_at_once():
    from aggregation.batch import state_key
    from aggregation.router import waves

    generated = generate(3, activities=40, cases=0)
    events = events_of(generated.events)
    sends = [(e, Routes(2).route(e.data) or _anywhere) for e in events]
    found = waves(sends)
    assert sum(len(w) for w in found) == len(sends)
    assert len(found) < len(sends) / 4  # most go out together
    position = {id(e): n for n, w in enumerate(found) for e, _ in w}
    by_entity: dict[str, list[int]] = defaultdict(list)
    for event in events:
        by_entity[str(state_key(event.data))].append(position[id(event)])
    assert max(len(p) for p in by_entity.values()) > 2  # entities with several events
    for placed in by_entity.values():
        assert placed == sorted(placed) and len(set(placed)) == len(placed)


_anywhere = Route(0, "")
