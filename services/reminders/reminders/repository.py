"""Reminders' MongoDB collections, their indexes and the document ↔ model mapping.

- `units`, `plans`, `cases`: this service's copies of other services' facts (by revision);
- `reports`: the reports received (earliest `received_at`), kept so that a report arriving
  before its plan or unit still fulfils the obligation once it is derived;
- `obligations`: unit × report type × period. Each writer owns its fields and writes by `_id`
  alone: derivation the definition, a report `received_at` (`$min`) and `on_time` (`$max`), a
  sweep `overdue_at` and `next_step_at` (see `domain.progress`); the status follows from them.
  Outbox of `obligation.*` events;
- `contacts`: per unit, e-mail addresses and an optional signed webhook;
- `send_log`: one document per send key, UNIQUE (subject_ref, step, recipient_unit_id): a sweep
  claims a send by inserting it. It carries the send's deliveries, one per channel, and the
  outbox of `notification.*` events. `lease_id` is also the document's version: whoever
  delivers takes it by compare-and-swap on the `lease_id` it read, and every release writes a
  new one.

MongoDB-compatible servers differ in which writes an index serves: mongo-java-server (DevMongo)
serves a filtered update through an index only when the filter's keys are exactly an index's
keys, and scans the collection otherwise. Hence writes here filter on `_id` alone, and the two
compare-and-swaps, (`_id`, `lease_id`) and a sweep's (`_id`, `revision`) on cases, have their
own indexes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from lhpn_shared.clock import ensure_aware, to_millis
from lhpn_shared.contracts.cases import CaseFacts
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.units import Unit
from lhpn_shared.idempotency import ensure_revision_index
from lhpn_shared.mongo import Doc
from lhpn_shared.outbox import ensure_outbox_index

from .domain.obligations import Obligation, ObligationStatus

SEND_KEY_INDEX = "one_send_per_key"
NEVER = datetime(1970, 1, 1, tzinfo=UTC)
"""`lease_until` of a delivery nobody holds."""
STATE_FIELDS_EXCLUDED = {"_id", "outbox", "outbox_pending", "outbox_seq", "revision"}


class DeliveryStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    retrying = "retrying"
    failed = "failed"


OPEN_DELIVERY = (DeliveryStatus.pending.value, DeliveryStatus.retrying.value)


REFERENCE = "reference"
"""`meta` document counting the writes of units and plans (`Reminders.fresh`)."""


class RemindersStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.units = db["units"]
        self.plans = db["plans"]
        self.cases = db["cases"]
        self.reports = db["reports"]
        self.contacts = db["contacts"]
        self.obligations = db["obligations"]
        self.send_log = db["send_log"]
        self.meta = db["meta"]
        self.audit = db["audit"]

    @property
    def outbox_collections(self) -> list[AsyncCollection[Doc]]:
        """The collections whose documents carry events or audit records for the relay
        (contacts and the policy in `meta`: the audit records of staff's writes, first, since
        moving them needs no broker and a pass stops at a collection whose events fail)."""
        return [self.contacts, self.meta, self.obligations, self.send_log]

    async def ensure_indexes(self) -> None:
        for coll in self.outbox_collections:
            await ensure_outbox_index(coll)
        await ensure_revision_index(self.units)
        await ensure_revision_index(self.plans)
        # a unit event reads its subtree and lineage as stored (replicas: context.units_around)
        await self.units.create_index([("parent_id", ASCENDING)])
        await self.obligations.create_index([("next_step_at", ASCENDING)])
        await self.obligations.create_index(
            [("unit_id", ASCENDING), ("report_type", ASCENDING), ("period", ASCENDING)]
        )
        await self.obligations.create_index([("plan_id", ASCENDING)])
        # the fulfilment's filter (`_id`, still open): served by an index on exactly its keys
        await self.obligations.create_index(
            [("_id", ASCENDING), ("received_at", ASCENDING)], name="fulfilment_guard"
        )
        await self.cases.create_index([("next_step_at", ASCENDING)])
        # the sweep's search for subjects planned with an older policy (`policy_store`)
        await self.obligations.create_index([("policy_revision", ASCENDING)])
        await self.cases.create_index([("policy_revision", ASCENDING)])
        await self.cases.create_index(
            [("_id", ASCENDING), ("revision", ASCENDING)], unique=True, name="revision_guard"
        )
        await self.send_log.create_index(
            [("subject_ref", ASCENDING), ("step", ASCENDING), ("recipient_unit_id", ASCENDING)],
            unique=True,
            name=SEND_KEY_INDEX,
        )
        await self.send_log.create_index(
            [("next_attempt_at", ASCENDING), ("lease_until", ASCENDING)]
        )
        await self.send_log.create_index([("recipient_unit_id", ASCENDING)])
        await self.send_log.create_index(
            [("_id", ASCENDING), ("lease_id", ASCENDING)], unique=True, name="lease_guard"
        )

    async def reference_generation(self) -> int:
        """How many times a unit or a plan was stored, by any replica."""
        doc = await self.meta.find_one({"_id": REFERENCE})
        return 0 if doc is None else int(doc["n"])

    async def next_reference_generation(self) -> None:
        """Count one more unit or plan stored (after storing it)."""
        try:
            await self.meta.update_one({"_id": REFERENCE}, {"$inc": {"n": 1}}, upsert=True)
        except DuplicateKeyError:  # another replica created the counter at the same moment
            await self.meta.update_one({"_id": REFERENCE}, {"$inc": {"n": 1}}, upsert=True)


def state(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if k not in STATE_FIELDS_EXCLUDED}


def unit_fields(unit: Unit) -> Doc:
    return unit.model_dump(mode="json", exclude={"revision"})


def unit_from_doc(doc: Doc) -> Unit:
    return Unit.model_validate({**state(doc), "revision": doc.get("revision", 1)})


def plan_fields(plan: Plan) -> Doc:
    return plan.model_dump(mode="json", exclude={"revision"})


def plan_from_doc(doc: Doc) -> Plan:
    return Plan.model_validate({**state(doc), "revision": doc.get("revision", 1)})


def case_fields(case: CaseFacts, next_step_at: datetime | None) -> Doc:
    return {
        "facts": case.model_dump(mode="json"),
        "unit_id": case.unit_id,
        "status": case.status.value,
        "next_step_at": _instant(next_step_at),
    }


def case_from_doc(doc: Doc) -> CaseFacts:
    return CaseFacts.model_validate(doc["facts"])


def report_key(unit_id: str, report_type: str, period: str) -> str:
    return f"{unit_id}:{report_type}:{period}"


def obligation_doc(
    obligation: Obligation, *, next_step_at: datetime | None, on_time: bool | None = None
) -> Doc:
    """A new obligation; `received_at` and `on_time` only once its report is here (absent,
    not null, so that `$min` can set them)."""
    doc = {
        "_id": obligation.obligation_id,
        **obligation_definition(obligation),
        "next_step_at": _instant(next_step_at),
    }
    if obligation.received_at is not None:
        doc["received_at"] = _instant(obligation.received_at)
        doc["on_time"] = bool(on_time)
    return doc


def obligation_status(doc: Doc, as_of: datetime) -> ObligationStatus:
    if doc.get("received_at") is not None:
        on_time = doc.get("on_time")
        return ObligationStatus.fulfilled_on_time if on_time else ObligationStatus.fulfilled_late
    return ObligationStatus.overdue if doc["due_at"] <= as_of else ObligationStatus.open


def status_query(status: ObligationStatus, as_of: datetime) -> Doc:
    """The filter that selects the obligations of `status` at `as_of`."""
    if status is ObligationStatus.open:
        return {"received_at": None, "due_at": {"$gt": as_of}}
    if status is ObligationStatus.overdue:
        return {"received_at": None, "due_at": {"$lte": as_of}}
    on_time = status is ObligationStatus.fulfilled_on_time
    return {"received_at": {"$ne": None}, "on_time": on_time}


def obligation_definition(obligation: Obligation) -> Doc:
    """What derivation decides (the rest is what reports and sweeps change)."""
    return {
        "plan_id": obligation.plan_id,
        "report_type": obligation.report_type,
        "period": obligation.period,
        "unit_id": obligation.unit_id,
        "unit_level": obligation.unit_level.value,
        "due_at": _instant(obligation.due_at),
        "recipient_unit_id": obligation.recipient_unit_id,
    }


def obligation_from_doc(doc: Doc) -> Obligation:
    return Obligation(
        obligation_id=doc["_id"],
        plan_id=doc["plan_id"],
        report_type=doc["report_type"],
        period=doc["period"],
        unit_id=doc["unit_id"],
        unit_level=doc["unit_level"],
        due_at=ensure_aware(doc["due_at"]),
        recipient_unit_id=doc.get("recipient_unit_id"),
        received_at=ensure_aware(doc["received_at"]) if doc.get("received_at") else None,
    )


def optional_instant(doc: Doc, name: str) -> datetime | None:
    value = doc.get(name)
    return ensure_aware(value) if value is not None else None


def _instant(at: datetime | None) -> datetime | None:
    return to_millis(at) if at is not None else None


def delivery_entry(channel_fields: dict[str, Any], now: datetime) -> Doc:
    """A new delivery on one channel: pending, due now."""
    return {
        **channel_fields,
        "status": DeliveryStatus.pending.value,
        "attempts": 0,
        "last_error": None,
        "next_attempt_at": to_millis(now),
        "sent_at": None,
    }
