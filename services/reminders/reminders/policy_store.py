"""The reminder policy as administrators set it: one document in reminders' database.

- `meta` holds it under `_id: "reminder_policy"` with a `revision` (1 at the first PUT; the
  settings' `REMINDER_POLICY` / `CASE_REMINDER_POLICY` are revision 0 until then). A change is a
  compare-and-swap on the revision the administrator read: of two at once, one wins, the other
  is told the policy changed meanwhile (409).
- Every obligation and case records the `policy_revision` its `next_step_at` was computed with.
  Each sweep first reads the policy (one read by `_id`: every replica sweeps with the newest),
  then re-plans the open subjects computed with an older revision, a bounded number of batches
  per sweep (`apply_policy`). A process that dies halfway leaves the rest marked with the old
  revision, and the next sweep continues; doing a document twice gives the same result.
- Event handlers between two sweeps use the copy the process read at its last sweep (or its
  own PUT): what they write carries that revision, so the next sweep corrects it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from lhpn_shared.clock import ensure_aware, to_millis
from lhpn_shared.mongo import Doc
from lhpn_shared.outbox import outbox_fields, with_outbox

from .agenda import Agenda
from .domain.case_deadlines import CaseReminderPolicy
from .domain.policy import ReminderPolicy
from .domain.progress import next_case_step_at, next_obligation_step_at, resume_after
from .repository import case_from_doc, obligation_from_doc, optional_instant

log = logging.getLogger("reminders.policy")

POLICY_ID = "reminder_policy"
APPLY_BATCH = 500
APPLY_BATCHES_PER_SWEEP = 20
"""At most this many batches per sweep and kind: a large change finishes over a few sweeps."""


@dataclass(frozen=True)
class StoredPolicy:
    revision: int
    reports: ReminderPolicy
    cases: CaseReminderPolicy
    updated_at: datetime | None = None
    updated_by: str | None = None


class StalePolicy(Exception):
    """The policy changed since the revision the caller read."""

    def __init__(self, current: int) -> None:
        super().__init__(current)
        self.current = current


class PolicyBook:
    """Reads and replaces the stored policy; the settings' policy until the first change."""

    def __init__(self, meta: AsyncCollection[Doc], defaults: StoredPolicy) -> None:
        self.meta = meta
        self.defaults = defaults

    async def read(self) -> StoredPolicy:
        doc = await self.meta.find_one({"_id": POLICY_ID})
        if doc is None:
            return self.defaults
        return StoredPolicy(
            revision=int(doc["revision"]),
            reports=ReminderPolicy.model_validate(doc["reports"]),
            cases=CaseReminderPolicy.model_validate(doc["cases"]),
            updated_at=ensure_aware(doc["updated_at"]),
            updated_by=doc.get("updated_by"),
        )

    async def replace(
        self,
        read_revision: int,
        reports: ReminderPolicy,
        cases: CaseReminderPolicy,
        actor: str,
        now: datetime,
        audit: Sequence[Doc] = (),
    ) -> StoredPolicy:
        """Store a new policy if the stored one is still `read_revision` (else StalePolicy).
        `audit`: the write's audit records, stored in the same write (the relay moves them)."""
        stored = StoredPolicy(read_revision + 1, reports, cases, to_millis(now), actor)
        fields: Doc = {
            "revision": stored.revision,
            "reports": reports.model_dump(mode="json"),
            "cases": cases.model_dump(mode="json"),
            "updated_at": stored.updated_at,
            "updated_by": actor,
        }
        if read_revision == 0:
            try:
                await self.meta.insert_one({"_id": POLICY_ID, **fields, **outbox_fields([], audit)})
            except DuplicateKeyError:
                raise StalePolicy((await self.read()).revision) from None
            return stored
        result = await self.meta.update_one(
            {"_id": POLICY_ID, "revision": read_revision},
            with_outbox({"$set": fields}, [], audit) if audit else {"$set": fields},
        )
        if result.matched_count == 0:
            raise StalePolicy((await self.read()).revision)
        return stored


def _older(revision: int) -> list[Doc]:
    """The queries for documents planned with an older policy (or before revisions existed)."""
    return [{"policy_revision": {"$lt": revision}}, {"policy_revision": None}]


async def apply_policy(
    obligations: AsyncCollection[Doc],
    cases: AsyncCollection[Doc],
    policy: StoredPolicy,
    agenda: Agenda,
) -> int:
    """Re-plan `next_step_at` of the subjects planned with an older revision; how many were
    re-planned. Bounded per call; idempotent (the change's own instant, not the sweep's, says
    which steps are past: a later sweep finishing the job plans the same). The agenda is told
    of each batch's new steps, so sweeps of other replicas look again."""
    if policy.revision == 0 or policy.updated_at is None:
        return 0  # the settings' policy: every document was planned with it
    now = policy.updated_at
    done = 0
    for query in _older(policy.revision):
        for _ in range(APPLY_BATCHES_PER_SWEEP):
            docs = await obligations.find(query, {"outbox": 0}).limit(APPLY_BATCH).to_list(None)
            if not docs:
                break
            replanned = [_replan_obligation(d, policy, now) for d in docs]
            async with agenda.scheduling(at for _, at in replanned):
                await obligations.bulk_write([op for op, _ in replanned], ordered=False)
            done += len(docs)
    for query in _older(policy.revision):
        for _ in range(APPLY_BATCHES_PER_SWEEP):
            docs = await cases.find(query).limit(APPLY_BATCH).to_list(None)
            if not docs:
                break
            replanned = [_replan_case(d, policy, now) for d in docs]
            async with agenda.scheduling(at for _, at in replanned):
                await cases.bulk_write([op for op, _ in replanned], ordered=False)
            done += len(docs)
    if done:
        log.info("reminder policy applied", extra={"revision": policy.revision, "subjects": done})
    return done


def _replan_obligation(
    doc: Doc, policy: StoredPolicy, now: datetime
) -> tuple[UpdateOne, datetime | None]:
    """The write, and the `next_step_at` it stores."""
    if doc.get("received_at") is not None:  # reported: nothing to plan, only mark it
        op = UpdateOne({"_id": doc["_id"]}, {"$set": {"policy_revision": policy.revision}})
        return op, None
    ob = obligation_from_doc(doc)
    after = resume_after(optional_instant(doc, "next_step_at"), now)
    next_step_at = _millis(next_obligation_step_at(ob, policy.reports, after))
    update: dict[str, Any] = {
        "$set": {"next_step_at": next_step_at, "policy_revision": policy.revision}
    }
    # still open (a report stored meanwhile wins; the next batch marks it)
    return UpdateOne({"_id": doc["_id"], "received_at": None}, update), next_step_at


def _replan_case(
    doc: Doc, policy: StoredPolicy, now: datetime
) -> tuple[UpdateOne, datetime | None]:
    case = case_from_doc(doc)
    after = resume_after(optional_instant(doc, "next_step_at"), now)
    next_step_at = _millis(next_case_step_at(case, policy.cases, after))
    # the facts it was planned from (newer facts are planned afresh when they arrive)
    op = UpdateOne(
        {"_id": doc["_id"], "revision": doc["revision"]},
        {"$set": {"next_step_at": next_step_at, "policy_revision": policy.revision}},
    )
    return op, next_step_at


def _millis(at: datetime | None) -> datetime | None:
    return to_millis(at) if at is not None else None
