"""What the read model keeps per entity, and the pure logic that keeps it up to date.

Per entity, only its latest state: `ActivityState` per activity, `ReportState` per
(unit_id, report_type, period), `CaseState` per case (no personal data).

An event goes through `on_activity_recorded`, `on_activity_voided`, `on_case_event` or
`on_report_submitted` together with the stored state (or None); the answer is the new state and,
for activities and cases, the deltas: the old contribution removed, the new one added. A delta's
`totals()` is what it adds to the rollups of its unit and every ancestor (`domain.rollup`).

Revisions make every update idempotent and order-tolerant: an event whose revision is lower than
the stored one, or equal to it, changes nothing, except that at equal revisions a void beats a
record, so the outcome never depends on the order of arrival.

With partitions (`AGGREGATION_PARTITIONS` > 1) an activity or case corrected to a unit of
another partition's province leaves its old partition: the router sends that partition a
`Departed` of the correcting revision, applied there as a void of that revision (activities) or
a tombstone (cases): its contribution is removed and nothing of it counts there any more
(docs/aggregation.md, "Partitions").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Generic, Literal, Protocol, TypeVar
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
    """Key of the month of `day` in a year's rollups: `03`."""
    return f"{day.month:02d}"


@dataclass(frozen=True)
class Change(Generic[S, D]):
    """The result of one event: the state to store and the deltas to apply to the rollups."""

    state: S
    deltas: list[D] = field(default_factory=list)
    changed: bool = True
    """False when the event was stale or a duplicate: nothing to write."""


# --- activities -------------------------------------------------------------------------------


class ActivityDelta(BaseModel):
    """One activity's contribution to its unit's rollups, added (+1) or removed (-1)."""

    unit_id: str
    kind: ActivityKind
    occurred_on: date
    sign: Sign
    metrics: dict[str, int] = Field(default_factory=dict)

    @property
    def year(self) -> int:
        return self.occurred_on.year

    def totals(self) -> dict[str, Any]:
        """What the activity adds to (or, sign −1, removes from) the `activities` rollup."""
        metrics = {name: self.sign * value for name, value in self.metrics.items() if value}
        month: dict[str, Any] = {"n": self.sign}
        if metrics:
            month["m"] = metrics
        return {self.kind.value: {month_key(self.occurred_on): month}}


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


class Departed(BaseModel):
    """The router's word to a partition: an activity or case went to another partition with
    the revision `revision` (a correction moved it to a unit of another province group).
    Internal to aggregation (`aggregation.departed`), never published on `lhpn.events`."""

    entity: Literal["activities", "cases"]
    entity_id: UUID
    revision: int = Field(ge=1, description="the revision that moved it")
    partition: int = Field(ge=0, description="the partition it went to")


def on_activity_departed(
    state: ActivityState | None, departed: Departed
) -> Change[ActivityState, ActivityDelta]:
    """A `Departed` activity counts here as a void of the revision that moved it: its
    contribution goes, and a later revision that brings it back is applied as usual."""
    if state is not None and not _supersedes(state.revision, state.voided, departed.revision, True):
        return Change(state, changed=False)
    unit_id = state.unit_id if state is not None else ""
    return _activity_change(state, _voided(departed.entity_id, departed.revision, unit_id))


def _voided(activity_id: UUID, revision: int, unit_id: str) -> ActivityState:
    """A voided activity keeps nothing the counters could use, whatever order events came in."""
    return ActivityState(activity_id=activity_id, revision=revision, unit_id=unit_id, voided=True)


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
FINISHED: frozenset[CaseStatus] = OUTCOMES | {CaseStatus.closed}
"""Statuses in which no deadline is pending."""


class CaseDelta(BaseModel):
    """One case's contribution to its unit's rollups, added (+1) or removed (-1)."""

    unit_id: str
    received_on: date
    sign: Sign
    kind: CaseKind
    topic: CaseTopic
    status: CaseStatus
    outcome: CaseStatus | None
    overdue: bool
    flags: list[str] = Field(default_factory=list)
    next_due_at: datetime | None = None

    @property
    def year(self) -> int:
        return self.received_on.year

    def counts(self) -> dict[str, Any]:
        """What the case adds to (or, sign −1, removes from) one month of the `cases` rollup.

        A case flagged overdue by its last event counts as overdue; an open case not flagged
        counts under `due` at its next due instant, so that it becomes overdue at query time
        once that instant has passed (SPEC §6: a case shows whether it is overdue)."""
        s = self.sign
        month: dict[str, Any] = {
            "received": s,
            "by_kind": {self.kind.value: s},
            "by_topic": {self.topic.value: s},
            "by_status": {self.status.value: s},
        }
        if self.outcome is not None:
            month["by_outcome"] = {self.outcome.value: s}
        if self.flags:
            month["by_flag"] = {flag: s for flag in self.flags}
        if self.overdue:
            month["overdue"] = s
        elif self.next_due_at is not None and self.status not in FINISHED:
            month["due"] = {str(due_millis(self.next_due_at)): s}
        return {month_key(self.received_on): month}


def due_millis(at: datetime) -> int:
    """An instant as milliseconds since the epoch (the key of `due` counts)."""
    return int(ensure_aware(at).timestamp() * 1000)


class CaseState(BaseModel):
    """The latest revision of a case, without personal data."""

    case_id: UUID
    revision: int
    unit_id: str = Field(default="", description="empty in a tombstone of a case never seen here")
    kind: CaseKind | None = Field(default=None, description="None in such a tombstone")
    topic: CaseTopic | None = None
    status: CaseStatus | None = None
    outcome: CaseStatus | None = Field(default=None, description="how it ended, kept once closed")
    received_on: date | None = None
    overdue: bool = False
    flags: list[str] = Field(default_factory=list)
    next_due_at: datetime | None = Field(
        default=None, description="the earliest pending deadline, as the last event said"
    )
    departed: bool = Field(
        default=False, description="gone to another partition (`Departed`): counts nothing here"
    )

    def contribution(self, sign: Sign) -> CaseDelta | None:
        if self.departed or self.kind is None or self.topic is None or self.status is None:
            return None
        if self.received_on is None:
            return None
        return CaseDelta(sign=sign, **self.model_dump(exclude={"case_id", "revision", "departed"}))


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
        next_due_at=ensure_aware(facts.next_due_at) if facts.next_due_at else None,
    )
    old = state.contribution(-1) if state is not None else None
    added = new.contribution(1)
    assert added is not None  # a case event never makes a departed state
    if old is not None and old.model_dump(exclude={"sign"}) == added.model_dump(exclude={"sign"}):
        return Change(new)
    return Change(new, [d for d in (old, added) if d is not None])


def on_case_departed(state: CaseState | None, departed: Departed) -> Change[CaseState, CaseDelta]:
    """A `Departed` case stays here as a tombstone of the revision that moved it: its
    contribution goes; a later revision that brings it back is applied as usual. As with a
    void, a departure beats a state of the same revision. A case never seen here gets a bare
    tombstone too (as `_voided` for activities): an older revision that arrives later (a dead
    letter replayed) must not count here while the partition it went to counts the newer one."""
    if state is None:
        tombstone = CaseState(case_id=departed.entity_id, revision=departed.revision, departed=True)
        return Change(tombstone)
    if departed.revision < state.revision:
        return Change(state, changed=False)
    if departed.revision == state.revision and state.departed:
        return Change(state, changed=False)
    removed = state.contribution(-1)
    new = state.model_copy(update={"revision": departed.revision, "departed": True})
    return Change(new, [removed] if removed is not None else [])


# --- units and plans --------------------------------------------------------------------------


class _Revised(Protocol):
    @property
    def revision(self) -> int: ...


R = TypeVar("R", bound=_Revised)


def latest(stored: R | None, incoming: R) -> R:
    """The one to keep of two revisions of a unit or a plan (`unit.upserted`, `plan.published`)."""
    return incoming if stored is None or incoming.revision > stored.revision else stored
