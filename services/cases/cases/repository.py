"""The cases service's MongoDB collections, their indexes and the document ↔ model mapping.

- `cases`: one document per case — the facts, the workflow state (`timeline` only ever grows by
  `$push`), the pending `deadlines` and `next_due_at` (queried for `overdue`), the source event
  ids and the outbox. Personal data is stored SEALED only: the requester's data, the summary
  and the reason for declining under `sealed`, each timeline note in its entry's `note`.
  (Documents written before notes were sealed may hold a note or a top-level `decline_reason`
  in clear: they are read, and `python -m cases reencrypt` seals them.)
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
from lhpn_shared.idempotency import ensure_revision_index
from lhpn_shared.mongo import Doc
from lhpn_shared.outbox import ensure_outbox_index

from .adapters.crypto import EncryptedValue, StoredValue
from .domain.deadlines import Deadline, DeadlineName
from .domain.deadlines import next_due_at as earliest_due_at
from .domain.flags import CaseFlag
from .domain.workflow import CaseState, TimelineEntry

STATE_FIELDS = tuple(CaseState.model_fields)


SealedText = StoredValue | str
"""A sealed value, or (in a document written before it was sealed) the text in clear."""


@dataclass(frozen=True)
class Sealed:
    """The personal data of a case, as stored: every value encrypted (`FieldCipher`).

    `notes` has one item per timeline entry (None: no note); the state's own notes and decline
    reason are left empty when a case is read, and never written from the state."""

    requester: dict[str, EncryptedValue | None] | None = None
    summary: EncryptedValue | None = None
    decline_reason: SealedText | None = None
    notes: tuple[SealedText | None, ...] = ()


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
        await ensure_revision_index(self.units)
        await self.cases.create_index(
            [("unit_id", ASCENDING), ("received_on", DESCENDING), ("_id", ASCENDING)]
        )
        await self.cases.create_index([("next_due_at", ASCENDING)])
        await self.audit.create_index([("case_id", ASCENDING), ("at", ASCENDING)])


# ---- cases -------------------------------------------------------------------------------------


def state_to_doc(state: CaseState, notes: tuple[SealedText | None, ...] = ()) -> Doc:
    """The workflow state as BSON-friendly fields: instants stay dates, days become ISO text.
    The personal text of the state is never written: the decline reason is left out (it is
    stored under `sealed`) and each entry's note is the sealed one from `notes`."""
    doc = state.model_dump(mode="json", exclude={"decline_reason"})
    doc["status_at"] = {status.value: at for status, at in state.status_at.items()}
    doc["timeline"] = [
        entry_to_doc(e, notes[i] if i < len(notes) else None) for i, e in enumerate(state.timeline)
    ]
    doc["reopened_at"] = state.reopened_at
    return doc


def entry_to_doc(entry: TimelineEntry, note: SealedText | None) -> Doc:
    """A timeline entry with its note sealed (`note`: from `CaseSealer.seal_note`)."""
    return {**entry.model_dump(mode="json"), "at": entry.at, "note": note}


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
        **state_to_doc(case.state, case.sealed.notes),
        "deadlines": deadlines_to_doc(case.deadlines),
        "next_due_at": case.next_due_at,
        "sealed": {
            "requester": case.sealed.requester,
            "summary": case.sealed.summary,
            "decline_reason": case.sealed.decline_reason,
        },
        "source_event_ids": list(case.source_event_ids),
    }


def case_from_doc(doc: Doc) -> StoredCase:
    """The case as stored; its state carries no personal text (see `Sealed`)."""
    sealed = doc.get("sealed") or {}
    timeline = doc.get("timeline", [])
    state = {k: doc[k] for k in STATE_FIELDS if k in doc and k != "decline_reason"}
    state["timeline"] = [{**e, "note": None} for e in timeline]
    return StoredCase(
        case_id=UUID(doc["_id"]),
        unit_id=doc["unit_id"],
        topic=CaseTopic(doc["topic"]),
        flags=tuple(CaseFlag(f) for f in doc.get("flags", [])),
        assigned_to=doc.get("assigned_to"),
        state=CaseState.model_validate(state),
        deadlines=tuple(
            Deadline(DeadlineName(d["name"]), date.fromisoformat(d["due_on"]))
            for d in doc.get("deadlines", [])
        ),
        sealed=Sealed(
            requester=sealed.get("requester"),
            summary=sealed.get("summary"),
            decline_reason=sealed.get("decline_reason") or doc.get("decline_reason"),
            notes=tuple(e.get("note") for e in timeline),
        ),
        source_event_ids=tuple(doc.get("source_event_ids", [])),
    )


# ---- units -------------------------------------------------------------------------------------


def unit_to_doc(unit: Unit) -> Doc:
    return unit.model_dump(mode="json")


def unit_from_doc(doc: Doc) -> Unit:
    return Unit.model_validate({k: v for k, v in doc.items() if k != "_id"})
