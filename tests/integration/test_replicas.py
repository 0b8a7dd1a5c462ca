"""Two processes of each consumer service over one stream give what one process gives (issue
13): the same stream — every inbound message sent twice, in a shuffled order — goes once
through a stack with one replica of each service and once through a stack with two, each on
fresh databases; both end with the same answers, equal to an independent recount, and nothing
is refused, lost or counted twice."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from lhpn_shared.broker import TOPOLOGY
from lhpn_shared.contracts.events import Envelope
from tests.integration.aggregation.streams import activity_event, answers
from tests.integration.faults.test_broker_restart import (
    AGGREGATED,
    TYPES,
    assert_aggregation_equals_recount,
    assert_reminders_complete,
    cases_know_every_unit,
    inbound_stream,
    report_key,
)
from tests.support.amqp import drain_queue, purge_queues
from tests.support.capture import Capture, RetryingPublisher
from tests.support.http import eventually
from tests.support.infra import DevMongo, RabbitVhost
from tests.support.stack import Stack, running_stack, stack_settings
from tests.unit.aggregation.generated import Generated, load_plan, load_units

pytestmark = pytest.mark.integration

SEED = 1313
CONSUMED = {  # the queue each replica of a service consumes
    "intake": "intake.inbound",
    "cases": "cases.inbound",
    "reminders": "reminders.events",
    "aggregation": "aggregation.events",
}


@dataclass
class Outcome:
    aggregation: dict[str, Any]
    obligations: dict[str, str]
    cases: list[str]
    activities: list[str]
    received: dict[str, list[int]]
    """per service, the deliveries each replica received from its queue"""


def the_stream(within: str) -> tuple[list[Envelope], dict[str, set[Any]]]:
    """New activities, reports and cases as the vhost's inbound system sends them, each twice
    (a system retrying), shuffled; and what intake and cases must republish."""
    activities, reports, cases = inbound_stream(within)
    expected = {
        "activity.recorded": {e.data["activity_id"] for e in activities},
        "report.submitted": {report_key(e.data) for e in reports},
        "case.opened": {e.data["case_id"] for e in cases},
    }
    stream = (activities + reports + cases) * 2
    random.Random(SEED).shuffle(stream)
    return stream, expected


def republished(capture: Capture) -> dict[str, set[Any]]:
    return {
        "activity.recorded": {e.data["activity_id"] for e in capture.of_type("activity.recorded")},
        "report.submitted": {report_key(e.data) for e in capture.of_type("report.submitted")},
        "case.opened": {e.data["case_id"] for e in capture.of_type("case.opened")},
    }


async def run(rabbit: RabbitVhost, devmongo: DevMongo, replicas: int) -> Outcome:
    await purge_queues(rabbit.url, *TOPOLOGY, *(f"{q}.dlq" for q in TOPOLOGY))
    stream, expected = the_stream(rabbit.system.binding.unit_id)
    settings = stack_settings(rabbit, devmongo.url, mongo_timeout_ms=5000)
    async with (
        Capture(rabbit.url, f"test.replicas.{replicas}", AGGREGATED) as capture,
        running_stack(settings, replicas) as stack,
    ):
        assert all(len(r) == replicas for r in stack.replicas.values())
        await eventually(lambda: cases_know_every_unit(stack), timeout=60)
        async with RetryingPublisher(rabbit.system.url, rabbit.system.user) as publisher:
            for event in stream:
                await publisher.publish(event)

        async def all_republished() -> bool:
            return republished(capture) == expected

        await eventually(all_republished, timeout=120, interval=0.5)

        async def aggregation_caught_up() -> bool:
            try:
                await assert_aggregation_equals_recount(stack, capture.of_type(*TYPES))
            except AssertionError:
                return False
            return True

        await eventually(aggregation_caught_up, timeout=120, interval=1.0)

        async def reminders_caught_up() -> bool:
            try:
                await assert_reminders_complete(stack, capture.of_type("report.submitted"))
            except AssertionError:
                return False
            return True

        await eventually(reminders_caught_up, timeout=60, interval=0.5)
        await assert_each_entity_announced_once(capture)
        # no replica refused anything: a race between two replicas would end in a DLQ
        refused = {
            q: [str(m.headers.get("x-rejection-reason")) for m in found]
            for q in TOPOLOGY
            if (found := await drain_queue(rabbit.url, f"{q}.dlq", timeout=0.5))
        }
        assert refused == {}
        assert await stack.all_ready(), await stack.readiness()
        return Outcome(
            aggregation=await answers(
                stack.clients["aggregation"],
                stack.admin(),
                Generated(load_units(), load_plan()),
            ),
            obligations={
                o["obligation_id"]: o["status"]
                for o in await stack.pages("reminders", "obligations")
            },
            cases=sorted(c["case_id"] for c in await stack.pages("cases", "cases")),
            activities=sorted(a["activity_id"] for a in await stack.pages("intake", "activities")),
            received=received_per_replica(stack),
        )


async def assert_each_entity_announced_once(capture: Capture) -> None:
    """Two intake (cases) replicas given the same message twice stored it once: one event id
    per activity, report and case on `lhpn.events` (a relay may publish an event twice; never
    two events for one inbound message)."""
    ids: dict[tuple[str, Any], set[str]] = defaultdict(set)
    for e in capture.of_type("activity.recorded", "report.submitted", "case.opened"):
        key = report_key(e.data) if e.type == "report.submitted" else entity_id(e)
        ids[(e.type, key)].add(str(e.event_id))
    assert {k: v for k, v in ids.items() if len(v) > 1} == {}


def entity_id(event: Envelope) -> Any:
    return event.data.get("activity_id") or event.data.get("case_id")


def received_per_replica(stack: Stack) -> dict[str, list[int]]:
    return {
        name: [
            app.state.background.consumers.queue(CONSUMED[name]).received_total
            for app, _ in stack.replicas[name]
        ]
        for name in CONSUMED
    }


@pytest.mark.timeout(600)
@pytest.mark.slow
async def test_two_replicas_of_each_consumer_give_the_answers_of_one_with_nothing_refused_or_doubled(  # noqa: E501
    rabbit: RabbitVhost, devmongo: DevMongo
) -> None:
    one = await run(rabbit, devmongo, replicas=1)
    two = await run(rabbit, devmongo, replicas=2)

    assert two.aggregation == one.aggregation
    assert two.obligations == one.obligations
    assert two.cases == one.cases and len(set(two.cases)) == len(two.cases)
    assert two.activities == one.activities and len(set(two.activities)) == len(two.activities)
    # the work really was shared: both replicas of each competing consumer took deliveries
    for name in ("intake", "cases", "reminders"):
        assert all(n > 0 for n in two.received[name]), two.received
    print(f"deliveries per replica: {two.received}")


NEW_COMMUNES = ("99901", "99902", "99903", "99904")
SIBLING = "22015"
"""an existing commune of the same district, valid all year"""


@pytest.mark.timeout(300)
async def test_units_created_through_one_replica_are_known_to_the_other_replicas_of_every_consumer(
    rabbit: RabbitVhost, devmongo: DevMongo
) -> None:
    """Each replica keeps the unit tree in memory, filled by what it consumed itself: a unit
    created through the second intake replica must still be accepted by the first on the
    inbound queue, and get its obligations from whichever reminders replica its event reached
    (the unit's ancestors came to the other one)."""
    await purge_queues(rabbit.url, *TOPOLOGY, *(f"{q}.dlq" for q in TOPOLOGY))
    settings = stack_settings(rabbit, devmongo.url, mongo_timeout_ms=5000)
    async with (
        Capture(rabbit.url, "test.replicas.units", AGGREGATED) as capture,
        running_stack(settings, replicas=2) as stack,
    ):
        await eventually(lambda: cases_know_every_unit(stack), timeout=60)
        _, second_intake = stack.replicas["intake"][1]
        for unit_id in NEW_COMMUNES:
            created = await second_intake.post(
                "/api/v1/units",
                json={
                    "unit_id": unit_id,
                    "name": f"Xã Mới {unit_id}",
                    "kind": "xã",
                    "level": "commune",
                    "parent_id": "555",
                    "effective_on": "2021-01-01",
                },
                headers=stack.admin(),
            )
            assert created.status_code == 201, created.text
        activities = [
            activity_event(unit_id, "supervision", date(2021, 3, day))
            for unit_id in NEW_COMMUNES
            for day in range(1, 6)
        ]
        async with RetryingPublisher(rabbit.system.url, rabbit.system.user) as publisher:
            for event in activities:
                await publisher.publish(event)
        wanted = {e.data["activity_id"] for e in activities}

        async def all_republished() -> bool:
            return wanted <= republished(capture)["activity.recorded"]

        await eventually(all_republished, timeout=60, interval=0.5)
        assert all(
            app.state.background.consumers.queue("intake.inbound").received_total > 0
            for app, _ in stack.replicas["intake"]
        )

        async def owed(unit_id: str) -> set[tuple[str, str]]:
            items = await stack.pages("reminders", "obligations", unit_id=unit_id)
            return {(o["report_type"], o["period"]) for o in items}

        sibling = await owed(SIBLING)
        assert sibling  # the plan expects reports of communes

        async def every_new_commune_owes_what_its_sibling_owes() -> bool:
            return all([await owed(u) == sibling for u in NEW_COMMUNES])

        await eventually(every_new_commune_owes_what_its_sibling_owes, timeout=30, interval=0.5)
        refused = {
            q: [str(m.headers.get("x-rejection-reason")) for m in found]
            for q in TOPOLOGY
            if (found := await drain_queue(rabbit.url, f"{q}.dlq", timeout=0.5))
        }
        assert refused == {}
