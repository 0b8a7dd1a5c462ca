"""Reports (SPEC §5): a unit's submission for one schedule and period."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field


class AttachmentInfo(BaseModel):
    file_name: str = Field(min_length=1, max_length=255)
    media_type: str = Field(min_length=1, max_length=127)
    size: int = Field(ge=0)
    reference: str | None = Field(
        default=None, description="where the content lives, if not stored"
    )


class ReportFields(BaseModel):
    """What a client sends to submit (or resubmit) a report."""

    unit_id: str = Field(min_length=1)
    report_type: str = Field(min_length=1)
    period: str = Field(min_length=1)
    indicators: dict[str, int] = Field(default_factory=dict)
    narrative: str = Field(default="", max_length=200_000)


class Report(ReportFields):
    """A report as carried by `report.submitted` (no attachment content)."""

    report_id: UUID
    received_at: datetime
    attachments: list[AttachmentInfo] = Field(default_factory=list)
    revision: int = Field(default=1, ge=1)
    due_at: AwareDatetime
    on_time: bool
