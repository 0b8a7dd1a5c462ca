"""Issue 13, partitions through the real broker: the country stream of the unit test
(tests/unit/aggregation/test_partitions.py: the generated 2021 province and the two provinces
the 2025 reorganisation joins, under the central union; events before their units) published on
`lhpn.events`, consumed by two aggregation processes of two partitions (each the router's
standby, one the active router), answers over HTTP equal to one process of one partition fed the
same stream."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from aggregation.__main__ import reroute_partitions
from aggregation.batch import EVENTS_QUEUE
from aggregation.partitions import (
    PartitionDeadLetters,
    PartitionsBusy,
    held_partition_queues,
    partition_queue_name,
)
from aggregation.router import RouterStore
from aggregation.routing import partition_of
from aggregation.settings import AggregationSettings
from lhpn_shared.auth import Role
from lhpn_shared.broker import ORIGINAL_EXCHANGE_HEADER, ORIGINAL_USER_HEADER, REJECTION_HEADER
from lhpn_shared.contracts.activities import Activity
from lhpn_shared.contracts.events import Envelope, make_event
from lhpn_shared.contracts.units import Unit, UnitLevel
from lhpn_shared.mongo import database, make_client
from lhpn_shared.settings import ServiceSettings
from tests.integration.aggregation.conftest import bearer, started
from tests.integration.aggregation.streams import answers, consumed, get_json, publish_all
from tests.support.amqp import purge_queues
from tests.support.http import eventually
from tests.support.infra import DevMongo, RabbitVhost
from tests.unit.aggregation.generated import national_plan
from tests.unit.aggregation.reorganisation import PLAN_ID
from tests.unit.aggregation.test_partitions import CENTRAL, country, partitioned

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


@pytest.mark.slow
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


async def test_an_operator_replays_a_partition_queues_dead_letter_to_its_partition(
    devmongo: DevMongo, rabbit: RabbitVhost
) -> None:
    """The dead-letter routes list the partition queues too, and a dead letter of
    `aggregation.events.p0` (one the service refused: its own user, the origin it recorded)
    is replayed through `lhpn.replay` to its partition, which applies it."""
    import aio_pika

    settings = settings_for(devmongo, rabbit, f"t_{uuid.uuid4().hex[:12]}", 2, 0)
    admin = bearer(settings, Role.admin)
    queue = partition_queue_name(0)
    partitions = [partition_queue_name(k) for k in range(2)]
    await purge_queues(rabbit.url, EVENTS_QUEUE, *partitions, *(f"{q}.dlq" for q in partitions))
    at = datetime(2021, 1, 1, tzinfo=UTC)
    province = next(
        Unit(
            unit_id=f"P{n}",
            name=f"Tỉnh P{n}",
            kind="tỉnh",
            level=UnitLevel.province,
            parent_id="VN",
        )
        for n in range(100)
        if partition_of(f"P{n}", 2) == 0
    )
    refused = make_event("unit.upserted", province, source="t", occurred_at=at)
    async with started(settings) as client:
        await publish_all(
            rabbit, [make_event("unit.upserted", CENTRAL, source="t", occurred_at=at)]
        )
        await eventually(lambda: _at_least(client, 1), timeout=60)  # routed: queues declared
        connection = await aio_pika.connect_robust(rabbit.url_for("aggregation"))
        async with connection:  # what the service's own dead-lettering leaves in the DLQ
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange("lhpn.dead-letter", ensure=False)
            await exchange.publish(
                aio_pika.Message(
                    refused.model_dump_json().encode(),
                    message_id=str(refused.event_id),
                    content_type="application/json",
                    user_id=rabbit.user_for("aggregation"),
                    headers={
                        REJECTION_HEADER: "handler error: AutoReconnect (failed 5 times)",
                        ORIGINAL_EXCHANGE_HEADER: "aggregation.partitions",
                        ORIGINAL_USER_HEADER: rabbit.user_for("aggregation"),
                    },
                ),
                routing_key=queue,
            )

        async def listed() -> dict[str, Any] | None:
            r = await client.get("/api/v1/dead-letters", headers=admin)
            assert r.status_code == 200, r.text
            queues = {q["queue"]: q["messages"] for q in r.json()["queues"]}
            return queues if queues.get(queue) == 1 else None

        queues = await eventually(listed, timeout=30)
        assert queues[partition_queue_name(1)] == 0 and queues[EVENTS_QUEUE] == 0
        before = await consumed(client)
        r = await client.post("/api/v1/dead-letters/replay", json={"queue": queue}, headers=admin)
        assert r.status_code == 200, r.text
        assert (r.json()["replayed"], r.json()["refused"]) == (1, [])
        await eventually(lambda: _at_least(client, before + 1), timeout=60)
        assert await dead_letters(rabbit, queue) == 0
    stored = await _stored(devmongo, settings.mongo_db, "p0.units", province.unit_id)
    assert stored is not None  # partition 0's writer applied the replayed event


async def _stored(devmongo: DevMongo, db: str, collection: str, doc_id: str) -> Any:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(devmongo.url)
    try:
        return await client[db][collection].find_one({"_id": doc_id})
    finally:
        await client.close()


def _province_of_partition(partition: int) -> Unit:
    n = next(n for n in range(100) if partition_of(f"P{n}", 2) == partition)
    return Unit(
        unit_id=f"P{n}", name=f"Tỉnh P{n}", kind="tỉnh", level=UnitLevel.province, parent_id="VN"
    )


def _activity_at(unit_id: str, n: int, revision: int = 1) -> Envelope:
    activity = Activity.model_validate(
        {
            "activity_id": str(uuid.UUID(int=1000 + n)),
            "unit_id": unit_id,
            "kind": "supervision",
            "occurred_on": "2021-03-01",
            "title": "Giám sát",
            "revision": revision,
            "recorded_at": "2021-03-01T09:00:00+07:00",
        }
    )
    return make_event("activity.recorded", activity, source="t", occurred_at=datetime.now(UTC))


async def test_the_reroute_command_refuses_while_a_process_runs_and_takes_what_waits_in_the_queues(
    devmongo: DevMongo, rabbit: RabbitVhost
) -> None:
    """`python -m aggregation reroute` (`reroute_partitions`): refused while an aggregation
    process consumes a partition queue, and while a partition's dead-letter queue holds a
    message (the refusal names it and the command that empties it); holding the queues of
    more partitions than were ever declared takes and acks what waits in those that exist;
    with every process stopped, it rebuilds both partitions from their archives and from the
    event still waiting in a partition queue, which it then acks: the answers count it,
    nothing is left in the queue. Meanwhile a join the router found (`router.meta`) makes
    every process not ready until the repair clears it."""
    import aio_pika

    db = f"t_{uuid.uuid4().hex[:12]}"
    two = [settings_for(devmongo, rabbit, db, 2, k) for k in range(2)]
    admin = bearer(two[0], Role.admin)
    at = datetime(2021, 1, 1, tzinfo=UTC)
    provinces = [_province_of_partition(0), _province_of_partition(1)]
    stream = [
        make_event("unit.upserted", u, source="t", occurred_at=at) for u in (CENTRAL, *provinces)
    ] + [_activity_at(provinces[n % 2].unit_id, n) for n in range(6)]
    # what earlier tests of this session's vhost left in the partition queues
    queues = [partition_queue_name(k) for k in range(2)]
    await purge_queues(rabbit.url, EVENTS_QUEUE, *queues, *(f"{q}.dlq" for q in queues))

    async def activities(client: httpx.AsyncClient) -> int:
        r = await client.get(
            "/api/v1/indicators", params={"unit_id": "VN", "period": "2021"}, headers=admin
        )
        if r.status_code == 404:  # the central union not stored yet
            return -1
        assert r.status_code == 200, r.text
        return sum(int(k["activities"]) for k in r.json()["kinds"])

    async with started(two[0]) as client, started(two[1]):
        await publish_all(rabbit, stream)

        async def all_counted() -> bool:
            return await activities(client) == 6

        await eventually(all_counted, timeout=60)
        assert (await client.get("/readyz")).json()["checks"]["partitions"] is True
        # what the router records when a reorganisation joins provinces of two partitions
        # after their events (tests/unit/aggregation/test_partitions.py)
        mongo = make_client(two[0])
        try:
            await RouterStore(database(mongo, db)).mark_reroute_needed([provinces[1].unit_id])
        finally:
            await mongo.close()
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["partitions"] is False
        with pytest.raises(PartitionsBusy):
            await reroute_partitions(two[0])
    waiting = _activity_at(provinces[1].unit_id, 6)  # sent by the router, not yet applied

    async def publish(exchange_name: str, routing_key: str, **headers: Any) -> None:
        connection = await aio_pika.connect_robust(rabbit.url_for("aggregation"))
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(exchange_name, ensure=False)
            await exchange.publish(
                aio_pika.Message(
                    waiting.model_dump_json().encode(),
                    message_id=str(waiting.event_id),
                    user_id=rabbit.user_for("aggregation"),
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    headers=headers,
                ),
                routing_key=routing_key,
            )

    await publish("aggregation.partitions", "1")
    # partition 2's queues were never declared (AGGREGATION_PARTITIONS raised): checked first,
    # so what was taken from partition 1 is held on a channel still open, and acked
    async with held_partition_queues(two[0].rabbit_url, 3) as held:
        assert len(held.bodies) == 1
    assert await _waiting(rabbit, queues[1]) == 0
    await publish("aggregation.partitions", "1")
    await publish(
        "lhpn.dead-letter",
        queues[0],
        **{REJECTION_HEADER: "handler error: AutoReconnect (failed 5 times)"},
    )
    with pytest.raises(PartitionDeadLetters) as refused:
        await reroute_partitions(two[0])
    assert f"{queues[0]}.dlq (1 message(s))" in str(refused.value)
    assert f"lhpn dead-letters replay {queues[0]}" in str(refused.value)
    assert await _waiting(rabbit, queues[1]) == 1  # nothing taken
    await purge_queues(rabbit.url, f"{queues[0]}.dlq")
    given = await reroute_partitions(two[0])
    assert sum(given) == len(stream) + 1 + 1  # the central union's unit in both partitions
    assert await _waiting(rabbit, queues[1]) == 0
    async with started(two[0]) as client:  # ready: the repair cleared the join
        assert await activities(client) == 7
        assert (await client.get("/readyz")).json()["checks"]["partitions"] is True


async def _waiting(rabbit: RabbitVhost, queue: str) -> int:
    import aio_pika

    connection = await aio_pika.connect_robust(rabbit.url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def test_an_activity_corrected_to_another_partitions_province_counts_once_through_the_broker(
    devmongo: DevMongo, rabbit: RabbitVhost
) -> None:
    """The router's memory in the database and the departure through the real partition
    queues: an activity of a province of partition 0 corrected to one of partition 1 counts
    once, under its new province only; corrected back, under the first again."""
    db = f"t_{uuid.uuid4().hex[:12]}"
    two = [settings_for(devmongo, rabbit, db, 2, k) for k in range(2)]
    admin = bearer(two[0], Role.admin)
    at = datetime(2021, 1, 1, tzinfo=UTC)
    first, second = _province_of_partition(0), _province_of_partition(1)
    await purge_queues(rabbit.url, EVENTS_QUEUE, *(partition_queue_name(k) for k in range(2)))

    async def counted(client: httpx.AsyncClient) -> dict[str, int]:
        out = {}
        for unit_id in ("VN", first.unit_id, second.unit_id):
            r = await client.get(
                "/api/v1/indicators", params={"unit_id": unit_id, "period": "2021"}, headers=admin
            )
            out[unit_id] = (
                sum(int(k["activities"]) for k in r.json()["kinds"]) if r.status_code == 200 else -1
            )
        return out

    async with started(two[0]) as client, started(two[1]):
        await publish_all(
            rabbit,
            [
                make_event("unit.upserted", u, source="t", occurred_at=at)
                for u in (CENTRAL, first, second)
            ],
        )
        for revision, unit, expected in (
            (1, first, {"VN": 1, first.unit_id: 1, second.unit_id: 0}),
            (2, second, {"VN": 1, first.unit_id: 0, second.unit_id: 1}),
            (3, first, {"VN": 1, first.unit_id: 1, second.unit_id: 0}),
        ):
            await publish_all(rabbit, [_activity_at(unit.unit_id, 50, revision)])

            async def settled(expected: dict[str, int] = expected) -> bool:
                return await counted(client) == expected

            await eventually(settled, timeout=60)
        for queue in (EVENTS_QUEUE, *(partition_queue_name(k) for k in range(2))):
            assert await dead_letters(rabbit, queue) == 0
    where = await _stored(devmongo, db, "router.entities", f"activities/{uuid.UUID(int=1050)}")
    assert where is not None and (where["r"], where["p"]) == (3, 0)


async def test_the_router_store_forgets_only_the_provinces_a_repair_mended(
    devmongo: DevMongo, db_name: str
) -> None:
    """`reroute` reads the provinces moved at its start and clears only those: a move recorded
    while it ran (a process started by mistake) is still reported afterwards."""
    mongo = make_client(ServiceSettings(mongo_url=devmongo.url))
    try:
        store = RouterStore(database(mongo, db_name))
        assert await store.reroute_needed() == []
        await store.mark_reroute_needed(["66"])
        await store.mark_reroute_needed(["66", "52"])
        assert await store.reroute_needed() == ["52", "66"]
        await store.clear_reroute_needed(["66"])
        assert await store.reroute_needed() == ["52"]
        await store.clear_reroute_needed(["52"])
        assert await store.reroute_needed() == []
        assert await store.meta.count_documents({}) == 0  # nothing left behind
    finally:
        await mongo.close()
