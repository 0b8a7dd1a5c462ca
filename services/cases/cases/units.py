"""The service's copy of the unit tree, fed by `unit.upserted` (queue `cases.events`)."""

from __future__ import annotations

import asyncio
import time

from pymongo.asynchronous.collection import AsyncCollection

from lhpn_shared.auth import Principal
from lhpn_shared.broker import Reject
from lhpn_shared.contracts.events import Envelope, parse_data
from lhpn_shared.contracts.units import Unit, UnitTree
from lhpn_shared.idempotency import upsert_if_newer
from lhpn_shared.mongo import Doc

from .repository import unit_from_doc, unit_to_doc


class UnitCopy:
    """The units collection and the tree built from it, cached for `refresh_seconds`."""

    def __init__(self, units: AsyncCollection[Doc], refresh_seconds: float = 30.0) -> None:
        self._units = units
        self._ttl = refresh_seconds
        self._tree: UnitTree | None = None
        self._last = UnitTree([])
        self._loaded = 0.0
        self._changes = 0
        """counts the units written here: a load that a write overtook is used once, not kept"""
        self._loading = asyncio.Lock()

    @property
    def last(self) -> UnitTree:
        """The tree last loaded (empty before the first load): every use case loads it with
        `tree()` before answering."""
        return self._last

    def _fresh(self) -> UnitTree | None:
        if self._tree is not None and time.monotonic() - self._loaded <= self._ttl:
            return self._tree
        return None

    async def tree(self) -> UnitTree:
        """The cached tree, reloaded when a unit changed here or after `refresh_seconds`
        (another instance may have applied the change). One load at a time, so the tree last
        loaded is also the one last begun: `last` never goes back to an older one."""
        if (cached := self._fresh()) is not None:
            return cached
        async with self._loading:
            if (cached := self._fresh()) is not None:  # loaded while this caller waited
                return cached
            changes, started = self._changes, time.monotonic()
            tree = UnitTree([unit_from_doc(d) async for d in self._units.find({})])
            self._last = tree
            if changes == self._changes:  # no unit was written here while it was read
                self._tree, self._loaded = tree, started
            return tree

    async def tree_with(self, unit_id: str) -> UnitTree:
        """The tree, reloaded once if `unit_id` is not in it (it may have just arrived)."""
        tree = await self.tree()
        if unit_id not in tree:
            self._tree = None
            tree = await self.tree()
        return tree

    async def apply_unit(self, unit: Unit) -> bool:
        """Keep our copy of a unit; an older or repeated revision changes nothing."""
        written = await upsert_if_newer(self._units, unit.unit_id, unit.revision, unit_to_doc(unit))
        if written:
            self._changes += 1
            self._tree = None
        return written

    async def handle_event(self, envelope: Envelope, publisher: Principal) -> str:
        """An event from `lhpn.events` (queue `cases.events`, admitted from its owning service):
        only `unit.upserted` is bound."""
        if envelope.type != "unit.upserted":
            raise Reject(f"cases does not consume {envelope.routing_key}")
        unit = parse_data(envelope)
        assert isinstance(unit, Unit)
        return "applied" if await self.apply_unit(unit) else "unchanged"
