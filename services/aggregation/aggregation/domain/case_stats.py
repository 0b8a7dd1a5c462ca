"""Case statistics (SPEC §6, §8): counts only, never personal data.

Cases received in the period (by `received_on`), in their latest revision, per subtree and per
child: by kind, topic, status, outcome (how a closed case ended) and flag, and how many are
overdue (as the cases service last said). Reads the per-unit monthly case counters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from lhpn_shared.contracts.cases import CaseKind, CaseStatus, CaseTopic
from lhpn_shared.contracts.units import UnitTree
from lhpn_shared.periods import period_bounds

from .facts import OUTCOMES, CaseTally, UnitCaseCounters
from .scope import UnitRef, ref_fields, subtree_of


class CaseCounts(BaseModel):
    received: int
    overdue: int
    by_kind: dict[str, int]
    by_topic: dict[str, int]
    by_status: dict[str, int]
    by_outcome: dict[str, int]
    by_flag: dict[str, int] = Field(description="only the flags that occur")


def _counts(tally: CaseTally) -> dict[str, Any]:
    """The CaseCounts fields of a tally, every kind, topic, status and outcome listed."""

    def filled(values: Mapping[str, int], keys: Iterable[StrEnum]) -> dict[str, int]:
        return {key.value: values.get(key.value, 0) for key in keys}

    return {
        "received": tally.received,
        "overdue": tally.overdue,
        "by_kind": filled(tally.by_kind, CaseKind),
        "by_topic": filled(tally.by_topic, CaseTopic),
        "by_status": filled(tally.by_status, CaseStatus),
        "by_outcome": filled(tally.by_outcome, (s for s in CaseStatus if s in OUTCOMES)),
        "by_flag": {flag: n for flag, n in sorted(tally.by_flag.items()) if n},
    }


class ChildCaseCounts(CaseCounts, UnitRef):
    """The counts over the subtree of one child of the requested unit."""


class CaseStats(CaseCounts):
    unit: UnitRef
    period: str
    start_on: date
    end_on: date
    children: list[ChildCaseCounts]


def case_stats(
    tree: UnitTree,
    unit_id: str,
    period: str,
    counters: Mapping[str, UnitCaseCounters],
) -> CaseStats:
    """Counts over the subtree of `unit_id`; `counters` are the units' counters of the
    period's year (unit_id → counters; missing: no case)."""
    start, end = period_bounds(period)
    scope = subtree_of(tree, unit_id)
    total = CaseTally()
    per_child = {child.unit_id: CaseTally() for child in scope.children}
    for unit in scope.units:
        unit_counters = counters.get(unit.unit_id)
        if unit_counters is None:
            continue
        unit_counters.add_months(total, start.month, end.month)
        child = per_child.get(scope.branch.get(unit.unit_id, ""))
        if child is not None:
            unit_counters.add_months(child, start.month, end.month)
    return CaseStats(
        **_counts(total),
        unit=UnitRef.of(scope.root),
        period=period,
        start_on=start,
        end_on=end,
        children=[
            ChildCaseCounts(**_counts(per_child[c.unit_id]), **ref_fields(c))
            for c in scope.children
        ],
    )
