"""Aggregation's use cases, in one place for the app, the command line and the tests: the
consumer's (`writer.Writer`: apply a batch, recover, rebuild) and the answers' (`queries.Queries`:
compliance, reporting rates, indicators, case statistics, exports)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from lhpn_shared.clock import Clock

from .batch import Event
from .errors import BadInput, NotFound, Rebuilding
from .queries import Queries
from .repository import AggregationStore
from .writer import Writer

__all__ = ["Aggregation", "BadInput", "NotFound", "Rebuilding"]


class Aggregation(Queries):
    """The answers (inherited from `Queries`) and the writer behind them."""

    def __init__(self, store: AggregationStore, clock: Clock) -> None:
        super().__init__(store, clock)
        self.writer = Writer(store, clock)

    def now(self) -> datetime:
        return self.writer.now()

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
