"""What a sweep decides to send: planned messages and the keys of the send log.

A message is sent at most once per send key `(subject_ref, step, recipient_unit_id)`; the send
log (kept by the service layer) is the set of keys already sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, NamedTuple
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from lhpn_shared.contracts.cases import CaseKind


class SendKey(NamedTuple):
    subject_ref: str
    step: str
    recipient_unit_id: str


class _Planned(BaseModel):
    model_config = ConfigDict(frozen=True)

    step: str
    recipient_unit_id: str
    step_at: AwareDatetime
    """The instant this step became due (a late sweep sends it later)."""
    due_at: AwareDatetime
    """The deadline the message is about."""


class ReportReminder(_Planned):
    """To a unit that has not yet sent a report it owes."""

    kind: Literal["report_reminder"] = "report_reminder"
    obligation_id: str
    plan_id: str
    report_type: str
    period: str
    unit_id: str

    @property
    def subject_ref(self) -> str:
        return self.obligation_id

    @property
    def send_key(self) -> SendKey:
        return SendKey(self.subject_ref, self.step, self.recipient_unit_id)


class ParentDigest(_Planned):
    """To a parent unit: all its children whose report of one type and period is missing."""

    kind: Literal["parent_digest"] = "parent_digest"
    plan_id: str
    report_type: str
    period: str
    late_unit_ids: tuple[str, ...] = Field(min_length=1)
    obligation_ids: tuple[str, ...] = Field(min_length=1)

    @property
    def subject_ref(self) -> str:
        return digest_ref(self.plan_id, self.report_type, self.period, self.recipient_unit_id)

    @property
    def send_key(self) -> SendKey:
        return SendKey(self.subject_ref, self.step, self.recipient_unit_id)


class CaseReminder(_Planned):
    """About one deadline of a legal-aid case (no personal data: facts only)."""

    kind: Literal["case_deadline"] = "case_deadline"
    case_id: UUID
    case_kind: CaseKind
    unit_id: str
    """The unit that owns the case."""
    deadline: str
    """The deadline's name, e.g. accept, resolve, handle_letter."""

    @property
    def subject_ref(self) -> str:
        return case_deadline_ref(self.case_id, self.deadline, self.due_at)

    @property
    def send_key(self) -> SendKey:
        return SendKey(self.subject_ref, self.step, self.recipient_unit_id)


PlannedMessage = Annotated[
    ReportReminder | ParentDigest | CaseReminder, Field(discriminator="kind")
]
"""Any planned message; `pydantic.TypeAdapter(PlannedMessage)` reads one back from storage."""


def digest_ref(plan_id: str, report_type: str, period: str, parent_unit_id: str) -> str:
    return f"{plan_id}:{report_type}:{period}:digest:{parent_unit_id}"


def case_deadline_ref(case_id: UUID, deadline: str, due_at: datetime) -> str:
    """A changed due instant is a new subject, so it gets its own reminders."""
    return f"case:{case_id}:{deadline}:{due_at.astimezone(UTC).isoformat()}"
