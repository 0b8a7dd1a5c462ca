"""Indicator totals (SPEC §8): what the recorded activities add up to over a subtree and a
period, next to what the reports declared for the same period, with the differences flagged.

Indicator codes are `<kind>.count` (number of activities) and `<kind>.<metric>`. One kind,
`exemplar`, has a metric named `count`: there `exemplar.count` is that metric (the number of
exemplars, as report templates mean it); its number of activities is still in `kinds`.

Declared totals add up over the period (issue 10): a quarter, half-year or year is the sum of
the reports of the periods within it. Without `report_type`, the reports summed are those of the
monthly schedules (their period keys are months: `2021-03`), so a year is its twelve monthly
reports; with `report_type`, that type's reports of every period within the requested one (the
annual thematic report for `2021`, the six-monthly one for `2021-H1`…).

Read from the unit's own rollups of the period's year: a few dozen numbers per kind.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from lhpn_shared.contracts.activities import METRICS, ActivityKind
from lhpn_shared.contracts.units import Unit
from lhpn_shared.periods import BadPeriod, period_bounds

from .scope import UnitRef

ACTIVITIES = "count"
"""The measure of `<kind>.count`: the number of activities (unless the kind has that metric)."""
_KINDS = {kind.value: kind for kind in ActivityKind}
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


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
    report_type: str | None = Field(description="None: the monthly reports were summed")
    report_types: list[str] = Field(description="the report types whose reports were summed")
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


@dataclass
class Tally:
    """Activities and the sums of their metrics, added up over months."""

    activities: int = 0
    metrics: dict[str, int] = field(default_factory=dict)


def is_month_key(period: str) -> bool:
    return bool(_MONTH.match(period))


def _within(period: str, start: date, end: date) -> bool:
    try:
        first, last = period_bounds(period)
    except BadPeriod:
        return False
    return start <= first and last <= end


def declared_totals(
    declared: Mapping[str, Mapping[str, Mapping[str, Any]]],
    start: date,
    end: date,
    report_type: str | None,
) -> tuple[list[str], int, dict[str, int]]:
    """(report types summed, reports summed, code → sum) over the periods within [start, end]."""
    if report_type is not None:
        types = [report_type]
    else:
        types = sorted(t for t, periods in declared.items() if any(map(is_month_key, periods)))
    summed = 0
    totals: dict[str, int] = {}
    for name in types:
        for period, figures in declared.get(name, {}).items():
            if report_type is None and not is_month_key(period):
                continue
            if not _within(period, start, end):
                continue
            summed += figures.get("n", 0)
            sums = figures.get("c", {})
            for code in figures.get("k", {}):  # the codes some report declared (0 included)
                totals[code] = totals.get(code, 0) + sums.get(code, 0)
    return types, summed, totals


def indicators(
    unit: Unit,
    period: str,
    activities: Mapping[str, Mapping[str, Mapping[str, Any]]],
    declared: Mapping[str, Mapping[str, Mapping[str, Any]]],
    *,
    report_type: str | None = None,
) -> IndicatorsResult:
    """Totals over the subtree of `unit` for a period key (2021, 2021-H1, 2021-Q3, 2021-03),
    from its rollups of the period's year: `activities` (kind → month → counts) and `declared`
    (report type → period → counts)."""
    start, end = period_bounds(period)
    totals = {kind.value: Tally() for kind in ActivityKind}
    for kind, months in activities.items():
        tally = totals.get(kind)
        if tally is None:
            continue
        for month, counts in months.items():
            if start.month <= int(month) <= end.month:
                tally.activities += counts.get("n", 0)
                for name, value in counts.get("m", {}).items():
                    tally.metrics[name] = tally.metrics.get(name, 0) + value

    types, summed, declared_sums = declared_totals(declared, start, end, report_type)
    codes = indicator_codes()
    codes += sorted(set(declared_sums) - set(codes))
    rows = [_row(code, totals, declared_sums.get(code)) for code in codes]
    return IndicatorsResult(
        unit=UnitRef.of(unit),
        period=period,
        start_on=start,
        end_on=end,
        report_type=report_type,
        report_types=types,
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
