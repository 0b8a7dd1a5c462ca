"""What every intake use case shares: its dependencies, the clock, the cached units and plans,
the event of a change, the write check and the audit record of a write.

Every state change is one document write that carries its events in the document's outbox
(`lhpn_shared.outbox`); the relay publishes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from lhpn_shared.access import WRITE, require_unit
from lhpn_shared.audit import AuditLog
from lhpn_shared.clock import Clock, to_millis
from lhpn_shared.contracts.events import Envelope, make_event
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.units import UnitTree
from lhpn_shared.mongo import Doc
from lhpn_shared.principal import Principal

from .errors import NotReady
from .repository import IntakeStore, plan_from_doc
from .units import UnitRegistry, UnitsNotReady

REFRESH_SECONDS = 1.0
"""Units and plans are read again for a refused inbound message at most this often."""

SOURCE = "intake"


class IntakeContext:
    """The dependencies of the use cases (`plans`, `activities`, `reports`, `inbound`) and the
    steps they have in common."""

    def __init__(
        self,
        store: IntakeStore,
        clock: Clock,
        wake_relay: Callable[..., None],
        audit: AuditLog | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.wake = wake_relay
        self.units = UnitRegistry(store, clock, wake_relay)
        self.audit = audit or AuditLog(store.audit, clock)
        self._plans: list[Plan] | None = None
        self._loaded_at = float("-inf")
        self.max_attachment_bytes = 5 * 1024 * 1024

    def now(self) -> datetime:
        return to_millis(self.clock.now())

    # ---- caches of the small, rarely changing reference data ----------------------------

    async def load_reference_data(self) -> None:
        await self.units.load()
        await self.load_plans()
        self._loaded_at = time.monotonic()

    async def refresh_reference_data(self) -> bool:
        """Read units and plans again unless that was done in the last `REFRESH_SECONDS`;
        True if read. Another replica may have created the unit or plan an inbound message
        names (its HTTP side changed them), so a message refused for what this process does
        not know is tried once more against what is stored."""
        if time.monotonic() - self._loaded_at < REFRESH_SECONDS:
            return False
        await self.load_reference_data()
        return True

    async def load_plans(self) -> None:
        self._plans = [plan_from_doc(d) async for d in self.store.plans.find({})]

    @property
    def tree(self) -> UnitTree:
        try:
            return self.units.tree
        except UnitsNotReady:
            raise NotReady from None

    @property
    def plans(self) -> list[Plan]:
        if self._plans is None:
            raise NotReady
        return self._plans

    # ---- what every write does ----------------------------------------------------------------

    def event(self, event_type: str, data: BaseModel, unit_id: str | None, **kw: Any) -> Envelope:
        kw.setdefault("source", SOURCE)
        return make_event(event_type, data, occurred_at=self.now(), unit_id=unit_id, **kw)

    def require_write(self, principal: Principal, unit_id: str) -> None:
        """`principal` may write for `unit_id` (an unknown unit is left to validation)."""
        if unit_id in self.tree:
            require_unit(principal, unit_id, self.tree, WRITE)

    def audit_entries(
        self, principal: Principal, action: str, entity_id: UUID, unit_id: str
    ) -> list[Doc]:
        """The audit record of a write, to store inside it (the relay moves it to the log)."""
        entity_type = {"activities": "activity", "reports": "report"}[action.partition(".")[0]]
        return [
            self.audit.entry(
                principal, action, entity_type=entity_type, entity_id=entity_id, unit_id=unit_id
            )
        ]


async def page(
    coll: Any, query: dict[str, Any], limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page in `_id` order, and the cursor of the next one (None on the last page)."""
    if cursor:
        query = {**query, "_id": {"$gt": cursor}}
    docs = await coll.find(query).sort("_id", 1).to_list(limit + 1)
    more = len(docs) > limit
    docs = docs[:limit]
    return docs, (docs[-1]["_id"] if more else None)
