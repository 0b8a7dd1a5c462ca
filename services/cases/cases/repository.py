"""The cases service's MongoDB collections, their indexes and the document ↔ model mapping.

- `cases`: one document per case — the facts, the workflow state (`timeline` only ever grows by
  `$push`), the pending `deadlines` and `next_due_at` (queried for `overdue`), the requester's
  data and the summary SEALED under `sealed`, the source event ids and the outbox.
- `units`: this service's copy of the unit tree, from `unit.upserted` events.
- `audit`: who read personal data or changed a case, when, which case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from lhpn_shared.contracts.cases import CaseTopic
from lhpn_shared.contracts.units import Unit
from lhpn_shared.mongo import Doc
from lhpn_shared.outbox import ensure_outbox_index

from .adapters.crypto import EncryptedValue
from .domain.deadlines import Deadline, DeadlineName
from .domain.deadlines import next_due_at as earliest_due_at
from .domain.flags import CaseFlag
from .domain.workflow import CaseState, TimelineEntry

STATE_FIELDS = tuple(CaseState.model_fields)


@dataclass(frozen=True)
class Sealed:
    """The personal data of a case, as stored: every value encrypted (`FieldCipher`)."""

    requester: dict[str, EncryptedValue | None] | None = None
    summary: EncryptedValue | None = None


@dataclass(frozen=True)
class StoredCase:
    case_id: UUID
    unit_id: str
    topic: CaseTopic
    flags: tuple[CaseFlag, ...]
    assigned_to: str | None
    state: CaseState
    deadlines: tuple[Deadline, ...]
    sealed: Sealed = field(default_factory=Sealed)
    source_event_ids: tuple[str, ...] = ()

    @property
    def next_due_at(self) -> datetime | None:
        return earliest_due_at(self.deadlines)


class CasesStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.cases = db["cases"]
        self.units = db["units"]
        self.audit = db["audit"]

    @property
    def outbox_collections(self) -> list[Any]:
        return [self.cases]

    async def ensure_indexes(self) -> None:
        await ensure_outbox_index(self.cases)
        await self.cases.create_index(
            [("unit_id", ASCENDING), ("received_on", DESCENDING), ("_id", ASCENDING)]
        )
        await self.cases.create_index([("next_due_at", ASCENDING)])
        await self.audit.create_index([("case_id", ASCENDING), ("at", ASCENDING)])


# ---- cases -------------------------------------------------------------------------------------


def state_to_doc(state: CaseState) -> Doc:
    """The workflow state as BSON-friendly fields: instants stay dates, days become ISO text."""
    doc = state.model_dump(mode="json")
    doc["status_at"] = {status.value: at for status, at in state.status_at.items()}
    doc["timeline"] = [entry_to_doc(e) for e in state.timeline]
    doc["reopened_at"] = state.reopened_at
    return doc


def entry_to_doc(entry: TimelineEntry) -> Doc:
    return {**entry.model_dump(mode="json"), "at": entry.at}


def deadlines_to_doc(deadlines: tuple[Deadline, ...]) -> list[Doc]:
    return [
        {"name": d.name.value, "due_on": d.due_on.isoformat(), "due_at": d.due_at}
        for d in deadlines
    ]


def case_to_doc(case: StoredCase) -> Doc:
    return {
        "_id": str(case.case_id),
        "unit_id": case.unit_id,
        "topic": case.topic.value,
        "flags": [f.value for f in case.flags],
        "assigned_to": case.assigned_to,
        **state_to_doc(case.state),
        "deadlines": deadlines_to_doc(case.deadlines),
        "next_due_at": case.next_due_at,
        "sealed": {"requester": case.sealed.requester, "summary": case.sealed.summary},
        "source_event_ids": list(case.source_event_ids),
    }


def case_from_doc(doc: Doc) -> StoredCase:
    sealed = doc.get("sealed") or {}
    return StoredCase(
        case_id=UUID(doc["_id"]),
        unit_id=doc["unit_id"],
        topic=CaseTopic(doc["topic"]),
        flags=tuple(CaseFlag(f) for f in doc.get("flags", [])),
        assigned_to=doc.get("assigned_to"),
        state=CaseState.model_validate({k: doc[k] for k in STATE_FIELDS if k in doc}),
        deadlines=tuple(
            Deadline(DeadlineName(d["name"]), date.fromisoformat(d["due_on"]))
            for d in doc.get("deadlines", [])
        ),
        sealed=Sealed(requester=sealed.get("requester"), summary=sealed.get("summary")),
        source_event_ids=tuple(doc.get("source_event_ids", [])),
    )


# ---- units -------------------------------------------------------------------------------------


def unit_to_doc(unit: Unit) -> Doc:
    return unit.model_dump(mode="json")


def unit_from_doc(doc: Doc) -> Unit:
    return Unit.model_validate({k: v for k, v in doc.items() if k != "_id"})
