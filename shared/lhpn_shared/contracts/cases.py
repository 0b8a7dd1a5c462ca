"""Legal-aid case facts that may leave the cases service (SPEC §6): never personal data."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class CaseKind(StrEnum):
    consultation = "consultation"
    legal_aid = "legal_aid"
    complaint = "complaint"
    denunciation = "denunciation"
    petition = "petition"
    mediation = "mediation"


class CaseTopic(StrEnum):
    domestic_violence = "domestic_violence"
    marriage_family = "marriage_family"
    land = "land"
    inheritance = "inheritance"
    labour = "labour"
    social_insurance = "social_insurance"
    trafficking = "trafficking"
    other = "other"


class CaseChannel(StrEnum):
    walk_in = "walk_in"
    hotline = "hotline"
    letter = "letter"
    online = "online"
    referral = "referral"


class CaseStatus(StrEnum):
    received = "received"
    accepted = "accepted"
    declined = "declined"
    in_progress = "in_progress"
    resolved = "resolved"
    referred = "referred"
    mediation_succeeded = "mediation_succeeded"
    mediation_failed = "mediation_failed"
    withdrawn = "withdrawn"
    closed = "closed"


class CaseDeadline(BaseModel):
    name: str = Field(description="e.g. accept, resolve, handle_letter")
    due_on: date | None = Field(default=None, description="the last day, local time")
    due_at: datetime = Field(description="00:00 Asia/Ho_Chi_Minh of the day after due_on")


class CaseFacts(BaseModel):
    """The non-personal view of a case carried by every `case.*` event.

    `extra="forbid"`: a producer that tries to slip a requester field in fails loudly.
    """

    model_config = ConfigDict(extra="forbid")

    case_id: UUID
    unit_id: str
    kind: CaseKind
    topic: CaseTopic
    channel: CaseChannel
    status: CaseStatus
    received_on: date
    flags: list[str] = Field(default_factory=list)
    complex: bool = False
    remote_area: bool = False
    deadlines: list[CaseDeadline] = Field(default_factory=list)
    next_due_at: datetime | None = None
    overdue: bool = False
    revision: int = Field(default=1, ge=1)


class CaseStatusChange(CaseFacts):
    from_status: CaseStatus | None = None
    changed_at: datetime
