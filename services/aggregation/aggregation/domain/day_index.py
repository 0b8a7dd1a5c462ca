"""A compact, in-memory form of a unit's activity counters that answers compliance counts.

A counters document of a busy unit holds hundreds of small maps (kind → month → day); a
country's worth of them does not fit in a process as Python dicts. Compliance only ever asks
"how many activities of these kinds fell on days [a, b]", so `DayIndex` keeps, per kind, the
sorted day numbers of the activities (one entry per activity) and answers with two bisections.
It is built from a counters document and kept current with the same deltas as the counters.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .facts import ActivityDelta, DayWindow, Tally, UnitActivityCounters


@dataclass
class DayIndex(UnitActivityCounters):
    """Per activity kind, the ordinals (`date.toordinal()`) of the days its activities occurred
    on, sorted, repeated once per activity. Only `count` is meaningful: `kinds` stays empty."""

    days: dict[str, array[int]] = field(default_factory=dict)

    @classmethod
    def from_counters(cls, doc: Mapping[str, Any]) -> DayIndex:
        year = int(doc["year"])
        index = cls(unit_id=str(doc["unit_id"]), year=year)
        for kind, counters in (doc.get("kinds") or {}).items():
            ordinals: list[int] = []
            for month, month_counters in (counters.get("months") or {}).items():
                for day, n in (month_counters.get("days") or {}).items():
                    if n > 0:
                        ordinals += [date(year, int(month), int(day)).toordinal()] * n
            if ordinals:
                index.days[kind] = array("i", sorted(ordinals))
        return index

    def count(self, kinds: Iterable[str], window: DayWindow, *, enough: int | None = None) -> int:
        if window.start > window.end:
            return 0
        first, last = window.start.toordinal(), window.end.toordinal()
        total = 0
        for kind in kinds:
            days = self.days.get(kind)
            if days:
                total += bisect_right(days, last) - bisect_left(days, first)
        return total

    def apply(self, delta: ActivityDelta) -> None:
        if (delta.unit_id, delta.year) != (self.unit_id, self.year):
            raise ValueError(
                f"delta for {delta.unit_id}/{delta.year} given to {self.unit_id}/{self.year}"
            )
        day = delta.occurred_on.toordinal()
        days = self.days.setdefault(delta.kind.value, array("i"))
        if delta.sign > 0:
            insort(days, day)
            return
        at = bisect_left(days, day)
        if at == len(days) or days[at] != day:
            raise ValueError(f"no activity of {delta.kind.value} on {delta.occurred_on} to remove")
        del days[at]

    def add_months(self, into: Tally, kind: str, first_month: int, last_month: int) -> None:
        raise NotImplementedError("a DayIndex answers counts only; read the counters document")
