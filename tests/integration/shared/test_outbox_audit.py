"""The audit record of a write travels in the written document, next to its outbox, and the
relay moves it to the audit log: exactly once, whatever step of the relay is interrupted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from lhpn_shared.audit import AuditLog
from lhpn_shared.clock import FixedClock
from lhpn_shared.contracts.events import make_event
from lhpn_shared.contracts.units import Unit
from lhpn_shared.mongo import Doc, database, make_client
from lhpn_shared.outbox import OutboxRelay, ensure_outbox_index, outbox_fields, with_outbox
from lhpn_shared.principal import Principal, Role
from lhpn_shared.settings import ServiceSettings
from tests.support.infra import DevMongo

pytestmark = pytest.mark.integration

STAFF = Principal(subject="can-bo-xa", role=Role.commune_staff, unit_id="22015")
T0 = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)


def unit_event(name: str):  # type: ignore[no-untyped-def]
    unit = Unit(unit_id="22015", name=name, kind="phường", level="commune", parent_id="555")
    return make_event("unit.upserted", unit, source="test", occurred_at=T0)


class Store:
    def __init__(self, devmongo: DevMongo, db_name: str) -> None:
        self.client = make_client(ServiceSettings(mongo_url=devmongo.url))
        db = database(self.client, db_name)
        self.units, self.audit = db["units"], db["audit"]
        self.clock = FixedClock(T0)
        self.log = AuditLog(self.audit, self.clock)

    def entry(self, action: str) -> Doc:
        self.clock.set(self.clock.now() + timedelta(milliseconds=5))
        return self.log.entry(STAFF, action, entity_type="unit", entity_id="22015", unit_id="22015")

    async def pending(self) -> list[dict[str, Any]]:
        return await self.units.find({"outbox_pending": True}).to_list()


async def no_publish(routing_key: str, event_id: str, body: bytes) -> None:
    return None


async def test_a_record_reaches_the_log_exactly_once_when_the_relay_dies_between_insert_and_clear(
    devmongo: DevMongo, db_name: str
) -> None:
    s = Store(devmongo, db_name)
    await ensure_outbox_index(s.units)
    created, changed = s.entry("units.create"), s.entry("units.change")
    await s.units.insert_one(
        {"_id": "22015", "name": "Phường 1", **outbox_fields([unit_event("Phường 1")], [created])}
    )
    await s.units.update_one(
        {"_id": "22015"}, with_outbox({"$set": {"name": "Phường Một"}}, [], [changed])
    )
    assert await s.audit.count_documents({}) == 0  # only in the document until the relay runs

    first = OutboxRelay([s.units], no_publish, audit=s.audit)

    async def crash(*args: object) -> None:
        raise ConnectionError("the process died before its clear")

    first.clear = crash  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await first.relay_once()
    # the records are in the log, and still in the document (not cleared)
    assert await s.audit.count_documents({}) == 2
    [doc] = await s.pending()
    assert [r["_id"] for r in doc["audit"]] == [created["_id"], changed["_id"]]

    # the next process's relay moves them again: duplicates, already there; then it clears
    second = OutboxRelay([s.units], no_publish, audit=s.audit)
    assert await second.relay_once() == 1
    assert second.audited == 2
    assert await s.pending() == []
    stored = await s.units.find_one({"_id": "22015"})
    assert stored is not None and stored["audit"] == [] and stored["outbox"] == []
    items, _ = await s.log.entries()
    assert [(e.audit_id, e.action) for e in items] == [
        (changed["_id"], "units.change"),  # newest first: the order of the writes
        (created["_id"], "units.create"),
    ]
    assert items[1].at == T0 + timedelta(milliseconds=5)
    assert await second.relay_once() == 0 and second.audited == 2
    await s.client.close()


async def test_a_record_moves_while_the_broker_refuses_the_events_and_is_cleared_after_both(
    devmongo: DevMongo, db_name: str
) -> None:
    s = Store(devmongo, db_name)
    record = s.entry("units.create")
    await s.units.insert_one({"_id": "22015", **outbox_fields([unit_event("A")], [record])})

    async def broker_gone(routing_key: str, event_id: str, body: bytes) -> None:
        raise ConnectionError("broker gone")

    with pytest.raises(ConnectionError):
        await OutboxRelay([s.units], broker_gone, audit=s.audit).relay_once()
    # the log shows the write already; the document keeps both until the events are out
    assert [d["_id"] for d in await s.audit.find().to_list()] == [record["_id"]]
    [doc] = await s.pending()
    assert len(doc["outbox"]) == 1 and len(doc["audit"]) == 1

    published: list[str] = []

    async def publish(routing_key: str, event_id: str, body: bytes) -> None:
        published.append(event_id)

    assert await OutboxRelay([s.units], publish, audit=s.audit).relay_once() == 1
    assert len(published) == 1
    assert await s.audit.count_documents({}) == 1
    assert await s.pending() == []
    await s.client.close()


async def test_a_record_written_while_the_relay_moves_the_others_waits_for_the_next_pass(
    devmongo: DevMongo, db_name: str
) -> None:
    s = Store(devmongo, db_name)
    await ensure_outbox_index(s.units)
    first, late = s.entry("units.create"), s.entry("units.change")
    await s.units.insert_one({"_id": "22015", **outbox_fields([unit_event("A")], [first])})
    calls = 0

    async def publish(routing_key: str, event_id: str, body: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # a writer changes the document in the middle of the relay's pass
            await s.units.update_one(
                {"_id": "22015"}, with_outbox({"$set": {"x": 1}}, [unit_event("B")], [late])
            )

    relay = OutboxRelay([s.units], publish, audit=s.audit)
    assert await relay.relay_once() == 1
    [doc] = await s.pending()
    assert [r["_id"] for r in doc["audit"]] == [late["_id"]]  # only what it moved was pulled
    assert [d["_id"] for d in await s.audit.find().to_list()] == [first["_id"]]
    assert await relay.relay_once() == 1
    assert await s.pending() == []
    assert sorted(d["_id"] for d in await s.audit.find().to_list()) == [first["_id"], late["_id"]]
    await s.client.close()


async def test_the_records_of_a_batch_go_to_the_log_in_one_insert(
    devmongo: DevMongo, db_name: str
) -> None:
    inserts: list[int] = []

    class Inserts(monitoring.CommandListener):
        def started(self, event: monitoring.CommandStartedEvent) -> None:
            if event.command_name == "insert" and event.command["insert"] == "audit":
                inserts.append(len(event.command["documents"]))

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            pass

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            pass

    s = Store(devmongo, db_name)
    for i in range(20):
        await s.units.insert_one(
            {"_id": f"u{i}", **outbox_fields([unit_event(f"P{i}")], [s.entry("units.create")])}
        )
    watched: AsyncMongoClient[Doc] = AsyncMongoClient(devmongo.url, event_listeners=[Inserts()])
    db = watched[db_name]
    relay = OutboxRelay([db["units"]], no_publish, audit=db["audit"])
    assert await relay.relay_once() == 20
    assert inserts == [20]
    assert await s.audit.count_documents({}) == 20
    assert await s.pending() == []
    await watched.close()
    await s.client.close()
