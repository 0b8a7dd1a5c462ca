"""Case statistics (SPEC §6, §8): counts only, never personal data.

Cases received in the period (by `received_on`), in their latest revision, per subtree and per
child: by kind, topic, status, outcome (how a closed case ended) and flag, and how many are
overdue: flagged so by their last event, or with a pending deadline whose instant has passed
at the time of the query (issue 10: a case does not need a new event to become overdue).

Read from the unit's own `cases` rollup of the period's year (`rollup` module).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from lhpn_shared.contracts.cases import CaseKind, CaseStatus, CaseTopic
from lhpn_shared.contracts.units import Unit
from lhpn_shared.periods import period_bounds

from .facts import OUTCOMES, due_millis
from .rollup import add_into
from .scope import ChildRef, UnitRef, ref_fields


class CaseCounts(BaseModel):
    received: int
    overdue: int = Field(description="overdue at the time of the query")
    by_kind: dict[str, int]
    by_topic: dict[str, int]
    by_status: dict[str, int]
    by_outcome: dict[str, int]
    by_flag: dict[str, int] = Field(description="only the flags that occur")


def _counts(months: Mapping[str, Any], first: int, last: int, now_ms: int) -> dict[str, Any]:
    """The CaseCounts fields over months [first, last], every kind, topic, status and
    outcome listed."""
    tally: dict[str, Any] = {}
    for key, month in months.items():
        if first <= int(key) <= last:
            add_into(tally, month)

    def filled(values: Mapping[str, int], keys: Iterable[StrEnum]) -> dict[str, int]:
        return {key.value: values.get(key.value, 0) for key in keys}

    due = sum(n for at, n in tally.get("due", {}).items() if int(at) <= now_ms)
    return {
        "received": tally.get("received", 0),
        "overdue": tally.get("overdue", 0) + due,
        "by_kind": filled(tally.get("by_kind", {}), CaseKind),
        "by_topic": filled(tally.get("by_topic", {}), CaseTopic),
        "by_status": filled(tally.get("by_status", {}), CaseStatus),
        "by_outcome": filled(tally.get("by_outcome", {}), (s for s in CaseStatus if s in OUTCOMES)),
        "by_flag": {flag: n for flag, n in sorted(tally.get("by_flag", {}).items()) if n},
    }


class ChildCaseCounts(CaseCounts, UnitRef):
    """The counts over the subtree of one child of the requested unit."""


class CaseStats(CaseCounts):
    unit: UnitRef
    period: str
    start_on: date
    end_on: date
    counted_at: AwareDatetime = Field(description="the instant overdue cases are counted at")
    children: list[ChildCaseCounts] = Field(
        description="the children valid during the period, and any other with cases in it"
    )


def case_stats(
    unit: Unit,
    children: list[ChildRef],
    period: str,
    cases: Mapping[str, Any],
    now: datetime,
) -> CaseStats:
    """Counts over the subtree of `unit` from its `cases` rollup of the period's year
    (`{"s": {MM: month}, "c": {child: {MM: month}}}`), overdue as of `now`."""
    start, end = period_bounds(period)
    now_ms = due_millis(now)
    per_child = cases.get("c", {})
    listed: list[ChildCaseCounts] = []
    for child in children:
        counts = _counts(per_child.get(child.unit_id, {}), start.month, end.month, now_ms)
        if child.valid_during(start, end) or counts["received"]:
            listed.append(ChildCaseCounts(**counts, **ref_fields(child)))
    return CaseStats(
        **_counts(cases.get("s", {}), start.month, end.month, now_ms),
        unit=UnitRef.of(unit),
        period=period,
        start_on=start,
        end_on=end,
        counted_at=now,
        children=listed,
    )
