"""Sweeps (SPEC §7): every step whose time has come and that nobody has claimed yet.

One sweep, as of an instant:
0. stops there if the agenda (`agenda`) knows that no step is due — most sweeps of a day;
1. loads only the obligations and cases whose `next_step_at` has come (`domain.progress`):
   one pass reads `_id` and `next_step_at` of the subjects with a step left, then those due
   are read whole by `_id`;
2. plans with `due_reminders` / `due_case_reminders`;
3. claims each send by inserting it into the send log, whose unique key (subject_ref, step,
   recipient_unit_id) lets exactly one of two racing sweeps (or replicas) have it; the claimed
   send carries its deliveries, one per channel, leased to this sweep;
4. marks newly overdue obligations (`obligation.overdue` in the same write) and stores each
   subject's next `next_step_at`;
5. records in the agenda the first step left (unless a writer changed steps meanwhile).
A crash between 3 and 5 is harmless: the next sweep plans the same sends and finds them claimed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from lhpn_shared.clock import ensure_aware, to_millis
from lhpn_shared.contracts.cases import CaseFacts
from lhpn_shared.contracts.events import make_event
from lhpn_shared.mongo import Doc
from lhpn_shared.outbox import outbox_fields, with_outbox

from .agenda import earliest_of
from .contacts import Contacts
from .context import BATCH, SOURCE, event_id
from .dispatch import Dispatcher, notification_event
from .domain.case_deadlines import due_case_reminders
from .domain.messages import PlannedMessage, SendKey
from .domain.obligations import Obligation, ObligationStatus
from .domain.policy import due_reminders
from .domain.progress import (
    handled_case_keys,
    handled_obligation_keys,
    next_case_step_at,
    next_obligation_step_at,
)
from .obligation_sync import obligation_facts
from .policy_store import StoredPolicy, apply_policy
from .repository import (
    DeliveryStatus,
    case_from_doc,
    delivery_entry,
    obligation_from_doc,
    optional_instant,
)
from .service import Reminders

log = logging.getLogger("reminders.sweep")

CHUNK = 1000
SEND_IDS = uuid.UUID("a3f4c1d2-7e58-4c1b-8d0e-5b6a9f2e4c37")
NO_CONTACT = "Đơn vị chưa khai báo địa chỉ e-mail hay webhook nhận thông báo."


def send_id_for(key: SendKey) -> str:
    """The same send key always names the same send."""
    return uuid.uuid5(SEND_IDS, "\x1f".join(key)).hex


@dataclass
class SweepResult:
    sweep_id: str
    as_of: datetime
    obligations_examined: int = 0
    cases_examined: int = 0
    newly_overdue: int = 0
    planned: int = 0
    already_claimed: int = 0
    claimed: list[Doc] = field(default_factory=list)
    """The sends this sweep claimed (after `run`: with the outcome of their first attempt)."""
    looked: bool = False
    """Whether it read the subjects (False: the agenda knew that no step was due)."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Time spent in each phase: policy, agenda, then if it looked: load + plan, claim,
    advance."""
    policy_revision: int = 0
    replanned: int = 0
    """Subjects whose next step was re-planned under a changed policy before this sweep."""


class _Stopwatch:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


class Sweeper:
    def __init__(self, reminders: Reminders, dispatcher: Dispatcher, lease: timedelta) -> None:
        self.reminders = reminders
        self.dispatcher = dispatcher
        self.lease = lease

    async def run(self, as_of: datetime) -> SweepResult:
        """Sweep, then deliver what this sweep claimed (what the scheduler and the API do)."""
        result = await self.sweep(as_of)
        result.claimed = await self.dispatcher.deliver(result.claimed, result.sweep_id)
        return result

    async def sweep(self, as_of: datetime) -> SweepResult:
        """Plan and claim; the claimed sends stay leased to this sweep for `lease`."""
        r = self.reminders
        as_of = to_millis(as_of.astimezone(UTC))
        result = SweepResult(sweep_id=uuid.uuid4().hex, as_of=as_of)
        timings = _Stopwatch()
        # the newest policy, whichever replica stored it; subjects planned with an older one
        # are planned again first (bounded: a very large change finishes over a few sweeps)
        policy = await r.refresh_policy()
        result.policy_revision = policy.revision
        result.replanned = await apply_policy(r.store.obligations, r.store.cases, policy, r.agenda)
        timings.lap("policy")
        agenda = await r.agenda.start()
        timings.lap("agenda")
        if agenda.nothing_due(as_of):
            result.seconds = timings.laps
            self._log(result)
            return result
        result.looked = True
        ob_docs, case_docs, later = await self._due(as_of)
        obligations = [
            (obligation_from_doc(d), optional_instant(d, "next_step_at"), "overdue_at" in d)
            for d in ob_docs
        ]
        cases = [
            (case_from_doc(d), optional_instant(d, "next_step_at"), d["revision"])
            for d in case_docs
        ]
        messages: list[PlannedMessage] = due_reminders(
            (ob for ob, _, _ in obligations),
            policy.reports,
            as_of,
            handled_obligation_keys(((ob, at) for ob, at, _ in obligations), policy.reports),
        )
        if cases:  # case recipients follow the unit tree: as stored now
            await r.current_reference_data()
            messages += due_case_reminders(
                (case for case, _, _ in cases),
                r.tree,
                policy.cases,
                as_of,
                handled_case_keys(((c, at) for c, at, _ in cases), r.tree, policy.cases),
            )
        result.obligations_examined, result.cases_examined = len(obligations), len(cases)
        result.planned = len(messages)
        timings.lap("plan")
        result.claimed = await self._claim(messages, result)
        result.already_claimed = len(messages) - len(result.claimed)
        timings.lap("claim")
        result.newly_overdue, ob_steps = await self._advance_obligations(obligations, as_of, policy)
        case_steps = await self._advance_cases(cases, as_of, policy)
        await r.agenda.record(agenda, earliest_of([later, *ob_steps, *case_steps]), as_of)
        timings.lap("advance")
        result.seconds = timings.laps
        if result.newly_overdue or any(d["outbox_pending"] for d in result.claimed):
            r.wake_relay()
        self._log(result)
        return result

    def _log(self, result: SweepResult) -> None:
        log.info(
            "sweep done",
            extra={
                "sweep_id": result.sweep_id,
                "as_of": result.as_of.isoformat(),
                "looked": result.looked,
                "obligations": result.obligations_examined,
                "cases": result.cases_examined,
                "planned": result.planned,
                "claimed": len(result.claimed),
                "newly_overdue": result.newly_overdue,
                "policy_revision": result.policy_revision,
                "replanned": result.replanned,
                "seconds": result.seconds,
            },
        )

    async def _due(self, as_of: datetime) -> tuple[list[Doc], list[Doc], datetime | None]:
        """The open obligations and the cases whose next step has come, whole; and the first
        step of the others (None: none has a step left).

        One pass reads only `_id` and `next_step_at` of every subject with a step left, then
        the due ones are read by `_id`: DevMongo serves `_id` + `$in` from an index and a range
        of `next_step_at` by reading every document, so this costs one such pass (MongoDB: two
        index scans)."""
        store = self.reminders.store
        scheduled: Doc = {"next_step_at": {"$ne": None}}
        ob_steps, case_steps = await asyncio.gather(
            store.obligations.find(
                {**scheduled, "received_at": None}, {"next_step_at": 1}, batch_size=BATCH
            ).to_list(None),
            store.cases.find(scheduled, {"next_step_at": 1}, batch_size=BATCH).to_list(None),
        )
        later: list[datetime | None] = []

        async def read_due(
            coll: AsyncCollection[Doc], steps: list[Doc], projection: Doc | None
        ) -> list[Doc]:
            due_ids: list[str] = []
            for d in steps:
                at = ensure_aware(d["next_step_at"])
                if at <= as_of:
                    due_ids.append(d["_id"])
                else:
                    later.append(at)
            docs: list[Doc] = []
            for start in range(0, len(due_ids), CHUNK):
                ids = due_ids[start : start + CHUNK]
                docs += await coll.find({"_id": {"$in": ids}}, projection).to_list(None)
            out: list[Doc] = []
            for d in docs:  # as they are now: a report or another sweep may have come between
                step_at = optional_instant(d, "next_step_at")
                if step_at is None or d.get("received_at") is not None:
                    continue
                if step_at <= as_of:
                    out.append(d)
                else:
                    later.append(step_at)
            return out

        ob_docs = await read_due(store.obligations, ob_steps, {"outbox": 0})
        case_docs = await read_due(store.cases, case_steps, None)
        return ob_docs, case_docs, earliest_of(later)

    async def _claim(self, messages: list[PlannedMessage], result: SweepResult) -> list[Doc]:
        if not messages:
            return []
        contacts = await self.reminders.contacts_of(m.recipient_unit_id for m in messages)
        now = self.reminders.now()
        docs = [self._send_doc(m, contacts.get(m.recipient_unit_id), result, now) for m in messages]
        claimed: list[Doc] = []
        for start in range(0, len(docs), CHUNK):
            chunk = docs[start : start + CHUNK]
            try:
                await self.reminders.store.send_log.insert_many(chunk, ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != 11000 for e in errors):
                    raise
                taken = {e["index"] for e in errors}  # someone else holds these sends
                chunk = [d for i, d in enumerate(chunk) if i not in taken]
            claimed += chunk
        for doc in claimed:  # a unit with no address: failed at once, never attempted
            for channel, entry in doc["deliveries"].items():
                if entry["status"] == DeliveryStatus.failed.value:
                    self.dispatcher.on_outcome(channel, entry["status"])
        return claimed

    def _send_doc(
        self, message: PlannedMessage, contacts: Contacts | None, result: SweepResult, now: datetime
    ) -> Doc:
        key = message.send_key
        deliveries: dict[str, Doc] = {}
        if contacts is not None and contacts.emails:
            deliveries["email"] = delivery_entry({"to": contacts.emails}, now)
        if contacts is not None and contacts.webhook_url:
            deliveries["webhook"] = delivery_entry({"url": contacts.webhook_url}, now)
        doc: Doc = {
            "_id": send_id_for(key),
            "subject_ref": key.subject_ref,
            "step": key.step,
            "recipient_unit_id": key.recipient_unit_id,
            "kind": message.kind,
            "message": message.model_dump(mode="json"),
            "as_of": result.as_of,
            "claimed_at": now,
            "sweep_id": result.sweep_id,
            "deliveries": deliveries,
            "next_attempt_at": now if deliveries else None,
            "lease_id": result.sweep_id,
            "lease_until": now + self.lease,
        }
        events = []
        if not deliveries:
            doc["deliveries"]["email"] = {
                **delivery_entry({"to": []}, now),
                "status": DeliveryStatus.failed.value,
                "next_attempt_at": None,
                "last_error": NO_CONTACT,
            }
            events.append(notification_event(doc, "email", doc["deliveries"]["email"], now))
        return {**doc, **outbox_fields(events)}

    async def _advance_obligations(
        self,
        obligations: list[tuple[Obligation, datetime | None, bool]],
        as_of: datetime,
        policy: StoredPolicy,
    ) -> tuple[int, list[datetime | None]]:
        """Store each one's next step instant; mark overdue those whose due instant passed.
        How many are newly overdue, and the next step instants stored.

        By `_id` alone: if the report arrived meanwhile, its fields still say fulfilled and a
        sweep no longer loads it; two sweeps marking the same obligation write the same
        event id, which consumers dedupe."""
        ops: list[UpdateOne] = []
        steps: list[datetime | None] = []
        newly_overdue = 0
        now = self.reminders.now()
        for ob, _, marked in obligations:
            next_step_at = next_obligation_step_at(ob, policy.reports, as_of)
            steps.append(next_step_at)
            update: dict[str, Any] = {
                "$set": {"next_step_at": next_step_at, "policy_revision": policy.revision}
            }
            if not marked and as_of >= ob.due_at:
                update["$set"]["overdue_at"] = as_of
                event = make_event(
                    "obligation.overdue",
                    obligation_facts(ob, ObligationStatus.overdue),
                    source=SOURCE,
                    occurred_at=now,
                    unit_id=ob.unit_id,
                    event_id=event_id(ob.obligation_id, "overdue"),
                )
                update = with_outbox(update, [event])
                newly_overdue += 1
            ops.append(UpdateOne({"_id": ob.obligation_id}, update))
        for start in range(0, len(ops), CHUNK):
            await self.reminders.store.obligations.bulk_write(
                ops[start : start + CHUNK], ordered=False
            )
        return newly_overdue, steps

    async def _advance_cases(
        self,
        cases: list[tuple[CaseFacts, datetime | None, int]],
        as_of: datetime,
        policy: StoredPolicy,
    ) -> list[datetime | None]:
        """Store each one's next step instant; the instants stored."""
        steps = [next_case_step_at(case, policy.cases, as_of) for case, _, _ in cases]
        ops = [
            UpdateOne(
                {"_id": str(case.case_id), "revision": revision},  # newer facts start afresh
                {"$set": {"next_step_at": next_step_at, "policy_revision": policy.revision}},
            )
            for (case, _, revision), next_step_at in zip(cases, steps, strict=True)
        ]
        if ops:
            await self.reminders.store.cases.bulk_write(ops, ordered=False)
        return steps
