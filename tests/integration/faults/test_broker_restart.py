"""RabbitMQ's application is stopped and started twice while events stream in (issue 15): every
consumer of every service resumes, every read model ends equal to the stream, and no queue is
left holding unacknowledged messages. Runs against a private RabbitMQ node — the shared one is
never restarted."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from lhpn_shared.broker import TOPOLOGY
from lhpn_shared.contracts.events import Envelope, parse_data
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.units import Unit, UnitTree
from tests.integration.aggregation.streams import AS_OF, PERIODS, PLAN_ID, answers, roots
from tests.support.amqp import drain_queue
from tests.support.broker_node import BrokerNode
from tests.support.capture import Capture, RetryingPublisher
from tests.support.http import eventually
from tests.support.infra import DevMongo, RabbitVhost
from tests.support.stack import Stack, running_stack, stack_settings
from tests.unit.aggregation.generated import (
    Figures,
    Generated,
    generate,
    load_plan,
    load_units,
    raw,
    reference_case_stats,
    reference_compliance,
    reference_indicators,
    reference_rates,
)

pytestmark = pytest.mark.integration

SEED = 1515
ACTIVITIES, REPORTS, CASES = 300, 300, 60
"""generated; those of units outside the inbound system's subtree are left out"""
RESTART_AT = (0.2, 0.6)
"""the share of the stream sent when each restart begins"""
OUTAGE_SECONDS = 2.0
"""how long the application stays stopped (the scenario, not a wait for a result)"""
CAPTURE = "test.capture"
AGGREGATED = TOPOLOGY["aggregation.events"].routing_keys


def inbound_stream(within: str) -> tuple[list[Envelope], list[Envelope], list[Envelope]]:
    """New activities and first submissions of reports (for intake), new cases (for cases), as
    another system bound to the subtree of `within` publishes them on `lhpn.inbound`."""
    generated = generate(SEED, activities=ACTIVITIES, cases=CASES)
    tree = UnitTree(generated.units)
    mine = [e for e in generated.events if tree.is_within(e.data["unit_id"], within)]
    activities = [e for e in mine if e.type == "activity.recorded" and e.data["revision"] == 1]
    reports = [e for e in mine if e.type == "report.submitted" and e.data["revision"] == 1]
    cases = [e for e in mine if e.type == "case.opened"]
    return activities, random.Random(SEED).sample(reports, REPORTS), cases


async def stream_through_two_restarts(
    rabbit: RabbitVhost, events: list[Envelope], node: BrokerNode
) -> RetryingPublisher:
    """Publish `events` as the vhost's inbound system at a steady pace while the broker's
    application is stopped and started twice (the publisher blocks while it is away, and goes
    on after)."""
    async with RetryingPublisher(rabbit.system.url, rabbit.system.user) as publisher:

        async def publish() -> None:
            for i, event in enumerate(events):
                await publisher.publish(event)
                if i % 20 == 19:
                    await asyncio.sleep(0.1)  # a stream, not one burst

        async def restart_twice() -> None:
            for share in RESTART_AT:

                async def far_enough(share: float = share) -> bool:
                    return publisher.sent >= share * len(events)

                await eventually(far_enough, timeout=60)

                await asyncio.to_thread(node.stop_app)
                await asyncio.sleep(OUTAGE_SECONDS)
                await asyncio.to_thread(node.start_app)

        await asyncio.gather(publish(), restart_twice())

    return publisher


async def test_after_two_broker_restarts_during_a_stream_every_read_model_equals_the_stream_and_nothing_is_left_unacked(  # noqa: E501
    broker_node: BrokerNode, private_rabbit: RabbitVhost, devmongo: DevMongo
) -> None:

    url = private_rabbit.url
    activities, reports, cases = inbound_stream(private_rabbit.system.binding.unit_id)
    inbound = activities + reports + cases
    random.Random(SEED).shuffle(inbound)

    async with (
        Capture(url, CAPTURE, AGGREGATED) as capture,  # everything aggregation should apply
        running_stack(stack_settings(private_rabbit, devmongo.url)) as stack,
    ):
        await eventually(lambda: cases_know_every_unit(stack), timeout=30)
        publisher = await stream_through_two_restarts(private_rabbit, inbound, broker_node)
        assert publisher.retries > 0  # the broker really was away while the stream went on

        expected = {
            "activity.recorded": {e.data["activity_id"] for e in activities},
            "report.submitted": {report_key(e.data) for e in reports},
            "case.opened": {e.data["case_id"] for e in cases},
        }

        def republished() -> dict[str, set[Any]]:
            return {
                "activity.recorded": {
                    e.data["activity_id"] for e in capture.of_type("activity.recorded")
                },
                "report.submitted": {
                    report_key(e.data) for e in capture.of_type("report.submitted")
                },
                "case.opened": {e.data["case_id"] for e in capture.of_type("case.opened")},
            }

        async def everything_settled() -> dict[str, Any] | None:
            try:
                stats = await asyncio.to_thread(broker_node.queue_stats, private_rabbit.vhost)
            except RuntimeError:  # the CLI did not answer in time: ask again
                return None
            settled = all(s.ready == 0 and s.unacked == 0 for s in stats.values())
            return stats if settled and republished() == expected else None

        try:
            stats = await eventually(everything_settled, timeout=90, interval=0.5)
        except AssertionError:
            stats = await asyncio.to_thread(broker_node.queue_stats, private_rabbit.vhost)
            missing = {k: len(v - republished()[k]) for k, v in expected.items()}
            refused = [
                str(m.headers.get("x-rejection-reason"))
                for q, s in stats.items()
                if q.endswith(".dlq") and s.ready
                for m in await drain_queue(url, q, timeout=2)
            ]
            raise AssertionError(
                f"not settled: missing {missing}; refused {refused[:5]}; queues {stats}; "
                f"{await stack.readiness()}"
            ) from None
        # no queue holds anything: every consumer acked what it was given, none refused any
        assert set(stats) >= {*TOPOLOGY, *(f"{q}.dlq" for q in TOPOLOGY)}
        assert {q: (s.ready, s.unacked) for q, s in stats.items() if s.ready or s.unacked} == {}
        assert await stack.all_ready(), await stack.readiness()

        await assert_reminders_complete(stack, capture.of_type("report.submitted"))
        listed = {c["case_id"] for c in await stack.pages("cases", "cases")}
        assert listed == expected["case.opened"]
        await assert_aggregation_equals_recount(stack, capture.of_type(*TYPES))
        print(
            f"{len(inbound)} inbound events, {publisher.retries} publish retries, "
            f"{len(capture.events)} events on lhpn.events"
        )


TYPES = (
    "unit.upserted",
    "plan.published",
    "activity.recorded",
    "activity.voided",
    "report.submitted",
    "case.opened",
    "case.status_changed",
    "case.closed",
)


def report_key(data: dict[str, Any]) -> tuple[str, str, str]:
    return data["unit_id"], data["report_type"], data["period"]


async def cases_know_every_unit(stack: Stack) -> bool:
    """Cases has the unit tree intake announced (a case for an unknown unit is refused)."""
    tree = await stack.apps["cases"].state.cases.tree()
    intake = stack.apps["intake"].state.intake
    return bool(intake.tree.units) and all(u in tree for u in intake.tree.units)


async def assert_reminders_complete(stack: Stack, submitted: list[Envelope]) -> None:
    """Exactly the obligations whose report arrived are fulfilled, on time or late as the
    report was."""
    by_key = {
        (o["unit_id"], o["report_type"], o["period"]): o["status"]
        for o in await stack.pages("reminders", "obligations")
    }
    expected = {
        report_key(e.data): "fulfilled_on_time" if e.data["on_time"] else "fulfilled_late"
        for e in submitted
    }
    fulfilled = {k: s for k, s in by_key.items() if s.startswith("fulfilled")}
    assert fulfilled == expected


async def assert_aggregation_equals_recount(stack: Stack, published: list[Envelope]) -> None:
    """Aggregation's answers equal the reference computation over what was published."""
    generated = Generated(load_units(), load_plan())  # what intake announced at its start
    plan = generated.plan
    units = {u.unit_id: u for u in _latest(Unit, published, "unit.upserted", "unit_id")}
    assert units == {u.unit_id: u for u in generated.units}
    (announced,) = _latest(Plan, published, "plan.published", "plan_id")
    assert announced.model_dump(exclude={"published_at"}) == plan.model_dump(
        exclude={"published_at"}
    )
    events = raw(published)
    got = await answers(stack.clients["aggregation"], stack.admin(), generated)
    checked: Counter[str] = Counter()
    for root in roots(generated):
        for as_of in AS_OF:
            result = got[f"compliance {root} {as_of}"]
            reference = reference_compliance(generated.units, plan, root, as_of, events)
            for target in result["targets"]:
                want = reference[target["code"]]
                assert (target["in_scope"], target["met"]) == (want.total, want.good)
                assert [u["unit_id"] for u in target["not_met"]] == want.bad
                checked["compliance"] += 1
        for schedule in plan.report_schedules:
            for p in schedule.periods:
                result = got[f"rates {root} {schedule.report_type} {p.period}"]
                rates: Figures = reference_rates(
                    generated.units, plan, root, schedule.report_type, p.period, events
                )
                assert (result["expected"], result["received"], result["on_time"]) == (
                    rates.total,
                    rates.good,
                    rates.on_time,
                ), (root, schedule.report_type, p.period)
                assert [u["unit_id"] for u in result["missing"]] == rates.bad
                checked["rates"] += 1
        for period in PERIODS:
            result = got[f"indicators {root} {period}"]
            totals = reference_indicators(generated.units, root, period, events)
            assert result["reports"] == totals.reports
            for row in result["rows"]:
                assert (row["recorded"], row["declared"]) == (
                    totals.recorded.get(row["code"], 0),
                    totals.declared.get(row["code"]),
                ), (root, period, row["code"])
            stats = got[f"cases {root} {period}"]
            want_cases = reference_case_stats(  # overdue is not compared: any instant will do
                generated.units, root, period, events, datetime.now(UTC)
            )
            assert stats["received"] == want_cases["received"]
            for name in ("by_kind", "by_topic", "by_status", "by_flag"):
                assert {k: n for k, n in stats[name].items() if n} == dict(want_cases[name])
            checked["indicators and cases"] += 1
    assert plan.plan_id == PLAN_ID and min(checked.values()) > 0, checked


def _latest(model: Any, published: list[Envelope], event_type: str, key: str) -> list[Any]:
    best: dict[str, Any] = {}
    for e in published:
        if e.type == event_type:
            item = parse_data(e)
            if getattr(item, key) not in best or item.revision >= best[getattr(item, key)].revision:
                best[getattr(item, key)] = item
    assert all(isinstance(v, model) for v in best.values())
    return list(best.values())
