"""Case deadlines (SPEC §6): which are pending for a case, their due day and due instant.

Legal defaults (`DeadlineConfig()`), each configurable per kind:
- complaint (Luật Khiếu nại 2011): accept (thụ lý) within 10 days of receipt (art. 27); resolve
  within 30 days of acceptance, 45 for a complex case; in remote areas 45, and 60 when complex
  (art. 28).
- denunciation (Luật Tố cáo 2018 art. 30): resolve within 30 days of acceptance, extendable
  twice by 30 days (the case counts the extensions granted: `workflow.grant_extension`).
- the union's own handling of a letter (forward or answer, SPEC §6): 10 working days from
  receipt. "Letter" means a written complaint, denunciation or petition (đơn thư) whatever way
  it arrived, or anything that came by post (channel `letter`); both sets are configurable.

Counting (Bộ luật Dân sự 2015): a period in days starts the day after the event (art. 147) and
ends at the end of its last day (art. 148); when that last day is a weekend or a day off, the
period ends with the next working day (art. 148(5), `roll_to_working_day`). Working-day periods
skip weekends and official days off (`HolidayCalendar`). `due_on` is the last day on time;
`due_at` is 00:00 Asia/Ho_Chi_Minh of the day after, the first instant that is late.

Which deadlines are pending depends on the status: accept and handle-letter while `received`;
resolve while `accepted` or `in_progress` (counted from the reopening date after a reopen, so a
reopened case is not overdue at once); none in any other status.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator

from lhpn_shared.contracts.cases import CaseChannel, CaseDeadline, CaseKind, CaseStatus
from lhpn_shared.periods import day_start

from .holidays import HolidayCalendar


class DeadlineName(StrEnum):
    accept = "accept"
    resolve = "resolve"
    handle_letter = "handle_letter"


DEADLINE_LABELS: dict[DeadlineName, str] = {
    DeadlineName.accept: "Hạn thụ lý",
    DeadlineName.resolve: "Hạn giải quyết",
    DeadlineName.handle_letter: "Hạn xử lý đơn",
}


class KindDeadlines(BaseModel):
    """Deadlines of one kind of case, in calendar days. `None` = no such deadline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    accept_within_days: PositiveInt | None = None
    resolve_within_days: PositiveInt | None = None
    resolve_within_days_complex: PositiveInt | None = None
    resolve_within_days_remote_area: PositiveInt | None = None
    resolve_within_days_remote_area_complex: PositiveInt | None = None
    extension_days: PositiveInt | None = None
    max_extensions: NonNegativeInt = 0

    @model_validator(mode="after")
    def _extensions_have_a_length(self) -> Self:
        if self.max_extensions and self.extension_days is None:
            raise ValueError("extension_days is required when max_extensions > 0")
        return self

    def resolve_days(self, *, complex: bool, remote_area: bool) -> int | None:
        """The most specific period that is set: remote+complex, remote, complex, normal."""
        candidates: list[int | None] = []
        if remote_area and complex:
            candidates.append(self.resolve_within_days_remote_area_complex)
        if remote_area:
            candidates.append(self.resolve_within_days_remote_area)
        if complex:
            candidates.append(self.resolve_within_days_complex)
        candidates.append(self.resolve_within_days)
        return next((days for days in candidates if days is not None), None)


def _legal_defaults() -> dict[CaseKind, KindDeadlines]:
    return {
        CaseKind.complaint: KindDeadlines(
            accept_within_days=10,
            resolve_within_days=30,
            resolve_within_days_complex=45,
            resolve_within_days_remote_area=45,
            resolve_within_days_remote_area_complex=60,
        ),
        CaseKind.denunciation: KindDeadlines(
            resolve_within_days=30, extension_days=30, max_extensions=2
        ),
    }


class DeadlineConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kinds: dict[CaseKind, KindDeadlines] = Field(default_factory=_legal_defaults)
    letter_within_working_days: PositiveInt | None = 10
    letter_kinds: frozenset[CaseKind] = frozenset(
        {CaseKind.complaint, CaseKind.denunciation, CaseKind.petition}
    )
    letter_channels: frozenset[CaseChannel] = frozenset({CaseChannel.letter})
    roll_to_working_day: bool = True

    def for_kind(self, kind: CaseKind) -> KindDeadlines:
        return self.kinds.get(kind, _NO_DEADLINES)

    def is_letter(self, kind: CaseKind, channel: CaseChannel) -> bool:
        return kind in self.letter_kinds or channel in self.letter_channels


_NO_DEADLINES = KindDeadlines()


class DeadlineFacts(Protocol):
    """What the rules read; `workflow.CaseState` has all of it."""

    @property
    def kind(self) -> CaseKind: ...
    @property
    def channel(self) -> CaseChannel: ...
    @property
    def status(self) -> CaseStatus: ...
    @property
    def received_on(self) -> date: ...
    @property
    def complex(self) -> bool: ...
    @property
    def remote_area(self) -> bool: ...
    @property
    def extensions_granted(self) -> int: ...
    @property
    def accepted_on(self) -> date | None: ...
    @property
    def reopened_on(self) -> date | None: ...


@dataclass(frozen=True)
class Deadline:
    name: DeadlineName
    due_on: date
    """The last day that is on time (local date)."""

    @property
    def due_at(self) -> datetime:
        """00:00 Asia/Ho_Chi_Minh of the day after `due_on`: from this instant on, it is late."""
        return day_start(self.due_on + timedelta(days=1))

    @property
    def label(self) -> str:
        return DEADLINE_LABELS[self.name]

    def is_overdue(self, as_of: datetime) -> bool:
        return as_of >= self.due_at

    def to_contract(self) -> CaseDeadline:
        return CaseDeadline(name=self.name.value, due_on=self.due_on, due_at=self.due_at)


_RESOLVING = (CaseStatus.accepted, CaseStatus.in_progress)


def compute_deadlines(
    case: DeadlineFacts, config: DeadlineConfig, holidays: HolidayCalendar
) -> list[Deadline]:
    """The deadlines pending for `case` in its current status, earliest first."""
    rules = config.for_kind(case.kind)
    pending: list[Deadline] = []

    def calendar_days(start: date, days: int) -> date:
        due = start + timedelta(days=days)
        return holidays.next_working_day(due) if config.roll_to_working_day else due

    if case.status == CaseStatus.received:
        if rules.accept_within_days is not None:
            due = calendar_days(case.received_on, rules.accept_within_days)
            pending.append(Deadline(DeadlineName.accept, due))
        if config.letter_within_working_days is not None and config.is_letter(
            case.kind, case.channel
        ):
            due = holidays.add_working_days(case.received_on, config.letter_within_working_days)
            pending.append(Deadline(DeadlineName.handle_letter, due))

    elif case.status in _RESOLVING:
        start = case.reopened_on or case.accepted_on
        days = rules.resolve_days(complex=case.complex, remote_area=case.remote_area)
        if start is not None and days is not None:
            extensions = min(case.extensions_granted, rules.max_extensions)
            days += extensions * (rules.extension_days or 0)
            pending.append(Deadline(DeadlineName.resolve, calendar_days(start, days)))

    return sorted(pending, key=lambda d: (d.due_on, d.name))


def next_due_at(deadlines: Iterable[Deadline]) -> datetime | None:
    """The earliest due instant, or None when nothing is pending."""
    return min((d.due_at for d in deadlines), default=None)


def is_overdue(deadlines: Iterable[Deadline], as_of: datetime) -> bool:
    """True when a pending deadline's due instant has come at `as_of` (an aware instant)."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    return any(d.is_overdue(as_of) for d in deadlines)
