"""What the queries keep at hand in memory, Mongo remaining the source of truth."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.units import Unit, UnitTree

from .batch import Batch, state_of
from .domain.day_index import DayIndex
from .repository import AggregationStore, counters_body

log = logging.getLogger("aggregation")

VIEW_RECHECK_SECONDS = 0.25
"""How often a query re-reads the stamp of the last batch (another process may have written)."""


class ReadView:
    """What the queries need at hand, cached in memory, Mongo remaining the source of truth:
    the unit tree, the plans, and per year a `DayIndex` per unit for compliance.

    The batch writer updates it right after each write (under `lock`, so a load never mixes
    with a write). Another process's writes (a rebuild, a second instance) change the stamp
    in `meta`; a query that sees a stamp it did not write reloads."""

    def __init__(self, store: AggregationStore) -> None:
        self.store = store
        self.lock = asyncio.Lock()
        self.stamp: str | None = None
        self.loaded = False
        self.units: dict[str, Unit] = {}
        self.tree = UnitTree([])
        self.plans: dict[str, Plan] = {}
        self._days: dict[int, dict[str, DayIndex]] = {}
        self._checked_at = 0.0

    async def fresh(self) -> None:
        if self.loaded and time.monotonic() - self._checked_at < VIEW_RECHECK_SECONDS:
            return
        if self.loaded and await self.store.read_stamp() == self.stamp:
            self._checked_at = time.monotonic()
            return
        async with self.lock:
            stamp = await self.store.read_stamp()
            if self.loaded and stamp == self.stamp:
                return
            units = [state_of(Unit, d) for d in await self.store.all_docs("units")]
            plans = [state_of(Plan, d) for d in await self.store.all_docs("plans")]
            self.units = {u.unit_id: u for u in units}
            self.tree = UnitTree(units)
            self.plans = {p.plan_id: p for p in plans}
            self._days.clear()
            self.stamp, self.loaded = stamp, True
            self._checked_at = time.monotonic()

    def invalidate(self) -> None:
        self.loaded = False

    async def days(self, year: int) -> Mapping[str, DayIndex]:
        """Every unit's DayIndex for `year` (loaded on first use)."""
        if year not in self._days:
            async with self.lock:
                if year not in self._days:
                    docs = await self.store.counters_of_year("activity_counters", year)
                    self._days[year] = {
                        d["unit_id"]: DayIndex.from_counters(counters_body(d)) for d in docs
                    }
        return self._days[year]

    def absorb(self, batch: Batch, stamp: str) -> None:
        """The batch just written (call with `lock` held)."""
        if not self.loaded:
            return
        units, plans = batch.changed_units(), batch.changed_plans()
        if units:
            self.units.update((u.unit_id, u) for u in units)
            self.tree = UnitTree(self.units.values())
        self.plans.update((p.plan_id, p) for p in plans)
        try:
            for delta in batch.activity_deltas:
                by_unit = self._days.get(delta.year)
                if by_unit is not None:
                    index = by_unit.setdefault(delta.unit_id, DayIndex(delta.unit_id, delta.year))
                    index.apply(delta)
        except ValueError:
            log.exception("compliance cache out of step with the counters, reloading")
            self.invalidate()
            return
        self.stamp = stamp
