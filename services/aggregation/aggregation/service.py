"""Aggregation's use cases, in one place for the app, the command line and the tests: the
consumer's (`writer.Writer`: apply a batch, recover, rebuild) and the answers' (`queries.Queries`:
compliance, reporting rates, indicators, case statistics, exports)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from lhpn_shared.clock import Clock
from lhpn_shared.contracts.units import Unit, UnitTree

from .batch import Event, state_of
from .errors import BadInput, NotFound, Rebuilding
from .queries import Queries, Reads
from .repository import AggregationStore
from .writer import Writer

__all__ = ["Aggregation", "BadInput", "NotFound", "Rebuilding"]


class Aggregation(Queries):
    """The answers (inherited from `Queries`) and the writer behind them."""

    def __init__(self, store: AggregationStore, clock: Clock, reads: Reads | None = None) -> None:
        """`store`: where this process writes (its partition's, when partitioned); `reads`:
        where the answers read (every partition's, summed), by default `store`."""
        super().__init__(store, clock, reads)
        self.writer = Writer(store, clock)
        self.partitioned = reads is not None

    def now(self) -> datetime:
        return self.writer.now()

    async def unit_tree(self) -> UnitTree:
        """The whole tree (the audit log's subtree filter, for admins): the writer's copy when
        it has one, else as stored."""
        if self.writer.tree is not None and not self.partitioned:  # a partition's is a part
            return self.writer.tree.tree
        return UnitTree(state_of(Unit, d) for d in await self.reads.all_docs("units"))

    async def apply(self, events: Sequence[Event]) -> list[bool]:
        return await self.writer.apply(events)

    async def recover(self) -> int:
        return await self.writer.recover()

    async def rebuild(
        self,
        *,
        batch_size: int,
        grace_seconds: float = 3.0,
        progress: Callable[[int, int, int], None] | None = None,
    ) -> int:
        return await self.writer.rebuild(
            batch_size=batch_size, grace_seconds=grace_seconds, progress=progress
        )
