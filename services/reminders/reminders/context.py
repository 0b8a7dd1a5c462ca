"""What every reminders use case shares: its dependencies, the clock, the reminder policy in use,
this service's copy of units and plans (read again when another replica stored some), and the
ids of the events it emits.

The use cases are `facts` (what `lhpn.events` tells), `obligation_sync` (obligations derived
and fulfilled), `unit_contacts` and `listings`; `service.Reminders` binds them to one context.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime

from lhpn_shared.clock import Clock, to_millis
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.units import Unit, UnitTree
from lhpn_shared.crypto import Keyring

from .agenda import Agenda
from .delivery.addresses import AddressGuard
from .domain.case_deadlines import CaseReminderPolicy
from .domain.policy import ReminderPolicy
from .policy_store import PolicyBook, StoredPolicy
from .repository import RemindersStore, plan_from_doc, unit_from_doc

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


class RemindersContext:
    """The dependencies of the use cases (`facts`, `obligation_sync`, `unit_contacts`,
    `listings`), the policy they apply and the units and plans they read."""

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

    async def stored_reference(self) -> None:
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

    def keep_plan(self, plan: Plan) -> None:
        """A plan just stored replaces the one in memory (once the plans are loaded)."""
        if self._plans is not None:
            self._plans[plan.plan_id] = plan

    async def units_around(self, unit: Unit, issuers: Iterable[str]) -> list[Unit]:
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

    def full_tree(self, units: list[Unit]) -> UnitTree:
        """Every unit known here (the cache), with `units` as given."""
        if self._units is None:
            return UnitTree(units)
        if any(self._units.get(u.unit_id) != u for u in units):
            self._units.update({u.unit_id: u for u in units})
            self._tree = None
        return self.tree  # rebuilt at most once per change of the cache
