"""The outbox relay against the real database: publish, clear, and never drop a late event."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from pymongo import AsyncMongoClient, monitoring

from lhpn_shared.contracts.events import make_event
from lhpn_shared.contracts.units import Unit
from lhpn_shared.mongo import database, make_client
from lhpn_shared.outbox import OutboxRelay, ensure_outbox_index, outbox_fields, with_outbox
from lhpn_shared.settings import ServiceSettings
from tests.support.infra import DevMongo

pytestmark = pytest.mark.integration


def unit_event(name: str):  # type: ignore[no-untyped-def]
    unit = Unit(unit_id="22015", name=name, kind="phường", level="commune", parent_id="555")
    return make_event("unit.upserted", unit, source="test", occurred_at=datetime.now(UTC))


async def test_an_event_appended_while_the_relay_publishes_is_kept_for_the_next_round(
    devmongo: DevMongo, db_name: str
) -> None:
    client = make_client(ServiceSettings(mongo_url=devmongo.url))
    coll = database(client, db_name)["units"]
    await ensure_outbox_index(coll)
    first, late = unit_event("Phường 1"), unit_event("Phường Một")
    await coll.insert_one({"_id": "22015", **outbox_fields([first])})
    published: list[str] = []

    async def publish(routing_key: str, event_id: str, body: bytes) -> None:
        published.append(event_id)
        if len(published) == 1:  # a writer appends an event in the middle of the relay's round
            await coll.update_one({"_id": "22015"}, with_outbox({"$set": {"x": 1}}, [late]))

    relay = OutboxRelay([coll], publish)
    assert await relay.relay_once() == 1
    doc = await coll.find_one({"_id": "22015"})
    assert doc is not None
    assert [e["event_id"] for e in doc["outbox"]] == [str(late.event_id)]
    assert doc["outbox_pending"] is True
    assert await relay.relay_once() == 1
    assert await relay.relay_once() == 0
    assert published == [str(first.event_id), str(late.event_id)]
    doc = await coll.find_one({"_id": "22015"})
    assert doc is not None and doc["outbox"] == [] and doc["outbox_pending"] is False
    await client.close()


async def test_a_failed_publish_clears_nothing(devmongo: DevMongo, db_name: str) -> None:
    client = make_client(ServiceSettings(mongo_url=devmongo.url))
    coll = database(client, db_name)["units"]
    await coll.insert_one({"_id": str(uuid4()), **outbox_fields([unit_event("A")])})

    async def broken(routing_key: str, event_id: str, body: bytes) -> None:
        raise ConnectionError("broker gone")

    with pytest.raises(ConnectionError):
        await OutboxRelay([coll], broken).relay_once()
    assert await coll.count_documents({"outbox_pending": True}) == 1
    await client.close()


async def test_woken_for_one_collection_the_relay_reads_only_that_one_and_the_rest_when_idle(
    devmongo: DevMongo, db_name: str
) -> None:
    """Under load the relay follows the writes it is told about (one find per wake, not one
    per collection); what another writer left without naming it waits at most the idle period."""
    finds: list[str] = []

    class Finds(monitoring.CommandListener):
        def started(self, event: monitoring.CommandStartedEvent) -> None:
            if event.command_name == "find":
                finds.append(str(event.command["find"]))

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None: ...

        def failed(self, event: monitoring.CommandFailedEvent) -> None: ...

    client: AsyncMongoClient = AsyncMongoClient(devmongo.url, event_listeners=[Finds()])
    db = client[db_name]
    activities, reports = db["activities"], db["reports"]
    published: list[str] = []

    async def publish(routing_key: str, event_id: str, body: bytes) -> None:
        published.append(event_id)

    relay = OutboxRelay([activities, reports], publish, idle_seconds=1.5, gather_seconds=0.01)
    task = asyncio.create_task(relay.run())
    try:
        # the first pass reads every collection
        while len(finds) < 2:
            await asyncio.sleep(0.01)
        finds.clear()
        named, unnamed = unit_event("A"), unit_event("B")
        await activities.insert_one({"_id": "a1", **outbox_fields([named])})
        await reports.insert_one({"_id": "r1", **outbox_fields([unnamed])})
        relay.wake("activities")
        while str(named.event_id) not in published:
            await asyncio.sleep(0.01)
        assert finds == ["activities"]
        assert str(unnamed.event_id) not in published
        # after the idle period, a pass over every collection finds the other one
        while str(unnamed.event_id) not in published:
            await asyncio.sleep(0.05)
        assert "reports" in finds
    finally:
        relay.stop()
        await task
        await client.close()
