"""Issue 13, partitions through the real broker: the country stream of the unit test
(tests/unit/aggregation/test_partitions.py: the generated 2021 province and the two provinces
the 2025 reorganisation joins, under the central union; events before their units) published on
`lhpn.events`, consumed by two aggregation processes of two partitions (each the router's
standby, one the active router), answers over HTTP equal to one process of one partition fed the
same stream."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import httpx
import pytest

from aggregation.batch import EVENTS_QUEUE
from aggregation.partitions import partition_queue_name
from aggregation.settings import AggregationSettings
from lhpn_shared.auth import Role
from tests.integration.aggregation.conftest import bearer, started
from tests.integration.aggregation.streams import answers, consumed, get_json, publish_all
from tests.support.amqp import purge_queues
from tests.support.http import eventually
from tests.support.infra import DevMongo, RabbitVhost
from tests.unit.aggregation.generated import national_plan
from tests.unit.aggregation.reorganisation import PLAN_ID
from tests.unit.aggregation.test_partitions import country, partitioned

pytestmark = pytest.mark.integration


def settings_for(
    devmongo: DevMongo, rabbit: RabbitVhost, db: str, partitions: int, partition: int
) -> AggregationSettings:
    return AggregationSettings(
        mongo_url=devmongo.url,
        rabbit_url=rabbit.url_for("aggregation"),
        mongo_db=db,
        mongo_timeout_ms=1500,
        aggregation_partitions=partitions,
        aggregation_partition=partition,
    )


async def country_answers(client: httpx.AsyncClient, admin: dict[str, str], world: Any) -> Any:
    out = await answers(client, admin, world.generated)
    for unit_id, plan_id, as_of in (
        ("VN", national_plan().plan_id, "2021-12-31T10:00:00+07:00"),
        ("VN", world.generated.plan.plan_id, "2021-06-30T10:00:00+07:00"),
        ("VN", PLAN_ID, "2025-12-31T10:00:00+07:00"),
        ("A", PLAN_ID, "2025-10-01T10:00:00+07:00"),
    ):
        out[f"compliance {unit_id} {plan_id}"] = await get_json(
            client, "compliance", admin, plan_id=plan_id, unit_id=unit_id, as_of=as_of
        )
    for unit_id, period in (("VN", "2021"), ("VN", "2025"), ("A", "2025-Q3")):
        out[f"indicators {unit_id} {period}"] = await get_json(
            client, "indicators", admin, unit_id=unit_id, period=period
        )
    return out


async def test_two_partition_processes_through_the_broker_answer_as_one_process(
    devmongo: DevMongo, rabbit: RabbitVhost
) -> None:
    world = country()
    _, shares = await partitioned(world.events, 2)  # what each partition is to receive
    db = f"t_{uuid.uuid4().hex[:12]}"
    two = [settings_for(devmongo, rabbit, db, 2, k) for k in range(2)]
    admin = bearer(two[0], Role.admin)
    await purge_queues(rabbit.url, EVENTS_QUEUE)
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(started(s)) for s in two]
        await publish_all(rabbit, world.events)

        async def all_applied() -> list[int]:
            counts = [await consumed(c) for c in clients]
            return counts if all(n >= s for n, s in zip(counts, shares, strict=True)) else []

        await eventually(all_applied, timeout=240, interval=0.5)
        for queue in (EVENTS_QUEUE, *(partition_queue_name(k) for k in range(2))):
            assert await dead_letters(rabbit, queue) == 0
        got = [await country_answers(c, admin, world) for c in clients]
    assert got[0] == got[1]  # either process answers from both partitions

    one = settings_for(devmongo, rabbit, f"t_{uuid.uuid4().hex[:12]}", 1, 0)
    async with started(one) as client:
        await publish_all(rabbit, world.events)
        await eventually(lambda: _at_least(client, len(world.events)), timeout=240, interval=0.5)
        expected = await country_answers(client, admin, world)
    assert got[0] == expected


async def _at_least(client: httpx.AsyncClient, count: int) -> bool:
    return await consumed(client) >= count


async def dead_letters(rabbit: RabbitVhost, queue: str) -> int:
    import aio_pika

    connection = await aio_pika.connect_robust(rabbit.url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(f"{queue}.dlq", passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()
