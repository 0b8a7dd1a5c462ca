"""What clients send and receive (SPEC §6, §9.2): the case as a union staff member sees it.

The requester's data, the summary, the timeline notes and the decline reason appear only in
`CaseOut` for staff allowed to read them (`personal_data` is then true); any other answer leaves
them out and says so in `personal_data_notice` ("Thông tin cá nhân được ẩn…"); lists carry the
facts only.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from lhpn_shared.contracts.cases import (
    CaseChannel,
    CaseDeadline,
    CaseKind,
    CaseStatus,
    CaseTopic,
)

from .domain.flags import CaseFlag
from .domain.workflow import Referral, TimelineEntry

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class Requester(BaseModel):
    """The person who asked for help. Personal data: sealed at rest, never in events or logs."""

    # errors never echo a value (FastAPI's and pydantic's messages would show the input)
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    phone: (
        Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 .()-]{6,20}$")]
        | None
    ) = None
    address: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None
    birth_year: int | None = Field(default=None, ge=1900, le=2100)
    id_number: (
        Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9A-Za-z]{6,20}$")]
        | None
    ) = None

    def is_empty(self) -> bool:
        return all(v in (None, "") for v in self.model_dump().values())


class CaseFields(BaseModel):
    """What a client sends to open a case."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    unit_id: str = Field(min_length=1, max_length=32)
    kind: CaseKind
    topic: CaseTopic
    channel: CaseChannel
    received_on: date
    summary: str = Field(default="", max_length=20_000, description="personal data: sealed")
    requester: Requester | None = None
    flags: list[CaseFlag] = Field(default_factory=list)
    complex: bool = False
    remote_area: bool = False
    assigned_to: Text | None = Field(default=None, description="username of the staff member")

    def has_personal_data(self) -> bool:
        return bool(self.summary.strip()) or (
            self.requester is not None and not self.requester.is_empty()
        )


class NewCase(CaseFields):
    case_id: UUID | None = Field(
        default=None, description="chosen by the client: a retried POST then opens one case"
    )


class TransitionRequest(BaseModel):
    to: CaseStatus
    note: str | None = Field(default=None, max_length=5_000)
    at: AwareDatetime | None = Field(
        default=None, description="when it happened (paper records); default now; never future"
    )
    referral: Referral | None = Field(default=None, description="required for `referred`")


class ExtensionRequest(BaseModel):
    note: str | None = Field(default=None, max_length=5_000)
    at: AwareDatetime | None = None


class ReferralUpRequest(BaseModel):
    """Refer a case up to the parent union (a reason is required), or hand it back down."""

    note: str | None = Field(default=None, max_length=5_000, description="personal data: sealed")
    at: AwareDatetime | None = Field(default=None, description="default now; never future")


class CaseListItem(BaseModel):
    """The facts of a case: what lists show, to anyone allowed to list the unit."""

    case_id: UUID
    unit_id: str
    kind: CaseKind
    topic: CaseTopic
    channel: CaseChannel
    received_on: date
    flags: list[CaseFlag]
    complex: bool
    remote_area: bool
    assigned_to: str | None
    status: CaseStatus
    status_label: str
    status_at: dict[CaseStatus, datetime] = Field(description="the last time it entered each")
    deadlines: list[CaseDeadline]
    next_due_at: datetime | None
    overdue: bool = Field(description="a deadline has passed, as of the request")
    revision: int


class CaseOut(CaseListItem):
    """One case, for staff of its unit and of the units above it."""

    personal_data: bool = Field(
        description="true when summary, requester, notes and decline reason are shown"
    )
    personal_data_notice: str | None = Field(
        description="why the personal data is left out (for the portal to show); null when shown"
    )
    summary: str | None
    requester: Requester | None
    timeline: list[TimelineEntry]
    decline_reason: str | None
    referral: Referral | None = Field(description="the competent body it was sent out to")
    referred_up_to: list[str] = Field(
        description="the unions above its own the case is referred up to, nearest first: "
        "their staff see its personal data"
    )
    extensions_granted: int
    allowed_transitions: list[CaseStatus]
