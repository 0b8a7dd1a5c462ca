"""A unit's standing in a plan (`rollup.Entry`): which targets it is in scope of and when it met
them, and which reports it was expected to send and how they came.

The rules (SPEC §3, issue 10), written down once here and documented in docs/aggregation.md:
- A target counts the activities of its kinds the unit recorded in the plan year, plus what
  its predecessors recorded before each change that took effect within the plan year (and
  what theirs recorded before theirs): a successor has done what its predecessors did.
- Scope is decided by the answer (`compliance`): the units of the target's levels valid on the
  as-of day, clamped to the plan year; so the entry keeps the days the unit is valid on.
- A report is expected from a unit of the schedule's levels that exists on the report date, the
  last day a report is on time (`ReportSchedule.expects`, the definition every service uses: a
  unit that no longer exists is not expected to report). A report received stays with the unit
  that sent it: from a unit valid during the data window, it counts as expected and received
  even if the unit has closed since.
- A plan applies to the units under its issuing unit and under the units its issuer continues
  (`Plan.covers`); the others have no standing in it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from heapq import merge

from lhpn_shared.contracts.plans import ReportSchedule, SchedulePeriod
from lhpn_shared.contracts.units import Unit

from .facts import ReportState
from .rates import data_window
from .rollup import LATE, MISSING, NOT_EXPECTED, ON_TIME, Entry, PlanShape
from .rollup import unit_interval as interval_of

Days = Mapping[str, Sequence[int]]
"""A unit's own activities of one year: kind → sorted day indexes."""


def credited_days(
    kinds: Sequence[str], own: Days, sources: Sequence[tuple[Days, int]]
) -> list[int]:
    """The sorted day indexes of the activities of `kinds` a unit is credited with: its own,
    and each source's (a predecessor's) up to that source's last day."""
    lists: list[Sequence[int]] = [own.get(kind, ()) for kind in kinds]
    for days, last in sources:
        for kind in kinds:
            found = days.get(kind, ())
            lists.append(found[: bisect_right(found, last)])
    return list(merge(*lists))


def target_values(
    shape: PlanShape, level: str, own: Days, sources: Sequence[tuple[Days, int]]
) -> tuple[int | tuple[int, int] | None, ...]:
    values: list[int | tuple[int, int] | None] = []
    half = shape.first_half_end()
    for index, target in enumerate(shape.plan.targets):
        if level not in shape.levels[index]:
            values.append(None)
            continue
        days = credited_days(shape.kinds[index], own, sources)
        need = target.min_count
        if shape.any_in_year[index]:
            values.append(days[need - 1] if len(days) >= need else -1)
        else:
            first = bisect_right(days, half)
            values.append((int(first >= need), int(len(days) - first >= need)))
    return tuple(values)


def report_status(
    unit: Unit, schedule: ReportSchedule, period: SchedulePeriod, report: ReportState | None
) -> str:
    if unit.level not in schedule.levels:
        return NOT_EXPECTED
    expected = schedule.expects(unit, period)
    if report is not None and (expected or unit.valid_during(*data_window(period, unit.level))):
        return ON_TIME if report.on_time else LATE
    return MISSING if expected else NOT_EXPECTED


def report_statuses(
    unit: Unit, shape: PlanShape, reports: Mapping[tuple[str, str], ReportState]
) -> str:
    """One character per schedule period of the plan (see `Entry`)."""
    return "".join(
        report_status(unit, s, p, reports.get((s.report_type, p.period))) for s, p in shape.periods
    )


def entry_for(
    unit: Unit,
    shape: PlanShape,
    own: Days,
    sources: Sequence[tuple[Days, int]],
    reports: str,
) -> Entry:
    """The unit's entry; `sources` are its predecessors' days with the last day credited
    (`tree.Lineage.credit_sources`), `reports` its report statuses (`report_statuses`)."""
    valid = interval_of(unit, shape.year)
    return Entry(
        name=unit.name,
        level=unit.level.value,
        parent_id=unit.parent_id,
        valid=valid,
        targets=target_values(shape, unit.level.value, own, sources)
        if valid is not None
        else tuple(None for _ in shape.plan.targets),
        reports=reports,
    )


def with_report(entry: Entry, index: int, status: str) -> Entry:
    return Entry(
        name=entry.name,
        level=entry.level,
        parent_id=entry.parent_id,
        valid=entry.valid,
        targets=entry.targets,
        reports=entry.reports[:index] + status + entry.reports[index + 1 :],
    )
