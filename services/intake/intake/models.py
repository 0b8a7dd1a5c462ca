"""What intake's use cases take in that is not an event contract."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from lhpn_shared.contracts.reports import ReportFields


class AttachmentIn(BaseModel):
    file_name: str = Field(min_length=1, max_length=255)
    media_type: str = Field(min_length=1, max_length=127)
    content_base64: str | None = None
    reference: str | None = None


class ReportSubmission(ReportFields):
    """A report as submitted over HTTP or on `lhpn.inbound`."""

    report_id: UUID | None = None
    received_at: datetime | None = Field(
        default=None, description="for paper reports: when it was received; never in the future"
    )
    attachments: list[AttachmentIn] = Field(default_factory=list)
