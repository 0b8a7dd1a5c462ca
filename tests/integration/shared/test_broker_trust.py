"""Broker trust on the real RabbitMQ: each service publishes only the event types it owns, as
its own user; every consumer accepts an event only from its owning service's user and
dead-letters anything else with the reason, changing nothing."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused, ChannelPreconditionFailed
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from aggregation.app import create_app as create_aggregation
from aggregation.settings import AggregationSettings
from cases.app import create_app as create_cases
from cases.settings import CasesSettings
from lhpn_shared.broker import REJECTION_HEADER
from lhpn_shared.contracts.cases import CaseFacts
from lhpn_shared.contracts.events import Envelope, make_event
from lhpn_shared.contracts.reports import Report
from lhpn_shared.contracts.units import Unit
from reminders.app import create_app as create_reminders
from reminders.settings import RemindersSettings
from tests.support.amqp import EventListener, drain_queue, publish_raw, purge_queues
from tests.support.http import eventually, running
from tests.support.infra import DevMongo, RabbitVhost

pytestmark = pytest.mark.integration

CONSUMER_QUEUES = ("cases.events", "reminders.events", "aggregation.events")
AT = datetime(2021, 3, 1, 9, 0, tzinfo=UTC)


def forged_events() -> list[Envelope]:
    """What a stranger would like the system to believe: a new commune under Tuy Hoà, the
    district's thematic report, a case opened there."""
    unit = Unit(
        unit_id="99001",
        name="Xã Giả Mạo",
        kind="xã",
        level="commune",
        parent_id="555",
        revision=1,
    )
    report = Report(
        report_id=uuid.uuid4(),
        unit_id="555",
        report_type="thematic_annual",
        period="2021",
        received_at=AT,
        due_at=datetime(2021, 10, 29, 17, 0, tzinfo=UTC),
        on_time=True,
    )
    case = CaseFacts.model_validate(
        {
            "case_id": str(uuid.uuid4()),
            "unit_id": "22015",
            "kind": "petition",
            "topic": "land",
            "channel": "hotline",
            "status": "received",
            "received_on": "2021-03-01",
        }
    )
    return [
        make_event("unit.upserted", unit, source="intake", occurred_at=AT, unit_id="99001"),
        make_event("report.submitted", report, source="intake", occurred_at=AT, unit_id="555"),
        make_event("case.opened", case, source="cases", occurred_at=AT, unit_id="22015"),
    ]


def marker_unit() -> Envelope:
    unit = Unit(unit_id="98001", name="Xã Thật", kind="xã", level="commune", parent_id="555")
    return make_event("unit.upserted", unit, source="intake", occurred_at=AT, unit_id="98001")


async def stored_text(mongo_url: str, db_name: str) -> str:
    """Every document of a service's database, as one string to search."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        db = client[db_name]
        docs = [
            doc
            for name in await db.list_collection_names()
            for doc in await db[name].find({}).to_list(None)
        ]
        return json.dumps(docs, default=str, ensure_ascii=False)
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def consumers(devmongo: DevMongo, rabbit: RabbitVhost) -> AsyncIterator[dict[str, str]]:
    """Cases, reminders and aggregation running, each as its own broker user; yields each
    service's database name."""
    run = uuid.uuid4().hex[:8]
    dbs = {name: f"t_{name}_{run}" for name in ("cases", "reminders", "aggregation")}
    common: dict[str, Any] = {"mongo_url": devmongo.url, "mongo_timeout_ms": 1500}
    apps: list[FastAPI] = [
        create_cases(
            CasesSettings(
                **common,
                rabbit_url=rabbit.url_for("cases"),
                mongo_db=dbs["cases"],
                case_keys=f"t1:{base64.b64encode(os.urandom(32)).decode()}",
            )
        ),
        create_reminders(
            RemindersSettings(
                **common,
                rabbit_url=rabbit.url_for("reminders"),
                mongo_db=dbs["reminders"],
                sweep_interval_seconds=0,
                smtp_port=1,
            )
        ),
        create_aggregation(
            AggregationSettings(
                **common,
                rabbit_url=rabbit.url_for("aggregation"),
                mongo_db=dbs["aggregation"],
            )
        ),
    ]
    await purge_queues(rabbit.url, *CONSUMER_QUEUES, *(f"{q}.dlq" for q in CONSUMER_QUEUES))
    async with contextlib.AsyncExitStack() as stack:
        for app in apps:
            client = await stack.enter_async_context(running(app))

            async def ready(c: Any = client) -> bool:
                return (await c.get("/readyz")).status_code == 200

            await eventually(ready, timeout=30)
        yield dbs


async def test_events_published_by_anyone_but_their_owner_are_dead_lettered_and_change_nothing(
    devmongo: DevMongo, rabbit: RabbitVhost
) -> None:
    forged = forged_events()
    async with consumers(devmongo, rabbit) as dbs:
        # the operator account may write to lhpn.events (no topic limit): a stranger to the
        # consumers, whether it names itself in user_id or sends none
        for event in forged:
            for user_id in (rabbit.operator, None):
                await publish_raw(
                    rabbit.url,
                    "lhpn.events",
                    event.routing_key,
                    event.model_dump_json().encode(),
                    str(event.event_id),
                    user_id=user_id,
                )
        marker = marker_unit()  # then one from intake, the owner: it must get through
        await publish_raw(
            rabbit.url_for("intake"),
            "lhpn.events",
            marker.routing_key,
            marker.model_dump_json().encode(),
            str(marker.event_id),
        )
        # cases consumes unit.upserted; reminders and aggregation all three types
        expected = {"cases.events": 2, "reminders.events": 6, "aggregation.events": 6}
        dead: dict[str, list[aio_pika.abc.AbstractIncomingMessage]] = {}
        for queue, count in expected.items():
            dead[queue] = []

            async def all_there(queue: str = queue, count: int = count) -> bool:
                dead[queue] += await drain_queue(rabbit.url, f"{queue}.dlq", timeout=0.5)
                return len(dead[queue]) >= count

            await eventually(all_there, timeout=20, interval=0.2)

        async def marker_everywhere() -> bool:
            texts = [await stored_text(devmongo.url, db) for db in dbs.values()]
            return all("Xã Thật" in text for text in texts)

        await eventually(marker_everywhere, timeout=20, interval=0.3)
        stored = {name: await stored_text(devmongo.url, db) for name, db in dbs.items()}

    for queue, messages in dead.items():
        assert len(messages) == expected[queue], queue
        by_sender = {m.headers["x-original-user-id"] for m in messages}
        assert by_sender == {rabbit.operator, ""}, queue
        for m in messages:
            reason = str(m.headers[REJECTION_HEADER])
            event_type = json.loads(m.body)["type"]
            owner = "cases" if event_type.startswith("case.") else "intake"
            assert reason.startswith(
                f"{event_type} is published only by {rabbit.user_for(owner)} ({owner}); "
                "this one was sent "
            ), reason
            assert m.user_id == rabbit.user_for(queue.split(".")[0])  # who dead-lettered it
    for name, text in stored.items():
        assert "Xã Giả Mạo" not in text, name
        assert str(forged[1].data["report_id"]) not in text, name
        assert str(forged[2].data["case_id"]) not in text, name


async def _publish_as(url: str, key: str, user_id: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("lhpn.events", ensure=True)
        await exchange.publish(aio_pika.Message(b"{}", user_id=user_id), routing_key=key)
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("service", "key"),
    [
        ("reminders", "unit.upserted.v1"),
        ("cases", "report.submitted.v1"),
        ("intake", "case.opened.v1"),
        ("aggregation", "activity.recorded.v1"),
    ],
)
async def test_the_broker_refuses_a_service_publishing_an_event_type_it_does_not_own(
    rabbit: RabbitVhost, service: str, key: str
) -> None:
    with pytest.raises(ChannelAccessRefused, match="ACCESS_REFUSED"):
        await _publish_as(rabbit.url_for(service), key, rabbit.user_for(service))


async def test_a_service_publishes_the_event_types_it_owns_under_its_own_user_id(
    rabbit: RabbitVhost,
) -> None:
    async with EventListener(rabbit.url, keys=("unit.upserted.v1",)) as events:
        await _publish_as(rabbit.url_for("intake"), "unit.upserted.v1", rabbit.user_for("intake"))
        await events.wait_for(lambda got: len(got) == 1)
    assert events.messages[0].user_id == rabbit.user_for("intake")


async def test_a_forged_user_id_is_refused_by_the_broker_and_never_delivered(
    rabbit: RabbitVhost,
) -> None:
    async with EventListener(rabbit.url, keys=("unit.upserted.v1",)) as events:
        with pytest.raises(ChannelPreconditionFailed, match="user_id property set to"):
            # intake's connection claiming to be cases
            await _publish_as(
                rabbit.url_for("intake"), "unit.upserted.v1", rabbit.user_for("cases")
            )
        with pytest.raises(ChannelPreconditionFailed, match="user_id property set to"):
            # an inbound system claiming to be intake, on lhpn.inbound
            await publish_raw(
                rabbit.system.url,
                "lhpn.inbound",
                "activity.recorded.v1",
                b"{}",
                user_id=rabbit.user_for("intake"),
            )
        # a message the broker does accept, so the listener demonstrably receives
        await _publish_as(rabbit.url_for("intake"), "unit.upserted.v1", rabbit.user_for("intake"))
        await events.wait_for(lambda got: len(got) >= 1)
    assert [m.user_id for m in events.messages] == [rabbit.user_for("intake")]


async def test_a_service_cannot_bind_its_queue_to_event_types_it_does_not_consume(
    rabbit: RabbitVhost,
) -> None:
    """Reminders listening in on activities (no business of its own) is refused."""
    connection = await aio_pika.connect(rabbit.url_for("reminders"))
    try:
        channel = await connection.channel()
        queue = await channel.get_queue("reminders.events", ensure=True)
        await queue.bind("lhpn.events", "report.submitted.v1")  # one it consumes: allowed
        with pytest.raises(ChannelAccessRefused, match=r"activity\.recorded\.v1"):
            await queue.bind("lhpn.events", "activity.recorded.v1")
    finally:
        await connection.close()
