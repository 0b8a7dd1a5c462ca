"""Reminders' use cases for facts and queries: the same functions serve AMQP, HTTP and tests.

- `handle(envelope)`: units, plans, reports and cases from `lhpn.events`, idempotent and
  order-tolerant (a lower revision never overwrites; a report that arrives before its plan or
  unit is kept and fulfils the obligation once it is derived);
- obligations derived from plan × units, fulfilled by reports (`obligation.fulfilled` in the
  same document write);
- contacts, and the obligation and notification lists.

Sweeps are in `sweep.py`, deliveries in `dispatch.py`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from lhpn_shared.broker import Reject
from lhpn_shared.clock import Clock, to_millis
from lhpn_shared.contracts.cases import CaseFacts
from lhpn_shared.contracts.events import Envelope, ObligationFacts, make_event, parse_data
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.reports import Report
from lhpn_shared.contracts.units import Unit, UnitTree
from lhpn_shared.crypto import Keyring
from lhpn_shared.http import FieldProblem
from lhpn_shared.idempotency import upsert_if_newer
from lhpn_shared.mongo import Doc
from lhpn_shared.outbox import outbox_fields, with_outbox

from .agenda import Agenda
from .contacts import Contacts, contacts_doc, contacts_from_doc
from .delivery.addresses import AddressGuard, RefusedAddress
from .domain.case_deadlines import CaseReminderPolicy
from .domain.obligations import (
    Obligation,
    ObligationStatus,
    derive_obligations,
    fulfil,
    obligation_id_for,
)
from .domain.policy import ReminderPolicy
from .domain.progress import next_case_step_at, next_obligation_step_at
from .policy_store import PolicyBook, StoredPolicy
from .repository import (
    RemindersStore,
    case_fields,
    obligation_definition,
    obligation_doc,
    obligation_from_doc,
    obligation_status,
    plan_fields,
    plan_from_doc,
    report_key,
    status_query,
    unit_fields,
    unit_from_doc,
)

log = logging.getLogger("reminders")

SOURCE = "reminders"
EVENT_IDS = uuid.UUID("6f1d0c52-4b7e-4f0e-9a43-2b8f3c1e7d10")
"""Namespace of the deterministic ids of the events we emit: a state change written twice by
two racing writers still yields one event id, which consumers dedupe."""
BY_ID_LIMIT = 2000
"""Up to this many ids, read by `_id`; beyond it, one pass over the collection is cheaper."""
BATCH = 2000
"""Documents per reply of a large read (a server may otherwise answer in one huge message)."""


def event_id(*parts: str) -> uuid.UUID:
    return uuid.uuid5(EVENT_IDS, ":".join(parts))


class NotReady(Exception):
    """The unit tree is not loaded yet (database unreachable since start)."""


class Reminders:
    def __init__(
        self,
        store: RemindersStore,
        clock: Clock,
        policy: ReminderPolicy,
        case_policy: CaseReminderPolicy,
        wake_relay: Callable[[], None],
        *,
        secrets: Keyring,
        guard: AddressGuard,
    ) -> None:
        self.store = store
        self.secrets = secrets
        self.guard = guard
        self.clock = clock
        self.policy = policy
        self.case_policy = case_policy
        self.policy_revision = 0
        """the revision of `policy` and `case_policy` (0: the settings'); see `policy_store`"""
        self.policy_book = PolicyBook(store.meta, StoredPolicy(0, policy, case_policy))
        self.agenda = Agenda(store.meta)
        """told about every `next_step_at` written outside a sweep (see `agenda`)"""
        self.wake_relay = wake_relay
        self._units: dict[str, Unit] | None = None
        self._tree: UnitTree | None = None
        self._plans: dict[str, Plan] | None = None
        self._generation: int | None = None
        """the count of unit and plan writes the units and plans in memory include"""

    def now(self) -> datetime:
        return to_millis(self.clock.now())

    # ---- the reminder policy ----------------------------------------------------------------

    def use_policy(self, stored: StoredPolicy) -> None:
        self.policy, self.case_policy = stored.reports, stored.cases
        self.policy_revision = stored.revision

    async def refresh_policy(self) -> StoredPolicy:
        """Read the stored policy (another replica may have changed it) and use it."""
        stored = await self.policy_book.read()
        self.use_policy(stored)
        return stored

    # ---- this service's copy of units and plans ---------------------------------------------

    async def load_reference_data(self) -> None:
        """Read units and plans again (another replica may have consumed their events)."""
        generation = await self.store.reference_generation()  # first: nothing older is missed
        found = self.store.units.find({}, batch_size=BATCH)
        units = {d["_id"]: unit_from_doc(d) async for d in found}
        plans = {d["_id"]: plan_from_doc(d) async for d in self.store.plans.find({})}
        # what this process stored while they were read is newer: keep it
        for unit_id, unit in (self._units or {}).items():
            if unit_id not in units or units[unit_id].revision < unit.revision:
                units[unit_id] = unit
        for plan_id, plan in (self._plans or {}).items():
            if plan_id not in plans or plans[plan_id].revision < plan.revision:
                plans[plan_id] = plan
        # all at once, no await between: a unit event being handled sees one state or the other
        self._units, self._plans, self._tree = units, plans, None
        self._generation = generation

    async def current_reference_data(self) -> None:
        """Units and plans as stored: read again only when never read or when a write of
        either was counted since (one read by `_id` otherwise)."""
        if self._units is None or await self.store.reference_generation() != self._generation:
            await self.load_reference_data()

    async def fresh(self) -> None:
        """Read units and plans again if another replica stored some since they were read
        (one read by `_id`; for the HTTP side, whose subtrees and access checks use them)."""
        if self._units is None:
            return  # not loaded yet: the answer is NotReady
        if await self.store.reference_generation() != self._generation:
            await self.load_reference_data()

    async def _stored_reference(self) -> None:
        """Count a unit or plan stored (after storing it): the next `fresh` reads them again.
        (This process's own write counts too: it cannot tell whether another replica wrote
        at the same moment.)"""
        await self.store.next_reference_generation()

    @property
    def tree(self) -> UnitTree:
        if self._units is None:
            raise NotReady
        if self._tree is None:
            self._tree = UnitTree(self._units.values())
        return self._tree

    @property
    def plans(self) -> list[Plan]:
        if self._plans is None:
            raise NotReady
        return list(self._plans.values())

    def report_titles(self) -> dict[tuple[str, str], str]:
        return {(p.plan_id, s.report_type): s.title for p in self.plans for s in p.report_schedules}

    # ---- events -------------------------------------------------------------------------------

    async def handle(self, envelope: Envelope) -> None:
        data = parse_data(envelope)
        if isinstance(data, Unit):
            await self.on_unit(data)
        elif isinstance(data, Plan):
            await self.on_plan(data)
        elif isinstance(data, Report):
            await self.on_report(data)
        elif isinstance(data, CaseFacts):
            await self.on_case(data)
        else:
            raise Reject(f"reminders does not consume {envelope.routing_key}")

    async def on_unit(self, unit: Unit) -> None:
        """Keep the newest revision; (re)derive the unit's obligations from what is stored, so a
        redelivered or older event still leaves everything consistent."""
        if await upsert_if_newer(self.store.units, unit.unit_id, unit.revision, unit_fields(unit)):
            await self._stored_reference()
        doc = await self.store.units.find_one({"_id": unit.unit_id})
        assert doc is not None
        stored = unit_from_doc(doc)
        plans = await self._stored_plans()
        # another replica may have stored the units around this one: read them again
        fresh = await self._units_around(stored, [p.issuing_unit_id for p in plans])
        # a plan covers the units under its issuing unit: a unit arriving before its parent
        # is covered once the parent comes, so the parent's arrival re-derives its subtree too
        tree = self._full_tree([stored, *fresh])
        affected = [tree.units[u] for u in tree.subtree(stored.unit_id)] or [stored]
        for plan in plans:
            # the tree read above: the units in memory may be replaced meanwhile (`fresh`)
            await self.sync_obligations(plan, affected, tree)

    async def on_plan(self, plan: Plan) -> None:
        if await upsert_if_newer(self.store.plans, plan.plan_id, plan.revision, plan_fields(plan)):
            await self._stored_reference()
        doc = await self.store.plans.find_one({"_id": plan.plan_id})
        assert doc is not None
        stored = plan_from_doc(doc)
        if self._plans is not None:
            self._plans[stored.plan_id] = stored
        units = [unit_from_doc(d) async for d in self.store.units.find({}, batch_size=BATCH)]
        await self.sync_obligations(stored, units)

    async def on_report(self, report: Report) -> None:
        """Keep the earliest arrival of each report; fulfil the obligations it answers."""
        key = report_key(report.unit_id, report.report_type, report.period)
        update = {
            "$min": {"received_at": to_millis(report.received_at)},
            "$max": {"on_time": report.on_time},
            "$setOnInsert": {
                "unit_id": report.unit_id,
                "report_type": report.report_type,
                "period": report.period,
                "due_at": to_millis(report.due_at),
            },
        }
        try:
            await self.store.reports.update_one({"_id": key}, update, upsert=True)
        except DuplicateKeyError:
            # another replica inserted it at the same moment: now it exists, update it
            await self.store.reports.update_one({"_id": key}, update, upsert=True)
        plan_ids = [d["_id"] async for d in self.store.plans.find({}, {"_id": 1})]
        ids = [
            obligation_id_for(plan_id, report.report_type, report.period, report.unit_id)
            for plan_id in plan_ids
        ]
        query = {"_id": {"$in": ids}, "received_at": None}
        docs = [d async for d in self.store.obligations.find(query, {"outbox": 0})]
        await self._fulfil_where_reported([obligation_from_doc(d) for d in docs])

    async def on_case(self, facts: CaseFacts) -> None:
        """The newest facts of a case replace its deadlines: a deadline no longer listed, or a
        closed case, gets nothing more."""
        case = CaseFacts.model_validate(facts.model_dump(include=set(CaseFacts.model_fields)))
        next_step_at = next_case_step_at(case, self.case_policy, None)
        async with self.agenda.scheduling([next_step_at]):
            await upsert_if_newer(
                self.store.cases,
                str(case.case_id),
                case.revision,
                {**case_fields(case, next_step_at), "policy_revision": self.policy_revision},
            )

    async def _units_around(self, unit: Unit, issuers: Iterable[str]) -> list[Unit]:
        """The units a derivation for `unit` reads that may be missing here: its subtree as
        stored now, and the ancestors and predecessors of the unit and of each plan issuer
        that this process does not know (a unit's parent never changes).

        With several replicas each consumes some of the unit events, so this process may lack
        units another replica stored. Each replica stores its unit before reading these: of
        two units stored at once by two replicas, at least one of them reads the other's and
        derives what needs both (a child arriving together with its parent)."""
        known = self._units or {}
        found: dict[str, Unit] = {unit.unit_id: unit}

        async def read(ids: Iterable[str]) -> list[Unit]:
            wanted = sorted(set(ids) - set(found))
            if not wanted:
                return []
            docs = self.store.units.find({"_id": {"$in": wanted}})
            got = [unit_from_doc(d) async for d in docs]
            found.update({u.unit_id: u for u in got})
            return got

        frontier = [unit.unit_id]
        while frontier:  # the subtree, one level at a time
            children = self.store.units.find({"parent_id": {"$in": frontier}})
            stored = [unit_from_doc(d) async for d in children]
            level = [u for u in stored if u.unit_id not in found]
            found.update({u.unit_id: u for u in level})
            frontier = [u.unit_id for u in level]
        chain = [unit, *await read(issuers)]
        seen: set[str] = set()
        while chain:  # parents and predecessors: from memory when known, else as stored
            step = [u.parent_id for u in chain if u.parent_id is not None]
            step += [link.unit_id for u in chain for link in u.predecessors]
            step = [i for i in step if i not in seen]
            seen.update(step)
            chain = [known[i] for i in step if i in known and i not in found]
            chain += await read(i for i in step if i not in known)
        return [u for u in found.values() if u.unit_id != unit.unit_id]

    def _full_tree(self, units: list[Unit]) -> UnitTree:
        """Every unit known here (the cache), with `units` as given."""
        if self._units is None:
            return UnitTree(units)
        if any(self._units.get(u.unit_id) != u for u in units):
            self._units.update({u.unit_id: u for u in units})
            self._tree = None
        return self.tree  # rebuilt at most once per change of the cache

    async def _stored_plans(self) -> list[Plan]:
        return [plan_from_doc(d) async for d in self.store.plans.find({})]

    # ---- obligations ------------------------------------------------------------------------

    async def sync_obligations(
        self, plan: Plan, units: list[Unit], tree: UnitTree | None = None
    ) -> None:
        """Make the stored obligations of `plan` for `units` what derivation says: insert new
        ones (fulfilled at once when their report is already here), follow a changed due
        instant or parent, drop open ones no longer expected (a unit that ceased to exist).
        `tree`: the units to derive from (default: every unit known here, with `units`)."""
        if tree is None:
            tree = self._full_tree(units)
        derived = derive_obligations(plan, tree, only=sorted({u.unit_id for u in units}))
        candidates = {
            obligation_id_for(plan.plan_id, s.report_type, p.period, u.unit_id)
            for s in plan.report_schedules
            for p in s.periods
            for u in units
            if u.level in s.levels
        }
        if len(candidates) <= BY_ID_LIMIT:
            query: Doc = {"_id": {"$in": sorted(candidates)}}
        else:
            query = {"plan_id": plan.plan_id}
        found = self.store.obligations.find(query, {"outbox": 0}, batch_size=BATCH)
        existing = {d["_id"]: d async for d in found}
        reports = await self._reports_for(derived)
        inserts: list[Doc] = []
        still_open: list[Obligation] = []
        updates: list[UpdateOne] = []
        steps: list[datetime | None] = []  # the `next_step_at` these writes may store
        for ob in derived:
            report = reports.get(report_key(ob.unit_id, ob.report_type, ob.period))
            doc = existing.pop(ob.obligation_id, None)
            if doc is None:
                inserts.append(self._new_obligation_doc(ob, report))
                steps.append(inserts[-1]["next_step_at"])
                if report is None:
                    still_open.append(ob)
            elif (op := self._resync(doc, ob, report)) is not None:
                updates.append(op)
                if doc.get("received_at") is None:
                    steps.append(next_obligation_step_at(ob, self.policy, None))
        stale = [i for i, d in existing.items() if i in candidates and d.get("received_at") is None]
        async with self.agenda.scheduling(steps):
            await self._insert_new(inserts)
            if updates:
                await self.store.obligations.bulk_write(updates, ordered=False)
        if stale:
            await self.store.obligations.delete_many({"_id": {"$in": stale}})
        # a report stored while we derived: fulfil now (on_report may have missed the new ones)
        await self._fulfil_where_reported(still_open)
        if any(d["outbox_pending"] for d in inserts) or updates:
            self.wake_relay()
        if not (inserts or updates or stale):
            return
        log.info(
            "obligations synchronised",
            extra={
                "plan_id": plan.plan_id,
                "units": len(units),
                "inserted": len(inserts),
                "updated": len(updates),
                "removed": len(stale),
            },
        )

    async def _reports_for(self, obligations: list[Obligation]) -> dict[str, Doc]:
        keys = {report_key(o.unit_id, o.report_type, o.period) for o in obligations}
        if not keys:
            return {}
        if len(keys) <= BY_ID_LIMIT:
            query: Doc = {"_id": {"$in": sorted(keys)}}
        else:
            query = {"report_type": {"$in": sorted({o.report_type for o in obligations})}}
        found = self.store.reports.find(query, batch_size=BATCH)
        return {d["_id"]: d async for d in found if d["_id"] in keys}

    def _new_obligation_doc(self, ob: Obligation, report: Doc | None) -> Doc:
        if report is None:
            next_step_at = next_obligation_step_at(ob, self.policy, None)
            return {
                **obligation_doc(ob, next_step_at=next_step_at),
                "policy_revision": self.policy_revision,
                **outbox_fields([]),
            }
        fulfilled, event = self._fulfilment(ob, report)
        return {
            **obligation_doc(fulfilled, next_step_at=None, on_time=report["on_time"]),
            "policy_revision": self.policy_revision,
            **outbox_fields([event]),
        }

    def _resync(self, doc: Doc, ob: Obligation, report: Doc | None) -> UpdateOne | None:
        definition = obligation_definition(ob)
        update: dict[str, Any] = {}
        if any(doc.get(k) != v for k, v in definition.items()):
            update["$set"] = dict(definition)
            if doc.get("received_at") is None:
                # a moved deadline: every step again; the send log drops what was sent already
                update["$set"]["next_step_at"] = next_obligation_step_at(ob, self.policy, None)
                update["$set"]["policy_revision"] = self.policy_revision
        if doc.get("received_at") is None and report is not None:
            _, event = self._fulfilment(ob, report)
            update = with_outbox(_merge(update, _fulfilment_update(report)), [event])
        return UpdateOne({"_id": ob.obligation_id}, update) if update else None

    def _fulfilment(self, ob: Obligation, report: Doc) -> tuple[Obligation, Envelope]:
        fulfilled = fulfil(ob, report["received_at"])
        status = (
            ObligationStatus.fulfilled_on_time
            if report["on_time"]
            else ObligationStatus.fulfilled_late
        )
        event = make_event(
            "obligation.fulfilled",
            obligation_facts(fulfilled, status),
            source=SOURCE,
            occurred_at=self.now(),
            unit_id=ob.unit_id,
            event_id=event_id(ob.obligation_id, "fulfilled"),
        )
        return fulfilled, event

    async def _insert_new(self, docs: list[Doc]) -> None:
        if not docs:
            return
        try:
            await self.store.obligations.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            # inserted meanwhile by another consumer: theirs stands
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise

    async def _fulfil_where_reported(self, obligations: list[Obligation]) -> None:
        """Fulfil those of these open obligations whose report is stored.

        The write is commutative (`$min` of the arrival, `$max` of on-time), so a racing
        duplicate cannot undo it; and it only applies — with its event — while it changes the
        arrival, so the same report handled twice at once (two deliveries of it in flight)
        makes one event, not the same one twice."""
        reports = await self._reports_for(obligations)
        done = 0
        for ob in obligations:
            report = reports.get(report_key(ob.unit_id, ob.report_type, ob.period))
            if report is None:
                continue
            _, event = self._fulfilment(ob, report)
            # only while still open (or fulfilled by a later arrival): of two replicas, or two
            # deliveries, fulfilling it at once, one announces it
            arrival = to_millis(report["received_at"])
            result = await self.store.obligations.update_one(
                {
                    "_id": ob.obligation_id,
                    "$or": [{"received_at": None}, {"received_at": {"$gt": arrival}}],
                },
                with_outbox(_fulfilment_update(report), [event]),
            )
            done += result.modified_count
        if done:
            self.wake_relay()

    # ---- contacts -----------------------------------------------------------------------------

    async def set_contacts(self, unit_id: str, contacts: Contacts, actor: str) -> Contacts:
        """Store a unit's contacts: a webhook URL only if it reaches a public address (422
        naming `webhook_url` otherwise), its secret sealed."""
        if contacts.webhook_url is not None:
            try:
                await self.guard.pin(contacts.webhook_url)
            except RefusedAddress as exc:
                raise FieldProblem([(("webhook_url",), exc.message)]) from None
        fields = contacts_doc(unit_id, contacts, self.secrets)
        await self.store.contacts.update_one(
            {"_id": unit_id},
            {"$set": {**fields, "updated_at": self.now(), "updated_by": actor}},
            upsert=True,
        )
        return contacts

    async def contacts_of(self, unit_ids: Iterable[str]) -> dict[str, Contacts]:
        ids = sorted(set(unit_ids))
        if not ids:
            return {}
        query: Doc = {"_id": {"$in": ids}} if len(ids) <= BY_ID_LIMIT else {}
        return {
            d["_id"]: contacts_from_doc(d, self.secrets)
            async for d in self.store.contacts.find(query, batch_size=BATCH)
        }

    # ---- queries ------------------------------------------------------------------------------

    async def list_obligations(
        self,
        unit_ids: list[str] | None,
        *,
        report_type: str | None,
        period: str | None,
        status: ObligationStatus | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[Doc], str | None]:
        """The status is as of now: an obligation is overdue from its due instant on, whether
        or not a sweep has run yet."""
        query: Doc = {}
        if unit_ids is not None:
            query["unit_id"] = {"$in": unit_ids}
        if report_type:
            query["report_type"] = report_type
        if period:
            query["period"] = period
        now = self.now()
        if status is not None:
            query.update(status_query(status, now))
        if cursor:
            query["_id"] = {"$gt": cursor}
        docs = (
            await self.store.obligations.find(query, {"outbox": 0})
            .sort("_id", 1)
            .to_list(limit + 1)
        )
        more = len(docs) > limit
        docs = docs[:limit]
        for d in docs:
            d["status"] = obligation_status(d, now).value
        return docs, (docs[-1]["_id"] if more else None)

    async def list_sends(
        self, unit_ids: list[str] | None, *, limit: int, cursor: str | None
    ) -> tuple[list[Doc], str | None]:
        query: Doc = {}
        if unit_ids is not None:
            query["recipient_unit_id"] = {"$in": unit_ids}
        if cursor:
            query["_id"] = {"$gt": cursor}
        docs = (
            await self.store.send_log.find(query, {"outbox": 0}).sort("_id", 1).to_list(limit + 1)
        )
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, (docs[-1]["_id"] if more else None)


def obligation_facts(ob: Obligation, status: ObligationStatus) -> ObligationFacts:
    return ObligationFacts(
        obligation_id=ob.obligation_id,
        plan_id=ob.plan_id,
        unit_id=ob.unit_id,
        report_type=ob.report_type,
        period=ob.period,
        due_at=ob.due_at,
        recipient_unit_id=ob.recipient_unit_id,
        status=status.value,
        received_at=ob.received_at,
    )


def _fulfilment_update(report: Doc) -> dict[str, Any]:
    return {
        "$min": {"received_at": to_millis(report["received_at"])},
        "$max": {"on_time": bool(report["on_time"])},
        "$set": {"next_step_at": None},
    }


def _merge(update: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    for operator, fields in more.items():
        update.setdefault(operator, {}).update(fields)
    return update
