"""The July 2025 reorganisation through the real broker and database: announced after the
year's activities, every event delivered twice and each entity's events shuffled, the answers
over HTTP equal the independent recount (issue 10)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from aggregation.batch import EVENTS_QUEUE
from aggregation.settings import AggregationSettings
from lhpn_shared.auth import Role
from tests.integration.aggregation.conftest import bearer, started
from tests.integration.aggregation.streams import (
    get_json,
    publish_all,
    twice_shuffled_per_entity,
    wait_consumed,
)
from tests.support.amqp import purge_queues
from tests.support.infra import DevMongo, RabbitVhost
from tests.unit.aggregation.reorganisation import (
    PLAN_ID,
    facts_of,
    recount_compliance,
    recount_rates,
    scenario,
)
from tests.unit.aggregation.test_reorganisation import AS_OF

pytestmark = pytest.mark.integration


async def test_a_reorganisation_announced_late_and_delivered_twice_gives_the_recount(
    devmongo: DevMongo, rabbit: RabbitVhost
) -> None:
    world = scenario(7)
    events = world.announced_late()
    facts = facts_of(events)
    delivered = twice_shuffled_per_entity(events, seed=7)
    settings = AggregationSettings(
        mongo_url=devmongo.url,
        rabbit_url=rabbit.url_for("aggregation"),
        mongo_db=f"t_{uuid.uuid4().hex[:12]}",
        mongo_timeout_ms=1500,
    )
    admin = bearer(settings, Role.admin)
    await purge_queues(rabbit.url, EVENTS_QUEUE)
    async with started(settings) as client:
        await publish_all(rabbit, delivered)
        await wait_consumed(client, len(delivered))
        roots = [
            "A",
            "B",
            *world.merged,
            next(u.unit_id for u in world.before if u.level == "district"),
        ]
        for root in roots:
            await check(client, admin, facts, root)


async def check(client: httpx.AsyncClient, admin: dict[str, str], facts: object, root: str) -> None:
    for as_of in AS_OF:
        got = await get_json(
            client, "compliance", admin, plan_id=PLAN_ID, unit_id=root, as_of=as_of.isoformat()
        )
        expected = recount_compliance(facts, root, as_of)  # type: ignore[arg-type]
        for target in got["targets"]:
            whole = expected[target["code"]].get("")
            where = (root, as_of.isoformat(), target["code"])
            assert (target["in_scope"], target["met"]) == (
                (whole.in_scope, whole.met) if whole else (0, 0)
            ), where
            assert [u["unit_id"] for u in target["not_met"]] == (whole.not_met if whole else [])
    for month in range(1, 13):
        period = f"2025-{month:02d}"
        got = await get_json(
            client, "reporting-rates", admin, report_type="monthly", period=period, unit_id=root
        )
        whole = recount_rates(facts, root, period).get("")  # type: ignore[arg-type]
        figures = (whole.expected, whole.received, whole.on_time) if whole else (0, 0, 0)
        assert (got["expected"], got["received"], got["on_time"]) == figures, (root, period)
