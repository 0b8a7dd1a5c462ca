"""Intake's MongoDB collections, their indexes and the document ↔ model mapping."""

from __future__ import annotations

from datetime import date
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from lhpn_shared.contracts.activities import Activity
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.reports import Report
from lhpn_shared.contracts.units import Unit
from lhpn_shared.idempotency import ensure_revision_index
from lhpn_shared.mongo import Doc, GroupedInserts
from lhpn_shared.outbox import OUTBOX_FIELDS, ensure_outbox_index

STATE_FIELDS_EXCLUDED = {"_id", "source_event_ids", *OUTBOX_FIELDS}


class IntakeStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.units = db["units"]
        self.unit_changes = db["unit_changes"]
        self.plans = db["plans"]
        self.activities = db["activities"]
        self.new_activities = GroupedInserts(self.activities)
        """activities recorded at the same moment (HTTP requests, inbound messages) are
        inserted together"""
        self.reports = db["reports"]
        self.users = db["users"]
        self.api_keys = db["api_keys"]
        self.sign_in_failures = db["sign_in_failures"]
        self.audit = db["audit"]

    @property
    def outbox_collections(self) -> list[Any]:
        return [
            self.units,
            self.unit_changes,
            self.plans,
            self.activities,
            self.reports,
            self.users,
            self.api_keys,
        ]

    async def ensure_indexes(self) -> None:
        for coll in self.outbox_collections:
            await ensure_outbox_index(coll)
        await self.activities.create_index([("unit_id", ASCENDING), ("occurred_on", ASCENDING)])
        await ensure_revision_index(self.units)
        # one change per revision of a unit: the commit point of a multi-unit change
        await self.unit_changes.create_index("claims", unique=True, name="one_change_per_revision")
        await self.unit_changes.create_index([("applied", ASCENDING), ("created_at", ASCENDING)])
        await self.reports.create_index(
            [("unit_id", ASCENDING), ("report_type", ASCENDING), ("period", ASCENDING)],
            unique=True,
            name="one_report_per_unit_type_period",
        )
        await self.api_keys.create_index([("key_hash", ASCENDING)], unique=True)
        await self.api_keys.create_index([("name", ASCENDING)], unique=True)


def state(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if k not in STATE_FIELDS_EXCLUDED}


def unit_to_doc(unit: Unit) -> Doc:
    d = unit.model_dump(mode="json")
    return d


def unit_from_doc(doc: Doc) -> Unit:
    return Unit.model_validate(state(doc))


def plan_to_doc(plan: Plan) -> Doc:
    return plan.model_dump(mode="json")


def plan_from_doc(doc: Doc) -> Plan:
    return Plan.model_validate(state(doc))


def activity_to_doc(activity: Activity) -> Doc:
    d = activity.model_dump(mode="json", exclude={"recorded_at"})
    d["recorded_at"] = activity.recorded_at  # keep instants as BSON dates
    return d


def activity_from_doc(doc: Doc) -> Activity:
    return Activity.model_validate(state(doc))


def report_from_doc(doc: Doc) -> Report:
    s = state(doc)
    s["attachments"] = [
        {k: v for k, v in a.items() if k != "content"} for a in s.get("attachments", [])
    ]
    return Report.model_validate(s)


def iso(d: date) -> str:
    return d.isoformat()
