"""The audit records of intake's administrative writes (users, API keys, units) travel inside
the document the write changes, next to its event, like those of activities and reports: the
change and its record are one write, so a crash after it cannot lose the record (the relay
moves it to the log, `lhpn_shared.outbox`). Nothing is written to the log directly: here no
relay runs, so the log stays empty and each record waits in its document."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from intake.api_keys import ApiKeys, NewApiKey
from intake.repository import IntakeStore
from intake.unit_api import change_audit
from intake.unit_rules import Rename, Reorganisation
from intake.units import UnitRegistry
from intake.users import NewUser, Passwords, RoleChange, Users
from lhpn_shared.accounts import AccessRegistry
from lhpn_shared.audit import AuditLog
from lhpn_shared.clock import FixedClock
from lhpn_shared.contracts.units import Unit, UnitTree
from lhpn_shared.mongo import database, make_client
from lhpn_shared.outbox import AUDIT_FIELD
from lhpn_shared.principal import Principal, Role
from lhpn_shared.settings import ServiceSettings
from tests.support.infra import DevMongo

pytestmark = pytest.mark.integration

ADMIN = Principal(subject="quan-tri", role=Role.admin)
T0 = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)
PROVINCE = Unit(unit_id="54", name="Hội LHPN tỉnh Phú Yên", kind="tỉnh", level="province")
DISTRICT = Unit(
    unit_id="555", name="Hội LHPN huyện Tuy An", kind="huyện", level="district", parent_id="54"
)


class Intake:
    def __init__(self, devmongo: DevMongo, db_name: str) -> None:
        client = make_client(ServiceSettings(mongo_url=devmongo.url))
        self.store = IntakeStore(database(client, db_name))
        self.clock = FixedClock(T0)
        self.log = AuditLog(self.store.audit, self.clock)

    async def pending(self, coll: Any, _id: str) -> list[tuple[str, Any, str | None]]:
        """(action, entity id, unit) of the records waiting in the document `_id`."""
        doc = await coll.find_one({"_id": _id})
        assert doc is not None
        return [(r["action"], r["entity_id"], r["unit_id"]) for r in doc.get(AUDIT_FIELD, [])]


async def test_user_changes_carry_their_audit_records(devmongo: DevMongo, db_name: str) -> None:
    s = Intake(devmongo, db_name)
    users = Users(s.store.users, s.clock, AccessRegistry(), s.log, Passwords())
    tree = UnitTree([PROVINCE])
    await users.create(
        NewUser(
            username="can-bo-tinh", password="mat-khau-dai", role=Role.province_staff, unit_id="54"
        ),
        tree,
        ADMIN,
    )
    assert await s.pending(s.store.users, "can-bo-tinh") == [("users.create", "can-bo-tinh", "54")]
    await users.change_role("can-bo-tinh", RoleChange(role=Role.viewer, unit_id="54"), tree, ADMIN)
    await users.set_enabled("can-bo-tinh", False, ADMIN)
    assert [a for a, _, _ in await s.pending(s.store.users, "can-bo-tinh")] == [
        "users.create",
        "users.change_role",
        "users.disable",
    ]
    assert await s.store.audit.count_documents({}) == 0


async def test_api_key_changes_carry_their_audit_records(devmongo: DevMongo, db_name: str) -> None:
    s = Intake(devmongo, db_name)
    keys = ApiKeys(s.store.api_keys, s.clock, AccessRegistry(), s.log)
    created = await keys.create(
        NewApiKey(name="he-thong-tinh", unit_id="54"), UnitTree([PROVINCE]), ADMIN
    )
    await keys.revoke(created.key_id, ADMIN)
    assert await s.pending(s.store.api_keys, created.key_id) == [
        ("api_keys.create", created.key_id, "54"),
        ("api_keys.revoke", created.key_id, "54"),
    ]
    assert await s.store.audit.count_documents({}) == 0


async def test_unit_changes_carry_their_audit_records_in_their_change_records(
    devmongo: DevMongo, db_name: str
) -> None:
    s = Intake(devmongo, db_name)
    registry = UnitRegistry(s.store, s.clock, lambda *_: None)
    await registry.load()
    loaded = await registry.load_units(
        [PROVINCE, DISTRICT], ADMIN.subject, audit=change_audit(s.log, ADMIN, "load")
    )
    assert loaded.change_id is not None
    rename = Reorganisation(
        reorganisation_id="nq-2025",
        effective_on=date(2025, 7, 1),
        rename=[Rename(unit_id="555", name="Hội LHPN khu vực Tuy An")],
    )
    _, applied_now = await registry.reorganise(
        rename, ADMIN.subject, change_audit(s.log, ADMIN, "reorganisation")
    )
    assert applied_now
    assert await s.pending(s.store.unit_changes, loaded.change_id) == [
        ("units.change", loaded.change_id, None)  # two units: none named
    ]
    assert await s.pending(s.store.unit_changes, "nq-2025") == [("units.change", "nq-2025", "555")]
    # the same change sent again is applied, and audited, once
    assert (await registry.reorganise(rename, ADMIN.subject, change_audit(s.log, ADMIN, "x")))[
        1
    ] is False
    assert len(await s.pending(s.store.unit_changes, "nq-2025")) == 1
    assert await s.store.audit.count_documents({}) == 0
