"""What the read model keeps, and the pure logic that keeps it up to date.

Per entity, only its latest state: `ActivityState` per activity, `ReportState` per
(unit_id, report_type, period), `CaseState` per case.

Per unit and calendar year, small counters that the queries read instead of scanning events:
- `UnitActivityCounters`: per activity kind, for the year and for each month, the number of
  activities and the sums of their metrics, and per day the number of activities (day
  resolution answers "as of").
- `UnitCaseCounters`: per month of receipt, cases by kind, topic, status, outcome and flag, and
  how many are overdue.

An event goes through `on_activity_recorded`, `on_activity_voided`, `on_case_event` or
`on_report_submitted` together with the stored state (or None); the answer is the new state and,
for activities and cases, the deltas: the old contribution removed, the new one added. One delta
is one `$inc` on one counters document (`delta.increments()`), or `counters.apply(delta)` in
memory.

Revisions make every update idempotent and order-tolerant: an event whose revision is lower than
the stored one, or equal to it, changes nothing, except that at equal revisions a void beats a
record, so the outcome never depends on the order of arrival.
"""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Generic, Literal, Protocol, TypedDict, TypeVar, cast
from uuid import UUID

from pydantic import BaseModel, Field

from lhpn_shared.clock import ensure_aware
from lhpn_shared.contracts.activities import Activity, ActivityKind
from lhpn_shared.contracts.cases import CaseFacts, CaseKind, CaseStatus, CaseTopic
from lhpn_shared.contracts.events import ActivityVoided
from lhpn_shared.contracts.reports import Report

Sign = Literal[1, -1]
S = TypeVar("S")
D = TypeVar("D")


def month_key(day: date) -> str:
    """Key of the month of `day` inside its year's counters document: `03`."""
    return f"{day.month:02d}"


def _field_key(name: str) -> str:
    """A free-text name made safe as one segment of a Mongo field path."""
    return name.replace(".", "_").replace("$", "_")


@dataclass(frozen=True)
class Change(Generic[S, D]):
    """The result of one event: the state to store and the deltas to apply to counters."""

    state: S
    deltas: list[D] = field(default_factory=list)
    changed: bool = True
    """False when the event was stale or a duplicate: nothing to write."""


# --- activities -------------------------------------------------------------------------------


class ActivityDelta(BaseModel):
    """One activity's contribution to the counters of its unit, added (+1) or removed (-1)."""

    unit_id: str
    kind: ActivityKind
    occurred_on: date
    sign: Sign
    metrics: dict[str, int] = Field(default_factory=dict)

    @property
    def year(self) -> int:
        return self.occurred_on.year

    def increments(self) -> dict[str, int]:
        """The `$inc` on the counters document `{unit_id, year}` (an upsert)."""
        kind = f"kinds.{self.kind.value}"
        month = f"{kind}.months.{self.occurred_on.month:02d}"
        inc: dict[str, int] = {
            f"{kind}.activities": self.sign,
            f"{month}.activities": self.sign,
            f"{month}.days.{self.occurred_on.day:02d}": self.sign,
        }
        for name, value in self.metrics.items():
            if value:
                inc[f"{kind}.metrics.{_field_key(name)}"] = self.sign * value
                inc[f"{month}.metrics.{_field_key(name)}"] = self.sign * value
        return inc


class ActivityState(BaseModel):
    """The latest revision of an activity, as far as the counters care."""

    activity_id: UUID
    revision: int
    unit_id: str
    kind: ActivityKind | None = Field(default=None, description="None once voided")
    occurred_on: date | None = None
    metrics: dict[str, int] = Field(default_factory=dict)
    voided: bool = False

    def contribution(self, sign: Sign) -> ActivityDelta | None:
        if self.voided or self.kind is None or self.occurred_on is None:
            return None
        return ActivityDelta(
            unit_id=self.unit_id,
            kind=self.kind,
            occurred_on=self.occurred_on,
            sign=sign,
            metrics=dict(self.metrics),
        )


def _supersedes(stored_revision: int, stored_voided: bool, revision: int, voids: bool) -> bool:
    if revision != stored_revision:
        return revision > stored_revision
    return voids and not stored_voided


def _activity_change(
    old: ActivityState | None, new: ActivityState
) -> Change[ActivityState, ActivityDelta]:
    removed = old.contribution(-1) if old is not None else None
    added = new.contribution(1)
    if removed is not None and added is not None:
        same = removed.model_dump(exclude={"sign"}) == added.model_dump(exclude={"sign"})
        if same:  # e.g. only the title was corrected: the counters stay as they are
            return Change(new)
    return Change(new, [d for d in (removed, added) if d is not None])


def on_activity_recorded(
    state: ActivityState | None, activity: Activity
) -> Change[ActivityState, ActivityDelta]:
    """`activity.recorded` (new or corrected activity) against the stored state."""
    if state is not None and not _supersedes(
        state.revision, state.voided, activity.revision, activity.voided
    ):
        return Change(state, changed=False)
    if activity.voided:
        new = _voided(activity.activity_id, activity.revision, activity.unit_id)
    else:
        new = ActivityState(
            activity_id=activity.activity_id,
            revision=activity.revision,
            unit_id=activity.unit_id,
            kind=activity.kind,
            occurred_on=activity.occurred_on,
            metrics=dict(activity.metrics),
        )
    return _activity_change(state, new)


def on_activity_voided(
    state: ActivityState | None, void: ActivityVoided
) -> Change[ActivityState, ActivityDelta]:
    """`activity.voided` against the stored state; a void known before its record is kept."""
    if state is not None and not _supersedes(state.revision, state.voided, void.revision, True):
        return Change(state, changed=False)
    return _activity_change(state, _voided(void.activity_id, void.revision, void.unit_id))


def _voided(activity_id: UUID, revision: int, unit_id: str) -> ActivityState:
    """A voided activity keeps nothing the counters could use, whatever order events came in."""
    return ActivityState(activity_id=activity_id, revision=revision, unit_id=unit_id, voided=True)


class MonthCounters(TypedDict, total=False):
    activities: int
    metrics: dict[str, int]
    """metric → sum over the month's activities"""
    days: dict[str, int]
    """`DD` → activities of that day"""


class KindCounters(TypedDict, total=False):
    activities: int
    """activities of the year"""
    metrics: dict[str, int]
    """metric → sum over the year's activities"""
    months: dict[str, MonthCounters]
    """`MM` → the month's counters"""


@dataclass(frozen=True)
class DayWindow:
    """Days [start, end] of one year, cut into what the counters answer with one lookup each:
    the whole year, whole months, or the days of a partial month."""

    year: int
    start: date
    end: date
    whole_year: bool
    months: tuple[tuple[str, str | None, str | None], ...]
    """(`MM`, first `DD`, last `DD`); None, None for a whole month"""

    @classmethod
    def of(cls, year: int, start: date, end: date) -> DayWindow:
        first, last = max(start, date(year, 1, 1)), min(end, date(year, 12, 31))
        months = []
        for month in range(first.month, last.month + 1) if first <= last else ():
            low = first.day if month == first.month else 1
            high = last.day if month == last.month else monthrange(year, month)[1]
            whole = low == 1 and high == monthrange(year, month)[1]
            months.append(
                (f"{month:02d}", None, None)
                if whole
                else (f"{month:02d}", f"{low:02d}", f"{high:02d}")
            )
        whole_year = first == date(year, 1, 1) and last == date(year, 12, 31)
        return cls(year, first, last, whole_year, tuple(months))


@dataclass
class UnitActivityCounters:
    """The activity counters of one unit for one calendar year: one document per unit-year,
    `{"unit_id", "year", "kinds": {kind: KindCounters}}`, changed only by `$inc` of deltas.

    Used as the database returns it (no validation pass). Any count over days of the year takes
    at most one lookup per month (plus the days of a partial month at either end).
    """

    unit_id: str
    year: int
    kinds: dict[str, KindCounters] = field(default_factory=dict)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> UnitActivityCounters:
        return cls(unit_id=str(doc["unit_id"]), year=int(doc["year"]), kinds=doc.get("kinds") or {})

    def to_document(self) -> dict[str, Any]:
        return {"unit_id": self.unit_id, "year": self.year, "kinds": self.kinds}

    def apply(self, delta: ActivityDelta) -> None:
        """Apply a delta in memory, exactly as `$inc: delta.increments()` does in the database."""
        if (delta.unit_id, delta.year) != (self.unit_id, self.year):
            raise ValueError(
                f"delta for {delta.unit_id}/{delta.year} given to {self.unit_id}/{self.year}"
            )
        increment(cast(dict[str, Any], self.kinds), delta.increments(), prefix="kinds.")

    def count(self, kinds: Iterable[str], window: DayWindow, *, enough: int | None = None) -> int:
        """Activities of any of `kinds` that occurred on a day of the window.

        With `enough`, counting may stop as soon as that many are found.
        """
        total = 0
        for kind in kinds:
            counters = self.kinds.get(kind)
            if not counters:
                continue
            if window.whole_year:
                total += counters.get("activities", 0)
                continue
            months = counters.get("months", {})
            for key, low, high in window.months:
                if enough is not None and total >= enough:
                    return total
                month = months.get(key)
                if not month:
                    continue
                if low is None or high is None:
                    total += month.get("activities", 0)
                else:
                    days = month.get("days", {})
                    total += sum(n for day, n in days.items() if low <= day <= high)
        return total

    def add_months(self, into: Tally, kind: str, first_month: int, last_month: int) -> None:
        """Add the activities of `kind` in months [first_month, last_month] to a tally."""
        counters = self.kinds.get(kind)
        if not counters:
            return
        if first_month == 1 and last_month == 12:
            spans: Iterable[Mapping[str, Any]] = (counters,)
        else:
            months = counters.get("months", {})
            found = (months.get(f"{m:02d}") for m in range(first_month, last_month + 1))
            spans = [m for m in found if m]
        for span in spans:
            into.activities += span.get("activities", 0)
            for name, value in span.get("metrics", {}).items():
                into.metrics[name] = into.metrics.get(name, 0) + value


@dataclass
class Tally:
    """Activities and the sums of their metrics, added up over units and months."""

    activities: int = 0
    metrics: dict[str, int] = field(default_factory=dict)


def increment(doc: dict[str, Any], increments: Mapping[str, int], *, prefix: str = "") -> None:
    """Mongo's `$inc` in memory: add each value at its dotted path, creating what is missing.

    `prefix` is stripped from the paths when `doc` is a sub-document (e.g. `kinds.`).
    """
    for path, value in increments.items():
        *parents, leaf = path.removeprefix(prefix).split(".")
        node = doc
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = node.get(leaf, 0) + value


# --- reports ----------------------------------------------------------------------------------


class ReportState(BaseModel):
    """The latest revision of a unit's report for one type and period.

    `received_at` and `on_time` are those of the first submission (the earliest received_at
    seen), as the producer computed them; the content is that of the highest revision.
    """

    unit_id: str
    report_type: str
    period: str
    report_id: UUID
    revision: int
    received_at: datetime
    on_time: bool
    due_at: datetime
    indicators: dict[str, int] = Field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.unit_id, self.report_type, self.period


def report_key(report: Report) -> tuple[str, str, str]:
    return report.unit_id, report.report_type, report.period


def on_report_submitted(state: ReportState | None, report: Report) -> Change[ReportState, None]:
    """`report.submitted` (first submission or resubmission) against the stored state."""
    first = (ensure_aware(report.received_at), report.on_time)
    if state is not None:
        if report_key(report) != state.key:
            raise ValueError(f"report {report_key(report)} applied to the state of {state.key}")
        first = min(first, (state.received_at, state.on_time))
    if state is None or report.revision > state.revision:
        new = ReportState(
            unit_id=report.unit_id,
            report_type=report.report_type,
            period=report.period,
            report_id=report.report_id,
            revision=report.revision,
            received_at=first[0],
            on_time=first[1],
            due_at=ensure_aware(report.due_at),
            indicators=dict(report.indicators),
        )
    else:
        new = state.model_copy(update={"received_at": first[0], "on_time": first[1]})
    return Change(new, changed=new != state)


# --- cases ------------------------------------------------------------------------------------

OUTCOMES: frozenset[CaseStatus] = frozenset(
    {
        CaseStatus.declined,
        CaseStatus.resolved,
        CaseStatus.referred,
        CaseStatus.mediation_succeeded,
        CaseStatus.mediation_failed,
        CaseStatus.withdrawn,
    }
)


class CaseDelta(BaseModel):
    """One case's contribution to the case counters of its unit, added (+1) or removed (-1)."""

    unit_id: str
    received_on: date
    sign: Sign
    kind: CaseKind
    topic: CaseTopic
    status: CaseStatus
    outcome: CaseStatus | None
    overdue: bool
    flags: list[str] = Field(default_factory=list)

    @property
    def year(self) -> int:
        return self.received_on.year

    def increments(self) -> dict[str, int]:
        """The `$inc` on the case counters document `{unit_id, year}` (an upsert)."""
        at = f"months.{month_key(self.received_on)}"
        inc: dict[str, int] = {
            f"{at}.received": self.sign,
            f"{at}.by_kind.{self.kind.value}": self.sign,
            f"{at}.by_topic.{self.topic.value}": self.sign,
            f"{at}.by_status.{self.status.value}": self.sign,
        }
        if self.outcome is not None:
            inc[f"{at}.by_outcome.{self.outcome.value}"] = self.sign
        if self.overdue:
            inc[f"{at}.overdue"] = self.sign
        for flag in self.flags:
            inc[f"{at}.by_flag.{_field_key(flag)}"] = self.sign
        return inc


class CaseState(BaseModel):
    """The latest revision of a case, without personal data."""

    case_id: UUID
    revision: int
    unit_id: str
    kind: CaseKind
    topic: CaseTopic
    status: CaseStatus
    outcome: CaseStatus | None = Field(default=None, description="how it ended, kept once closed")
    received_on: date
    overdue: bool
    flags: list[str] = Field(default_factory=list)

    def contribution(self, sign: Sign) -> CaseDelta:
        return CaseDelta(sign=sign, **self.model_dump(exclude={"case_id", "revision"}))


def _outcome(facts: CaseFacts, previous: CaseState | None) -> CaseStatus | None:
    if facts.status in OUTCOMES:
        return facts.status
    if facts.status is not CaseStatus.closed:
        return None  # open, or reopened
    from_status = getattr(facts, "from_status", None)  # case.status_changed / case.closed
    if from_status in OUTCOMES:
        return CaseStatus(from_status)
    return previous.outcome if previous is not None else None


def on_case_event(state: CaseState | None, facts: CaseFacts) -> Change[CaseState, CaseDelta]:
    """`case.opened`, `case.status_changed` or `case.closed` against the stored state."""
    if state is not None and facts.revision <= state.revision:
        return Change(state, changed=False)
    new = CaseState(
        case_id=facts.case_id,
        revision=facts.revision,
        unit_id=facts.unit_id,
        kind=facts.kind,
        topic=facts.topic,
        status=facts.status,
        outcome=_outcome(facts, state),
        received_on=facts.received_on,
        overdue=facts.overdue,
        flags=sorted(set(facts.flags)),
    )
    old = state.contribution(-1) if state is not None else None
    if old is not None and old.model_dump(exclude={"sign"}) == new.contribution(1).model_dump(
        exclude={"sign"}
    ):
        return Change(new)
    return Change(new, [d for d in (old, new.contribution(1)) if d is not None])


@dataclass
class CaseTally:
    """Case counts added up over units and months (the shape of one month's counters)."""

    received: int = 0
    overdue: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_topic: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    by_outcome: dict[str, int] = field(default_factory=dict)
    by_flag: dict[str, int] = field(default_factory=dict)

    def add(self, month: Mapping[str, Any]) -> None:
        """Add one month of counters, `{"received": n, "overdue": n, "by_kind": {…}, …}`."""
        self.received += month.get("received", 0)
        self.overdue += month.get("overdue", 0)
        for name in ("by_kind", "by_topic", "by_status", "by_outcome", "by_flag"):
            mine: dict[str, int] = getattr(self, name)
            for key, n in month.get(name, {}).items():
                mine[key] = mine.get(key, 0) + n


@dataclass
class UnitCaseCounters:
    """The case counters of one unit for one year of receipt: one document per unit-year,
    `{"unit_id", "year", "months": {"MM": {"received", "overdue", "by_kind": {…}, "by_topic",
    "by_status", "by_outcome", "by_flag"}}}`, changed only by `$inc` of deltas."""

    unit_id: str
    year: int
    months: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> UnitCaseCounters:
        return cls(
            unit_id=str(doc["unit_id"]), year=int(doc["year"]), months=doc.get("months") or {}
        )

    def to_document(self) -> dict[str, Any]:
        return {"unit_id": self.unit_id, "year": self.year, "months": self.months}

    def apply(self, delta: CaseDelta) -> None:
        """Apply a delta in memory, exactly as `$inc: delta.increments()` does in the database."""
        if (delta.unit_id, delta.year) != (self.unit_id, self.year):
            raise ValueError(
                f"delta for {delta.unit_id}/{delta.year} given to {self.unit_id}/{self.year}"
            )
        increment(self.months, delta.increments(), prefix="months.")

    def add_months(self, into: CaseTally, first_month: int, last_month: int) -> None:
        for key, month in self.months.items():
            if first_month <= int(key) <= last_month:
                into.add(month)


# --- units and plans --------------------------------------------------------------------------


class _Revised(Protocol):
    @property
    def revision(self) -> int: ...


R = TypeVar("R", bound=_Revised)


def latest(stored: R | None, incoming: R) -> R:
    """The one to keep of two revisions of a unit or a plan (`unit.upserted`, `plan.published`)."""
    return incoming if stored is None or incoming.revision > stored.revision else stored
