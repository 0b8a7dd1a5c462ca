"""The audit records of staff's writes in reminders (a unit's contacts, the reminder policy)
travel inside the document written, like intake's and cases': the change and its record are
one write, so a crash after it cannot lose the record (the relay moves it to the log,
`lhpn_shared.outbox`). Nothing is written to the log directly: here no relay runs, so the log
stays empty and each record waits in its document."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from lhpn_shared.audit import AuditLog
from lhpn_shared.clock import FixedClock
from lhpn_shared.http import FieldProblem
from lhpn_shared.mongo import Doc, database, make_client
from lhpn_shared.outbox import AUDIT_FIELD, OutboxRelay
from lhpn_shared.principal import Principal, Role
from lhpn_shared.settings import ServiceSettings
from reminders.contacts import Contacts
from reminders.delivery.addresses import RefusedAddress
from reminders.domain.case_deadlines import CaseReminderPolicy
from reminders.domain.policy import ReminderPolicy
from reminders.policy_store import POLICY_ID, PolicyBook, StalePolicy, StoredPolicy
from reminders.repository import RemindersStore
from reminders.unit_contacts import set_contacts
from tests.support.infra import DevMongo

pytestmark = pytest.mark.integration

STAFF = Principal(subject="can-bo-huyen", role=Role.district_staff, unit_id="555")
ADMIN = Principal(subject="quan-tri", role=Role.admin)
T0 = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)


def store_of(devmongo: DevMongo, db_name: str) -> tuple[RemindersStore, AuditLog]:
    client = make_client(ServiceSettings(mongo_url=devmongo.url))
    store = RemindersStore(database(client, db_name))
    return store, AuditLog(store.audit, FixedClock(T0))


async def pending(coll: Any, _id: str) -> list[tuple[str, Any, str | None]]:
    doc = await coll.find_one({"_id": _id})
    assert doc is not None
    return [(r["action"], r["entity_id"], r["unit_id"]) for r in doc.get(AUDIT_FIELD, [])]


async def test_contacts_carry_their_audit_record_to_the_relay(
    devmongo: DevMongo, db_name: str
) -> None:
    store, log = store_of(devmongo, db_name)
    woken: list[bool] = []
    ctx: Any = SimpleNamespace(
        store=store, now=lambda: T0, wake_relay=lambda: woken.append(True), secrets=None
    )
    contacts = Contacts(emails=["hoi.555@example.vn"])
    await set_contacts(ctx, "555", contacts, STAFF.subject, lambda: contacts_record(log))
    assert await pending(store.contacts, "555") == [("contacts.write", "555", "555")]
    assert await store.audit.count_documents({}) == 0
    assert woken == [True]

    async def no_publish(routing_key: str, event_id: str, body: bytes) -> None:
        raise AssertionError("a contacts write has no event")

    relay = OutboxRelay(store.outbox_collections, no_publish, audit=store.audit)
    await relay.relay_once()
    assert [d["action"] for d in await store.audit.find({}).to_list()] == ["contacts.write"]
    assert await pending(store.contacts, "555") == []


def contacts_record(log: AuditLog) -> list[Doc]:
    return [
        log.entry(STAFF, "contacts.write", entity_type="contacts", entity_id="555", unit_id="555")
    ]


class RefusingGuard:
    async def pin(self, url: str) -> None:
        raise RefusedAddress("Địa chỉ webhook trỏ vào mạng nội bộ.")


async def test_refused_contacts_store_no_record(devmongo: DevMongo, db_name: str) -> None:
    store, log = store_of(devmongo, db_name)
    ctx: Any = SimpleNamespace(
        store=store, now=lambda: T0, wake_relay=lambda: None, secrets=None, guard=RefusingGuard()
    )
    contacts = Contacts(webhook_url="http://10.0.0.5/hook", webhook_secret="k" * 16)
    with pytest.raises(FieldProblem):
        await set_contacts(ctx, "555", contacts, STAFF.subject, lambda: contacts_record(log))
    assert await store.contacts.count_documents({}) == 0
    assert await store.audit.count_documents({}) == 0


async def test_a_policy_change_carries_its_audit_record(devmongo: DevMongo, db_name: str) -> None:
    store, log = store_of(devmongo, db_name)
    book = PolicyBook(store.meta, StoredPolicy(0, ReminderPolicy(), CaseReminderPolicy()))
    for revision in (0, 1):
        record = log.entry(
            ADMIN,
            "reminder_policy.write",
            entity_type="reminder_policy",
            entity_id=str(revision + 1),
        )
        await book.replace(
            revision, ReminderPolicy(), CaseReminderPolicy(), ADMIN.subject, T0, [record]
        )
    assert await pending(store.meta, POLICY_ID) == [
        ("reminder_policy.write", "1", None),
        ("reminder_policy.write", "2", None),
    ]
    assert await store.audit.count_documents({}) == 0
    assert (await book.read()).revision == 2

    # a change from a revision read before the last one is refused, and leaves no record
    record = log.entry(ADMIN, "reminder_policy.write", entity_type="reminder_policy", entity_id="2")
    with pytest.raises(StalePolicy):
        await book.replace(1, ReminderPolicy(), CaseReminderPolicy(), ADMIN.subject, T0, [record])
    assert len(await pending(store.meta, POLICY_ID)) == 2
    assert (await book.read()).revision == 2
