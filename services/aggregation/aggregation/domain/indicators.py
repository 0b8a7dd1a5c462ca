"""Indicator totals (SPEC §8): what the recorded activities add up to over a subtree and a
period, next to what the reports declared for the same period, with the differences flagged.

Indicator codes are `<kind>.count` (number of activities) and `<kind>.<metric>`. One kind,
`exemplar`, has a metric named `count`: there `exemplar.count` is that metric (the number of
exemplars, as report templates mean it); its number of activities is still in `kinds`.
Reads the per-unit monthly counters of the period's year: O(units × kinds × months).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

from pydantic import BaseModel, Field

from lhpn_shared.contracts.activities import METRICS, ActivityKind
from lhpn_shared.contracts.units import UnitTree
from lhpn_shared.periods import period_bounds

from .facts import ReportState, Tally, UnitActivityCounters
from .scope import UnitRef, subtree_of

ACTIVITIES = "count"
"""The measure of `<kind>.count`: the number of activities (unless the kind has that metric)."""
_KINDS = {kind.value: kind for kind in ActivityKind}


def indicator_codes() -> list[str]:
    """Every code the activities can answer, kinds in their declared order."""
    codes = []
    for kind in ActivityKind:
        codes.append(f"{kind.value}.{ACTIVITIES}")
        codes.extend(f"{kind.value}.{m}" for m in METRICS[kind] if m != ACTIVITIES)
    return codes


class KindTotals(BaseModel):
    kind: ActivityKind
    activities: int
    metrics: dict[str, int] = Field(description="every metric of the kind, zeros included")


class IndicatorRow(BaseModel):
    code: str
    kind: ActivityKind | None = Field(description="None for a declared code no kind answers")
    measure: str
    recorded: int | None = Field(description="from the recorded activities")
    declared: int | None = Field(description="sum over the reports; None when none declared it")
    difference: int | None = Field(description="declared − recorded")
    differs: bool


class IndicatorsResult(BaseModel):
    unit: UnitRef
    period: str
    start_on: date
    end_on: date
    report_type: str | None = Field(description="None: reports of every type were summed")
    reports: int = Field(description="reports whose declared totals were summed")
    kinds: list[KindTotals]
    rows: list[IndicatorRow]
    differing: int = Field(description="rows whose declared total differs from the recorded one")


def _recorded(totals: Mapping[str, Tally], kind: ActivityKind, measure: str) -> int | None:
    tally = totals[kind.value]
    if measure in METRICS[kind]:
        return tally.metrics.get(measure, 0)
    if measure == ACTIVITIES:
        return tally.activities
    return None


def indicators(
    tree: UnitTree,
    unit_id: str,
    period: str,
    counters: Mapping[str, UnitActivityCounters],
    reports: Iterable[ReportState],
    *,
    report_type: str | None = None,
) -> IndicatorsResult:
    """Totals over the subtree of `unit_id` for a period key (2021, 2021-H1, 2021-Q3, 2021-03).

    `counters` maps unit_id → that unit's counters for the period's year. Of `reports`, those
    of units in the subtree whose period key equals `period` (and of `report_type`, if given)
    are summed.
    """
    start, end = period_bounds(period)
    scope = subtree_of(tree, unit_id)
    totals = {kind.value: Tally() for kind in ActivityKind}
    for unit in scope.units:
        unit_counters = counters.get(unit.unit_id)
        if unit_counters is None:
            continue
        for kind in unit_counters.kinds:
            if kind in totals:
                unit_counters.add_months(totals[kind], kind, start.month, end.month)

    in_scope = {unit.unit_id for unit in scope.units}
    declared: dict[str, int] = {}
    summed = 0
    for report in reports:
        if report.period != period or report.unit_id not in in_scope:
            continue
        if report_type is not None and report.report_type != report_type:
            continue
        summed += 1
        for code, value in report.indicators.items():
            declared[code] = declared.get(code, 0) + value

    codes = indicator_codes()
    codes += sorted(set(declared) - set(codes))
    rows = [_row(code, totals, declared.get(code)) for code in codes]
    return IndicatorsResult(
        unit=UnitRef.of(scope.root),
        period=period,
        start_on=start,
        end_on=end,
        report_type=report_type,
        reports=summed,
        kinds=[
            KindTotals(
                kind=kind,
                activities=totals[kind.value].activities,
                metrics={m: totals[kind.value].metrics.get(m, 0) for m in METRICS[kind]},
            )
            for kind in ActivityKind
        ],
        rows=rows,
        differing=sum(row.differs for row in rows),
    )


def _row(code: str, totals: Mapping[str, Tally], declared: int | None) -> IndicatorRow:
    kind_name, _, measure = code.partition(".")
    kind = _KINDS.get(kind_name)
    recorded = _recorded(totals, kind, measure) if kind is not None else None
    if recorded is None:
        kind = None
    difference = declared - recorded if declared is not None and recorded is not None else None
    return IndicatorRow(
        code=code,
        kind=kind,
        measure=measure,
        recorded=recorded,
        declared=declared,
        difference=difference,
        differs=bool(difference),
    )
