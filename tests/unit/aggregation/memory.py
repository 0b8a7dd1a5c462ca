"""An in-memory read model: what the Mongo one will do, in dicts.

Each event goes through the domain's `on_*` function with the stored state; the new state is
stored and each delta is applied to the counters document it names (unit, year).
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from aggregation.domain.facts import (
    ActivityDelta,
    ActivityState,
    CaseState,
    Change,
    ReportState,
    UnitActivityCounters,
    UnitCaseCounters,
    on_activity_recorded,
    on_activity_voided,
    on_case_event,
    on_report_submitted,
    report_key,
)
from lhpn_shared.contracts.activities import Activity
from lhpn_shared.contracts.cases import CaseFacts
from lhpn_shared.contracts.events import ActivityVoided, Envelope, parse_data
from lhpn_shared.contracts.reports import Report


class MemoryReadModel:
    def __init__(self) -> None:
        self.activities: dict[UUID, ActivityState] = {}
        self.reports: dict[tuple[str, str, str], ReportState] = {}
        self.cases: dict[UUID, CaseState] = {}
        self.activity_counters: dict[tuple[str, int], UnitActivityCounters] = {}
        self.case_counters: dict[tuple[str, int], UnitCaseCounters] = {}
        self.writes = 0

    def handle_all(self, events: Iterable[Envelope]) -> MemoryReadModel:
        for event in events:
            self.handle(event)
        return self

    def handle(self, event: Envelope) -> None:
        data = parse_data(event)
        if isinstance(data, Activity):
            self._activity(on_activity_recorded(self.activities.get(data.activity_id), data))
        elif isinstance(data, ActivityVoided):
            self._activity(on_activity_voided(self.activities.get(data.activity_id), data))
        elif isinstance(data, Report):
            key3 = report_key(data)
            report_change = on_report_submitted(self.reports.get(key3), data)
            self.reports[key3] = report_change.state
        elif isinstance(data, CaseFacts):
            case_change = on_case_event(self.cases.get(data.case_id), data)
            self.cases[data.case_id] = case_change.state
            for case_delta in case_change.deltas:
                key = (case_delta.unit_id, case_delta.year)
                self.case_counters.setdefault(key, UnitCaseCounters(*key)).apply(case_delta)
        self.writes += 1

    def _activity(self, change: Change[ActivityState, ActivityDelta]) -> None:
        self.activities[change.state.activity_id] = change.state
        for delta in change.deltas:
            key = (delta.unit_id, delta.year)
            self.activity_counters.setdefault(key, UnitActivityCounters(*key)).apply(delta)

    def activity_counters_of(self, year: int) -> dict[str, UnitActivityCounters]:
        return {unit: c for (unit, y), c in self.activity_counters.items() if y == year}

    def case_counters_of(self, year: int) -> dict[str, UnitCaseCounters]:
        return {unit: c for (unit, y), c in self.case_counters.items() if y == year}
